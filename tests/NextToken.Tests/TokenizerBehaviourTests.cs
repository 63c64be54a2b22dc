using System.Text;
using NextToken.Gguf;
using NextToken.Tokenization;

namespace NextToken.Tests;

public class TokenizerBehaviourTests
{
    private static readonly Lazy<Tokenizer> Gpt2 = new(() =>
    {
        using var file = GgufFile.Open(Fixtures.Vocab("ggml-vocab-gpt-2.gguf"));
        return Tokenizer.Load(file);
    });

    [Theory]
    [InlineData("Hello world", new[] { "Hello", " world" })]
    [InlineData("I'm here, they'll go", new[] { "I", "'m", " here", ",", " they", "'ll", " go" })]
    [InlineData("a  b", new[] { "a", " ", " b" })]
    [InlineData("a \n\nb  ", new[] { "a", " \n", "\n", "b", "  " })]
    [InlineData("x1234 !!'s", new[] { "x", "1234", " !!'", "s" })]
    [InlineData("𝐀𝐁𝐂 abc", new[] { "𝐀𝐁𝐂", " abc" })]          // letters outside the BMP stay letters
    [InlineData("𝟙𝟚3", new[] { "𝟙𝟚3" })]                      // and so do digits
    [InlineData("🚀🚀 ok", new[] { "🚀🚀", " ok" })]
    public void PreTokenize_SplitsLikeGpt2Regex(string text, string[] expected)
    {
        var pieces = new List<(int Start, int End)>();
        Gpt2PreTokenizer.Split(text, 0, text.Length, pieces);
        Assert.Equal(expected, pieces.Select(p => text[p.Start..p.End]).ToArray());
    }

    [Fact]
    public void Encode_Offsets_CoverTheInputInOrder()
    {
        const string text = "Understanding tokenization, naïvely 🦙!";
        EncodedText encoded = Gpt2.Value.Encode(text);
        Assert.Equal(0, encoded.Offsets[0].Start);
        Assert.Equal(text.Length, encoded.Offsets[^1].End);
        for (int i = 1; i < encoded.Count; i++)
            Assert.True(encoded.Offsets[i].Start >= encoded.Offsets[i - 1].Start);
        Assert.Equal("Understanding", text[encoded.Offsets[0].Start..encoded.Offsets[0].End]);
    }

    [Fact]
    public void Encode_Emoji_FallsBackToBytesWithOverlappingOffsets()
    {
        EncodedText encoded = Gpt2.Value.Encode("🦙");
        Assert.Equal(4, encoded.Ids.Sum(id => Gpt2.Value.TokenBytes(id).Length));
        Assert.True(encoded.Count > 1);
        Assert.All(encoded.Offsets, o => Assert.Equal((0, 2), o));
        Assert.Equal("🦙", Gpt2.Value.Decode(encoded.Ids));
    }

    [Fact]
    public void Encode_SpecialToken_OnlyWhenAsked()
    {
        const string text = "a<|endoftext|>b";
        int[] plain = Gpt2.Value.Encode(text).Ids;
        int[] special = Gpt2.Value.Encode(text, parseSpecial: true).Ids;
        Assert.DoesNotContain(50256, plain);
        Assert.Equal([64, 50256, 65], special);
        Assert.Equal(text, Gpt2.Value.Decode(plain));
        Assert.Equal(text, Gpt2.Value.Decode(special));
    }

    [Fact]
    public void Encode_AddBos_PrependsBosId()
    {
        int[] ids = Gpt2.Value.Encode("hi", addBos: true).Ids;
        Assert.Equal(50256, ids[0]);
    }

    [Fact]
    public void StreamDecoder_TokensSplittingACharacter_NeverEmitHalfACharacter()
    {
        int[] ids = Gpt2.Value.Encode("é🦙ü").Ids;
        var decoder = new Utf8StreamDecoder();
        var pieces = new List<string>();
        foreach (int id in ids) pieces.Add(decoder.Append(Gpt2.Value.TokenBytes(id)));
        pieces.Add(decoder.Flush());
        Assert.DoesNotContain(pieces, p => p.Contains('\uFFFD'));
        Assert.Equal("é🦙ü", string.Concat(pieces));
    }

    [Fact]
    public void TokenDisplay_MakesLeadingSpaceAndPartialBytesVisible()
    {
        Assert.Equal("␣cat", Gpt2.Value.TokenDisplay(Gpt2.Value.Encode(" cat").Ids.Single()));
        Assert.Equal("<0xA6>", VisibleText.Of([0xA6]));
        Assert.Equal("↵⇥", VisibleText.Of(Encoding.UTF8.GetBytes("\n\t")));
    }

    [Fact]
    public void Decode_OutOfRangeId_NamesIdAndRange()
    {
        var error = Assert.Throws<TokenOutOfRangeException>(() => Gpt2.Value.Decode([50257]));
        Assert.Contains("token id 50257 is out of range; expected 0 to 50256", error.Message);
    }

    [Fact]
    public void Load_UnknownPreTokenizer_IsAnError()
    {
        using var file = GgufFile.Open(Fixtures.Vocab("ggml-vocab-gpt-2.gguf"));
        var vocabulary = Vocabulary.FromGguf(file);
        var error = Assert.Throws<NextTokenException>(() => new ByteLevelBpeTokenizer(vocabulary, file.GetArray<string>("tokenizer.ggml.merges"), "klingon"));
        Assert.Contains("'tokenizer.ggml.pre' is \"klingon\"", error.Message);
    }
}

public class TokenizerLoadingTests
{
    [Fact]
    public void Load_GptNeoxWithoutPreTokenizer_UsesLlamaCppDefaultAndRoundTrips()
    {
        using var file = GgufFile.Open(Fixtures.Vocab("ggml-vocab-gpt-neox.gguf"));
        var tokenizer = Assert.IsType<ByteLevelBpeTokenizer>(Tokenizer.Load(file));
        Assert.Equal("default", tokenizer.PreTokenizer.Name);
        const string text = "Hello world! 1234567 naïve 🦙\n\tcode();";
        Assert.Equal(text, tokenizer.Decode(tokenizer.Encode(text).Ids));
    }

    [Fact]
    public void Load_WordPieceVocabulary_IsAClearError()
    {
        using var file = GgufFile.Open(Fixtures.Vocab("ggml-vocab-bert-bge.gguf"));
        var error = Assert.Throws<GgufFormatException>(() => Tokenizer.Load(file));
        Assert.Contains("'tokenizer.ggml.model' is \"bert\"", error.Message);
    }

    [Fact]
    public void Encode_LlamaSpm_ByteFallbackForCharactersOutsideTheVocabulary()
    {
        using var file = GgufFile.Open(Fixtures.Vocab("ggml-vocab-llama-spm.gguf"));
        Tokenizer tokenizer = Tokenizer.Load(file);
        EncodedText encoded = tokenizer.Encode("🦙");
        Assert.Contains(encoded.Ids, id => tokenizer.Vocabulary.Types[id] == TokenType.Byte);
        Assert.Contains("<0xF0>", encoded.Ids.Select(tokenizer.TokenDisplay));
        Assert.Equal("🦙", tokenizer.Decode(encoded.Ids));
        Assert.Equal(1, tokenizer.Encode("hi", addBos: true).Ids[0]);
    }
    /// <summary>
    /// Found by the GGUF fuzz target: a token whose bytes are not the text's own (the unknown token standing for a byte
    /// the vocabulary lacks; a merge result marked user-defined, so its bytes are its text's UTF-8) walked the offsets past
    /// the end of the piece (IndexOutOfRangeException). Each token now reports a character inside its piece.
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Encode_TokenBytesUnlikeTheText_KeepsOffsetsInsideThePiece(bool userDefinedMerge)
    {
        char[] byteToChar = ByteLevelBpeTokenizer.ByteToUnicode();
        var tokens = new List<string>();
        for (int b = 0; b < 256; b++)
            if (b != 'z') tokens.Add(byteToChar[b].ToString()); // no token for 'z'
        tokens.Add("<unk>");
        tokens.Add("xy");
        var types = tokens.Select(t => t == "<unk>" ? TokenType.Unknown : TokenType.Normal).ToArray();
        if (userDefinedMerge) types[^1] = TokenType.UserDefined;
        string text = userDefinedMerge ? "xy é" : "xyz é";
        var vocabulary = new Vocabulary([.. tokens], types, bosId: null, eosId: null, addBos: false, "test vocabulary", unknownId: tokens.IndexOf("<unk>"));
        var tokenizer = new ByteLevelBpeTokenizer(vocabulary, ["x y"], "gpt-2");
        EncodedText encoded = tokenizer.Encode(text);
        Assert.NotEmpty(encoded.Ids);
        for (int k = 0; k < encoded.Ids.Length; k++)
        {
            (int start, int end) = encoded.Offsets[k];
            Assert.InRange(start, 0, text.Length - 1);
            Assert.InRange(end, start + 1, text.Length);
        }
        if (!userDefinedMerge) Assert.Equal(new[] { tokens.IndexOf("xy"), tokens.IndexOf("<unk>") }, encoded.Ids.Take(2));
    }
}
