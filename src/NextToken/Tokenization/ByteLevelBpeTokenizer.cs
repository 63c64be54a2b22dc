using System.Collections.Concurrent;
using System.Text;
using NextToken.Gguf;

namespace NextToken.Tokenization;

/// <summary>
/// Byte-level BPE as GPT-2 defines it: text is split by the pre-tokenizer, each piece's UTF-8
/// bytes become one token each (through GPT-2's byte↔unicode table), and adjacent tokens are
/// merged lowest merge rank first until no listed merge applies.
/// </summary>
public sealed class ByteLevelBpeTokenizer : Tokenizer
{
    private const int MaxCachedPieces = 65536;

    private readonly byte[][] _tokenBytes;          // [vocab] bytes each token decodes to
    private readonly int[] _byteTokenIds;           // [256] token of each single byte
    private readonly BpeMerges _merges;
    private readonly char[] _byteToChar;
    private readonly ConcurrentDictionary<string, int[]> _pieceCache = new(StringComparer.Ordinal);
    [ThreadStatic] private static List<(int Start, int End)>? _scratchPieces;

    internal ByteLevelBpeTokenizer(Vocabulary vocabulary, IReadOnlyList<string> merges, PreTokenizer preTokenizer, bool ignoreMerges, bool nfc, string mergesKey)
        : base(vocabulary)
    {
        PreTokenizer = preTokenizer;
        IgnoreMerges = ignoreMerges;
        Nfc = nfc;
        char[] byteToChar = ByteToUnicode();
        var charToByte = new Dictionary<char, byte>(256);
        for (int b = 0; b < 256; b++) charToByte[byteToChar[b]] = (byte)b;

        string[] tokens = vocabulary.Tokens;
        _tokenBytes = new byte[tokens.Length][];
        for (int id = 0; id < tokens.Length; id++)
        {
            TokenType type = vocabulary.Types[id];
            _tokenBytes[id] = type is TokenType.Control or TokenType.UserDefined
                ? Encoding.UTF8.GetBytes(tokens[id])
                : MapToBytes(tokens[id], charToByte);
        }

        // Some vocabularies leave out bytes that valid UTF-8 never holds (0xC0, 0xC1, 0xF5…); -1 marks them.
        _byteTokenIds = new int[256];
        for (int b = 0; b < 256; b++)
            _byteTokenIds[b] = vocabulary.TryGetId(byteToChar[b].ToString(), out int id) ? id : -1;

        _merges = new BpeMerges(vocabulary, merges, mergesKey);
        _byteToChar = byteToChar;
    }

    public ByteLevelBpeTokenizer(Vocabulary vocabulary, IReadOnlyList<string> merges, string preTokenizer)
        : this(vocabulary, merges, PreTokenizer.ForName(preTokenizer, vocabulary.Source), IgnoresMerges(preTokenizer), nfc: false, "tokenizer.ggml.merges")
    {
    }

    /// <summary>llama.cpp looks a whole pre-token up before merging for Llama 3's pre-tokenizer (Hugging Face's <c>ignore_merges</c>).</summary>
    private static bool IgnoresMerges(string preTokenizer) => preTokenizer is "llama-bpe" or "llama3" or "llama-v3" or "smaug-bpe" or "dbrx";

    /// <summary>Whether a pre-token that is itself a vocabulary entry becomes that token without merging.</summary>
    public bool IgnoreMerges { get; }

    /// <summary>Whether text is put in Unicode normalization form C first (Qwen's tokenizer.json).</summary>
    public bool Nfc { get; }

    public PreTokenizer PreTokenizer { get; }

    public static ByteLevelBpeTokenizer FromGguf(GgufFile file)
    {
        var vocabulary = Vocabulary.FromGguf(file);
        string[] merges = file.GetArray<string>("tokenizer.ggml.merges");
        string pre = file.GetStringOrNull("tokenizer.ggml.pre") ?? "default";
        return new ByteLevelBpeTokenizer(vocabulary, merges, pre);
    }

    public override ReadOnlySpan<byte> TokenBytes(int id) => _tokenBytes[id];

    public override EncodedText Encode(string text, bool addBos = false, bool parseSpecial = false)
    {
        // One list of pieces per thread, reused: it is scratch space, not part of the result.
        var pieces = _scratchPieces ??= new List<(int Start, int End)>();
        return EncodeSegments(text, addBos, parseSpecial, (start, end, _, ids, offsets) =>
        {
            if (Nfc && !text.AsSpan(start, end - start).IsNormalized(NormalizationForm.FormC))
            {
                // Normalizing changes the text: every token of this segment reports the whole segment.
                string normalized = text.Substring(start, end - start).Normalize(NormalizationForm.FormC);
                pieces.Clear();
                PreTokenizer.Split(normalized, 0, normalized.Length, pieces);
                int first = ids.Count;
                foreach (var (pieceStart, pieceEnd) in pieces)
                    EncodePiece(normalized, pieceStart, pieceEnd, ids, offsets);
                for (int k = first; k < offsets.Count; k++) offsets[k] = (start, end);
                return;
            }
            pieces.Clear();
            PreTokenizer.Split(text, start, end, pieces);
            foreach (var (pieceStart, pieceEnd) in pieces)
                EncodePiece(text, pieceStart, pieceEnd, ids, offsets);
        });
    }

    private void EncodePiece(string text, int start, int end, List<int> ids, List<(int, int)> offsets)
    {
        ReadOnlySpan<char> piece = text.AsSpan(start, end - start);
        var cache = _pieceCache.GetAlternateLookup<ReadOnlySpan<char>>();
        if (!cache.TryGetValue(piece, out int[]? pieceIds))
        {
            var bytes = new byte[Encoding.UTF8.GetByteCount(piece)];
            Encoding.UTF8.GetBytes(piece, bytes);
            pieceIds = MergeBytes(bytes);
            if (_pieceCache.Count >= MaxCachedPieces) _pieceCache.Clear();
            cache.TryAdd(piece, pieceIds);
        }
        // Walk the piece's characters alongside the tokens' bytes. A token that starts or ends
        // inside a character reports that whole character, so neighbouring offsets may overlap.
        // A token's bytes may not be the piece's own: the unknown token stands for one byte the vocabulary lacks, and a
        // hostile file's merge results need not spell their parts; the walk stays inside the piece either way.
        int charIndex = 0, charBytes = 0, charByteStart = 0;
        int consumed = 0, last = Encoding.UTF8.GetByteCount(piece) - 1;
        foreach (int id in pieceIds)
        {
            int tokenEnd = consumed + (id == Vocabulary.UnknownId ? 1 : _tokenBytes[id].Length);
            AdvanceTo(piece, Math.Min(consumed, last), ref charIndex, ref charByteStart, ref charBytes);
            int startChar = charIndex;
            AdvanceTo(piece, Math.Clamp(tokenEnd - 1, 0, last), ref charIndex, ref charByteStart, ref charBytes);
            int endChar = charIndex + (char.IsHighSurrogate(piece[charIndex]) && charIndex + 1 < piece.Length ? 2 : 1);
            ids.Add(id);
            offsets.Add((start + startChar, start + endChar));
            consumed = tokenEnd;
        }
    }

    /// <summary>Moves the character cursor forward to the character holding UTF-8 byte <paramref name="targetByte"/>.</summary>
    private static void AdvanceTo(ReadOnlySpan<char> piece, int targetByte, ref int charIndex, ref int charByteStart, ref int charBytes)
    {
        if (charBytes == 0) charBytes = Utf8Length(piece, charIndex);
        while (targetByte >= charByteStart + charBytes)
        {
            charIndex += char.IsHighSurrogate(piece[charIndex]) && charIndex + 1 < piece.Length ? 2 : 1;
            charByteStart += charBytes;
            charBytes = Utf8Length(piece, charIndex);
        }
    }

    private static int Utf8Length(ReadOnlySpan<char> piece, int charIndex)
    {
        Rune.DecodeFromUtf16(piece[charIndex..], out Rune rune, out _);
        return rune.Utf8SequenceLength; // a lone surrogate decodes as U+FFFD: 3 bytes, as UTF-8 encoding writes it
    }

    /// <summary>BPE over one piece's bytes (after a whole-piece lookup when merges are ignored).</summary>
    private int[] MergeBytes(byte[] bytes)
    {
        if (IgnoreMerges && bytes.Length > 1)
        {
            Span<char> mapped = bytes.Length <= 256 ? stackalloc char[bytes.Length] : new char[bytes.Length];
            for (int i = 0; i < bytes.Length; i++) mapped[i] = _byteToChar[bytes[i]];
            if (Vocabulary.TryGetId(mapped, out int whole) && Vocabulary.Types[whole] == TokenType.Normal) return [whole];
        }
        var symbol = new int[bytes.Length];
        for (int i = 0; i < bytes.Length; i++)
            symbol[i] = _byteTokenIds[bytes[i]] >= 0 ? _byteTokenIds[bytes[i]]
                : Vocabulary.UnknownId ?? throw new NextTokenException($"{Vocabulary.Source}: the text needs byte 0x{bytes[i]:X2}, which this vocabulary has no token for (and it names no unknown token)");
        return _merges.Merge(symbol);
    }

    private static byte[] MapToBytes(string token, Dictionary<char, byte> charToByte)
    {
        var bytes = new byte[token.Length];
        for (int i = 0; i < token.Length; i++)
        {
            if (!charToByte.TryGetValue(token[i], out bytes[i]))
                return Encoding.UTF8.GetBytes(token); // not a byte-level token: take its text as it is
        }
        return bytes;
    }

    /// <summary>GPT-2's reversible byte → printable character table (<c>bytes_to_unicode</c>).</summary>
    public static char[] ByteToUnicode()
    {
        var table = new char[256];
        int extra = 0;
        for (int b = 0; b < 256; b++)
        {
            bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            table[b] = printable ? (char)b : (char)(256 + extra++);
        }
        return table;
    }
}
