using NextToken.Gguf;

namespace NextToken.Tokenization;

/// <summary>llama.cpp's token types (<c>tokenizer.ggml.token_type</c>).</summary>
public enum TokenType
{
    Undefined = 0, Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6,
}

/// <summary>The token strings of a model and what the GGUF metadata says about them.</summary>
public sealed class Vocabulary
{
    private readonly Dictionary<string, int> _idsByText;

    public Vocabulary(string[] tokens, TokenType[] types, int? bosId, int? eosId, bool addBos, string source, int? unknownId = null)
    {
        if (types.Length != tokens.Length)
            throw new NextTokenException($"{source}: 'tokenizer.ggml.token_type' has {types.Length} entries; expected one per token ({tokens.Length})");
        Tokens = tokens;
        Types = types;
        Source = source;
        _idsByText = new Dictionary<string, int>(tokens.Length, StringComparer.Ordinal);
        for (int i = 0; i < tokens.Length; i++)
            _idsByText.TryAdd(tokens[i], i); // the first id wins, as in llama.cpp
        BosId = CheckId(bosId, "tokenizer.ggml.bos_token_id");
        EosId = CheckId(eosId, "tokenizer.ggml.eos_token_id");
        UnknownId = CheckId(unknownId, "tokenizer.ggml.unknown_token_id");
        FindEndOfGeneration([]);
        AddBos = addBos;
    }

    public string Source { get; }
    public string[] Tokens { get; }
    public TokenType[] Types { get; }
    public int Count => Tokens.Length;
    public int? BosId { get; }
    public int? EosId { get; }

    /// <summary>The token that stands for text the vocabulary cannot spell, if the vocabulary has one.</summary>
    public int? UnknownId { get; }

    /// <summary>Whether the model expects a BOS token in front of a prompt by default.</summary>
    public bool AddBos { get; }

    public bool TryGetId(string text, out int id) => _idsByText.TryGetValue(text, out id);

    public bool TryGetId(ReadOnlySpan<char> text, out int id) => _idsByText.GetAlternateLookup<ReadOnlySpan<char>>().TryGetValue(text, out id);

    /// <summary>Texts of end-of-turn tokens chat models emit, recognised when the vocabulary marks them special.</summary>
    private static readonly string[] EndOfTurnTexts = ["<|eot_id|>", "<|im_end|>", "<|end|>", "<|endoftext|>", "<end_of_turn>", "<|eom_id|>", "</s>", "<|END_OF_TURN_TOKEN|>"];

    /// <summary>Tokens that end generation: EOS, the end-of-turn tokens named in metadata, and well-known end-of-turn texts.</summary>
    public IReadOnlySet<int> EndOfGeneration { get; private set; } = new HashSet<int>();

    /// <summary>More end-of-generation ids from elsewhere (a config.json's list of EOS ids), each checked against the vocabulary.</summary>
    internal void AddEndOfGeneration(IReadOnlyList<int> ids, string source)
    {
        for (int i = 0; i < ids.Count; i++)
            if ((uint)ids[i] >= (uint)Count)
                throw new NextTokenException($"{source} entry {i} is {ids[i]}; expected an id below the vocabulary size {Count}");
        if (ids.Count > 0) FindEndOfGeneration(EndOfGeneration.Concat(ids).ToList());
    }

    private void FindEndOfGeneration(IEnumerable<int> fromMetadata)
    {
        var ids = new HashSet<int>(fromMetadata.Where(id => (uint)id < (uint)Count));
        if (EosId is { } eos) ids.Add(eos);
        foreach (string text in EndOfTurnTexts)
            if (TryGetId(text, out int id) && Types[id] is TokenType.Control or TokenType.UserDefined) ids.Add(id);
        EndOfGeneration = ids;
    }

    /// <summary>Reads <c>tokenizer.ggml.tokens</c>, <c>token_type</c> and the BOS/EOS settings.</summary>
    public static Vocabulary FromGguf(GgufFile file)
    {
        string[] tokens = file.GetArray<string>("tokenizer.ggml.tokens");
        TokenType[] types;
        if (file.ContainsKey("tokenizer.ggml.token_type"))
        {
            int[] raw = file.GetArray<int>("tokenizer.ggml.token_type");
            types = new TokenType[raw.Length];
            for (int i = 0; i < raw.Length; i++)
            {
                if (raw[i] is < 0 or > 6)
                    throw new GgufFormatException(file.FilePath, null, $"'tokenizer.ggml.token_type' entry {i} is {raw[i]}; expected 0 to 6");
                types[i] = (TokenType)raw[i];
            }
        }
        else
        {
            types = Enumerable.Repeat(TokenType.Normal, tokens.Length).ToArray();
        }
        int? bos = (int?)file.GetIntegerOrNull("tokenizer.ggml.bos_token_id");
        int? eos = (int?)file.GetIntegerOrNull("tokenizer.ggml.eos_token_id");
        int? unknown = (int?)file.GetIntegerOrNull("tokenizer.ggml.unknown_token_id");
        bool addBos = file.GetBoolOrNull("tokenizer.ggml.add_bos_token") ?? AddsBosByDefault(file);
        var vocabulary = new Vocabulary(tokens, types, bos, eos, addBos, file.FilePath, unknown);
        var endOfTurn = new[] { "tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id" }
            .Select(file.GetIntegerOrNull).Where(v => v is not null).Select(v => (int)v!.Value);
        vocabulary.FindEndOfGeneration(endOfTurn);
        return vocabulary;
    }

    /// <summary>
    /// llama.cpp's default when a file has no <c>tokenizer.ggml.add_bos_token</c>: SentencePiece
    /// vocabularies and Llama 3's pre-tokenizer add BOS; other byte-level BPE vocabularies do not.
    /// </summary>
    private static bool AddsBosByDefault(GgufFile file)
    {
        string? model = file.GetStringOrNull("tokenizer.ggml.model");
        string? pre = file.GetStringOrNull("tokenizer.ggml.pre");
        return model == "llama" || (model == "gpt2" && pre is "llama-bpe" or "llama3" or "llama-v3" or "smaug-bpe" or "dbrx" or "falcon3");
    }

    private int? CheckId(int? id, string key)
    {
        if (id is { } value && (value < 0 || value >= Tokens.Length))
            throw new NextTokenException($"{Source}: '{key}' is {value}; expected an id below the vocabulary size {Tokens.Length}");
        return id;
    }
}
