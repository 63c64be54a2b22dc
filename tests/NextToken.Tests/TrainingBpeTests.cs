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
    public void VocabularyBelowTheBytes_IsRefused()
    {
        var error = Assert.Throws<NextTokenException>(() => BpeTrainer.Train(["abc"], 255, SplitPattern.Gpt2));
        Assert.Contains("256", error.Message);
    }
}
