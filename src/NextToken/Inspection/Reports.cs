using System.Text.Json.Serialization;
using NextToken.Models;
using NextToken.Sampling;

namespace NextToken.Inspection;

/// <summary>A token with its text and probability, as every report lists them.</summary>
public sealed record ReportToken(
    [property: JsonPropertyName("rank")] int Rank,
    [property: JsonPropertyName("id")] int Id,
    [property: JsonPropertyName("piece")] string Piece,
    [property: JsonPropertyName("logit")] float Logit,
    [property: JsonPropertyName("prob")] double Probability);

/// <summary>A candidate left after a sampler stage, with its renormalized probability.</summary>
public sealed record ReportCandidate(
    [property: JsonPropertyName("id")] int Id,
    [property: JsonPropertyName("piece")] string Piece,
    [property: JsonPropertyName("prob")] double Probability);

/// <summary>One sampler stage of an explained roll.</summary>
public sealed record ReportStage(
    [property: JsonPropertyName("stage")] string Stage,
    [property: JsonPropertyName("candidates_before")] int CandidatesBefore,
    [property: JsonPropertyName("candidates_after")] int CandidatesAfter,
    [property: JsonPropertyName("mass_removed")] double MassRemoved,
    [property: JsonPropertyName("top")] ReportCandidate[] Top);

/// <summary>A roll of the dice, stage by stage: what each stage kept, the number drawn, the token chosen.</summary>
public sealed record ExplainReport(
    [property: JsonPropertyName("seed")] ulong Seed,
    [property: JsonPropertyName("stages")] ReportStage[] Stages,
    [property: JsonPropertyName("random")] double? Random,
    [property: JsonPropertyName("chosen")] int Chosen,
    [property: JsonPropertyName("chosen_piece")] string ChosenPiece,
    [property: JsonPropertyName("chosen_rank")] int ChosenRank,
    [property: JsonPropertyName("chosen_prob")] double ChosenProbability);

/// <summary>The next-token distribution over the whole vocabulary, summarized.</summary>
public sealed record NextReport(
    [property: JsonPropertyName("model")] string Model,
    [property: JsonPropertyName("tokens")] int[] Tokens,
    [property: JsonPropertyName("pieces")] string[] Pieces,
    [property: JsonPropertyName("top")] ReportToken[] Top,
    [property: JsonPropertyName("logsumexp")] double LogSumExp,
    [property: JsonPropertyName("entropy")] double Entropy,
    [property: JsonPropertyName("vocab_size")] int VocabSize,
    [property: JsonPropertyName("rest_prob")] double RestProbability,
    [property: JsonPropertyName("explain")] ExplainReport? Explain,
    [property: JsonPropertyName("routing")] ReportRoutingEntry[]? Routing = null);

/// <summary>One token under two contexts.</summary>
public sealed record ReportComparedToken(
    [property: JsonPropertyName("id")] int Id,
    [property: JsonPropertyName("piece")] string Piece,
    [property: JsonPropertyName("rank_a")] int RankA,
    [property: JsonPropertyName("rank_b")] int RankB,
    [property: JsonPropertyName("prob_a")] double ProbabilityA,
    [property: JsonPropertyName("prob_b")] double ProbabilityB,
    [property: JsonPropertyName("rank_change")] int RankChange);

/// <summary>The next-token distributions of two contexts side by side (a system prompt's effect).</summary>
public sealed record CompareReport(
    [property: JsonPropertyName("tokens_a")] int[] TokensA,
    [property: JsonPropertyName("tokens_b")] int[] TokensB,
    [property: JsonPropertyName("kl_ab")] double KlAB,
    [property: JsonPropertyName("kl_ba")] double KlBA,
    [property: JsonPropertyName("js")] double JensenShannon,
    [property: JsonPropertyName("tv")] double TotalVariation,
    [property: JsonPropertyName("entropy_a")] double EntropyA,
    [property: JsonPropertyName("entropy_b")] double EntropyB,
    [property: JsonPropertyName("top_k")] int TopK,
    [property: JsonPropertyName("top_k_overlap")] int TopKOverlap,
    [property: JsonPropertyName("top_a")] ReportComparedToken[] TopA,
    [property: JsonPropertyName("top_b")] ReportComparedToken[] TopB,
    [property: JsonPropertyName("new_in_top_k")] ReportComparedToken[] NewInTopK,
    [property: JsonPropertyName("dropped")] ReportComparedToken[] Dropped);

/// <summary>One stage of the logit lens.</summary>
public sealed record ReportLensLayer(
    [property: JsonPropertyName("stage")] string Stage,
    [property: JsonPropertyName("kl_to_final")] double KlToFinal,
    [property: JsonPropertyName("rank_of_final_top")] int RankOfFinalTop,
    [property: JsonPropertyName("top")] ReportToken[] Top);

/// <summary>
/// The residual stream after every layer decoded as if it were the last, and its L2 norm after every
/// block (<c>blocks.L.hook_resid_post</c>) at every position, [layer][position].
/// </summary>
public sealed record LensReport(
    [property: JsonPropertyName("tokens")] int[] Tokens,
    [property: JsonPropertyName("position")] int Position,
    [property: JsonPropertyName("layers")] ReportLensLayer[] Layers,
    [property: JsonPropertyName("residual_norms")] float[][] ResidualNorms);

/// <summary>
/// The inspection commands' results as plain records, the one shape the CLI's <c>--json</c> and the
/// server's <c>/v1/inspect/…</c> endpoints both write.
/// </summary>
public static partial class Reports
{
    public static ReportToken Token(LanguageModel model, RankedToken t) => new(t.Rank, t.Id, model.Tokenizer.TokenText(t.Id), t.Logit, t.Probability);

    /// <summary>
    /// The distribution after <paramref name="tokens"/>: the best <paramref name="top"/>, log Z,
    /// entropy, and, with <paramref name="explain"/>, one roll of the dice explained.
    /// </summary>
    public static NextReport Next(LanguageModel model, int[] tokens, int top, SamplingOptions? explain = null, ulong? seed = null, bool routing = false)
    {
        var logits = new float[model.VocabSize];
        model.Forward(model.CreateState(), tokens, logits);
        return Next(model, tokens, logits, top, explain, seed, routing);
    }

    /// <summary>The same from the last position's <paramref name="logits"/>, already computed; with <paramref name="routing"/>, the experts each token went to (mixture-of-experts models).</summary>
    public static NextReport Next(LanguageModel model, int[] tokens, float[] logits, int top, SamplingOptions? explain = null, ulong? seed = null, bool routing = false)
    {
        if (top < 1) throw new NextTokenException($"top must be at least 1, not {top}");
        var distribution = new TokenDistribution(logits);
        RankedToken[] best = distribution.Top(Math.Min(top, model.VocabSize));
        ExplainReport? roll = null;
        if (explain is not null)
        {
            ulong s = seed ?? Xoshiro256StarStar.RandomSeed();
            var trace = new SamplingTrace();
            new SamplerChain(model.VocabSize, explain, new Xoshiro256StarStar(s)).Sample(logits, trace);
            roll = Explain(model, trace, s);
        }
        ReportRoutingEntry[]? experts = routing
            ? RoutingLedger.Record(model, tokens).Entries.Select(e => new ReportRoutingEntry(e.Layer, e.Position, e.RouterProbabilities, e.Experts, e.Weights)).ToArray()
            : null;
        return new NextReport(model.FilePath, tokens, tokens.Select(model.Tokenizer.TokenText).ToArray(), best.Select(t => Token(model, t)).ToArray(),
            distribution.LogSumExp, distribution.Entropy, model.VocabSize, Math.Max(0, 1 - best.Sum(t => t.Probability)), roll, experts);
    }

    public static ExplainReport Explain(LanguageModel model, SamplingTrace trace, ulong seed) => new(
        seed,
        trace.Stages.Select(s => new ReportStage(s.Stage, s.CandidatesBefore, s.CandidatesAfter, s.MassRemoved, s.Top.Select(t => new ReportCandidate(t.Id, model.Tokenizer.TokenText(t.Id), t.Probability)).ToArray())).ToArray(),
        trace.RandomDraw, trace.ChosenId, model.Tokenizer.TokenText(trace.ChosenId), trace.ChosenRank, trace.ChosenProbability);

    /// <summary>Two contexts' next-token distributions compared (KL both ways, JS, TV, ranked lists).</summary>
    public static CompareReport Compare(LanguageModel model, int[] a, int[] b, int top)
    {
        if (top < 1) throw new NextTokenException($"top must be at least 1, not {top}");
        float[] logitsA = new float[model.VocabSize], logitsB = new float[model.VocabSize];
        model.Forward(model.CreateState(), a, logitsA);
        model.Forward(model.CreateState(), b, logitsB);
        var result = DistributionComparison.Compare(logitsA, logitsB, top);
        ReportComparedToken Row(ComparedToken t) => new(t.Id, model.Tokenizer.TokenText(t.Id), t.RankA, t.RankB, t.ProbabilityA, t.ProbabilityB, t.RankChange);
        return new CompareReport(a, b, result.KlAB, result.KlBA, result.JensenShannon, result.TotalVariation, result.EntropyA, result.EntropyB, top,
            result.TopKOverlap, result.TopOfA.Select(Row).ToArray(), result.TopOfB.Select(Row).ToArray(),
            result.NewInTopK.Select(Row).ToArray(), result.DroppedFromTopK.Select(Row).ToArray());
    }

    /// <summary>The logit lens at one position (negative counts from the end).</summary>
    public static LensReport Lens(LanguageModel model, int[] tokens, int position, int top)
    {
        if (top < 1) throw new NextTokenException($"top must be at least 1, not {top}");
        LensResult lens = LogitLens.Analyze(model, tokens, position, top);
        return new LensReport(tokens, (position % tokens.Length + tokens.Length) % tokens.Length,
            lens.Layers.Select(l => new ReportLensLayer(l.Stage, l.KlToFinal, l.RankOfFinalTop, l.Top.Select(t => Token(model, t)).ToArray())).ToArray(),
            lens.ResidualNorms);
    }
}
