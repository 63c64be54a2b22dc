using System.Diagnostics;
using System.Text.Json;
using NextToken.Training;
using Xunit.Abstractions;

namespace NextToken.Tests;

/// <summary>The BPE trainer against minbpe's merges and ids in <c>training/bpe.json</c>.</summary>
public class TrainingBpeTests(ITestOutputHelper output)
{
    private static readonly Lazy<JsonElement> Reference = new(() =>
        JsonDocument.Parse(File.ReadAllText(Fixtures.Path("training", "bpe.json"))).RootElement);

    internal static string Shakespeare => Path.GetFullPath(Path.Combine(Fixtures.Dir, "..", "datasets", "tinyshakespeare.txt"));

    private static readonly Lazy<BpeModel> Trained = new(() =>
        BpeTrainer.Train([File.ReadAllText(Shakespeare)], Reference.Value.GetProperty("vocab_size").GetInt32(), SplitPattern.Gpt2));

    [Fact]
    public void Gpt2Split_GivesTheReferenceChunks()
    {
        foreach (JsonElement test in Reference.Value.GetProperty("tests").EnumerateArray())
        {
            string[] expected = [.. test.GetProperty("chunks").EnumerateArray().Select(c => c.GetString()!)];
            Assert.Equal(expected, BpeTrainer.Split(test.GetProperty("text").GetString()!, SplitPattern.Gpt2).ToArray());
        }
    }

    [Fact]
    public void TinyShakespeare_GivesMinbpesMergesCountsAndIds()
    {
        var watch = Stopwatch.StartNew();
        BpeModel model = Trained.Value;
        watch.Stop();
        JsonElement r = Reference.Value;
        (int, int)[] expected = [.. r.GetProperty("merges").EnumerateArray().Select(m => (m[0].GetInt32(), m[1].GetInt32()))];
        long[] counts = [.. r.GetProperty("merge_counts").EnumerateArray().Select(c => c.GetInt64())];
        output.WriteLine($"{model.Merges.Count} merges in {watch.Elapsed.TotalSeconds:F2} s ({model.Merges.Count / watch.Elapsed.TotalSeconds:F0} merges/s, split included)");
        Assert.Equal(expected, model.Merges.ToArray());
        Assert.Equal(counts, model.Counts.ToArray());
        int[] byTie = [.. r.GetProperty("merges_decided_by_tie").EnumerateArray().Select(e => e.GetInt32())];
        int[] ours = [.. Enumerable.Range(0, model.Merges.Count).Where(k => model.TiedWith[k] > 0).Select(k => 256 + k)];
        output.WriteLine($"merges decided by a tie: {ours.Length} (reference {byTie.Length})");
        Assert.Equal(byTie, ours);
        foreach (JsonElement test in r.GetProperty("tests").EnumerateArray())
        {
            int[] ids = [.. test.GetProperty("ids").EnumerateArray().Select(e => e.GetInt32())];
            Assert.Equal(ids, model.Encode(test.GetProperty("text").GetString()!).ToArray());
        }
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void WikipediaExample_GivesMinbpesMergesAndIds(bool split)
    {
        JsonElement w = Reference.Value.GetProperty("minbpe_test_wikipedia_example");
        string text = w.GetProperty("text").GetString()!;
        // Without the split the trainer sees the text as one chunk: train on a pattern-free single piece.
        BpeModel model = BpeTrainer.Train([text], w.GetProperty("vocab_size").GetInt32(), SplitPattern.Gpt2);
        Assert.Equal(w.GetProperty("merges").EnumerateArray().Select(m => (m[0].GetInt32(), m[1].GetInt32())).ToArray(), model.Merges.ToArray());
        Assert.Equal(w.GetProperty("merge_counts").EnumerateArray().Select(c => c.GetInt64()).ToArray(), model.Counts.ToArray());
        Assert.Equal(w.GetProperty("tied_with").EnumerateArray().Select(c => c.GetInt32()).ToArray(), model.TiedWith.ToArray());
        Assert.Equal(w.GetProperty("ids").EnumerateArray().Select(e => e.GetInt32()).ToArray(), model.Encode(text, split).ToArray());
    }

    [Fact]
    public void WrittenVocabularies_ReadBackByTheEngine_GiveTheSameIds()
    {
        BpeModel model = Trained.Value;
        output.WriteLine($"duplicate spellings: {BpeVocabularyWriter.DuplicateSpellings(model).Count}");
        Assert.Empty(BpeVocabularyWriter.DuplicateSpellings(model));
        string dir = Path.Combine(Path.GetTempPath(), $"nexttoken-bpe-{Environment.ProcessId}");
        Directory.CreateDirectory(dir);
        try
        {
            string json = Path.Combine(dir, "tokenizer.json"), gguf = Path.Combine(dir, "vocab.gguf");
            BpeVocabularyWriter.WriteTokenizerJson(json, model);
            BpeVocabularyWriter.WriteGguf(gguf, model, "test");
            string corpus = File.ReadAllText(Shakespeare)[..20_000];
            List<int> expected = model.Encode(corpus);
            foreach (string path in new[] { json, gguf })
            {
                var tokenizer = NextToken.Models.ModelLoader.LoadTokenizer(path);
                Assert.Equal(model.VocabSize, tokenizer.VocabSize);
                foreach (JsonElement test in Reference.Value.GetProperty("tests").EnumerateArray())
                    Assert.Equal(test.GetProperty("ids").EnumerateArray().Select(e => e.GetInt32()).ToArray(),
                                 tokenizer.Encode(test.GetProperty("text").GetString()!).Ids.ToArray());
                Assert.Equal(expected, tokenizer.Encode(corpus).Ids.ToArray());
                output.WriteLine($"{Path.GetFileName(path)}: test strings and {expected.Count} ids of the first 20,000 characters agree");
            }
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void GgufVocabulary_EqualsTheOneInTinyGpt2()
    {
        // tiny-gpt2.init.gguf carries this very BPE (tokens, types and merges as llama.cpp writes them).
        using var reference = NextToken.Gguf.GgufFile.Open(Fixtures.Path("training", "tiny-gpt2.init.gguf"));
        var ours = BpeVocabularyWriter.GgufMetadata(Trained.Value).ToDictionary(k => k.Key, k => k.Value.Value);
        Assert.Equal(reference.GetArray<string>("tokenizer.ggml.tokens"), (string[])ours["tokenizer.ggml.tokens"]);
        Assert.Equal(reference.GetArray<string>("tokenizer.ggml.merges"), (string[])ours["tokenizer.ggml.merges"]);
        Assert.Equal(reference.GetString("tokenizer.ggml.pre"), (string)ours["tokenizer.ggml.pre"]);
    }

    [Fact]
    public void Gpt4Pattern_SplitsAsMinbpe()
    {
        // cl100k's split: digits in threes, a leading non-letter joins a word, newlines kept with their run.
        string[] pieces = [.. BpeTrainer.Split("Hello world123456 I'LL go!!\n\n  x", SplitPattern.Gpt4)];
        Assert.Equal(["Hello", " world", "123", "456", " I", "'LL", " go", "!!\n\n", " ", " x"], pieces);
    }

    [Fact]
    public void VocabularyBelowTheBytes_IsRefused()
    {
        var error = Assert.Throws<NextTokenException>(() => BpeTrainer.Train(["abc"], 255, SplitPattern.Gpt2));
        Assert.Contains("256", error.Message);
    }
}
