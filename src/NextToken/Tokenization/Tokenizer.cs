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
    private readonly Dictionary<char, (string Text, int Id)[]> _specialsByFirstChar; // each list longest first
    private readonly System.Buffers.SearchValues<char> _specialFirstChars;
    private readonly Dictionary<int, (bool Left, bool Right)> _strip = new();

    protected Tokenizer(Vocabulary vocabulary)
    {
        Vocabulary = vocabulary;
        _specialsByFirstChar = Enumerable.Range(0, vocabulary.Count)
            .Where(id => vocabulary.Types[id] is TokenType.Control or TokenType.UserDefined && vocabulary.Tokens[id].Length > 0)
            .Select(id => (Text: vocabulary.Tokens[id], Id: id))
            .GroupBy(t => t.Text[0])
            .ToDictionary(g => g.Key, g => g.OrderByDescending(t => t.Text.Length).ToArray());
        _specialFirstChars = System.Buffers.SearchValues.Create(_specialsByFirstChar.Keys.ToArray());
    }

    /// <summary>
    /// Makes an added token take the whitespace on its left and/or right with it (tokenizer.json's
    /// <c>lstrip</c> / <c>rstrip</c>), so that whitespace is not tokenized.
    /// </summary>
    internal void SetStrip(int id, bool left, bool right)
    {
        if (left || right) _strip[id] = (left, right);
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
        // Sized for about four characters per token (English prose), so the lists rarely grow.
        int expected = text.Length / 4 + 16;
        var ids = new List<int>(expected);
        var offsets = new List<(int, int)>(expected);
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
            int next = at + specialLength;
            if (at >= 0 && _strip.TryGetValue(specialId, out var strip))
            {
                if (strip.Left) while (segmentEnd > segmentStart && char.IsWhiteSpace(text[segmentEnd - 1])) segmentEnd--;
                if (strip.Right) while (next < text.Length && char.IsWhiteSpace(text[next])) next++;
            }
            if (segmentEnd > segmentStart)
            {
                encodeSegment(segmentStart, segmentEnd, afterSpecial, ids, offsets);
                afterSpecial = false;
            }
            if (at < 0) break;
            ids.Add(specialId);
            offsets.Add((segmentEnd, next));
            afterSpecial = true;
            segmentStart = next;
        }
        return new EncodedText(ids.ToArray(), offsets.ToArray());
    }

    /// <summary>
    /// The first special token in text[from..], the longest one where several start at the same place:
    /// user-defined tokens always match, control tokens (BOS, EOS, <c>&lt;|endoftext|&gt;</c>) only when
    /// <paramref name="parseSpecial"/> is set, as in llama.cpp. Returns At = -1 when there is none.
    /// </summary>
    private (int At, int Id, int Length) FindSpecial(string text, int from, bool parseSpecial)
    {
        for (int at = from; at < text.Length;)
        {
            int found = text.AsSpan(at).IndexOfAny(_specialFirstChars);
            if (found < 0) break;
            at += found;
            foreach (var (special, id) in _specialsByFirstChar[text[at]])
            {
                if (!parseSpecial && Vocabulary.Types[id] == TokenType.Control) continue;
                if (text.AsSpan(at).StartsWith(special, StringComparison.Ordinal)) return (at, id, special.Length);
            }
            at++;
        }
        return (-1, -1, 0);
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
