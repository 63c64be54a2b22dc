using NextToken.Models;
using Xunit.Abstractions;

namespace NextToken.Tests;

/// <summary>
/// A prompt's row-wise steps between the matmuls (norms, biases, GELU/GLU, RoPE, residual adds,
/// the cache store) run split across threads and fused where no hook looks in between: the logits
/// must not depend on the thread count nor on whether a hook is watching — bit for bit.
/// </summary>
public class PromptRowStepsTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData("gpt2-tiny.f32")]
    [InlineData("gpt2-tiny.f16")]
    [InlineData("llama-tiny.f32")]
    [InlineData("moe-tiny.f32")]
    [InlineData("qwen2-tiny.f32")]
    [InlineData("qwen3-tiny.f32")]
    [InlineData("gemma2-tiny.f32")]
    [InlineData("gemma3-tiny.f32")]
    public void Prompt_SameLogitsOnAnyThreadCountAndWithHooks(string stem)
    {
        using LanguageModel model = ModelLoader.Load(ExpectedOutputs.ModelPath(stem));
        // 37 rows: enough to run the steps in parallel, and chunks of unequal size; a second batch starts at position 37.
        var random = new Random(7);
        int[] prompt = Enumerable.Range(0, 37).Select(_ => random.Next(model.VocabSize)).ToArray();
        int[] more = Enumerable.Range(0, 19).Select(_ => random.Next(model.VocabSize)).ToArray();

        float[] serial = Run(model, 1, prompt, more);
        float[] parallel = Run(model, 2, prompt, more);
        Assert.Equal(serial, parallel);

        // A hook on every point the fused steps skip over: the steps then run one at a time.
        var seen = 0;
        var registrations = new List<IDisposable>();
        for (int l = 0; l < model.LayerCount; l++)
            foreach (string name in new[] { HookNames.ResidPre(l), HookNames.ResidMid(l), HookNames.ResidPost(l), HookNames.AttnOut(l), HookNames.MlpOut(l), HookNames.Q(l), HookNames.Qkv(l) })
                if (model.Hooks.Contains(name)) registrations.Add(model.Hooks.Add(name, _ => seen++));
        float[] hooked = Run(model, 2, prompt, more);
        registrations.ForEach(r => r.Dispose());
        Assert.True(seen > 0);
        Assert.Equal(serial, hooked);
        output.WriteLine($"{stem}: {serial.Length} logits equal on 1 and 2 threads and with {registrations.Count} hooks");
    }

    private static float[] Run(LanguageModel model, int threads, int[] prompt, int[] more)
    {
        model.Threads = threads;
        ModelState state = model.CreateState();
        int vocab = model.VocabSize;
        var first = new float[prompt.Length * vocab];
        model.Forward(state, prompt, first, LogitsFor.AllPositions);
        var last = new float[vocab];
        model.Forward(state, more, last);
        return [.. first, .. last];
    }
}
