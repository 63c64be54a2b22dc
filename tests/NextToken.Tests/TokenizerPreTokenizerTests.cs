using NextToken.Gguf;
using NextToken.Tokenization;
using Xunit.Abstractions;

namespace NextToken.Tests;

/// <summary>The regex pre-tokenizers (Llama 3, Qwen2, GPT-4o) and the BOS defaults of the vocabularies that use them.</summary>
public class TokenizerPreTokenizerTests(ITestOutputHelper output)
{
    private static string[] Pieces(string name, string text)
    {
        var pieces = new List<(int Start, int End)>();
        PreTokenizer.ForName(name, "test").Split(text, 0, text.Length, pieces);
        return pieces.Select(p => text[p.Start..p.End]).ToArray();
    }

    [Fact]
    public void Llama3_CharactersOutsideTheBmp_CountAsOneCodePointOfTheirCategory()
    {
        // Rust's regex engines see code points: an emoji is the one optional symbol in front of a word,
        // and mathematical bold letters (U+1D400…) are letters. A plain .NET Regex would see two surrogates.
        Assert.Equal(["😀abc", " 𝐀𝐁𝐂"], Pieces("llama-bpe", "😀abc 𝐀𝐁𝐂"));
        // \p{N}{1,3} counts code points: four mathematical digits are three and one.
        Assert.Equal(["𝟏𝟐𝟑", "𝟒"], Pieces("llama-bpe", "𝟏𝟐𝟑𝟒"));
        Assert.Equal(["𝟏", "𝟐", "x"], Pieces("qwen2", "𝟏𝟐x"));
    }

    [Fact]
    public void PlainDotNetRegex_WouldSplitAstralTextDifferently()
    {
        // Where .NET's Regex (UTF-16 code units) and Rust's engines (code points) part ways, and why the
        // placeholder view exists: on the raw string the emoji's two surrogates are not "one optional symbol".
        var plain = new System.Text.RegularExpressions.Regex(PreTokenizer.Llama3Regex);
        Assert.Equal("😀", plain.Match("😀abc").Value);
        Assert.Equal("𝟏𝟐𝟑𝟒", plain.Match("𝟏𝟐𝟑𝟒").Value); // \p{N} does not match a surrogate: one "symbol" run, not digits
        Assert.Equal(["😀abc"], Pieces("llama-bpe", "😀abc"));
    }

    [Fact]
    public void Llama3_ContractionsAreCaseInsensitive_Qwen2DigitsAreSingle()
    {
        Assert.Equal(["I", "'VE", " been", " '", "told", " we", "'Ll"], Pieces("llama-bpe", "I'VE been 'told we'Ll"));
        Assert.Equal(["1", "2", "3", "4"], Pieces("qwen2", "1234"));
        Assert.Equal(["123", "4"], Pieces("llama-bpe", "1234"));
    }

    [Fact]
    public void Gpt4o_UpperCaseRunsAndSlashes()
    {
        // A lower-case word ends where an upper-case run starts; contractions stay with their word; '/' joins punctuation.
        Assert.Equal(["hello", "WORLD"], Pieces("gpt-4o", "helloWORLD"));
        Assert.Equal(["HTTPRequest's", " ://", "path"], Pieces("gpt-4o", "HTTPRequest's ://path"));
        Assert.Equal(["They'RE", " here"], Pieces("gpt-4o", "They'RE here"));
    }

    [Theory]
    [InlineData("llama-bpe", true, 128000)]
    [InlineData("qwen2", false, null)]
    [InlineData("deepseek-llm", true, 100000)]
    public void BosDefaults_FollowLlamaCpp(string name, bool addBos, int? bos)
    {
        using var file = GgufFile.Open(Fixtures.Vocab($"ggml-vocab-{name}.gguf"));
        Tokenizer tokenizer = Tokenizer.Load(file);
        output.WriteLine($"{name}: add_bos {tokenizer.Vocabulary.AddBos}, bos {tokenizer.Vocabulary.BosId}");
        Assert.Equal(addBos, tokenizer.Vocabulary.AddBos);
        if (addBos) Assert.Equal(bos, tokenizer.Vocabulary.BosId);
        Assert.Equal(addBos, tokenizer.Encode("Hello", addBos: tokenizer.Vocabulary.AddBos).Ids[0] == bos);
    }

    [Fact]
    public void Llama3_IgnoreMerges_LooksUpTheWholePreTokenFirst()
    {
        using var file = GgufFile.Open(Fixtures.Vocab("ggml-vocab-llama-bpe.gguf"));
        var tokenizer = (ByteLevelBpeTokenizer)Tokenizer.Load(file);
        Assert.True(tokenizer.IgnoreMerges);
        Assert.Equal("llama-bpe", tokenizer.PreTokenizer.Name);
    }
}
