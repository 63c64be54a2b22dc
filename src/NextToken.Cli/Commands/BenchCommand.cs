using System.CommandLine;
using NextToken.Generation;
using NextToken.Models;
using Spectre.Console;

namespace NextToken.Cli.Commands;

/// <summary><c>nexttoken bench</c>: prompt-processing and generation speed, as llama-bench measures them.</summary>
internal static class BenchCommand
{
    public static Command Create()
    {
        var model = CommonOptions.Model();
        var promptTokens = new Option<int>("--prompt-tokens") { Description = "Prompt length processed as one batch", DefaultValueFactory = _ => 128 };
        var genTokens = new Option<int>("--gen-tokens") { Description = "Tokens generated one at a time", DefaultValueFactory = _ => 64 };
        var repetitions = new Option<int>("--repetitions", "-r") { Description = "Runs to make; the table shows each and the best", DefaultValueFactory = _ => 3 };
        var depth = new Option<int>("--depth", "-d") { Description = "Tokens already in the context when the clock starts, as llama-bench's -d: prompt and generation then attend over them", DefaultValueFactory = _ => 0 };
        var distribution = new Option<bool>("--with-distribution") { Description = "Also time generation that computes the full next-token distribution at every step (what inspection needs)" };
        var stepProfile = new Option<bool>("--step-profile") { Description = "Also show where the prompt's and a generation step's time go: per phase (matmuls, attention, norms), each thread's time inside parallel chunks and the waits" };
        var llamaBench = new Option<string?>("--llama-bench") { Description = "llama.cpp's llama-bench executable: each run follows one llama-bench run (-r 1) of the same GGUF file, prompt, generation, depth and threads, and the table shows both with their ratio (side by side, so both read the machine of the same minute)" };
        var threads = CommonOptions.Threads();
        var json = CommonOptions.Json();
        var command = new Command("bench", "Measure prompt-processing and generation tokens/s, and memory bandwidth")
        {
            model, promptTokens, genTokens, depth, repetitions, distribution, stepProfile, llamaBench, threads, json,
        };
        command.SetAction(parse => CommonOptions.Run(parse, () =>
        {
            string? llamaBenchPath = parse.GetValue(llamaBench);
            if (llamaBenchPath is not null) LlamaBench.RequireFile(llamaBenchPath);
            using LanguageModel lm = CommonOptions.LoadModel(parse, parse.GetValue(model), parse.GetValue(threads));
            int runs = CommonOptions.Checked(parse, repetitions, 1);
            int prompt = CommonOptions.Checked(parse, promptTokens, 1, lm.TrainedContextLength);
            int generated = CommonOptions.Checked(parse, genTokens, 1, lm.TrainedContextLength); // checked before llama-bench runs, which would fail less clearly
            int filled = CommonOptions.Checked(parse, depth, 0, lm.TrainedContextLength);
            // The context allocated is what the runs need (llama-bench's n_ctx), within what the model was trained for.
            long needed = (long)filled + prompt + generated;
            if (needed > lm.TrainedContextLength)
                throw new NextTokenException($"--depth {filled} + --prompt-tokens {prompt} + --gen-tokens {generated} = {needed} positions: more than the model's trained context, {lm.TrainedContextLength}");
            lm.LimitContext((int)needed);
            if (llamaBenchPath is not null && !File.Exists(lm.FilePath))
                throw new NextTokenException($"--llama-bench reads GGUF files; the model '{lm.FilePath}' is not one");
            double bandwidth = ThroughputBenchmark.MeasureReadBandwidth(lm.Threads);
            var results = new List<ThroughputResult>();
            var llama = new List<LlamaBenchResult>();
            for (int r = 0; r < runs; r++)
            {
                if (llamaBenchPath is not null) llama.Add(LlamaBench.Run(llamaBenchPath, lm.FilePath, prompt, generated, lm.Threads, filled));
                results.Add(ThroughputBenchmark.Run(lm, prompt, generated, withDistribution: parse.GetValue(distribution), depth: filled, profileSteps: parse.GetValue(stepProfile)));
            }
            ThroughputResult best = results.MaxBy(r => r.GenerationTokensPerSecond)!;
            ThroughputResult bestPrompt = results.MaxBy(r => r.PromptTokensPerSecond)!;
            double? bestDistribution = results.Max(r => r.DistributionTokensPerSecond);
            // Resident memory after the runs: mapped weight pages that were read count, as they should;
            // the runs' discarded contexts and the bandwidth probe's buffer are collected and returned first.
            GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
            double bestPromptSpeed = bestPrompt.PromptTokensPerSecond;
            double? llamaPrompt = llama.Count > 0 ? llama.Max(l => l.PromptTokensPerSecond) : null;
            double? llamaGeneration = llama.Count > 0 ? llama.Max(l => l.GenerationTokensPerSecond) : null;
            string? llamaCommit = llama.Select(l => l.BuildCommit).FirstOrDefault(c => c is not null);
            long resident = Environment.WorkingSet, fileBytes = File.Exists(lm.FilePath) ? new FileInfo(lm.FilePath).Length : 0;
            if (parse.GetValue(json))
            {
                JsonOutput.Write(new
                {
                    model = lm.FilePath,
                    architecture = lm.Architecture,
                    prompt_tokens = best.PromptTokens,
                    depth = best.Depth,
                    gen_tokens = best.GeneratedTokens,
                    prompt_tok_s = bestPromptSpeed,
                    gen_tok_s = best.GenerationTokensPerSecond,
                    ms_per_token = best.MillisecondsPerToken,
                    gb_s = best.GigabytesPerSecond,
                    measured_bandwidth_gb_s = bandwidth,
                    bandwidth_percent = 100 * best.GigabytesPerSecond / bandwidth,
                    gen_with_distribution_tok_s = bestDistribution,
                    resident_bytes = resident,
                    file_bytes = fileBytes,
                    weight_bytes_per_token = best.WeightBytesPerToken,
                    threads = best.Threads,
                    step_profile = StepProfileJson(best.Steps),
                    prompt_profile = StepProfileJson(bestPrompt.PromptSteps),
                    llama_bench = llama.Count == 0 ? null : new
                    {
                        executable = llamaBenchPath,
                        build_commit = llamaCommit,
                        prompt_tok_s = llamaPrompt,
                        gen_tok_s = llamaGeneration,
                        prompt_ratio = bestPromptSpeed / llamaPrompt,
                        gen_ratio = best.GenerationTokensPerSecond / llamaGeneration,
                        runs = llama.Select(l => new { prompt_tok_s = l.PromptTokensPerSecond, gen_tok_s = l.GenerationTokensPerSecond }).ToArray(),
                    },
                    runs = results.Select(r => new
                    {
                        prompt_tok_s = r.PromptTokensPerSecond, gen_tok_s = r.GenerationTokensPerSecond, gen_with_distribution_tok_s = r.DistributionTokensPerSecond,
                        step_profile = StepProfileJson(r.Steps),
                        prompt_profile = StepProfileJson(r.PromptSteps),
                    }).ToArray(),
                });
                return 0;
            }
            AnsiConsole.MarkupLine($"[bold]{Markup.Escape(Path.GetFileName(lm.FilePath))}[/]: {lm.Architecture}, {lm.LayerCount} layers × {lm.EmbeddingLength}, " +
                                   $"{best.WeightBytesPerToken / 1e6:F1} MB of weights read per token, {best.Threads} threads; measured read bandwidth {bandwidth:F1} GB/s" +
                                   (best.Depth > 0 ? $"; {best.Depth} tokens already in the context" : ""));
            var table = new Table().Border(TableBorder.Rounded).AddColumn("run")
                .AddColumn(new TableColumn($"prompt {best.PromptTokens} (tok/s)").RightAligned())
                .AddColumn(new TableColumn($"generation {best.GeneratedTokens} (tok/s)").RightAligned())
                .AddColumn(new TableColumn("ms/token").RightAligned())
                .AddColumn(new TableColumn("GB/s").RightAligned())
                .AddColumn(new TableColumn("% of bandwidth").RightAligned())
                .AddColumn(new TableColumn("with distribution (tok/s)").RightAligned());
            if (llama.Count > 0)
                table.AddColumn(new TableColumn("llama.cpp prompt (tok/s)").RightAligned()).AddColumn(new TableColumn("llama.cpp generation (tok/s)").RightAligned());
            for (int i = 0; i < results.Count; i++)
            {
                ThroughputResult r = results[i];
                var cells = new List<string> { (i + 1).ToString(), r.PromptTokensPerSecond.ToString("F1"), r.GenerationTokensPerSecond.ToString("F1"),
                    r.MillisecondsPerToken.ToString("F2"), r.GigabytesPerSecond.ToString("F2"), $"{100 * r.GigabytesPerSecond / bandwidth:F0}%",
                    r.DistributionTokensPerSecond?.ToString("F1") ?? "-" };
                if (llama.Count > 0) cells.AddRange([llama[i].PromptTokensPerSecond.ToString("F1"), llama[i].GenerationTokensPerSecond.ToString("F1")]);
                table.AddRow(cells.ToArray());
            }
            AnsiConsole.Write(table);
            if (llamaPrompt is { } lp && llamaGeneration is { } lg)
                AnsiConsole.MarkupLine($"side by side with llama.cpp {Markup.Escape(llamaCommit ?? "(commit not reported)")}, best of {runs} alternating runs each: " +
                                       $"prompt {bestPromptSpeed:F1} vs {lp:F1} tok/s ([bold]{bestPromptSpeed / lp:F2}×[/]), " +
                                       $"generation {best.GenerationTokensPerSecond:F1} vs {lg:F1} tok/s ([bold]{best.GenerationTokensPerSecond / lg:F2}×[/])");
            if (bestPrompt.PromptSteps is { } promptSteps)
                WriteStepProfile(promptSteps, bestPrompt.PromptSeconds * 1000, $"where the prompt's forward pass goes[/] (best prompt run; {bestPrompt.PromptTokens} tokens in {bestPrompt.PromptSeconds * 1000:F1} ms; times in ms for the whole prompt");
            if (best.Steps is { } steps)
                WriteStepProfile(steps, best.MillisecondsPerToken, $"where a generation step goes[/] (best run; {best.MillisecondsPerToken:F2} ms per token; times in ms per token");
            AnsiConsole.MarkupLine($"[grey]resident memory {resident / 1e6:F0} MB (weights file {fileBytes / 1e6:F0} MB, mapped, not copied)[/]");
            return 0;
        }));
        return command;
    }

    private static object[]? StepProfileJson(IReadOnlyList<NextToken.Kernels.StepPhaseTimes>? phases) => phases?.Select(p => (object)new
    {
        phase = p.Phase.ToString(), wall_ms = p.Wall, regions = p.Regions, region_ms = p.RegionWall, busy_ms = p.Busy, chunks = p.Chunks,
        caller_wait_ms = p.CallerWait, helper_late_ms = p.HelperLate,
    }).ToArray();

    /// <summary>A profile per phase, in milliseconds of <paramref name="total"/> (a generated token, or the whole prompt).</summary>
    private static void WriteStepProfile(IReadOnlyList<NextToken.Kernels.StepPhaseTimes> steps, double total, string title)
    {
        int threads = steps.Max(p => p.Busy.Length);
        var table = new Table().Border(TableBorder.Rounded).AddColumn(new TableColumn("phase").NoWrap())
            .AddColumn(new TableColumn("wall").RightAligned()).AddColumn(new TableColumn("%").RightAligned())
            .AddColumn(new TableColumn("regions").RightAligned()).AddColumn(new TableColumn("in regions").RightAligned());
        for (int t = 0; t < threads; t++) table.AddColumn(new TableColumn(t == 0 ? "caller busy (chunks)" : $"helper {t} busy (chunks)").RightAligned());
        table.AddColumn(new TableColumn("caller waits").RightAligned()).AddColumn(new TableColumn("helper late").RightAligned());
        foreach (var p in steps)
        {
            var cells = new List<string> { p.Phase.ToString(), p.Wall.ToString("F3"), $"{100 * p.Wall / total:F1}", p.Regions.ToString("F0"), p.RegionWall.ToString("F3") };
            for (int t = 0; t < threads; t++) cells.Add(t < p.Busy.Length ? $"{p.Busy[t]:F3} ({p.Chunks[t]:F0})" : "-");
            cells.Add(p.CallerWait.ToString("F3"));
            cells.Add(p.HelperLate.ToString("F3"));
            table.AddRow(cells.ToArray());
        }
        AnsiConsole.MarkupLine($"[bold]{title}; busy = inside chunks, late = region open → helper's first chunk)");
        AnsiConsole.Write(table);
    }
}
