using System.Text;
using System.Text.RegularExpressions;
using NextToken.Tokenization;

namespace NextToken.Training;

/// <summary>The split patterns of minbpe's RegexTokenizer.</summary>
public enum SplitPattern
{
    /// <summary>GPT-2's pattern, through the project's code-point scanner (<see cref="Gpt2PreTokenizer"/>).</summary>
    Gpt2,
    /// <summary>GPT-4's (cl100k) pattern as a .NET Regex (possessive quantifiers written as atomic groups).</summary>
    Gpt4,
}

/// <summary>A trained byte-level BPE: ids 0–255 are the bytes, merge k makes id 256+k, special tokens follow.</summary>
public sealed class BpeModel
{
    public BpeModel(IReadOnlyList<(int Left, int Right)> merges, IReadOnlyList<long> counts, IReadOnlyList<int> tiedWith, SplitPattern pattern, IReadOnlyList<string> special)
    {
        Merges = merges;
        Counts = counts;
        TiedWith = tiedWith;
        Pattern = pattern;
        Special = special;
        var bytes = new byte[256 + merges.Count][];
        for (int b = 0; b < 256; b++) bytes[b] = [(byte)b];
        for (int k = 0; k < merges.Count; k++) bytes[256 + k] = [.. bytes[merges[k].Left], .. bytes[merges[k].Right]];
        TokenBytes = bytes;
        _rank = new Dictionary<long, int>(merges.Count);
        for (int k = 0; k < merges.Count; k++) _rank[BpeTrainer.Key(merges[k].Left, merges[k].Right)] = k;
    }

    private readonly Dictionary<long, int> _rank;

    public IReadOnlyList<(int Left, int Right)> Merges { get; }
    /// <summary>Each merge's pair count when it was chosen.</summary>
    public IReadOnlyList<long> Counts { get; }
    /// <summary>How many other pairs had the same count when each merge was chosen (the tie rule decided when above 0).</summary>
    public IReadOnlyList<int> TiedWith { get; }
    public SplitPattern Pattern { get; }
    public IReadOnlyList<string> Special { get; }
    /// <summary>Bytes of ids 0 … 255 + merges − 1.</summary>
    public IReadOnlyList<byte[]> TokenBytes { get; }
    public int VocabSize => 256 + Merges.Count + Special.Count;

    /// <summary>minbpe's encoding: per chunk, repeatedly merge the pair of lowest merge id (all its occurrences, left to right).</summary>
    public List<int> Encode(string text, bool split = true)
    {
        var ids = new List<int>();
        var chunk = new List<int>();
        foreach (string piece in split ? BpeTrainer.Split(text, Pattern) : [text])
        {
            chunk.Clear();
            foreach (byte b in Encoding.UTF8.GetBytes(piece)) chunk.Add(b);
            while (chunk.Count >= 2)
            {
                int best = int.MaxValue;
                for (int i = 0; i + 1 < chunk.Count; i++)
                    if (_rank.TryGetValue(BpeTrainer.Key(chunk[i], chunk[i + 1]), out int r) && r < best) best = r;
                if (best == int.MaxValue) break;
                var (l, rr) = Merges[best];
                int w = 0;
                for (int i = 0; i < chunk.Count; i++)
                {
                    if (i + 1 < chunk.Count && chunk[i] == l && chunk[i + 1] == rr) { chunk[w++] = 256 + best; i++; }
                    else chunk[w++] = chunk[i];
                }
                chunk.RemoveRange(w, chunk.Count - w);
            }
            ids.AddRange(chunk);
        }
        return ids;
    }
}

/// <summary>
/// Trains a byte-level BPE as minbpe's RegexTokenizer does (most frequent pair each round; ties go
/// to the pair whose first occurrence in the token sequence comes first), but counting pairs
/// incrementally: the text is reduced to its unique chunks with their counts, and a merge only
/// recounts the chunks that hold the merged pair. The first occurrence of a pair in the whole
/// sequence is its first occurrence in the earliest-appearing unique chunk that holds it, so the
/// tie rule needs no pass over the text either.
/// </summary>
public static class BpeTrainer
{
    public const string Gpt2Regex = @"'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";
    /// <summary>minbpe's GPT4_SPLIT_PATTERN; its possessive <c>?+</c> and <c>++</c> are atomic groups here (.NET has no possessive quantifiers).</summary>
    public const string Gpt4Regex = @"'(?i:[sdmt]|ll|ve|re)|(?>[^\r\n\p{L}\p{N}]?)\p{L}+|\p{N}{1,3}| ?(?>[^\s\p{L}\p{N}]+)[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+";
    /// <summary>The same pattern with possessive quantifiers, as written for Hugging Face tokenizers (Oniguruma).</summary>
    public const string Gpt4RegexPossessive = @"'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+";

    private static readonly Regex Gpt4 = new(Gpt4Regex, RegexOptions.Compiled | RegexOptions.CultureInvariant);

    internal static long Key(int left, int right) => (long)left << 32 | (uint)right;

    public static IEnumerable<string> Split(string text, SplitPattern pattern)
    {
        if (pattern == SplitPattern.Gpt4)
        {
            foreach (Match m in Gpt4.Matches(text)) yield return m.Value;
            yield break;
        }
        var pieces = new List<(int Start, int End)>();
        Gpt2PreTokenizer.Split(text, 0, text.Length, pieces);
        foreach (var (start, end) in pieces) yield return text[start..end];
    }

    /// <param name="progress">called after each merge with (merges done, merges wanted)</param>
    public static BpeModel Train(IEnumerable<string> texts, int vocabSize, SplitPattern pattern, IReadOnlyList<string>? special = null,
                                 Action<int, int>? progress = null)
    {
        special ??= [];
        int numMerges = vocabSize - 256 - special.Count;
        if (numMerges < 0)
            throw new NextTokenException($"vocabulary size {vocabSize} is below the 256 byte tokens plus {special.Count} special tokens");

        // Unique chunks in order of first appearance, with how often each occurs.
        var index = new Dictionary<string, int>(StringComparer.Ordinal);
        var chunks = new List<int[]>();
        var weights = new List<long>();
        foreach (string text in texts)
            foreach (string piece in Split(text, pattern))
            {
                if (index.TryGetValue(piece, out int at)) { weights[at]++; continue; }
                index[piece] = chunks.Count;
                byte[] bytes = Encoding.UTF8.GetBytes(piece);
                chunks.Add([.. bytes.Select(b => (int)b)]);
                weights.Add(1);
            }
        int[] lengths = [.. chunks.Select(c => c.Length)];

        var counts = new Dictionary<long, long>();
        var holders = new Dictionary<long, HashSet<int>>();
        for (int c = 0; c < chunks.Count; c++)
            AddPairs(c, +1);

        var merges = new List<(int, int)>(numMerges);
        var mergeCounts = new List<long>(numMerges);
        var tied = new List<int>(numMerges);
        for (int k = 0; k < numMerges && counts.Count > 0; k++)
        {
            long best = 0, bestCount = 0;
            (int Chunk, int Pos) bestFirst = (-1, -1);
            int ties = 0;
            foreach (var (pair, count) in counts)
            {
                if (count > bestCount)
                {
                    (best, bestCount, bestFirst, ties) = (pair, count, (-1, -1), 0);
                }
                else if (count == bestCount)
                {
                    ties++;
                    if (bestFirst.Chunk < 0) bestFirst = FirstOccurrence(best);
                    var first = FirstOccurrence(pair);
                    if (first.Chunk < bestFirst.Chunk || (first.Chunk == bestFirst.Chunk && first.Pos < bestFirst.Pos))
                        (best, bestFirst) = (pair, first);
                }
            }
            int left = (int)(best >> 32), right = (int)(uint)best, id = 256 + k;
            merges.Add((left, right));
            mergeCounts.Add(bestCount);
            tied.Add(ties);
            foreach (int c in holders[best].ToArray())
            {
                AddPairs(c, -1);
                int[] tokens = chunks[c];
                int n = lengths[c], w = 0;
                for (int i = 0; i < n; i++)
                {
                    if (i + 1 < n && tokens[i] == left && tokens[i + 1] == right) { tokens[w++] = id; i++; }
                    else tokens[w++] = tokens[i];
                }
                lengths[c] = w;
                AddPairs(c, +1);
            }
            progress?.Invoke(k + 1, numMerges);
        }
        return new BpeModel(merges, mergeCounts, tied, pattern, special);

        // Adds (sign +1) or removes (−1) chunk c's pairs, each weighted by the chunk's count.
        void AddPairs(int c, int sign)
        {
            int[] tokens = chunks[c];
            long weight = weights[c] * sign;
            for (int i = 0; i + 1 < lengths[c]; i++)
            {
                long pair = Key(tokens[i], tokens[i + 1]);
                long updated = counts.GetValueOrDefault(pair) + weight;
                if (updated == 0)
                {
                    counts.Remove(pair);
                    holders.Remove(pair);
                }
                else
                {
                    counts[pair] = updated;
                    if (sign > 0)
                    {
                        if (!holders.TryGetValue(pair, out var set)) holders[pair] = set = [];
                        set.Add(c);
                    }
                }
            }
            // A chunk whose pairs were removed stays in the sets of pairs still counted elsewhere;
            // it is added back (or harmlessly remains) when its new pairs are counted, and
            // FirstOccurrence/merging skip chunks that no longer hold the pair.
        }

        (int Chunk, int Pos) FirstOccurrence(long pair)
        {
            int left = (int)(pair >> 32), right = (int)(uint)pair;
            (int, int) first = (int.MaxValue, int.MaxValue);
            foreach (int c in holders[pair])
            {
                if (c >= first.Item1) continue;
                int[] tokens = chunks[c];
                for (int i = 0; i + 1 < lengths[c]; i++)
                    if (tokens[i] == left && tokens[i + 1] == right) { first = (c, i); break; }
            }
            return first;
        }
    }
}
