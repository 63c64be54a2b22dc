using System.Text.Json;

namespace NextToken.Tokenization;

/// <summary>
/// Tokenizers from Hugging Face files: <c>tokenizer.json</c> (a byte-level BPE model with GPT-2's
/// pre-tokenization) or GPT-2's <c>vocab.json</c> + <c>merges.txt</c>. Special tokens (added tokens
/// marked special, and <c>&lt;|endoftext|&gt;</c>) become control tokens.
/// </summary>
public static class HuggingFaceTokenizer
{
    /// <summary>The tokenizer in a checkpoint directory, or null when it has no tokenizer files.</summary>
    public static Tokenizer? FromDirectory(string directory, int? bosId, int? eosId)
    {
        string json = Path.Combine(directory, "tokenizer.json");
        if (File.Exists(json)) return FromTokenizerJson(json, bosId, eosId);
        string vocab = Path.Combine(directory, "vocab.json"), merges = Path.Combine(directory, "merges.txt");
        if (File.Exists(vocab) && File.Exists(merges)) return FromVocabAndMerges(vocab, merges, bosId, eosId);
        return null;
    }

    public static Tokenizer FromVocabAndMerges(string vocabPath, string mergesPath, int? bosId, int? eosId)
    {
        Dictionary<string, int> vocab = ReadJson(vocabPath, root => ReadVocab(vocabPath, root, ""));
        string[] merges = File.ReadAllLines(mergesPath).Where(l => l.Length > 0 && !l.StartsWith("#version", StringComparison.Ordinal)).ToArray();
        return Build(vocabPath, vocab, merges, ["<|endoftext|>"], bosId, eosId, "gpt-2");
    }

    public static Tokenizer FromTokenizerJson(string path, int? bosId, int? eosId) => ReadJson(path, root =>
    {
        JsonElement model = Member(path, root, "model", JsonValueKind.Object);
        string type = model.TryGetProperty("type", out JsonElement t) && t.ValueKind == JsonValueKind.String ? t.GetString()! : "";
        if (type != "BPE")
            throw new NextTokenException($"{path}: tokenizer model '{type}' is not supported; give a GGUF vocabulary with --vocab");
        if (model.TryGetProperty("byte_fallback", out JsonElement fallback) && fallback.ValueKind == JsonValueKind.True)
            throw new NextTokenException($"{path}: SentencePiece-style BPE with byte fallback is not supported from tokenizer.json yet; give a GGUF vocabulary with --vocab");
        string preTokenizer = PreTokenizerOf(root);
        if (preTokenizer is not ("gpt-2" or "smollm"))
            throw new NextTokenException($"{path}: pre-tokenizer '{preTokenizer}' is not supported yet (ByteLevel, optionally after single Digits, is); give a GGUF vocabulary with --vocab");
        Dictionary<string, int> vocab = ReadVocab(path, Member(path, model, "vocab", JsonValueKind.Object), "model.vocab");
        JsonElement mergeList = Member(path, model, "merges", JsonValueKind.Array);
        var merges = new string[mergeList.GetArrayLength()];
        for (int i = 0; i < merges.Length; i++)
        {
            // Either "A B" or (newer files) ["A", "B"].
            JsonElement m = mergeList[i];
            merges[i] = m.ValueKind switch
            {
                JsonValueKind.String => m.GetString()!,
                JsonValueKind.Array when m.GetArrayLength() == 2 && m[0].ValueKind == JsonValueKind.String && m[1].ValueKind == JsonValueKind.String =>
                    m[0].GetString() + " " + m[1].GetString(),
                _ => throw Wrong(path, $"model.merges[{i}]", m, "a pair of strings [\"A\", \"B\"] or \"A B\""),
            };
        }
        var special = new List<string>();
        if (root.TryGetProperty("added_tokens", out JsonElement added) && added.ValueKind != JsonValueKind.Null)
        {
            if (added.ValueKind != JsonValueKind.Array) throw Wrong(path, "added_tokens", added, "a list");
            int i = 0;
            foreach (JsonElement token in added.EnumerateArray())
            {
                if (token.ValueKind != JsonValueKind.Object) throw Wrong(path, $"added_tokens[{i}]", token, "an object");
                string content = Member(path, token, "content", JsonValueKind.String, $"added_tokens[{i}].").GetString()!;
                vocab.TryAdd(content, ReadId(path, $"added_tokens[{i}].id", Member(path, token, "id", JsonValueKind.Number, $"added_tokens[{i}].")));
                if (token.TryGetProperty("special", out JsonElement isSpecial) && isSpecial.ValueKind == JsonValueKind.True) special.Add(content);
                i++;
            }
        }
        return Build(path, vocab, merges, special, bosId, eosId, preTokenizer);
    });

    /// <summary>
    /// The llama.cpp pre-tokenizer equivalent to tokenizer.json's: GPT-2's ByteLevel regex is
    /// "gpt-2"; single digits split first, then ByteLevel (SmolLM, StarCoder) is "smollm".
    /// </summary>
    private static string PreTokenizerOf(JsonElement root)
    {
        if (!root.TryGetProperty("pre_tokenizer", out JsonElement pre) || pre.ValueKind == JsonValueKind.Null) return "none";
        static bool IsByteLevel(JsonElement p) => p.GetProperty("type").GetString() == "ByteLevel"
            && (!p.TryGetProperty("use_regex", out JsonElement regex) || regex.GetBoolean());
        string type = pre.GetProperty("type").GetString() ?? "";
        if (IsByteLevel(pre)) return "gpt-2";
        if (type == "Sequence" && pre.TryGetProperty("pretokenizers", out JsonElement steps) && steps.GetArrayLength() == 2
            && steps[0].GetProperty("type").GetString() == "Digits" && steps[0].TryGetProperty("individual_digits", out JsonElement single) && single.GetBoolean()
            && IsByteLevel(steps[1]))
            return "smollm";
        return type;
    }

    /// <summary>Ids may leave gaps (filled with unused placeholders), but no more than this beyond the number of entries.</summary>
    private const int MaxIdGap = 65_536;

    private static Tokenizer Build(string source, Dictionary<string, int> vocab, string[] merges, IEnumerable<string> special, int? bosId, int? eosId, string preTokenizer)
    {
        if (vocab.Count == 0) throw new NextTokenException($"{source}: the vocabulary is empty");
        // The array is sized by the largest id, so that id is first checked against the file's real number of entries.
        var (largestText, largest) = vocab.MaxBy(kv => kv.Value);
        if (largest >= (long)vocab.Count + MaxIdGap)
            throw new NextTokenException($"{source}: token \"{Shorten(largestText)}\" has id {largest}, but the file has only {vocab.Count} tokens (ids may leave gaps of at most {MaxIdGap})");
        int size = largest + 1;
        var tokens = new string[size];
        var types = new TokenType[size];
        for (int i = 0; i < size; i++) (tokens[i], types[i]) = ($"<unused{i}>", TokenType.Unused);
        foreach (var (text, id) in vocab)
            (tokens[id], types[id]) = (text, TokenType.Normal);
        foreach (string text in special)
            if (vocab.TryGetValue(text, out int id)) types[id] = TokenType.Control;
        var vocabulary = new Vocabulary(tokens, types, bosId, eosId, addBos: false, source);
        return new ByteLevelBpeTokenizer(vocabulary, merges, preTokenizer);
    }

    /// <summary>A JSON object of token → id (vocab.json, or tokenizer.json's model.vocab), every id checked.</summary>
    private static Dictionary<string, int> ReadVocab(string path, JsonElement map, string key)
    {
        if (map.ValueKind != JsonValueKind.Object) throw Wrong(path, key.Length == 0 ? "(top level)" : key, map, "an object of token → id");
        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (JsonProperty entry in map.EnumerateObject())
            vocab[entry.Name] = ReadId(path, key.Length == 0 ? $"\"{Shorten(entry.Name)}\"" : $"{key}[\"{Shorten(entry.Name)}\"]", entry.Value);
        return vocab;
    }

    private static int ReadId(string path, string key, JsonElement value) =>
        value.ValueKind == JsonValueKind.Number && value.TryGetInt32(out int id) && id >= 0 ? id
        : throw Wrong(path, key, value, "a token id (an integer from 0 to 2^31-1)");

    /// <summary>A member of the expected kind, or a one-line error naming the file and key.</summary>
    private static JsonElement Member(string path, JsonElement parent, string name, JsonValueKind kind, string prefix = "")
    {
        if (!parent.TryGetProperty(name, out JsonElement value)) throw new NextTokenException($"{path}: missing '{prefix}{name}'");
        if (value.ValueKind != kind) throw Wrong(path, prefix + name, value, kind switch
        {
            JsonValueKind.Object => "an object",
            JsonValueKind.Array => "a list",
            JsonValueKind.String => "a string",
            _ => "a number",
        });
        return value;
    }

    private static NextTokenException Wrong(string path, string key, JsonElement value, string expected) =>
        new($"{path}: '{key}' is {Models.HuggingFaceConfig.Quote(value)}; expected {expected}");

    private static string Shorten(string text) => text.Length <= 40 ? text : text[..40] + "…";

    private static T ReadJson<T>(string path, Func<JsonElement, T> read)
    {
        try
        {
            using var document = JsonDocument.Parse(File.ReadAllText(path));
            return read(document.RootElement);
        }
        catch (JsonException error)
        {
            throw new NextTokenException($"{path}: not valid JSON ({error.Message})");
        }
        catch (Exception error) when (error is KeyNotFoundException or InvalidOperationException or FormatException or IndexOutOfRangeException)
        {
            // A shape this reader does not check field by field (pre_tokenizer details): still one line naming the file.
            throw new NextTokenException($"{path}: not a tokenizer file this version reads ({error.Message})");
        }
    }
}

/// <summary>
/// Stands in when a checkpoint has no tokenizer: ids decode to placeholders like <c>&lt;t42&gt;</c>
/// and text cannot be encoded (give token ids, or a vocabulary with --vocab).
/// </summary>
public sealed class TokenIdsOnlyTokenizer : Tokenizer
{
    private readonly byte[][] _bytes;

    public TokenIdsOnlyTokenizer(int vocabSize, string source)
        : base(new Vocabulary(Enumerable.Range(0, vocabSize).Select(i => $"<t{i}>").ToArray(), Enumerable.Repeat(TokenType.Normal, vocabSize).ToArray(), null, null, false, source))
        => _bytes = Vocabulary.Tokens.Select(System.Text.Encoding.UTF8.GetBytes).ToArray();

    public override EncodedText Encode(string text, bool addBos = false, bool parseSpecial = false) =>
        throw new NextTokenException($"{Vocabulary.Source} has no tokenizer files: give token ids (--tokens) or a vocabulary (--vocab FILE, a GGUF vocabulary or tokenizer.json)");

    public override ReadOnlySpan<byte> TokenBytes(int id) => _bytes[id];
}
