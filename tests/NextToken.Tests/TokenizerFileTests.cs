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
