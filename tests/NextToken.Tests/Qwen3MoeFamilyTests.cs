using System.Text.Json;
using NextToken.Gguf;
using NextToken.Models;
using NextToken.Tensors;
using Xunit.Abstractions;

namespace NextToken.Tests;

/// <summary>
/// A <c>qwen3moe</c> GGUF made from <c>qwen3-tiny</c>: the same attention and norms, a seeded random router
/// over <see cref="Experts"/> experts that are all copies of the dense FFN, top <see cref="Used"/>. With the
/// top-k weights renormalized (llama.cpp does so for qwen3moe) the mixture equals the dense FFN, so the model
/// must reproduce qwen3-tiny's expectations; without renormalization it would be scaled by the top-k mass.
/// </summary>
public sealed class Qwen3MoeFile : IDisposable
{
    public const int Experts = 4, Used = 2;
    private readonly TempDir _temp = new();

    public string Path { get; }
    /// <summary>The same file with no experts at all (the dense FFN under a qwen3moe architecture).</summary>
    public string DensePath { get; }

    public Qwen3MoeFile()
    {
        Path = _temp.File("qwen3moe-tiny.f32.gguf");
        DensePath = _temp.File("qwen3moe-dense.f32.gguf");
        Write(Path, experts: true);
        Write(DensePath, experts: false);
    }

    private static unsafe void Write(string path, bool experts)
    {
        using GgufFile source = GgufFile.Open(ExpectedOutputs.ModelPath("qwen3-tiny.f32"));
        var writer = new GgufWriter();
        foreach (string key in source.MetadataKeys.Where(k => k != "general.alignment"))
        {
            string name = key.StartsWith("qwen3.", StringComparison.Ordinal) ? "qwen3moe." + key["qwen3.".Length..] : key;
            writer.Add(name, key == "general.architecture" ? GgufValue.Of("qwen3moe") : source.Metadata[key]);
        }
        long nFf = source.GetInteger("qwen3.feed_forward_length"), nEmbd = source.GetInteger("qwen3.embedding_length");
        if (experts)
        {
            writer.Add("qwen3moe.expert_count", GgufValue.Of((uint)Experts))
                .Add("qwen3moe.expert_used_count", GgufValue.Of((uint)Used))
                .Add("qwen3moe.expert_feed_forward_length", GgufValue.Of((uint)nFf));
        }
        foreach (GgufTensorInfo info in source.Tensors)
        {
            TensorData tensor = source.GetTensor(info.Name);
            byte[] bytes = new ReadOnlySpan<byte>(tensor.Data, (int)tensor.ByteLength).ToArray();
            string[] parts = info.Name.Split('.');
            string? stacked = parts[0] == "blk" && experts ? parts[2] switch { "ffn_gate" => "ffn_gate_exps", "ffn_up" => "ffn_up_exps", "ffn_down" => "ffn_down_exps", _ => null } : null;
            if (stacked is null)
            {
                writer.AddTensor(info.Name, info.Type, info.Dims, s => s.Write(bytes));
                continue;
            }
            // [in, out] → [in, out, experts]: the dense matrix repeated once per expert.
            writer.AddTensor($"blk.{parts[1]}.{stacked}.weight", info.Type, [.. info.Dims, Experts], s =>
            {
                for (int e = 0; e < Experts; e++) s.Write(bytes);
            });
            if (parts[2] == "ffn_gate")
            {
                // Router rows of any values (seeded): logits of a few units, so the top 2 vary by token and layer.
                var random = new Random(1000 + int.Parse(parts[1], System.Globalization.CultureInfo.InvariantCulture));
                float[] router = new float[nEmbd * Experts];
                for (int i = 0; i < router.Length; i++) router[i] = (float)(random.NextDouble() * 2 - 1);
                writer.AddTensor($"blk.{parts[1]}.ffn_gate_inp.weight", [nEmbd, Experts], router);
            }
        }
        writer.Write(path);
    }

    public void Dispose() => _temp.Dispose();
}

public sealed class Qwen3MoeFamilyTests(Qwen3MoeFile file, ITestOutputHelper output) : IClassFixture<Qwen3MoeFile>
{
    public static TheoryData<string, string> Cases => ExpectedOutputs.Cases("qwen3-tiny.f32");

    [Theory]
    [MemberData(nameof(Cases))]
    public void IdenticalExperts_ReproduceQwen3TinysLastRowAndGreedy(string stem, string caseName)
    {
        ExpectedCase expected = ExpectedOutputs.Load(stem).Single(c => c.Name == caseName);
        using LanguageModel model = ModelLoader.Load(file.Path);
        Assert.Equal("qwen3moe (mixture of experts)", model.Architecture);
        var logits = new float[model.VocabSize];
        ModelState state = model.CreateState();
        model.Forward(state, expected.Tokens, logits);
        float[] last = expected.ReadLastLogits();
        Assert.Equal(last.Length, logits.Length);
        double maxDiff = 0;
        for (int i = 0; i < logits.Length; i++)
        {
            maxDiff = Math.Max(maxDiff, Math.Abs(logits[i] - last[i]));
            Assert.True(Tolerance.Within(logits[i], last[i]), $"{caseName}: token {i}: logit {logits[i]}, expected {last[i]}");
        }
        var greedy = new List<int>();
        for (int i = 0; i < expected.GreedyNext12.Length; i++)
        {
            int next = System.Numerics.Tensors.TensorPrimitives.IndexOfMax(logits);
            greedy.Add(next);
            if (i + 1 < expected.GreedyNext12.Length) model.Forward(state, [next], logits);
        }
        Assert.Equal(expected.GreedyNext12, greedy);
        output.WriteLine($"qwen3moe ({Qwen3MoeFile.Experts} copies of qwen3-tiny's FFN, top {Qwen3MoeFile.Used})/{caseName}: last row max |Δ| {maxDiff:E3}, greedy 12/12 identical");
    }

    /// <summary>
    /// The router recomputed here from hook_resid_mid (RMSNorm × ffn_norm, then the router rows, then a softmax in
    /// double): hook_router_probs equals it, the chosen experts are its top 2 best first, and their weights are
    /// those probabilities divided by their sum, which is well below 1, so renormalization is what the first test checks.
    /// </summary>
    [Fact]
    public unsafe void Routing_IsTheTop2OfTheRouterSoftmax_RenormalizedToOne()
    {
        ExpectedCase expected = ExpectedOutputs.Load("qwen3-tiny.f32").MaxBy(c => c.Tokens.Length)!;
        using var model = (LlamaModel)ModelLoader.Load(file.Path);
        using GgufFile gguf = GgufFile.Open(file.Path);
        int d = model.Config.NEmbd, e = Qwen3MoeFile.Experts, k = Qwen3MoeFile.Used, n = expected.Tokens.Length;
        var mid = new Dictionary<int, float[]>();
        var probs = new Dictionary<int, float[]>();
        var indices = new Dictionary<int, float[]>();
        var weights = new Dictionary<int, float[]>();
        var registrations = new List<IDisposable>();
        for (int l = 0; l < model.LayerCount; l++)
        {
            int layer = l;
            registrations.Add(model.Hooks.Add(HookNames.ResidMid(l), a => mid[layer] = a.Data.ToArray()));
            registrations.Add(model.Hooks.Add(HookNames.RouterProbs(l), a => probs[layer] = a.Data.ToArray()));
            registrations.Add(model.Hooks.Add(HookNames.ExpertIndices(l), a => indices[layer] = a.Data.ToArray()));
            registrations.Add(model.Hooks.Add(HookNames.ExpertWeights(l), a => weights[layer] = a.Data.ToArray()));
        }
        model.Forward(model.CreateState(), expected.Tokens, new float[model.VocabSize]);
        registrations.ForEach(r => r.Dispose());

        double maxProbDiff = 0, maxWeightDiff = 0, minMass = 1, maxMass = 0;
        var chosenSets = new HashSet<(int, int)>();
        for (int l = 0; l < model.LayerCount; l++)
        {
            TensorData normTensor = gguf.GetTensor($"blk.{l}.ffn_norm.weight"), routerTensor = gguf.GetTensor($"blk.{l}.ffn_gate_inp.weight");
            float[] norm = new ReadOnlySpan<float>(normTensor.Data, d).ToArray(), router = new ReadOnlySpan<float>(routerTensor.Data, d * e).ToArray();
            Assert.Equal(n * d, mid[l].Length);
            Assert.Equal(n * e, probs[l].Length);
            for (int t = 0; t < n; t++)
            {
                ReadOnlySpan<float> x = mid[l].AsSpan(t * d, d);
                double meanSquare = 0;
                foreach (float v in x) meanSquare += (double)v * v;
                double scale = 1 / Math.Sqrt(meanSquare / d + model.Config.RmsNormEps);
                var p = new double[e];
                for (int j = 0; j < e; j++)
                    for (int i = 0; i < d; i++) p[j] += router[j * d + i] * (x[i] * scale * norm[i]);
                double max = p.Max(), sum = 0;
                for (int j = 0; j < e; j++) sum += p[j] = Math.Exp(p[j] - max);
                for (int j = 0; j < e; j++)
                {
                    p[j] /= sum;
                    double diff = Math.Abs(probs[l][t * e + j] - p[j]);
                    maxProbDiff = Math.Max(maxProbDiff, diff);
                    Assert.True(diff <= 1e-5, $"layer {l} position {t} expert {j}: hook probability {probs[l][t * e + j]}, softmax of the router logits {p[j]}");
                }
                int[] top = Enumerable.Range(0, e).OrderByDescending(j => p[j]).ThenBy(j => j).Take(k).ToArray();
                double mass = top.Sum(j => p[j]), weightSum = 0;
                minMass = Math.Min(minMass, mass);
                maxMass = Math.Max(maxMass, mass);
                for (int j = 0; j < k; j++)
                {
                    Assert.Equal(top[j], (int)indices[l][t * k + j]);
                    float w = weights[l][t * k + j];
                    weightSum += w;
                    double diff = Math.Abs(w - p[top[j]] / mass);
                    maxWeightDiff = Math.Max(maxWeightDiff, diff);
                    Assert.True(diff <= 1e-5, $"layer {l} position {t} expert {top[j]}: weight {w}, expected {p[top[j]] / mass}");
                }
                Assert.True(Math.Abs(weightSum - 1) <= 1e-6, $"layer {l} position {t}: weights sum to {weightSum}");
                chosenSets.Add((Math.Min(top[0], top[1]), Math.Max(top[0], top[1])));
            }
        }
        output.WriteLine($"{n} positions × {model.LayerCount} layers: max |Δp| {maxProbDiff:E3}, max |Δweight| {maxWeightDiff:E3}, "
            + $"top-{k} mass before renormalizing {minMass:F3}–{maxMass:F3}, {chosenSets.Count} distinct expert pairs");
        // The test would not tell renormalized from raw weights if the top 2 took nearly all the mass, nor test routing if one pair always won.
        Assert.True(minMass < 0.9, $"top-{k} mass never below 0.9 (min {minMass})");
        Assert.True(chosenSets.Count >= 3, $"only {chosenSets.Count} distinct expert pairs chosen");
    }

    [Theory]
    [InlineData("family", "qwen3moe")]
    [InlineData("attention", "RMSNorm of each head's q and k")]
    [InlineData("rope", "NeoX halves")]
    [InlineData("feed-forward", "4 experts of 160 (SwiGLU, silu(gate)·up), softmax router, top 2 renormalized")]
    public void Info_ShowsTheFamilysSettings(string setting, string expected)
    {
        var (code, stdout, stderr) = CliTests.RunWith(null, null, "info", "--model", file.Path, "--json");
        Assert.True(code == 0, stderr);
        using JsonDocument doc = JsonDocument.Parse(stdout);
        Assert.Contains(expected, doc.RootElement.GetProperty("family").GetProperty(setting).GetString());
    }

    [Fact]
    public void RoutingCommand_ShowsTheTop2RenormalizedOnEveryLayer()
    {
        var (code, stdout, stderr) = CliTests.RunWith(null, null, "routing", "--model", file.Path, "--prompt", "Once upon a time, a cat sat", "--json");
        Assert.True(code == 0, stderr);
        using JsonDocument doc = JsonDocument.Parse(stdout);
        int tokens = doc.RootElement.GetProperty("tokens").GetArrayLength();
        JsonElement[] entries = doc.RootElement.GetProperty("entries").EnumerateArray().ToArray();
        Assert.Equal(tokens * 3, entries.Length);
        double minMass = 1;
        foreach (JsonElement entry in entries)
        {
            double[] probs = entry.GetProperty("router_probs").EnumerateArray().Select(e => e.GetDouble()).ToArray();
            int[] experts = entry.GetProperty("experts").EnumerateArray().Select(e => e.GetInt32()).ToArray();
            double[] weights = entry.GetProperty("weights").EnumerateArray().Select(e => e.GetDouble()).ToArray();
            Assert.Equal(Qwen3MoeFile.Experts, probs.Length);
            Assert.Equal(probs.Select((p, i) => (p, i)).OrderByDescending(x => x.p).Take(Qwen3MoeFile.Used).Select(x => x.i), experts);
            double mass = experts.Sum(j => probs[j]);
            minMass = Math.Min(minMass, mass);
            for (int j = 0; j < experts.Length; j++) Assert.Equal(probs[experts[j]] / mass, weights[j], 1e-5);
            Assert.Equal(1, weights.Sum(), 1e-5);
        }
        output.WriteLine($"{entries.Length} routing entries, top-2 mass before renormalizing down to {minMass:F3}");
    }

    [Fact]
    public void FileWithoutExperts_IsAnErrorNamingTheKey()
    {
        var error = Assert.ThrowsAny<NextTokenException>(() => ModelLoader.Load(file.DensePath));
        output.WriteLine(error.Message);
        Assert.Contains("'qwen3moe.expert_count' is missing; a qwen3moe file has experts", error.Message);
    }
}
