namespace NextToken.Sampling;

/// <summary>One vocabulary entry still in the running: its id and current logit.</summary>
public struct Candidate
{
    public int Id;
    public float Logit;
    public double Probability; // valid after <see cref="Candidates.Normalize"/>
}

/// <summary>
/// The candidate list the sampler stages narrow down, allocated once for the vocabulary and
/// refilled every step. Stages reorder and truncate it; <see cref="Normalize"/> recomputes the
/// softmax over what is left.
/// </summary>
public sealed class Candidates
{
    private readonly Candidate[] _items;

    public Candidates(int vocabSize) => _items = new Candidate[vocabSize];

    public int Count { get; private set; }

    /// <summary>Whether the list is sorted by logit, best first.</summary>
    public bool IsSorted { get; private set; }

    public Span<Candidate> Items => _items.AsSpan(0, Count);

    public void Fill(ReadOnlySpan<float> logits)
    {
        for (int i = 0; i < logits.Length; i++) _items[i] = new Candidate { Id = i, Logit = logits[i] };
        Count = logits.Length;
        IsSorted = false;
    }

    public void SortDescending()
    {
        if (IsSorted) return;
        Items.Sort(static (a, b) => b.Logit != a.Logit ? b.Logit.CompareTo(a.Logit) : a.Id.CompareTo(b.Id));
        IsSorted = true;
    }

    /// <summary>Sets how many candidates remain after a stage compacted the ones it keeps to the front.</summary>
    public void KeepFirst(int count, bool stillSorted)
    {
        Count = Math.Clamp(count, 1, Count); // never everything: the first candidate always stays
        IsSorted = IsSorted && stillSorted;
    }

    /// <summary>Length of the shortest prefix, in the current order, whose probability reaches <paramref name="mass"/>.</summary>
    public int PrefixReaching(double mass)
    {
        double cumulative = 0;
        for (int i = 0; i < Count; i++)
        {
            cumulative += _items[i].Probability;
            if (cumulative >= mass) return i + 1;
        }
        return Count;
    }

    /// <summary>Marks the order as no longer by logit (a stage reordered the list).</summary>
    public void MarkUnsorted() => IsSorted = false;

    /// <summary>Softmax of the current logits over the current candidates.</summary>
    public void Normalize()
    {
        Span<Candidate> items = Items;
        float max = float.NegativeInfinity;
        foreach (ref Candidate c in items) max = Math.Max(max, c.Logit);
        double sum = 0;
        foreach (ref Candidate c in items)
        {
            c.Probability = float.IsNegativeInfinity(c.Logit) ? 0 : Math.Exp(c.Logit - max);
            sum += c.Probability;
        }
        foreach (ref Candidate c in items) c.Probability /= sum;
    }
}
