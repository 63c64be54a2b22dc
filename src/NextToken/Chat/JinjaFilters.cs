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

        switch (name)
        {
            case "length" or "count":
                return value switch
                {
                    string s => (long)s.EnumerateRunes().Count(),
                    System.Collections.ICollection c => (long)c.Count,
                    Undefined or null => 0L,
                    _ => throw new TemplateException($"template: {Values.TypeName(value)} has no length"),
                };
            case "trim":
                return Arg(0, "chars") is string chars ? Values.ToText(value).Trim(chars.ToCharArray()) : Values.ToText(value).Trim();
            case "string":
                return Values.ToText(value);
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
                return Values.Iterate(value).FirstOrDefault() ?? Undefined.Value;
            case "last":
                return Values.Iterate(value).LastOrDefault() ?? Undefined.Value;
            case "default" or "d":
                bool boolean = Values.Truthy(Arg(1, "boolean", false));
                return value is Undefined || (boolean && !Values.Truthy(value)) ? Arg(0, "default_value", "") : value;
            case "join":
                string separator = Values.ToText(Arg(0, "d", ""));
                IEnumerable<object?> items = Values.Iterate(value);
                if (Arg(1, "attribute") is string attribute) items = items.Select(i => Values.GetAttribute(i, attribute));
                var joined = new StringBuilder();
                bool firstItem = true;
                foreach (object? item in items)
                {
                    if (!firstItem) joined.Append(separator);
                    firstItem = false;
                    joined.Append(Values.ToText(item));
                    Values.CheckLength(joined.Length);
                }
                return joined.ToString();
            case "items":
                return value is Dictionary<string, object?> d
                    ? d.Select(kv => (object?)new List<object?> { kv.Key, kv.Value }).ToList()
                    : throw new TemplateException($"template: items needs a mapping, not {Values.TypeName(value)}");
            case "selectattr" or "rejectattr":
            {
                string field = Values.ToText(args[0]);
                bool keep = name == "selectattr";
                return Values.Iterate(value).Where(item =>
                {
                    object? fieldValue = Values.GetAttribute(item, field);
                    bool passes = args.Count > 1 ? Test(Values.ToText(args[1]), fieldValue, args.Skip(2).ToList()) : Values.Truthy(fieldValue);
                    return passes == keep;
                }).ToList();
            }
            case "select" or "reject":
            {
                bool keep = name == "select";
                return Values.Iterate(value).Where(item =>
                    (args.Count > 0 ? Test(Values.ToText(args[0]), item, args.Skip(1).ToList()) : Values.Truthy(item)) == keep).ToList();
            }
            case "map":
                if (kwargs.TryGetValue("attribute", out object? mapAttribute))
                    return Values.Iterate(value).Select(i => Values.GetAttribute(i, Values.ToText(mapAttribute))).ToList();
                return Values.Iterate(value).Select(i => Apply(Values.ToText(args[0]), i, args.Skip(1).ToList(), [])).ToList();
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
                var json = new StringBuilder();
                WriteJson(json, value, Arg(0, "indent") is long indent ? (int)Math.Clamp(indent, 0, JinjaLimits.MaxStringLength) : null, 0, new HashSet<object>(ReferenceEqualityComparer.Instance));
                return json.ToString();
            default:
                throw new TemplateException($"template: unsupported filter '{name}'");
        }
    }

    public static bool Test(string name, object? value, List<object?> args) => name switch
    {
        "defined" => value is not Undefined,
        "undefined" => value is Undefined,
        "none" => value is null,
        "string" => value is string,
        "mapping" => value is Dictionary<string, object?> or Namespace,
        "iterable" => value is string or List<object?> or Dictionary<string, object?> or Namespace,
        "sequence" => value is string or List<object?> or Dictionary<string, object?>,
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
    /// Hugging Face's tojson: Python's <c>json.dumps(x, ensure_ascii=False, indent=indent)</c>, so
    /// separators are ", " and ": " (or "," with indentation) and non-ASCII text stays as it is.
    /// As json.dumps, a container inside itself (a namespace set as its own attribute) is an error;
    /// depth and length are bounded as the text is built.
    /// </summary>
    private static void WriteJson(StringBuilder text, object? value, int? indent, int depth, HashSet<object> open)
    {
        if (depth > JinjaLimits.MaxDepth) throw new TemplateException($"template: tojson: a value nested deeper than {JinjaLimits.MaxDepth} levels");
        void Newline(int level)
        {
            if (indent is not { } n) return;
            Values.CheckLength(text.Length + 1 + (long)n * level);
            text.Append('\n').Append(' ', n * level);
        }
        string itemSeparator = indent is null ? ", " : ",";
        switch (value)
        {
            case null or Undefined: text.Append("null"); break;
            case bool b: text.Append(b ? "true" : "false"); break;
            case long l: text.Append(l.ToString(CultureInfo.InvariantCulture)); break;
            case double d: text.Append(Values.FormatFloat(d) switch { "nan" => "NaN", "inf" => "Infinity", "-inf" => "-Infinity", var f => f }); break;
            case string s: JsonString(text, s); break;
            case List<object?> or Dictionary<string, object?> or Namespace:
                if (!open.Add(value)) throw new TemplateException("template: tojson: circular reference (a value contains itself)");
                IEnumerable<KeyValuePair<string, object?>> fields = value switch
                {
                    List<object?> list => list.Select(i => new KeyValuePair<string, object?>("", i)),
                    Namespace ns => ns.Fields,
                    _ => (Dictionary<string, object?>)value,
                };
                bool isList = value is List<object?>;
                text.Append(isList ? '[' : '{');
                bool empty = true;
                foreach (var (key, item) in fields)
                {
                    if (!empty) text.Append(itemSeparator);
                    empty = false;
                    Newline(depth + 1);
                    if (!isList)
                    {
                        JsonString(text, key);
                        text.Append(": ");
                    }
                    WriteJson(text, item, indent, depth + 1, open);
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

    private static void JsonString(StringBuilder sb, string s)
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
                default: sb.Append(c); break;
            }
        }
        sb.Append('"');
    }
}
