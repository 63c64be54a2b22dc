using System.Globalization;
using System.Text;
using NextToken.Gguf;

namespace NextToken.Tokenization;

/// <summary>
/// SentencePiece-style BPE as llama.cpp runs it for <c>tokenizer.ggml.model = llama</c>: spaces
/// become '▁', a leading '▁' is added to text that starts the input or follows a special token,
/// the text is split into Unicode characters, and adjacent pieces are merged highest piece score
/// first while the merged piece is in the vocabulary. Characters left without a token fall back
/// to their UTF-8 bytes as <c>&lt;0xNN&gt;</c> tokens.
/// </summary>
public sealed class SentencePieceTokenizer : Tokenizer
{
    private const char SpaceMarker = '\u2581'; // ▁

    private readonly float[] _scores;       // [vocab] merge priority of each piece
    private readonly byte[][] _tokenBytes;  // [vocab] bytes each token decodes to
    private readonly int[] _byteTokenIds;   // [256] id of <0xNN>, or -1

    public SentencePieceTokenizer(Vocabulary vocabulary, float[] scores, bool addSpacePrefix) : base(vocabulary)
    {
        if (scores.Length != vocabulary.Count)
            throw new NextTokenException($"{vocabulary.Source}: 'tokenizer.ggml.scores' has {scores.Length} entries; expected one per token ({vocabulary.Count})");
        _scores = scores;
        AddSpacePrefix = addSpacePrefix;
        _byteTokenIds = Enumerable.Repeat(-1, 256).ToArray();
        _tokenBytes = new byte[vocabulary.Count][];
        for (int id = 0; id < vocabulary.Count; id++)
        {
            string token = vocabulary.Tokens[id];
            if (vocabulary.Types[id] == TokenType.Byte && TryParseByteToken(token, out byte value))
            {
                _byteTokenIds[value] = id;
                _tokenBytes[id] = [value];
            }
            else
            {
                _tokenBytes[id] = Encoding.UTF8.GetBytes(token.Replace(SpaceMarker, ' '));
            }
        }
    }

    /// <summary>Whether a '▁' is put in front of text at the start (llama.cpp's <c>add_space_prefix</c>).</summary>
    public bool AddSpacePrefix { get; }

    public static SentencePieceTokenizer FromGguf(GgufFile file)
    {
        var vocabulary = Vocabulary.FromGguf(file);
        float[] scores = file.GetArrayOrNull<float>("tokenizer.ggml.scores") ?? new float[vocabulary.Count];
        bool addSpacePrefix = file.GetBoolOrNull("tokenizer.ggml.add_space_prefix") ?? true;
        return new SentencePieceTokenizer(vocabulary, scores, addSpacePrefix);
    }

    public override ReadOnlySpan<byte> TokenBytes(int id) => _tokenBytes[id];

    public override EncodedText Encode(string text, bool addBos = false, bool parseSpecial = false) =>
        EncodeSegments(text, addBos, parseSpecial, (start, end, afterSpecial, ids, offsets) =>
            EncodeSegment(text, start, end, AddSpacePrefix && afterSpecial, ids, offsets));

    private void EncodeSegment(string text, int start, int end, bool prefix, List<int> ids, List<(int, int)> offsets)
    {
        // The normalized text: '▁' for every space, one more in front when prefixed.
        int shift = prefix ? 1 : 0;
        var normalized = new char[end - start + shift];
        if (prefix) normalized[0] = SpaceMarker;
        for (int i = start; i < end; i++) normalized[i - start + shift] = text[i] == ' ' ? SpaceMarker : text[i];

        // One symbol per Unicode character, linked left to right.
        var symbolStart = new List<int>();
        for (int i = 0; i < normalized.Length; i += IsPairAt(normalized, i) ? 2 : 1) symbolStart.Add(i);
        int n = symbolStart.Count;
        var length = new int[n];
        var next = new int[n];
        var prev = new int[n];
        for (int s = 0; s < n; s++)
        {
            length[s] = (s + 1 < n ? symbolStart[s + 1] : normalized.Length) - symbolStart[s];
            next[s] = s + 1 < n ? s + 1 : -1;
            prev[s] = s - 1;
        }

        // Highest score first; among equal scores the leftmost pair.
        var queue = new PriorityQueue<(int Left, int Right, int Length), (float NegativeScore, int Left)>();
        void TryQueue(int left, int right)
        {
            if (left < 0 || right < 0) return;
            int merged = length[left] + length[right];
            if (Vocabulary.TryGetId(normalized.AsSpan(symbolStart[left], merged), out int id))
                queue.Enqueue((left, right, merged), (-_scores[id], left));
        }
        for (int s = 0; s + 1 < n; s++) TryQueue(s, s + 1);
        while (queue.TryDequeue(out var bigram, out _))
        {
            if (length[bigram.Left] == 0 || length[bigram.Right] == 0 || length[bigram.Left] + length[bigram.Right] != bigram.Length)
                continue; // one side changed since this pair was queued
            length[bigram.Left] = bigram.Length;
            length[bigram.Right] = 0;
            next[bigram.Left] = next[bigram.Right];
            if (next[bigram.Left] >= 0) prev[next[bigram.Left]] = bigram.Left;
            TryQueue(prev[bigram.Left], bigram.Left);
            TryQueue(bigram.Left, next[bigram.Left]);
        }

        for (int s = 0; s >= 0 && s < n; s = next[s])
        {
            int from = symbolStart[s], count = length[s];
            int originalStart = start + Math.Max(0, from - shift), originalEnd = start + Math.Max(0, from + count - shift);
            if (Vocabulary.TryGetId(normalized.AsSpan(from, count), out int id))
            {
                ids.Add(id);
                offsets.Add((originalStart, originalEnd));
                continue;
            }
            // Byte fallback: <0xNN> for each UTF-8 byte of the character(s).
            foreach (byte b in Encoding.UTF8.GetBytes(normalized, from, count))
            {
                ids.Add(_byteTokenIds[b] >= 0 ? _byteTokenIds[b] : Vocabulary.UnknownId ?? throw MissingByte(b));
                offsets.Add((originalStart, originalEnd));
            }
        }
    }

    /// <summary>Like the base class, but without the space the encoder put in front of the text.</summary>
    public override string Decode(ReadOnlySpan<int> ids)
    {
        string text = base.Decode(ids);
        int first = 0;
        while (first < ids.Length && Vocabulary.Types[ids[first]] == TokenType.Control) first++;
        bool prefixed = AddSpacePrefix && first < ids.Length && Vocabulary.Types[ids[first]] == TokenType.Normal
                        && Vocabulary.Tokens[ids[first]].StartsWith(SpaceMarker);
        if (!prefixed) return text;
        int at = Encoding.UTF8.GetByteCount(base.Decode(ids[..first]));
        return text.Remove(Encoding.UTF8.GetCharCount(Encoding.UTF8.GetBytes(text), 0, at), 1);
    }

    private NextTokenException MissingByte(byte b) =>
        new($"{Vocabulary.Source}: the text needs byte 0x{b:X2}, which this vocabulary has no token for (and it names no unknown token)");

    private static bool IsPairAt(char[] chars, int i) =>
        char.IsHighSurrogate(chars[i]) && i + 1 < chars.Length && char.IsLowSurrogate(chars[i + 1]);

    private static bool TryParseByteToken(string token, out byte value)
    {
        value = 0;
        return token.Length == 6 && token.StartsWith("<0x", StringComparison.Ordinal) && token[5] == '>'
               && byte.TryParse(token.AsSpan(3, 2), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out value);
    }
}
