using NextToken.Generation;
using NextToken.Models;
using NextToken.Sampling;
using Xunit.Abstractions;

namespace NextToken.Tests;

/// <summary>Each sampler stage on fixed logits with a fixed seed, checked against its definition.</summary>
public class SamplingTests(ITestOutputHelper output)
{
    private static readonly float[] Logits = [2.0f, 1.5f, 1.0f, 0.2f, -0.5f, -1.0f, -3.0f, 0.9f];

    private static SamplingOptions Only(float temperature = 1, int topK = 0, float topP = 1, float minP = 0, float typicalP = 1) =>
        new() { Temperature = temperature, TopK = topK, TopP = topP, MinP = minP, TypicalP = typicalP };

    private static double[] Softmax(float[] logits, double temperature = 1)
    {
        double max = logits.Max();
        double[] e = logits.Select(l => Math.Exp((l - max) / temperature)).ToArray();
        double sum = e.Sum();
        return e.Select(x => x / sum).ToArray();
    }

    private static int[] Draw(SamplingOptions options, int draws, ulong seed = 12345)
    {
        var chain = new SamplerChain(Logits.Length, options, new Xoshiro256StarStar(seed));
        var counts = new int[Logits.Length];
        for (int i = 0; i < draws; i++) counts[chain.Sample(Logits)]++;
        return counts;
    }

    [Theory]
    [InlineData(1.0f)]
    [InlineData(0.7f)]
    [InlineData(1.8f)]
    public void Temperature_FrequenciesOver100kDraws_MatchSoftmaxOfScaledLogits(float temperature)
    {
        const int draws = 100_000;
        int[] counts = Draw(Only(temperature), draws);
        double[] expected = Softmax(Logits, temperature);
        double chiSquare = 0;
        for (int i = 0; i < counts.Length; i++)
            chiSquare += Math.Pow(counts[i] - draws * expected[i], 2) / (draws * expected[i]);
        const double critical = 24.322; // χ² with 7 degrees of freedom at p = 0.001
        output.WriteLine($"T={temperature}: χ² = {chiSquare:F2} (critical {critical})");
        Assert.True(chiSquare < critical, $"χ² = {chiSquare:F2} ≥ {critical}: frequencies do not follow softmax(logits/{temperature})");
    }

    [Fact]
    public void Temperature_Removed_WouldFailTheChiSquareTest()
    {
        // The same test run against T = 1 frequencies when T = 0.5 is configured must reject.
        int[] counts = Draw(Only(0.5f), 100_000);
        double[] wrong = Softmax(Logits, 1);
        double chiSquare = counts.Select((c, i) => Math.Pow(c - 100_000 * wrong[i], 2) / (100_000 * wrong[i])).Sum();
        Assert.True(chiSquare > 24.322);
    }

    [Fact]
    public void TopK_NeverYieldsATokenOutsideTheKBest()
    {
        int[] counts = Draw(Only(topK: 3), 20_000);
        int[] best = Logits.Select((l, i) => (l, i)).OrderByDescending(x => x.l).Take(3).Select(x => x.i).ToArray();
        for (int i = 0; i < counts.Length; i++)
            if (!best.Contains(i)) Assert.Equal(0, counts[i]);
        Assert.All(best, i => Assert.True(counts[i] > 0));
    }

    [Theory]
    [InlineData(0.3f)]
    [InlineData(0.6f)]
    [InlineData(0.9f)]
    public void TopP_KeepsExactlyTheSmallestPrefixReachingP(float p)
    {
        double[] probs = Softmax(Logits);
        int[] order = Enumerable.Range(0, Logits.Length).OrderByDescending(i => probs[i]).ToArray();
        var expected = new HashSet<int>();
        double mass = 0;
        foreach (int i in order)
        {
            expected.Add(i);
            mass += probs[i];
            if (mass >= p) break;
        }
        Assert.Equal(expected, Survivors(new TopPStage(p)));
    }

    [Theory]
    [InlineData(0.1f)]
    [InlineData(0.5f)]
    public void MinP_KeepsExactlyTokensAboveFractionOfBest(float p)
    {
        double[] probs = Softmax(Logits);
        var expected = Enumerable.Range(0, Logits.Length).Where(i => probs[i] >= p * probs.Max()).ToHashSet();
        Assert.Equal(expected, Survivors(new MinPStage(p)));
    }

    [Theory]
    [InlineData(0.5f)]
    [InlineData(0.9f)]
    public void TypicalP_KeepsClosestToEntropyUntilMassReachesP(float p)
    {
        double[] probs = Softmax(Logits);
        double entropy = -probs.Sum(q => q * Math.Log(q));
        int[] order = Enumerable.Range(0, Logits.Length).OrderBy(i => Math.Abs(-Math.Log(probs[i]) - entropy)).ToArray();
        var expected = new HashSet<int>();
        double mass = 0;
        foreach (int i in order)
        {
            expected.Add(i);
            mass += probs[i];
            if (mass >= p) break;
        }
        Assert.Equal(expected, Survivors(new TypicalStage(p)));
    }

    [Fact]
    public void Penalties_ChangeExactlyTheLogitsOfSeenTokens()
    {
        var stage = new PenaltyStage(Logits.Length, lastN: 4, repeat: 1.5f, frequency: 0.25f, presence: 0.5f);
        foreach (int token in new[] { 0, 4, 4, 7 }) stage.Accept(token);
        var candidates = new Candidates(Logits.Length);
        candidates.Fill(Logits);
        stage.Apply(candidates);
        var after = candidates.Items.ToArray().ToDictionary(c => c.Id, c => c.Logit);
        Assert.Equal(2.0f / 1.5f - 0.25f - 0.5f, after[0], 5);
        Assert.Equal(-0.5f * 1.5f - 2 * 0.25f - 0.5f, after[4], 5);
        Assert.Equal(0.9f / 1.5f - 0.25f - 0.5f, after[7], 5);
        foreach (int unseen in new[] { 1, 2, 3, 5, 6 }) Assert.Equal(Logits[unseen], after[unseen]);
        stage.Accept(1); // the window holds 4: token 0 leaves it
        candidates.Fill(Logits);
        stage.Apply(candidates);
        Assert.Equal(Logits[0], candidates.Items.ToArray().Single(c => c.Id == 0).Logit);
    }

    [Fact]
    public void LogitBias_NegativeInfinityBansAToken()
    {
        var options = Only() with { LogitBias = new Dictionary<int, float> { [0] = float.NegativeInfinity } };
        Assert.Equal(0, Draw(options, 5_000)[0]);
    }

    [Fact]
    public void Greedy_TemperatureZero_TakesTheBestWithoutDrawing()
    {
        var random = new CountingRandom();
        var chain = new SamplerChain(Logits.Length, SamplingOptions.Greedy, random);
        var trace = new SamplingTrace();
        Assert.Equal(0, chain.Sample(Logits, trace));
        Assert.Equal(0, random.Calls);
        Assert.Null(trace.RandomDraw);
    }

    /// <summary>
    /// GPT-2-sized logits: peaked (a few high tokens over a long tail) or flat, rounded to 1/8 so many
    /// tie, with −∞ (banned), NaN, and both zeros mixed in.
    /// </summary>
    private static float[] VocabularyLogits(int seed, bool peaked)
    {
        var random = new Random(seed);
        var logits = new float[50_257];
        for (int i = 0; i < logits.Length; i++)
        {
            double value = peaked ? random.NextDouble() * 6 - 3 + (random.Next(500) == 0 ? 12 : 0) : random.NextDouble() * 4;
            logits[i] = MathF.Round((float)value * 8) / 8;
        }
        logits[seed % 1000] = float.NegativeInfinity;
        logits[seed % 1000 + 1] = float.NaN;
        logits[seed % 1000 + 2] = -0f;
        logits[seed % 1000 + 3] = 0f;
        return logits;
    }

    /// <summary>The order every stage assumes: higher logit first, the lower id on ties, NaN last.</summary>
    private static int[] ReferenceOrder(float[] logits) =>
        Enumerable.Range(0, logits.Length).OrderBy(i => float.IsNaN(logits[i]) ? 1 : 0).ThenByDescending(i => float.IsNaN(logits[i]) ? 0 : logits[i]).ThenBy(i => i).ToArray();

    [Theory]
    [InlineData(0)]
    [InlineData(-5)]
    [InlineData((1 << 20) + 1)]
    public void Candidates_VocabularyOutsideWhatSortKeysHold_IsAClearError(int vocabSize)
    {
        var error = Assert.Throws<NextTokenException>(() => new Candidates(vocabSize));
        Assert.Contains($"not {vocabSize}", error.Message);
    }

    [Theory]
    [InlineData(1, true)]
    [InlineData(2, false)]
    public void SortDescending_FullVocabulary_EqualsAComparisonSort(int seed, bool peaked)
    {
        float[] logits = VocabularyLogits(seed, peaked);
        var candidates = new Candidates(logits.Length);
        candidates.Fill(logits);
        candidates.SortDescending();
        Assert.True(candidates.IsSorted);
        Assert.Equal(ReferenceOrder(logits), candidates.Items.ToArray().Select(c => c.Id));
        Assert.Equal(logits, candidates.Items.ToArray().OrderBy(c => c.Id).Select(c => c.Logit));
    }

    [Theory]
    [InlineData(1, true, 1)]
    [InlineData(1, true, 40)]
    [InlineData(2, false, 40)]
    [InlineData(3, false, 1000)]
    [InlineData(3, false, 20_000)]
    public void MoveBestToFront_FullVocabulary_PutsTheKBestInOrderAndKeepsTheRest(int seed, bool peaked, int k)
    {
        float[] logits = VocabularyLogits(seed, peaked);
        var candidates = new Candidates(logits.Length);
        candidates.Fill(logits);
        candidates.MoveBestToFront(k);
        int[] expected = ReferenceOrder(logits);
        Candidate[] items = candidates.Items.ToArray();
        Assert.Equal(expected[..k], items[..k].Select(c => c.Id));
        Assert.Equal(expected[k..].Order(), items[k..].Select(c => c.Id).Order());
        Assert.All(items, c => Assert.Equal(BitConverter.SingleToInt32Bits(logits[c.Id]), BitConverter.SingleToInt32Bits(c.Logit)));
    }

    [Theory]
    [InlineData(4, true, 0.5f)]
    [InlineData(4, true, 0.95f)]
    [InlineData(5, false, 0.9f)]
    public void TopP_FullVocabulary_KeepsTheSmallestBestFirstPrefixReachingP(int seed, bool peaked, float p)
    {
        float[] logits = VocabularyLogits(seed, peaked);
        logits[seed % 1000 + 1] = -5; // softmax over NaN is undefined
        double[] probabilities = Softmax(logits.Select(l => float.IsNegativeInfinity(l) ? -1e30f : l).ToArray());
        int[] order = ReferenceOrder(logits);
        var candidates = new Candidates(logits.Length);
        candidates.Fill(logits);
        new TopPStage(p).Apply(candidates);
        int kept = candidates.Count;
        Assert.Equal(order[..kept], candidates.Items.ToArray().Select(c => c.Id));
        double before = order[..(kept - 1)].Sum(i => probabilities[i]), after = before + probabilities[order[kept - 1]];
        output.WriteLine($"seed {seed}, p {p}: kept {kept} of {logits.Length}, mass before the last {before:F6}, with it {after:F6}");
        Assert.True(before < p + 1e-6 && after >= p - 1e-6, $"kept {kept}: mass {before} before the last token, {after} with it");
    }

    [Theory]
    [InlineData(6, true)]
    [InlineData(7, false)]
    public void Greedy_FullVocabularyWithTies_PicksTheLowestIdOfTheBest(int seed, bool peaked)
    {
        float[] logits = VocabularyLogits(seed, peaked);
        int best = ReferenceOrder(logits)[0];
        Assert.Equal(best, new SamplerChain(logits.Length, SamplingOptions.Greedy, new Xoshiro256StarStar(1)).Sample(logits));
        Assert.Equal(best, new SamplerChain(logits.Length, SamplingOptions.Greedy, new Xoshiro256StarStar(1)).Sample(logits, new SamplingTrace()));
    }

    [Fact]
    public void Orders_SameSettings_GiveDifferentDistributions()
    {
        // Top-p before temperature (llama.cpp) and after it (Hugging Face) keep different sets.
        var llama = Only(temperature: 0.3f, topP: 0.5f) with { Order = SamplerOrder.LlamaCpp };
        var hf = llama with { Order = SamplerOrder.HuggingFace };
        int[] a = Draw(llama, 20_000), b = Draw(hf, 20_000);
        Assert.NotEqual(a.Count(c => c > 0), b.Count(c => c > 0));
    }

    [Fact]
    public void Xoshiro_SameSeedSameNumbers_DifferentSeedsDiffer()
    {
        var a = new Xoshiro256StarStar(42);
        var b = new Xoshiro256StarStar(42);
        var c = new Xoshiro256StarStar(43);
        double[] x = Enumerable.Range(0, 5).Select(_ => a.NextDouble()).ToArray();
        Assert.Equal(x, Enumerable.Range(0, 5).Select(_ => b.NextDouble()));
        Assert.NotEqual(x, Enumerable.Range(0, 5).Select(_ => c.NextDouble()));
        Assert.All(x, v => Assert.InRange(v, 0, 1));
    }

    private static HashSet<int> Survivors(ISamplerStage stage)
    {
        var candidates = new Candidates(Logits.Length);
        candidates.Fill(Logits);
        stage.Apply(candidates);
        return candidates.Items.ToArray().Select(c => c.Id).ToHashSet();
    }

    private sealed class CountingRandom : IRandomSource
    {
        public int Calls;
        public double NextDouble() { Calls++; return 0.5; }
    }
}

/// <summary>The generation loop on real fixture models.</summary>
public class GenerationTests
{
    private static async Task<(List<int> Ids, string Text, Generator Generator)> Generate(LanguageModel model, int[] prompt, GenerationOptions options)
    {
        var generator = new Generator(model);
        var text = new System.Text.StringBuilder();
        var ids = new List<int>();
        await foreach (GeneratedToken token in generator.GenerateAsync(prompt, options))
        {
            ids.Add(token.Id);
            text.Append(token.Text);
        }
        return (ids, text.Append(generator.TrailingText).ToString(), generator);
    }

    [Theory]
    [InlineData("gpt2-tiny.f32")]
    [InlineData("stories260K")]
    [InlineData("moe-tiny.f32")]
    public async Task TemperatureZero_EqualsReferenceGreedyContinuation(string stem)
    {
        ExpectedCase expected = ExpectedOutputs.Load(stem)[^1];
        using LanguageModel model = ModelLoader.Load(ExpectedOutputs.ModelPath(stem));
        var (ids, _, _) = await Generate(model, expected.Tokens, new GenerationOptions
        {
            MaxTokens = 12, Sampling = SamplingOptions.Greedy, StopAtEndOfGeneration = false,
        });
        Assert.Equal(expected.GreedyNext12, ids);
    }

    [Fact]
    public async Task SameSeed_SameTokens_TwiceAndWithOneOrTwoThreads()
    {
        using LanguageModel model = ModelLoader.Load(Fixtures.Model("gpt2-tiny.f32.gguf"));
        var options = new GenerationOptions { MaxTokens = 24, Sampling = new SamplingOptions { Temperature = 1.2f, TopK = 0, TopP = 1, MinP = 0 }, Seed = 2026 };
        int[] prompt = [464, 3797, 3332, 319, 262];
        model.Threads = 2;
        var first = await Generate(model, prompt, options);
        var second = await Generate(model, prompt, options);
        model.Threads = 1;
        var single = await Generate(model, prompt, options);
        Assert.Equal(first.Ids, second.Ids);
        Assert.Equal(first.Ids, single.Ids);
        var other = await Generate(model, prompt, options with { Seed = 2027 });
        Assert.NotEqual(first.Ids, other.Ids);
    }

    [Fact]
    public async Task NoSeed_ARandomSeedIsReportedAndReplays()
    {
        using LanguageModel model = ModelLoader.Load(Fixtures.Model("gpt2-tiny.f32.gguf"));
        var options = new GenerationOptions { MaxTokens = 10, Sampling = new SamplingOptions { Temperature = 1.5f, TopK = 0, TopP = 1, MinP = 0 } };
        var run = await Generate(model, [464], options);
        var replay = await Generate(model, [464], options with { Seed = run.Generator.Seed });
        Assert.Equal(run.Ids, replay.Ids);
    }

    [Fact]
    public async Task StopString_SpanningTokens_StopsAtTheRightCharacter()
    {
        using LanguageModel model = ModelLoader.Load(Fixtures.Model("gpt2-tiny.f32.gguf"));
        int[] prompt = [464, 3797, 3332, 319, 262];
        var greedy = new GenerationOptions { MaxTokens = 12, Sampling = SamplingOptions.Greedy, StopAtEndOfGeneration = false };
        var full = await Generate(model, prompt, greedy);
        // A stop string made of the end of token 3 and the start of token 4.
        string before = model.Tokenizer.Decode(full.Ids.Take(3).ToArray());
        string token4 = model.Tokenizer.Decode([full.Ids[3]]);
        string stop = before[^2..] + token4[..2];
        int at = full.Text.IndexOf(stop, StringComparison.Ordinal);
        Assert.True(at >= 0);
        var stopped = await Generate(model, prompt, greedy with { StopStrings = [stop] });
        Assert.Equal(full.Text[..at], stopped.Text);
        Assert.Equal(StopReason.StopString, stopped.Generator.StopReason);
    }

    [Theory]
    [InlineData(new[] { "abc" }, new[] { "xa", "bc", "d" }, "x", true)]
    [InlineData(new[] { "abc" }, new[] { "xa", "bd", "e" }, "xabde", false)]
    [InlineData(new[] { "\n\n", "END" }, new[] { "one\n", "\ntwo" }, "one", true)]
    public void StopStringMatcher_HoldsBackPossiblePrefixes(string[] stops, string[] pieces, string expected, bool stopped)
    {
        var matcher = new StopStringMatcher(stops);
        string shown = string.Concat(pieces.Select(matcher.Append)) + matcher.Flush();
        Assert.Equal(expected, shown);
        Assert.Equal(stopped, matcher.Stopped);
    }

    [Fact]
    public async Task Tokens_CarryLogProbabilityRankAndAlternatives()
    {
        using LanguageModel model = ModelLoader.Load(Fixtures.Model("gpt2-tiny.f32.gguf"));
        var generator = new Generator(model);
        var withAlternatives = new List<double>();
        await foreach (GeneratedToken token in generator.GenerateAsync([464, 3797], new GenerationOptions { MaxTokens = 3, Sampling = SamplingOptions.Greedy, TopAlternatives = 5 }))
        {
            Assert.Equal(1, token.Rank);
            Assert.Equal(token.Id, token.Alternatives[0].Id);
            Assert.Equal(Math.Log(token.Alternatives[0].Probability), token.LogProbability, 4);
            Assert.InRange(token.LogProbability, double.NegativeInfinity, 0);
            withAlternatives.Add(token.LogProbability);
        }
        // Without alternatives log Z comes from another routine; the log-probabilities must agree.
        var without = new List<double>();
        await foreach (GeneratedToken token in generator.GenerateAsync([464, 3797], new GenerationOptions { MaxTokens = 3, Sampling = SamplingOptions.Greedy }))
        {
            Assert.Empty(token.Alternatives);
            without.Add(token.LogProbability);
        }
        Assert.Equal(withAlternatives.Count, without.Count);
        for (int i = 0; i < without.Count; i++) Assert.Equal(withAlternatives[i], without[i], 4);
    }

    [Fact]
    public async Task Cancellation_StopsTheLoop()
    {
        using LanguageModel model = ModelLoader.Load(Fixtures.Model("gpt2-tiny.f32.gguf"));
        using var cancellation = new CancellationTokenSource();
        int seen = 0;
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            await foreach (GeneratedToken _ in new Generator(model).GenerateAsync([464], new GenerationOptions { MaxTokens = 50, Seed = 1 }, cancellation.Token))
                if (++seen == 3) cancellation.Cancel();
        });
        Assert.Equal(3, seen);
    }
}
