using System.Text.Json;
using NextToken.Models;

namespace NextToken.Tests;

/// <summary>
/// The CLI on every model family of <c>models/arch/</c>: <c>info</c> shows what sets the family apart,
/// and every inspection command (logit lens, attention, drift, steer, map; routing on the mixtures of
/// experts) runs on it with real content.
/// </summary>
public class FamilyCliTests : IDisposable
{
    private readonly TempDir _temp = new();

    public void Dispose() => _temp.Dispose();

    private static string Arch(string family) => Fixtures.Model(Path.Combine("arch", family + "-tiny.f32.gguf"));

    private static JsonDocument RunJson(params string[] args)
    {
        var (code, stdout, stderr) = CliTests.RunWith(null, null, args);
        Assert.True(code == 0, $"{string.Join(' ', args)}: {stderr}");
        return JsonDocument.Parse(stdout);
    }

    [Theory]
    [InlineData("llama3", "rope", "frequencies divided by rope_freqs.weight")]
    [InlineData("qwen2", "attention", "q/k/v biases")]
    [InlineData("qwen2", "rope", "NeoX halves")]
    [InlineData("qwen3", "attention", "RMSNorm of each head's q and k")]
    [InlineData("qwen2moe", "feed-forward", "8 experts of 32 (SwiGLU, silu(gate)·up), softmax router, top 2 weights as they are, plus a shared expert of 96 gated by a sigmoid")]
    [InlineData("olmoe", "attention", "RMSNorm over the whole q and k")]
    [InlineData("olmoe", "feed-forward", "8 experts of 48")]
    [InlineData("gemma2", "sliding window", "8 keys on layers 0, 2 of 3")]
    [InlineData("gemma2", "logits", "capped 30·tanh(l/30)")]
    [InlineData("gemma2", "attention", "scores capped 50·tanh(s/50)")]
    [InlineData("gemma2", "embedding", "scaled by √64 = 8")]
    [InlineData("gemma3", "sliding window", "8 keys on layers 0, 1, 2, 3, 4 of 6; their RoPE base 10000, unscaled")]
    [InlineData("gemma3", "rope", "base 1000000, linear scaling ×8")]
    [InlineData("phi3", "projections", "q, k and v fused in attn_qkv")]
    [InlineData("phi3", "rope", "frequencies divided by rope_factors_short.weight (short LongRoPE factors), cos/sin × 1.1547")]
    [InlineData("phi3", "sliding window", "4096 keys on every layer (not narrower than the context)")]
    public void Info_ShowsTheFamilysSettings(string family, string setting, string expected)
    {
        using JsonDocument doc = RunJson("info", "--model", Arch(family), "--json");
        Assert.Equal(family == "llama3" ? "llama" : family, doc.RootElement.GetProperty("family").GetProperty("family").GetString());
        Assert.Contains(expected, doc.RootElement.GetProperty("family").GetProperty(setting).GetString());
    }

    [Theory]
    [InlineData("llama3")]
    [InlineData("qwen2")]
    [InlineData("qwen3")]
    [InlineData("qwen2moe")]
    [InlineData("olmoe")]
    [InlineData("gemma2")]
    [InlineData("gemma3")]
    [InlineData("phi3")]
    public void Lens_LastStageDecodesToTheModelsOwnPrediction(string family)
    {
        ExpectedCase expected = ExpectedOutputs.Load(family + "-tiny.f32").Single(c => c.Name == "kafka");
        using JsonDocument doc = RunJson("lens", "--model", Arch(family), "--tokens", string.Join(',', expected.Tokens), "--json");
        JsonElement[] layers = doc.RootElement.GetProperty("layers").EnumerateArray().ToArray();
        // One stage per block input plus the output of the last block: that one is the model's own distribution.
        int blocks = expected.ResidPreNormLast.Length;
        Assert.Equal(blocks + 1, layers.Length);
        Assert.True(layers[^1].GetProperty("kl_to_final").GetDouble() < 1e-6, $"last stage KL {layers[^1].GetProperty("kl_to_final").GetDouble()}");
        Assert.Equal(expected.Positions[^1].Top[0].Id, layers[^1].GetProperty("top")[0].GetProperty("id").GetInt32());
        // One row of residual norms per block, one per position; a block's output is the next block's input, whose norm the reference recorded.
        float[][] norms = doc.RootElement.GetProperty("residual_norms").EnumerateArray().Select(r => r.EnumerateArray().Select(e => e.GetSingle()).ToArray()).ToArray();
        Assert.Equal(blocks, norms.Length);
        Assert.All(norms, r => Assert.Equal(expected.Tokens.Length, r.Length));
        Assert.All(norms.SelectMany(r => r), v => Assert.True(float.IsFinite(v) && v > 0, $"norm {v}"));
        for (int l = 0; l + 1 < blocks; l++)
            Assert.True(Tolerance.Within(norms[l][^1], expected.ResidPreNormLast[l + 1]), $"{family} block {l}: {norms[l][^1]} vs reference {expected.ResidPreNormLast[l + 1]}");
    }

    [Theory]
    [InlineData("llama3")]
    [InlineData("qwen2")]
    [InlineData("qwen3")]
    [InlineData("qwen2moe")]
    [InlineData("olmoe")]
    [InlineData("gemma2")]
    [InlineData("gemma3")]
    [InlineData("phi3")]
    public void Attention_ReportsEveryLayerAndHead(string family)
    {
        ExpectedCase expected = ExpectedOutputs.Load(family + "-tiny.f32").Single(c => c.Name == "kafka");
        using JsonDocument doc = RunJson("attention", "--model", Arch(family), "--tokens", string.Join(',', expected.Tokens), "--json");
        int rows = doc.RootElement.GetProperty("last_query").GetArrayLength();
        Assert.Equal(expected.AttnLastQuery.Sum(layer => layer.Length), rows);
    }

    [Theory]
    [InlineData("llama3")]
    [InlineData("qwen2")]
    [InlineData("qwen3")]
    [InlineData("qwen2moe")]
    [InlineData("olmoe")]
    [InlineData("gemma2")]
    [InlineData("gemma3")]
    [InlineData("phi3")]
    public void Drift_OneRowPerTurn_SharesAreFractions(string family)
    {
        // Two synthetic exchanges fit every arch fixture's context (three do not fit all of them).
        using JsonDocument doc = RunJson("drift", "--model", Arch(family), "--system", "You are a pirate. Answer briefly.", "--synthetic", "2", "--json");
        int blocks = ExpectedOutputs.Load(family + "-tiny.f32")[0].ResidPreNormLast.Length;
        Assert.Equal(JsonValueKind.Null, doc.RootElement.GetProperty("context_full_at_turn").ValueKind);
        JsonElement[] turns = doc.RootElement.GetProperty("turns").EnumerateArray().ToArray();
        Assert.Equal(2, turns.Length);
        int previousContext = 0;
        for (int i = 0; i < turns.Length; i++)
        {
            JsonElement t = turns[i];
            Assert.Equal(i + 1, t.GetProperty("turn").GetInt32());
            int context = t.GetProperty("context_tokens").GetInt32(), system = t.GetProperty("system_tokens").GetInt32();
            Assert.True(context > previousContext && system > 0 && system < context, $"{family} turn {i + 1}: context {context}, system {system}");
            previousContext = context;
            double[] perLayer = t.GetProperty("system_share_per_layer").EnumerateArray().Select(e => e.GetDouble()).ToArray();
            Assert.Equal(blocks, perLayer.Length);
            foreach (double share in perLayer.Append(t.GetProperty("system_share").GetDouble()).Append(t.GetProperty("sink_share").GetDouble()))
                Assert.True(share is >= 0 and <= 1, $"{family} turn {i + 1}: share {share}");
            // The overall share is the mean over layers of the per-layer shares.
            Assert.Equal(perLayer.Average(), t.GetProperty("system_share").GetDouble(), 1e-6);
            double kl = t.GetProperty("kl_without_system").GetDouble();
            Assert.True(double.IsFinite(kl) && kl >= 0, $"{family} turn {i + 1}: KL {kl}");
        }
        // A random tiny model still attends to a system prompt at the start of the context.
        Assert.True(turns[0].GetProperty("system_share").GetDouble() > 0.01, $"{family}: share {turns[0].GetProperty("system_share").GetDouble()}");
    }

    [Theory]
    [InlineData("llama3")]
    [InlineData("qwen2")]
    [InlineData("qwen3")]
    [InlineData("qwen2moe")]
    [InlineData("olmoe")]
    [InlineData("gemma2")]
    [InlineData("gemma3")]
    [InlineData("phi3")]
    public void Steer_LargeCoefficientChangesTheText_ZeroLeavesItAlone(string family)
    {
        string[] Args(string coeff) => ["steer", "--model", Arch(family), "--prompt", "Once upon a time", "--add", " wedding", "--sub", " ",
            "--layer", "1", "--coeff", coeff, "--runs", "2", "-n", "8", "--temperature", "0", "--json"];
        using JsonDocument strong = RunJson(Args("20"));
        Assert.Equal(1, strong.RootElement.GetProperty("layer").GetInt32());
        double[] norms = strong.RootElement.GetProperty("vector_row_norms").EnumerateArray().Select(e => e.GetDouble()).ToArray();
        Assert.Equal(strong.RootElement.GetProperty("vector_length").GetInt32(), norms.Length);
        Assert.All(norms, v => Assert.True(double.IsFinite(v) && v >= 0, $"row norm {v}"));
        Assert.Contains(norms, v => v > 0);
        JsonElement[] runs = strong.RootElement.GetProperty("runs").EnumerateArray().ToArray();
        Assert.Equal(2, runs.Length);
        foreach (JsonElement run in runs)
            Assert.NotEqual(run.GetProperty("unsteered").GetString(), run.GetProperty("steered").GetString());
        // The control: with a zero coefficient the hook adds nothing, so both sides are the same greedy text.
        using JsonDocument none = RunJson(Args("0"));
        foreach (JsonElement run in none.RootElement.GetProperty("runs").EnumerateArray())
            Assert.Equal(run.GetProperty("unsteered").GetString(), run.GetProperty("steered").GetString());
        Assert.Equal(runs[0].GetProperty("unsteered").GetString(), none.RootElement.GetProperty("runs")[0].GetProperty("unsteered").GetString());
    }

    [Theory]
    [InlineData("llama3")]
    [InlineData("qwen2")]
    [InlineData("qwen3")]
    [InlineData("qwen2moe")]
    [InlineData("olmoe")]
    [InlineData("gemma2")]
    [InlineData("gemma3")]
    [InlineData("phi3")]
    public void Map_OnePointPerTokenOfEveryPrompt_CenteredAndFinite(string family)
    {
        string[] prompts = ["Once upon a time", "The cat sat on the mat", "def main(): return 0"];
        string file = _temp.File("prompts.txt");
        File.WriteAllLines(file, prompts);
        using JsonDocument doc = RunJson("map", "--model", Arch(family), "--prompts", file, "--layer", "1", "--json");
        JsonElement[] points = doc.RootElement.GetProperty("points").EnumerateArray().ToArray();
        // The tokens the map should hold, from the same tokenizer in this process.
        using LanguageModel model = ModelLoader.Load(Arch(family));
        int[][] ids = prompts.Select(p => model.Tokenizer.Encode(p, model.Tokenizer.Vocabulary.AddBos).Ids).ToArray();
        Assert.Equal(ids.Sum(i => i.Length), points.Length);
        Assert.Equal(Enumerable.Range(0, prompts.Length), points.Select(p => p.GetProperty("prompt").GetInt32()).Distinct().Order());
        for (int p = 0; p < prompts.Length; p++)
            Assert.Equal(ids[p], points.Where(q => q.GetProperty("prompt").GetInt32() == p).OrderBy(q => q.GetProperty("position").GetInt32()).Select(q => q.GetProperty("id").GetInt32()));
        double[] x = points.Select(p => p.GetProperty("x").GetDouble()).ToArray(), y = points.Select(p => p.GetProperty("y").GetDouble()).ToArray();
        Assert.All(x.Concat(y), v => Assert.True(double.IsFinite(v), $"{family}: coordinate {v}"));
        // PCA of centered vectors: both coordinates average to zero, and the first component spreads the points at least as far as the second.
        double spread = Math.Sqrt(x.Sum(v => v * v) / x.Length);
        Assert.True(spread > 0, $"{family}: all points coincide");
        Assert.True(Math.Abs(x.Average()) < 1e-3 * spread && Math.Abs(y.Average()) < 1e-3 * spread, $"{family}: mean ({x.Average()}, {y.Average()}), spread {spread}");
        Assert.True(x.Sum(v => v * v) >= 0.99 * y.Sum(v => v * v), $"{family}: PC 1 variance {x.Sum(v => v * v)} < PC 2 {y.Sum(v => v * v)}");
    }

    [Theory]
    [InlineData("qwen2moe", 2)]
    [InlineData("olmoe", 3)]
    public void Routing_ChoosesTheMostProbableExpertsWithoutRenormalizing(string family, int used)
    {
        using JsonDocument doc = RunJson("routing", "--model", Arch(family), "--prompt", "Once upon a time, a cat sat", "--json");
        int tokens = doc.RootElement.GetProperty("tokens").GetArrayLength();
        JsonElement[] entries = doc.RootElement.GetProperty("entries").EnumerateArray().ToArray();
        Assert.Equal(tokens * 2, entries.Length);
        foreach (JsonElement entry in entries)
        {
            double[] probs = entry.GetProperty("router_probs").EnumerateArray().Select(e => e.GetDouble()).ToArray();
            int[] experts = entry.GetProperty("experts").EnumerateArray().Select(e => e.GetInt32()).ToArray();
            double[] weights = entry.GetProperty("weights").EnumerateArray().Select(e => e.GetDouble()).ToArray();
            Assert.Equal(8, probs.Length);
            Assert.Equal(used, experts.Length);
            // The top k by probability, best first, each weighted by its own probability (OLMoE and Qwen2-MoE do not renormalize).
            Assert.Equal(probs.Select((p, i) => (p, i)).OrderByDescending(x => x.p).Take(used).Select(x => x.i), experts);
            for (int j = 0; j < used; j++) Assert.Equal(probs[experts[j]], weights[j], 1e-6);
            Assert.True(weights.Sum() < 1 - 1e-3, "weights were renormalized");
        }
    }
}
