namespace NextToken.Sampling;

/// <summary>One step of the sampler chain (llama.cpp's <c>llama_sampler</c> interface).</summary>
public interface ISamplerStage
{
    string Name { get; }

    /// <summary>Reshapes or narrows the candidates.</summary>
    void Apply(Candidates candidates);

    /// <summary>Told the token that was chosen (stages with memory, such as penalties, record it).</summary>
    void Accept(int token) { }

    /// <summary>Forgets what was accepted.</summary>
    void Reset() { }
}

/// <summary>Adds a fixed bias to chosen tokens' logits (−∞ bans a token).</summary>
public sealed class LogitBiasStage : ISamplerStage
{
    private readonly KeyValuePair<int, float>[] _bias;
    private readonly float[] _byToken; // [vocab]

    public LogitBiasStage(int vocabSize, IReadOnlyDictionary<int, float> bias)
    {
        _byToken = new float[vocabSize];
        foreach (var (id, value) in bias)
        {
            if ((uint)id >= (uint)vocabSize) throw new NextTokenException($"logit bias names token {id}; expected 0 to {vocabSize - 1}");
            _byToken[id] = value;
        }
        _bias = bias.ToArray();
    }

    public string Name => "logit bias";

    public void Apply(Candidates candidates)
    {
        foreach (ref Candidate c in candidates.Items) c.Logit += _byToken[c.Id];
        candidates.MarkUnsorted();
    }
}

/// <summary>
/// Repetition, presence and frequency penalties over the last N accepted tokens, as llama.cpp
/// applies them: a seen token's positive logit is divided by the repeat penalty (a negative one
/// multiplied), then count·frequency + presence is subtracted.
/// </summary>
public sealed class PenaltyStage(int vocabSize, int lastN, float repeat, float frequency, float presence) : ISamplerStage
{
    private readonly int[] _counts = new int[vocabSize];   // [vocab] occurrences in the window
    private readonly int[] _window = new int[Math.Max(1, lastN)]; // ring buffer of the last N tokens
    private int _filled, _next;

    public string Name => "penalties";

    public void Apply(Candidates candidates)
    {
        if (_filled == 0) return;
        foreach (ref Candidate c in candidates.Items)
        {
            int count = _counts[c.Id];
            if (count == 0) continue;
            c.Logit = c.Logit > 0 ? c.Logit / repeat : c.Logit * repeat;
            c.Logit -= count * frequency + presence;
        }
        candidates.MarkUnsorted();
    }

    public void Accept(int token)
    {
        if (lastN == 0) return;
        if (_filled == _window.Length) _counts[_window[_next]]--;
        else _filled++;
        _window[_next] = token;
        _counts[token]++;
        _next = (_next + 1) % _window.Length;
    }

    public void Reset()
    {
        Array.Clear(_counts);
        _filled = _next = 0;
    }
}

/// <summary>Divides every logit by T: below 1 sharpens the distribution, above 1 flattens it.</summary>
public sealed class TemperatureStage(float temperature) : ISamplerStage
{
    public string Name => $"temperature {temperature:0.###}";

    public void Apply(Candidates candidates)
    {
        float inverse = 1f / temperature;
        foreach (ref Candidate c in candidates.Items) c.Logit *= inverse;
    }
}

/// <summary>Keeps the k highest-scoring candidates.</summary>
public sealed class TopKStage(int k) : ISamplerStage
{
    public string Name => $"top-k {k}";

    public void Apply(Candidates candidates)
    {
        if (k >= candidates.Count) return;
        candidates.MoveBestToFront(k);
        candidates.Truncate(k);
    }
}

/// <summary>Nucleus sampling: keeps the smallest best-first prefix whose probability reaches p.</summary>
public sealed class TopPStage(float p) : ISamplerStage
{
    public string Name => $"top-p {p:0.###}";

    public void Apply(Candidates candidates)
    {
        candidates.Normalize();
        candidates.Truncate(candidates.BestPrefixReaching(p));
    }
}

/// <summary>
/// Keeps candidates whose probability is at least p times the best candidate's: on logits, those
/// within −ln p of the best logit (the softmax's normalizer cancels in the ratio), so no pass of
/// exponentials over the vocabulary is needed.
/// </summary>
public sealed class MinPStage(float p) : ISamplerStage
{
    public string Name => $"min-p {p:0.###}";

    public void Apply(Candidates candidates)
    {
        Span<Candidate> items = candidates.Items;
        float best = float.NegativeInfinity;
        foreach (ref Candidate c in items) best = Math.Max(best, c.Logit);
        double threshold = best + Math.Log(p);
        int kept = 0;
        for (int i = 0; i < items.Length; i++)
            if (items[i].Logit >= threshold) items[kept++] = items[i];
        candidates.KeepFirst(kept, orderKept: true);
    }
}

/// <summary>
/// Locally typical sampling (Meister et al. 2022): ranks candidates by how far their surprise
/// −log p is from the distribution's entropy and keeps the closest until their mass reaches p.
/// </summary>
public sealed class TypicalStage : ISamplerStage
{
    private readonly float _p;
    private readonly Comparison<Candidate> _byTypicality; // made once: a sort with a new comparer or closure allocates every step
    private double _entropy;

    public TypicalStage(float p)
    {
        _p = p;
        _byTypicality = ByTypicality;
    }

    public string Name => $"typical-p {_p:0.###}";

    public void Apply(Candidates candidates)
    {
        candidates.Normalize();
        Span<Candidate> items = candidates.Items;
        double entropy = 0;
        foreach (ref Candidate c in items)
            if (c.Probability > 0) entropy -= c.Probability * Math.Log(c.Probability);
        _entropy = entropy;
        items.Sort(_byTypicality);
        candidates.MarkUnsorted();
        candidates.KeepFirst(candidates.PrefixReaching(_p), orderKept: false);
    }

    private int ByTypicality(Candidate a, Candidate b)
    {
        double da = Distance(a), db = Distance(b);
        return da != db ? da.CompareTo(db) : a.Id.CompareTo(b.Id);
    }

    private double Distance(Candidate c) =>
        c.Probability > 0 ? Math.Abs(-Math.Log(c.Probability) - _entropy) : double.PositiveInfinity;
}
