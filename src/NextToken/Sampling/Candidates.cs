using System.Numerics.Tensors;

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
    /// <summary>Below this share of the list, the best few are picked with a heap instead of sorting everything.</summary>
    private const int PartialSelectionRatio = 8;

    /// <summary>Bits of a sort key holding the id: vocabularies up to 2^20 entries (Qwen's 151,936 needs 18).</summary>
    private const int IdBits = 20;

    /// <summary>Best-first prefixes tried with the heap before a top-p search sorts everything.</summary>
    private const int LargestPartialHead = 256;

    private readonly Candidate[] _items;       // [vocab]
    private readonly ulong[] _sortKeys;        // [vocab] keys of a full sort: descending logit, then ascending id
    private readonly ulong[] _sortScratch;     // [vocab] the radix sort's second buffer
    private readonly Candidate[] _byId;        // [vocab] candidates by id, to put them in key order
    private readonly float[] _exponentials;    // [vocab] softmax scratch
    private int _sortedPrefix;                 // how many leading candidates are known to be best-first

    public Candidates(int vocabSize)
    {
        if (vocabSize < 1 || vocabSize > 1 << IdBits)
            throw new NextTokenException($"the sampler takes vocabularies of 1 to {1 << IdBits} entries, not {vocabSize}");
        _items = new Candidate[vocabSize];
        _sortKeys = new ulong[vocabSize];
        _sortScratch = new ulong[vocabSize];
        _byId = new Candidate[vocabSize];
        _exponentials = new float[vocabSize];
    }

    public int Count { get; private set; }

    /// <summary>Whether the list is sorted by logit, best first (ties: lower id first).</summary>
    public bool IsSorted => _sortedPrefix >= Count;

    public Span<Candidate> Items => _items.AsSpan(0, Count);

    public void Fill(ReadOnlySpan<float> logits)
    {
        for (int i = 0; i < logits.Length; i++) _items[i] = new Candidate { Id = i, Logit = logits[i] };
        Count = logits.Length;
        _sortedPrefix = 0;
    }

    /// <summary>
    /// Sorts every candidate best first by a radix sort of integer keys: a comparison sort of the
    /// whole vocabulary cost 3–8 ms per token (more than the model's forward pass).
    /// </summary>
    public void SortDescending()
    {
        if (IsSorted) return;
        Span<Candidate> items = Items;
        Span<ulong> keys = _sortKeys.AsSpan(0, Count);
        for (int i = 0; i < items.Length; i++)
        {
            keys[i] = SortKey(items[i]);
            _byId[items[i].Id] = items[i];
        }
        RadixSort(keys, _sortScratch.AsSpan(0, Count));
        for (int i = 0; i < items.Length; i++) items[i] = _byId[(int)(keys[i] & ((1UL << IdBits) - 1))];
        _sortedPrefix = Count;
    }

    /// <summary>
    /// Moves the <paramref name="count"/> best candidates to the front, best first; the rest follow
    /// in no particular order. A min-heap of the best so far is kept in the first slots, so picking
    /// top-40 of 50,257 takes one pass instead of a sort.
    /// </summary>
    public void MoveBestToFront(int count)
    {
        count = Math.Min(count, Count);
        if (_sortedPrefix >= count) return;
        if (count * PartialSelectionRatio >= Count)
        {
            SortDescending();
            return;
        }
        Span<Candidate> items = Items;
        Span<Candidate> heap = items[..count];
        for (int i = count / 2 - 1; i >= 0; i--) SiftDown(heap, i);
        for (int i = count; i < items.Length; i++)
        {
            // Most candidates lose to the heap's worst on the logit alone, before keys are built
            // (a NaN on either side fails the comparison and goes to the full check).
            if (items[i].Logit < heap[0].Logit || !Better(items[i], heap[0])) continue;
            (items[i], heap[0]) = (heap[0], items[i]);
            SiftDown(heap, 0);
        }
        heap.Sort(static (a, b) => SortKey(a).CompareTo(SortKey(b)));
        _sortedPrefix = count;
    }

    /// <summary>Keeps only the first <paramref name="count"/> candidates (at least one); a best-first prefix stays sorted.</summary>
    public void Truncate(int count)
    {
        Count = Math.Clamp(count, 1, Count);
        _sortedPrefix = Math.Min(_sortedPrefix, Count);
    }

    /// <summary>
    /// Sets how many candidates remain after a stage compacted the ones it keeps to the front;
    /// <paramref name="orderKept"/>: the kept ones are in their previous relative order.
    /// </summary>
    public void KeepFirst(int count, bool orderKept)
    {
        bool wasSorted = IsSorted;
        Count = Math.Clamp(count, 1, Count); // never everything: the first candidate always stays
        _sortedPrefix = orderKept && wasSorted ? Count : 0;
    }

    /// <summary>Length of the shortest prefix, in the current order, whose probability reaches <paramref name="mass"/>.</summary>
    public int PrefixReaching(double mass)
    {
        int length = PrefixWithin(mass, Count);
        return length > 0 ? length : Count;
    }

    /// <summary>
    /// Length of the shortest best-first prefix whose probability (from <see cref="Normalize"/>)
    /// reaches <paramref name="mass"/>, sorting only as far as needed: the best 64, then 256, then all.
    /// </summary>
    public int BestPrefixReaching(double mass)
    {
        for (int head = 64; ; head = head < LargestPartialHead ? head * 4 : Count)
        {
            MoveBestToFront(head);
            int sorted = Math.Min(_sortedPrefix, Count);
            int length = PrefixWithin(mass, sorted);
            if (length > 0) return length;
            if (sorted == Count) return Count;
        }
    }

    /// <summary>Marks the order as no longer by logit (a stage reordered the list or changed logits).</summary>
    public void MarkUnsorted() => _sortedPrefix = 0;

    /// <summary>
    /// Softmax of the current logits over the current candidates: exponentials in float32 vectors
    /// (a double <c>Math.Exp</c> per entry took ~0.8 ms over GPT-2's vocabulary), summed in float64.
    /// </summary>
    public void Normalize()
    {
        Span<Candidate> items = Items;
        Span<float> exponentials = _exponentials.AsSpan(0, Count);
        for (int i = 0; i < items.Length; i++) exponentials[i] = items[i].Logit;
        float max = TensorPrimitives.Max(exponentials);
        TensorPrimitives.Subtract(exponentials, max, exponentials);
        TensorPrimitives.Exp(exponentials, exponentials); // a banned (−∞) logit becomes 0
        double inverse = 1 / Kernels.Ops.SumInDouble(exponentials);
        for (int i = 0; i < items.Length; i++) items[i].Probability = exponentials[i] * inverse;
    }

    /// <summary>The shortest prefix of the first <paramref name="within"/> candidates reaching the mass, or 0 if none does.</summary>
    private int PrefixWithin(double mass, int within)
    {
        double cumulative = 0;
        for (int i = 0; i < within; i++)
        {
            cumulative += _items[i].Probability;
            if (cumulative >= mass) return i + 1;
        }
        return 0;
    }

    /// <summary>Higher logit first; on equal logits the lower id; NaN last (the full sort's order).</summary>
    private static bool Better(in Candidate a, in Candidate b) => SortKey(a) < SortKey(b);

    /// <summary>Restores the min-heap (worst of the kept candidates at the root) below <paramref name="i"/>.</summary>
    private static void SiftDown(Span<Candidate> heap, int i)
    {
        while (true)
        {
            int worst = i, left = 2 * i + 1, right = left + 1;
            if (left < heap.Length && Better(heap[worst], heap[left])) worst = left;
            if (right < heap.Length && Better(heap[worst], heap[right])) worst = right;
            if (worst == i) return;
            (heap[i], heap[worst]) = (heap[worst], heap[i]);
            i = worst;
        }
    }

    /// <summary>
    /// Least-significant-digit radix sort, 11 bits per pass; a pass whose digit is the same in every
    /// key (the id's unused high bits) is skipped, so a 50,257-entry vocabulary takes five passes.
    /// </summary>
    private static void RadixSort(Span<ulong> keys, Span<ulong> scratch)
    {
        const int DigitBits = 11, Buckets = 1 << DigitBits, Digits = (64 + DigitBits - 1) / DigitBits;
        if (keys.Length < 2) return;
        Span<int> counts = stackalloc int[Digits * Buckets];
        counts.Clear();
        foreach (ulong key in keys)
            for (int digit = 0; digit < Digits; digit++) counts[digit * Buckets + (int)((key >> (DigitBits * digit)) & (Buckets - 1))]++;
        bool inScratch = false;
        for (int digit = 0; digit < Digits; digit++)
        {
            Span<int> starts = counts.Slice(digit * Buckets, Buckets);
            Span<ulong> from = inScratch ? scratch : keys, to = inScratch ? keys : scratch;
            int shift = DigitBits * digit;
            if (starts[(int)((from[0] >> shift) & (Buckets - 1))] == keys.Length) continue;
            int sum = 0;
            for (int b = 0; b < Buckets; b++) (starts[b], sum) = (sum, sum + starts[b]);
            foreach (ulong key in from) to[starts[(int)((key >> shift) & (Buckets - 1))]++] = key;
            inScratch = !inScratch;
        }
        if (inScratch) scratch.CopyTo(keys);
    }

    /// <summary>
    /// A key whose ascending order is descending logit, then ascending id: the float's bits mapped to
    /// an unsigned order (negative values flipped, positive ones offset past them), inverted, above the id's 20 bits.
    /// </summary>
    private static ulong SortKey(in Candidate c)
    {
        uint bits = BitConverter.SingleToUInt32Bits(c.Logit == 0 ? 0f : c.Logit); // −0 ties with +0, as the comparison did
        uint ascending = float.IsNaN(c.Logit) ? 0 : (bits & 0x8000_0000) != 0 ? ~bits : bits | 0x8000_0000; // NaN below −∞
        return ((ulong)~ascending << IdBits) | (uint)c.Id;
    }
}
