namespace NextToken.Tokenization;

/// <summary>
/// A BPE merge list over token ids: adjacent symbols are merged lowest rank first (leftmost among
/// equal ranks) until no listed pair is left, as Hugging Face and llama.cpp both do.
/// </summary>
internal sealed class BpeMerges
{
    private readonly Dictionary<long, (int Rank, int Merged)> _merges; // (left, right) → rank, result

    public BpeMerges(Vocabulary vocabulary, IReadOnlyList<string> merges, string key)
    {
        _merges = new Dictionary<long, (int, int)>(merges.Count);
        for (int rank = 0; rank < merges.Count; rank++)
        {
            string merge = merges[rank];
            int space = merge.Length > 1 ? merge.IndexOf(' ', 1) : -1;
            if (space < 0)
                throw new NextTokenException($"{vocabulary.Source}: '{key}' entry {rank} \"{merge}\" is not two tokens separated by a space");
            string left = merge[..space], right = merge[(space + 1)..];
            if (!vocabulary.TryGetId(left, out int leftId) || !vocabulary.TryGetId(right, out int rightId) ||
                !vocabulary.TryGetId(left + right, out int mergedId))
                throw new NextTokenException($"{vocabulary.Source}: '{key}' entry {rank} \"{merge}\" names a token that is not in the vocabulary");
            _merges.TryAdd(PairKey(leftId, rightId), (rank, mergedId));
        }
    }

    /// <summary>
    /// Merges <paramref name="symbol"/> in place; returns the ids left, in order. <paramref name="firstSymbols"/>,
    /// when given, receives the index of the first input symbol of each returned token.
    /// </summary>
    public int[] Merge(int[] symbol, List<int>? firstSymbols = null)
    {
        int n = symbol.Length;
        var next = new int[n];
        var prev = new int[n];
        for (int i = 0; i < n; i++)
        {
            next[i] = i + 1 < n ? i + 1 : -1;
            prev[i] = i - 1;
        }
        var queue = new PriorityQueue<int, long>();
        for (int i = 0; i + 1 < n; i++) Enqueue(queue, symbol, i, i + 1);
        while (queue.TryDequeue(out int left, out long priority))
        {
            int right = next[left];
            if (symbol[left] < 0 || right < 0) continue;
            if (!_merges.TryGetValue(PairKey(symbol[left], symbol[right]), out var merge) || merge.Rank != (int)(priority >> 32))
                continue; // stale entry: one side was merged since it was queued
            symbol[left] = merge.Merged;
            symbol[right] = -1;
            next[left] = next[right];
            if (next[left] >= 0) prev[next[left]] = left;
            if (prev[left] >= 0) Enqueue(queue, symbol, prev[left], left);
            if (next[left] >= 0) Enqueue(queue, symbol, left, next[left]);
        }
        int count = 0;
        for (int i = 0; i >= 0 && i < n; i = next[i]) count++;
        var result = new int[count];
        count = 0;
        for (int i = 0; i >= 0 && i < n; i = next[i])
        {
            result[count++] = symbol[i];
            firstSymbols?.Add(i);
        }
        return result;
    }

    private void Enqueue(PriorityQueue<int, long> queue, int[] symbol, int left, int right)
    {
        if (symbol[left] >= 0 && symbol[right] >= 0 && _merges.TryGetValue(PairKey(symbol[left], symbol[right]), out var merge))
            queue.Enqueue(left, ((long)merge.Rank << 32) | (uint)left);
    }

    private static long PairKey(int left, int right) => ((long)left << 32) | (uint)right;
}
