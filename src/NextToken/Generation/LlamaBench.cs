using System.Diagnostics;
using System.Text;
using System.Text.Json;

namespace NextToken.Generation;

/// <summary>One <c>llama-bench</c> run: its best prompt and generation samples, and the llama.cpp commit that made them.</summary>
public sealed record LlamaBenchResult(double PromptTokensPerSecond, double GenerationTokensPerSecond, string? BuildCommit);

/// <summary>
/// llama.cpp's <c>llama-bench</c>, run on the same file and shape right before each of NextToken's runs (issue #13's
/// side-by-side method: both programs then read the machine of the same minute, which moves by a quarter between rounds
/// on a shared host). Only the executable the user names runs; nothing is downloaded or built.
/// </summary>
public static class LlamaBench
{
    /// <summary>Longest a single run may take before it is stopped and reported (a 3B F16 run takes about a minute).</summary>
    public static readonly TimeSpan Timeout = TimeSpan.FromMinutes(10);

    /// <summary>Most output kept from a run (its JSONL is a few KB; stderr only for its last line), so a runaway program cannot grow memory.</summary>
    private const int MaxOutputChars = 1 << 20;

    /// <summary>
    /// Runs <paramref name="executable"/> once (<c>-r 1</c>, its own warm-up first) with NextToken's shape: <c>-m -p -n -t</c>,
    /// and <c>-d</c> only when <paramref name="depth"/> is above 0 (older builds have no <c>-d</c>).
    /// </summary>
    public static LlamaBenchResult Run(string executable, string model, int promptTokens, int generatedTokens, int threads, int depth = 0)
    {
        RequireFile(executable);
        var start = new ProcessStartInfo(executable) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string argument in new[] { "-m", model, "-p", $"{promptTokens}", "-n", $"{generatedTokens}", "-t", $"{threads}", "-r", "1", "-o", "jsonl" })
            start.ArgumentList.Add(argument);
        if (depth > 0)
        {
            start.ArgumentList.Add("-d");
            start.ArgumentList.Add($"{depth}");
        }
        Process process;
        try
        {
            process = Process.Start(start) ?? throw new NextTokenException($"--llama-bench: '{executable}' did not start");
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new NextTokenException($"--llama-bench: '{executable}' could not be run: {e.Message}");
        }
        using (process)
        {
            Task<(string Text, bool Cut)> stdout = ReadBounded(process.StandardOutput, keepEnd: false), stderr = ReadBounded(process.StandardError, keepEnd: true);
            if (!process.WaitForExit(Timeout))
            {
                process.Kill(entireProcessTree: true);
                throw new NextTokenException($"--llama-bench: '{executable}' ran longer than {Timeout.TotalMinutes:F0} minutes on {model}; stopped");
            }
            if (process.ExitCode != 0)
            {
                string? reason = stderr.Result.Text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).LastOrDefault();
                throw new NextTokenException($"--llama-bench: '{executable}' exited with {process.ExitCode} on {model}" + (reason is null ? "" : $": {reason}"));
            }
            if (stdout.Result.Cut)
                throw new NextTokenException($"--llama-bench: '{executable}' printed more than {MaxOutputChars / 1024} KB (expected llama-bench -o jsonl, a few KB)");
            return Parse(stdout.Result.Text, executable);
        }
    }

    /// <summary>All of a stream read (so the program never blocks on a full pipe), at most <see cref="MaxOutputChars"/> of it kept: its start, or its end.</summary>
    private static async Task<(string Text, bool Cut)> ReadBounded(StreamReader reader, bool keepEnd)
    {
        var text = new StringBuilder();
        var buffer = new char[8192];
        bool cut = false;
        for (int read; (read = await reader.ReadAsync(buffer)) > 0;)
        {
            text.Append(buffer, 0, read);
            if (text.Length <= MaxOutputChars) continue;
            cut = true;
            if (keepEnd) text.Remove(0, text.Length - MaxOutputChars);
            else text.Length = MaxOutputChars;
        }
        return (text.ToString(), cut);
    }

    /// <summary>Fails, naming the path, where there is no file to run (checked before a model is loaded).</summary>
    public static void RequireFile(string executable)
    {
        if (!File.Exists(executable))
            throw new NextTokenException($"--llama-bench: no file at '{executable}' (the llama-bench executable of a llama.cpp build)");
    }

    /// <summary>
    /// <c>llama-bench -o jsonl</c> output: one object per test, the prompt test with <c>n_gen</c> 0 and the generation test
    /// with <c>n_prompt</c> 0, each with its samples in tokens/s (<c>samples_ts</c>; <c>avg_ts</c> if absent). The best sample
    /// of each, as NextToken's table shows its best run.
    /// </summary>
    public static LlamaBenchResult Parse(string jsonl, string source)
    {
        double? prompt = null, generation = null;
        string? commit = null;
        int lineNumber = 0;
        foreach (string line in jsonl.Split('\n'))
        {
            lineNumber++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            try
            {
                using JsonDocument document = JsonDocument.Parse(line);
                JsonElement test = document.RootElement;
                if (test.ValueKind != JsonValueKind.Object || !test.TryGetProperty("n_prompt", out JsonElement nPrompt) || !test.TryGetProperty("n_gen", out JsonElement nGen))
                    throw new NextTokenException($"--llama-bench: line {lineNumber} of {source}'s output has no n_prompt and n_gen (expected llama-bench -o jsonl)");
                double best = test.TryGetProperty("samples_ts", out JsonElement samples) && samples.ValueKind == JsonValueKind.Array && samples.GetArrayLength() > 0
                    ? samples.EnumerateArray().Max(s => s.GetDouble())
                    : test.TryGetProperty("avg_ts", out JsonElement average) ? average.GetDouble()
                    : throw new NextTokenException($"--llama-bench: line {lineNumber} of {source}'s output has neither samples_ts nor avg_ts");
                if (!double.IsFinite(best) || best <= 0)
                    throw new NextTokenException($"--llama-bench: line {lineNumber} of {source}'s output gives {best} tokens/s");
                if (test.TryGetProperty("build_commit", out JsonElement build) && build.ValueKind == JsonValueKind.String) commit = build.GetString();
                if (nGen.GetInt32() == 0 && nPrompt.GetInt32() > 0) prompt = best;
                else if (nPrompt.GetInt32() == 0 && nGen.GetInt32() > 0) generation = best;
            }
            catch (Exception e) when (e is JsonException or FormatException or InvalidOperationException)
            {
                throw new NextTokenException($"--llama-bench: line {lineNumber} of {source}'s output is not a llama-bench JSON test ({e.Message})");
            }
        }
        if (prompt is null || generation is null)
            throw new NextTokenException($"--llama-bench: {source} printed no {(prompt is null ? "prompt (n_gen 0)" : "generation (n_prompt 0)")} test (expected llama-bench -o jsonl with -p and -n above 0)");
        return new LlamaBenchResult(prompt.Value, generation.Value, commit);
    }
}
