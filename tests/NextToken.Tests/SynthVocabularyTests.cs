using System.Diagnostics;
using NextToken.Gguf;
using Xunit.Abstractions;

namespace NextToken.Tests;

/// <summary>
/// <c>synth</c>'s default vocabulary is found beside the repository whatever the current directory
/// (it was a path relative to the repository root, so synth failed anywhere else), or in
/// $NEXTTOKEN_FIXTURES, whose absence is a one-line error naming the path looked at.
/// </summary>
public sealed class SynthVocabularyTests(ITestOutputHelper output) : IDisposable
{
    private readonly TempDir _temp = new();

    public void Dispose() => _temp.Dispose();

    private (int ExitCode, string Stdout, string Stderr) RunIn(string directory, string? fixtures, params string[] args)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = directory };
        start.Environment.Remove("NEXTTOKEN_FIXTURES");
        if (fixtures != null) start.Environment["NEXTTOKEN_FIXTURES"] = fixtures;
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "NextToken.Cli.dll"));
        foreach (string a in args) start.ArgumentList.Add(a);
        using Process process = Process.Start(start)!;
        Task<string> stdout = process.StandardOutput.ReadToEndAsync(), stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(120_000))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException("nexttoken did not finish in 120 s: " + string.Join(' ', args));
        }
        return (process.ExitCode, stdout.Result, stderr.Result);
    }

    [Theory]
    [InlineData("llama", "135M", 32000, "q4_1")]
    [InlineData("gpt2", "124M", 50257, "q4_k")]
    public void Synth_OutsideTheRepository_FindsTheDefaultVocabulary(string arch, string size, int vocabSize, string type)
    {
        Assert.False(File.Exists(Path.Combine(_temp.Path, "NextToken.slnx")));
        var (code, stdout, stderr) = RunIn(_temp.Path, null, "synth", "--arch", arch, "--size", size, "--type", type, "-o", "s.gguf");
        Assert.True(code == 0, stderr + stdout);
        using GgufFile file = GgufFile.Open(_temp.File("s.gguf"));
        using GgufFile vocabulary = GgufFile.Open(Fixtures.Vocab(arch == "llama" ? "ggml-vocab-llama-spm.gguf" : "ggml-vocab-gpt-2.gguf"));
        string[] tokens = file.GetArrayOrNull<string>("tokenizer.ggml.tokens")!;
        Assert.Equal(vocabSize, tokens.Length);
        Assert.Equal(vocabulary.GetArrayOrNull<string>("tokenizer.ggml.tokens"), tokens);
        output.WriteLine($"synth in {_temp.Path}: {arch} {size} with the fixtures' {tokens.Length}-token vocabulary");
    }

    [Fact]
    public void Synth_FixturesVariableWithoutVocabulary_NamesThePath()
    {
        string missing = Path.Combine(_temp.Path, "no-fixtures");
        var (code, _, stderr) = RunIn(_temp.Path, missing, "synth", "--arch", "llama", "-o", "s.gguf");
        Assert.Equal(1, code);
        Assert.Contains($"no default vocabulary at {Path.Combine(missing, "vocab", "ggml-vocab-llama-spm.gguf")} (from $NEXTTOKEN_FIXTURES); give --from-vocab FILE", stderr);
        Assert.False(File.Exists(_temp.File("s.gguf")));
    }
}
