using System.Globalization;
using System.Text;

namespace NextToken.Chat;

/// <summary>Python semantics for template values: truth, printing, arithmetic, comparison, indexing.</summary>
internal static class Values
{
    /// <summary>Brings a caller's value into the template's world: lists as List, maps as string-keyed dictionaries.</summary>
    public static object? Import(object? value) => value switch
    {
        null or string or bool or long or double or Undefined or Namespace or JinjaFunction or Markup => value,
        int i => (long)i,
        float f => (double)f,
        IDictionary<string, object?> d => d.ToDictionary(kv => kv.Key, kv => Import(kv.Value)),
        IReadOnlyDictionary<string, object?> d => d.ToDictionary(kv => kv.Key, kv => Import(kv.Value)),
        IReadOnlyDictionary<string, string> d => d.ToDictionary(kv => kv.Key, kv => (object?)kv.Value),
        System.Collections.IEnumerable e => e.Cast<object?>().Select(Import).ToList(),
        _ => value,
    };

    public static bool Truthy(object? v) => v switch
    {
        null or Undefined => false,
        bool b => b,
        string s => s.Length > 0,
        Markup m => m.Text.Length > 0,
        long l => l != 0,
        double d => d != 0,
        System.Collections.ICollection c => c.Count > 0,
        _ => true,
    };

    /// <summary>What <c>{{ v }}</c> prints: Python's <c>str(v)</c>.</summary>
    public static string ToText(object? v) => v switch
    {
        string s => s,
        Markup m => m.Text,
        Undefined => "",
        _ => Repr(v, top: true),
    };

    public static string Repr(object? v, bool top = false)
    {
        if (top || v is not (List<object?> or Dictionary<string, object?>)) return ScalarRepr(v, top);
        var text = new StringBuilder();
        AppendRepr(text, v, 0);
        return text.ToString();
    }

    private static string ScalarRepr(object? v, bool top) => v switch
    {
        null => "None",
        Undefined => "",
        bool b => b ? "True" : "False",
        long l => l.ToString(CultureInfo.InvariantCulture),
        double d => FormatFloat(d),
        string s => top ? s : PythonStringRepr(s),
        Markup m => ScalarRepr(m.Text, top),
        List<object?> or Dictionary<string, object?> => Repr(v),
        _ => v.ToString() ?? "",
    };

    /// <summary>Python's repr of a str: single quotes unless it holds a ' and no ", backslash escapes for the quote, \\ and control characters.</summary>
    private static string PythonStringRepr(string s)
    {
        char quote = s.Contains('\'') && !s.Contains('"') ? '"' : '\'';
        var text = new StringBuilder(s.Length + 2).Append(quote);
        foreach (char c in s)
        {
            switch (c)
            {
                case '\\': text.Append("\\\\"); break;
                case '\n': text.Append("\\n"); break;
                case '\r': text.Append("\\r"); break;
                case '\t': text.Append("\\t"); break;
                case < ' ' or '\x7f': text.Append(CultureInfo.InvariantCulture, $"\\x{(int)c:x2}"); break;
                default:
                    if (c == quote) text.Append('\\');
                    text.Append(c);
                    break;
            }
        }
        return text.Append(quote).ToString();
    }

    /// <summary>Python's repr of nested lists and dicts, bounded in depth and length as it is built.</summary>
    private static void AppendRepr(StringBuilder text, object? v, int depth)
    {
        if (depth > JinjaLimits.MaxDepth) throw new TemplateException($"template: a value nested deeper than {JinjaLimits.MaxDepth} levels cannot be printed");
        switch (v)
        {
            case Dictionary<string, object?> d:
                text.Append('{');
                bool firstKey = true;
                foreach (var (key, value) in d)
                {
                    if (!firstKey) text.Append(", ");
                    firstKey = false;
                    text.Append(ScalarRepr(key, top: false)).Append(": ");
                    AppendRepr(text, value, depth + 1);
                }
                text.Append('}');
                break;
            case List<object?> l:
                bool tuple = l is PyTuple;
                text.Append(tuple ? '(' : '[');
                for (int i = 0; i < l.Count; i++)
                {
                    if (i > 0) text.Append(", ");
                    AppendRepr(text, l[i], depth + 1);
                }
                text.Append(tuple ? (l.Count == 1 ? ",)" : ")") : "]");
                break;
            default:
                text.Append(ScalarRepr(v, top: false));
                break;
        }
        CheckLength(text.Length);
    }

    /// <summary>Refuses a string longer than the sandbox allows, before it is built where the length is known.</summary>
    public static void CheckLength(long length)
    {
        if (length > JinjaLimits.MaxStringLength)
            throw new TemplateException($"template: a string of {length:N0} characters exceeds the limit of {JinjaLimits.MaxStringLength:N0}");
    }

    private static void CheckCount(long count)
    {
        if (count > JinjaLimits.MaxListLength)
            throw new TemplateException($"template: a list of {count:N0} items exceeds the limit of {JinjaLimits.MaxListLength:N0}");
    }

    /// <summary>
    /// Python's repr of a float: the shortest digits that read back the same, positional when the
    /// decimal exponent is in [-4, 16), else scientific with a two-digit exponent (1e+16, 1e-05).
    /// </summary>
    public static string FormatFloat(double d)
    {
        if (double.IsNaN(d)) return "nan";
        if (double.IsInfinity(d)) return d > 0 ? "inf" : "-inf";
        // "E16" would not be shortest; "R" is, as d.dddE±x or positional, and is normalised here into digits and exponent.
        string r = Math.Abs(d).ToString("R", CultureInfo.InvariantCulture);
        int e = r.IndexOf('E');
        int exponent = e < 0 ? 0 : int.Parse(r.AsSpan(e + 1), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture);
        string mantissa = e < 0 ? r : r[..e];
        int dot = mantissa.IndexOf('.');
        string digits = dot < 0 ? mantissa : mantissa.Remove(dot, 1);
        int point = (dot < 0 ? mantissa.Length : dot) + exponent; // value = 0.DIGITS × 10^point
        int leading = digits.Length - digits.TrimStart('0').Length;
        digits = digits.Trim('0');
        point -= leading;
        if (digits.Length == 0) (digits, point) = ("0", 1);
        string sign = double.IsNegative(d) ? "-" : "";
        if (point > -4 && point <= 16)
        {
            if (point <= 0) return sign + "0." + new string('0', -point) + digits;
            if (point >= digits.Length) return sign + digits + new string('0', point - digits.Length) + ".0";
            return sign + digits[..point] + "." + digits[point..];
        }
        int shown = point - 1;
        return sign + digits[0] + (digits.Length > 1 ? "." + digits[1..] : "") + "e" + (shown < 0 ? "-" : "+") + Math.Abs(shown).ToString("00", CultureInfo.InvariantCulture);
    }

    /// <summary>A Markup's text as a plain string (Jinja's Markup is a str); every other value as it is.</summary>
    public static object? Plain(object? v) => v is Markup m ? m.Text : v;

    /// <summary>markupsafe's escape: &amp; &lt; &gt; ' " as entities.</summary>
    public static string EscapeHtml(string s)
    {
        if (s.AsSpan().IndexOfAny("&<>'\"") < 0) return s;
        var text = new StringBuilder(s.Length + 16);
        foreach (char c in s)
            text.Append(c switch { '&' => "&amp;", '<' => "&lt;", '>' => "&gt;", '\'' => "&#39;", '"' => "&#34;", _ => c.ToString() });
        CheckLength(text.Length);
        return text.ToString();
    }

    public static IEnumerable<object?> Iterate(object? v) => v switch
    {
        Undefined => [],
        null => throw new TemplateException("template: None is not iterable"),
        string s => s.EnumerateRunes().Select(r => (object?)r.ToString()),
        Markup m => Iterate(m.Text),
        Dictionary<string, object?> d => d.Keys,
        Namespace ns => ns.Fields.Keys,
        List<object?> l => l,
        _ => throw new TemplateException($"template: {TypeName(v)} is not iterable"),
    };

    public static object? GetAttribute(object? target, string name) => target switch
    {
        Undefined u => throw new TemplateException($"template: {u.Hint}: cannot read its '{name}'"),
        LoopInfo loop => loop.Get(name),
        Namespace ns => ns.Fields.TryGetValue(name, out object? v) ? v : new Undefined($"the namespace has no attribute '{name}'"),
        // As Jinja's getattr, a.b tries the attribute first: d.items is the dict's method even when d has a key "items" (a['b'] tries the key first).
        Dictionary<string, object?> d when DictMethod(d, name) is not Undefined => DictMethod(d, name),
        Dictionary<string, object?> d when d.TryGetValue(name, out object? v) => v,
        Dictionary<string, object?> => new Undefined($"'dict object' has no attribute '{name}'"),
        string s => StringMethod(s, name),
        Markup m => StringMethod(m.Text, name),
        _ => new Undefined($"'{TypeName(target)} object' has no attribute '{name}'"),
    };

    public static object? GetItem(object? target, object? index)
    {
        switch (target)
        {
            case Undefined u:
                throw new TemplateException($"template: {u.Hint}: cannot read its [{Repr(index)}]");
            case Markup m:
                return GetItem(m.Text, index);
            case Dictionary<string, object?> d:
                return Plain(index) is string key && d.TryGetValue(key, out object? v) ? v : new Undefined($"'dict object' has no attribute {Repr(index)}");
            case Namespace ns:
                return index is string k && ns.Fields.TryGetValue(k, out object? nv) ? nv : Undefined.Value;
            case LoopInfo loop when index is string name:
                return loop.Get(name);
            case List<object?> list when index is long i:
                long at = i < 0 ? list.Count + i : i;
                return at >= 0 && at < list.Count ? list[(int)at] : Undefined.Value;
            case string s when index is long i:
                var runes = s.EnumerateRunes().ToArray();
                long pos = i < 0 ? runes.Length + i : i;
                return pos >= 0 && pos < runes.Length ? runes[pos].ToString() : Undefined.Value;
            case null:
                return new Undefined($"'None' has no attribute {Repr(index)}");
            default:
                return index is string attribute ? GetAttribute(target, attribute) : Undefined.Value;
        }
    }

    public static object? Slice(object? target, object? start, object? stop, object? step)
    {
        target = Plain(target);
        List<object?> items = target is string s ? s.EnumerateRunes().Select(r => (object?)r.ToString()).ToList() : Iterate(target).ToList();
        int n = items.Count;
        long stepValue = step is long st ? st : 1;
        if (stepValue == 0) throw new TemplateException("template: slice step cannot be zero");
        long Clamp(object? v, long fallback)
        {
            if (v is not long x) return fallback;
            if (x < 0) x += n;
            return stepValue > 0 ? Math.Clamp(x, 0, n) : Math.Clamp(x, -1, n - 1);
        }
        long from = Clamp(start, stepValue > 0 ? 0 : n - 1), to = Clamp(stop, stepValue > 0 ? n : -1);
        var result = new List<object?>();
        for (long i = from; stepValue > 0 ? i < to : i > to; i += stepValue) result.Add(items[(int)i]);
        return target is string ? string.Concat(result.Cast<string>()) : target is PyTuple ? new PyTuple(result) : result;
    }

    public static object? Invoke(object? function, List<object?> args, Dictionary<string, object?> kwargs) => function switch
    {
        JinjaFunction f => f(args, kwargs),
        _ => throw new TemplateException($"template: {TypeName(function)} is not callable"),
    };

    public static object? Negate(object? v) => v switch
    {
        long l when l != long.MinValue => (object)(-l), // object: with a double arm the switch would make -1 a float
        double d => -d,
        _ => throw new TemplateException($"template: cannot negate {TypeName(v)}"),
    };

    public static object? BinaryOp(string op, object? a, object? b)
    {
        if (op == "+" && (a is Markup || b is Markup) && (a is string or Markup) && (b is string or Markup))
            return new Markup(Concat(a is Markup ma ? ma.Text : EscapeHtml((string)a), b is Markup mb ? mb.Text : EscapeHtml((string)b!)));
        (a, b) = (Plain(a), Plain(b));
        if (op is not ("==" or "!=" or "~" or "in" or "not in") && (a is Undefined || b is Undefined))
            throw new TemplateException($"template: {((a as Undefined) ?? (Undefined)b!).Hint}: cannot use it with '{op}'");
        switch (op)
        {
            case "==": return AreEqual(a, b);
            case "!=": return !AreEqual(a, b);
            case "in": return Contains(b, a);
            case "not in": return !Contains(b, a);
            case "~": return ToText(a) + ToText(b);
            case "<": return Compare(a, b) < 0;
            case ">": return Compare(a, b) > 0;
            case "<=": return Compare(a, b) <= 0;
            case ">=": return Compare(a, b) >= 0;
        }
        if (op == "+" && a is string sa && b is string sb) return Concat(sa, sb);
        if (op == "+" && a is List<object?> la && b is List<object?> lb)
        {
            CheckCount((long)la.Count + lb.Count);
            return la is PyTuple && lb is PyTuple ? new PyTuple(la.Concat(lb)) : la.Concat(lb).ToList();
        }
        if (op == "%" && a is string format) return PercentFormat(format, b);
        if (op == "*" && (a, b) is (string or List<object?>, long) or (long, string or List<object?>))
            return a is long n ? Repeat(b, n) : Repeat(a, (long)b!);
        if (a is long x && b is long y)
        {
            try
            {
                return op switch
                {
                    // object arms: a switch of long and double arms would turn every result into a double
                    "+" => (object)checked(x + y),
                    "-" => checked(x - y),
                    "*" => checked(x * y),
                    "/" => y == 0 ? throw new TemplateException("template: division by zero") : (double)x / y,
                    "//" => y == 0 ? throw new TemplateException("template: integer division by zero") : FloorDivide(x, y),
                    "%" => y == 0 ? throw new TemplateException("template: integer modulo by zero") : ((x % y) + y) % y,
                    "**" => y < 0 ? Math.Pow(x, y) : (object)Power(x, y),
                    _ => throw new TemplateException($"template: unknown operator {op}"),
                };
            }
            catch (OverflowException)
            {
                // Python's integers have no bound; these are 64-bit, so say so rather than wrap around.
                throw new TemplateException($"template: {x} {op} {y} overflows a 64-bit integer");
            }
        }
        if (IsNumber(a) && IsNumber(b))
        {
            double p = Convert.ToDouble(a, CultureInfo.InvariantCulture), q = Convert.ToDouble(b, CultureInfo.InvariantCulture);
            if (q == 0 && op is "/" or "//" or "%")
                throw new TemplateException($"template: float {(op == "%" ? "modulo" : "division")} by zero");
            return op switch
            {
                "+" => p + q, "-" => p - q, "*" => p * q, "/" => p / q,
                "//" => Math.Floor(p / q), "%" => p - q * Math.Floor(p / q), "**" => Math.Pow(p, q),
                _ => throw new TemplateException($"template: unknown operator {op}"),
            };
        }
        throw new TemplateException($"template: unsupported operand types for {op}: {TypeName(a)} and {TypeName(b)}");
    }

    public static bool AreEqual(object? a, object? b, int depth = 0)
    {
        (a, b) = (Plain(a), Plain(b));
        if (IsNumber(a) && IsNumber(b)) return Convert.ToDouble(a, CultureInfo.InvariantCulture) == Convert.ToDouble(b, CultureInfo.InvariantCulture);
        if (depth > JinjaLimits.MaxDepth) throw new TemplateException($"template: values nested deeper than {JinjaLimits.MaxDepth} levels cannot be compared");
        return (a, b) switch
        {
            (null, null) => true,
            (Undefined, Undefined) => true,
            (string x, string y) => x == y,
            (List<object?> x, List<object?> y) => x.Count == y.Count && (x is PyTuple) == (y is PyTuple) && x.Zip(y).All(p => AreEqual(p.First, p.Second, depth + 1)),
            (Dictionary<string, object?> x, Dictionary<string, object?> y) =>
                x.Count == y.Count && x.All(kv => y.TryGetValue(kv.Key, out object? other) && AreEqual(kv.Value, other, depth + 1)),
            _ => ReferenceEquals(a, b),
        };
    }

    private static bool Contains(object? container, object? item) => container switch
    {
        string s => item is string sub ? s.Contains(sub, StringComparison.Ordinal) : throw new TemplateException("template: 'in <string>' needs a string"),
        Dictionary<string, object?> d => item is string key && d.ContainsKey(key),
        List<object?> l => l.Any(x => AreEqual(x, item)),
        Undefined => false,
        null => throw new TemplateException("template: 'in None': None is not iterable"),
        _ => throw new TemplateException($"template: {TypeName(container)} does not support 'in'"),
    };

    public static int Compare(object? a, object? b)
    {
        (a, b) = (Plain(a), Plain(b));
        if (IsNumber(a) && IsNumber(b)) return Convert.ToDouble(a, CultureInfo.InvariantCulture).CompareTo(Convert.ToDouble(b, CultureInfo.InvariantCulture));
        if (a is string x && b is string y) return string.CompareOrdinal(x, y);
        throw new TemplateException($"template: cannot compare {TypeName(a)} with {TypeName(b)}");
    }

    private static bool IsNumber(object? v) => v is long or double || (v is bool);

    public static string TypeName(object? v) => v switch
    {
        null => "None",
        Undefined => "undefined",
        string or Markup => "str",
        long => "int",
        double => "float",
        bool => "bool",
        List<object?> => "list",
        Dictionary<string, object?> => "dict",
        _ => v.GetType().Name,
    };

    private static object? DictMethod(Dictionary<string, object?> d, string name) => name switch
    {
        "items" => (JinjaFunction)((_, _) => d.Select(kv => (object?)new PyTuple([kv.Key, kv.Value])).ToList()),
        "keys" => (JinjaFunction)((_, _) => d.Keys.Select(k => (object?)k).ToList()),
        "values" => (JinjaFunction)((_, _) => d.Values.ToList()),
        "get" => (JinjaFunction)((args, _) => args.Count > 0 && args[0] is string key && d.TryGetValue(key, out object? v) ? v : args.Count > 1 ? args[1] : null),
        "copy" or "pop" or "popitem" or "setdefault" or "update" or "clear" or "fromkeys" =>
            (JinjaFunction)((_, _) => throw new TemplateException($"template: dict.{name}() is not available (Hugging Face renders in an immutable sandbox)")),
        _ => Undefined.Value,
    };

    private static object? StringMethod(string s, string name) => name switch
    {
        "strip" => (JinjaFunction)((args, _) => args.Count > 0 && args[0] is string chars ? s.Trim(chars.ToCharArray()) : s.Trim()),
        "lstrip" => (JinjaFunction)((args, _) => args.Count > 0 && args[0] is string chars ? s.TrimStart(chars.ToCharArray()) : s.TrimStart()),
        "rstrip" => (JinjaFunction)((args, _) => args.Count > 0 && args[0] is string chars ? s.TrimEnd(chars.ToCharArray()) : s.TrimEnd()),
        "upper" => (JinjaFunction)((_, _) => s.ToUpperInvariant()),
        "lower" => (JinjaFunction)((_, _) => s.ToLowerInvariant()),
        "title" => (JinjaFunction)((_, _) => Title(s)),
        "capitalize" => (JinjaFunction)((_, _) => s.Length == 0 ? s : char.ToUpperInvariant(s[0]) + s[1..].ToLowerInvariant()),
        "startswith" => (JinjaFunction)((args, _) => s.StartsWith(ToText(args[0]), StringComparison.Ordinal)),
        "endswith" => (JinjaFunction)((args, _) => s.EndsWith(ToText(args[0]), StringComparison.Ordinal)),
        "replace" => (JinjaFunction)((args, _) => Replace(s, ToText(args[0]), ToText(args[1]))),
        "split" => (JinjaFunction)((args, kwargs) => Split(s, args.Count > 0 ? Plain(args[0]) : kwargs.GetValueOrDefault("sep"),
            args.Count > 1 ? args[1] : kwargs.GetValueOrDefault("maxsplit", -1L))),
        "splitlines" => (JinjaFunction)((_, _) => SplitLines(s).Select(x => (object?)x).ToList()),
        "join" => (JinjaFunction)((args, _) => Join(s, Iterate(args[0]))),
        "find" => (JinjaFunction)((args, _) => (long)s.IndexOf(ToText(args[0]), StringComparison.Ordinal)),
        "count" => (JinjaFunction)((args, _) => ToText(args[0]) is { Length: > 0 } sub ? (long)(s.Length - s.Replace(sub, "", StringComparison.Ordinal).Length) / sub.Length : s.Length + 1L),
        "isdigit" => (JinjaFunction)((_, _) => s.Length > 0 && s.All(char.IsDigit)),
        "isalpha" => (JinjaFunction)((_, _) => s.Length > 0 && s.All(char.IsLetter)),
        "isalnum" => (JinjaFunction)((_, _) => s.Length > 0 && s.All(char.IsLetterOrDigit)),
        "isspace" => (JinjaFunction)((_, _) => s.Length > 0 && s.All(char.IsWhiteSpace)),
        "islower" => (JinjaFunction)((_, _) => s.Any(char.IsLetter) && s == s.ToLowerInvariant()),
        "isupper" => (JinjaFunction)((_, _) => s.Any(char.IsLetter) && s == s.ToUpperInvariant()),
        _ => new Undefined($"'str object' has no attribute '{name}'"),
    };

    /// <summary>
    /// Python's <c>format % values</c> (and Jinja's |format): conversions s r d i f F x X o c and %%,
    /// with flags (- + space 0), width and precision; a tuple gives the positional values, a dict the %(name)s ones.
    /// </summary>
    public static string PercentFormat(string format, object? values)
    {
        var positional = values is PyTuple tuple ? tuple : new List<object?> { values };
        var named = values as Dictionary<string, object?>;
        int next = 0;
        var text = new StringBuilder();
        for (int i = 0; i < format.Length; i++)
        {
            if (format[i] != '%') { text.Append(format[i]); continue; }
            if (++i >= format.Length) throw new TemplateException("template: incomplete format (a '%' at the end)");
            if (format[i] == '%') { text.Append('%'); continue; }
            object? value;
            if (format[i] == '(')
            {
                int close = format.IndexOf(')', i);
                if (close < 0 || named is null) throw new TemplateException("template: %(name) format needs a mapping and a closing ')'");
                string key = format[(i + 1)..close];
                value = named.TryGetValue(key, out object? v) ? v : throw new TemplateException($"template: format key '{key}' is missing");
                i = close + 1;
            }
            else
            {
                if (next >= positional.Count) throw new TemplateException("template: not enough arguments for format string");
                value = positional[next++];
            }
            int flagsStart = i;
            while (i < format.Length && format[i] is '-' or '+' or ' ' or '0' or '#') i++;
            string flags = format[flagsStart..i];
            int widthStart = i;
            while (i < format.Length && char.IsAsciiDigit(format[i])) i++;
            int width = i > widthStart ? int.Parse(format.AsSpan(widthStart, Math.Min(i - widthStart, 4)), CultureInfo.InvariantCulture) : 0;
            int precision = -1;
            if (i < format.Length && format[i] == '.')
            {
                int precisionStart = ++i;
                while (i < format.Length && char.IsAsciiDigit(format[i])) i++;
                precision = i > precisionStart ? int.Parse(format.AsSpan(precisionStart, Math.Min(i - precisionStart, 3)), CultureInfo.InvariantCulture) : 0;
            }
            if (i >= format.Length) throw new TemplateException("template: incomplete format");
            char conversion = format[i];
            string body = conversion switch
            {
                's' => precision >= 0 && ToText(value) is var str && str.Length > precision ? str[..precision] : ToText(value),
                'r' => Repr(value),
                'd' or 'i' => value switch
                {
                    long l => l.ToString(CultureInfo.InvariantCulture),
                    bool b => b ? "1" : "0",
                    double d => Math.Truncate(d).ToString("F0", CultureInfo.InvariantCulture),
                    _ => throw new TemplateException($"template: %{conversion} format needs a number, not {TypeName(value)}"),
                },
                'f' or 'F' => value is long or double or bool
                    ? Convert.ToDouble(value, CultureInfo.InvariantCulture).ToString("F" + (precision < 0 ? 6 : precision), CultureInfo.InvariantCulture)
                    : throw new TemplateException($"template: %{conversion} format needs a number, not {TypeName(value)}"),
                'x' or 'X' or 'o' => value is long n
                    ? (n < 0 ? "-" : "") + (conversion == 'o' ? Convert.ToString(Math.Abs(n), 8) : Math.Abs(n).ToString(conversion == 'x' ? "x" : "X", CultureInfo.InvariantCulture))
                    : throw new TemplateException($"template: %{conversion} format needs an integer, not {TypeName(value)}"),
                'c' => value is long code && code is >= 0 and <= 0x10FFFF ? char.ConvertFromUtf32((int)code) : ToText(value),
                _ => throw new TemplateException($"template: unsupported format character '{conversion}'"),
            };
            bool numeric = conversion is not ('s' or 'r' or 'c');
            if (numeric && !body.StartsWith('-') && (flags.Contains('+') || flags.Contains(' '))) body = (flags.Contains('+') ? "+" : " ") + body;
            if (body.Length < width)
            {
                if (flags.Contains('-')) body = body.PadRight(width);
                else if (numeric && flags.Contains('0'))
                {
                    int sign = body.Length > 0 && body[0] is '-' or '+' or ' ' ? 1 : 0;
                    body = body[..sign] + new string('0', width - body.Length) + body[sign..];
                }
                else body = body.PadLeft(width);
            }
            text.Append(body);
            CheckLength(text.Length);
        }
        if (named is null && next < positional.Count) throw new TemplateException("template: not all arguments converted during string formatting");
        return text.ToString();
    }

    /// <summary>Python's str.split: on whitespace runs without a separator, else on each separator; at most maxsplit splits when it is not negative.</summary>
    private static List<object?> Split(string s, object? separator, object? maxSplit)
    {
        long most = maxSplit is long m ? m : -1;
        var parts = new List<object?>();
        if (separator is null)
        {
            int i = 0;
            while (true)
            {
                while (i < s.Length && char.IsWhiteSpace(s[i])) i++;
                if (i == s.Length) break;
                if (most >= 0 && parts.Count == most)
                {
                    parts.Add(s[i..].TrimEnd());
                    break;
                }
                int start = i;
                while (i < s.Length && !char.IsWhiteSpace(s[i])) i++;
                parts.Add(s[start..i]);
                CheckCount(parts.Count);
            }
            return parts;
        }
        string sep = separator as string ?? throw new TemplateException($"template: split() separator must be a string, not {TypeName(separator)}");
        if (sep.Length == 0) throw new TemplateException("template: split(): empty separator");
        int from = 0;
        for (int at = s.IndexOf(sep, StringComparison.Ordinal); at >= 0 && (most < 0 || parts.Count < most); at = s.IndexOf(sep, from, StringComparison.Ordinal))
        {
            parts.Add(s[from..at]);
            CheckCount(parts.Count);
            from = at + sep.Length;
        }
        parts.Add(s[from..]);
        return parts;
    }

    /// <summary>Python's str.splitlines(): lines without their ends, on every line boundary Python knows.</summary>
    public static List<string> SplitLines(string s)
    {
        var lines = new List<string>();
        int start = 0;
        for (int i = 0; i < s.Length; i++)
        {
            char c = s[i];
            if (c is not ('\n' or '\r' or '\v' or '\f' or '\x1c' or '\x1d' or '\x1e' or '\x85' or '\u2028' or '\u2029')) continue;
            lines.Add(s[start..i]);
            CheckCount(lines.Count);
            if (c == '\r' && i + 1 < s.Length && s[i + 1] == '\n') i++;
            start = i + 1;
        }
        if (start < s.Length) lines.Add(s[start..]);
        return lines;
    }

    public static string Join(string separator, IEnumerable<object?> items)
    {
        var joined = new StringBuilder();
        bool first = true;
        foreach (object? item in items)
        {
            if (!first) joined.Append(separator);
            first = false;
            joined.Append(ToText(item));
            CheckLength(joined.Length);
        }
        return joined.ToString();
    }

    /// <summary>Python's str.title(): upper-case the first letter of every run of letters.</summary>
    public static string Title(string s)
    {
        var sb = new StringBuilder(s.Length);
        bool previousIsLetter = false;
        foreach (char c in s)
        {
            sb.Append(previousIsLetter ? char.ToLowerInvariant(c) : char.ToUpperInvariant(c));
            previousIsLetter = char.IsLetter(c);
        }
        return sb.ToString();
    }

    /// <summary>Python's range(), refused (as Jinja2's sandbox refuses it) beyond <see cref="JinjaLimits.MaxRange"/> items.</summary>
    public static List<object?> Range(List<object?> args)
    {
        if (args.Count is < 1 or > 3) throw new TemplateException($"template: range expected 1 to 3 arguments, got {args.Count}");
        var a = new long[args.Count];
        for (int i = 0; i < args.Count; i++)
            a[i] = args[i] switch
            {
                long l => l,
                bool b => b ? 1 : 0,
                _ => throw new TemplateException($"template: range() argument {i + 1} must be an integer, not {TypeName(args[i])}"),
            };
        long start = a.Length == 1 ? 0 : a[0], stop = a.Length == 1 ? a[0] : a[1], step = a.Length == 3 ? a[2] : 1;
        if (step == 0) throw new TemplateException("template: range() arg 3 must not be zero");
        Int128 span = step > 0 ? (Int128)stop - start : (Int128)start - stop, stride = Int128.Abs(step);
        Int128 count = span <= 0 ? 0 : (span + stride - 1) / stride;
        if (count > JinjaLimits.MaxRange)
            throw new TemplateException($"template: range({string.Join(", ", a)}) has {count} items; the sandbox allows at most {JinjaLimits.MaxRange:N0}");
        var result = new List<object?>((int)count);
        for (long k = 0; k < (long)count; k++) result.Add(start + k * step);
        return result;
    }

    /// <summary>String concatenation, refused before allocation beyond the sandbox's length.</summary>
    public static string Concat(string a, string b)
    {
        CheckLength((long)a.Length + b.Length);
        return a + b;
    }

    /// <summary>Python's <c>s * n</c> and <c>list * n</c>, with the size checked before anything is allocated.</summary>
    private static object Repeat(object? value, long times)
    {
        if (times <= 0) return value is string ? "" : new List<object?>();
        if (value is string s)
        {
            CheckLength((long)Int128.Min((Int128)s.Length * times, long.MaxValue));
            return new StringBuilder(s.Length * (int)times).Insert(0, s, (int)times).ToString();
        }
        var list = (List<object?>)value!;
        CheckCount((long)Int128.Min((Int128)list.Count * times, long.MaxValue));
        var result = new List<object?>(list.Count * (int)times);
        for (long k = 0; k < times; k++) result.AddRange(list);
        return result;
    }

    /// <summary>Python's str.replace (an empty pattern inserts the replacement around every character), length-checked first.</summary>
    public static string Replace(string s, string oldValue, string newValue)
    {
        if (oldValue.Length == 0)
        {
            int runes = s.EnumerateRunes().Count();
            CheckLength(s.Length + (runes + 1L) * newValue.Length);
            var text = new StringBuilder(newValue);
            foreach (Rune r in s.EnumerateRunes()) text.Append(r.ToString()).Append(newValue);
            return text.ToString();
        }
        if (newValue.Length > oldValue.Length)
        {
            long occurrences = 0;
            for (int at = s.IndexOf(oldValue, StringComparison.Ordinal); at >= 0; at = s.IndexOf(oldValue, at + oldValue.Length, StringComparison.Ordinal))
                occurrences++;
            CheckLength(s.Length + occurrences * (newValue.Length - oldValue.Length));
        }
        return s.Replace(oldValue, newValue, StringComparison.Ordinal);
    }

    private static long FloorDivide(long x, long y)
    {
        long q = checked(x / y);
        return x % y != 0 && (x < 0) != (y < 0) ? q - 1 : q;
    }

    private static long Power(long x, long y)
    {
        long result = 1;
        while (y > 0)
        {
            if ((y & 1) != 0) result = checked(result * x);
            y >>= 1;
            if (y > 0) x = checked(x * x);
        }
        return result;
    }

    /// <summary>The strftime codes chat templates use (%d %m %Y %y %b %B %a %A %H %M %S %j %-d %%).</summary>
    public static string Strftime(DateTime t, string format)
    {
        var sb = new StringBuilder();
        for (int i = 0; i < format.Length; i++)
        {
            if (format[i] != '%' || i + 1 >= format.Length) { sb.Append(format[i]); continue; }
            char code = format[++i];
            bool noPad = code == '-' && i + 1 < format.Length;
            if (noPad) code = format[++i];
            string part = code switch
            {
                'd' => t.Day.ToString(noPad ? "0" : "00", CultureInfo.InvariantCulture),
                'm' => t.Month.ToString(noPad ? "0" : "00", CultureInfo.InvariantCulture),
                'Y' => t.Year.ToString(CultureInfo.InvariantCulture),
                'y' => (t.Year % 100).ToString("00", CultureInfo.InvariantCulture),
                'b' => t.ToString("MMM", CultureInfo.InvariantCulture),
                'B' => t.ToString("MMMM", CultureInfo.InvariantCulture),
                'a' => t.ToString("ddd", CultureInfo.InvariantCulture),
                'A' => t.ToString("dddd", CultureInfo.InvariantCulture),
                'H' => t.Hour.ToString(noPad ? "0" : "00", CultureInfo.InvariantCulture),
                'M' => t.Minute.ToString("00", CultureInfo.InvariantCulture),
                'S' => t.Second.ToString("00", CultureInfo.InvariantCulture),
                'j' => t.DayOfYear.ToString("000", CultureInfo.InvariantCulture),
                '%' => "%",
                _ => "%" + code,
            };
            sb.Append(part);
        }
        return sb.ToString();
    }
}
