using System.Text;

namespace NextToken.Tokenization;

/// <summary>
/// Patterns written for Oniguruma / fancy-regex (what Hugging Face tokenizers run) turned into .NET
/// syntax where the two differ. Possessive quantifiers (<c>x?+</c>, <c>x++</c>, <c>x*+</c>,
/// <c>x{n,m}+</c>), which minbpe's GPT-4 split and some tokenizer.json files use, become the
/// equivalent atomic groups <c>(?&gt;x?)</c>: .NET has atomic groups but no possessive syntax.
/// </summary>
public static class RegexDialect
{
    public static string ToDotNet(string pattern)
    {
        var output = new StringBuilder(pattern.Length + 16);
        var groupStarts = new Stack<int>();
        int atomStart = -1; // where in output the last complete atom starts
        int i = 0;
        while (i < pattern.Length)
        {
            char c = pattern[i];
            int start = output.Length;
            if (c == '\\')
            {
                int end = EscapeEnd(pattern, i);
                output.Append(pattern, i, end - i);
                i = end;
                atomStart = start;
            }
            else if (c == '[')
            {
                int end = ClassEnd(pattern, i);
                output.Append(pattern, i, end - i);
                i = end;
                atomStart = start;
            }
            else if (c == '(')
            {
                groupStarts.Push(start);
                output.Append(c);
                i++;
                atomStart = -1;
            }
            else if (c == ')')
            {
                output.Append(c);
                i++;
                atomStart = groupStarts.Count > 0 ? groupStarts.Pop() : -1;
            }
            else if (c is '?' or '*' or '+' or '{' && atomStart >= 0 && !(c == '?' && IsGroupOpening(output)))
            {
                int end = c == '{' ? QuantifierEnd(pattern, i) : i + 1;
                if (end < 0)
                {
                    output.Append(c); // a literal '{'
                    i++;
                    atomStart = start;
                    continue;
                }
                output.Append(pattern, i, end - i);
                i = end;
                if (i < pattern.Length && pattern[i] == '+')
                {
                    output.Insert(atomStart, "(?>").Append(')');
                    i++;
                }
                else if (i < pattern.Length && pattern[i] == '?')
                {
                    output.Append('?'); // lazy: the same in both dialects
                    i++;
                }
                atomStart = -1;
            }
            else
            {
                output.Append(c);
                i++;
                atomStart = c is '|' or '^' or '$' ? -1 : start;
            }
        }
        return output.ToString();
    }

    private static bool IsGroupOpening(StringBuilder output) => output.Length > 0 && output[^1] == '(';

    private static int EscapeEnd(string pattern, int i)
    {
        if (i + 1 >= pattern.Length) return pattern.Length;
        char kind = pattern[i + 1];
        if (kind is 'p' or 'P' && i + 2 < pattern.Length && pattern[i + 2] == '{')
        {
            int close = pattern.IndexOf('}', i + 3);
            return close < 0 ? pattern.Length : close + 1;
        }
        return i + 2;
    }

    private static int ClassEnd(string pattern, int i)
    {
        int j = i + 1;
        if (j < pattern.Length && pattern[j] == '^') j++;
        if (j < pattern.Length && pattern[j] == ']') j++; // a leading ']' is literal
        while (j < pattern.Length && pattern[j] != ']')
        {
            if (pattern[j] == '\\') j = EscapeEnd(pattern, j);
            else if (pattern[j] == '[') j = ClassEnd(pattern, j); // nested class (subtraction)
            else j++;
        }
        return Math.Min(j + 1, pattern.Length);
    }

    /// <summary>End of a <c>{n}</c>, <c>{n,}</c> or <c>{n,m}</c> quantifier at <paramref name="i"/>, or -1 when the brace is literal.</summary>
    private static int QuantifierEnd(string pattern, int i)
    {
        int j = i + 1, digits = 0;
        while (j < pattern.Length && char.IsAsciiDigit(pattern[j])) { j++; digits++; }
        if (digits == 0) return -1;
        if (j < pattern.Length && pattern[j] == ',')
        {
            j++;
            while (j < pattern.Length && char.IsAsciiDigit(pattern[j])) j++;
        }
        return j < pattern.Length && pattern[j] == '}' ? j + 1 : -1;
    }
}
