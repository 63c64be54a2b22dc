using System.Globalization;
using System.Text;

namespace NextToken.Tokenization;

/// <summary>
/// BPE over Unicode characters as Hugging Face runs SentencePiece-converted vocabularies
/// (Phi-3, Gemma, Mistral, Llama 2 tokenizer.json files): the text is normalized ('▁' for spaces,
/// often one in front), each character becomes its token, characters without one fall back to their
/// UTF-8 bytes as <c>&lt;0xNN&gt;</c> tokens (<c>byte_fallback</c>) or to the unknown token, and pairs are
/// merged by merge rank.
/// </summary>
public sealed class CharBpeTokenizer : Tokenizer
{
    private const char SpaceMarker = '\u2581'; // ▁

    private readonly byte[][] _tokenBytes;  // [vocab] bytes each token decodes to
    private readonly int[] _byteTokenIds;   // [256] id of <0xNN>, or -1
    private readonly BpeMerges _merges;
    private readonly TextNormalizer _normalizer;
    private readonly PreTokenizer _preTokenizer;
    private readonly bool _byteFallback;
    private readonly bool _fuseUnknown;
    [ThreadStatic] private static List<int>? _firstSymbolsScratch;
    private static List<int> FirstSymbols => _firstSymbolsScratch ??= new List<int>();

    internal CharBpeTokenizer(Vocabulary vocabulary, IReadOnlyList<string> merges, TextNormalizer normalizer, PreTokenizer preTokenizer,
        bool byteFallback, bool fuseUnknown, string mergesKey) : base(vocabulary)
    {
        _normalizer = normalizer;
        _preTokenizer = preTokenizer;
        _byteFallback = byteFallback;
        _fuseUnknown = fuseUnknown;
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
                _tokenBytes[id] = Encoding.UTF8.GetBytes(vocabulary.Types[id] == TokenType.Control ? token : token.Replace(SpaceMarker, ' ')); // the decoder replaces ▁ in added tokens too
            }
        }
        _merges = new BpeMerges(vocabulary, merges, mergesKey);
    }

    public override ReadOnlySpan<byte> TokenBytes(int id) => _tokenBytes[id];

    public override EncodedText Encode(string text, bool addBos = false, bool parseSpecial = false)
    {
        var pieces = new List<(int Start, int End)>();
        var symbols = new List<int>();
        var symbolStarts = new List<int>();
        return EncodeSegments(text, addBos, parseSpecial, (start, end, _, ids, offsets) =>
        {
            string normalized = _normalizer.Apply(text, start, end, firstSegment: start == 0, out int[] origin);
            pieces.Clear();
            _preTokenizer.Split(normalized, 0, normalized.Length, pieces);
            foreach (var (pieceStart, pieceEnd) in pieces)
                EncodePiece(normalized, pieceStart, pieceEnd, origin, symbols, symbolStarts, ids, offsets);
        });
    }

    private void EncodePiece(string normalized, int start, int end, int[] origin, List<int> symbols, List<int> symbolStarts, List<int> ids, List<(int, int)> offsets)
    {
        // One symbol per character (or per byte of a character without a token).
        symbols.Clear();
        symbolStarts.Clear();
        Span<byte> bytes = stackalloc byte[4];
        for (int i = start; i < end;)
        {
            int width = char.IsHighSurrogate(normalized[i]) && i + 1 < end && char.IsLowSurrogate(normalized[i + 1]) ? 2 : 1;
            if (Vocabulary.TryGetId(normalized.AsSpan(i, width), out int id))
            {
                symbols.Add(id);
                symbolStarts.Add(i);
            }
            else
            {
                int count = Encoding.UTF8.GetBytes(normalized.AsSpan(i, width), bytes);
                bool allBytes = _byteFallback;
                for (int b = 0; b < count && allBytes; b++) allBytes = _byteTokenIds[bytes[b]] >= 0;
                if (allBytes)
                {
                    for (int b = 0; b < count; b++)
                    {
                        symbols.Add(_byteTokenIds[bytes[b]]);
                        symbolStarts.Add(i);
                    }
                }
                else
                {
                    int unknown = Vocabulary.UnknownId ?? throw new NextTokenException(
                        $"{Vocabulary.Source}: the text has '{normalized.Substring(i, width)}' (U+{char.ConvertToUtf32(normalized, i):X4}), which this vocabulary has no token for (and it names no unknown token)");
                    if (!(_fuseUnknown && symbols.Count > 0 && symbols[^1] == unknown))
                    {
                        symbols.Add(unknown);
                        symbolStarts.Add(i);
                    }
                }
            }
            i += width;
        }
        FirstSymbols.Clear();
        int[] merged = _merges.Merge(symbols.ToArray(), FirstSymbols);
        for (int t = 0; t < merged.Length; t++)
        {
            int from = symbolStarts[FirstSymbols[t]];
            int to = t + 1 < merged.Length ? symbolStarts[FirstSymbols[t + 1]] : end;
            ids.Add(merged[t]);
            offsets.Add((origin[from], Math.Max(origin[from], origin[to])));
        }
    }

    /// <summary>Like the base class, but without the space the normalizer put in front of the text.</summary>
    public override string Decode(ReadOnlySpan<int> ids)
    {
        string text = base.Decode(ids);
        if (!_normalizer.Prepends) return text;
        int first = 0;
        while (first < ids.Length && Vocabulary.Types[ids[first]] == TokenType.Control) first++;
        if (first >= ids.Length || Vocabulary.Types[ids[first]] != TokenType.Normal || !Vocabulary.Tokens[ids[first]].StartsWith(SpaceMarker)) return text;
        int at = Encoding.UTF8.GetByteCount(base.Decode(ids[..first]));
        return text.Remove(Encoding.UTF8.GetCharCount(Encoding.UTF8.GetBytes(text), 0, at), 1);
    }

    internal static bool TryParseByteToken(string token, out byte value)
    {
        value = 0;
        return token.Length == 6 && token.StartsWith("<0x", StringComparison.Ordinal) && token[5] == '>'
               && byte.TryParse(token.AsSpan(3, 2), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out value);
    }
}
