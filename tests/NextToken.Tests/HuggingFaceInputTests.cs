using NextToken.Models;
using NextToken.Tokenization;

namespace NextToken.Tests;

/// <summary>
/// Hostile or unusual Hugging Face JSON files (config.json, vocab.json, tokenizer.json, the
/// safetensors index): a one-line error naming the file and key, never a bare .NET message or an
/// allocation sized by a number the file has not backed; valid variants (a list of EOS ids) load.
/// </summary>
public class HuggingFaceInputTests : IDisposable
{
    private static readonly string Gpt2Hf = Fixtures.Model("gpt2-tiny-hf");
    private readonly TempDir _temp = new();

    public void Dispose() => _temp.Dispose();

    /// <summary>A copy of the fixtures' GPT-2 checkpoint (weights linked) with config.json edited.</summary>
    private string Checkpoint(Func<string, string> editConfig, bool withTokenizer = true)
    {
        string dir = Directory.CreateDirectory(_temp.File("ckpt-" + Guid.NewGuid().ToString("N"))).FullName;
        File.CreateSymbolicLink(Path.Combine(dir, "model.safetensors"), Path.Combine(Gpt2Hf, "model.safetensors"));
        if (withTokenizer)
            foreach (string name in new[] { "vocab.json", "merges.txt" })
                File.CreateSymbolicLink(Path.Combine(dir, name), Path.Combine(Gpt2Hf, name));
        File.WriteAllText(Path.Combine(dir, "config.json"), editConfig(File.ReadAllText(Path.Combine(Gpt2Hf, "config.json"))));
        return dir;
    }

    private static NextTokenException Fails(Action load, params string[] expected)
    {
        var error = Assert.ThrowsAny<NextTokenException>(load);
        foreach (string part in expected) Assert.Contains(part, error.Message);
        Assert.DoesNotContain('\n', error.Message);
        return error;
    }

    [Theory]
    [InlineData("\"n_layer\": 2", "\"n_layer\": \"2\"", "'n_layer' is \"2\"; expected an integer from 1 to")]
    [InlineData("\"n_layer\": 2", "\"n_layer\": [2]", "'n_layer' is [2]; expected an integer")]
    [InlineData("\"n_layer\": 2", "\"n_layer\": -2", "'n_layer' is -2; expected an integer")]
    [InlineData("\"n_layer\": 2", "\"n_layer\": 1e30", "'n_layer' is 1e30; expected an integer")]
    [InlineData("\"layer_norm_epsilon\": 1e-05", "\"layer_norm_epsilon\": \"small\"", "'layer_norm_epsilon' is \"small\"; expected a finite number")]
    [InlineData("\"layer_norm_epsilon\": 1e-05", "\"layer_norm_epsilon\": 1e400", "'layer_norm_epsilon' is 1e400; expected a finite number")]
    [InlineData("\"model_type\": \"gpt2\"", "\"model_type\": 2", "'model_type' is 2; expected a string")]
    [InlineData("\"eos_token_id\": 50256", "\"eos_token_id\": \"50256\"", "'eos_token_id' is \"50256\"; expected a token id")]
    [InlineData("\"eos_token_id\": 50256", "\"eos_token_id\": [50256, \"x\"]", "'eos_token_id[1]' is \"x\"; expected a token id")]
    [InlineData("\"eos_token_id\": 50256", "\"eos_token_id\": [50256, 2147483647]", "'eos_token_id' entry 1 is 2147483647; expected an id below the vocabulary size 50257")]
    [InlineData("\"eos_token_id\": 50256", "\"eos_token_id\": 4294967296", "'eos_token_id' is 4294967296; expected a token id")]
    public void Config_WrongKindOrRange_NamesFileAndKey(string original, string replacement, string expected)
    {
        string dir = Checkpoint(c => c.Replace(original, replacement, StringComparison.Ordinal));
        Fails(() => ModelLoader.Load(dir).Dispose(), "config.json", expected);
    }

    [Fact]
    public void Config_ListOfEosIds_AllEndGeneration()
    {
        // Llama 3's configs list several EOS ids; the first is the EOS token and every one stops generation.
        string dir = Checkpoint(c => c.Replace("\"eos_token_id\": 50256", "\"eos_token_id\": [50256, 13, 198]", StringComparison.Ordinal)
            .Replace("\"bos_token_id\": 50256", "\"bos_token_id\": 0", StringComparison.Ordinal));
        using LanguageModel model = ModelLoader.Load(dir);
        Vocabulary vocabulary = model.Tokenizer.Vocabulary;
        Assert.Equal(50256, vocabulary.EosId);
        Assert.Equal(0, vocabulary.BosId); // id 0 is a valid token id (it was refused as a "dimension" before)
        Assert.Superset(new HashSet<int> { 50256, 13, 198 }, vocabulary.EndOfGeneration.ToHashSet());
        Assert.True(ModelLoader.LoadTokenizer(dir).Vocabulary.EndOfGeneration.Contains(198));
    }

    [Fact]
    public void Config_ListOfEosIds_WithoutTokenizerFiles_Accepted()
    {
        string dir = Checkpoint(c => c.Replace("\"eos_token_id\": 50256", "\"eos_token_id\": [50256, 198]", StringComparison.Ordinal), withTokenizer: false);
        using LanguageModel model = ModelLoader.Load(dir);
        Assert.Contains(198, model.Tokenizer.Vocabulary.EndOfGeneration);
    }

    private (string Vocab, string Merges) VocabFiles(string vocabJson, string merges = "#version: 0.2\n")
    {
        string vocab = _temp.File("vocab.json"), mergesPath = _temp.File("merges.txt");
        File.WriteAllText(vocab, vocabJson);
        File.WriteAllText(mergesPath, merges);
        return (vocab, mergesPath);
    }

    [Theory]
    [InlineData("{\"a\": 0, \"b\": 1, \"c\": 1000000000}", "token \"c\" has id 1000000000, but the file has only 3 tokens")]
    [InlineData("{\"a\": 0, \"b\": 2147483647}", "token \"b\" has id 2147483647, but the file has only 2 tokens")]
    [InlineData("{\"a\": 0, \"b\": 2147483648}", "'\"b\"' is 2147483648; expected a token id (an integer from 0 to 2^31-1)")]
    [InlineData("{\"a\": 0, \"b\": -1}", "'\"b\"' is -1; expected a token id")]
    [InlineData("{\"a\": 0, \"b\": \"5\"}", "'\"b\"' is \"5\"; expected a token id")]
    [InlineData("{\"a\": 0, \"b\": 1.5}", "'\"b\"' is 1.5; expected a token id")]
    [InlineData("[0, 1]", "'(top level)' is [0, 1]; expected an object of token → id")]
    [InlineData("{}", "the vocabulary is empty")]
    [InlineData("{\"a\": 0", "not valid JSON")]
    public void VocabJson_BadIds_NameFileAndToken(string vocabJson, string expected)
    {
        var (vocab, merges) = VocabFiles(vocabJson);
        long before = GC.GetAllocatedBytesForCurrentThread();
        Fails(() => HuggingFaceTokenizer.FromVocabAndMerges(vocab, merges, null, null), "vocab.json", expected);
        // No array sized by the hostile id: a 10^9-entry one would be gigabytes.
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 16 << 20, "allocated more than 16 MB");
    }

    [Fact]
    public void VocabJson_SmallGaps_FilledWithUnusedTokens()
    {
        var (vocab, merges) = VocabFiles("{\"a\": 0, \"b\": 5}");
        Tokenizer tokenizer = HuggingFaceTokenizer.FromVocabAndMerges(vocab, merges, null, null);
        Assert.Equal(6, tokenizer.VocabSize);
        Assert.Equal(TokenType.Unused, tokenizer.Vocabulary.Types[3]);
    }

    private string TokenizerJson(string model, string added = "[]")
    {
        string path = _temp.File("tokenizer.json");
        File.WriteAllText(path, $"{{\"model\": {model}, \"pre_tokenizer\": {{\"type\": \"ByteLevel\"}}, \"added_tokens\": {added}}}");
        return path;
    }

    [Theory]
    [InlineData("{\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}, \"merges\": [[\"a\"]]}", "[]", "'model.merges[0]' is [\"a\"]; expected a pair of strings")]
    [InlineData("{\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}, \"merges\": [[\"a\", \"b\", \"c\"]]}", "[]", "'model.merges[0]' is [\"a\", \"b\", \"c\"]; expected a pair")]
    [InlineData("{\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}, \"merges\": [[\"a\", 1]]}", "[]", "'model.merges[0]' is [\"a\", 1]")]
    [InlineData("{\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}, \"merges\": [7]}", "[]", "'model.merges[0]' is 7")]
    [InlineData("{\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": \"a b\"}", "[]", "'merges' is \"a b\"; expected a list")]
    [InlineData("{\"type\": \"BPE\", \"merges\": []}", "[]", "missing 'vocab'")]
    [InlineData("{\"type\": \"BPE\", \"vocab\": {\"a\": \"0\"}, \"merges\": []}", "[]", "'model.vocab[\"a\"]' is \"0\"; expected a token id")]
    [InlineData("{\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}", "[{\"id\": 2000000000, \"content\": \"<s>\"}]", "token \"<s>\" has id 2000000000, but the file has only 2 tokens")]
    [InlineData("{\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}", "[{\"id\": \"1\", \"content\": \"<s>\"}]", "'added_tokens[0].id' is \"1\"; expected a number")]
    [InlineData("{\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}", "[{\"id\": 1}]", "missing 'added_tokens[0].content'")]
    [InlineData("[]", "[]", "'model' is []; expected an object")]
    public void TokenizerJson_Malformed_NamesFileAndKey(string model, string added, string expected) =>
        Fails(() => HuggingFaceTokenizer.FromTokenizerJson(TokenizerJson(model, added), null, null), "tokenizer.json", expected);

    [Fact]
    public void TokenizerJson_PairMerges_Read()
    {
        Tokenizer tokenizer = HuggingFaceTokenizer.FromTokenizerJson(TokenizerJson("{\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}, \"merges\": [[\"a\", \"b\"]]}"), null, null);
        Assert.Equal([2], tokenizer.Encode("ab").Ids);
    }

    [Theory]
    [InlineData("not json at all", "model.safetensors.index.json: not valid JSON")]
    [InlineData("[1, 2]", "model.safetensors.index.json: missing 'weight_map'")]
    [InlineData("{\"weight_map\": [\"model.safetensors\"]}", "model.safetensors.index.json: 'weight_map' is [\"model.safetensors\"]; expected an object")]
    [InlineData("{\"weight_map\": {\"wte.weight\": 3}}", "model.safetensors.index.json: 'weight_map.wte.weight' is 3; expected a shard file name")]
    [InlineData("{\"weight_map\": {}}", "model.safetensors.index.json: 'weight_map' names no tensors")]
    public void SafeTensorsIndex_Malformed_NamesFile(string index, string expected)
    {
        string dir = Checkpoint(c => c);
        File.Delete(Path.Combine(dir, "model.safetensors"));
        File.WriteAllText(Path.Combine(dir, "model.safetensors.index.json"), index);
        Fails(() => ModelLoader.Load(dir).Dispose(), expected);
    }
}

/// <summary>tokenizer_config.json's chat_template as a string or as a list of named templates.</summary>
public class ChatTemplateConfigTests : IDisposable
{
    private readonly TempDir _temp = new();

    public void Dispose() => _temp.Dispose();

    private string? Read(string json)
    {
        File.WriteAllText(Path.Combine(_temp.Path, "tokenizer_config.json"), json);
        return NextToken.Models.ModelLoader.ReadChatTemplate(_temp.Path);
    }

    [Fact]
    public void NamedTemplates_TheDefaultOneIsUsed()
    {
        Assert.Equal("D", Read("""{"chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}]}"""));
        Assert.Equal("T", Read("""{"chat_template": [{"name": "tool_use", "template": "T"}]}"""));
        Assert.Equal("S", Read("""{"chat_template": "S"}"""));
        Assert.Null(Read("""{"bos_token": "<s>"}"""));
    }

    [Theory]
    [InlineData("""{"chat_template": 5}""", "'chat_template' is number")]
    [InlineData("""{"chat_template": [{"name": "default"}]}""", "'chat_template'[0] must be an object")]
    [InlineData("""[1]""", "expected a JSON object")]
    public void BadTemplates_NameTheFileAndKey(string json, string message)
    {
        var error = Assert.Throws<NextTokenException>(() => Read(json));
        Assert.Contains("tokenizer_config.json", error.Message);
        Assert.Contains(message, error.Message);
    }
}
