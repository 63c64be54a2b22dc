using System.Text.Json;
using NextToken.Inspection;
using NextToken.Models;
using Xunit.Abstractions;

namespace NextToken.Tests;

/// <summary>
/// Perplexity and KL divergence, checked against the definition computed the slow way: one fresh
/// forward pass per scored prediction, its full logit row, log-softmax in float64.
/// </summary>
public class PerplexityTests(ITestOutputHelper output)
{
    private const string Text = "Once upon a time, there was a little dog named Max. Max liked to run in the park with his friend Sue.";

    [Theory]
    // llama-perplexity: side by side, first half context; targets at positions ctx/2 + 1 … ctx − 1.
    [InlineData(20, 8, null, new[] { 0, 8, 5, 8, 8, 5 })]
    [InlineData(16, 16, null, new[] { 0, 16, 9 })]
    // strided: every token after the first scored once.
    [InlineData(10, 6, 2, new[] { 0, 6, 1, 2, 6, 4, 4, 6, 4 })]
    [InlineData(6, 4, 3, new[] { 0, 4, 1, 3, 3, 1 })]
    public void Windows_CoverTheTextAsSpecified(int tokens, int context, int? stride, int[] expected)
    {
        var windows = new PerplexityOptions(context, stride).Windows(tokens);
        Assert.Equal(expected, windows.SelectMany(w => new[] { w.Start, w.Length, w.FirstScored }));
        if (stride is not null) Assert.Equal(tokens - 1, windows.Sum(w => w.Scored));
    }

    [Theory]
    [InlineData(5, 8, null, "needs at least 8")]
    [InlineData(20, 8, 8, "--stride must be 1 to 7")]
    [InlineData(20, 8, 0, "--stride must be 1 to 7")]
    [InlineData(20, 1, null, "--ctx must be at least 2")]
    public void Windows_BadSettings_SayWhatIsWrong(int tokens, int context, int? stride, string message)
    {
        var error = Assert.Throws<NextTokenException>(() => new PerplexityOptions(context, stride).Windows(tokens));
        Assert.Contains(message, error.Message);
    }

    [Theory]
    [InlineData(16, null)]
    [InlineData(16, 5)]
    public void Measure_BuiltInModel_EqualsMeanNllOfSeparateForwardPasses(int context, int? stride)
    {
        using LanguageModel model = ModelLoader.Load(BuiltInModel.Id);
        int bos = model.Tokenizer.Vocabulary.BosId!.Value;
        int[] tokens = model.Tokenizer.Encode(Text, addBos: true).Ids;
        var options = new PerplexityOptions(context, stride, bos);
        PerplexityResult result = Perplexity.Measure(model, tokens, options);

        var nll = new List<double>();
        foreach (PerplexityWindow w in options.Windows(tokens.Length))
        {
            int[] window = tokens[w.Start..(w.Start + w.Length)];
            if (w.FirstScored >= 2) window[0] = bos;
            for (int t = w.FirstScored; t < w.Length; t++)
                nll.Add(-LogSoftmax(LastRow(model, window[..t]), window[t]));
        }
        Assert.Equal(nll.Count, result.Scored);
        double expected = nll.Average(), difference = Math.Abs(result.MeanNll - expected);
        output.WriteLine($"ctx {context} stride {stride?.ToString() ?? "-"}: {result.Scored} predictions, mean NLL {result.MeanNll:F6} vs {expected:F6}, |diff| {difference:E2}; perplexity {result.Perplexity:F3}");
        Assert.True(difference < 1e-5, $"mean NLL {result.MeanNll} vs {expected}");
        Assert.Null(result.Kl);
    }

    [Fact]
    public void Measure_ModelAgainstItself_HasZeroDivergence()
    {
        using LanguageModel model = ModelLoader.Load(BuiltInModel.Id);
        using LanguageModel same = ModelLoader.Load(BuiltInModel.Id);
        int[] tokens = model.Tokenizer.Encode(Text, addBos: true).Ids;
        KlSummary kl = Perplexity.Measure(model, tokens, new PerplexityOptions(16, 4, 1), same).Kl!;
        Assert.Equal(0, kl.Max);
        Assert.Equal(1, kl.TopOneAgreement);
    }

    [Fact]
    public void Measure_QuantizedAgainstF32_MatchesDirectKlDivergence()
    {
        using LanguageModel q8 = ModelLoader.Load(Fixtures.Model("llama-tiny.q8_0.gguf"));
        using LanguageModel f32 = ModelLoader.Load(Fixtures.Model("llama-tiny.f32.gguf"));
        int[] tokens = ExpectedOutputs.Load("llama-tiny.f32").Single(c => c.Name == "kafka").Tokens;
        var options = new PerplexityOptions(12, null, 1);
        PerplexityResult result = Perplexity.Measure(q8, tokens, options, f32);

        var divergences = new List<double>();
        int agree = 0;
        foreach (PerplexityWindow w in options.Windows(tokens.Length))
        {
            int[] window = tokens[w.Start..(w.Start + w.Length)];
            window[0] = 1;
            for (int t = w.FirstScored; t < w.Length; t++)
            {
                double[] p = LogSoftmax(LastRow(f32, window[..t])), q = LogSoftmax(LastRow(q8, window[..t]));
                divergences.Add(p.Select((lp, i) => Math.Exp(lp) * (lp - q[i])).Sum());
                if (Array.IndexOf(p, p.Max()) == Array.IndexOf(q, q.Max())) agree++;
            }
        }
        KlSummary kl = result.Kl!;
        double expected = divergences.Average();
        output.WriteLine($"llama-tiny q8_0 vs f32: mean KL {kl.Mean:E4} vs {expected:E4} (|diff| {Math.Abs(kl.Mean - expected):E2}), max {kl.Max:E3}, same top token {kl.TopOneAgreement:P1}, perplexity {result.Perplexity:F1} vs base {kl.BasePerplexity:F1}");
        Assert.True(kl.Mean > 0);
        Assert.True(Math.Abs(kl.Mean - expected) <= 1e-6 + 1e-3 * expected, $"mean KL {kl.Mean} vs {expected}");
        Assert.Equal(divergences.Max(), kl.Max, 1e-6 + 1e-3 * divergences.Max());
        Assert.Equal((double)agree / divergences.Count, kl.TopOneAgreement, 1e-12);
    }

    public static TheoryData<string> FixtureModels() => new(
        "gpt2-tiny.f32.gguf", "gpt2-tiny.f16.gguf", "gpt2-tiny.q8_0.gguf", "gpt2-tiny.q4_0.gguf", "llama-tiny.f32.gguf", "llama-tiny.q8_0.gguf",
        "moe-tiny.f32.gguf", "llama-k.q4_k_m.gguf", "stories260K.gguf", "gpt2-tiny-hf", "llama-tiny-hf",
        "quant/gpt2-d256.q4_k_m.gguf", "quant/llama-d192.q4_k_m.gguf", "quant/llama-d256.q2_k.gguf", "quant/llama-d256.q3_k.gguf",
        "quant/llama-d256.q4_1.gguf", "quant/llama-d256.q4_k.gguf", "quant/llama-d256.q5_0.gguf", "quant/llama-d256.q5_1.gguf",
        "quant/llama-d256.q5_k.gguf", "quant/llama-d256.iq4_nl.gguf", "quant/llama-d256.iq4_xs.gguf");

    /// <summary>Every fixture model: a finite perplexity, and zero divergence from itself (the q6_k file as the quantized files' base).</summary>
    [Theory]
    [MemberData(nameof(FixtureModels))]
    public void Measure_EveryFixtureModel_FinitePerplexityAndKl(string file)
    {
        using LanguageModel model = file == "llama-tiny-hf"
            ? ModelLoader.Load(Fixtures.Model(file), Fixtures.Vocab("ggml-vocab-llama-spm.gguf"))
            : ModelLoader.Load(Fixtures.Model(file));
        string baseFile = file.StartsWith("quant/llama-d256", StringComparison.Ordinal) ? "quant/llama-d256.q6_k.gguf" : file;
        using LanguageModel baseModel = baseFile == "llama-tiny-hf"
            ? ModelLoader.Load(Fixtures.Model(baseFile), Fixtures.Vocab("ggml-vocab-llama-spm.gguf"))
            : ModelLoader.Load(Fixtures.Model(baseFile));
        int[] tokens = model.Tokenizer.Encode(Text + " " + Text, model.Tokenizer.Vocabulary.AddBos).Ids;
        PerplexityResult result = Perplexity.Measure(model, tokens, new PerplexityOptions(Math.Min(32, model.ContextLength), 8, model.Tokenizer.Vocabulary.BosId), baseModel);
        output.WriteLine($"{file}: {result.Scored} predictions, perplexity {result.Perplexity:F2}; against {baseFile}: mean KL {result.Kl!.Mean:E3}, top-1 agreement {result.Kl.TopOneAgreement:P1}");
        Assert.True(double.IsFinite(result.Perplexity) && result.Perplexity > 1);
        Assert.True(double.IsFinite(result.Kl.Mean) && result.Kl.Mean >= -1e-6);
        if (baseFile == file) Assert.Equal(0, result.Kl.Max);
    }

    [Fact]
    public void Measure_ContextAboveModel_IsAClearError()
    {
        using LanguageModel model = ModelLoader.Load(BuiltInModel.Id);
        var error = Assert.Throws<NextTokenException>(() => Perplexity.Measure(model, new int[2000], new PerplexityOptions(1024)));
        Assert.Contains("exceeds the model's context length 512", error.Message);
    }

    /// <summary>The README's promise through the CLI: perplexity equals exp(mean NLL) of `next --dump-logits` rows.</summary>
    [Fact]
    public void Cli_Perplexity_EqualsNllFromNextDumpLogits()
    {
        using var temp = new TempDir();
        var (code, stdout, stderr) = CliTests.RunWith(null, null, "perplexity", "--text", Text, "--ctx", "12", "--chunks", "2", "--json");
        Assert.True(code == 0, stderr);
        using var doc = JsonDocument.Parse(stdout);
        JsonElement root = doc.RootElement;
        Assert.Equal(BuiltInModel.Id, root.GetProperty("model").GetString());
        Assert.Equal(2, root.GetProperty("windows").GetInt32());

        using LanguageModel model = ModelLoader.Load(BuiltInModel.Id);
        int[] tokens = model.Tokenizer.Encode(Text, addBos: true).Ids;
        var nll = new List<double>();
        foreach (PerplexityWindow w in new PerplexityOptions(12).Windows(24))
        {
            int[] window = tokens[w.Start..(w.Start + w.Length)];
            window[0] = 1;
            for (int t = w.FirstScored; t < w.Length; t++)
            {
                string dump = Path.Combine(temp.Path, $"{w.Start}-{t}.f32");
                var next = CliTests.RunWith(null, null, "next", "--tokens", string.Join(',', window[..t]), "--dump-logits", dump, "--json");
                Assert.True(next.ExitCode == 0, next.Stderr);
                float[] row = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(File.ReadAllBytes(dump)).ToArray();
                nll.Add(-LogSoftmax(row, window[t]));
            }
        }
        double expected = Math.Exp(nll.Average()), actual = root.GetProperty("perplexity").GetDouble();
        output.WriteLine($"perplexity through the CLI {actual:F6}, from {nll.Count} dumped rows {expected:F6}");
        Assert.Equal(nll.Count, root.GetProperty("scored").GetInt32());
        Assert.True(Math.Abs(actual - expected) <= 1e-5 * expected, $"{actual} vs {expected}");
    }

    [Fact]
    public void Cli_Perplexity_TextShorterThanWindow_OneLineError()
    {
        var (code, stdout, stderr) = CliTests.RunWith(null, null, "perplexity", "--text", "Once upon", "--ctx", "64");
        Assert.Equal(1, code);
        Assert.Equal("", stdout);
        Assert.StartsWith("error: the text has", stderr);
        Assert.Single(stderr.Trim().Split('\n'));
    }

    private static float[] LastRow(LanguageModel model, int[] prefix)
    {
        var logits = new float[model.VocabSize];
        model.Forward(model.CreateState(), prefix, logits);
        return logits;
    }

    private static double[] LogSoftmax(float[] row)
    {
        double max = row.Max(), z = Math.Log(row.Sum(v => Math.Exp(v - max))) + max;
        return row.Select(v => v - z).ToArray();
    }

    private static double LogSoftmax(float[] row, int id) => LogSoftmax(row)[id];
}
