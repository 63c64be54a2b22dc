using System.Text.Json;
using NextToken.Generation;
using Xunit.Abstractions;

namespace NextToken.Tests;

/// <summary>
/// <c>nexttoken bench --llama-bench</c>: llama-bench's JSONL read as it prints it, its failures reported in one line, and (where a
/// llama.cpp build is named in <c>NEXTTOKEN_LLAMA_BENCH</c>; CI has none) a real side-by-side run.
/// </summary>
public class LlamaBenchTests(ITestOutputHelper output) : IDisposable
{
    /// <summary>What llama-bench c392e5094 (February 2025) printed for stories260K with <c>-p 16 -n 8 -t 2 -r 2 -o jsonl</c>, verbatim.</summary>
    private const string RealOutput = """
        {"build_commit": "c392e5094", "build_number": 4748, "cpu_info": "AMD EPYC", "gpu_info": "", "backends": "CPU", "model_filename": "/work/shared/fixtures/models/stories260K.gguf", "model_type": "llama ?B all F32 (guessed)", "model_size": 1171200, "model_n_params": 292800, "n_batch": 2048, "n_ubatch": 512, "n_threads": 2, "cpu_mask": "0x0", "cpu_strict": false, "poll": 50, "type_k": "f16", "type_v": "f16", "n_gpu_layers": 99, "split_mode": "layer", "main_gpu": 0, "no_kv_offload": false, "flash_attn": false, "tensor_split": "0.00", "use_mmap": true, "embeddings": false, "n_prompt": 16, "n_gen": 0, "test_time": "2026-12-04T04:42:16Z", "avg_ns": 796422985, "stddev_ns": 729080102, "avg_ts": 34.579101, "stddev_ts": 31.655207, "samples_ns": [ 1311960469, 280885502 ],"samples_ts": [ 12.1955, 56.9627 ]}
        {"build_commit": "c392e5094", "build_number": 4748, "cpu_info": "AMD EPYC", "gpu_info": "", "backends": "CPU", "model_filename": "/work/shared/fixtures/models/stories260K.gguf", "model_type": "llama ?B all F32 (guessed)", "model_size": 1171200, "model_n_params": 292800, "n_batch": 2048, "n_ubatch": 512, "n_threads": 2, "cpu_mask": "0x0", "cpu_strict": false, "poll": 50, "type_k": "f16", "type_v": "f16", "n_gpu_layers": 99, "split_mode": "layer", "main_gpu": 0, "no_kv_offload": false, "flash_attn": false, "tensor_split": "0.00", "use_mmap": true, "embeddings": false, "n_prompt": 0, "n_gen": 8, "test_time": "2026-12-04T04:42:19Z", "avg_ns": 111980748, "stddev_ns": 146971238, "avg_ts": 515.026951, "stddev_ts": 675.956798, "samples_ns": [ 8056390, 215905107 ],"samples_ts": [ 993.001, 37.0533 ]}

        """;

    private static readonly string Stories = Fixtures.Model("stories260K.gguf");
    private readonly TempDir _temp = new();

    public void Dispose() => _temp.Dispose();

    [Fact]
    public void Parse_RealOutput_TakesEachTestsBestSample()
    {
        LlamaBenchResult result = LlamaBench.Parse(RealOutput, "llama-bench");
        Assert.Equal(56.9627, result.PromptTokensPerSecond);
        Assert.Equal(993.001, result.GenerationTokensPerSecond);
        Assert.Equal("c392e5094", result.BuildCommit);
    }

    [Fact]
    public void Parse_WithoutSamples_TakesTheAverage()
    {
        LlamaBenchResult result = LlamaBench.Parse("""
            {"n_prompt": 128, "n_gen": 0, "avg_ts": 812.5}
            {"n_prompt": 0, "n_gen": 64, "avg_ts": 91.25}
            """, "llama-bench");
        Assert.Equal((812.5, 91.25, (string?)null), (result.PromptTokensPerSecond, result.GenerationTokensPerSecond, result.BuildCommit));
    }

    [Theory]
    [InlineData("""{"n_prompt": 128, "n_gen": 0, "avg_ts": 812.5}""", "no generation (n_prompt 0) test")]
    [InlineData("""{"n_prompt": 0, "n_gen": 64, "samples_ts": [90.0]}""", "no prompt (n_gen 0) test")]
    [InlineData("| model | size |", "line 1 of llama-bench's output is not a llama-bench JSON test")]
    [InlineData("""{"n_prompt": 128, "avg_ts": 812.5}""", "line 1 of llama-bench's output has no n_prompt and n_gen")]
    [InlineData("""{"n_prompt": 128, "n_gen": 0}""", "line 1 of llama-bench's output has neither samples_ts nor avg_ts")]
    [InlineData("""{"n_prompt": 128, "n_gen": 0, "samples_ts": [0.0]}""", "line 1 of llama-bench's output gives 0 tokens/s")]
    [InlineData("""{"n_prompt": "many", "n_gen": 0, "avg_ts": 1.0}""", "line 1 of llama-bench's output is not a llama-bench JSON test")]
    public void Parse_UnexpectedOutput_SaysWhatIsMissing(string jsonl, string expected)
    {
        var error = Assert.Throws<NextTokenException>(() => LlamaBench.Parse(jsonl, "llama-bench"));
        Assert.Contains(expected, error.Message);
    }

    [Fact]
    public void Bench_LlamaBenchMissing_FailsInOneLineBeforeLoading()
    {
        var (code, _, stderr) = CliTests.RunWith(null, null, "bench", "--model", Stories, "--llama-bench", _temp.File("llama-bench"), "-r", "1");
        Assert.Equal(1, code);
        Assert.StartsWith("error: --llama-bench: no file at", stderr);
        Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }

    [Fact]
    public void Bench_LlamaBenchNotExecutable_FailsInOneLine()
    {
        string notExecutable = _temp.File("llama-bench");
        File.WriteAllText(notExecutable, "not a program");
        AssertFailsInOneLine(notExecutable, "4", $"error: --llama-bench: '{notExecutable}' could not be run");
    }

    [SkippableFact]
    public void Bench_LlamaBenchFails_ReportsItsExitCode()
    {
        Skip.IfNot(File.Exists("/bin/false"), "needs /bin/false");
        AssertFailsInOneLine("/bin/false", "4", $"error: --llama-bench: '/bin/false' exited with 1 on {Stories}");
    }

    /// <summary>Bad shapes are refused by NextToken's own checks before llama-bench runs (it would fail with a vaguer message).</summary>
    [SkippableFact]
    public void Bench_NoGeneratedTokens_IsRefusedBeforeLlamaBenchRuns()
    {
        Skip.IfNot(File.Exists("/bin/false"), "needs /bin/false");
        AssertFailsInOneLine("/bin/false", "0", "error: --gen-tokens must be from 1 to");
    }

    /// <summary>bench on stories260K with this llama-bench and generation length exits 1 with one line starting so.</summary>
    private static void AssertFailsInOneLine(string llamaBench, string genTokens, string expectedStart)
    {
        var (code, _, stderr) = CliTests.RunWith(null, null, "bench", "--model", Stories, "--llama-bench", llamaBench, "-r", "1", "--prompt-tokens", "8", "--gen-tokens", genTokens);
        Assert.Equal(1, code);
        Assert.StartsWith(expectedStart, stderr);
        Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }

    /// <summary>A program that floods its output (2 MB, then exits 0) is cut off at the bound and named, not read into memory whole.</summary>
    [SkippableFact]
    public void Bench_LlamaBenchFloodsOutput_IsCutOff()
    {
        Skip.If(OperatingSystem.IsWindows() || !File.Exists("/bin/sh"), "needs a POSIX shell");
        string flood = _temp.File("llama-bench");
        File.WriteAllText(flood, "#!/bin/sh\nhead -c 2000000 /dev/zero | tr '\\0' x\n");
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(flood, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var (code, _, stderr) = CliTests.RunWith(null, null, "bench", "--model", Stories, "--llama-bench", flood, "-r", "1", "--prompt-tokens", "8", "--gen-tokens", "4");
        Assert.Equal(1, code);
        Assert.StartsWith($"error: --llama-bench: '{flood}' printed more than 1024 KB", stderr);
    }

    [Fact]
    public void Bench_LlamaBenchWithoutGguf_SaysItNeedsOne()
    {
        string notExecutable = _temp.File("llama-bench");
        File.WriteAllText(notExecutable, "");
        var (code, _, stderr) = CliTests.RunWith(null, null, "bench", "--model", "builtin", "--llama-bench", notExecutable, "-r", "1");
        Assert.Equal(1, code);
        Assert.StartsWith("error: --llama-bench reads GGUF files; the model 'builtin:stories260K' is not one", stderr);
    }

    /// <summary>A real llama-bench beside NextToken on the same file: needs a llama.cpp build named in NEXTTOKEN_LLAMA_BENCH.</summary>
    [SkippableFact]
    public void Bench_WithRealLlamaBench_AlternatesAndReportsRatios()
    {
        string? executable = Environment.GetEnvironmentVariable("NEXTTOKEN_LLAMA_BENCH");
        Skip.If(string.IsNullOrEmpty(executable), "set NEXTTOKEN_LLAMA_BENCH to a llama.cpp build's llama-bench to run NextToken beside it");
        var (code, stdout, stderr) = CliTests.RunWith(null, null, "bench", "--model", Stories, "--llama-bench", executable!, "-r", "2", "--prompt-tokens", "16", "--gen-tokens", "8", "--json");
        Assert.True(code == 0, stderr);
        using var doc = JsonDocument.Parse(stdout);
        JsonElement root = doc.RootElement, llama = root.GetProperty("llama_bench");
        output.WriteLine(llama.ToString());
        Assert.Equal(2, llama.GetProperty("runs").GetArrayLength());
        double prompt = llama.GetProperty("prompt_tok_s").GetDouble(), generation = llama.GetProperty("gen_tok_s").GetDouble();
        Assert.True(prompt > 0 && generation > 0);
        Assert.Equal(root.GetProperty("prompt_tok_s").GetDouble() / prompt, llama.GetProperty("prompt_ratio").GetDouble(), 1e-9);
        Assert.Equal(root.GetProperty("gen_tok_s").GetDouble() / generation, llama.GetProperty("gen_ratio").GetDouble(), 1e-9);
        Assert.False(string.IsNullOrEmpty(llama.GetProperty("build_commit").GetString()));
    }
}
