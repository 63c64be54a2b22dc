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
        Dictionary<string, int> vocab = ReadJson(vocabPath, root => root.EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetInt32()));
        string[] merges = File.ReadAllLines(mergesPath).Where(l => l.Length > 0 && !l.StartsWith("#version", StringComparison.Ordinal)).ToArray();
        return Build(vocabPath, vocab, merges, ["<|endoftext|>"], bosId, eosId, "gpt-2");
    }

    public static Tokenizer FromTokenizerJson(string path, int? bosId, int? eosId) => ReadJson(path, root =>
    {
        JsonElement model = root.GetProperty("model");
        string type = model.TryGetProperty("type", out JsonElement t) ? t.GetString() ?? "" : "";
        if (type != "BPE")
            throw new NextTokenException($"{path}: tokenizer model '{type}' is not supported; give a GGUF vocabulary with --vocab");
        if (model.TryGetProperty("byte_fallback", out JsonElement fallback) && fallback.ValueKind == JsonValueKind.True)
            throw new NextTokenException($"{path}: SentencePiece-style BPE with byte fallback is not supported from tokenizer.json yet; give a GGUF vocabulary with --vocab");
        string preTokenizer = PreTokenizerOf(root);
        if (preTokenizer is not ("gpt-2" or "smollm"))
            throw new NextTokenException($"{path}: pre-tokenizer '{preTokenizer}' is not supported yet (ByteLevel, optionally after single Digits, is); give a GGUF vocabulary with --vocab");
        Dictionary<string, int> vocab = model.GetProperty("vocab").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetInt32());
        string[] merges = model.GetProperty("merges").EnumerateArray()
            .Select(m => m.ValueKind == JsonValueKind.Array ? m[0].GetString() + " " + m[1].GetString() : m.GetString()!).ToArray();
        var special = new List<string>();
        if (root.TryGetProperty("added_tokens", out JsonElement added))
            foreach (JsonElement token in added.EnumerateArray())
            {
                string content = token.GetProperty("content").GetString()!;
                vocab.TryAdd(content, token.GetProperty("id").GetInt32());
                if (token.TryGetProperty("special", out JsonElement isSpecial) && isSpecial.GetBoolean()) special.Add(content);
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

    private static Tokenizer Build(string source, Dictionary<string, int> vocab, string[] merges, IEnumerable<string> special, int? bosId, int? eosId, string preTokenizer)
    {
        int size = vocab.Values.Max() + 1;
        var tokens = new string[size];
        var types = new TokenType[size];
        for (int i = 0; i < size; i++) (tokens[i], types[i]) = ($"<unused{i}>", TokenType.Unused);
        foreach (var (text, id) in vocab)
        {
            if (id < 0) throw new NextTokenException($"{source}: token \"{text}\" has negative id {id}");
            (tokens[id], types[id]) = (text, TokenType.Normal);
        }
        foreach (string text in special)
            if (vocab.TryGetValue(text, out int id)) types[id] = TokenType.Control;
        var vocabulary = new Vocabulary(tokens, types, bosId, eosId, addBos: false, source);
        return new ByteLevelBpeTokenizer(vocabulary, merges, preTokenizer);
    }

    private static T ReadJson<T>(string path, Func<JsonElement, T> read)
    {
        try
        {
            using var document = JsonDocument.Parse(File.ReadAllText(path));
            return read(document.RootElement);
        }
        catch (Exception error) when (error is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
        {
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
