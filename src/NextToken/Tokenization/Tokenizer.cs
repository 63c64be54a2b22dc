using System.Text;
using NextToken.Gguf;

namespace NextToken.Tokenization;

/// <summary>Token ids with the UTF-16 range [Start, End) of the input each one came from.</summary>
public sealed record EncodedText(int[] Ids, (int Start, int End)[] Offsets)
{
    public int Count => Ids.Length;
}

/// <summary>Text ↔ token ids for one vocabulary.</summary>
public abstract class Tokenizer
{
    private readonly (string Text, int Id)[] _specialTokens; // longest first

    protected Tokenizer(Vocabulary vocabulary)
    {
        Vocabulary = vocabulary;
        _specialTokens = Enumerable.Range(0, vocabulary.Count)
            .Where(id => vocabulary.Types[id] is TokenType.Control or TokenType.UserDefined && vocabulary.Tokens[id].Length > 0)
            .Select(id => (vocabulary.Tokens[id], id))
            .OrderByDescending(t => t.Item1.Length)
            .ToArray();
    }

    public Vocabulary Vocabulary { get; }

    public int VocabSize => Vocabulary.Count;

    /// <summary>
    /// Splits <paramref name="text"/> into tokens. Special tokens such as <c>&lt;|endoftext|&gt;</c>
    /// are recognised only when <paramref name="parseSpecial"/> is set; otherwise they are
    /// tokenized as the plain text they are.
    /// </summary>
    public abstract EncodedText Encode(string text, bool addBos = false, bool parseSpecial = false);

    /// <summary>
    /// Encodes text as its special tokens and the plain segments between them; each plain
    /// segment goes to <paramref name="encodeSegment"/> (start, end, whether it follows a special
    /// token or the start of the input).
    /// </summary>
    protected EncodedText EncodeSegments(string text, bool addBos, bool parseSpecial, Action<int, int, bool, List<int>, List<(int, int)>> encodeSegment)
    {
        var ids = new List<int>();
        var offsets = new List<(int, int)>();
        if (addBos && Vocabulary.BosId is { } bos)
        {
            ids.Add(bos);
            offsets.Add((0, 0));
        }
        bool afterSpecial = true;
        for (int segmentStart = 0; segmentStart <= text.Length;)
        {
            (int at, int specialId, int specialLength) = FindSpecial(text, segmentStart, parseSpecial);
            int segmentEnd = at < 0 ? text.Length : at;
            if (segmentEnd > segmentStart)
            {
                encodeSegment(segmentStart, segmentEnd, afterSpecial, ids, offsets);
                afterSpecial = false;
            }
            if (at < 0) break;
            ids.Add(specialId);
            offsets.Add((at, at + specialLength));
            afterSpecial = true;
            segmentStart = at + specialLength;
        }
        return new EncodedText(ids.ToArray(), offsets.ToArray());
    }

    /// <summary>
    /// The first special token in text[from..]: user-defined tokens always match, control tokens
    /// (BOS, EOS, <c>&lt;|endoftext|&gt;</c>) only when <paramref name="parseSpecial"/> is set, as in llama.cpp.
    /// Returns At = -1 when there is none.
    /// </summary>
    private (int At, int Id, int Length) FindSpecial(string text, int from, bool parseSpecial)
    {
        int bestAt = -1, bestId = -1, bestLength = 0;
        foreach (var (special, id) in _specialTokens)
        {
            if (!parseSpecial && Vocabulary.Types[id] == TokenType.Control) continue;
            int at = text.IndexOf(special, from, StringComparison.Ordinal);
            if (at >= 0 && (bestAt < 0 || at < bestAt))
                (bestAt, bestId, bestLength) = (at, id, special.Length); // longest first, so ties keep the longest
        }
        return (bestAt, bestId, bestLength);
    }

    /// <summary>The raw bytes a token stands for (a token may hold part of a UTF-8 character).</summary>
    public abstract ReadOnlySpan<byte> TokenBytes(int id);

    public virtual string Decode(ReadOnlySpan<int> ids)
    {
        var bytes = new List<byte>();
        foreach (int id in ids)
        {
            CheckId(id);
            foreach (byte b in TokenBytes(id)) bytes.Add(b);
        }
        return Encoding.UTF8.GetString(bytes.ToArray());
    }

    /// <summary>The token's text as decoded on its own (invalid partial UTF-8 becomes U+FFFD).</summary>
    public string TokenText(int id)
    {
        CheckId(id);
        return Encoding.UTF8.GetString(TokenBytes(id));
    }

    /// <summary>The token's text with whitespace made visible and partial UTF-8 shown as byte values.</summary>
    public string TokenDisplay(int id)
    {
        CheckId(id);
        return VisibleText.Of(TokenBytes(id));
    }

    public void CheckId(int id)
    {
        if ((uint)id >= (uint)VocabSize)
            throw new TokenOutOfRangeException(id, VocabSize);
    }

    /// <summary>Builds the tokenizer that <c>tokenizer.ggml.model</c> names.</summary>
    public static Tokenizer Load(GgufFile file)
    {
        string model = file.GetString("tokenizer.ggml.model");
        return model switch
        {
            "gpt2" => ByteLevelBpeTokenizer.FromGguf(file),
            "llama" => SentencePieceTokenizer.FromGguf(file),
            _ => throw new GgufFormatException(file.FilePath, null, $"'tokenizer.ggml.model' is \"{model}\"; this version supports \"gpt2\" (byte-level BPE) and \"llama\" (SentencePiece BPE)"),
        };
    }
}

public sealed class TokenOutOfRangeException(int id, int vocabSize)
    : NextTokenException($"token id {id} is out of range; expected 0 to {vocabSize - 1}")
{
    public int Id { get; } = id;
}
