namespace NextToken.Sampling;

/// <summary>What one stage did to the distribution, for <c>--explain</c>.</summary>
public sealed record StageReport(string Stage, int CandidatesBefore, int CandidatesAfter, double MassRemoved, (int Id, double Probability)[] Top);

/// <summary>One sampling step, stage by stage, and the draw that ended it.</summary>
public sealed class SamplingTrace
{
    public List<StageReport> Stages { get; } = [];

    /// <summary>The uniform number drawn, or null for greedy selection.</summary>
    public double? RandomDraw { get; set; }

    public int ChosenId { get; set; }

    /// <summary>The chosen token's rank (1 = best) in the model's unmodified distribution.</summary>
    public int ChosenRank { get; set; }

    /// <summary>Its probability in the final, renormalized distribution it was drawn from.</summary>
    public double ChosenProbability { get; set; }
}

/// <summary>
/// The dice roll: a chain of stages that reshape and narrow the candidates, then a selector.
/// Temperature 0 ends the chain in a greedy pick with no random draw; otherwise the last stage's
/// distribution is sampled with the injected random source.
/// </summary>
public sealed class SamplerChain
{
    private const int TraceTop = 10;

    private readonly Candidates _candidates;
    private readonly double[] _probabilityBefore; // [vocab] scratch for traces
    private readonly ISamplerStage[] _stages;
    private readonly IRandomSource _random;
    private readonly bool _greedy;

    public SamplerChain(int vocabSize, SamplingOptions options, IRandomSource random)
    {
        options.Validate();
        Options = options;
        _random = random;
        _greedy = options.Temperature == 0;
        _candidates = new Candidates(vocabSize);
        _probabilityBefore = new double[vocabSize];
        _stages = BuildStages(vocabSize, options).ToArray();
    }

    public SamplingOptions Options { get; }

    public IReadOnlyList<ISamplerStage> Stages => _stages;

    public bool IsGreedy => _greedy;

    public int Sample(ReadOnlySpan<float> logits, SamplingTrace? trace = null)
    {
        if (_greedy && _stages.Length == 0 && trace is null) return FirstBest(logits);
        _candidates.Fill(logits);
        foreach (ISamplerStage stage in _stages)
        {
            if (trace is null)
            {
                stage.Apply(_candidates);
                continue;
            }
            int before = _candidates.Count;
            _candidates.Normalize();
            foreach (ref Candidate c in _candidates.Items) _probabilityBefore[c.Id] = c.Probability;
            stage.Apply(_candidates);
            double kept = 0;
            foreach (ref Candidate c in _candidates.Items) kept += _probabilityBefore[c.Id];
            trace.Stages.Add(new StageReport(stage.Name, before, _candidates.Count, Math.Max(0, 1 - kept), TopOfCandidates()));
        }

        int chosen;
        double chosenProbability;
        if (_greedy)
        {
            Candidate best = _candidates.Items[0];
            foreach (ref Candidate c in _candidates.Items)
                if (c.Logit > best.Logit || (c.Logit == best.Logit && c.Id < best.Id)) best = c;
            chosen = best.Id;
            chosenProbability = 1;
        }
        else
        {
            _candidates.SortDescending();
            _candidates.Normalize();
            double u = _random.NextDouble();
            Span<Candidate> items = _candidates.Items;
            int index = items.Length - 1;
            double cumulative = 0;
            for (int i = 0; i < items.Length; i++)
            {
                cumulative += items[i].Probability;
                if (u < cumulative)
                {
                    index = i;
                    break;
                }
            }
            chosen = items[index].Id;
            chosenProbability = items[index].Probability;
            if (trace is not null) trace.RandomDraw = u;
        }
        if (trace is not null)
        {
            trace.ChosenId = chosen;
            trace.ChosenProbability = chosenProbability;
            trace.ChosenRank = RankIn(logits, chosen);
        }
        return chosen;
    }

    public void Accept(int token)
    {
        foreach (ISamplerStage stage in _stages) stage.Accept(token);
    }

    public void Reset()
    {
        foreach (ISamplerStage stage in _stages) stage.Reset();
    }

    /// <summary>The id of the highest logit, the lowest id on ties (what the candidate scan picks).</summary>
    private static int FirstBest(ReadOnlySpan<float> logits)
    {
        int best = 0;
        for (int i = 1; i < logits.Length; i++)
            if (logits[i] > logits[best]) best = i;
        return best;
    }

    public static int RankIn(ReadOnlySpan<float> logits, int id)
    {
        float logit = logits[id];
        int rank = 1;
        for (int i = 0; i < logits.Length; i++)
            if (logits[i] > logit || (logits[i] == logit && i < id)) rank++;
        return rank;
    }

    private (int, double)[] TopOfCandidates()
    {
        _candidates.Normalize();
        Candidate[] items = _candidates.Items.ToArray();
        Array.Sort(items, (a, b) => b.Probability.CompareTo(a.Probability));
        return items.Take(TraceTop).Select(c => (c.Id, c.Probability)).ToArray();
    }

    private static IEnumerable<ISamplerStage> BuildStages(int vocabSize, SamplingOptions o)
    {
        if (o.LogitBias.Count > 0) yield return new LogitBiasStage(vocabSize, o.LogitBias);
        if (o.RepeatPenalty != 1 || o.FrequencyPenalty != 0 || o.PresencePenalty != 0)
            yield return new PenaltyStage(vocabSize, o.PenaltyLastN, o.RepeatPenalty, o.FrequencyPenalty, o.PresencePenalty);
        if (o.Temperature == 0) yield break; // greedy: the filters cannot change the best token
        ISamplerStage? topK = o.TopK > 0 ? new TopKStage(o.TopK) : null;
        ISamplerStage? topP = o.TopP < 1 ? new TopPStage(o.TopP) : null;
        ISamplerStage? minP = o.MinP > 0 ? new MinPStage(o.MinP) : null;
        ISamplerStage? typical = o.TypicalP < 1 ? new TypicalStage(o.TypicalP) : null;
        ISamplerStage temperature = new TemperatureStage(o.Temperature);
        ISamplerStage?[] order = o.Order == SamplerOrder.LlamaCpp
            ? [topK, typical, topP, minP, temperature]
            : [temperature, topK, topP, minP, typical];
        foreach (ISamplerStage? stage in order)
            if (stage is not null) yield return stage;
    }
}
