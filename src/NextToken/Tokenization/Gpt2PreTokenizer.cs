using System.Globalization;
using System.Text;

namespace NextToken.Tokenization;

/// <summary>
/// GPT-2's pre-tokenization, the regular expression
/// <c>'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+</c>,
/// written out as a scanner over Unicode code points. A .NET Regex would see UTF-16 code units and
/// misclassify letters and digits outside the Basic Multilingual Plane; this scanner does not.
/// </summary>
public static class Gpt2PreTokenizer
{
    private enum Kind : byte { Letter, Number, Space, Other }

    /// <summary>Appends the [start, end) UTF-16 ranges of each pre-token of text[start..end).</summary>
    public static void Split(string text, int start, int end, List<(int Start, int End)> pieces)
    {
        for (int i = start; i < end;)
        {
            int length = MatchAt(text, i, end);
            pieces.Add((i, i + length));
            i += length;
        }
    }

    /// <summary>Length of the pattern's match at <paramref name="i"/> (never 0: every character is matched).</summary>
    public static int MatchAt(string text, int i, int end)
    {
        // Contractions: 's 't 're 've 'm 'll 'd (case-sensitive, as in GPT-2).
        if (text[i] == '\'' && ContractionLength(text, i + 1, end) is > 0 and var contraction)
            return 1 + contraction;
        Kind kind = KindAt(text, i, end, out int width);
        if (text[i] == ' ' && i + 1 < end)
        {
            // " ?X+": a single ASCII space joins the letters, digits or symbols after it.
            Kind next = KindAt(text, i + 1, end, out int nextWidth);
            if (next != Kind.Space)
                return ScanRun(text, i + 1 + nextWidth, end, next) - i;
        }
        if (kind != Kind.Space)
            return ScanRun(text, i + width, end, kind) - i;
        // Whitespace: "\s+(?!\S)" keeps the last space for the word that follows; "\s+" takes the rest.
        int runEnd = i + width;
        int lastStart = i;
        while (runEnd < end && KindAt(text, runEnd, end, out int w) == Kind.Space)
        {
            lastStart = runEnd;
            runEnd += w;
        }
        if (runEnd < end && lastStart > i)
            runEnd = lastStart;
        return runEnd - i;
    }

    private static int ScanRun(string text, int i, int end, Kind kind)
    {
        while (i < end && KindAt(text, i, end, out int w) == kind)
            i += w;
        return i;
    }

    private static int ContractionLength(string text, int i, int end)
    {
        if (i >= end) return 0;
        char c = text[i];
        if (c is 's' or 't' or 'm' or 'd') return 1;
        if (i + 1 < end)
        {
            char d = text[i + 1];
            if ((c == 'r' && d == 'e') || (c == 'v' && d == 'e') || (c == 'l' && d == 'l')) return 2;
        }
        return 0;
    }

    private static Kind KindAt(string text, int i, int end, out int width)
    {
        if (Rune.DecodeFromUtf16(text.AsSpan(i, end - i), out Rune rune, out width) != System.Buffers.OperationStatus.Done)
        {
            width = 1; // a lone surrogate: encoded as U+FFFD, a symbol
            return Kind.Other;
        }
        if (Rune.IsWhiteSpace(rune)) return Kind.Space;
        switch (Rune.GetUnicodeCategory(rune))
        {
            case UnicodeCategory.UppercaseLetter:
            case UnicodeCategory.LowercaseLetter:
            case UnicodeCategory.TitlecaseLetter:
            case UnicodeCategory.ModifierLetter:
            case UnicodeCategory.OtherLetter:
                return Kind.Letter;
            case UnicodeCategory.DecimalDigitNumber:
            case UnicodeCategory.LetterNumber:
            case UnicodeCategory.OtherNumber:
                return Kind.Number;
            default:
                return Kind.Other;
        }
    }
}
