using System.Diagnostics;
using System.Text.Json;

namespace NextToken.Tests;

/// <summary>The <c>nexttoken</c> command as a user runs it: a separate process, its output and exit code.</summary>
public class CliTests : IDisposable
{
    private static readonly string Gpt2Tiny = Fixtures.Model("gpt2-tiny.f32.gguf");
    private readonly TempDir _temp = new();

    public void Dispose() => _temp.Dispose();

    private static (int ExitCode, string Stdout, string Stderr) Run(params string[] args) => RunWithInput(null, args);

    private static (int ExitCode, string Stdout, string Stderr) RunWithInput(string? input, params string[] args) => RunWith(input, null, args);

    internal static (int ExitCode, string Stdout, string Stderr) RunWith(string? input, Dictionary<string, string>? environment, params string[] args)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false };
        foreach (var (key, value) in environment ?? []) start.Environment[key] = value;
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "NextToken.Cli.dll"));
        foreach (string a in args) start.ArgumentList.Add(a);
        using Process process = Process.Start(start)!;
        if (input is not null) process.StandardInput.Write(input);
        process.StandardInput.Close();
        Task<string> stdout = process.StandardOutput.ReadToEndAsync();
        Task<string> stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(120_000))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException("nexttoken did not finish in 120 s: " + string.Join(' ', args));
        }
        return (process.ExitCode, stdout.Result, stderr.Result);
    }

    [Fact]
    public void Next_Json_MatchesReferenceForTheCatPrompt()
    {
        ExpectedCase expected = ExpectedOutputs.Load("gpt2-tiny.f32").Single(c => c.Name == "cat");
        var (code, stdout, stderr) = Run("next", "--model", Gpt2Tiny, "--tokens", string.Join(',', expected.Tokens), "--top", "5", "--json");
        Assert.True(code == 0, stderr);
        using var doc = JsonDocument.Parse(stdout);
        JsonElement root = doc.RootElement;
        Assert.Equal(expected.Tokens, root.GetProperty("tokens").EnumerateArray().Select(e => e.GetInt32()));
        Assert.Equal(50257, root.GetProperty("vocab_size").GetInt32());
        ExpectedPosition last = expected.Positions[^1];
        Assert.True(Tolerance.Within(root.GetProperty("logsumexp").GetDouble(), last.LogSumExp));
        JsonElement[] top = root.GetProperty("top").EnumerateArray().ToArray();
        Assert.Equal(5, top.Length);
        Assert.Equal(last.Top[0].Id, top[0].GetProperty("id").GetInt32());
        Assert.Equal(1, top[0].GetProperty("rank").GetInt32());
        Assert.True(top[0].GetProperty("prob").GetDouble() >= top[1].GetProperty("prob").GetDouble());
        Assert.True(root.GetProperty("entropy").GetDouble() > 0);
    }

    [Fact]
    public void Next_ShowRoutingJson_MatchesReferenceRoutingOfMoeModel()
    {
        using var doc0 = JsonDocument.Parse(File.ReadAllText(Fixtures.Expected("moe-tiny.f32.json")));
        JsonElement expected = doc0.RootElement.GetProperty("cases")[0];
        string tokens = string.Join(',', expected.GetProperty("tokens").EnumerateArray().Select(e => e.GetInt32()));
        var (code, stdout, stderr) = Run("next", "-m", Fixtures.Model("moe-tiny.f32.gguf"), "--tokens", tokens, "--show-routing", "--json");
        Assert.True(code == 0, stderr);
        using var doc = JsonDocument.Parse(stdout);
        JsonElement[] routing = doc.RootElement.GetProperty("routing").EnumerateArray().ToArray();
        JsonElement layer1 = expected.GetProperty("routing")[1];
        int position = 3;
        JsonElement ours = routing.Single(r => r.GetProperty("layer").GetInt32() == 1 && r.GetProperty("position").GetInt32() == position);
        Assert.Equal(layer1.GetProperty("experts")[position].EnumerateArray().Select(e => e.GetInt32()),
            ours.GetProperty("experts").EnumerateArray().Select(e => e.GetInt32()));
    }

    [Fact]
    public void Next_Q8Activations_RunsTheFastPathWithinItsTolerance()
    {
        ExpectedCase expected = ExpectedOutputs.Load("gpt2-tiny.q8_0").Single(c => c.Name == "cat");
        var (code, stdout, stderr) = Run("next", "-m", Fixtures.Model("gpt2-tiny.q8_0.gguf"), "--tokens", string.Join(',', expected.Tokens), "--q8-activations", "--json");
        Assert.True(code == 0, stderr);
        using var doc = JsonDocument.Parse(stdout);
        double logsumexp = doc.RootElement.GetProperty("logsumexp").GetDouble();
        Assert.InRange(logsumexp, expected.Positions[^1].LogSumExp * 0.97, expected.Positions[^1].LogSumExp * 1.03);
    }

    [Fact]
    public void Next_Text_ShowsRankedTableAndRemainingMass()
    {
        var (code, stdout, stderr) = Run("next", "--model", Gpt2Tiny, "--prompt", "The cat sat on the", "--top", "3");
        Assert.True(code == 0, stderr);
        Assert.Contains("50,257", stdout);
        Assert.Contains("␣cat", stdout);
        Assert.Contains("50,254 more entries", stdout);
    }

    [Fact]
    public void Next_DumpLogits_WritesTheFullRow()
    {
        ExpectedCase expected = ExpectedOutputs.Load("gpt2-tiny.f32").Single(c => c.Name == "kafka");
        string dump = _temp.File("logits.f32");
        var (code, _, stderr) = Run("next", "-m", Gpt2Tiny, "--tokens", string.Join(',', expected.Tokens), "--dump-logits", dump, "--json");
        Assert.True(code == 0, stderr);
        float[] written = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(File.ReadAllBytes(dump)).ToArray();
        float[] reference = expected.ReadLastLogits();
        Assert.Equal(reference.Length, written.Length);
        for (int i = 0; i < written.Length; i++) Assert.True(Tolerance.Within(written[i], reference[i]));
    }

    [Fact]
    public void Generate_GreedyJson_MatchesReferenceContinuation()
    {
        ExpectedCase expected = ExpectedOutputs.Load("gpt2-tiny.f32").Single(c => c.Name == "system");
        var (code, stdout, stderr) = Run("generate", "-m", Gpt2Tiny, "--tokens", string.Join(',', expected.Tokens),
            "--max-tokens", "12", "--temperature", "0", "--ignore-eos", "--json");
        Assert.True(code == 0, stderr);
        using var doc = JsonDocument.Parse(stdout);
        Assert.Equal(expected.GreedyNext12, doc.RootElement.GetProperty("tokens").EnumerateArray().Select(e => e.GetInt32()));
        Assert.False(string.IsNullOrEmpty(doc.RootElement.GetProperty("text").GetString()));
    }

    [Fact]
    public void Generate_Runs_SameSeedReplaysAndReportsDepartures()
    {
        string[] args = ["generate", "-m", Gpt2Tiny, "--tokens", "464,3797", "-n", "8", "--temperature", "1.5", "--top-k", "0", "--runs", "3", "--seed", "9", "--json"];
        var (code, stdout, stderr) = Run(args);
        Assert.True(code == 0, stderr);
        using var doc = JsonDocument.Parse(stdout);
        JsonElement[] runs = doc.RootElement.GetProperty("runs").EnumerateArray().ToArray();
        Assert.Equal([9UL, 10UL, 11UL], runs.Select(r => r.GetProperty("seed").GetUInt64()));
        Assert.Equal(-1, doc.RootElement.GetProperty("departs_at")[0].GetInt32());
        var again = Run(args);
        Assert.Equal(stdout, again.Stdout);
    }

    [Fact]
    public void Next_ExplainJson_ReportsEveryStageAndTheDraw()
    {
        var (code, stdout, stderr) = Run("next", "-m", Gpt2Tiny, "--tokens", "464,3797", "--explain", "--temperature", "0.2", "--top-k", "40", "--seed", "3", "--json");
        Assert.True(code == 0, stderr);
        using var doc = JsonDocument.Parse(stdout);
        JsonElement roll = doc.RootElement.GetProperty("explain");
        Assert.Equal(3UL, roll.GetProperty("seed").GetUInt64());
        string[] stages = roll.GetProperty("stages").EnumerateArray().Select(s => s.GetProperty("stage").GetString()!).ToArray();
        Assert.Equal(["top-k 40", "top-p 0.95", "min-p 0.05", "temperature 0.2"], stages);
        Assert.Equal(40, roll.GetProperty("stages")[0].GetProperty("candidates_after").GetInt32());
        Assert.InRange(roll.GetProperty("random").GetDouble(), 0, 1);
        Assert.True(roll.GetProperty("chosen_rank").GetInt32() >= 1);
    }

    [Fact]
    public void Template_FixtureCase_PrintsTheRenderedPromptExactly()
    {
        using var cases = JsonDocument.Parse(File.ReadAllText(Fixtures.Path("chat-templates", "cases.json")));
        JsonElement llama3 = cases.RootElement.GetProperty("cases").EnumerateArray().Single(c => c.GetProperty("name").GetString() == "meta-llama-Llama-3.1-8B-Instruct");
        string templatePath = _temp.File("template.jinja"), messagesPath = _temp.File("messages.json");
        File.WriteAllText(templatePath, llama3.GetProperty("template").GetString());
        File.WriteAllText(messagesPath, cases.RootElement.GetProperty("messages").GetRawText());
        var (code, stdout, stderr) = Run("template", "--template-file", templatePath, "--messages", messagesPath,
            "--bos-token", llama3.GetProperty("bos_token").GetString()!, "--eos-token", llama3.GetProperty("eos_token").GetString()!,
            "--date", cases.RootElement.GetProperty("date").GetString()!);
        Assert.True(code == 0, stderr);
        Assert.Equal(llama3.GetProperty("expected").GetString(), stdout);
    }

    [Fact]
    public void Template_ModelWithTemplate_UsesItsOwnAndItsBosToken()
    {
        string messagesPath = _temp.File("messages.json");
        File.WriteAllText(messagesPath, "[{\"role\": \"user\", \"content\": \"Hi\"}]");
        var (code, stdout, stderr) = Run("template", "--model", Fixtures.Vocab("ggml-vocab-phi-3.gguf"), "--messages", messagesPath);
        Assert.True(code == 0, stderr);
        Assert.Equal("<s><|user|>\nHi<|end|>\n<|assistant|>\n", stdout);
    }

    [Fact]
    public void Chat_TwoTurnsFromStdin_ReusesTheCacheAndQuits()
    {
        var (code, stdout, stderr) = RunWithInput("Hello there\n/temp 0\nAnd now?\n/quit\n",
            "chat", "-m", Gpt2Tiny, "--system", "Be direct.", "-n", "6", "--seed", "1");
        Assert.True(code == 0, stderr);
        Assert.Equal(2, stdout.Split("assistant>").Length - 1);
        Assert.Contains("greedy (temperature 0)", stdout);
        Assert.Matches(@"\(6 tokens; [1-9]\d* of \d+ prompt tokens reused from the cache\)", stdout);
    }

    [Theory]
    [InlineData("lens", "png")]
    [InlineData("attention", "png")]
    [InlineData("drift", "png")]
    [InlineData("map", "png")]
    [InlineData("attention", "svg")]
    public void Plot_WritesANonBlankImage(string command, string extension)
    {
        string plot = _temp.File($"{command}.{extension}");
        string prompts = _temp.File("prompts.txt");
        File.WriteAllLines(prompts, ["int main() { return 0; }", "The party of the first part agrees to pay."]);
        string[] args = command switch
        {
            "lens" => ["lens", "-m", Gpt2Tiny, "-p", "The capital of France is"],
            "attention" => ["attention", "-m", Gpt2Tiny, "-p", "The cat sat on the mat", "--layer", "1"],
            "drift" => ["drift", "-m", Gpt2Tiny, "-s", "You are a pirate.", "--synthetic", "2", "--reanchor", "2"],
            _ => ["map", "-m", Gpt2Tiny, "--prompts", prompts, "--layer", "1"],
        };
        var (code, _, stderr) = Run([.. args, "--plot", plot]);
        Assert.True(code == 0, stderr);
        Assert.True(new FileInfo(plot).Length > 1000, $"{plot} is nearly empty");
        if (extension == "svg")
        {
            Assert.Contains("<svg", File.ReadAllText(plot));
            return;
        }
        using var bitmap = SkiaSharp.SKBitmap.Decode(plot);
        Assert.True(bitmap.Width >= 400 && bitmap.Height >= 300, $"{bitmap.Width}×{bitmap.Height}");
        var colors = new HashSet<uint>();
        for (int y = 0; y < bitmap.Height; y += 3)
            for (int x = 0; x < bitmap.Width; x += 3)
                colors.Add((uint)bitmap.GetPixel(x, y));
        Assert.True(colors.Count > 20, $"only {colors.Count} distinct colours: the picture is blank");
    }

    [Fact]
    public void Compare_Json_ReportsDivergencesAndRanks()
    {
        var (code, stdout, stderr) = Run("compare", "-m", Gpt2Tiny, "-p", "Write a short paragraph about Kafka vs RabbitMQ",
            "--system-b", "You are a senior distributed systems architect. Be direct.", "--top", "5", "--json");
        Assert.True(code == 0, stderr);
        using var doc = JsonDocument.Parse(stdout);
        JsonElement root = doc.RootElement;
        Assert.True(root.GetProperty("kl_ab").GetDouble() > 0);
        Assert.Equal(5, root.GetProperty("top_b").GetArrayLength());
        Assert.Equal(1, root.GetProperty("top_b")[0].GetProperty("rank_b").GetInt32());
        Assert.Equal(5 - root.GetProperty("top_k_overlap").GetInt32(), root.GetProperty("new_in_top_k").GetArrayLength());
    }

    [Fact]
    public void Steer_CoefficientZero_GivesTheUnsteeredText_AndSweepCoversLayersTimesCoefficients()
    {
        var (code, stdout, stderr) = Run("steer", "-m", Gpt2Tiny, "-p", "I went up to my friend and said", "--add", " wedding", "--sub", " ",
            "--layer", "1", "--coeff", "0", "--runs", "2", "-n", "8", "--seed", "5", "--json");
        Assert.True(code == 0, stderr);
        using var doc = JsonDocument.Parse(stdout);
        foreach (JsonElement run in doc.RootElement.GetProperty("runs").EnumerateArray())
            Assert.Equal(run.GetProperty("unsteered").GetString(), run.GetProperty("steered").GetString());
        var sweep = Run("steer", "-m", Gpt2Tiny, "-p", "I went up to my friend and said", "--add", " wedding", "--sub", " ", "--sweep", "--coeffs", "1,4", "--json");
        Assert.True(sweep.ExitCode == 0, sweep.Stderr);
        using var sweepDoc = JsonDocument.Parse(sweep.Stdout);
        JsonElement[] rows = sweepDoc.RootElement.GetProperty("sweep").EnumerateArray().ToArray();
        Assert.Equal(2 * 2, rows.Length);
        Assert.True(rows.Single(r => r.GetProperty("layer").GetInt32() == 0 && r.GetProperty("coeff").GetDouble() == 4).GetProperty("kl_to_unsteered").GetDouble() > 0);
    }

    [Fact]
    public void Routing_Json_HasEveryTokenAndLayer()
    {
        var (code, stdout, stderr) = Run("routing", "-m", Fixtures.Model("moe-tiny.f32.gguf"), "-p", "The cat sat", "--system", "Be brief.", "--json");
        Assert.True(code == 0, stderr);
        using var doc = JsonDocument.Parse(stdout);
        int tokens = doc.RootElement.GetProperty("tokens").GetArrayLength();
        Assert.Equal(tokens * 2, doc.RootElement.GetProperty("entries").GetArrayLength());
        Assert.Equal(JsonValueKind.Array, doc.RootElement.GetProperty("differences_with_system").ValueKind);
    }

    [Fact]
    public void Tokenize_Json_GivesIdsPiecesAndOffsets()
    {
        var (code, stdout, stderr) = Run("tokenize", "--model", Fixtures.Vocab("ggml-vocab-gpt-2.gguf"), "--text", "Hello world", "--json");
        Assert.True(code == 0, stderr);
        using var doc = JsonDocument.Parse(stdout);
        Assert.Equal([15496, 995], doc.RootElement.GetProperty("ids").EnumerateArray().Select(e => e.GetInt32()));
        Assert.Equal(["Hello", " world"], doc.RootElement.GetProperty("pieces").EnumerateArray().Select(e => e.GetString()));
        Assert.Equal([0, 5], doc.RootElement.GetProperty("offsets")[0].EnumerateArray().Select(e => e.GetInt32()));
        Assert.Equal([5, 11], doc.RootElement.GetProperty("offsets")[1].EnumerateArray().Select(e => e.GetInt32()));
    }

    [Fact]
    public void Tokenize_Jsonl_OneLinePerInputInOrder()
    {
        string input = _temp.File("in.jsonl");
        File.WriteAllLines(input, ["{\"text\": \"Hello world\"}", "{\"text\": \" Hello\"}", "{\"text\": \"\"}"]);
        var (code, stdout, stderr) = Run("tokenize", "--model", Fixtures.Vocab("ggml-vocab-gpt-2.gguf"), "--jsonl", input);
        Assert.True(code == 0, stderr);
        string[] lines = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(["{\"ids\":[15496,995]}", "{\"ids\":[18435]}", "{\"ids\":[]}"], lines);
    }

    [Fact]
    public void Info_Json_DescribesTheFile()
    {
        var (code, stdout, stderr) = Run("info", "--model", Gpt2Tiny, "--json");
        Assert.True(code == 0, stderr);
        using var doc = JsonDocument.Parse(stdout);
        Assert.Equal("gpt2", doc.RootElement.GetProperty("architecture").GetString());
        Assert.Equal(2, doc.RootElement.GetProperty("metadata").GetProperty("gpt2.block_count").GetInt32());
        Assert.Equal(29, doc.RootElement.GetProperty("tensors").GetArrayLength());
    }

    [Fact]
    public void Synth_UnknownSize_NamesTheKnownOnes()
    {
        var (code, _, stderr) = Run("synth", "--size", "7B", "-o", _temp.File("x.gguf"), "--from-vocab", Fixtures.Vocab("ggml-vocab-gpt-2.gguf"));
        Assert.Equal(1, code);
        Assert.Contains("unknown GPT-2 size '7B'; expected one of 124M", stderr);
    }

    public static TheoryData<string[], string> BadInputs => new()
    {
        { ["next", "--model", "/nonexistent/model.gguf", "--prompt", "x"], "file not found" },
        { ["next", "--model", Fixtures.Vocab("ggml-vocab-gpt-2.gguf") + ".out", "--prompt", "x"], "not a GGUF file" },
        { ["next", "--model", Gpt2Tiny, "--tokens", "1,50257"], "token id 50257 is out of range" },
        { ["next", "--model", Gpt2Tiny, "--tokens", "1,x"], "'x' is not a token id" },
        { ["next", "--model", Gpt2Tiny, "--tokens", string.Join(',', Enumerable.Repeat(11, 200))], "context length of 128" },
        { ["generate", "--model", Gpt2Tiny, "--prompt", "x", "--temperature", "-1"], "temperature must be 0 or more" },
        { ["generate", "--model", Gpt2Tiny, "--prompt", "x", "--mode", "yolo"], "--mode 'yolo' is not a preset" },
        { ["next", "--model", Gpt2Tiny, "--prompt", "x", "--explain", "--top-p", "1.5"], "top-p must be in (0, 1]" },
        { ["next", "--model", Gpt2Tiny], "no prompt" },
        { ["tokenize", "--model", Gpt2Tiny], "nothing to tokenize" },
        { ["next", "--model", Gpt2Tiny, "--prompt", "x", "--show-routing"], "no mixture-of-experts layers" },
        { ["lens", "--model", Gpt2Tiny, "--prompt", "x", "--plot", "/tmp/x.bmp"], "expected a .png or .svg" },
        { ["lens", "--model", Gpt2Tiny, "--prompt", "x", "--top", "0"], "--top must be at least 1" },
        { ["attention", "--model", Gpt2Tiny, "--prompt", "x", "--recent", "0"], "--recent must be at least 1" },
        { ["compare", "--model", Gpt2Tiny, "--prompt", "x", "--top", "0"], "--top must be at least 1" },
        { ["drift", "--model", Gpt2Tiny, "--system", "x", "--synthetic", "1", "--reanchor", "-1"], "--reanchor must be 0 (off) or more" },
        { ["steer", "--model", Gpt2Tiny, "--prompt", "x", "--add", "a", "--sub", "b", "--runs", "0"], "--runs must be at least 1" },
        { ["attention", "--model", Gpt2Tiny, "--prompt", "x", "--layer", "9"], "--layer 9: the model has layers 0 to 1" },
        { ["drift", "--model", Gpt2Tiny, "--system", "x"], "give --conversation FILE.jsonl or --synthetic N" },
        { ["steer", "--model", Gpt2Tiny, "--prompt", "x", "--add", "a", "--sub", "b", "--layer", "7"], "layer 7 does not exist" },
        { ["template", "--template", "klingon", "--messages", Fixtures.Path("chat-templates", "cases.json")], "unknown template 'klingon'; built-in templates: plain, chatml" },
        { ["tokenize", "--model", Fixtures.Vocab("ggml-vocab-bert-bge.gguf"), "--text", "x"], "'tokenizer.ggml.model' is \"bert\"" },
    };

    [Theory]
    [MemberData(nameof(BadInputs))]
    public void BadInput_PrintsOneLineAndExitsNonZero(string[] args, string expectedMessage)
    {
        var (code, _, stderr) = Run(args);
        Assert.Equal(1, code);
        Assert.Contains(expectedMessage, stderr);
        Assert.StartsWith("error: ", stderr);
        Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }

    [Fact]
    public void Bench_Json_ReportsEverySpeedKey()
    {
        var (code, stdout, stderr) = Run("bench", "--model", Gpt2Tiny, "--prompt-tokens", "16", "--gen-tokens", "4", "-r", "1", "--json");
        Assert.True(code == 0, stderr);
        using var doc = JsonDocument.Parse(stdout);
        foreach (string key in new[] { "prompt_tok_s", "gen_tok_s", "ms_per_token", "gb_s" })
            Assert.True(doc.RootElement.GetProperty(key).GetDouble() > 0, key);
        Assert.True(doc.RootElement.GetProperty("threads").GetInt32() >= 1);
    }

    [Fact]
    public void Bench_Depth_FillsTheContextBeforeTheClock()
    {
        // 96 + 16 + 8 = 120 of gpt2-tiny's 128 positions: only fits if the context is not over-allocated past its training.
        var (code, stdout, stderr) = Run("bench", "--model", Gpt2Tiny, "--depth", "96", "--prompt-tokens", "16", "--gen-tokens", "8", "-r", "1", "--json");
        Assert.True(code == 0, stderr);
        using var doc = JsonDocument.Parse(stdout);
        Assert.Equal(96, doc.RootElement.GetProperty("depth").GetInt32());
        Assert.True(doc.RootElement.GetProperty("gen_tok_s").GetDouble() > 0);
    }
}
