using System.Diagnostics;
using Xunit.Abstractions;

namespace NextToken.Tests;

/// <summary>
/// The CLI as a user runs it, on inputs a fuzzing campaign found: numeric flags that are NaN,
/// ±Infinity or out of range fail with the flag's name; a prompt beyond the context and a hostile
/// chat template fail with one line; and every command's human-readable (table) output runs on
/// the fixture models without a Spectre markup error.
/// </summary>
public class CliHardeningTests(ITestOutputHelper output) : IDisposable
{
    private static readonly string Gpt2Tiny = Fixtures.Model("gpt2-tiny.f32.gguf");
    private readonly TempDir _temp = new();

    public void Dispose() => _temp.Dispose();

    private static (int ExitCode, string Stdout, string Stderr) Run(params string[] args) => CliTests.RunWith(null, null, args);

    public static TheoryData<string[], string> BadNumbers => new()
    {
        { ["generate", "-m", Gpt2Tiny, "-p", "hi", "--logit-bias", "1=NaN"], "--logit-bias '1=NaN': the bias must be a finite number or -inf" },
        { ["generate", "-m", Gpt2Tiny, "-p", "hi", "--logit-bias", "1=inf"], "--logit-bias '1=inf': the bias must be a finite number or -inf" },
        { ["generate", "-m", Gpt2Tiny, "-p", "hi", "--logit-bias", "-3=-inf"], "--logit-bias '-3=-inf': token id -3 is negative" },
        { ["generate", "-m", Gpt2Tiny, "-p", "hi", "--temperature", "NaN"], "--temperature must be a finite number, not NaN" },
        { ["generate", "-m", Gpt2Tiny, "-p", "hi", "--temperature", "Infinity"], "--temperature must be a finite number, not Infinity" },
        { ["generate", "-m", Gpt2Tiny, "-p", "hi", "--temperature", "-1"], "--temperature must be 0 or more, not -1" },
        { ["generate", "-m", Gpt2Tiny, "-p", "hi", "--top-p", "NaN"], "--top-p must be a finite number, not NaN" },
        { ["generate", "-m", Gpt2Tiny, "-p", "hi", "--top-p", "0"], "--top-p must be in (0, 1] (1 = off), not 0" },
        { ["generate", "-m", Gpt2Tiny, "-p", "hi", "--min-p", "2"], "--min-p must be in [0, 1], not 2" },
        { ["generate", "-m", Gpt2Tiny, "-p", "hi", "--typical-p", "-Infinity"], "--typical-p must be a finite number, not -Infinity" },
        { ["generate", "-m", Gpt2Tiny, "-p", "hi", "--repeat-penalty", "Infinity"], "--repeat-penalty must be a finite number, not Infinity" },
        { ["generate", "-m", Gpt2Tiny, "-p", "hi", "--repeat-penalty", "0"], "--repeat-penalty must be above 0 (1 = off), not 0" },
        { ["generate", "-m", Gpt2Tiny, "-p", "hi", "--top-p", "1.5"], "--top-p must be in (0, 1] (1 = off), not 1.5" },
        { ["generate", "-m", Gpt2Tiny, "-p", "hi", "--presence-penalty", "NaN"], "--presence-penalty must be a finite number, not NaN" },
        { ["generate", "-m", Gpt2Tiny, "-p", "hi", "--frequency-penalty", "-Infinity"], "--frequency-penalty must be a finite number" },
        { ["generate", "-m", Gpt2Tiny, "-p", "hi", "--top-k", "-1"], "--top-k must be at least 0, not -1" },
        { ["generate", "-m", Gpt2Tiny, "-p", "hi", "--penalty-last-n", "-1"], "--penalty-last-n must be at least 0, not -1" },
        { ["generate", "-m", Gpt2Tiny, "-p", "hi", "--max-tokens", "-5"], "--max-tokens must be at least 0, not -5" },
        { ["next", "-m", Gpt2Tiny, "-p", "hi", "--explain", "--temperature", "NaN"], "--temperature must be a finite number, not NaN" },
        { ["steer", "-m", Gpt2Tiny, "-p", "hi", "--add", " wedding", "--sub", " ", "--coeff", "Infinity"], "--coeff must be a finite number, not Infinity" },
        { ["steer", "-m", Gpt2Tiny, "-p", "hi", "--add", " wedding", "--sub", " ", "--coeff", "NaN"], "--coeff must be a finite number, not NaN" },
        { ["steer", "-m", Gpt2Tiny, "-p", "hi", "--add", " wedding", "--sub", " ", "--sweep", "--coeffs", "1,-Infinity"], "--coeffs must be a finite number, not -Infinity" },
        { ["steer", "-m", Gpt2Tiny, "-p", "hi", "--add", " wedding", "--sub", " ", "--temperature", "Infinity"], "--temperature must be a finite number" },
        { ["drift", "-m", Gpt2Tiny, "-s", "Be brief.", "--synthetic", "1000000000"], "--synthetic must be from 1 to 100000, not 1000000000" },
        { ["bench", "-m", Gpt2Tiny, "--prompt-tokens", "0"], "--prompt-tokens must be from 1 to 128, not 0" },
        { ["bench", "-m", Gpt2Tiny, "--gen-tokens", "-1"], "--gen-tokens must be from 1 to 128, not -1" },
        { ["bench", "-m", Gpt2Tiny, "--depth", "100", "--prompt-tokens", "16", "--gen-tokens", "16"], "--depth 100 + --prompt-tokens 16 + --gen-tokens 16 = 132 positions: more than the model's trained context, 128" },
        { ["bench", "-m", Gpt2Tiny, "--depth", "-3"], "--depth must be from 0 to 128, not -3" },
        { ["synth", "--arch", "llama", "--ctx", "0", "-o", "/tmp/nexttoken-never-written.gguf"], "--ctx must be from 1 to 1048576, not 0" },
    };

    [Theory]
    [MemberData(nameof(BadNumbers))]
    public void NumericFlags_NaNInfinityOrOutOfRange_FailNamingTheFlag(string[] args, string expected)
    {
        var (code, _, stderr) = Run(args);
        output.WriteLine(stderr.Trim());
        Assert.Equal(1, code);
        Assert.Contains(expected, stderr);
        Assert.Single(stderr.Trim().Split('\n'));
    }

    [Fact]
    public void Lens_PromptBeyondTheContext_SaysSoInOneLine()
    {
        // 120,000 bytes of prompt: its [positions × vocabulary] logits overflowed an int before.
        string prompt = string.Concat(Enumerable.Repeat("The cat sat on the mat. ", 5000));
        var (code, _, stderr) = Run("lens", "-m", Gpt2Tiny, "-p", prompt);
        output.WriteLine(stderr.Trim());
        Assert.Equal(1, code);
        Assert.Contains("the prompt has 35,001 tokens; the model's context length is 128", stderr);
        Assert.DoesNotContain("overflow", stderr);
    }

    /// <summary>The fixtures' GPT-2 checkpoint (linked) with a tokenizer_config.json carrying the given chat template.</summary>
    private string CheckpointWithTemplate(string template)
    {
        string dir = Directory.CreateDirectory(_temp.File("ckpt")).FullName, source = Fixtures.Model("gpt2-tiny-hf");
        foreach (string name in new[] { "config.json", "model.safetensors", "vocab.json", "merges.txt" })
            File.CreateSymbolicLink(Path.Combine(dir, name), Path.Combine(source, name));
        File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"), System.Text.Json.JsonSerializer.Serialize(new Dictionary<string, string> { ["chat_template"] = template }));
        return dir;
    }

    [Theory]
    [InlineData("drift", "{% for i in range(1000000000) %}x{% endfor %}", "range(1000000000) has 1000000000 items")]
    [InlineData("drift", "{% for m in messages %}\n{{ m.content * 1000000000000 }}{% endfor %}", "exceeds the limit (template line 2)")]
    [InlineData("compare", "{{ 1 / 0 }}", "division by zero (template line 1)")]
    public void HostileChatTemplate_FailsInOneLineWithinSeconds(string command, string template, string expected)
    {
        string dir = CheckpointWithTemplate(template);
        string[] args = command == "drift"
            ? ["drift", "-m", dir, "-s", "Be brief.", "--synthetic", "2"]
            : ["compare", "-m", dir, "-p", "hi", "--system-b", "Be brief."];
        var clock = Stopwatch.StartNew();
        var (code, _, stderr) = Run(args);
        output.WriteLine($"{stderr.Trim()} [{clock.ElapsedMilliseconds} ms]");
        Assert.Equal(1, code);
        Assert.Contains(expected, stderr.Replace("exceeds the limit of 16,777,216", "exceeds the limit", StringComparison.Ordinal));
        Assert.Single(stderr.Trim().Split('\n'));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(60));
    }

    /// <summary>Every command once without --json, as the README shows it.</summary>
    public static TheoryData<string, string[]> HumanCommands()
    {
        string moe = Fixtures.Model("moe-tiny.f32.gguf");
        return new()
        {
            { "info", ["info", "-m", Gpt2Tiny] },
            { "tokenize", ["tokenize", "-m", Gpt2Tiny, "--text", "Understanding [bold] tokenization [/]"] },
            { "next", ["next", "-m", Gpt2Tiny, "-p", "The cat sat on the [red]", "--top", "10"] },
            { "next --explain", ["next", "-m", Gpt2Tiny, "-p", "The cat sat on the", "--explain", "--seed", "1"] },
            { "next --show-routing", ["next", "-m", moe, "-p", "The cat sat", "--show-routing"] },
            { "generate", ["generate", "-m", Gpt2Tiny, "-p", "The cat sat on the", "-n", "8", "--seed", "1", "--runs", "2"] },
            { "generate --explain", ["generate", "-m", Gpt2Tiny, "-p", "The cat", "-n", "3", "--seed", "1", "--explain"] },
            { "compare", ["compare", "-m", Gpt2Tiny, "-p", "Write a short paragraph about Kafka vs RabbitMQ", "--system-b", "You are a senior architect. [Be direct.]"] },
            { "lens", ["lens", "-m", Gpt2Tiny, "-p", "The capital of France is"] },
            { "attention", ["attention", "-m", Gpt2Tiny, "-p", "The cat sat on the mat", "--layer", "1"] },
            { "drift", ["drift", "-m", Gpt2Tiny, "-s", "Be direct.", "--synthetic", "2", "--reanchor", "2"] },
            { "steer", ["steer", "-m", Gpt2Tiny, "-p", "I went up to my friend and said", "--add", " wedding", "--sub", " ", "--layer", "1", "--runs", "2", "-n", "5", "--seed", "1"] },
            { "steer --sweep", ["steer", "-m", Gpt2Tiny, "-p", "I went up to my friend and said", "--add", " wedding", "--sub", " ", "--sweep", "--coeffs", "1,4"] },
            { "routing", ["routing", "-m", moe, "-p", "The cat sat", "--system", "Be brief."] },
            { "bench", ["bench", "-m", Gpt2Tiny, "--prompt-tokens", "8", "--gen-tokens", "4", "-r", "1"] },
        };
    }

    [Theory]
    [MemberData(nameof(HumanCommands))]
    public void HumanOutput_EveryCommand_RunsWithoutMarkupErrors(string name, string[] args)
    {
        var (code, stdout, stderr) = Run(args);
        AssertHumanOutput(name, code, stdout, stderr);
    }

    [Fact]
    public void HumanOutput_MapTemplateChatSynthModels_RunWithoutMarkupErrors()
    {
        string prompts = _temp.File("prompts.txt"), messages = _temp.File("messages.json");
        File.WriteAllLines(prompts, ["The cat sat on the mat", "def f(x): return [x]", "The party of the first part"]);
        File.WriteAllText(messages, "[{\"role\": \"user\", \"content\": \"Hi [bold]\"}]");
        var map = Run("map", "-m", Gpt2Tiny, "--prompts", prompts, "--layer", "1");
        AssertHumanOutput("map", map.ExitCode, map.Stdout, map.Stderr);
        var template = Run("template", "--model", Fixtures.Vocab("ggml-vocab-phi-3.gguf"), "--messages", messages);
        AssertHumanOutput("template", template.ExitCode, template.Stdout, template.Stderr);
        var chat = CliTests.RunWith("Hello there [x]\n/temp 0\nAgain\n/quit\n", null, "chat", "-m", Gpt2Tiny, "-s", "Be [b]direct[/b].", "-n", "4");
        AssertHumanOutput("chat", chat.ExitCode, chat.Stdout, chat.Stderr);
        var synth = Run("synth", "--arch", "gpt2", "--size", "124M", "--type", "q4_0", "-o", _temp.File("s.gguf"), "--from-vocab", Fixtures.Vocab("ggml-vocab-gpt-2.gguf"));
        AssertHumanOutput("synth", synth.ExitCode, synth.Stdout, synth.Stderr);
        var models = CliTests.RunWith(null, new Dictionary<string, string> { ["HF_HOME"] = _temp.Path, ["HF_HUB_OFFLINE"] = "1" }, "models");
        AssertHumanOutput("models", models.ExitCode, models.Stdout, models.Stderr);
    }

    private void AssertHumanOutput(string name, int code, string stdout, string stderr)
    {
        output.WriteLine($"{name}: exit {code}, {stdout.Length} characters of output{(stderr.Length > 0 ? ", stderr: " + stderr.Trim() : "")}");
        Assert.True(code == 0, $"{name}: exit {code}: {stderr}");
        Assert.DoesNotContain("Could not find color or style", stdout + stderr);
        Assert.DoesNotContain("Exception", stdout + stderr);
        Assert.False(string.IsNullOrWhiteSpace(stdout), $"{name}: no output");
    }
}
