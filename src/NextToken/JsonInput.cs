using System.Text.Json;

namespace NextToken;

/// <summary>
/// JSON from files and requests, parsed so that reading any string later cannot fail: the reader
/// checks structure, not the text inside strings, so bytes that are not UTF-8 or an escaped lone
/// surrogate (<c>"\ud800"</c>) only throw when that string is read — found by fuzzing the
/// safetensors header and server requests. Every string and property name is read once here, and
/// a failure is a <see cref="NextTokenException"/> naming the source.
/// </summary>
public static class JsonInput
{
    public static JsonDocument Parse(ReadOnlyMemory<byte> utf8, string source, int maxDepth = 64)
    {
        if (!System.Text.Unicode.Utf8.IsValid(utf8.Span)) throw new NextTokenException($"{source}: not valid UTF-8");
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(utf8, new JsonDocumentOptions { MaxDepth = maxDepth });
        }
        catch (JsonException error)
        {
            throw new NextTokenException($"{source}: not valid JSON ({error.Message})");
        }
        try
        {
            CheckStrings(document.RootElement);
        }
        catch (InvalidOperationException)
        {
            document.Dispose();
            throw new NextTokenException($"{source}: a string is not valid Unicode (a lone surrogate escape such as \\ud800)");
        }
        return document;
    }

    public static JsonDocument Parse(string text, string source, int maxDepth = 64) =>
        Parse(System.Text.Encoding.UTF8.GetBytes(text), source, maxDepth);

    public static JsonDocument ParseFile(string path, int maxDepth = 64) => Parse(File.ReadAllBytes(path), path, maxDepth);

    private static void CheckStrings(JsonElement element)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.String:
                _ = element.GetString();
                break;
            case JsonValueKind.Array:
                foreach (JsonElement item in element.EnumerateArray()) CheckStrings(item);
                break;
            case JsonValueKind.Object:
                foreach (JsonProperty property in element.EnumerateObject())
                {
                    _ = property.Name;
                    CheckStrings(property.Value);
                }
                break;
        }
    }
}
