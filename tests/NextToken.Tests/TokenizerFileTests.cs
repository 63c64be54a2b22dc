using System.Text.Json;
using NextToken.Tokenization;
using Xunit.Abstractions;

namespace NextToken.Tests;

/// <summary>
/// Real tokenizer.json and tokenizer.model files (fixtures/tokenizers): every line of each folder's
/// expected.jsonl must match exactly. tokenizer.json lines carry no special tokens; tokenizer.model
/// lines start with BOS. Special-token text in the input is ordinary text (parseSpecial off).
/// </summary>
public class TokenizerFileTests(ITestOutputHelper output)
{
    public static TheoryData<string> Folders => new() { "llama3", "qwen3", "gpt-4o", "gpt2", "phi-2", "phi-3-mini", "gemma3", "llama2", "mistral-v3" };

    internal static Tokenizer Load(string folder) =>
        HuggingFaceTokenizer.FromDirectory(Fixtures.Path("tokenizers", folder), null, null)
        ?? throw new InvalidOperationException($"no tokenizer in {folder}");

    internal static List<(string Text, int[] Ids)> Cases(string folder) =>
        File.ReadAllLines(Fixtures.Path("tokenizers", folder, "expected.jsonl"))
            .Select(line => JsonDocument.Parse(line).RootElement)
            .Select(e => (e.GetProperty("text").GetString()!, e.GetProperty("ids").EnumerateArray().Select(i => i.GetInt32()).ToArray()))
            .ToList();

    [Theory]
    [MemberData(nameof(Folders))]
    public void Encode_ExpectedIds_MatchExactly(string folder)
    {
        Tokenizer tokenizer = Load(folder);
        bool withBos = File.Exists(Fixtures.Path("tokenizers", folder, "tokenizer.model"));
        var cases = Cases(folder);
        var failures = new List<string>();
        foreach (var (text, expected) in cases)
        {
            int[] actual = tokenizer.Encode(text, addBos: withBos).Ids;
            if (!actual.AsSpan().SequenceEqual(expected))
                failures.Add($"{JsonSerializer.Serialize(text)}: expected [{string.Join(' ', expected)}], got [{string.Join(' ', actual)}]");
        }
        output.WriteLine($"{folder}: {cases.Count - failures.Count}/{cases.Count} lines match");
        Assert.True(failures.Count == 0, string.Join('\n', failures.Take(5)));
    }

    [Theory]
    [MemberData(nameof(Folders))]
    public void Decode_ExpectedIds_GiveTheText(string folder)
    {
        Tokenizer tokenizer = Load(folder);
        int passed = 0;
        var cases = Cases(folder);
        foreach (var (text, ids) in cases)
        {
            int first = ids.Length > 0 && tokenizer.Vocabulary.Types[ids[0]] == TokenType.Control ? 1 : 0;
            Assert.Equal(text, tokenizer.Decode(ids.AsSpan(first)));
            passed++;
        }
        output.WriteLine($"{folder}: {passed}/{cases.Count} lines decode to their text");
    }
}

/// <summary>What the fixture files exercise beyond their expected ids: BOS, added-token stripping, Metaspace, errors.</summary>
public class TokenizerFileBehaviourTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData("llama3", "llama-bpe")]
    [InlineData("qwen3", "qwen2")]
    [InlineData("gpt-4o", "gpt-4o")]
    public void GgufPreTokenizer_SplitsLikeTheTokenizerJsonRegex(string folder, string ggufName)
    {
        // The GGUF names use llama.cpp's spelled-out contractions; the files use (?i:…). Same pieces on every line.
        var fromJson = ((ByteLevelBpeTokenizer)TokenizerFileTests.Load(folder)).PreTokenizer;
        var fromName = PreTokenizer.ForName(ggufName, "test");
        int lines = 0;
        foreach (var (text, _) in TokenizerFileTests.Cases(folder))
        {
            var a = new List<(int, int)>();
            var b = new List<(int, int)>();
            fromJson.Split(text, 0, text.Length, a);
            fromName.Split(text, 0, text.Length, b);
            Assert.Equal(a, b);
            lines++;
        }
        output.WriteLine($"{folder} vs {ggufName}: {lines} lines split alike");
    }

    [Fact]
    public void TemplateProcessing_GivesBos_OnlyWhereTheFileSaysSo()
    {
        Tokenizer gemma = TokenizerFileTests.Load("gemma3");
        Assert.True(gemma.Vocabulary.AddBos);
        Assert.Equal(2, gemma.Vocabulary.BosId);
        Assert.Equal([2, .. gemma.Encode("Hello").Ids], gemma.Encode("Hello", addBos: true).Ids);
        Assert.False(TokenizerFileTests.Load("phi-3-mini").Vocabulary.AddBos); // its template adds nothing
        Assert.False(TokenizerFileTests.Load("qwen3").Vocabulary.AddBos);
    }

    [Fact]
    public void AddedTokenRightStrip_TakesTheWhitespaceAfterIt()
    {
        // Phi-3's <|assistant|> (special, rstrip): the spaces after it are not tokenized, and the text after it gets the ▁ prefix.
        Tokenizer phi3 = TokenizerFileTests.Load("phi-3-mini");
        int[] ids = phi3.Encode("<|assistant|>   Hi", parseSpecial: true).Ids;
        Assert.Equal([32001, .. phi3.Encode("Hi").Ids], ids);
        // Without special parsing it is plain text.
        Assert.DoesNotContain(32001, phi3.Encode("<|assistant|> Hi").Ids);
    }

    [Fact]
    public void UserDefinedAddedTokens_MatchBeforePreTokenization()
    {
        // Phi-2's runs of spaces are non-special added tokens: they apply even without special parsing.
        Tokenizer phi2 = TokenizerFileTests.Load("phi-2");
        Assert.True(phi2.Vocabulary.TryGetId("    ", out int fourSpaces));
        Assert.Contains(fourSpaces, phi2.Encode("a    b").Ids);
        // Qwen's <|im_start|> is special: plain text unless parsed.
        Tokenizer qwen = TokenizerFileTests.Load("qwen3");
        Assert.Equal([151644], qwen.Encode("<|im_start|>", parseSpecial: true).Ids);
        Assert.NotEqual([151644], qwen.Encode("<|im_start|>").Ids);
    }

    [Fact]
    public void Metaspace_MatchesPrependAndReplace_OnTextNotStartingWithASpace()
    {
        // Phi-3's file with its normalizer swapped for the equivalent Metaspace pre-tokenizer (no split):
        // the expected ids still hold wherever the text does not start with a space (Metaspace adds no second ▁ there).
        var json = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Fixtures.Path("tokenizers", "phi-3-mini", "tokenizer.json")))!;
        json["normalizer"] = null;
        json["pre_tokenizer"] = System.Text.Json.Nodes.JsonNode.Parse("{\"type\": \"Metaspace\", \"replacement\": \"\u2581\", \"prepend_scheme\": \"first\", \"split\": false}");
        string dir = Directory.CreateTempSubdirectory("nexttoken-metaspace").FullName;
        try
        {
            string path = Path.Combine(dir, "tokenizer.json");
            File.WriteAllText(path, json.ToJsonString());
            Tokenizer tokenizer = HuggingFaceTokenizer.FromTokenizerJson(path, null, null);
            int checkedLines = 0;
            foreach (var (text, ids) in TokenizerFileTests.Cases("phi-3-mini").Where(c => c.Text.Length > 0 && c.Text[0] != ' '))
            {
                Assert.Equal(ids, tokenizer.Encode(text).Ids);
                checkedLines++;
            }
            output.WriteLine($"Metaspace: {checkedLines} lines match phi-3-mini's expected ids");
            Assert.True(checkedLines >= 30, $"only {checkedLines} lines checked");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void SentencePieceModel_ReadsIdsTypesAndBos()
    {
        Tokenizer llama2 = TokenizerFileTests.Load("llama2");
        Assert.IsType<SentencePieceTokenizer>(llama2);
        Assert.Equal(32000, llama2.VocabSize);
        Assert.Equal(1, llama2.Vocabulary.BosId);
        Assert.Equal(2, llama2.Vocabulary.EosId);
        Assert.True(llama2.Vocabulary.AddBos);
        Assert.Equal(TokenType.Byte, llama2.Vocabulary.Types[3]);
        Tokenizer mistral = TokenizerFileTests.Load("mistral-v3");
        Assert.True(mistral.Vocabulary.TryGetId("[INST]", out int inst));
        Assert.Equal(TokenType.Control, mistral.Vocabulary.Types[inst]);
        Assert.Equal([1, inst], mistral.Encode("[INST]", addBos: true, parseSpecial: true).Ids);
        Assert.DoesNotContain(inst, mistral.Encode("[INST]", addBos: true).Ids);
    }

    [Fact]
    public void SentencePieceModel_Truncated_NamesFileAndOffset()
    {
        string dir = Directory.CreateTempSubdirectory("nexttoken-spm").FullName;
        try
        {
            byte[] model = File.ReadAllBytes(Fixtures.Path("tokenizers", "llama2", "tokenizer.model"));
            string path = Path.Combine(dir, "tokenizer.model");
            File.WriteAllBytes(path, model[..1001]);
            var error = Assert.Throws<NextTokenException>(() => SentencePieceModel.Load(path));
            output.WriteLine(error.Message);
            Assert.StartsWith(path + ": offset ", error.Message);
            Assert.Contains("past the end", error.Message);
            File.WriteAllBytes(path, [0x0A, 0x02, 0x0F, 0xFF]); // a piece whose field has wire type 7
            Assert.Contains("wire type 7", Assert.Throws<NextTokenException>(() => SentencePieceModel.Load(path)).Message);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
