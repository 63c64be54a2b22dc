using System.Globalization;
using System.Text;

namespace NextToken.Tokenization;

/// <summary>
/// Splits text into pieces before BPE, as llama.cpp does for each <c>tokenizer.ggml.pre</c> value:
/// a list of patterns applied in turn, each to every piece the previous one produced; both a
/// pattern's matches and the text between them become pieces. Patterns are written as scanners
/// over Unicode code points (letters and digits outside the BMP included).
/// </summary>
public sealed class PreTokenizer
{
    /// <summary>Length of a match at position i of text[..end], or 0 when the pattern does not match there.</summary>
    private delegate int Pattern(string text, int i, int end);

    private readonly Pattern[] _patterns;

    private PreTokenizer(string name, params Pattern[] patterns)
    {
        Name = name;
        _patterns = patterns;
    }

    public string Name { get; }

    public static readonly string[] Supported =
        ["gpt-2", "default", "mpt", "olmo", "falcon", "starcoder", "refact", "smollm", "deepseek-coder"];

    public static PreTokenizer ForName(string name, string source) => name switch
    {
        "gpt-2" or "mpt" or "olmo" => new(name, Gpt2PreTokenizer.MatchAt),
        "starcoder" or "refact" or "smollm" => new(name, SingleDigit, Gpt2PreTokenizer.MatchAt),
        "falcon" => new(name, Run(c => IsPunctuation(c) || "$+<=>^~|`".Contains((char)c)), Gpt2PreTokenizer.MatchAt, AsciiDigitTriple),
        "deepseek-coder" => new(name, LineBreak, SpaceThen(IsLetter), SpaceThen(IsPunctuation),
            Run(c => c is >= 0x4E00 and <= 0x9FA5 or >= 0x0800 and <= 0x4E00 or >= 0xAC00 and <= 0xD7FF), SingleDigit),
        // llama.cpp's choice when a BPE vocabulary names no pre-tokenizer.
        "default" => new(name, Run(c => IsPunctuation(c) || "$+<=>^~|".Contains((char)c)), Gpt2PreTokenizer.MatchAt,
            Run(IsNumber), AsciiDigitTriple),
        _ => throw new NextTokenException($"{source}: 'tokenizer.ggml.pre' is \"{name}\", a pre-tokenizer this version does not implement; supported: {string.Join(", ", Supported)}"),
    };

    public void Split(string text, int start, int end, List<(int Start, int End)> pieces)
    {
        if (_patterns.Length == 1 && _patterns[0] == (Pattern)Gpt2PreTokenizer.MatchAt)
        {
            Gpt2PreTokenizer.Split(text, start, end, pieces); // matches everything: no gaps to track
            return;
        }
        var current = new List<(int, int)> { (start, end) };
        var next = new List<(int, int)>();
        foreach (Pattern pattern in _patterns)
        {
            next.Clear();
            foreach (var (pieceStart, pieceEnd) in current)
            {
                int gapStart = pieceStart;
                for (int i = pieceStart; i < pieceEnd;)
                {
                    int length = pattern(text, i, pieceEnd);
                    if (length == 0)
                    {
                        i += CharWidth(text, i, pieceEnd);
                        continue;
                    }
                    if (gapStart < i) next.Add((gapStart, i));
                    next.Add((i, i + length));
                    i += length;
                    gapStart = i;
                }
                if (gapStart < pieceEnd) next.Add((gapStart, pieceEnd));
            }
            (current, next) = (next, current);
        }
        pieces.AddRange(current);
    }

    private static int SingleDigit(string text, int i, int end) => IsNumber(CodePoint(text, i, end, out int w)) ? w : 0;

    private static int AsciiDigitTriple(string text, int i, int end) =>
        i + 3 <= end && char.IsAsciiDigit(text[i]) && char.IsAsciiDigit(text[i + 1]) && char.IsAsciiDigit(text[i + 2]) ? 3 : 0;

    private static int LineBreak(string text, int i, int end) => text[i] is '\r' or '\n' ? 1 : 0;

    /// <summary>"X+" for a code point class X.</summary>
    private static Pattern Run(Func<int, bool> isMember) => (text, i, end) =>
    {
        int j = i;
        while (j < end && isMember(CodePoint(text, j, end, out int w))) j += w;
        return j - i;
    };

    /// <summary>"\s?X+" for a code point class X.</summary>
    private static Pattern SpaceThen(Func<int, bool> isMember)
    {
        Pattern run = Run(isMember);
        return (text, i, end) =>
        {
            if (Rune.IsWhiteSpace(RuneAt(text, i, end, out int w)) && i + w < end && run(text, i + w, end) is > 0 and var length)
                return w + length;
            return run(text, i, end);
        };
    }

    private static bool IsLetter(int c) => Rune.IsValid(c) && Rune.IsLetter(new Rune(c));

    private static bool IsNumber(int c) => Rune.IsValid(c) && Rune.GetUnicodeCategory(new Rune(c)) is
        UnicodeCategory.DecimalDigitNumber or UnicodeCategory.LetterNumber or UnicodeCategory.OtherNumber;

    private static bool IsPunctuation(int c) => Rune.IsValid(c) && Rune.GetUnicodeCategory(new Rune(c)) is
        UnicodeCategory.ConnectorPunctuation or UnicodeCategory.DashPunctuation or UnicodeCategory.OpenPunctuation
        or UnicodeCategory.ClosePunctuation or UnicodeCategory.InitialQuotePunctuation or UnicodeCategory.FinalQuotePunctuation
        or UnicodeCategory.OtherPunctuation;

    private static int CodePoint(string text, int i, int end, out int width) => RuneAt(text, i, end, out width).Value;

    private static Rune RuneAt(string text, int i, int end, out int width)
    {
        if (Rune.DecodeFromUtf16(text.AsSpan(i, end - i), out Rune rune, out width) != System.Buffers.OperationStatus.Done)
        {
            width = 1;
            return Rune.ReplacementChar;
        }
        return rune;
    }

    private static int CharWidth(string text, int i, int end) =>
        char.IsHighSurrogate(text[i]) && i + 1 < end && char.IsLowSurrogate(text[i + 1]) ? 2 : 1;
}
