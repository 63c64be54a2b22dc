using NextToken.Gguf;
using NextToken.Tokenization;
using Xunit.Abstractions;

namespace NextToken.Tests;

/// <summary>llama.cpp's tokenizer test vectors: every line must match exactly.</summary>
public class TokenizerVectorTests(ITestOutputHelper output)
{
    public static TheoryData<string> Vocabularies => new() { "gpt-2", "llama-spm", "phi-3", "falcon", "starcoder", "mpt", "refact", "deepseek-coder", "llama-bpe", "qwen2", "deepseek-llm" };

    [Theory]
    [MemberData(nameof(Vocabularies))]
    public void Encode_GgmlVocabVectors_MatchExactly(string name)
    {
        string path = Fixtures.Vocab($"ggml-vocab-{name}.gguf");
        using var file = GgufFile.Open(path);
        Tokenizer tokenizer = Tokenizer.Load(file);
        var cases = ReadCases(path);
        var failures = new List<string>();
        foreach (var (text, expected) in cases)
        {
            int[] actual = tokenizer.Encode(text).Ids;
            if (!actual.AsSpan().SequenceEqual(expected))
                failures.Add($"{System.Text.Json.JsonSerializer.Serialize(text)}: expected [{string.Join(' ', expected)}], got [{string.Join(' ', actual)}]");
        }
        output.WriteLine($"{name}: {cases.Count - failures.Count}/{cases.Count} vectors match");
        Assert.True(failures.Count == 0, string.Join('\n', failures));
    }

    [Theory]
    [MemberData(nameof(Vocabularies))]
    public void Decode_GgmlVocabVectors_RoundTrip(string name)
    {
        string path = Fixtures.Vocab($"ggml-vocab-{name}.gguf");
        using var file = GgufFile.Open(path);
        Tokenizer tokenizer = Tokenizer.Load(file);
        foreach (var (text, expected) in ReadCases(path))
            Assert.Equal(text, tokenizer.Decode(expected));
    }

    internal static List<(string Text, int[] Ids)> ReadCases(string vocabPath)
    {
        string[] inputs = File.ReadAllText(vocabPath + ".inp").Split("\n__ggml_vocab_test__\n");
        string[] outputs = File.ReadAllLines(vocabPath + ".out");
        Assert.Equal(outputs.Length, inputs.Length - 1); // the file ends with a separator
        var cases = new List<(string, int[])>();
        for (int i = 0; i < outputs.Length; i++)
        {
            int[] ids = outputs[i].Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(int.Parse).ToArray();
            cases.Add((inputs[i], ids));
        }
        return cases;
    }
}
