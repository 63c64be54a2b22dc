using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace NextToken.Tokenization;

/// <summary>How a split step treats the pieces its pattern matches (Hugging Face's <c>SplitDelimiterBehavior</c>).</summary>
public enum SplitBehavior { Isolated, Removed, MergedWithPrevious, MergedWithNext, Contiguous }

/// <summary>
/// Splits text into pieces before BPE, as llama.cpp does for each <c>tokenizer.ggml.pre</c> value
/// and as a <c>tokenizer.json</c> pre-tokenizer describes: a list of steps applied in turn, each to
/// every piece the previous one produced. Hand-written patterns scan Unicode code points; regular
/// expressions run on .NET <see cref="Regex"/> over a view of the text in which each character
/// outside the BMP is one placeholder of the same Unicode category (so <c>\p{L}</c>, <c>?</c> and
/// <c>{1,3}</c> count code points, as Rust's regex engines do).
/// </summary>
public sealed class PreTokenizer
{
    /// <summary>Length of a match at position i of text[..end], or 0 when the pattern does not match there.</summary>
    private delegate int Pattern(string text, int i, int end);

    /// <summary>Appends the pieces of text[start..end) to output.</summary>
    private delegate void Step(string text, int start, int end, List<(int Start, int End)> output);

    private readonly Step[] _steps;
    private readonly bool _gpt2Only;

    [ThreadStatic] private static List<(int, int)>? _scratchA, _scratchB;

    private PreTokenizer(string name, params Pattern[] patterns)
    {
        Name = name;
        _gpt2Only = patterns.Length == 1 && patterns[0] == (Pattern)Gpt2PreTokenizer.MatchAt;
        _steps = patterns.Select(p => (Step)((text, start, end, output) => Isolate(p, text, start, end, output))).ToArray();
    }

    private PreTokenizer(string name, Step[] steps)
    {
        Name = name;
        _steps = steps;
    }

    public string Name { get; }

    public static readonly string[] Supported =
        ["gpt-2", "default", "mpt", "olmo", "falcon", "starcoder", "refact", "smollm", "deepseek-coder",
         "llama-bpe", "llama3", "llama-v3", "smaug-bpe", "dbrx", "qwen2", "deepseek-r1-qwen", "deepseek-llm", "gpt-4o", "llama4"];

    // Llama 3's pattern; llama.cpp spells the case-insensitive contractions out as character classes.
    internal const string Llama3Regex =
        @"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    // Qwen2's: Llama 3's with single digits.
    internal const string Qwen2Regex =
        @"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    // o200k_base (GPT-4o, Llama 4): upper-case runs stay apart from a following lower-case word, '/' joins punctuation.
    internal const string Gpt4oRegex =
        @"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    public static PreTokenizer ForName(string name, string source) => name switch
    {
        "gpt-2" or "mpt" or "olmo" => new(name, Gpt2PreTokenizer.MatchAt),
        "starcoder" or "refact" or "smollm" => new(name, SingleDigit, Gpt2PreTokenizer.MatchAt),
        "falcon" => new(name, Run(c => IsPunctuation(c) || "$+<=>^~|`".Contains((char)c)), Gpt2PreTokenizer.MatchAt, AsciiDigitTriple),
        "deepseek-coder" => new(name, LineBreak, SpaceThen(IsLetter), SpaceThen(IsPunctuation),
            Run(IsCjkOrHangul), SingleDigit),
        "deepseek-llm" => new(name, LineBreak, SpaceThen(IsDeepSeekLetter), SpaceThen(IsDeepSeekSymbol), SpacesToEnd,
            Run(IsCjkOrHangul), Run(IsNumber)),
        "llama-bpe" or "llama3" or "llama-v3" or "smaug-bpe" or "dbrx" => FromRegex(name, Llama3Regex),
        "qwen2" or "deepseek-r1-qwen" => FromRegex(name, Qwen2Regex),
        "gpt-4o" or "llama4" => FromRegex(name, Gpt4oRegex),
        // llama.cpp's choice when a BPE vocabulary names no pre-tokenizer.
        "default" => new(name, Run(c => IsPunctuation(c) || "$+<=>^~|".Contains((char)c)), Gpt2PreTokenizer.MatchAt,
            Run(IsNumber), AsciiDigitTriple),
        _ => throw new NextTokenException($"{source}: 'tokenizer.ggml.pre' is \"{name}\", a pre-tokenizer this version does not implement; supported: {string.Join(", ", Supported)}"),
    };

    private static PreTokenizer FromRegex(string name, string pattern) =>
        new(name, [RegexStep(new Regex(pattern, RegexOptions.CultureInvariant | RegexOptions.Compiled), SplitBehavior.Isolated, invert: false)]);

    /// <summary>A pre-tokenizer from tokenizer.json steps (see <see cref="HuggingFaceTokenizer"/>).</summary>
    internal static PreTokenizer FromSteps(string name, IReadOnlyList<PreTokenizerStep> steps) =>
        new(name, steps.Select(s => s switch
        {
            PreTokenizerStep.RegexSplit r => RegexStep(r.Regex, r.Behavior, r.Invert),
            PreTokenizerStep.Gpt2 => (Step)((text, start, end, output) => Gpt2PreTokenizer.Split(text, start, end, output)),
            PreTokenizerStep.Digits d => d.Individual
                ? (text, start, end, output) => Isolate(SingleDigit, text, start, end, output)
                : (text, start, end, output) => Isolate(Run(IsNumber), text, start, end, output),
            _ => throw new ArgumentException(s.ToString()),
        }).ToArray());

    public void Split(string text, int start, int end, List<(int Start, int End)> pieces)
    {
        if (_gpt2Only)
        {
            Gpt2PreTokenizer.Split(text, start, end, pieces); // matches everything: no gaps to track
            return;
        }
        if (_steps.Length == 0)
        {
            pieces.Add((start, end));
            return;
        }
        if (_steps.Length == 1)
        {
            _steps[0](text, start, end, pieces);
            return;
        }
        // Scratch lists per thread: no allocation per call once warm.
        var current = _scratchA ??= new List<(int, int)>();
        var next = _scratchB ??= new List<(int, int)>();
        current.Clear();
        current.Add((start, end));
        for (int s = 0; s < _steps.Length; s++)
        {
            var output = s == _steps.Length - 1 ? pieces : next;
            if (output == next) next.Clear();
            foreach (var (pieceStart, pieceEnd) in current)
                _steps[s](text, pieceStart, pieceEnd, output);
            (current, next) = (next, current);
        }
    }

    /// <summary>A pattern's matches and the text between them all become pieces (llama.cpp's rule, HF's Isolated).</summary>
    private static void Isolate(Pattern pattern, string text, int pieceStart, int pieceEnd, List<(int, int)> output)
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
            if (gapStart < i) output.Add((gapStart, i));
            output.Add((i, i + length));
            i += length;
            gapStart = i;
        }
        if (gapStart < pieceEnd) output.Add((gapStart, pieceEnd));
    }

    private static Step RegexStep(Regex regex, SplitBehavior behavior, bool invert) => (text, start, end, output) =>
    {
        ReadOnlySpan<char> span = text.AsSpan(start, end - start);
        var emitter = new SplitEmitter(output, behavior, invert);
        int previous = 0;
        if (span.IndexOfAnyInRange('\uD800', '\uDFFF') < 0)
        {
            foreach (ValueMatch m in regex.EnumerateMatches(span))
            {
                if (m.Length == 0) continue;
                emitter.Add(start + previous, start + m.Index, isMatch: false);
                emitter.Add(start + m.Index, start + m.Index + m.Length, isMatch: true);
                previous = m.Index + m.Length;
            }
        }
        else
        {
            char[] shadow = System.Buffers.ArrayPool<char>.Shared.Rent(span.Length);
            int[] origin = System.Buffers.ArrayPool<int>.Shared.Rent(span.Length + 1);
            int n = AstralAsPlaceholders(span, shadow, origin);
            foreach (ValueMatch m in regex.EnumerateMatches(shadow.AsSpan(0, n)))
            {
                if (m.Length == 0) continue;
                int from = origin[m.Index], to = origin[m.Index + m.Length];
                emitter.Add(start + previous, start + from, isMatch: false);
                emitter.Add(start + from, start + to, isMatch: true);
                previous = to;
            }
            System.Buffers.ArrayPool<char>.Shared.Return(shadow);
            System.Buffers.ArrayPool<int>.Shared.Return(origin);
        }
        emitter.Add(start + previous, end, isMatch: false);
        emitter.Flush();
    };

    /// <summary>Applies a split behaviour to the alternating gaps and matches of one piece.</summary>
    private struct SplitEmitter(List<(int Start, int End)> output, SplitBehavior behavior, bool invert)
    {
        private int _pendingStart = -1, _pendingEnd; // MergedWithNext: a delimiter waiting for the next piece
        private bool _canMerge;                      // MergedWithPrevious / Contiguous: the last piece may take the delimiter

        public void Add(int start, int end, bool isMatch)
        {
            if (end <= start) return;
            bool delimiter = isMatch != invert;
            switch (behavior)
            {
                case SplitBehavior.Isolated:
                    output.Add((start, end));
                    break;
                case SplitBehavior.Removed:
                    if (!delimiter) output.Add((start, end));
                    break;
                case SplitBehavior.MergedWithPrevious:
                    if (delimiter && _canMerge) output[^1] = (output[^1].Start, end);
                    else output.Add((start, end));
                    _canMerge = !delimiter;
                    break;
                case SplitBehavior.MergedWithNext:
                    if (delimiter)
                    {
                        Flush();
                        (_pendingStart, _pendingEnd) = (start, end);
                    }
                    else
                    {
                        output.Add((_pendingStart >= 0 ? _pendingStart : start, end));
                        _pendingStart = -1;
                    }
                    break;
                case SplitBehavior.Contiguous:
                    if (delimiter && _canMerge && output[^1].End == start) output[^1] = (output[^1].Start, end);
                    else output.Add((start, end));
                    _canMerge = delimiter;
                    break;
            }
        }

        /// <summary>A delimiter with nothing after it stays a piece of its own.</summary>
        public void Flush()
        {
            if (_pendingStart >= 0) output.Add((_pendingStart, _pendingEnd));
            _pendingStart = -1;
        }
    }

    /// <summary>
    /// Copies text to <paramref name="shadow"/> with each surrogate pair replaced by one BMP character of
    /// the same Unicode category; origin[k] is the index in text of shadow[k] (origin[n] = text.Length).
    /// </summary>
    internal static int AstralAsPlaceholders(ReadOnlySpan<char> text, char[] shadow, int[] origin)
    {
        int n = 0;
        for (int k = 0; k < text.Length;)
        {
            origin[n] = k;
            if (char.IsHighSurrogate(text[k]) && k + 1 < text.Length && char.IsLowSurrogate(text[k + 1]))
            {
                shadow[n++] = Placeholder(Rune.GetUnicodeCategory(new Rune(text[k], text[k + 1])));
                k += 2;
            }
            else
            {
                shadow[n++] = text[k++];
            }
        }
        origin[n] = text.Length;
        return n;
    }

    /// <summary>A BMP character of the category; none is ASCII, so none can match a literal in a pattern's contractions or classes.</summary>
    private static char Placeholder(UnicodeCategory category) => category switch
    {
        UnicodeCategory.UppercaseLetter => '\u00C0',
        UnicodeCategory.LowercaseLetter => '\u00E0',
        UnicodeCategory.TitlecaseLetter => '\u01C5',
        UnicodeCategory.ModifierLetter => '\u02B0',
        UnicodeCategory.OtherLetter => '\u05D0',
        UnicodeCategory.NonSpacingMark => '\u0300',
        UnicodeCategory.SpacingCombiningMark => '\u0903',
        UnicodeCategory.EnclosingMark => '\u20DD',
        UnicodeCategory.DecimalDigitNumber => '\u0660',
        UnicodeCategory.LetterNumber => '\u2160',
        UnicodeCategory.OtherNumber => '\u00B2',
        UnicodeCategory.ConnectorPunctuation => '\u203F',
        UnicodeCategory.DashPunctuation => '\u2010',
        UnicodeCategory.OpenPunctuation => '\u2045',
        UnicodeCategory.ClosePunctuation => '\u2046',
        UnicodeCategory.InitialQuotePunctuation => '\u00AB',
        UnicodeCategory.FinalQuotePunctuation => '\u00BB',
        UnicodeCategory.OtherPunctuation => '\u00A1',
        UnicodeCategory.MathSymbol => '\u00AC',
        UnicodeCategory.CurrencySymbol => '\u00A2',
        UnicodeCategory.ModifierSymbol => '\u00B4',
        UnicodeCategory.OtherSymbol => '\u00A9',
        UnicodeCategory.Format => '\u00AD',
        UnicodeCategory.PrivateUse => '\uE000',
        _ => '\uFFFF', // unassigned
    };

    private static bool IsCjkOrHangul(int c) => c is >= 0x4E00 and <= 0x9FA5 or >= 0x0800 and <= 0x4E00 or >= 0xAC00 and <= 0xD7FF;

    /// <summary>"\s+$": a whitespace run that reaches the end of the piece.</summary>
    private static int SpacesToEnd(string text, int i, int end)
    {
        int j = i;
        while (j < end && Rune.IsWhiteSpace(RuneAt(text, j, end, out int w))) j += w;
        return j == end ? j - i : 0;
    }

    // DeepSeek-LLM's letter class: the cased letters of Latin, Greek, Cyrillic, Armenian, Georgian,
    // Cherokee, Glagolitic, Coptic and a few astral scripts, as code point ranges.
    // DeepSeek-LLM's letter class (its tokenizer.json's first Split pattern): the cased letters of Latin,
    // Greek, Cyrillic, Armenian, Georgian, Cherokee, Glagolitic, Coptic and a few astral scripts.
    // Written as numbers: several of these code points change under NFC, which text editors apply.
    private static readonly (int From, int To)[] DeepSeekLetters = Ranges(
        "0041-005A 0061-007A 00B5-00B5 00C0-00D6 00D8-00F6 00F8-01BA 01BC-01BF 01C4-0293 0295-02AF 0370-0373 0376-0377 037B-037D 037F-037F 0386-0386 0388-038A 038C-038C 038E-03A1 03A3-03F5 03F7-0481 048A-052F 0531-0556 10A0-10C5 13A0-13F5 13F8-13FD 1C90-1CBA 1CBD-1CBF 1D00-1D2B 1D6B-1D77 1D79-1D9A 1E00-1F15 1F18-1F1D 1F20-1F45 1F48-1F4D 1F50-1F57 1F59-1F59 1F5B-1F5B 1F5D-1F5D 1F5F-1F7D 1F80-1FB4 1FB6-1FBC 1FBE-1FBE 1FC2-1FC4 1FC6-1FCC 1FD0-1FD3 1FD6-1FDB 1FE0-1FEC 1FF2-1FF4 1FF6-1FFC 2102-2102 2107-2107 210A-2113 2115-2115 2119-211D 2124-2124 2126-2126 2128-2128 212A-212D 212F-2134 2139-2139 213C-213F 2145-2149 214E-214E 2183-2184 2C00-2C7B 2C7E-2CE4 2CEB-2CEE 2CF2-2CF3 A640-A66D A680-A69B A722-A76F A771-A787 A78B-A78E AB70-ABBF FB00-FB06 FB13-FB17 FF21-FF3A FF41-FF5A 10400-1044F 104B0-104D3 104D8-104FB 10C80-10CB2 10CC0-10CF2 118A0-118DF 1E900-1E943");

    // DeepSeek-LLM's symbol class: ASCII and fullwidth punctuation, quotes and CJK punctuation.
    private static readonly (int From, int To)[] DeepSeekSymbols = Ranges("0021-002F 003A-007E FF01-FF0F FF1A-FF5E 2018-201F 3000-3002");

    private static bool IsDeepSeekLetter(int c) => InRanges(DeepSeekLetters, c);

    private static bool IsDeepSeekSymbol(int c) => InRanges(DeepSeekSymbols, c);

    private static (int, int)[] Ranges(string hexRanges) => hexRanges.Split(' ').Select(r =>
        (int.Parse(r.AsSpan(0, r.IndexOf('-')), NumberStyles.HexNumber, CultureInfo.InvariantCulture),
         int.Parse(r.AsSpan(r.IndexOf('-') + 1), NumberStyles.HexNumber, CultureInfo.InvariantCulture))).ToArray();

    private static bool InRanges((int From, int To)[] ranges, int c)
    {
        foreach (var (from, to) in ranges)
            if (c >= from && c <= to) return true;
        return false;
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

/// <summary>One step of a tokenizer.json pre-tokenizer, as read from the file.</summary>
internal abstract record PreTokenizerStep
{
    public sealed record RegexSplit(Regex Regex, SplitBehavior Behavior, bool Invert) : PreTokenizerStep;

    /// <summary>ByteLevel with use_regex: GPT-2's pattern.</summary>
    public sealed record Gpt2 : PreTokenizerStep;

    public sealed record Digits(bool Individual) : PreTokenizerStep;
}
