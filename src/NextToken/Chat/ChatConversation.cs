using System.Globalization;
using System.Text.Json;

namespace NextToken.Chat;

/// <summary>
/// A conversation as Hugging Face's <c>apply_chat_template</c> takes it: messages as JSON objects
/// (<c>role</c>, <c>content</c>, and whatever else a template reads: <c>tool_calls</c>,
/// <c>tool_call_id</c>, <c>name</c>, …) and the tools offered to the model, or null when none are.
/// Values are plain: strings, <see cref="long"/>, <see cref="double"/>, bools, null, lists and
/// string-keyed dictionaries that keep the JSON's key order (tojson prints keys in that order).
/// </summary>
public sealed record ChatConversation(IReadOnlyList<IReadOnlyDictionary<string, object?>> Messages, IReadOnlyList<object?>? Tools = null)
{
    /// <summary>The two-string messages other code builds, as a conversation without tools.</summary>
    public static ChatConversation FromMessages(IReadOnlyList<ChatMessage> messages) =>
        new(messages.Select(m => (IReadOnlyDictionary<string, object?>)new Dictionary<string, object?> { ["role"] = m.Role, ["content"] = m.Content }).ToList());

    /// <summary>Reads a file holding a list of messages or <c>{"messages": […], "tools": […]}</c>.</summary>
    public static ChatConversation Load(string path)
    {
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception error) when (error is IOException or UnauthorizedAccessException)
        {
            throw new NextTokenException($"{path}: cannot read the messages file ({error.Message})");
        }
        return Parse(text, path);
    }

    /// <summary>Parses JSON text (a list of messages or an object with <c>messages</c> and optional <c>tools</c>); errors name <paramref name="source"/> and the field.</summary>
    public static ChatConversation Parse(string json, string source)
    {
        try
        {
            using var document = JsonInput.Parse(json, source, JinjaLimits.MaxDepth);
            return FromJson(document.RootElement, source);
        }
        catch (JsonException error)
        {
            throw new NextTokenException($"{source}: not valid JSON ({error.Message})");
        }
    }

    public static ChatConversation FromJson(JsonElement root, string source)
    {
        JsonElement messages = root;
        IReadOnlyList<object?>? tools = null;
        if (root.ValueKind == JsonValueKind.Object)
        {
            if (!root.TryGetProperty("messages", out messages))
                throw new NextTokenException($"{source}: expected a list of messages or an object with \"messages\"; the object has no \"messages\"");
            if (root.TryGetProperty("tools", out JsonElement toolList) && toolList.ValueKind != JsonValueKind.Null)
            {
                if (toolList.ValueKind != JsonValueKind.Array)
                    throw new NextTokenException($"{source}: \"tools\" must be a list, not {Kind(toolList)}");
                tools = (List<object?>)ToValue(toolList, source, "tools")!;
            }
        }
        string where = root.ValueKind == JsonValueKind.Object ? "messages" : "";
        if (messages.ValueKind != JsonValueKind.Array)
            throw new NextTokenException($"{source}: {(where.Length > 0 ? "\"messages\"" : "the document")} must be a list of messages, not {Kind(messages)}");
        var list = new List<IReadOnlyDictionary<string, object?>>();
        int index = 0;
        foreach (JsonElement message in messages.EnumerateArray())
        {
            string path = $"{where}[{index++}]";
            if (message.ValueKind != JsonValueKind.Object)
                throw new NextTokenException($"{source}: {path} must be an object with \"role\" and \"content\", not {Kind(message)}");
            if (!message.TryGetProperty("role", out JsonElement role) || role.ValueKind != JsonValueKind.String)
                throw new NextTokenException($"{source}: {path}.role must be a string{(message.TryGetProperty("role", out JsonElement r) ? $", not {Kind(r)}" : " (missing)")}");
            list.Add((Dictionary<string, object?>)ToValue(message, source, path)!);
        }
        return new ChatConversation(list, tools);
    }

    /// <summary>A JSON value as the plain values templates see; integers beyond 64 bits are refused (the interpreter's integers are 64-bit).</summary>
    public static object? ToValue(JsonElement element, string source, string path) => element.ValueKind switch
    {
        JsonValueKind.String => element.GetString(),
        JsonValueKind.True => true,
        JsonValueKind.False => false,
        JsonValueKind.Null => null,
        // As Python's json: a number with a fraction or exponent is a float, else an integer.
        JsonValueKind.Number when element.GetRawText().AsSpan().IndexOfAny(".eE") >= 0 => element.GetDouble(),
        JsonValueKind.Number => long.TryParse(element.GetRawText(), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long integer)
            ? integer
            : throw new NextTokenException($"{source}: {path}: integer {element.GetRawText()} does not fit in 64 bits"),
        JsonValueKind.Array => element.EnumerateArray().Select((item, i) => ToValue(item, source, $"{path}[{i}]")).ToList(),
        JsonValueKind.Object => ToDictionary(element, source, path),
        _ => throw new NextTokenException($"{source}: {path}: unexpected JSON {element.ValueKind}"),
    };

    private static Dictionary<string, object?> ToDictionary(JsonElement element, string source, string path)
    {
        var result = new Dictionary<string, object?>(StringComparer.Ordinal);
        foreach (JsonProperty property in element.EnumerateObject())
            result[property.Name] = ToValue(property.Value, source, path.Length == 0 ? property.Name : $"{path}.{property.Name}"); // a repeated key keeps its first place and last value, as Python's json
        return result;
    }

    private static string Kind(JsonElement element) => element.ValueKind switch
    {
        JsonValueKind.Array => "a list",
        JsonValueKind.Object => "an object",
        JsonValueKind.String => "a string",
        JsonValueKind.Number => "a number",
        JsonValueKind.Null => "null",
        _ => "a boolean",
    };
}
