using System.Globalization;
using System.Text;

namespace NextToken.Chat;

/// <summary>Python semantics for template values: truth, printing, arithmetic, comparison, indexing.</summary>
internal static class Values
{
    /// <summary>Brings a caller's value into the template's world: lists as List, maps as string-keyed dictionaries.</summary>
    public static object? Import(object? value) => value switch
    {
        null or string or bool or long or double or Undefined or Namespace or JinjaFunction => value,
        int i => (long)i,
        float f => (double)f,
        IDictionary<string, object?> d => d.ToDictionary(kv => kv.Key, kv => Import(kv.Value)),
        IReadOnlyDictionary<string, string> d => d.ToDictionary(kv => kv.Key, kv => (object?)kv.Value),
        System.Collections.IEnumerable e => e.Cast<object?>().Select(Import).ToList(),
        _ => value,
    };

    public static bool Truthy(object? v) => v switch
    {
        null or Undefined => false,
        bool b => b,
        string s => s.Length > 0,
        long l => l != 0,
        double d => d != 0,
        System.Collections.ICollection c => c.Count > 0,
        _ => true,
    };

    /// <summary>What <c>{{ v }}</c> prints: Python's <c>str(v)</c>.</summary>
    public static string ToText(object? v) => v switch
    {
        string s => s,
        Undefined => "",
        _ => Repr(v, top: true),
    };

    public static string Repr(object? v, bool top = false) => v switch
    {
        null => "None",
        Undefined => "",
        bool b => b ? "True" : "False",
        long l => l.ToString(CultureInfo.InvariantCulture),
        double d => FormatFloat(d),
        string s => top ? s : "'" + s.Replace("\\", "\\\\").Replace("'", "\\'").Replace("\n", "\\n") + "'",
        Dictionary<string, object?> d => "{" + string.Join(", ", d.Select(kv => Repr(kv.Key) + ": " + Repr(kv.Value))) + "}",
        List<object?> l => "[" + string.Join(", ", l.Select(x => Repr(x))) + "]",
        _ => v.ToString() ?? "",
    };

    public static string FormatFloat(double d)
    {
        if (double.IsNaN(d)) return "nan";
        if (double.IsInfinity(d)) return d > 0 ? "inf" : "-inf";
        string r = d.ToString("R", CultureInfo.InvariantCulture);
        return r.Contains('.') || r.Contains('E') ? r : r + ".0";
    }

    public static IEnumerable<object?> Iterate(object? v) => v switch
    {
        null or Undefined => [],
        string s => s.EnumerateRunes().Select(r => (object?)r.ToString()),
        Dictionary<string, object?> d => d.Keys,
        Namespace ns => ns.Fields.Keys,
        List<object?> l => l,
        _ => throw new TemplateException($"template: {TypeName(v)} is not iterable"),
    };

    public static object? GetAttribute(object? target, string name) => target switch
    {
        LoopInfo loop => loop.Get(name),
        Namespace ns => ns.Fields.TryGetValue(name, out object? v) ? v : Undefined.Value,
        Dictionary<string, object?> d when d.TryGetValue(name, out object? v) => v,
        Dictionary<string, object?> d => DictMethod(d, name),
        string s => StringMethod(s, name),
        _ => Undefined.Value,
    };

    public static object? GetItem(object? target, object? index)
    {
        switch (target)
        {
            case Dictionary<string, object?> d:
                return index is string key && d.TryGetValue(key, out object? v) ? v : Undefined.Value;
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
            case Undefined or null:
                return Undefined.Value;
            default:
                return index is string attribute ? GetAttribute(target, attribute) : Undefined.Value;
        }
    }

    public static object? Slice(object? target, object? start, object? stop, object? step)
    {
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
        return target is string ? string.Concat(result.Cast<string>()) : result;
    }

    public static object? Invoke(object? function, List<object?> args, Dictionary<string, object?> kwargs) => function switch
    {
        JinjaFunction f => f(args, kwargs),
        _ => throw new TemplateException($"template: {TypeName(function)} is not callable"),
    };

    public static object? Negate(object? v) => v switch
    {
        long l => -l,
        double d => -d,
        _ => throw new TemplateException($"template: cannot negate {TypeName(v)}"),
    };

    public static object? BinaryOp(string op, object? a, object? b)
    {
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
        if (op == "+" && a is string sa && b is string sb) return sa + sb;
        if (op == "+" && a is List<object?> la && b is List<object?> lb) return la.Concat(lb).ToList();
        if (op == "*" && a is string repeated && b is long times) return string.Concat(Enumerable.Repeat(repeated, (int)Math.Max(0, times)));
        if (a is long x && b is long y)
        {
            return op switch
            {
                "+" => x + y,
                "-" => x - y,
                "*" => x * y,
                "/" => (double)x / y,
                "//" => y == 0 ? throw new TemplateException("template: division by zero") : (long)Math.Floor((double)x / y),
                "%" => y == 0 ? throw new TemplateException("template: modulo by zero") : ((x % y) + y) % y,
                "**" => (long)Math.Pow(x, y),
                _ => throw new TemplateException($"template: unknown operator {op}"),
            };
        }
        if (IsNumber(a) && IsNumber(b))
        {
            double p = Convert.ToDouble(a, CultureInfo.InvariantCulture), q = Convert.ToDouble(b, CultureInfo.InvariantCulture);
            return op switch
            {
                "+" => p + q, "-" => p - q, "*" => p * q, "/" => p / q,
                "//" => Math.Floor(p / q), "%" => p - q * Math.Floor(p / q), "**" => Math.Pow(p, q),
                _ => throw new TemplateException($"template: unknown operator {op}"),
            };
        }
        throw new TemplateException($"template: unsupported operand types for {op}: {TypeName(a)} and {TypeName(b)}");
    }

    public static bool AreEqual(object? a, object? b)
    {
        if (IsNumber(a) && IsNumber(b)) return Convert.ToDouble(a, CultureInfo.InvariantCulture) == Convert.ToDouble(b, CultureInfo.InvariantCulture);
        return (a, b) switch
        {
            (null, null) => true,
            (Undefined, Undefined) => true,
            (string x, string y) => x == y,
            (List<object?> x, List<object?> y) => x.Count == y.Count && x.Zip(y).All(p => AreEqual(p.First, p.Second)),
            (Dictionary<string, object?> x, Dictionary<string, object?> y) =>
                x.Count == y.Count && x.All(kv => y.TryGetValue(kv.Key, out object? other) && AreEqual(kv.Value, other)),
            _ => ReferenceEquals(a, b),
        };
    }

    private static bool Contains(object? container, object? item) => container switch
    {
        string s => item is string sub ? s.Contains(sub, StringComparison.Ordinal) : throw new TemplateException("template: 'in <string>' needs a string"),
        Dictionary<string, object?> d => item is string key && d.ContainsKey(key),
        List<object?> l => l.Any(x => AreEqual(x, item)),
        null or Undefined => false,
        _ => throw new TemplateException($"template: {TypeName(container)} does not support 'in'"),
    };

    private static int Compare(object? a, object? b)
    {
        if (IsNumber(a) && IsNumber(b)) return Convert.ToDouble(a, CultureInfo.InvariantCulture).CompareTo(Convert.ToDouble(b, CultureInfo.InvariantCulture));
        if (a is string x && b is string y) return string.CompareOrdinal(x, y);
        throw new TemplateException($"template: cannot compare {TypeName(a)} with {TypeName(b)}");
    }

    private static bool IsNumber(object? v) => v is long or double || (v is bool);

    public static string TypeName(object? v) => v switch
    {
        null => "None",
        Undefined => "undefined",
        string => "str",
        long => "int",
        double => "float",
        bool => "bool",
        List<object?> => "list",
        Dictionary<string, object?> => "dict",
        _ => v.GetType().Name,
    };

    private static object? DictMethod(Dictionary<string, object?> d, string name) => name switch
    {
        "items" => (JinjaFunction)((_, _) => d.Select(kv => (object?)new List<object?> { kv.Key, kv.Value }).ToList()),
        "keys" => (JinjaFunction)((_, _) => d.Keys.Select(k => (object?)k).ToList()),
        "values" => (JinjaFunction)((_, _) => d.Values.ToList()),
        "get" => (JinjaFunction)((args, _) => args.Count > 0 && args[0] is string key && d.TryGetValue(key, out object? v) ? v : args.Count > 1 ? args[1] : null),
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
        "replace" => (JinjaFunction)((args, _) => s.Replace(ToText(args[0]), ToText(args[1]), StringComparison.Ordinal)),
        "split" => (JinjaFunction)((args, _) => (args.Count > 0 && args[0] is string sep
            ? s.Split(sep)
            : s.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries)).Select(x => (object?)x).ToList()),
        _ => Undefined.Value,
    };

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

    public static List<object?> Range(List<object?> args)
    {
        long start = 0, stop, step = 1;
        if (args.Count == 1) stop = (long)args[0]!;
        else
        {
            start = (long)args[0]!;
            stop = (long)args[1]!;
            if (args.Count > 2) step = (long)args[2]!;
        }
        var result = new List<object?>();
        for (long i = start; step > 0 ? i < stop : i > stop; i += step) result.Add(i);
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
