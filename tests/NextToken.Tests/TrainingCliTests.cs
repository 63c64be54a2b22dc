using System.Text.Json;
using NextToken.Gguf;
using NextToken.Training;
using Xunit.Abstractions;

namespace NextToken.Tests;

/// <summary><c>nexttoken pretrain</c> and <c>train-tokenizer</c> as a user runs them (separate process).</summary>
public class TrainingCliTests(ITestOutputHelper output) : IDisposable
{
    private readonly TempDir _temp = new();

    public void Dispose() => _temp.Dispose();

    private static string TrainingFixture(string file) => Fixtures.Path("training", file);

    private static readonly Lazy<JsonElement> Reference = new(() =>
        JsonDocument.Parse(File.ReadAllText(TrainingFixture("tiny-gpt2.json"))).RootElement);

    private static (int ExitCode, string Stdout, string Stderr) Run(params string[] args) => CliTests.RunWith(null, null, args);

    /// <summary>The interface the checks use, on the reference batch.</summary>
    private string[] PretrainArgs(string init, string data, int iters, float clip, string outName, params string[] more) =>
    [
        "pretrain", "--init-from", init, "--data", data, "--batch-size", "4", "--block-size", "32", "--max-iters", $"{iters}",
        "--lr", "1e-3", "--lr-schedule", "constant", "--warmup-iters", "0", "--weight-decay", "0.1", "--beta1", "0.9", "--beta2", "0.95",
        "--grad-clip", clip.ToString(System.Globalization.CultureInfo.InvariantCulture), "--eval-interval", "0", "--sequential", "--seed", "1",
        "--out", _temp.File(outName), "--json", .. more,
    ];

    private static double[] Losses(string stdout) =>
        [.. stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(line => JsonDocument.Parse(line).RootElement.GetProperty("loss").GetDouble())];

    [Theory]
    [InlineData(0f)]
    [InlineData(1f)]
    public void Pretrain_OnTheReferenceBatch_PrintsTheReferenceLosses(float clip)
    {
        JsonElement lm = Reference.Value.GetProperty("lm");
        double[] expected = [.. (clip > 0 ? lm.GetProperty("with_clip_1") : lm).GetProperty("losses").EnumerateArray().Select(e => e.GetDouble())];
        var (code, stdout, stderr) = Run(PretrainArgs(TrainingFixture("tiny-gpt2.init.gguf"), TrainingFixture("tiny-gpt2.batch.bin"), expected.Length, clip, "out.gguf"));
        Assert.True(code == 0, stderr);
        double[] losses = Losses(stdout);
        Assert.Equal(expected.Length, losses.Length);
        double worst = expected.Zip(losses, (e, a) => Math.Abs(e - a)).Max();
        output.WriteLine($"clip {clip}: max |loss - reference| over {losses.Length} steps {worst:E2}");
        Assert.True(worst <= 1e-4);

        // The written model runs in the engine.
        var (nextCode, nextOut, nextErr) = Run("next", "--model", _temp.File("out.gguf"), "--tokens", "70,313,295", "--json");
        Assert.True(nextCode == 0, nextErr);
        Assert.Equal(512, JsonDocument.Parse(nextOut).RootElement.GetProperty("vocab_size").GetInt32());
    }

    [Fact]
    public void Pretrain_ResumedFromACheckpoint_ContinuesExactlyAsAnUninterruptedRun()
    {
        string init = TrainingFixture("tiny-gpt2.init.gguf");
        // A longer stream so sequential windows move: three copies of the reference window.
        int[] window = TokenFile.Read(TrainingFixture("tiny-gpt2.batch.bin"));
        TokenFile.Write(_temp.File("data.bin"), [.. window, .. window, .. window]);
        string data = _temp.File("data.bin");
        var (code1, full, err1) = Run(PretrainArgs(init, data, 6, 1f, "full.gguf", "--threads", "2"));
        Assert.True(code1 == 0, err1);
        var (code2, _, err2) = Run(PretrainArgs(init, data, 3, 1f, "part.gguf", "--threads", "1"));
        Assert.True(code2 == 0, err2);
        var (code3, resumed, err3) = Run(PretrainArgs(init, data, 6, 1f, "part.gguf", "--resume", _temp.File("part.ckpt.gguf"), "--threads", "2"));
        Assert.True(code3 == 0, err3);
        double[] a = Losses(full), b = Losses(resumed);
        output.WriteLine($"uninterrupted {string.Join(", ", a)}\nresumed at 3  {string.Join(", ", b)}");
        Assert.Equal(a[3..], b);
        Assert.Equal(File.ReadAllBytes(_temp.File("full.gguf")), File.ReadAllBytes(_temp.File("part.gguf")));
    }

    [Fact]
    public void Pretrain_RandomBatches_AreTheSameForTheSameSeed()
    {
        string[] args = ["pretrain", "--init-from", TrainingFixture("tiny-gpt2.init.gguf"), "--data", TrainingFixture("tiny-gpt2.batch.bin"),
            "--batch-size", "2", "--block-size", "16", "--max-iters", "3", "--seed", "7", "--lr-schedule", "cosine", "--warmup-iters", "1", "--json"];
        var (c1, o1, e1) = Run([.. args, "--out", _temp.File("a.gguf"), "--threads", "1"]);
        var (c2, o2, e2) = Run([.. args, "--out", _temp.File("b.gguf"), "--threads", "2"]);
        Assert.True(c1 == 0 && c2 == 0, e1 + e2);
        Assert.Equal(Losses(o1), Losses(o2));
        Assert.Equal(File.ReadAllBytes(_temp.File("a.gguf")), File.ReadAllBytes(_temp.File("b.gguf")));
    }

    [Fact]
    public void Pretrain_BadTokenFiles_FailWithOneLineNamingTheField()
    {
        byte[] good = File.ReadAllBytes(TrainingFixture("tiny-gpt2.batch.bin"));
        byte[] badMagic = (byte[])good.Clone();
        badMagic[0] ^= 1;
        File.WriteAllBytes(_temp.File("magic.bin"), badMagic);
        File.WriteAllBytes(_temp.File("short.bin"), good[..^2]);
        string init = TrainingFixture("tiny-gpt2.init.gguf");
        foreach (var (file, expected) in new[] { ("magic.bin", "magic"), ("short.bin", "token count") })
        {
            var (code, _, stderr) = Run(PretrainArgs(init, _temp.File(file), 1, 0f, "x.gguf"));
            output.WriteLine(stderr.Trim());
            Assert.Equal(1, code);
            Assert.Contains(expected, stderr);
            Assert.Contains(file, stderr);
            Assert.Single(stderr.Trim().Split('\n'));
        }
    }

    [Fact]
    public void Pretrain_IdsBeyondTheVocabularyAndBlockAboveTheContext_AreRefused()
    {
        int[] tokens = TokenFile.Read(TrainingFixture("tiny-gpt2.batch.bin"));
        tokens[50] = 600;
        TokenFile.Write(_temp.File("ids.bin"), tokens);
        string init = TrainingFixture("tiny-gpt2.init.gguf");
        var (code, _, stderr) = Run(PretrainArgs(init, _temp.File("ids.bin"), 1, 0f, "x.gguf"));
        Assert.Equal(1, code);
        Assert.Contains("token id 600 at index 50", stderr);
        string[] args = PretrainArgs(init, TrainingFixture("tiny-gpt2.batch.bin"), 1, 0f, "x.gguf");
        args[Array.IndexOf(args, "--block-size") + 1] = "33";
        args[Array.IndexOf(args, "--batch-size") + 1] = "1";
        (code, _, stderr) = Run(args);
        Assert.Equal(1, code);
        Assert.Contains("above the model's context length 32", stderr);
    }

    [Fact]
    public void Pretrain_NaNLoss_StopsAndNamesTheStep()
    {
        // A model with one NaN weight: the first forward pass already gives NaN.
        using (GgufFile init = GgufFile.Open(TrainingFixture("tiny-gpt2.init.gguf")))
        {
            var layout = new Gpt2Parameters(Gpt2Parameters.ShapeOf(init));
            float[] values = layout.Load(init);
            values[layout["blk.1.ffn_up.weight"].Offset + 5] = float.NaN;
            layout.Save(_temp.File("nan.gguf"), values, init.Metadata, "nan");
        }
        var (code, _, stderr) = Run(PretrainArgs(_temp.File("nan.gguf"), TrainingFixture("tiny-gpt2.batch.bin"), 3, 0f, "x.gguf"));
        output.WriteLine(stderr.Trim());
        Assert.Equal(1, code);
        Assert.Contains("NaN at step 0", stderr);
    }

    [Fact]
    public void TrainTokenizer_WritesATokenizerJsonThatTokenizeReadsBack()
    {
        JsonElement bpe = JsonDocument.Parse(File.ReadAllText(TrainingFixture("bpe.json"))).RootElement;
        string dir = _temp.File("tok");
        var (code, stdout, stderr) = Run("train-tokenizer", "--input", TrainingBpeTests.Shakespeare, "--vocab-size", "512", "--pattern", "gpt2", "--out", dir, "--json");
        Assert.True(code == 0, stderr);
        JsonElement summary = JsonDocument.Parse(stdout).RootElement;
        output.WriteLine($"{summary.GetProperty("merges").GetArrayLength()} merges, {summary.GetProperty("merges_per_second").GetDouble()} merges/s");
        Assert.Equal(bpe.GetProperty("merges").GetRawText().Replace(" ", "").Replace("\n", ""), summary.GetProperty("merges").GetRawText());
        foreach (JsonElement test in bpe.GetProperty("tests").EnumerateArray())
        {
            var (c, o, e) = Run("tokenize", "--vocab", Path.Combine(dir, "tokenizer.json"), "--text", test.GetProperty("text").GetString()!, "--json");
            Assert.True(c == 0, e);
            Assert.Equal(test.GetProperty("ids").EnumerateArray().Select(x => x.GetInt32()), JsonDocument.Parse(o).RootElement.GetProperty("ids").EnumerateArray().Select(x => x.GetInt32()));
        }
    }
}
