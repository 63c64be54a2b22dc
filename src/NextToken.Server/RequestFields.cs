using System.Text.Json;

namespace NextToken.Server;

/// <summary>Typed, validated access to a JSON request body: a wrong kind or value is a 400 naming the field.</summary>
internal readonly struct RequestFields(JsonElement root)
{
    public JsonElement Root { get; } = root;

    public static RequestFields Parse(byte[] body)
    {
        JsonDocument document;
        try
        {
            document = JsonInput.Parse(body, "the request body");
        }
        catch (NextTokenException error)
        {
            throw new ApiError(400, error.Message, null, "invalid_json");
        }
        if (document.RootElement.ValueKind != JsonValueKind.Object)
            throw new ApiError(400, $"the request body must be a JSON object, not {Kind(document.RootElement)}", null, "invalid_json");
        return new RequestFields(document.RootElement);
    }

    public bool Has(string name) => Root.TryGetProperty(name, out JsonElement value) && value.ValueKind != JsonValueKind.Null;

    public JsonElement? Get(string name) => Root.TryGetProperty(name, out JsonElement value) && value.ValueKind != JsonValueKind.Null ? value : null;

    public string? String(string name) => Get(name) switch
    {
        null => null,
        { ValueKind: JsonValueKind.String } v => v.GetString(),
        { } v => throw WrongKind(name, v, "a string"),
    };

    public bool? Bool(string name) => Get(name) switch
    {
        null => null,
        { ValueKind: JsonValueKind.True } => true,
        { ValueKind: JsonValueKind.False } => false,
        { } v => throw WrongKind(name, v, "a boolean"),
    };

    public double? Number(string name, double min, double max, bool minExclusive = false)
    {
        if (Get(name) is not { } v) return null;
        if (v.ValueKind != JsonValueKind.Number) throw WrongKind(name, v, "a number");
        double x = v.GetDouble();
        if (!double.IsFinite(x) || x < min || x > max || (minExclusive && x == min))
            throw ApiError.BadValue(name, $"'{name}' must be {(minExclusive ? "above" : "at least")} {min} and at most {max}, not {v.GetRawText()}");
        return x;
    }

    public int? Integer(string name, int min, int max)
    {
        if (Get(name) is not { } v) return null;
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt64(out long x)) throw WrongKind(name, v, "an integer");
        if (x < min || x > max) throw ApiError.BadValue(name, $"'{name}' must be {min} to {max}, not {x}");
        return (int)x;
    }

    public ulong? Seed(string name)
    {
        if (Get(name) is not { } v) return null;
        if (v.ValueKind == JsonValueKind.Number && v.TryGetInt64(out long signed)) return unchecked((ulong)signed);
        if (v.ValueKind == JsonValueKind.Number && v.TryGetUInt64(out ulong unsigned)) return unchecked(unsigned);
        throw WrongKind(name, v, "an integer");
    }

    /// <summary>OpenAI's <c>stop</c>: a string or up to 4 strings.</summary>
    public IReadOnlyList<string> StopStrings(string name)
    {
        switch (Get(name))
        {
            case null:
                return [];
            case { ValueKind: JsonValueKind.String } s:
                return s.GetString() is { Length: > 0 } one ? [one] : [];
            case { ValueKind: JsonValueKind.Array } list:
                var stops = new List<string>();
                foreach (JsonElement item in list.EnumerateArray())
                {
                    if (item.ValueKind != JsonValueKind.String) throw WrongKind(name, item, "a string or a list of strings");
                    if (item.GetString() is { Length: > 0 } text) stops.Add(text);
                }
                if (stops.Count > 4) throw ApiError.BadValue(name, $"'{name}' takes at most 4 sequences, not {stops.Count}");
                return stops;
            case { } other:
                throw WrongKind(name, other, "a string or a list of strings");
        }
    }

    /// <summary>OpenAI's <c>logit_bias</c>: token ids (as object keys) to a bias in [−100, 100].</summary>
    public IReadOnlyDictionary<int, float> LogitBias(string name, int vocabSize)
    {
        var bias = new Dictionary<int, float>();
        if (Get(name) is not { } v) return bias;
        if (v.ValueKind != JsonValueKind.Object) throw WrongKind(name, v, "an object of token id → bias");
        foreach (JsonProperty entry in v.EnumerateObject())
        {
            if (!int.TryParse(entry.Name, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int id) || id >= vocabSize)
                throw ApiError.BadValue(name, $"'{name}' key '{entry.Name}' is not a token id below the vocabulary size {vocabSize}");
            if (entry.Value.ValueKind != JsonValueKind.Number || !double.IsFinite(entry.Value.GetDouble()) || Math.Abs(entry.Value.GetDouble()) > 100)
                throw ApiError.BadValue(name, $"'{name}' for token {id} must be a number from -100 to 100, not {entry.Value.GetRawText()}");
            bias[id] = (float)entry.Value.GetDouble();
        }
        return bias;
    }

    public static ApiError WrongKind(string name, JsonElement value, string expected) =>
        new(400, $"'{name}' must be {expected}, not {Kind(value)}", name, "invalid_type");

    private static string Kind(JsonElement value) => value.ValueKind switch
    {
        JsonValueKind.String => "a string",
        JsonValueKind.Number => "a number",
        JsonValueKind.Array => "an array",
        JsonValueKind.Object => "an object",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        _ => "null",
    };
}
