using System.Text.Json;

namespace NextToken.Tests;

/// <summary>
/// The CLI on every model family of <c>models/arch/</c>: <c>info</c> shows what sets the family apart,
/// and the inspection commands (logit lens, attention, routing on the mixtures of experts) run on it.
/// </summary>
public class FamilyCliTests
{
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
