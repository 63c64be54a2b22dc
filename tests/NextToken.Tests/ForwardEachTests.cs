using NextToken.Models;
using Xunit.Abstractions;

namespace NextToken.Tests;

/// <summary>
/// Several contexts decoded in one pass (continuous batching) must give each context exactly the
/// logits it gets decoded alone — bit for bit, so a server's streams cannot change each other's tokens.
/// </summary>
public class ForwardEachTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData("gpt2-tiny.f32", false)]
    [InlineData("gpt2-tiny.f16", false)]
    [InlineData("gpt2-tiny.q8_0", false)]
    [InlineData("gpt2-tiny.q4_0", false)]
    [InlineData("gpt2-tiny.q4_0", true)]
    [InlineData("llama-tiny.f32", false)]
    [InlineData("llama-tiny.q8_0", true)]
    [InlineData("moe-tiny.f32", false)]
    [InlineData("llama-k.q4_k_m", false)]
    [InlineData("stories260K", false)]
    [InlineData("llama-d256.q5_k", false)]
    [InlineData("llama-d256.iq4_xs", false)]
    [InlineData("llama-d192.q4_k_m", false)]
    [InlineData("gpt2-d256.q4_k_m", false)]
    [InlineData("llama3-tiny.f32", false)]
    [InlineData("qwen2-tiny.f32", false)]
    [InlineData("qwen3-tiny.f32", false)]
    [InlineData("qwen2moe-tiny.f32", false)]
    [InlineData("olmoe-tiny.f32", false)]
    [InlineData("gemma2-tiny.f32", false)]
    [InlineData("gemma3-tiny.f32", false)]
    [InlineData("phi3-tiny.f32", false)]
    public void ForwardEach_EveryRowEqualsItsContextDecodedAlone(string stem, bool quantizeActivations)
    {
        using LanguageModel model = ModelLoader.Load(ExpectedOutputs.ModelPath(stem));
        model.QuantizeActivations = quantizeActivations;
        ExpectedCase[] cases = ExpectedOutputs.Load(stem).ToArray();
        // Contexts of different lengths (prompts of three cases, one cut short), plus a fifth that starts empty-ish.
        int[][] prompts = [.. cases.Select(c => c.Tokens), cases[0].Tokens[..Math.Min(3, cases[0].Tokens.Length)], cases[^1].Tokens[..1]];
        int n = prompts.Length, vocab = model.VocabSize;
        int[] next = prompts.Select((p, i) => p[(i * 7) % p.Length]).ToArray();

        var alone = new float[n * vocab];
        for (int i = 0; i < n; i++)
        {
            ModelState state = model.CreateState();
            model.Forward(state, prompts[i], new float[vocab]);
            model.Forward(state, [next[i]], alone.AsSpan(i * vocab, vocab));
        }

        var states = new ModelState[n];
        for (int i = 0; i < n; i++)
        {
            states[i] = model.CreateState();
            model.Forward(states[i], prompts[i], new float[vocab]);
        }
        var together = new float[n * vocab];
        model.ForwardEach(states, next, together);
        float worst = 0;
        for (int i = 0; i < together.Length; i++) worst = Math.Max(worst, Math.Abs(together[i] - alone[i]));
        output.WriteLine($"{stem}{(quantizeActivations ? " (q8 activations)" : "")}: {n} contexts at positions {string.Join(", ", prompts.Select(p => p.Length))}: max |together − alone| = {worst}");
        Assert.Equal(0f, worst);
        for (int i = 0; i < n; i++) Assert.Equal(prompts[i].Length + 1, states[i].Position);

        // A second step from where each context now is, still equal.
        model.ForwardEach(states, next, together);
        for (int i = 0; i < n; i++)
        {
            ModelState state = model.CreateState();
            model.Forward(state, prompts[i], new float[vocab]);
            model.Forward(state, [next[i]], new float[vocab]);
            var row = new float[vocab];
            model.Forward(state, [next[i]], row);
            Assert.True(row.AsSpan().SequenceEqual(together.AsSpan(i * vocab, vocab)), $"context {i}, second step");
        }
    }

    [Fact]
    public void ForwardEach_SameContextTwice_IsRefused()
    {
        using LanguageModel model = ModelLoader.Load(BuiltInModel.Id);
        ModelState state = model.CreateState();
        var error = Assert.Throws<ArgumentException>(() => model.ForwardEach([state, state], [1, 1], new float[2 * model.VocabSize]));
        Assert.Contains("the same as context 0", error.Message);
    }

    [Fact]
    public void ForwardEach_WithAHookRegistered_IsRefused()
    {
        using LanguageModel model = ModelLoader.Load(BuiltInModel.Id);
        using var hook = model.Hooks.Add("blocks.0.hook_resid_pre", _ => { });
        var error = Assert.Throws<NextTokenException>(() => model.ForwardEach([model.CreateState(), model.CreateState()], [1, 1], new float[2 * model.VocabSize]));
        Assert.Contains("hooks are registered", error.Message);
    }
}
