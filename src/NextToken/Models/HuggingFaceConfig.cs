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
            using var document = JsonDocument.Parse(File.ReadAllText(path));
            if (document.RootElement.ValueKind != JsonValueKind.Object) throw new NextTokenException($"{path}: expected a JSON object");
            return new HuggingFaceConfig(path, document.RootElement.Clone());
        }
        catch (JsonException error)
        {
            throw new NextTokenException($"{path}: not valid JSON ({error.Message})");
        }
    }

    public bool Has(string key) => _root.TryGetProperty(key, out JsonElement v) && v.ValueKind != JsonValueKind.Null;

    public string? String(string key) => _root.TryGetProperty(key, out JsonElement v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    public bool Bool(string key, bool fallback) => _root.TryGetProperty(key, out JsonElement v) && v.ValueKind is JsonValueKind.True or JsonValueKind.False ? v.GetBoolean() : fallback;

    /// <summary>The architecture: <c>model_type</c>, else derived from <c>architectures[0]</c>.</summary>
    public string ModelType =>
        String("model_type")
        ?? (_root.TryGetProperty("architectures", out JsonElement a) && a.ValueKind == JsonValueKind.Array && a.GetArrayLength() > 0 ? a[0].GetString() : null)
        ?? throw new NextTokenException($"{Path}: neither 'model_type' nor 'architectures' says what model this is");

    public int Dimension(string key, int? fallback = null)
    {
        if (!Has(key))
            return fallback ?? throw new NextTokenException($"{Path}: missing required key '{key}'");
        JsonElement value = _root.GetProperty(key);
        if (!value.TryGetInt64(out long number) || number <= 0 || number > MaxDimension)
            throw new NextTokenException($"{Path}: '{key}' is {value}; expected an integer from 1 to {MaxDimension}");
        return (int)number;
    }

    public double Number(string key, double fallback)
    {
        if (!Has(key)) return fallback;
        JsonElement value = _root.GetProperty(key);
        return value.ValueKind == JsonValueKind.Number ? value.GetDouble() : throw new NextTokenException($"{Path}: '{key}' is {value}; expected a number");
    }
}
