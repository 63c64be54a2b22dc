using System.Globalization;
using System.Text;

namespace NextToken.Chat;

/// <summary>The filters and tests chat templates use, with Jinja's (and Hugging Face's tojson) behaviour.</summary>
internal static class Filters
{
    public static object? Apply(string name, object? value, List<object?> args, Dictionary<string, object?> kwargs)
    {
        object? Arg(int index, string keyword, object? fallback = null) =>
            kwargs.TryGetValue(keyword, out object? k) ? k : index < args.Count ? args[index] : fallback;

        // Filters other than these give plain strings for Markup (Jinja keeps Markup through some; only '+' tells them apart).
        if (name is not ("safe" or "escape" or "e" or "string")) value = Values.Plain(value);
        switch (name)
        {
            case "safe":
                return value as Markup ?? new Markup(Values.ToText(value));
            case "escape" or "e":
                return value as Markup ?? new Markup(Values.EscapeHtml(Values.ToText(value)));
            case "format":
                // Jinja: value % (kwargs or args)
                return Values.PercentFormat(Values.ToText(value), kwargs.Count > 0 ? new Dictionary<string, object?>(kwargs) : new PyTuple(args));
            case "forceescape":
                return new Markup(Values.EscapeHtml(Values.ToText(value)));
            case "indent":
                return Indent(Values.ToText(value), Arg(0, "width", 4L), Values.Truthy(Arg(1, "first", false)), Values.Truthy(Arg(2, "blank", false)));
            case "unique":
            {
                bool caseSensitive = Values.Truthy(Arg(0, "case_sensitive", false));
                string? by = Arg(1, "attribute") is { } a ? Values.ToText(a) : null;
                var seen = new HashSet<string>(StringComparer.Ordinal); // a set as Jinja's, so a long list costs n, not n²
                var result = new List<object?>();
                foreach (object? item in Values.Iterate(value))
                {
                    object? key = by is null ? item : Values.GetAttribute(item, by);
                    if (!caseSensitive && Values.Plain(key) is string lowered) key = lowered.ToLowerInvariant();
                    if (seen.Add(HashKey(key, 0))) result.Add(item);
                }
                return result;
            }
            case "reverse":
                return value is string reversed
                    ? string.Concat(reversed.EnumerateRunes().Reverse().Select(r => r.ToString()))
                    : Values.Iterate(value).Reverse().ToList();
            case "sort":
            {
                bool descending = Values.Truthy(Arg(0, "reverse", false)), caseSensitive = Values.Truthy(Arg(1, "case_sensitive", false));
                string? by = Arg(2, "attribute") is { } a ? Values.ToText(a) : null;
                object? Key(object? item)
                {
                    object? key = by is null ? item : Values.GetAttribute(item, by);
                    return !caseSensitive && key is string lowered ? lowered.ToLowerInvariant() : key;
                }
                var sorted = Values.Iterate(value).ToList();
                var keys = sorted.Select(Key).ToList();
                var order = Enumerable.Range(0, sorted.Count).ToList();
                order.Sort((x, y) => Values.Compare(keys[x], keys[y]) is var c && c != 0 ? (descending ? -c : c) : x.CompareTo(y)); // stable, as Python's sort
                return order.Select(i => sorted[i]).ToList();
            }
            case "dictsort":
            {
                if (value is not Dictionary<string, object?> map) throw new TemplateException($"template: dictsort needs a mapping, not {Values.TypeName(value)}");
                bool caseSensitive = Values.Truthy(Arg(0, "case_sensitive", false)), byValue = Values.ToText(Arg(1, "by", "key")) == "value", descending = Values.Truthy(Arg(2, "reverse", false));
                var pairs = map.ToList();
                object? Key(KeyValuePair<string, object?> kv) => (byValue ? kv.Value : kv.Key) is var k && !caseSensitive && k is string lowered ? lowered.ToLowerInvariant() : byValue ? kv.Value : kv.Key;
                var order = Enumerable.Range(0, pairs.Count).ToList();
                order.Sort((x, y) => Values.Compare(Key(pairs[x]), Key(pairs[y])) is var c && c != 0 ? (descending ? -c : c) : x.CompareTo(y));
                return order.Select(i => (object?)new PyTuple([pairs[i].Key, pairs[i].Value])).ToList();
            }
            case "sum":
            {
                object? total = Arg(1, "start", 0L);
                string? by = Arg(0, "attribute") is { } a ? Values.ToText(a) : null;
                foreach (object? item in Values.Iterate(value)) total = Values.BinaryOp("+", total, by is null ? item : Values.GetAttribute(item, by));
                return total;
            }
            case "min" or "max":
            {
                var list = Values.Iterate(value).ToList();
                if (list.Count == 0) return new Undefined($"{name} of an empty sequence");
                object? best = list[0];
                foreach (object? item in list.Skip(1))
                    if (Values.Compare(item, best) is var c && (name == "min" ? c < 0 : c > 0)) best = item;
                return best;
            }
            case "round":
            {
                int precision = Arg(0, "precision", 0L) is long p ? (int)Math.Clamp(p, -15, 15) : 0;
                string method = Values.ToText(Arg(1, "method", "common"));
                if (value is long whole && method == "common" && precision >= 0) return whole; // Python's round(int, n) is the int itself
                double number = value switch { long l => l, double dd => dd, _ => throw new TemplateException($"template: round needs a number, not {Values.TypeName(value)}") };
                double scale = Math.Pow(10, precision);
                double scaled = number * scale;
                return method switch
                {
                    // Jinja's "common" is Python's round(): halves go to the even neighbour
                    "common" => Math.Round(scaled, MidpointRounding.ToEven) / scale,
                    "ceil" => Math.Ceiling(scaled) / scale,
                    "floor" => Math.Floor(scaled) / scale,
                    _ => throw new TemplateException($"template: round method must be common, ceil or floor, not '{method}'"),
                };
            }
            case "length" or "count":
                return value switch
                {
                    string s => (long)s.EnumerateRunes().Count(),
                    System.Collections.ICollection c => (long)c.Count,
                    Undefined => 0L,
                    _ => throw new TemplateException($"template: {Values.TypeName(value)} has no length"),
                };
            case "trim":
                return Arg(0, "chars") is string chars ? Values.ToText(value).Trim(chars.ToCharArray()) : Values.ToText(value).Trim();
            case "string":
                return value as Markup ?? (object)Values.ToText(value);
            case "upper":
                return Values.ToText(value).ToUpperInvariant();
            case "lower":
                return Values.ToText(value).ToLowerInvariant();
            case "title":
                return Values.Title(Values.ToText(value));
            case "capitalize":
                string text = Values.ToText(value);
                return text.Length == 0 ? text : char.ToUpperInvariant(text[0]) + text[1..].ToLowerInvariant();
            case "replace":
                return Values.Replace(Values.ToText(value), Values.ToText(args[0]), Values.ToText(args[1]));
            case "list":
                return Values.Iterate(value).ToList();
            case "first":
                foreach (object? item in Values.Iterate(value)) return item;
                return new Undefined("first of an empty sequence");
            case "last":
                var all = Values.Iterate(value).ToList();
                return all.Count > 0 ? all[^1] : new Undefined("last of an empty sequence");
            case "default" or "d":
                bool boolean = Values.Truthy(Arg(1, "boolean", false));
                return value is Undefined || (boolean && !Values.Truthy(value)) ? Arg(0, "default_value", "") : value;
            case "join":
                string separator = Values.ToText(Arg(0, "d", ""));
                IEnumerable<object?> items = Values.Iterate(value);
                if (Arg(1, "attribute") is string attribute) items = items.Select(i => Values.GetAttribute(i, attribute));
                return Values.Join(separator, items);
            case "items":
                if (value is Undefined) return new List<object?>();
                return value is Dictionary<string, object?> d
                    ? d.Select(kv => (object?)new PyTuple([kv.Key, kv.Value])).ToList()
                    : throw new TemplateException($"template: items needs a mapping, not {Values.TypeName(value)}");
            case "selectattr" or "rejectattr":
            {
                string field = Values.ToText(args[0]);
                bool keep = name == "selectattr";
                return Guarded(value).Where(item =>
                {
                    object? fieldValue = Values.GetAttribute(item, field);
                    bool passes = args.Count > 1 ? Test(Values.ToText(args[1]), fieldValue, args.Skip(2).ToList()) : Values.Truthy(fieldValue);
                    return passes == keep;
                }).ToList();
            }
            case "select" or "reject":
            {
                bool keep = name == "select";
                return Guarded(value).Where(item =>
                    (args.Count > 0 ? Test(Values.ToText(args[0]), item, args.Skip(1).ToList()) : Values.Truthy(item)) == keep).ToList();
            }
            case "map":
                if (kwargs.TryGetValue("attribute", out object? mapAttribute))
                    return Guarded(value).Select(i => Values.GetAttribute(i, Values.ToText(mapAttribute)) is var v && v is Undefined && kwargs.TryGetValue("default", out object? fallback) ? fallback : v).ToList();
                return Guarded(value).Select(i => Apply(Values.ToText(args[0]), i, args.Skip(1).ToList(), [])).ToList();
            case "int":
                return value switch
                {
                    long l => l, double dd => (long)dd, bool b => b ? 1L : 0L,
                    string s when long.TryParse(s.Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out long parsed) => parsed,
                    _ => Arg(0, "default", 0L),
                };
            case "float":
                return value switch
                {
                    long l => (double)l, double dd => dd,
                    string s when double.TryParse(s.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out double parsed) => parsed,
                    _ => Arg(0, "default", 0.0),
                };
            case "abs":
                return value switch { long l => Math.Abs(l), double dd => Math.Abs(dd), _ => value };
            case "tojson":
            {
                // transformers' tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False) is json.dumps with those arguments.
                int? indent = Arg(1, "indent") is long n ? (int)Math.Clamp(n, 0, JinjaLimits.MaxStringLength) : null;
                string itemSeparator = indent is null ? ", " : ",", keySeparator = ": ";
                if (Arg(2, "separators") is { } separators)
                {
                    var pair = Values.Iterate(separators).Select(Values.Plain).ToList();
                    if (pair.Count != 2 || pair[0] is not string item || pair[1] is not string key)
                        throw new TemplateException("template: tojson separators must be a pair of strings (item, key)");
                    (itemSeparator, keySeparator) = (item, key);
                }
                var options = new JsonOptions(indent, itemSeparator, keySeparator, Values.Truthy(Arg(0, "ensure_ascii", false)), Values.Truthy(Arg(3, "sort_keys", false)));
                var json = new StringBuilder();
                WriteJson(json, value, options, 0, new HashSet<object>(ReferenceEqualityComparer.Instance));
                return json.ToString();
            }
            default:
                throw new TemplateException($"template: unsupported filter '{name}'");
        }
    }

    /// <summary>A text equal for values Python hashes equal (1, 1.0 and True; equal strings; tuples of those); lists and dicts are unhashable, as in Python.</summary>
    private static string HashKey(object? key, int depth)
    {
        if (depth > JinjaLimits.MaxDepth) throw new TemplateException($"template: unique: a value nested deeper than {JinjaLimits.MaxDepth} levels");
        return Values.Plain(key) switch
        {
            null => "none",
            bool b => b ? "n1" : "n0",
            long l => "n" + l.ToString(CultureInfo.InvariantCulture),
            double d when d == Math.Floor(d) && Math.Abs(d) < 9.2e18 => "n" + ((long)d).ToString(CultureInfo.InvariantCulture),
            double d => "f" + d.ToString("R", CultureInfo.InvariantCulture),
            string s => "s" + s,
            PyTuple t => "t(" + string.Join(",", t.Select(x => HashKey(x, depth + 1).Replace("\\", "\\\\").Replace(",", "\\,"))) + ")",
            var other => throw new TemplateException($"template: unique: unhashable type: '{Values.TypeName(other)}'"),
        };
    }

    /// <summary>select/reject/selectattr/rejectattr/map iterate only a true value (Jinja's "if seq:"), so none gives nothing.</summary>
    private static IEnumerable<object?> Guarded(object? value) => Values.Truthy(value) ? Values.Iterate(value) : [];

    public static bool Test(string name, object? value, List<object?> args) => name switch
    {
        "defined" => value is not Undefined,
        "undefined" => value is Undefined,
        "none" => value is null,
        "string" => value is string or Markup,
        "mapping" => value is Dictionary<string, object?>,
        "iterable" => value is string or Markup or List<object?> or Dictionary<string, object?> or Undefined, // Jinja's undefined iterates (as nothing)
        "sequence" => value is string or Markup or List<object?> or Dictionary<string, object?>,
        "escaped" => value is Markup,
        "number" => value is long or double,
        "integer" => value is long,
        "float" => value is double,
        "boolean" => value is bool,
        "true" => value is true,
        "false" => value is false,
        "callable" => value is JinjaFunction,
        "odd" => value is long odd && odd % 2 != 0,
        "even" => value is long even && even % 2 == 0,
        "divisibleby" => value is long n && args[0] is long m && m != 0 && n % m == 0,
        "equalto" or "eq" or "==" or "sameas" => Values.AreEqual(value, args[0]),
        "ne" or "!=" => !Values.AreEqual(value, args[0]),
        "in" => Values.Truthy(Values.BinaryOp("in", value, args[0])),
        "lower" => value is string lower && lower == lower.ToLowerInvariant(),
        "upper" => value is string upper && upper == upper.ToUpperInvariant(),
        _ => throw new TemplateException($"template: unsupported test '{name}'"),
    };

    /// <summary>
    /// Jinja's indent: every line but the first (and the first too with <paramref name="first"/>)
    /// gets the width in spaces or the given string; blank lines stay empty unless <paramref name="blank"/>.
    /// </summary>
    private static string Indent(string s, object? width, bool first, bool blank)
    {
        string indention = width switch
        {
            string w => w,
            long n and >= 0 and <= 1000 => new string(' ', (int)n),
            long => throw new TemplateException("template: indent width must be between 0 and 1000"),
            _ => throw new TemplateException($"template: indent width must be a number or a string, not {Values.TypeName(width)}"),
        };
        List<string> lines = Values.SplitLines(s + "\n"); // as Jinja: the added newline keeps a trailing one
        Values.CheckLength(s.Length + (lines.Count + 1L) * indention.Length);
        var text = new StringBuilder();
        for (int i = 0; i < lines.Count; i++)
        {
            if (i > 0) text.Append('\n');
            if ((i > 0 || first) && (blank || lines[i].Length > 0 || (i == 0 && first))) text.Append(indention);
            text.Append(lines[i]);
        }
        return text.ToString();
    }

    /// <summary>
    /// Hugging Face's tojson: Python's <c>json.dumps(x, ensure_ascii=False, indent=indent)</c>, so
    /// separators are ", " and ": " (or "," with indentation) and non-ASCII text stays as it is.
    /// As json.dumps, a container inside itself (a namespace set as its own attribute) is an error;
    /// depth and length are bounded as the text is built.
    /// </summary>
    private sealed record JsonOptions(int? Indent, string ItemSeparator, string KeySeparator, bool EnsureAscii, bool SortKeys);

    private static void WriteJson(StringBuilder text, object? value, JsonOptions options, int depth, HashSet<object> open)
    {
        int? indent = options.Indent;
        if (depth > JinjaLimits.MaxDepth) throw new TemplateException($"template: tojson: a value nested deeper than {JinjaLimits.MaxDepth} levels");
        void Newline(int level)
        {
            if (indent is not { } n) return;
            Values.CheckLength(text.Length + 1 + (long)n * level);
            text.Append('\n').Append(' ', n * level);
        }
        switch (value)
        {
            case Undefined u: throw new TemplateException($"template: tojson: {u.Hint}");
            case null: text.Append("null"); break;
            case bool b: text.Append(b ? "true" : "false"); break;
            case long l: text.Append(l.ToString(CultureInfo.InvariantCulture)); break;
            case double d: text.Append(Values.FormatFloat(d) switch { "nan" => "NaN", "inf" => "Infinity", "-inf" => "-Infinity", var f => f }); break;
            case string s: JsonString(text, s, options.EnsureAscii); break;
            case Markup m: JsonString(text, m.Text, options.EnsureAscii); break;
            case List<object?> or Dictionary<string, object?> or Namespace:
                if (!open.Add(value)) throw new TemplateException("template: tojson: circular reference (a value contains itself)");
                IEnumerable<KeyValuePair<string, object?>> fields = value switch
                {
                    List<object?> list => list.Select(i => new KeyValuePair<string, object?>("", i)),
                    Namespace ns => ns.Fields,
                    _ => (Dictionary<string, object?>)value,
                };
                if (options.SortKeys && value is not List<object?>) fields = fields.OrderBy(kv => kv.Key, StringComparer.Ordinal);
                bool isList = value is List<object?>;
                text.Append(isList ? '[' : '{');
                bool empty = true;
                foreach (var (key, item) in fields)
                {
                    if (!empty) text.Append(options.ItemSeparator);
                    empty = false;
                    Newline(depth + 1);
                    if (!isList)
                    {
                        JsonString(text, key, options.EnsureAscii);
                        text.Append(options.KeySeparator);
                    }
                    WriteJson(text, item, options, depth + 1, open);
                }
                if (!empty) Newline(depth);
                text.Append(isList ? ']' : '}');
                open.Remove(value);
                break;
            default:
                throw new TemplateException($"template: cannot convert {Values.TypeName(value)} to JSON");
        }
        Values.CheckLength(text.Length);
    }

    private static void JsonString(StringBuilder sb, string s, bool ensureAscii)
    {
        Values.CheckLength(sb.Length + 2L + s.Length);
        sb.Append('"');
        foreach (char c in s)
        {
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                case '\b': sb.Append("\\b"); break;
                case '\f': sb.Append("\\f"); break;
                case < ' ': sb.Append(CultureInfo.InvariantCulture, $"\\u{(int)c:x4}"); break;
                case > '\x7f' when ensureAscii: sb.Append(CultureInfo.InvariantCulture, $"\\u{(int)c:x4}"); break; // UTF-16 units, so astral characters are surrogate pairs as in Python
                default: sb.Append(c); break;
            }
        }
        sb.Append('"');
    }
}
