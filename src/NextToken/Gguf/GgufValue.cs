using System.Globalization;

namespace NextToken.Gguf;

/// <summary>GGUF metadata value types (gguf.h <c>enum gguf_type</c>).</summary>
public enum GgufValueType : uint
{
    UInt8 = 0, Int8 = 1, UInt16 = 2, Int16 = 3, UInt32 = 4, Int32 = 5, Float32 = 6, Bool = 7,
    String = 8, Array = 9, UInt64 = 10, Int64 = 11, Float64 = 12,
}

/// <summary>
/// One metadata value. Scalars hold the CLR type of their GGUF type (byte, sbyte, ushort, short,
/// uint, int, float, bool, string, ulong, long, double); arrays hold a typed CLR array of those
/// (string[] for strings) or, for arrays of arrays, <see cref="GgufValue"/>[].
/// </summary>
public sealed class GgufValue
{
    public GgufValue(GgufValueType type, object value, GgufValueType elementType = GgufValueType.UInt8)
    {
        Type = type;
        Value = value;
        ElementType = elementType;
    }

    public GgufValueType Type { get; }

    /// <summary>Element type when <see cref="Type"/> is <see cref="GgufValueType.Array"/>.</summary>
    public GgufValueType ElementType { get; }

    public object Value { get; }

    public bool IsArray => Type == GgufValueType.Array;

    public int ArrayLength => Value is Array a ? a.Length : 0;

    public static GgufValue Of(string s) => new(GgufValueType.String, s);
    public static GgufValue Of(uint v) => new(GgufValueType.UInt32, v);
    public static GgufValue Of(int v) => new(GgufValueType.Int32, v);
    public static GgufValue Of(float v) => new(GgufValueType.Float32, v);
    public static GgufValue Of(bool v) => new(GgufValueType.Bool, v);
    public static GgufValue Of(string[] v) => new(GgufValueType.Array, v, GgufValueType.String);
    public static GgufValue Of(int[] v) => new(GgufValueType.Array, v, GgufValueType.Int32);
    public static GgufValue Of(float[] v) => new(GgufValueType.Array, v, GgufValueType.Float32);

    /// <summary>Text for display; long arrays are summarized.</summary>
    public string ToDisplayString(int maxItems = 8)
    {
        if (Value is Array array && Value is not string)
        {
            var items = new List<string>();
            for (int i = 0; i < Math.Min(array.Length, maxItems); i++)
            {
                object? item = array.GetValue(i);
                items.Add(item is GgufValue nested ? nested.ToDisplayString(maxItems) : FormatScalar(item));
            }
            string more = array.Length > maxItems ? $", … ({array.Length} items)" : "";
            return $"[{string.Join(", ", items)}{more}]";
        }
        return FormatScalar(Value);
    }

    private static readonly System.Text.Json.JsonSerializerOptions RelaxedJson =
        new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    private static string FormatScalar(object? value) => value switch
    {
        string s => System.Text.Json.JsonSerializer.Serialize(s.Length > 120 ? s[..120] + "…" : s, RelaxedJson),
        float f => f.ToString("R", CultureInfo.InvariantCulture),
        double d => d.ToString("R", CultureInfo.InvariantCulture),
        bool b => b ? "true" : "false",
        null => "null",
        _ => Convert.ToString(value, CultureInfo.InvariantCulture) ?? "",
    };
}
