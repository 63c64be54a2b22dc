using System.Text.Json;
using System.Text.RegularExpressions;

namespace NextToken.Tokenization;

/// <summary>
/// Tokenizers from Hugging Face files: <c>tokenizer.json</c> (BPE, byte-level or over characters with
/// byte fallback, with its normalizer, pre-tokenizer, added tokens and BOS from a TemplateProcessing),
/// GPT-2's <c>vocab.json</c> + <c>merges.txt</c>, or a SentencePiece <c>tokenizer.model</c>. Special added
/// tokens (and <c>&lt;|endoftext|&gt;</c>) become control tokens, other added tokens user-defined ones.
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
        string model = Path.Combine(directory, "tokenizer.model");
        if (File.Exists(model)) return SentencePieceModel.Load(model);
        return null;
    }

    public static Tokenizer FromVocabAndMerges(string vocabPath, string mergesPath, int? bosId, int? eosId)
    {
        Dictionary<string, int> vocab = ReadJson(vocabPath, root => ReadVocab(vocabPath, root, ""));
        string[] lines = File.ReadAllLines(mergesPath);
        for (int line = 0; line < lines.Length; line++)
        {
            string text = lines[line];
            if (text.Length == 0 || text.StartsWith("#version", StringComparison.Ordinal)) continue;
            int space = text.IndexOf(' ', 1);
            if (text.Length < 3 || space < 0 || space == text.Length - 1 || text.IndexOf(' ', space + 1) >= 0)
                throw new NextTokenException($"{mergesPath}: line {line + 1} \"{(text.Length > 60 ? text[..60] + "…" : text)}\" is not two tokens separated by one space");
        }
        string[] merges = lines.Where(l => l.Length > 0 && !l.StartsWith("#version", StringComparison.Ordinal)).ToArray();
        return Build(vocabPath, vocab, merges, ["<|endoftext|>"], bosId, eosId, "gpt-2");
    }

    public static Tokenizer FromTokenizerJson(string path, int? bosId, int? eosId) => ReadJson(path, root =>
    {
        JsonElement model = Member(path, root, "model", JsonValueKind.Object);
        string type = model.TryGetProperty("type", out JsonElement t) && t.ValueKind == JsonValueKind.String ? t.GetString()! : "";
        if (type != "BPE")
            throw new NextTokenException($"{path}: tokenizer model '{type}' is not supported (BPE is); give a GGUF vocabulary with --vocab");
        bool byteFallback = Flag(model, "byte_fallback");
        Dictionary<string, int> vocab = ReadVocab(path, Member(path, model, "vocab", JsonValueKind.Object), "model.vocab");
        JsonElement mergeList = Member(path, model, "merges", JsonValueKind.Array);
        var merges = new string[mergeList.GetArrayLength()];
        int i = 0;
        // Enumerated, not indexed: indexing an array whose items are arrays walks it from the start each time.
        foreach (JsonElement m in mergeList.EnumerateArray())
        {
            // Either "A B" or (newer files) ["A", "B"].
            merges[i] = m.ValueKind switch
            {
                JsonValueKind.String => m.GetString()!,
                JsonValueKind.Array when m.GetArrayLength() == 2 && m[0].ValueKind == JsonValueKind.String && m[1].ValueKind == JsonValueKind.String =>
                    m[0].GetString() + " " + m[1].GetString(),
                _ => throw Wrong(path, $"model.merges[{i}]", m, "a pair of strings [\"A\", \"B\"] or \"A B\""),
            };
            i++;
        }
        var added = new List<AddedToken>();
        if (root.TryGetProperty("added_tokens", out JsonElement addedList) && addedList.ValueKind != JsonValueKind.Null)
        {
            if (addedList.ValueKind != JsonValueKind.Array) throw Wrong(path, "added_tokens", addedList, "a list");
            i = 0;
            foreach (JsonElement token in addedList.EnumerateArray())
            {
                if (token.ValueKind != JsonValueKind.Object) throw Wrong(path, $"added_tokens[{i}]", token, "an object");
                string content = Member(path, token, "content", JsonValueKind.String, $"added_tokens[{i}].").GetString()!;
                int id = ReadId(path, $"added_tokens[{i}].id", Member(path, token, "id", JsonValueKind.Number, $"added_tokens[{i}]."));
                vocab.TryAdd(content, id);
                added.Add(new AddedToken(content, id, Flag(token, "special"), Flag(token, "lstrip"), Flag(token, "rstrip")));
                i++;
            }
        }

        var normalizerSteps = new List<TextNormalizer.Step>();
        if (root.TryGetProperty("normalizer", out JsonElement normalizer) && normalizer.ValueKind != JsonValueKind.Null)
            ReadNormalizer(path, normalizer, "normalizer", normalizerSteps);
        var preSteps = new List<PreTokenizerStep>();
        bool byteLevel = false;
        if (root.TryGetProperty("pre_tokenizer", out JsonElement pre) && pre.ValueKind != JsonValueKind.Null)
            ReadPreTokenizer(path, pre, "pre_tokenizer", preSteps, normalizerSteps, ref byteLevel);
        if (!byteLevel && !byteFallback && root.TryGetProperty("decoder", out JsonElement decoder) && decoder.ValueKind == JsonValueKind.Object
            && decoder.TryGetProperty("type", out JsonElement decoderType) && decoderType.ValueKind == JsonValueKind.String && decoderType.GetString() == "ByteLevel")
            byteLevel = true; // a ByteLevel decoder without a ByteLevel pre-tokenizer still means byte-level tokens
        if (byteLevel && normalizerSteps.FirstOrDefault(step => step is not TextNormalizer.Step.Nfc) is { } unsupported)
            throw new NextTokenException($"{path}: a byte-level BPE with a '{unsupported.GetType().Name}' normalizer is not supported (NFC is); give a GGUF vocabulary with --vocab");

        // A TemplateProcessing post-processor that starts with a special token: that token is BOS, added by default.
        int? templateBos = root.TryGetProperty("post_processor", out JsonElement post) && post.ValueKind == JsonValueKind.Object ? TemplateBos(post, vocab) : null;

        string? unknown = model.TryGetProperty("unk_token", out JsonElement unk) && unk.ValueKind == JsonValueKind.String ? unk.GetString() : null;
        Vocabulary vocabulary = BuildVocabulary(path, vocab, added, bosId ?? templateBos, eosId, templateBos is not null, unknown, byteFallback);
        string name = string.Join("+", preSteps.Select(step => step.GetType().Name));
        var preTokenizer = PreTokenizer.FromSteps(name.Length == 0 ? "none" : name, preSteps);
        Tokenizer tokenizer = byteLevel
            ? new ByteLevelBpeTokenizer(vocabulary, merges, preTokenizer, Flag(model, "ignore_merges"), nfc: normalizerSteps.Count > 0, "model.merges")
            : new CharBpeTokenizer(vocabulary, merges, new TextNormalizer(normalizerSteps), preTokenizer, byteFallback, Flag(model, "fuse_unk"), "model.merges");
        foreach (AddedToken token in added) tokenizer.SetStrip(token.Id, token.LeftStrip, token.RightStrip);
        return tokenizer;
    });

    private sealed record AddedToken(string Content, int Id, bool Special, bool LeftStrip, bool RightStrip);

    private static bool Flag(JsonElement parent, string name) =>
        parent.TryGetProperty(name, out JsonElement value) && value.ValueKind == JsonValueKind.True;

    private static string TypeOf(string path, JsonElement element, string key) =>
        element.ValueKind == JsonValueKind.Object && element.TryGetProperty("type", out JsonElement t) && t.ValueKind == JsonValueKind.String
            ? t.GetString()! : throw Wrong(path, key, element, "an object with a 'type'");

    private static void ReadNormalizer(string path, JsonElement n, string key, List<TextNormalizer.Step> steps)
    {
        switch (TypeOf(path, n, key))
        {
            case "Sequence":
                int i = 0;
                foreach (JsonElement inner in Member(path, n, "normalizers", JsonValueKind.Array, key + ".").EnumerateArray())
                    ReadNormalizer(path, inner, $"{key}.normalizers[{i++}]", steps);
                break;
            case "NFC":
                steps.Add(new TextNormalizer.Step.Nfc());
                break;
            case "Prepend":
                steps.Add(new TextNormalizer.Step.Prepend(Member(path, n, "prepend", JsonValueKind.String, key + ".").GetString()!));
                break;
            case "Replace":
                JsonElement pattern = Member(path, n, "pattern", JsonValueKind.Object, key + ".");
                if (!pattern.TryGetProperty("String", out JsonElement from) || from.ValueKind != JsonValueKind.String)
                    throw new NextTokenException($"{path}: '{key}' replaces a regular expression; only literal strings are supported; give a GGUF vocabulary with --vocab");
                steps.Add(new TextNormalizer.Step.Replace(from.GetString()!, Member(path, n, "content", JsonValueKind.String, key + ".").GetString()!));
                break;
            case var other:
                throw new NextTokenException($"{path}: normalizer '{other}' ('{key}') is not supported (NFC, Prepend, Replace and Sequence are); give a GGUF vocabulary with --vocab");
        }
    }

    private static void ReadPreTokenizer(string path, JsonElement p, string key, List<PreTokenizerStep> steps, List<TextNormalizer.Step> normalizer, ref bool byteLevel)
    {
        switch (TypeOf(path, p, key))
        {
            case "Sequence":
                int i = 0;
                foreach (JsonElement inner in Member(path, p, "pretokenizers", JsonValueKind.Array, key + ".").EnumerateArray())
                    ReadPreTokenizer(path, inner, $"{key}.pretokenizers[{i++}]", steps, normalizer, ref byteLevel);
                break;
            case "ByteLevel":
                byteLevel = true;
                if (Flag(p, "add_prefix_space"))
                    throw new NextTokenException($"{path}: '{key}' has add_prefix_space, which is not supported; give a GGUF vocabulary with --vocab");
                if (!p.TryGetProperty("use_regex", out JsonElement useRegex) || useRegex.ValueKind != JsonValueKind.False)
                    steps.Add(new PreTokenizerStep.Gpt2());
                break;
            case "Digits":
                steps.Add(new PreTokenizerStep.Digits(Flag(p, "individual_digits")));
                break;
            case "Split":
            {
                JsonElement pattern = Member(path, p, "pattern", JsonValueKind.Object, key + ".");
                string regex = pattern.TryGetProperty("Regex", out JsonElement r) && r.ValueKind == JsonValueKind.String ? r.GetString()!
                    : pattern.TryGetProperty("String", out JsonElement literal) && literal.ValueKind == JsonValueKind.String ? Regex.Escape(literal.GetString()!)
                    : throw Wrong(path, key + ".pattern", pattern, "{\"Regex\": …} or {\"String\": …}");
                string behaviorName = p.TryGetProperty("behavior", out JsonElement b) && b.ValueKind == JsonValueKind.String ? b.GetString()! : "Isolated";
                if (!Enum.TryParse(behaviorName, out SplitBehavior behavior))
                    throw Wrong(path, key + ".behavior", b, "Isolated, Removed, MergedWithPrevious, MergedWithNext or Contiguous");
                Regex compiled;
                try
                {
                    compiled = new Regex(RegexDialect.ToDotNet(regex), RegexOptions.CultureInvariant | RegexOptions.Compiled);
                }
                catch (ArgumentException error)
                {
                    throw new NextTokenException($"{path}: '{key}.pattern' is a regular expression .NET cannot run ({error.Message})");
                }
                steps.Add(new PreTokenizerStep.RegexSplit(compiled, behavior, Flag(p, "invert")));
                break;
            }
            case "Metaspace":
            {
                // Spaces become the replacement character, which (by prepend_scheme) also goes in front of the text;
                // split keeps each one with the word after it.
                string replacement = p.TryGetProperty("replacement", out JsonElement rep) && rep.ValueKind == JsonValueKind.String ? rep.GetString()! : "\u2581";
                string scheme = p.TryGetProperty("prepend_scheme", out JsonElement ps) && ps.ValueKind == JsonValueKind.String ? ps.GetString()!
                    : p.TryGetProperty("add_prefix_space", out JsonElement aps) && aps.ValueKind == JsonValueKind.False ? "never" : "always";
                if (scheme is not ("always" or "first" or "never"))
                    throw Wrong(path, key + ".prepend_scheme", ps, "\"always\", \"first\" or \"never\"");
                normalizer.Add(new TextNormalizer.Step.Replace(" ", replacement));
                if (scheme != "never") normalizer.Add(new TextNormalizer.Step.Prepend(replacement, UnlessPresent: true, FirstOnly: scheme == "first"));
                if (!p.TryGetProperty("split", out JsonElement split) || split.ValueKind != JsonValueKind.False)
                    steps.Add(new PreTokenizerStep.RegexSplit(new Regex(Regex.Escape(replacement), RegexOptions.CultureInvariant), SplitBehavior.MergedWithNext, false));
                break;
            }
            case var other:
                throw new NextTokenException($"{path}: pre-tokenizer '{other}' ('{key}') is not supported yet (ByteLevel, Split, Digits, Metaspace and Sequence are); give a GGUF vocabulary with --vocab");
        }
    }

    /// <summary>The id of the special token a TemplateProcessing puts first for a single sequence, if any.</summary>
    private static int? TemplateBos(JsonElement post, Dictionary<string, int> vocab)
    {
        string type = post.TryGetProperty("type", out JsonElement t) && t.ValueKind == JsonValueKind.String ? t.GetString()! : "";
        if (type == "Sequence" && post.TryGetProperty("processors", out JsonElement list) && list.ValueKind == JsonValueKind.Array)
            return list.EnumerateArray().Where(p => p.ValueKind == JsonValueKind.Object).Select(p => TemplateBos(p, vocab)).FirstOrDefault(id => id is not null);
        if (type != "TemplateProcessing" || !post.TryGetProperty("single", out JsonElement single) || single.ValueKind != JsonValueKind.Array
            || single.GetArrayLength() == 0 || single[0].ValueKind != JsonValueKind.Object || !single[0].TryGetProperty("SpecialToken", out JsonElement special)
            || special.ValueKind != JsonValueKind.Object || !special.TryGetProperty("id", out JsonElement name) || name.ValueKind != JsonValueKind.String)
            return null;
        string text = name.GetString()!;
        if (post.TryGetProperty("special_tokens", out JsonElement map) && map.ValueKind == JsonValueKind.Object && map.TryGetProperty(text, out JsonElement entry)
            && entry.ValueKind == JsonValueKind.Object && entry.TryGetProperty("ids", out JsonElement ids) && ids.ValueKind == JsonValueKind.Array
            && ids.GetArrayLength() == 1 && ids[0].ValueKind == JsonValueKind.Number && ids[0].TryGetInt32(out int id))
            return id;
        return vocab.TryGetValue(text, out int found) ? found : null;
    }

    /// <summary>Ids may leave gaps (filled with unused placeholders), but no more than this beyond the number of entries.</summary>
    private const int MaxIdGap = 65_536;

    private static Tokenizer Build(string source, Dictionary<string, int> vocab, string[] merges, IEnumerable<string> special, int? bosId, int? eosId, string preTokenizer)
    {
        var added = special.Where(vocab.ContainsKey).Select(text => new AddedToken(text, vocab[text], true, false, false)).ToList();
        Vocabulary vocabulary = BuildVocabulary(source, vocab, added, bosId, eosId, addBos: false, unknown: null, byteFallback: false);
        return new ByteLevelBpeTokenizer(vocabulary, merges, preTokenizer);
    }

    /// <summary>
    /// Token types as llama.cpp's converter writes them: special added tokens are control tokens, other added
    /// tokens user-defined (matched in the text before pre-tokenization), &lt;0xNN&gt; pieces bytes, missing ids unused.
    /// </summary>
    private static Vocabulary BuildVocabulary(string source, Dictionary<string, int> vocab, List<AddedToken> added,
        int? bosId, int? eosId, bool addBos, string? unknown, bool byteFallback)
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
            (tokens[id], types[id]) = (text, byteFallback && CharBpeTokenizer.TryParseByteToken(text, out _) ? TokenType.Byte : TokenType.Normal);
        foreach (AddedToken token in added)
            if (tokens[token.Id] == token.Content) types[token.Id] = token.Special ? TokenType.Control : TokenType.UserDefined;
        int? unknownId = unknown is not null && vocab.TryGetValue(unknown, out int u) ? u : null;
        if (unknownId is { } unk && types[unk] != TokenType.Control) types[unk] = TokenType.Unknown;
        return new Vocabulary(tokens, types, bosId, eosId, addBos, source, unknownId);
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
            using var document = JsonInput.ParseFile(path);
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
