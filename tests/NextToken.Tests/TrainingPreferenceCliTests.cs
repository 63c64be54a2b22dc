using System.Text.Json;
using NextToken.Chat;
using NextToken.Gguf;
using NextToken.Tokenization;
using NextToken.Training;
using Xunit.Abstractions;

namespace NextToken.Tests;

/// <summary><c>nexttoken reward train|score</c> and <c>nexttoken dpo</c> on tiny shapes.</summary>
public class TrainingPreferenceCliTests(ITestOutputHelper output) : IDisposable
{
    private readonly TempDir _temp = new();

    public void Dispose() => _temp.Dispose();

    private static (int ExitCode, string Stdout, string Stderr) Run(params string[] args) => CliTests.RunWith(null, null, args);

    private static readonly (string Prompt, string Chosen, string Rejected)[] Pairs =
    [
        ("Capital of France?", "Paris.", "Rome, I think."),
        ("Who wrote Hamlet?", "Shakespeare.", "Nobody knows."),
        ("Two plus two?", "Four.", "Five, surely."),
        ("Best city?", "Verona.", "It depends."),
    ];

    private string WritePairs()
    {
        string path = _temp.File("pairs.jsonl");
        FineTuneFixtures.WriteLines(path, [.. Pairs.Select(p => new { prompt = p.Prompt, chosen = p.Chosen, rejected = p.Rejected })]);
        return path;
    }

    [Fact]
    public unsafe void RewardModelFile_HoldsTheHead_AndScoresTheFixturePairsAsTheReference()
    {
        JsonElement rm = JsonDocument.Parse(File.ReadAllText(Fixtures.Path("training", "tiny-gpt2.json"))).RootElement.GetProperty("rm");
        float[] head = [.. rm.GetProperty("head").EnumerateArray().Select(x => x.GetSingle())];
        Gpt2Parameters layout;
        float[] trunk;
        Dictionary<string, GgufValue> vocabulary;
        using (GgufFile init = GgufFile.Open(FineTuneFixtures.Init))
        {
            layout = new Gpt2Parameters(Gpt2Parameters.ShapeOf(init));
            trunk = layout.Load(init);
            vocabulary = init.Metadata.ToDictionary();
        }
        string path = _temp.File("rm.gguf");
        RewardModelFile.Save(path, layout, trunk, head, vocabulary, "test");
        using GgufFile file = GgufFile.Open(path);
        Assert.True(file.GetBoolOrNull(RewardModelFile.MarkerKey));
        Assert.True(file.TryGetTensorInfo(RewardModelFile.HeadTensor, out GgufTensorInfo info));
        Assert.Equal([64L, 1L], info.Dims);
        float[] loadedHead = RewardModelFile.LoadHead(file, 64);
        Assert.Equal(head, loadedHead);
        var pass = new PreferenceTraining(layout, threads: 2);
        float[] loadedTrunk = layout.Load(file);
        double worst = 0;
        foreach (JsonElement pair in rm.GetProperty("pairs").EnumerateArray())
            foreach (var (tokens, reward) in new[] { ("chosen", "reward_chosen"), ("rejected", "reward_rejected") })
            {
                int[] sequence = [.. pair.GetProperty(tokens).EnumerateArray().Select(x => x.GetInt32())];
                double ours = pass.Score(loadedTrunk, loadedHead, sequence), expected = pair.GetProperty(reward).GetDouble();
                worst = Math.Max(worst, Math.Abs(ours - expected));
            }
        output.WriteLine($"rewards of the fixture pairs through the written file: max |r - reference| {worst:E2}");
        Assert.True(worst <= 1e-4);
        using GgufFile plain = GgufFile.Open(FineTuneFixtures.Init);
        Assert.Contains("not a reward model", Assert.Throws<NextTokenException>(() => RewardModelFile.LoadHead(plain, 64)).Message);
    }

    [Fact]
    public void RewardTrain_ThenScore_RanksEveryChosenAnswerFirst()
    {
        string data = WritePairs(), model = _temp.File("rm.gguf");
        var (code, stdout, stderr) = Run("reward", "train", "--init-from", FineTuneFixtures.Init, "--data", data, "--max-iters", "10", "--lr", "1e-3",
                                         "--out", model, "--json", "--threads", "1");
        Assert.True(code == 0, stderr);
        double[] losses = FineTuneFixtures.JsonLosses(stdout);
        output.WriteLine($"reward losses {string.Join(", ", losses.Select(l => l.ToString("G4")))}");
        Assert.True(losses[^1] < losses[0] / 10);
        foreach (var (prompt, chosen, rejected) in Pairs)
        {
            var (c, o, e) = Run("reward", "score", "--model", model, "--prompt", prompt, "--response", chosen, "--response", rejected, "--json", "--threads", "1");
            Assert.True(c == 0, e);
            double[] rewards = [.. JsonDocument.Parse(o).RootElement.GetProperty("responses").EnumerateArray().Select(r => r.GetProperty("reward").GetDouble())];
            output.WriteLine($"{prompt} '{chosen}' {rewards[0]:F3} > '{rejected}' {rewards[1]:F3}");
            Assert.True(rewards[0] > rewards[1]);
        }
        var (tableCode, table, tableErr) = Run("reward", "score", "--model", model, "-p", Pairs[0].Prompt, "-r", Pairs[0].Rejected, "-r", Pairs[0].Chosen, "--threads", "1");
        Assert.True(tableCode == 0, tableErr);
        Assert.True(table.IndexOf(Pairs[0].Chosen, StringComparison.Ordinal) < table.IndexOf(Pairs[0].Rejected, StringComparison.Ordinal), "the table lists the best answer first");
        // The trunk is an ordinary gpt2 GGUF.
        var (nextCode, _, nextErr) = Run("next", "--model", model, "--prompt", "The king", "--json");
        Assert.True(nextCode == 0, nextErr);
    }

    [Fact]
    public void Dpo_StartsAtLog2_AndMovesTheEnginesLogProbabilitiesTheRightWay()
    {
        string data = WritePairs(), model = _temp.File("dpo.gguf");
        var (code, stdout, stderr) = Run("dpo", "--init-from", FineTuneFixtures.Init, "--data", data, "--beta", "0.1", "--max-iters", "10", "--lr", "1e-3",
                                         "--template", "plain", "--out", model, "--json", "--threads", "1");
        Assert.True(code == 0, stderr);
        double[] losses = FineTuneFixtures.JsonLosses(stdout);
        output.WriteLine($"DPO losses {string.Join(", ", losses.Select(l => l.ToString("G5")))}; step 0 − ln 2 = {losses[0] - Math.Log(2):E2}");
        // The policy starts as the reference: margin 0, loss ln 2.
        Assert.True(Math.Abs(losses[0] - Math.Log(2)) <= 1e-6);
        Assert.True(losses[^1] < 0.3);

        // log p(answer | prompt) before and after, from the inference engine.
        Tokenizer tokenizer = FineTuneFixtures.InitTokenizer();
        ChatTemplate template = ChatTemplate.FromName("plain");
        double LogProb(string path, string prompt, string answer)
        {
            var (p, r) = ChatData.EncodePromptResponse(prompt, answer, template, tokenizer, "test");
            var (sequence, promptLength) = ChatData.Fit(p, r, 32); // as dpo cuts them to the context
            return FineTuneFixtures.EngineLogProbs(path, sequence)[(promptLength - 1)..].Sum();
        }
        foreach (var (prompt, chosen, rejected) in Pairs)
        {
            double c0 = LogProb(FineTuneFixtures.Init, prompt, chosen), c1 = LogProb(model, prompt, chosen);
            double r0 = LogProb(FineTuneFixtures.Init, prompt, rejected), r1 = LogProb(model, prompt, rejected);
            output.WriteLine($"{prompt}: chosen {c0:F2} → {c1:F2}, rejected {r0:F2} → {r1:F2}");
            Assert.True(c1 - r1 > c0 - r0 + 1, "the margin grows");
        }
    }

    [Fact]
    public void PreferenceData_BadLines_NameFileAndLine()
    {
        string path = _temp.File("bad.jsonl");
        File.WriteAllLines(path, ["{\"prompt\": \"a\", \"chosen\": \"b\", \"rejected\": \"c\"}", "{\"prompt\": \"a\", \"chosen\": \"b\"}"]);
        foreach (string[] command in new[] { new[] { "dpo" }, ["reward", "train"] })
        {
            var (code, _, stderr) = Run([.. command, "--init-from", FineTuneFixtures.Init, "--data", path, "--out", _temp.File("x.gguf")]);
            output.WriteLine(stderr.Trim());
            Assert.Equal(1, code);
            Assert.Contains($"{path} line 2: expected string fields \"prompt\", \"chosen\" and \"rejected\" (\"rejected\" is missing", stderr);
            Assert.Single(stderr.Trim().Split('\n'));
        }
    }
}
