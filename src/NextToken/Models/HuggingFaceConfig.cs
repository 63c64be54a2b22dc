using System.Text.Json;

namespace NextToken.Models;

/// <summary>A Hugging Face config.json, read with errors that name the file and key.</summary>
public sealed class HuggingFaceConfig
{
    private const long MaxDimension = 1 << 20;
    private readonly JsonElement _root;

    private HuggingFaceConfig(string path, JsonElement root) => (Path, _root) = (path, root);

    public string Path { get; }

    public static HuggingFaceConfig Load(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: file not found", path);
        try
        {
            using var document = JsonInput.ParseFile(path);
            if (document.RootElement.ValueKind != JsonValueKind.Object) throw new NextTokenException($"{path}: expected a JSON object");
            return new HuggingFaceConfig(path, document.RootElement.Clone());
        }
        catch (JsonException error)
        {
            throw new NextTokenException($"{path}: not valid JSON ({error.Message})");
        }
    }

    /// <summary>A nested object (e.g. <c>rope_scaling</c>) read the same way, or null when absent; errors name the key.</summary>
    public HuggingFaceConfig? Section(string key)
    {
        if (!Has(key)) return null;
        JsonElement value = _root.GetProperty(key);
        return value.ValueKind == JsonValueKind.Object ? new HuggingFaceConfig($"{Path} '{key}'", value) : throw Wrong(key, value, "an object");
    }

    public bool Has(string key) => _root.TryGetProperty(key, out JsonElement v) && v.ValueKind != JsonValueKind.Null;

    public string? String(string key)
    {
        if (!Has(key)) return null;
        JsonElement value = _root.GetProperty(key);
        return value.ValueKind == JsonValueKind.String ? value.GetString() : throw Wrong(key, value, "a string");
    }

    public bool Bool(string key, bool fallback)
    {
        if (!Has(key)) return fallback;
        JsonElement value = _root.GetProperty(key);
        return value.ValueKind is JsonValueKind.True or JsonValueKind.False ? value.GetBoolean() : throw Wrong(key, value, "true or false");
    }

    /// <summary>The architecture: <c>model_type</c>, else derived from <c>architectures[0]</c>.</summary>
    public string ModelType =>
        String("model_type")
        ?? (_root.TryGetProperty("architectures", out JsonElement a) && a.ValueKind == JsonValueKind.Array && a.GetArrayLength() > 0
            ? a[0].ValueKind == JsonValueKind.String ? a[0].GetString() : throw Wrong("architectures[0]", a[0], "a string")
            : null)
        ?? throw new NextTokenException($"{Path}: neither 'model_type' nor 'architectures' says what model this is");

    public int Dimension(string key, int? fallback = null)
    {
        if (!Has(key))
            return fallback ?? throw new NextTokenException($"{Path}: missing required key '{key}'");
        JsonElement value = _root.GetProperty(key);
        // TryGetInt64 throws on anything but a number, so the kind is checked first.
        if (value.ValueKind != JsonValueKind.Number || !value.TryGetInt64(out long number) || number <= 0 || number > MaxDimension)
            throw Wrong(key, value, $"an integer from 1 to {MaxDimension}");
        return (int)number;
    }

    public double Number(string key, double fallback)
    {
        if (!Has(key)) return fallback;
        JsonElement value = _root.GetProperty(key);
        // GetDouble would throw (with no file named) on 1e400; such values are refused here.
        return value.ValueKind == JsonValueKind.Number && value.TryGetDouble(out double number) && double.IsFinite(number)
            ? number : throw Wrong(key, value, "a finite number");
    }

    /// <summary>A list of finite numbers, empty when absent.</summary>
    public double[] Numbers(string key)
    {
        if (!Has(key)) return [];
        JsonElement value = _root.GetProperty(key);
        if (value.ValueKind != JsonValueKind.Array) throw Wrong(key, value, "a list of numbers");
        var numbers = new double[value.GetArrayLength()];
        for (int i = 0; i < numbers.Length; i++)
            numbers[i] = value[i].ValueKind == JsonValueKind.Number && value[i].TryGetDouble(out double n) && double.IsFinite(n) ? n : throw Wrong($"{key}[{i}]", value[i], "a finite number");
        return numbers;
    }

    /// <summary>A token id (<c>bos_token_id</c>), or null when absent; a list (as Llama 3 gives for EOS) yields its first.</summary>
    public int? TokenId(string key) => TokenIds(key) is [var first, ..] ? first : null;

    /// <summary>
    /// Token ids under a key that holds one id or a list of them (Llama 3's
    /// <c>"eos_token_id": [128001, 128008, 128009]</c>); empty when absent.
    /// </summary>
    public int[] TokenIds(string key)
    {
        if (!Has(key)) return [];
        JsonElement value = _root.GetProperty(key);
        if (value.ValueKind != JsonValueKind.Array) return [ReadId(key, value)];
        var ids = new int[value.GetArrayLength()];
        for (int i = 0; i < ids.Length; i++) ids[i] = ReadId($"{key}[{i}]", value[i]);
        return ids;
    }

    private int ReadId(string key, JsonElement value) =>
        value.ValueKind == JsonValueKind.Number && value.TryGetInt32(out int id) && id >= 0 ? id : throw Wrong(key, value, "a token id (an integer from 0 to 2^31-1)");

    /// <summary>The one-line error for a value of the wrong kind or range, quoting (a short prefix of) what the file has.</summary>
    private NextTokenException Wrong(string key, JsonElement value, string expected) =>
        new($"{Path}: '{key}' is {Quote(value)}; expected {expected}");

    internal static string Quote(JsonElement value)
    {
        string raw = value.GetRawText().ReplaceLineEndings(" ");
        return raw.Length <= 40 ? raw : raw[..40] + "…";
    }
}
