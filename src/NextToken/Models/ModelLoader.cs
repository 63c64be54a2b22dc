using NextToken.Gguf;
using NextToken.Tokenization;

namespace NextToken.Models;

/// <summary>Opens a weight file and builds the model its architecture names.</summary>
public static class ModelLoader
{
    /// <summary>GGUF architecture names, from the registry (<see cref="ModelFamilies"/>).</summary>
    public static readonly string[] SupportedArchitectures = ModelFamilies.All.Select(f => f.GgufArchitecture).ToArray();

    /// <summary>
    /// A GGUF file, or a Hugging Face checkpoint directory (config.json + safetensors). A separate
    /// vocabulary (<paramref name="vocabPath"/>: a GGUF file with tokenizer metadata, tokenizer.json,
    /// or a directory holding tokenizer files) overrides the model's own.
    /// </summary>
    public static LanguageModel Load(string path, string? vocabPath = null)
    {
        if (Directory.Exists(path)) return LoadCheckpoint(path, vocabPath);
        if (path.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase))
            return LoadCheckpoint(Path.GetDirectoryName(Path.GetFullPath(path))!, vocabPath);
        if (BuiltInModel.Names(path) && !File.Exists(path)) return Load(BuiltInModel.Open(), vocabPath);
        return Load(GgufFile.Open(path), vocabPath);
    }

    /// <summary>The model in an open GGUF file, which it then owns.</summary>
    public static LanguageModel Load(GgufFile file, string? vocabPath = null)
    {
        string path = file.FilePath;
        try
        {
            string architecture = file.GetString("general.architecture");
            Tokenizer tokenizer = vocabPath is null ? Tokenizer.Load(file) : LoadVocabulary(vocabPath, null, null);
            ModelFamily family = ModelFamilies.ForGguf(architecture)
                ?? throw new GgufFormatException(path, null, $"unknown architecture '{architecture}' in 'general.architecture'; supported: {string.Join(", ", SupportedArchitectures)}");
            return family.LoadGguf(family, file, tokenizer, file.GetStringOrNull("tokenizer.chat_template"));
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    private static LanguageModel LoadCheckpoint(string directory, string? vocabPath)
    {
        if (!SafeTensors.HuggingFaceCheckpoint.IsCheckpoint(directory))
            throw new FileNotFoundException($"{directory}: not a model: no config.json (a Hugging Face checkpoint) and not a GGUF file", Path.Combine(directory, "config.json"));
        var (checkpoint, family, config) = OpenCheckpoint(directory);
        try
        {
            int vocabSize = config.Dimension("vocab_size");
            int? bos = config.TokenId("bos_token_id");
            int[] eos = config.TokenIds("eos_token_id");
            Tokenizer tokenizer = vocabPath is not null ? LoadVocabulary(vocabPath, bos, eos)
                : HuggingFaceTokenizer.FromDirectory(directory, bos, eos.Length > 0 ? eos[0] : null) ?? new TokenIdsOnlyTokenizer(vocabSize, directory);
            tokenizer.Vocabulary.AddEndOfGeneration(eos, $"{config.Path}: 'eos_token_id'");
            string? template = ReadChatTemplate(directory);
            return family.LoadHuggingFace!(family, checkpoint, config, vocabSize, Matching(tokenizer, vocabSize), template);
        }
        catch
        {
            checkpoint.Dispose();
            throw;
        }
    }

    /// <summary>
    /// A checkpoint directory's config.json, the family its model type names, and its safetensors
    /// mapped with that family's name table.
    /// </summary>
    public static (SafeTensors.HuggingFaceCheckpoint Checkpoint, ModelFamily Family, HuggingFaceConfig Config) OpenCheckpoint(string directory)
    {
        var config = HuggingFaceConfig.Load(Path.Combine(directory, "config.json"));
        string modelType = config.ModelType;
        ModelFamily family = ModelFamilies.ForHuggingFace(modelType)
            ?? throw new NextTokenException($"{config.Path}: model type '{modelType}' is not supported; supported: {ModelFamilies.HuggingFaceNamesList} (and Llama-layout models such as Mistral, SmolLM2, TinyLlama)");
        return (SafeTensors.HuggingFaceCheckpoint.Open(directory, family.Name, family.HuggingFaceNames), family, config);
    }

    /// <summary>The tokenizer, if it has exactly the model's vocab_size entries.</summary>
    private static Tokenizer Matching(Tokenizer tokenizer, int vocabSize) =>
        tokenizer.VocabSize == vocabSize ? tokenizer
        : throw new NextTokenException($"{tokenizer.Vocabulary.Source}: the tokenizer has {tokenizer.VocabSize} tokens but the model expects {vocabSize}");

    /// <summary>Just the tokenizer of a GGUF file (model or vocabulary-only), a checkpoint directory, or a tokenizer.json.</summary>
    public static Tokenizer LoadTokenizer(string path)
    {
        if (Directory.Exists(path) && SafeTensors.HuggingFaceCheckpoint.IsCheckpoint(path))
        {
            HuggingFaceConfig config = HuggingFaceConfig.Load(Path.Combine(path, "config.json"));
            int[] eos = config.TokenIds("eos_token_id");
            return LoadVocabulary(path, config.TokenId("bos_token_id"), eos);
        }
        return LoadVocabulary(path, null, null);
    }

    /// <summary>A vocabulary file or directory; a config's EOS ids (all of them end generation) apply to a Hugging Face tokenizer.</summary>
    private static Tokenizer LoadVocabulary(string path, int? bos, int[]? eos)
    {
        int? firstEos = eos is [var first, ..] ? first : null;
        Tokenizer? tokenizer = null;
        if (Directory.Exists(path))
            tokenizer = HuggingFaceTokenizer.FromDirectory(path, bos, firstEos) ?? throw new NextTokenException($"{path}: no tokenizer.json or vocab.json + merges.txt");
        else if (path.EndsWith(".json", StringComparison.OrdinalIgnoreCase)) tokenizer = HuggingFaceTokenizer.FromTokenizerJson(path, bos, firstEos);
        if (tokenizer is not null)
        {
            tokenizer.Vocabulary.AddEndOfGeneration(eos ?? [], $"{path}: config.json 'eos_token_id'");
            return tokenizer;
        }
        using GgufFile vocabulary = BuiltInModel.Names(path) && !File.Exists(path) ? BuiltInModel.Open() : GgufFile.Open(path);
        return Tokenizer.Load(vocabulary);
    }

    /// <summary>
    /// tokenizer_config.json's chat_template, when the checkpoint has one: a string, or (as some
    /// models ship it) a list of named templates {"name", "template"}, of which Hugging Face uses
    /// "default" (the tool-use variants are for callers that ask for them).
    /// </summary>
    internal static string? ReadChatTemplate(string directory)
    {
        string path = Path.Combine(directory, "tokenizer_config.json");
        if (!File.Exists(path)) return null;
        using var document = JsonInput.ParseFile(path);
        if (document.RootElement.ValueKind != System.Text.Json.JsonValueKind.Object)
            throw new NextTokenException($"{path}: expected a JSON object");
        if (!document.RootElement.TryGetProperty("chat_template", out var t) || t.ValueKind == System.Text.Json.JsonValueKind.Null) return null;
        if (t.ValueKind == System.Text.Json.JsonValueKind.String) return t.GetString();
        if (t.ValueKind != System.Text.Json.JsonValueKind.Array)
            throw new NextTokenException($"{path}: 'chat_template' is {t.ValueKind.ToString().ToLowerInvariant()}; expected a string or a list of {{\"name\", \"template\"}}");
        string? first = null;
        int i = 0;
        foreach (var entry in t.EnumerateArray())
        {
            if (entry.ValueKind != System.Text.Json.JsonValueKind.Object
                || !entry.TryGetProperty("name", out var name) || name.ValueKind != System.Text.Json.JsonValueKind.String
                || !entry.TryGetProperty("template", out var template) || template.ValueKind != System.Text.Json.JsonValueKind.String)
                throw new NextTokenException($"{path}: 'chat_template'[{i}] must be an object with string 'name' and 'template'");
            if (name.GetString() == "default") return template.GetString();
            first ??= template.GetString();
            i++;
        }
        return first;
    }
}
