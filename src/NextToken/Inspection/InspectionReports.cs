using System.Text.Json.Serialization;
using NextToken.Chat;
using NextToken.Generation;
using NextToken.Models;
using NextToken.Sampling;

namespace NextToken.Inspection;

/// <summary>A span of positions [start, end) whose attention share is reported.</summary>
public sealed record ReportSpan(
    [property: JsonPropertyName("name")] string Name,
    [property: JsonPropertyName("start")] int Start,
    [property: JsonPropertyName("end")] int End);

/// <summary>The last position's attention in one layer and head: the share paid to each span.</summary>
public sealed record ReportAttentionRow(
    [property: JsonPropertyName("layer")] int Layer,
    [property: JsonPropertyName("head")] int Head,
    [property: JsonPropertyName("shares")] double[] Shares);

/// <summary>
/// Where the last token looks: per layer and head, its attention share to each span; with a layer
/// chosen, that layer's whole pattern, [heads, tokens, tokens] row-major.
/// </summary>
public sealed record AttentionReport(
    [property: JsonPropertyName("tokens")] int[] Tokens,
    [property: JsonPropertyName("heads")] int Heads,
    [property: JsonPropertyName("spans")] ReportSpan[] Spans,
    [property: JsonPropertyName("last_query")] ReportAttentionRow[] LastQuery,
    [property: JsonPropertyName("patterns")] float[]? Patterns);

/// <summary>One user turn of a drift measurement.</summary>
public sealed record ReportDriftTurn(
    [property: JsonPropertyName("turn")] int Turn,
    [property: JsonPropertyName("context_tokens")] int ContextTokens,
    [property: JsonPropertyName("system_tokens")] int SystemTokens,
    [property: JsonPropertyName("distance")] int Distance,
    [property: JsonPropertyName("system_share")] double SystemShare,
    [property: JsonPropertyName("system_share_per_layer")] double[] SystemSharePerLayer,
    [property: JsonPropertyName("sink_share")] double SinkShare,
    [property: JsonPropertyName("kl_without_system")] double KlWithoutSystem);

/// <summary>Turn by turn, the attention paid to the system prompt and its effect on the next token; optionally also with it restated.</summary>
public sealed record DriftReport(
    [property: JsonPropertyName("template")] string Template,
    [property: JsonPropertyName("turns")] ReportDriftTurn[] Turns,
    [property: JsonPropertyName("reanchored")] ReportDriftTurn[]? Reanchored,
    [property: JsonPropertyName("reanchor_every")] int ReanchorEvery,
    [property: JsonPropertyName("context_full_at_turn")] int? ContextFullAtTurn);

/// <summary>One seed's continuation without and with the steering vector.</summary>
public sealed record ReportSteerRun(
    [property: JsonPropertyName("seed")] ulong Seed,
    [property: JsonPropertyName("unsteered")] string Unsteered,
    [property: JsonPropertyName("steered")] string Steered);

/// <summary>Continuations with and without a steering vector added at a layer's input.</summary>
public sealed record SteerReport(
    [property: JsonPropertyName("layer")] int Layer,
    [property: JsonPropertyName("coeff")] float Coefficient,
    [property: JsonPropertyName("vector_length")] int VectorLength,
    [property: JsonPropertyName("vector_row_norms")] double[] VectorRowNorms,
    [property: JsonPropertyName("runs")] ReportSteerRun[] Runs);

/// <summary>One layer × coefficient of the sweep.</summary>
public sealed record ReportSweepRow(
    [property: JsonPropertyName("layer")] int Layer,
    [property: JsonPropertyName("coeff")] float Coefficient,
    [property: JsonPropertyName("logprob_lift")] double LogProbabilityLift,
    [property: JsonPropertyName("kl_to_unsteered")] double KlToUnsteered,
    [property: JsonPropertyName("relative_norm")] double RelativeNorm);

/// <summary>Every layer × coefficient: how much the steering lifts the targets, and at what cost.</summary>
public sealed record SteerSweepReport(
    [property: JsonPropertyName("targets")] int[] Targets,
    [property: JsonPropertyName("target_pieces")] string[] TargetPieces,
    [property: JsonPropertyName("sweep")] ReportSweepRow[] Sweep);

/// <summary>One token's routing in one layer.</summary>
public sealed record ReportRoutingEntry(
    [property: JsonPropertyName("layer")] int Layer,
    [property: JsonPropertyName("position")] int Position,
    [property: JsonPropertyName("router_probs")] float[] RouterProbabilities,
    [property: JsonPropertyName("experts")] int[] Experts,
    [property: JsonPropertyName("weights")] float[] Weights);

/// <summary>How many tokens one expert got in a layer, and the routing weight they gave it.</summary>
public sealed record ReportExpertLoad(
    [property: JsonPropertyName("expert")] int Expert,
    [property: JsonPropertyName("tokens")] int Tokens,
    [property: JsonPropertyName("weight")] double Weight);

/// <summary>A token routed to other experts once the system prompt is in front.</summary>
public sealed record ReportRoutingDifference(
    [property: JsonPropertyName("layer")] int Layer,
    [property: JsonPropertyName("position")] int Position,
    [property: JsonPropertyName("position_with_system")] int PositionWithSystem);

/// <summary>The mixture-of-experts ledger: experts per token and layer, load per expert ([layer][expert]), and what a system prompt changes.</summary>
public sealed record RoutingReport(
    [property: JsonPropertyName("tokens")] int[] Tokens,
    [property: JsonPropertyName("entries")] ReportRoutingEntry[] Entries,
    [property: JsonPropertyName("load")] ReportExpertLoad[][] Load,
    [property: JsonPropertyName("differences_with_system")] ReportRoutingDifference[]? DifferencesWithSystem);

/// <summary>One token's residual vector on the map.</summary>
public sealed record ReportMapPoint(
    [property: JsonPropertyName("prompt")] int Prompt,
    [property: JsonPropertyName("position")] int Position,
    [property: JsonPropertyName("id")] int Id,
    [property: JsonPropertyName("piece")] string Piece,
    [property: JsonPropertyName("x")] double X,
    [property: JsonPropertyName("y")] double Y);

/// <summary>Per-token residual vectors at a layer in 2-D: PCA, or a concept axis (x) against the first principal component (y).</summary>
public sealed record MapReport(
    [property: JsonPropertyName("layer")] int Layer,
    [property: JsonPropertyName("x_axis")] string XAxis,
    [property: JsonPropertyName("y_axis")] string YAxis,
    [property: JsonPropertyName("points")] ReportMapPoint[] Points);

public static partial class Reports
{
    /// <summary>
    /// Attention of the last position to the first token, to the last <paramref name="recent"/>
    /// tokens and to each of <paramref name="spans"/>, in every layer (or only <paramref name="layer"/>).
    /// </summary>
    public static AttentionReport Attention(LanguageModel model, int[] tokens, int? layer, IReadOnlyList<(int Start, int End)> spans, int recent) =>
        Attention(model, tokens, AttentionPatterns(model, tokens), layer, spans, recent);

    /// <summary>The patterns of every layer ([heads, tokens, tokens] each), as the report reads them.</summary>
    public static CachedActivation[] AttentionPatterns(LanguageModel model, int[] tokens) =>
        model.RunWithCache(tokens, name => name.EndsWith(HookNames.PatternSuffix, StringComparison.Ordinal)).Cache.AttentionPatterns(model.LayerCount);

    /// <summary>The report from patterns already computed (the CLI also plots them).</summary>
    public static AttentionReport Attention(LanguageModel model, int[] tokens, CachedActivation[] patterns, int? layer, IReadOnlyList<(int Start, int End)> spans, int recent)
    {
        int n = tokens.Length;
        if (recent < 1) throw new NextTokenException($"recent must be at least 1, not {recent}");
        if (layer is { } chosen && (chosen < 0 || chosen >= model.LayerCount)) throw new NextTokenException($"layer {chosen}: the model has layers 0 to {model.LayerCount - 1}");
        var named = new List<ReportSpan> { new("first token", 0, 1), new($"last {recent}", Math.Max(0, n - recent), n) };
        foreach (var (start, end) in spans)
        {
            if (start < 0 || end > n || start >= end) throw new NextTokenException($"span {start}:{end}: expected START:END with 0 ≤ START < END ≤ {n}");
            named.Add(new ReportSpan($"{start}:{end}", start, end));
        }
        int heads = patterns[0].Shape[0], query = n - 1;
        var rows = new List<ReportAttentionRow>();
        foreach (int l in layer is { } only ? [only] : Enumerable.Range(0, model.LayerCount))
            for (int h = 0; h < heads; h++)
                rows.Add(new ReportAttentionRow(l, h, named.Select(s => AttentionShares.Share(patterns[l], h, query, s.Start, s.End)).ToArray()));
        return new AttentionReport(tokens, heads, named.ToArray(), rows.ToArray(), layer is { } pl ? patterns[pl].Data : null);
    }

    /// <summary>
    /// Drift of <paramref name="system"/> over <paramref name="conversation"/> (formatted with
    /// <paramref name="template"/>); with <paramref name="reanchorEvery"/> &gt; 0, measured again with
    /// the system prompt restated in every that-many-th user turn. <paramref name="cancel"/> is checked between turns.
    /// </summary>
    public static DriftReport Drift(LanguageModel model, ChatTemplate template, string system, IReadOnlyList<ChatMessage> conversation, int reanchorEvery,
                                    CancellationToken cancel = default)
    {
        if (reanchorEvery < 0) throw new NextTokenException($"reanchor must be 0 (off) or more, not {reanchorEvery}");
        var vocabulary = model.Tokenizer.Vocabulary;
        var meter = new DriftMeter(model, template, ChatPrompt.TokenText(vocabulary, vocabulary.BosId), ChatPrompt.TokenText(vocabulary, vocabulary.EosId));
        ReportDriftTurn Row(DriftTurn t)
        {
            cancel.ThrowIfCancellationRequested();
            return new(t.Turn, t.ContextTokens, t.SystemTokens, t.Distance, t.SystemShare, t.SystemSharePerLayer, t.SinkShare, t.KlWithoutSystem);
        }
        ReportDriftTurn[] plain = meter.Measure(system, conversation).Select(Row).ToArray();
        if (plain.Length == 0) throw new NextTokenException($"the first turn already exceeds the context length {model.ContextLength}");
        int? fullAt = meter.ContextFullAtTurn;
        ReportDriftTurn[]? anchored = reanchorEvery > 0 ? meter.Measure(system, conversation, reanchorEvery).Select(Row).ToArray() : null;
        return new DriftReport(template.Name, plain, anchored, reanchorEvery, fullAt);
    }

    /// <summary>
    /// <paramref name="runs"/> continuations of <paramref name="prompt"/> (seeds <paramref name="seed"/>,
    /// seed + 1, …), each without and with <paramref name="coefficient"/> × (resid(add) − resid(sub)) at <paramref name="layer"/>.
    /// </summary>
    public static SteerReport Steer(LanguageModel model, int[] prompt, int[] add, int[] sub, int padId, int layer, float coefficient,
                                    int runs, int maxTokens, SamplingOptions sampling, ulong seed, CancellationToken cancel = default)
    {
        if (runs < 1) throw new NextTokenException($"runs must be at least 1, not {runs}");
        if (maxTokens < 0) throw new NextTokenException($"max tokens must be 0 or more, not {maxTokens}");
        if (!float.IsFinite(coefficient)) throw new NextTokenException($"the coefficient must be a finite number, not {coefficient}");
        SteeringVector vector = SteeringVector.FromPrompts(model, add, sub, layer, padId);
        var results = new ReportSteerRun[runs];
        for (int r = 0; r < runs; r++)
        {
            var generation = new GenerationOptions { MaxTokens = maxTokens, Sampling = sampling, Seed = seed + (ulong)r };
            string plain = Steering.Continue(model, prompt, generation, cancel);
            string steered;
            using (vector.Apply(model, coefficient)) steered = Steering.Continue(model, prompt, generation, cancel);
            results[r] = new ReportSteerRun(seed + (ulong)r, plain, steered);
        }
        return new SteerReport(vector.Layer, coefficient, vector.Length, vector.RowNorms, results);
    }

    /// <summary>The steering sweep over every layer × <paramref name="coefficients"/>, lifting <paramref name="targets"/> (token ids).</summary>
    public static SteerSweepReport SteerSweep(LanguageModel model, int[] prompt, int[] add, int[] sub, int padId, IReadOnlyList<float> coefficients, int[] targets,
                                              CancellationToken cancel = default) =>
        new(targets, targets.Select(model.Tokenizer.TokenText).ToArray(),
            Steering.Sweep(model, prompt, add, sub, padId, coefficients, targets, cancel)
                .Select(r => new ReportSweepRow(r.Layer, r.Coefficient, r.LogProbabilityLift, r.KlToUnsteered, r.RelativeNorm)).ToArray());

    /// <summary>
    /// The routing of <paramref name="tokens"/>; with <paramref name="withSystem"/> (the same prompt
    /// behind a system prompt), the shared tokens routed differently.
    /// </summary>
    public static RoutingReport Routing(LanguageModel model, int[] tokens, int[]? withSystem = null)
    {
        RoutingLedger ledger = RoutingLedger.Record(model, tokens);
        var (count, weight) = ledger.Load();
        ReportRoutingDifference[]? differences = withSystem is null ? null
            : RoutingLedger.Differences(ledger, tokens, RoutingLedger.Record(model, withSystem), withSystem).Select(d => new ReportRoutingDifference(d.Layer, d.PositionA, d.PositionB)).ToArray();
        return new RoutingReport(tokens,
            ledger.Entries.Select(e => new ReportRoutingEntry(e.Layer, e.Position, e.RouterProbabilities, e.Experts, e.Weights)).ToArray(),
            Enumerable.Range(0, ledger.Layers).Select(l => Enumerable.Range(0, ledger.ExpertCount).Select(e => new ReportExpertLoad(e, count[l, e], weight[l, e])).ToArray()).ToArray(),
            differences);
    }

    /// <summary>
    /// The tokens of <paramref name="prompts"/> at <paramref name="layer"/>'s residual stream, placed
    /// by PCA; with both <paramref name="axisA"/> and <paramref name="axisB"/>, x is the concept axis
    /// mean(A) − mean(B) (named <paramref name="axisName"/>) and y the first principal component.
    /// </summary>
    public static MapReport Map(LanguageModel model, IReadOnlyList<int[]> prompts, int layer,
                                IReadOnlyList<int[]>? axisA = null, IReadOnlyList<int[]>? axisB = null, string axisName = "A − B")
    {
        if (prompts.Count == 0) throw new NextTokenException("no prompts to map");
        if ((axisA is null) != (axisB is null)) throw new NextTokenException("a concept axis needs both ends (A and B)");
        if (axisA is { Count: 0 } || axisB is { Count: 0 }) throw new NextTokenException("a concept axis needs prompts at both ends");
        var (vectors, origins) = ActivationMap.Collect(model, prompts, layer);
        float[][] pcs = ActivationMap.PrincipalComponents(vectors, 2);
        string xLabel = "PC 1", yLabel = "PC 2";
        float[] xAxis = pcs[0], yAxis = pcs[1];
        if (axisA is not null && axisB is not null)
        {
            xAxis = ActivationMap.ConceptAxis(ActivationMap.Collect(model, axisA, layer).Vectors, ActivationMap.Collect(model, axisB, layer).Vectors);
            (xLabel, yAxis, yLabel) = (axisName, pcs[0], "PC 1");
        }
        return new MapReport(layer, xLabel, yLabel, ActivationMap.Project(vectors, origins, xAxis, yAxis)
            .Select(p => new ReportMapPoint(p.Prompt, p.Position, p.TokenId, model.Tokenizer.TokenText(p.TokenId), p.X, p.Y)).ToArray());
    }
}
