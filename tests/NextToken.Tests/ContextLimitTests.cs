using NextToken.Models;
using Xunit.Abstractions;

namespace NextToken.Tests;

/// <summary>
/// A model limited to fewer positions than it was trained for (llama.cpp's --ctx-size) allocates a
/// smaller KV cache and must give the same logits for contexts that fit.
/// </summary>
public class ContextLimitTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData("gpt2-tiny.f32")]
    [InlineData("llama3-tiny.f32")]
    [InlineData("gemma2-tiny.f32")] // sliding-window layers: a limit below the window means full attention
    [InlineData("qwen2moe-tiny.f32")]
    public void LimitContext_SameLogitsForContextsThatFit_AndFullBeyond(string stem)
    {
        int[] tokens = ExpectedOutputs.Load(stem).OrderByDescending(c => c.Tokens.Length).First().Tokens;
        using LanguageModel full = ModelLoader.Load(ExpectedOutputs.ModelPath(stem));
        using LanguageModel limited = ModelLoader.Load(ExpectedOutputs.ModelPath(stem));
        limited.LimitContext(tokens.Length);
        Assert.Equal(full.ContextLength, limited.TrainedContextLength);
        Assert.Equal(tokens.Length, limited.ContextLength);

        ModelState state = limited.CreateState();
        Assert.Equal(tokens.Length, state.ContextLength);
        Assert.True(state.KeyCache.LongLength * full.ContextLength == full.CreateState().KeyCache.LongLength * tokens.Length, "the KV cache shrinks with the limit");

        var expected = new float[tokens.Length * full.VocabSize];
        var actual = new float[tokens.Length * full.VocabSize];
        full.Forward(full.CreateState(), tokens, expected, LogitsFor.AllPositions);
        limited.Forward(state, tokens, actual, LogitsFor.AllPositions);
        double maxDiff = expected.Zip(actual, (a, b) => (double)Math.Abs(a - b)).Max();
        output.WriteLine($"{stem}: {tokens.Length} of {full.ContextLength} positions, every position's logits max |Δ| {maxDiff:E3}");
        Assert.True(maxDiff <= 1e-5, $"limited context changed the logits by {maxDiff}");

        Assert.Throws<ContextFullException>(() => limited.Forward(state, [tokens[0]], new float[full.VocabSize]));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    [InlineData(int.MaxValue)]
    public void LimitContext_OutsideOneToTrained_IsAnError(int tokens)
    {
        using LanguageModel model = ModelLoader.Load(Fixtures.Model("gpt2-tiny.f32.gguf"));
        var error = Assert.Throws<NextTokenException>(() => model.LimitContext(tokens));
        Assert.Contains("trained context", error.Message);
    }

    [Fact]
    public void Cli_Ctx_LimitsTheContext_AndOutOfRangeIsOneLine()
    {
        string model = Fixtures.Model("gpt2-tiny.f32.gguf");
        var (code, _, stderr) = CliTests.RunWith(null, null, "generate", "--model", model, "--ctx", "4", "--prompt", "one two three four five six", "--max-tokens", "2");
        Assert.Equal(1, code);
        Assert.StartsWith("error: context full", stderr.Trim());
        (code, _, stderr) = CliTests.RunWith(null, null, "generate", "--model", model, "--ctx", "100000", "--prompt", "x");
        Assert.Equal(1, code);
        Assert.Equal("error: --ctx 100000: must be 1 to the model's trained context, 128", stderr.Trim());
        (code, string stdout, _) = CliTests.RunWith(null, null, "generate", "--model", model, "--ctx", "16", "--prompt", "The cat", "--max-tokens", "3", "--temperature", "0");
        Assert.Equal(0, code);
        Assert.StartsWith("The cat", stdout.Trim());
    }
}
