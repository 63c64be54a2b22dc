using System.Numerics.Tensors;
using NextToken.Chat;
using NextToken.Inspection;
using NextToken.Models;
using Xunit.Abstractions;

namespace NextToken.Tests;

public class InspectionTests(ITestOutputHelper output)
{
    public static TheoryData<string, string> Cases => ExpectedOutputs.Cases("gpt2-tiny.f32", "llama-tiny.f32");

    [Theory]
    [MemberData(nameof(Cases))]
    public void LogitLens_LastLayer_EqualsTheModelsLogits(string stem, string caseName)
    {
        ExpectedCase expected = ExpectedOutputs.Load(stem).Single(c => c.Name == caseName);
        using LanguageModel model = ModelLoader.Load(ExpectedOutputs.ModelPath(stem));
        LensLayer[] lens = LogitLens.Run(model, expected.Tokens);
        Assert.Equal(model.LayerCount + 1, lens.Length);
        float[] reference = expected.ReadLastLogits();
        var logits = new float[model.VocabSize];
        model.Forward(model.CreateState(), expected.Tokens, logits);
        double maxToForward = 0;
        for (int i = 0; i < logits.Length; i++)
        {
            maxToForward = Math.Max(maxToForward, Math.Abs(lens[^1].Logits[i] - logits[i]));
            Assert.True(Tolerance.Within(lens[^1].Logits[i], reference[i]));
        }
        Assert.True(maxToForward <= 1e-5, $"lens differs from the forward pass by {maxToForward}");
        Assert.Equal(0, lens[^1].KlToFinal, 9);
        Assert.Equal(1, lens[^1].RankOfFinalTop);
        output.WriteLine($"{stem}/{caseName}: final lens vs forward max |Δ| {maxToForward:E2}; KL per stage [{string.Join(", ", lens.Select(l => l.KlToFinal.ToString("F3")))}]");
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void LensReport_ResidualNorms_EqualNormsOfTheCachedResidPost(string stem, string caseName)
    {
        ExpectedCase expected = ExpectedOutputs.Load(stem).Single(c => c.Name == caseName);
        using LanguageModel model = ModelLoader.Load(ExpectedOutputs.ModelPath(stem));
        LensReport report = Reports.Lens(model, expected.Tokens, -1, 3);
        var (_, cache) = model.RunWithCache(expected.Tokens, name => name.EndsWith("hook_resid_post", StringComparison.Ordinal));
        int n = expected.Tokens.Length;
        Assert.Equal(model.LayerCount, report.ResidualNorms.Length);
        double maxDiff = 0, maxToReference = 0;
        for (int l = 0; l < model.LayerCount; l++)
        {
            Assert.Equal(n, report.ResidualNorms[l].Length);
            CachedActivation resid = cache[HookNames.ResidPost(l)];
            for (int p = 0; p < n; p++)
            {
                // Independent of the kernel: a double-precision sum of squares.
                double sum = 0;
                foreach (float v in resid.Row(p)) sum += (double)v * v;
                maxDiff = Math.Max(maxDiff, Math.Abs(report.ResidualNorms[l][p] - Math.Sqrt(sum)));
            }
            // A block's output is the next block's input, whose norm the reference recorded.
            if (l + 1 < model.LayerCount)
            {
                Assert.True(Tolerance.Within(report.ResidualNorms[l][n - 1], expected.ResidPreNormLast[l + 1]));
                maxToReference = Math.Max(maxToReference, Math.Abs(report.ResidualNorms[l][n - 1] - expected.ResidPreNormLast[l + 1]));
            }
        }
        Assert.True(maxDiff <= 1e-4, $"residual norms differ from RunWithCache by {maxDiff}");
        output.WriteLine($"{stem}/{caseName}: residual norms vs RunWithCache max |Δ| {maxDiff:E2}, last position vs reference max |Δ| {maxToReference:E2}; last position [{string.Join(", ", report.ResidualNorms.Select(r => r[^1].ToString("F2")))}]");
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void RunWithCache_PatternsAndResidualNorms_MatchReference(string stem, string caseName)
    {
        ExpectedCase expected = ExpectedOutputs.Load(stem).Single(c => c.Name == caseName);
        using LanguageModel model = ModelLoader.Load(ExpectedOutputs.ModelPath(stem));
        var (_, cache) = model.RunWithCache(expected.Tokens);
        int n = expected.Tokens.Length;
        for (int l = 0; l < model.LayerCount; l++)
        {
            CachedActivation resid = cache[$"blocks.{l}.hook_resid_pre"];
            Assert.True(Tolerance.Within(TensorPrimitives.Norm(resid.Row(n - 1)), expected.ResidPreNormLast[l]));
            CachedActivation pattern = cache[$"blocks.{l}.attn.hook_pattern"];
            for (int h = 0; h < expected.AttnLastQuery[l].Length; h++)
                for (int k = 0; k < n; k++)
                    Assert.True(Tolerance.Within(pattern.Data[(h * n + n - 1) * n + k], expected.AttnLastQuery[l][h][k]));
        }
    }

    [Fact]
    public void Compare_MetricsMatchIndependentComputation_AndSelfKlIsZero()
    {
        using LanguageModel model = ModelLoader.Load(Fixtures.Model("gpt2-tiny.f32.gguf"));
        float[] a = ExpectedOutputs.Load("gpt2-tiny.f32")[0].ReadLastLogits(), b = ExpectedOutputs.Load("gpt2-tiny.f32")[1].ReadLastLogits();
        var result = DistributionComparison.Compare(a, b, 10);
        double[] p = Softmax(a), q = Softmax(b);
        double kl = 0, klBack = 0, tv = 0, js = 0;
        for (int i = 0; i < p.Length; i++)
        {
            kl += p[i] * Math.Log(p[i] / q[i]);
            klBack += q[i] * Math.Log(q[i] / p[i]);
            tv += Math.Abs(p[i] - q[i]) / 2;
            double m = (p[i] + q[i]) / 2;
            js += (p[i] * Math.Log(p[i] / m) + q[i] * Math.Log(q[i] / m)) / 2;
        }
        Assert.Equal(kl, result.KlAB, 7);
        Assert.Equal(klBack, result.KlBA, 7);
        Assert.Equal(tv, result.TotalVariation, 7);
        Assert.Equal(js, result.JensenShannon, 7);
        int[] orderB = Enumerable.Range(0, q.Length).OrderByDescending(i => q[i]).ThenBy(i => i).ToArray();
        int[] orderA = Enumerable.Range(0, p.Length).OrderByDescending(i => p[i]).ThenBy(i => i).ToArray();
        for (int r = 0; r < 10; r++)
        {
            ComparedToken t = result.TopOfB[r];
            Assert.Equal(orderB[r], t.Id);
            Assert.Equal(r + 1, t.RankB);
            Assert.Equal(Array.IndexOf(orderA, t.Id) + 1, t.RankA);
        }
        var self = DistributionComparison.Compare(a, a, 10);
        Assert.Equal(0, self.KlAB, 12);
        Assert.Equal(10, self.TopKOverlap);
        Assert.Empty(self.NewInTopK);
    }

    [Fact]
    public void Steering_CoefficientZero_ReproducesUnsteeredLogitsExactly()
    {
        using LanguageModel model = ModelLoader.Load(Fixtures.Model("gpt2-tiny.f32.gguf"));
        int[] prompt = model.Tokenizer.Encode("I went up to my friend and said").Ids;
        var vector = SteeringVector.FromPrompts(model, model.Tokenizer.Encode(" wedding").Ids, model.Tokenizer.Encode(" ").Ids, 1, model.Tokenizer.Encode(" ").Ids[0]);
        var plain = new float[model.VocabSize];
        var zero = new float[model.VocabSize];
        var four = new float[model.VocabSize];
        model.Forward(model.CreateState(), prompt, plain);
        using (vector.Apply(model, 0)) model.Forward(model.CreateState(), prompt, zero);
        using (vector.Apply(model, 4)) model.Forward(model.CreateState(), prompt, four);
        Assert.Equal(plain, zero);
        Assert.NotEqual(plain, four);
    }

    [Fact]
    public void Steering_BosPositionOfTheVector_IsZero()
    {
        using LanguageModel model = ModelLoader.Load(Fixtures.Model("llama-tiny.f32.gguf"));
        Assert.True(model.Tokenizer.Vocabulary.AddBos);
        int[] add = model.Tokenizer.Encode(" wedding", addBos: true).Ids, sub = model.Tokenizer.Encode(" ", addBos: true).Ids;
        var vector = SteeringVector.FromPrompts(model, add, sub, 1, model.Tokenizer.Encode(" ").Ids[^1]);
        Assert.Equal(0, vector.RowNorms[0]);
        Assert.Contains(vector.RowNorms[1..], n => n > 0);
    }

    [Fact]
    public void Steering_AtLayerL_ChangesNothingBeforeLayerL()
    {
        using LanguageModel model = ModelLoader.Load(Fixtures.Model("gpt2-tiny.f32.gguf"));
        int[] prompt = model.Tokenizer.Encode("I went up to my friend and said").Ids;
        var vector = SteeringVector.FromPrompts(model, model.Tokenizer.Encode(" wedding").Ids, model.Tokenizer.Encode(" ").Ids, 1, model.Tokenizer.Encode(" ").Ids[0]);
        var (_, plain) = model.RunWithCache(prompt);
        ActivationCache steered;
        using (vector.Apply(model, 4)) (_, steered) = model.RunWithCache(prompt);
        Assert.Equal(plain["blocks.0.hook_resid_pre"].Data, steered["blocks.0.hook_resid_pre"].Data);
        Assert.Equal(plain["blocks.0.hook_resid_post"].Data, steered["blocks.0.hook_resid_post"].Data);
        Assert.NotEqual(plain["blocks.1.hook_resid_pre"].Data, steered["blocks.1.hook_resid_pre"].Data);
    }

    [Fact]
    public void RoutingLedger_EqualsFixtureRouting()
    {
        using var doc = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Fixtures.Expected("moe-tiny.f32.json")));
        using LanguageModel model = ModelLoader.Load(Fixtures.Model("moe-tiny.f32.gguf"));
        foreach (var c in doc.RootElement.GetProperty("cases").EnumerateArray())
        {
            int[] tokens = c.GetProperty("tokens").EnumerateArray().Select(e => e.GetInt32()).ToArray();
            RoutingLedger ledger = RoutingLedger.Record(model, tokens);
            foreach (var routing in c.GetProperty("routing").EnumerateArray())
            {
                int layer = routing.GetProperty("layer").GetInt32();
                var experts = routing.GetProperty("experts").EnumerateArray().ToArray();
                var weights = routing.GetProperty("weights").EnumerateArray().ToArray();
                for (int t = 0; t < tokens.Length; t++)
                {
                    RoutingEntry entry = ledger.Entries.Single(e => e.Layer == layer && e.Position == t);
                    Assert.Equal(experts[t].EnumerateArray().Select(e => e.GetInt32()), entry.Experts);
                    Assert.All(weights[t].EnumerateArray().Select((w, j) => Math.Abs(w.GetDouble() - entry.Weights[j])), d => Assert.True(d <= 1e-4));
                    Assert.Equal(1, entry.RouterProbabilities.Sum(), 4);
                }
            }
            var (count, _) = ledger.Load();
            for (int l = 0; l < ledger.Layers; l++)
                Assert.Equal(tokens.Length * 2, Enumerable.Range(0, ledger.ExpertCount).Sum(e => count[l, e]));
        }
    }

    [Fact]
    public void Drift_OneTurn_EqualsAHandComputationFromTheAttentionHooks()
    {
        using LanguageModel model = ModelLoader.Load(Fixtures.Model("gpt2-tiny.f32.gguf"));
        ChatTemplate template = ChatTemplate.FromName("plain");
        const string system = "You are a pirate.";
        List<ChatMessage> conversation = DriftMeter.SyntheticConversation(1);
        DriftTurn turn = new DriftMeter(model, template).Measure(system, conversation).Single();

        // By hand: render, find the system prompt's tokens, average its attention share over heads, layers and every query.
        string prompt = template.Render([new ChatMessage("system", system), conversation[0]], true);
        var encoded = model.Tokenizer.Encode(prompt, parseSpecial: true);
        int start = encoded.Offsets.Select((o, i) => (o, i)).First(x => x.o.End > 0).i;
        int end = encoded.Offsets.Select((o, i) => (o, i)).Last(x => x.o.Start < system.Length).i + 1;
        var (_, cache) = model.RunWithCache(encoded.Ids);
        int n = encoded.Count;
        double total = 0;
        for (int l = 0; l < model.LayerCount; l++)
        {
            CachedActivation pattern = cache[$"blocks.{l}.attn.hook_pattern"];
            int heads = pattern.Shape[0];
            double layerSum = 0;
            for (int h = 0; h < heads; h++)
                for (int q = 0; q < n; q++)
                    for (int k = Math.Max(start, 1); k < end; k++)
                        layerSum += pattern.Data[(h * n + q) * n + k];
            total += layerSum / (heads * n);
        }
        Assert.Equal(n, turn.ContextTokens);
        Assert.Equal(n - end, turn.Distance);
        Assert.Equal(total / model.LayerCount, turn.SystemShare, 6);
        Assert.InRange(turn.KlWithoutSystem, 1e-6, 100);
    }

    [Fact]
    public void Drift_Reanchor_ShortensTheDistanceToTheSystemPrompt()
    {
        using LanguageModel model = ModelLoader.Load(Fixtures.Model("gpt2-tiny.f32.gguf"));
        var meter = new DriftMeter(model, ChatTemplate.FromName("plain"));
        var conversation = DriftMeter.SyntheticConversation(2);
        DriftTurn[] plain = meter.Measure("Be direct.", conversation).ToArray();
        DriftTurn[] anchored = meter.Measure("Be direct.", conversation, reanchorEvery: 2).ToArray();
        Assert.Equal(plain[0], anchored[0] with { SystemSharePerLayer = plain[0].SystemSharePerLayer });
        Assert.True(anchored[1].Distance < plain[1].Distance, $"re-anchored distance {anchored[1].Distance} ≥ plain {plain[1].Distance}");
        Assert.True(plain[1].Distance > plain[0].Distance);
    }

    [Fact]
    public void ActivationMap_PrincipalComponents_AreOrthonormalAndCaptureVariance()
    {
        using LanguageModel model = ModelLoader.Load(Fixtures.Model("gpt2-tiny.f32.gguf"));
        int[][] prompts = [model.Tokenizer.Encode("int main() { return 0; }").Ids, model.Tokenizer.Encode("The party of the first part agrees").Ids];
        var (vectors, origins) = ActivationMap.Collect(model, prompts, 2);
        Assert.Equal(prompts.Sum(p => p.Length), vectors.Count);
        float[][] pcs = ActivationMap.PrincipalComponents(vectors);
        Assert.Equal(1, TensorPrimitives.Norm(pcs[0]), 4);
        Assert.Equal(0, TensorPrimitives.Dot(pcs[0], pcs[1]), 3);
        var points = ActivationMap.Project(vectors, origins, pcs[0], pcs[1]);
        double varianceX = points.Average(p => p.X * p.X), varianceY = points.Average(p => p.Y * p.Y);
        Assert.True(varianceX >= varianceY * 0.999, $"PC1 variance {varianceX} < PC2 variance {varianceY}");
    }

    private static double[] Softmax(float[] logits)
    {
        double max = logits.Max();
        double[] e = logits.Select(l => Math.Exp(l - max)).ToArray();
        double sum = e.Sum();
        return e.Select(x => x / sum).ToArray();
    }
}

public class TokenDistributionTests
{
    [Theory]
    [InlineData(50257, 1)]
    [InlineData(32000, 2)]
    [InlineData(7, 3)]
    public void Distribution_MatchesDoublePrecisionSoftmax_AndAFullSort(int vocab, int seed)
    {
        var random = new Random(seed);
        // Logits on a coarse grid so that ties occur, with a few clear leaders.
        float[] logits = Enumerable.Range(0, vocab).Select(_ => MathF.Round((float)(random.NextDouble() * 20 - 10), 1)).ToArray();
        for (int i = 0; i < Math.Min(3, vocab); i++) logits[random.Next(vocab)] = 14 + i;
        var distribution = new TokenDistribution(logits);

        double max = logits.Max(), sum = logits.Sum(x => Math.Exp(x - max));
        double logZ = max + Math.Log(sum);
        double entropy = -logits.Sum(x => Math.Exp(x - logZ) * (x - logZ));
        Assert.Equal(logZ, distribution.LogSumExp, 1e-5);
        Assert.Equal(entropy, distribution.Entropy, 1e-5);
        Assert.Equal(logZ, NextToken.Kernels.Ops.LogSumExp(logits), 1e-4 * Math.Abs(logZ));
        TokenDistribution view = TokenDistribution.Over(logits);
        Assert.Equal(distribution.LogSumExp, view.LogSumExp);
        Assert.Equal(distribution.Top(10), view.Top(10));

        int[] sorted = Enumerable.Range(0, vocab).OrderByDescending(i => logits[i]).ThenBy(i => i).ToArray();
        foreach (int k in new[] { 1, 10, 40, vocab })
        {
            RankedToken[] top = distribution.Top(k);
            Assert.Equal(sorted.Take(k), top.Select(t => t.Id));
            Assert.Equal(Enumerable.Range(1, Math.Min(k, vocab)), top.Select(t => t.Rank));
            Assert.Equal(Math.Exp(logits[sorted[0]] - logZ), top[0].Probability, 1e-6);
        }
        Assert.Equal(Array.IndexOf(sorted, 123 % vocab) + 1, distribution.RankOf(123 % vocab));
    }
}
