using System.Text.Json;
using Xunit.Abstractions;

namespace NextToken.Tests;

/// <summary><c>nexttoken prefer</c>: candidates from the generator, scores, DPO on best vs worst, log-probabilities before and after.</summary>
public class TrainingPreferTests(ITestOutputHelper output) : IDisposable
{
    private readonly TempDir _temp = new();

    public void Dispose() => _temp.Dispose();

    private static (int ExitCode, string Stdout, string Stderr) Run(params string[] args) => CliTests.RunWith(null, null, args);

    private static readonly string[] Sampling = ["--temperature", "1", "--top-k", "40", "--max-tokens", "8", "--seed", "5"];

    [Fact]
    public void Prefer_ByRule_RaisesTheChosenCandidatesLogProbability()
    {
        var (code, stdout, stderr) = Run(["prefer", "--init-from", FineTuneFixtures.Init, "-p", "The king", "-p", "My lord", "-n", "4", "--score", "length",
                                          "--lr", "1e-3", "--max-iters", "10", "--threads", "1", "--out", _temp.File("pref.gguf"), "--json", .. Sampling]);
        Assert.True(code == 0, stderr);
        JsonElement root = JsonDocument.Parse(stdout).RootElement;
        foreach (JsonElement prompt in root.GetProperty("prompts").EnumerateArray())
        {
            JsonElement[] candidates = [.. prompt.GetProperty("candidates").EnumerateArray()];
            Assert.Equal(4, candidates.Length);
            foreach (JsonElement c in candidates)
                output.WriteLine($"{prompt.GetProperty("prompt").GetString()} #{c.GetProperty("index")} seed {c.GetProperty("seed")} score {c.GetProperty("score")} " +
                                 $"log p {c.GetProperty("logp_before").GetDouble():F3} → {c.GetProperty("logp_after").GetDouble():F3} {c.GetProperty("role").GetString()} '{c.GetProperty("text").GetString()}'");
            JsonElement best = candidates.Single(c => c.GetProperty("role").GetString() == "best"), worst = candidates.Single(c => c.GetProperty("role").GetString() == "worst");
            // The rule: length in characters; best is the longest, worst the shortest.
            Assert.Equal(candidates.Max(c => c.GetProperty("text").GetString()!.Length), best.GetProperty("score").GetDouble());
            Assert.Equal(best.GetProperty("text").GetString()!.Length, best.GetProperty("score").GetDouble());
            Assert.Equal(candidates.Min(c => c.GetProperty("score").GetDouble()), worst.GetProperty("score").GetDouble());
            Assert.True(best.GetProperty("logp_after").GetDouble() > best.GetProperty("logp_before").GetDouble() + 1, "the chosen candidate's log-probability rises");
            Assert.True(worst.GetProperty("logp_after").GetDouble() < worst.GetProperty("logp_before").GetDouble(), "the rejected candidate's falls");

            // Candidates are the library generator's: the same text as 'generate' with that seed, and
            // log p before is the engine's (the inference path, not the trainer's).
            JsonElement second = candidates[1];
            var (g, gOut, gErr) = Run(["generate", "--model", FineTuneFixtures.Init, "--prompt", prompt.GetProperty("prompt").GetString()!, "--json", .. Sampling[..^1], second.GetProperty("seed").ToString()]);
            Assert.True(g == 0, gErr);
            Assert.Equal(JsonDocument.Parse(gOut).RootElement.GetProperty("text").GetString(), second.GetProperty("text").GetString());
            int[] promptTokens = FineTuneFixtures.InitTokenizer().Encode(prompt.GetProperty("prompt").GetString()!).Ids;
            int[] candidateTokens = [.. best.GetProperty("tokens").EnumerateArray().Select(t => t.GetInt32())];
            double engine = FineTuneFixtures.EngineLogProbs(FineTuneFixtures.Init, [.. promptTokens, .. candidateTokens])[(promptTokens.Length - 1)..].Sum();
            output.WriteLine($"best's log p before {best.GetProperty("logp_before").GetDouble():G9}, engine {engine:G9}, |diff| {Math.Abs(engine - best.GetProperty("logp_before").GetDouble()):E2}");
            Assert.True(Math.Abs(engine - best.GetProperty("logp_before").GetDouble()) <= 1e-3);
        }
        double[] losses = [.. root.GetProperty("steps").EnumerateArray().Select(s => s.GetProperty("loss").GetDouble())];
        Assert.True(Math.Abs(losses[0] - Math.Log(2)) <= 1e-6);
    }

    [Fact]
    public void Prefer_ByRewardModel_ScoresAsRewardScore()
    {
        string pairs = _temp.File("pairs.jsonl"), rm = _temp.File("rm.gguf");
        FineTuneFixtures.WriteLines(pairs, new { prompt = "The king", chosen = "is dead, long live the king.", rejected = "no" },
                                           new { prompt = "The king", chosen = "shall speak to his lords today.", rejected = "yes" });
        var (c0, _, e0) = Run("reward", "train", "--init-from", FineTuneFixtures.Init, "--data", pairs, "--max-iters", "5", "--lr", "1e-3", "--out", rm, "--threads", "1", "--json");
        Assert.True(c0 == 0, e0);
        var (code, stdout, stderr) = Run(["prefer", "--init-from", FineTuneFixtures.Init, "-p", "The king", "-n", "3", "--reward-model", rm,
                                          "--lr", "1e-3", "--max-iters", "5", "--threads", "1", "--out", _temp.File("pref.gguf"), "--json", .. Sampling]);
        Assert.True(code == 0, stderr);
        JsonElement[] candidates = [.. JsonDocument.Parse(stdout).RootElement.GetProperty("prompts")[0].GetProperty("candidates").EnumerateArray()];
        string[] scoreArgs = ["reward", "score", "--model", rm, "--prompt", "The king", "--json", "--threads", "1", .. candidates.SelectMany(c => new[] { "-r", c.GetProperty("text").GetString()! })];
        var (sc, so, se) = Run(scoreArgs);
        Assert.True(sc == 0, se);
        double[] expected = [.. JsonDocument.Parse(so).RootElement.GetProperty("responses").EnumerateArray().Select(r => r.GetProperty("reward").GetDouble())];
        for (int i = 0; i < candidates.Length; i++)
        {
            output.WriteLine($"candidate {i + 1}: prefer's score {candidates[i].GetProperty("score").GetDouble():G9}, reward score {expected[i]:G9}");
            Assert.Equal(expected[i], candidates[i].GetProperty("score").GetDouble(), 9);
        }
    }

    [Theory]
    [InlineData(new[] { "--score", "bogus" }, "--score 'bogus': expected length, short, contains:TEXT")]
    [InlineData(new[] { "--score", "contains:" }, "nothing after the colon")]
    [InlineData(new string[0], "give exactly one of --reward-model FILE and --score RULE")]
    [InlineData(new[] { "--score", "contains:zzzzzz" }, "every prompt's candidates scored the same")]
    public void Prefer_BadScoring_FailsWithOneLine(string[] scoring, string expected)
    {
        var (code, _, stderr) = Run(["prefer", "--init-from", FineTuneFixtures.Init, "-p", "The king", "-n", "2", "--out", _temp.File("x.gguf"), "--threads", "1", .. Sampling, .. scoring]);
        output.WriteLine(stderr.Trim());
        Assert.Equal(1, code);
        Assert.Contains(expected, stderr);
        Assert.Single(stderr.Trim().Split('\n'));
    }
}
