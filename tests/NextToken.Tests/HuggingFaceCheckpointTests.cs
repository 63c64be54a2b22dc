using NextToken.Models;
using NextToken.SafeTensors;
using Xunit.Abstractions;

namespace NextToken.Tests;

/// <summary>Hugging Face checkpoints reproduce the expectations of the GGUF files holding the same weights.</summary>
public class HuggingFaceCheckpointTests(ITestOutputHelper output)
{
    public static TheoryData<string, string, string?, string> Cases()
    {
        var data = new TheoryData<string, string, string?, string>();
        foreach (var c in ExpectedOutputs.Load("gpt2-tiny.f32")) data.Add("gpt2-tiny-hf", "gpt2-tiny.f32", null, c.Name);
        foreach (var c in ExpectedOutputs.Load("llama-tiny.f32")) data.Add("llama-tiny-hf", "llama-tiny.f32", "ggml-vocab-llama-spm.gguf", c.Name);
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Checkpoint_ReproducesGgufExpectations(string directory, string stem, string? vocab, string caseName)
    {
        ExpectedCase expected = ExpectedOutputs.Load(stem).Single(c => c.Name == caseName);
        using LanguageModel model = ModelLoader.Load(Fixtures.Model(directory), vocab is null ? null : Fixtures.Vocab(vocab));
        int v = model.VocabSize;
        var (logits, cache) = Inspection.ModelInspection.RunWithCache(model, expected.Tokens);
        double maxDiff = 0;
        for (int p = 0; p < expected.Positions.Length; p++)
            foreach (var (id, logit) in expected.Positions[p].Top)
            {
                float actual = logits[p * v + id];
                maxDiff = Math.Max(maxDiff, Math.Abs(actual - logit));
                Assert.True(Tolerance.Within(actual, logit), $"position {p} token {id}: {actual} vs {logit}");
            }
        float[] last = expected.ReadLastLogits();
        for (int i = 0; i < v; i++) Assert.True(Tolerance.Within(logits[(expected.Tokens.Length - 1) * v + i], last[i]));
        int n = expected.Tokens.Length;
        for (int l = 0; l < model.LayerCount; l++)
        {
            Assert.True(Tolerance.Within(System.Numerics.Tensors.TensorPrimitives.Norm(cache[$"blocks.{l}.hook_resid_pre"].Row(n - 1)), expected.ResidPreNormLast[l]));
            var pattern = cache[$"blocks.{l}.attn.hook_pattern"];
            for (int h = 0; h < expected.AttnLastQuery[l].Length; h++)
                for (int k = 0; k < n; k++)
                    Assert.True(Tolerance.Within(pattern.Data[(h * n + n - 1) * n + k], expected.AttnLastQuery[l][h][k]));
        }
        // Greedy continuation through the KV cache.
        var state = model.CreateState();
        var step = new float[v];
        model.Forward(state, expected.Tokens, step);
        var greedy = new List<int>();
        for (int i = 0; i < 12; i++)
        {
            int next = System.Numerics.Tensors.TensorPrimitives.IndexOfMax(step);
            greedy.Add(next);
            model.Forward(state, [next], step);
        }
        Assert.Equal(expected.GreedyNext12, greedy);
        output.WriteLine($"{directory}/{caseName}: max |Δ| over top-10 logits {maxDiff:E3}");
    }

    [Fact]
    public void Gpt2Checkpoint_TokenizesFromVocabAndMerges_LikeTheGgufVocabulary()
    {
        using LanguageModel hf = ModelLoader.Load(Fixtures.Model("gpt2-tiny-hf"));
        using var gguf = Gguf.GgufFile.Open(Fixtures.Vocab("ggml-vocab-gpt-2.gguf"));
        var reference = Tokenization.Tokenizer.Load(gguf);
        foreach (var (text, ids) in TokenizerVectorTests.ReadCases(Fixtures.Vocab("ggml-vocab-gpt-2.gguf")))
            Assert.Equal(ids, hf.Tokenizer.Encode(text).Ids);
        Assert.Equal(reference.Encode("a<|endoftext|>b", parseSpecial: true).Ids, hf.Tokenizer.Encode("a<|endoftext|>b", parseSpecial: true).Ids);
    }

    [Fact]
    public void LlamaCheckpoint_WithoutTokenizer_RunsFromIdsAndSaysWhatIsMissing()
    {
        using LanguageModel model = ModelLoader.Load(Fixtures.Model("llama-tiny-hf"));
        var logits = new float[model.VocabSize];
        model.Forward(model.CreateState(), [1, 450, 6635], logits);
        Assert.All(logits, x => Assert.True(float.IsFinite(x)));
        var error = Assert.Throws<NextTokenException>(() => model.Tokenizer.Encode("hello"));
        Assert.Contains("--vocab", error.Message);
    }
}

/// <summary>Each safetensors header rule, broken on purpose.</summary>
public class SafeTensorsValidationTests : IDisposable
{
    private readonly TempDir _temp = new();

    public void Dispose() => _temp.Dispose();

    private string Write(string header, int dataBytes = 16, ulong? declaredLength = null)
    {
        byte[] json = System.Text.Encoding.UTF8.GetBytes(header);
        string path = _temp.File($"{Guid.NewGuid():N}.safetensors");
        using var stream = File.Create(path);
        stream.Write(BitConverter.GetBytes(declaredLength ?? (ulong)json.Length));
        stream.Write(json);
        stream.Write(new byte[dataBytes]);
        return path;
    }

    [Theory]
    [InlineData("{\"a\": {\"dtype\": \"F32\", \"shape\": [2, 2], \"data_offsets\": [0, 16]}}", null)]
    [InlineData("not json", "header: not valid JSON")]
    [InlineData("{\"a\\ud800\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 16]}}", "header: a string is not valid Unicode")] // found by fuzzing: escaped as InvalidOperationException
    [InlineData("[1, 2]", "header is not a JSON object")]
    [InlineData("{\"a\": {\"dtype\": \"F99\", \"shape\": [4], \"data_offsets\": [0, 16]}}", "unknown dtype 'F99'")]
    [InlineData("{\"a\": {\"dtype\": \"F32\", \"shape\": [3], \"data_offsets\": [0, 16]}}", "needs 12 bytes but data_offsets span 16")]
    [InlineData("{\"a\": {\"dtype\": \"F32\", \"shape\": [8], \"data_offsets\": [0, 32]}}", "lies outside the 16-byte data section")]
    [InlineData("{\"a\": {\"dtype\": \"F32\", \"shape\": [-1], \"data_offsets\": [0, 16]}}", "is not a non-negative integer")]
    [InlineData("{\"a\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [16, 0]}}", "are not an ordered range")]
    [InlineData("{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}, \"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 12]}}", "overlap")]
    [InlineData("{\"a\": {\"dtype\": \"F32\", \"shape\": [4611686018427387904, 4], \"data_offsets\": [0, 16]}}", "overflows")]
    [InlineData("{\"a\": {\"shape\": [4], \"data_offsets\": [0, 16]}}", "missing 'dtype'")]
    [InlineData("{\"a\": {\"dtype\": \"F32\", \"shape\": [4]}}", "'data_offsets' must be [begin, end]")]
    public void Open_Header_IsValidatedStrictly(string header, string? error)
    {
        string path = Write(header);
        if (error is null)
        {
            using var file = SafeTensorsFile.Open(path);
            Assert.Equal([2L, 2L], file.GetTensor("a").Dims);
            Assert.Equal(16, file.GetTensor("a").ByteLength);
            return;
        }
        var thrown = Assert.Throws<SafeTensorsFormatException>(() => SafeTensorsFile.Open(path).Dispose());
        Assert.Contains(path, thrown.Message);
        Assert.Contains(error, thrown.Message);
    }

    [Fact]
    public void Open_HeaderLengthPastEnd_IsRejected()
    {
        var thrown = Assert.Throws<SafeTensorsFormatException>(() => SafeTensorsFile.Open(Write("{}", declaredLength: 1UL << 40)).Dispose());
        Assert.Contains("runs past the end of the file", thrown.Message);
    }

    [Fact]
    public void Open_TooShort_IsRejected()
    {
        string path = _temp.File("short.safetensors");
        File.WriteAllBytes(path, [1, 2, 3]);
        Assert.Contains("too short", Assert.Throws<SafeTensorsFormatException>(() => SafeTensorsFile.Open(path).Dispose()).Message);
    }
}

public class TokenizerJsonTests : IDisposable
{
    private readonly TempDir _temp = new();

    public void Dispose() => _temp.Dispose();

    /// <summary>A tokenizer.json written from the GPT-2 vocabulary, with the given pre-tokenizer.</summary>
    private string Write(string preTokenizer)
    {
        using var gguf = Gguf.GgufFile.Open(Fixtures.Vocab("ggml-vocab-gpt-2.gguf"));
        string[] tokens = gguf.GetArray<string>("tokenizer.ggml.tokens");
        string[] merges = gguf.GetArray<string>("tokenizer.ggml.merges");
        var json = new System.Text.Json.Nodes.JsonObject
        {
            ["model"] = new System.Text.Json.Nodes.JsonObject
            {
                ["type"] = "BPE",
                ["vocab"] = new System.Text.Json.Nodes.JsonObject(tokens.Select((t, i) => KeyValuePair.Create(t, (System.Text.Json.Nodes.JsonNode?)i))),
                ["merges"] = new System.Text.Json.Nodes.JsonArray(merges.Select(m => (System.Text.Json.Nodes.JsonNode?)m).ToArray()),
            },
            ["pre_tokenizer"] = System.Text.Json.Nodes.JsonNode.Parse(preTokenizer),
            ["added_tokens"] = System.Text.Json.Nodes.JsonNode.Parse("[{\"id\": 50256, \"content\": \"<|endoftext|>\", \"special\": true}]"),
        };
        string path = _temp.File("tokenizer.json");
        File.WriteAllText(path, json.ToJsonString());
        return path;
    }

    [Fact]
    public void ByteLevel_MatchesTheGgufGpt2Vectors()
    {
        var tokenizer = Tokenization.HuggingFaceTokenizer.FromTokenizerJson(Write("{\"type\": \"ByteLevel\", \"add_prefix_space\": false}"), 50256, 50256);
        foreach (var (text, ids) in TokenizerVectorTests.ReadCases(Fixtures.Vocab("ggml-vocab-gpt-2.gguf")))
            Assert.Equal(ids, tokenizer.Encode(text).Ids);
        Assert.Equal([64, 50256], tokenizer.Encode("a<|endoftext|>", parseSpecial: true).Ids);
    }

    [Fact]
    public void DigitsThenByteLevel_SplitsEveryDigit()
    {
        var tokenizer = Tokenization.HuggingFaceTokenizer.FromTokenizerJson(Write(
            "{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Digits\", \"individual_digits\": true}, {\"type\": \"ByteLevel\"}]}"), null, null);
        int[] ids = tokenizer.Encode("2026").Ids;
        Assert.Equal(4, ids.Length);
        Assert.Equal("2026", tokenizer.Decode(ids));
    }

    [Fact]
    public void UnsupportedPreTokenizer_SaysToUseVocab()
    {
        // Metaspace is supported since the tokenizers work (TokenizerFileTests); BERT's word splitter is not.
        var error = Assert.Throws<NextTokenException>(() => Tokenization.HuggingFaceTokenizer.FromTokenizerJson(Write("{\"type\": \"BertPreTokenizer\"}"), null, null));
        Assert.Contains("--vocab", error.Message);
        Assert.Contains("BertPreTokenizer", error.Message);
    }
}
