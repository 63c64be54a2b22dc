using System.Text;

namespace NextToken.Chat;

/// <summary>A template error, with the line of the template where it was found.</summary>
public sealed class TemplateException(string message) : NextTokenException(message)
{
    /// <summary>Whether the message already names the template line (the innermost statement adds it).</summary>
    internal bool Located { get; init; }

    /// <summary>The text a template passed to <c>raise_exception</c> (null for the interpreter's own errors).</summary>
    public string? Raised { get; init; }

    /// <summary>1-based line of a character position, for messages.</summary>
    internal static int LineOf(string source, int position)
    {
        int line = 1;
        for (int i = 0; i < position && i < source.Length; i++)
            if (source[i] == '\n') line++;
        return line;
    }
}

internal enum TokenKind { Text, PrintStart, PrintEnd, BlockStart, BlockEnd, Name, String, Integer, Float, Operator, End }

internal readonly record struct JinjaToken(TokenKind Kind, string Value, int Position);

/// <summary>
/// Splits a Jinja template into text and tag tokens, applying the whitespace rules Hugging Face
/// renders chat templates with: <c>trim_blocks</c> (a newline right after a block tag goes),
/// <c>lstrip_blocks</c> (spaces before a block tag on its line go), and the <c>-</c> markers.
/// </summary>
internal static class JinjaLexer
{
    private static readonly string[] Operators =
        ["//", "**", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<", ">", "=", ".", ",", ":", "|", "(", ")", "[", "]", "{", "}"];

    public static List<JinjaToken> Tokenize(string source)
    {
        var tokens = new List<JinjaToken>();
        int i = 0;
        bool trimNextText = false, dropNextNewline = false, lineStarting = true;
        while (i < source.Length)
        {
            int tag = FindTag(source, i);
            string text = source[i..(tag < 0 ? source.Length : tag)];
            if (trimNextText)
            {
                string trimmed = text.TrimStart();
                lineStarting = trimmed.Length < text.Length ? text[..(text.Length - trimmed.Length)].EndsWith('\n') : lineStarting;
                text = trimmed;
            }
            else if (dropNextNewline && text.StartsWith('\n')) (text, lineStarting) = (text[1..], true);
            else if (dropNextNewline && text.StartsWith("\r\n", StringComparison.Ordinal)) (text, lineStarting) = (text[2..], true);
            else if (i > 0) lineStarting = false;
            trimNextText = dropNextNewline = false;
            if (tag < 0)
            {
                if (text.Length > 0) tokens.Add(new(TokenKind.Text, text, i));
                break;
            }
            char kind = source[tag + 1];
            bool minusBefore = tag + 2 < source.Length && source[tag + 2] == '-';
            bool plusBefore = tag + 2 < source.Length && source[tag + 2] == '+';
            if (minusBefore) text = text.TrimEnd();
            else if (kind is '%' or '#' && !plusBefore) text = LstripBlock(text, lineStarting);
            if (text.Length > 0) tokens.Add(new(TokenKind.Text, text, i));

            int bodyStart = tag + 2 + (minusBefore || plusBefore ? 1 : 0);
            string close = kind switch { '{' => "}}", '%' => "%}", _ => "#}" };
            int closeAt = FindClose(source, bodyStart, close, kind == '#');
            if (closeAt < 0) throw new TemplateException($"template: tag opened at line {TemplateException.LineOf(source, tag)} (character {tag}) is never closed with '{close}'");
            bool minusAfter = closeAt > bodyStart && source[closeAt - 1] == '-';
            int bodyEnd = minusAfter ? closeAt - 1 : closeAt;
            if (kind != '#')
            {
                tokens.Add(new(kind == '{' ? TokenKind.PrintStart : TokenKind.BlockStart, "", tag));
                TokenizeExpression(source, bodyStart, bodyEnd, tokens);
                tokens.Add(new(kind == '{' ? TokenKind.PrintEnd : TokenKind.BlockEnd, "", closeAt));
            }
            trimNextText = minusAfter;
            dropNextNewline = !minusAfter && kind is '%' or '#';
            i = closeAt + 2;
        }
        tokens.Add(new(TokenKind.End, "", source.Length));
        return tokens;
    }

    private static int FindTag(string source, int from)
    {
        for (int i = source.IndexOf('{', from); i >= 0 && i + 1 < source.Length; i = source.IndexOf('{', i + 1))
            if (source[i + 1] is '{' or '%' or '#') return i;
        return -1;
    }

    /// <summary>
    /// The closing delimiter, skipping quoted strings inside expressions and, as Jinja's lexer,
    /// brackets that are still open (so the "}}" of a nested dict literal does not end the tag).
    /// </summary>
    private static int FindClose(string source, int from, string close, bool comment)
    {
        char quote = '\0';
        int open = 0;
        for (int i = from; i + 1 < source.Length; i++)
        {
            char c = source[i];
            if (!comment && quote != '\0')
            {
                if (c == '\\') i++;
                else if (c == quote) quote = '\0';
                continue;
            }
            if (!comment && c is '\'' or '"') quote = c;
            else if (open == 0 && c == close[0] && source[i + 1] == close[1]) return i;
            else if (!comment && c is '(' or '[' or '{') open++;
            else if (!comment && c is ')' or ']' or '}' && open > 0) open--;
        }
        return -1;
    }

    /// <summary>lstrip_blocks: drop spaces and tabs between the start of the line and a block tag.</summary>
    private static string LstripBlock(string text, bool lineStarting)
    {
        int lineStart = text.LastIndexOf('\n') + 1;
        if (lineStart == 0 && !lineStarting) return text;
        for (int k = lineStart; k < text.Length; k++)
            if (!char.IsWhiteSpace(text[k])) return text;
        return text[..lineStart];
    }

    private static void TokenizeExpression(string s, int i, int end, List<JinjaToken> tokens)
    {
        while (i < end)
        {
            char c = s[i];
            if (char.IsWhiteSpace(c)) { i++; continue; }
            if (char.IsLetter(c) || c == '_')
            {
                int start = i;
                while (i < end && (char.IsLetterOrDigit(s[i]) || s[i] == '_')) i++;
                tokens.Add(new(TokenKind.Name, s[start..i], start));
                continue;
            }
            if (char.IsAsciiDigit(c))
            {
                int start = i;
                while (i < end && (char.IsAsciiDigit(s[i]) || s[i] == '_')) i++;
                bool isFloat = i + 1 < end && s[i] == '.' && char.IsAsciiDigit(s[i + 1]);
                if (isFloat)
                {
                    i++;
                    while (i < end && (char.IsAsciiDigit(s[i]) || s[i] == '_')) i++;
                }
                // an exponent (1e16, 2.5E-3) makes a float, as in Jinja
                int exponent = i + 1 < end && s[i] is 'e' or 'E' ? (s[i + 1] is '+' or '-' ? i + 2 : i + 1) : -1;
                if (exponent > 0 && exponent < end && char.IsAsciiDigit(s[exponent]))
                {
                    isFloat = true;
                    i = exponent;
                    while (i < end && (char.IsAsciiDigit(s[i]) || s[i] == '_')) i++;
                }
                tokens.Add(new(isFloat ? TokenKind.Float : TokenKind.Integer, s[start..i].Replace("_", ""), start));
                continue;
            }
            if (c is '\'' or '"')
            {
                int start = i++;
                var sb = new StringBuilder();
                while (i < end && s[i] != c)
                {
                    if (s[i] == '\\' && i + 1 < end)
                    {
                        i++;
                        switch (s[i])
                        {
                            case 'n': sb.Append('\n'); break;
                            case 't': sb.Append('\t'); break;
                            case 'r': sb.Append('\r'); break;
                            case '\\' or '\'' or '"': sb.Append(s[i]); break;
                            default: sb.Append('\\').Append(s[i]); break; // Python keeps unknown escapes as written
                        }
                    }
                    else sb.Append(s[i]);
                    i++;
                }
                if (i >= end) throw new TemplateException($"template: string starting at line {TemplateException.LineOf(s, start)} (character {start}) is not closed");
                i++;
                tokens.Add(new(TokenKind.String, sb.ToString(), start));
                continue;
            }
            string? op = Operators.FirstOrDefault(o => string.CompareOrdinal(s, i, o, 0, o.Length) == 0 && i + o.Length <= end);
            if (op is null) throw new TemplateException($"template: unexpected character '{c}' at line {TemplateException.LineOf(s, i)} (character {i})");
            tokens.Add(new(TokenKind.Operator, op, i));
            i += op.Length;
        }
    }
}
