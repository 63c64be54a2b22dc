using System.CommandLine;
using System.Diagnostics;
using NextToken.Generation;
using NextToken.Models;
using NextToken.Sampling;
using Spectre.Console;

namespace NextToken.Cli.Commands;

/// <summary><c>nexttoken generate</c>: continue a prompt, one roll of the dice per token; <c>--runs</c> rolls again.</summary>
internal static class GenerateCommand
{
    private sealed record Run(ulong Seed, List<int> Tokens, string Text, StopReason StopReason, List<GeneratedToken> Steps, double Seconds);

    public static Command Create()
    {
        var model = CommonOptions.Model();
        var prompt = CommonOptions.Prompt();
        var promptArgument = CommonOptions.PromptArgument();
        var tokens = CommonOptions.Tokens();
        var maxTokens = new Option<int>("--max-tokens", "-n") { Description = "Most new tokens to generate", DefaultValueFactory = _ => 64 };
        var stop = new Option<string[]>("--stop") { Description = "Stop when this text appears (may span tokens); repeatable" };
        var runs = new Option<int>("--runs") { Description = "Regenerate N times with seeds seed, seed+1, … and compare", DefaultValueFactory = _ => 1 };
        var explain = new Option<bool>("--explain") { Description = "Show, for every step, what each sampler stage kept and the number drawn" };
        var addBos = CommonOptions.AddBos();
        var parseSpecial = CommonOptions.ParseSpecial();
        var ignoreEos = new Option<bool>("--ignore-eos") { Description = "Keep generating past end-of-sequence / end-of-turn tokens" };
        var threads = CommonOptions.Threads();
        var context = CommonOptions.Context();
        var json = CommonOptions.Json();
        var sampling = new SamplingFlags();
        var command = new Command("generate", "Continue a prompt token by token, sampling each from the model's distribution")
        {
            promptArgument, model, prompt, tokens, maxTokens, stop, runs, explain, addBos, parseSpecial, ignoreEos, threads, context, json,
        };
        sampling.AddTo(command);
        command.SetAction((parse, cancellation) => CommonOptions.RunAsync(parse, async () =>
        {
            using LanguageModel lm = CommonOptions.LoadModel(parse, parse.GetValue(model), parse.GetValue(threads), parse.GetValue(context));
            string? text = parse.GetValue(prompt) ?? parse.GetValue(promptArgument);
            int[] ids = CommonOptions.PromptIds(lm.Tokenizer, text, parse.GetValue(tokens), parse.GetValue(addBos), parse.GetValue(parseSpecial));
            if (ids.Length >= lm.ContextLength) throw new ContextFullException(0, ids.Length, lm.ContextLength);
            int runCount = parse.GetValue(runs);
            if (runCount < 1) throw new NextTokenException($"--runs must be at least 1, not {runCount}");
            CommonOptions.Checked(parse, maxTokens, 0);
            SamplingOptions samplingOptions = sampling.Build(parse);
            ulong firstSeed = parse.GetValue(sampling.Seed) ?? Xoshiro256StarStar.RandomSeed();
            bool asJson = parse.GetValue(json), explainSteps = parse.GetValue(explain);
            bool stream = !asJson && runCount == 1 && !explainSteps;
            string promptText = text ?? lm.Tokenizer.Decode(ids);
            if (stream) AnsiConsole.Markup($"[grey]{Markup.Escape(promptText)}[/]");

            var results = new List<Run>();
            for (int r = 0; r < runCount; r++)
            {
                var options = new GenerationOptions
                {
                    MaxTokens = CommonOptions.Checked(parse, maxTokens, 0),
                    Sampling = samplingOptions,
                    Seed = firstSeed + (ulong)r,
                    StopStrings = parse.GetValue(stop) ?? [],
                    StopAtEndOfGeneration = !parse.GetValue(ignoreEos),
                    Explain = explainSteps,
                };
                var generator = new Generator(lm);
                var steps = new List<GeneratedToken>();
                var output = new System.Text.StringBuilder();
                var clock = Stopwatch.StartNew();
                await foreach (GeneratedToken token in generator.GenerateAsync(ids, options, cancellation))
                {
                    steps.Add(token);
                    output.Append(token.Text);
                    if (stream) Console.Write(token.Text);
                }
                output.Append(generator.TrailingText);
                if (stream) Console.Write(generator.TrailingText);
                results.Add(new Run(generator.Seed, [.. generator.Generated], output.ToString(), generator.StopReason, steps, clock.Elapsed.TotalSeconds));
            }

            if (asJson)
            {
                object Describe(Run run) => new
                {
                    tokens = run.Tokens,
                    text = run.Text,
                    seed = run.Seed,
                    stop_reason = run.StopReason.ToString(),
                    steps = run.Steps.Select(s => new
                    {
                        id = s.Id, text = s.Text, logprob = s.LogProbability, rank = s.Rank,
                        explain = s.Trace is null ? null : ExplainView.Json(lm, s.Trace),
                    }).ToArray(),
                };
                if (runCount == 1)
                    JsonOutput.Write(Describe(results[0]));
                else
                    JsonOutput.Write(new { sampling = samplingOptions.ToString(), runs = results.Select(Describe).ToArray(), departs_at = results.Select(r => DepartureIndex(results[0].Tokens, r.Tokens)).ToArray() });
                return 0;
            }
            if (explainSteps)
            {
                foreach (Run run in results)
                {
                    AnsiConsole.MarkupLine($"[bold]seed {run.Seed}[/]");
                    for (int i = 0; i < run.Steps.Count; i++)
                        ExplainView.Line(lm, i, run.Steps[i]);
                    AnsiConsole.MarkupLine($"[grey]{Markup.Escape(promptText)}[/]{Markup.Escape(run.Text)}");
                }
            }
            else if (runCount > 1)
            {
                ShowRuns(lm, promptText, results);
            }
            else
            {
                Console.WriteLine();
            }
            Run last = results[^1];
            string why = last.StopReason switch
            {
                StopReason.EndOfGeneration => "end-of-sequence token",
                StopReason.StopString => "stop string",
                StopReason.ContextFull => $"context full ({lm.ContextLength} tokens)",
                _ => "max tokens",
            };
            AnsiConsole.MarkupLine($"[grey]{Markup.Escape(Describe(samplingOptions))}; seed {firstSeed}{(runCount > 1 ? $"…{firstSeed + (ulong)runCount - 1}" : "")}; " +
                                   $"{last.Tokens.Count} tokens in {last.Seconds:F2} s ({last.Tokens.Count / Math.Max(last.Seconds, 1e-9):F1} tok/s, prompt included); stopped: {why}[/]");
            return 0;
        }));
        return command;
    }

    internal static string Describe(SamplingOptions o) => o.Temperature == 0
        ? "greedy (temperature 0)"
        : $"temperature {o.Temperature}, top-k {o.TopK}, top-p {o.TopP}, min-p {o.MinP}, typical-p {o.TypicalP}, {(o.Order == SamplerOrder.LlamaCpp ? "llama.cpp" : "Hugging Face")} order";

    /// <summary>Index of the first token where <paramref name="run"/> leaves <paramref name="reference"/>, or -1 if it never does.</summary>
    private static int DepartureIndex(List<int> reference, List<int> run)
    {
        int n = Math.Min(reference.Count, run.Count);
        for (int i = 0; i < n; i++)
            if (reference[i] != run[i]) return i;
        return reference.Count == run.Count ? -1 : n;
    }

    private static void ShowRuns(LanguageModel lm, string promptText, List<Run> results)
    {
        AnsiConsole.MarkupLine($"[grey]{Markup.Escape(promptText)}[/] …");
        var table = new Table().Border(TableBorder.Rounded).AddColumn("run").AddColumn(new TableColumn("seed").RightAligned())
            .AddColumn("continuation ([yellow]yellow[/]: where it departs from run 1)").AddColumn(new TableColumn("departs at").RightAligned());
        for (int r = 0; r < results.Count; r++)
        {
            Run run = results[r];
            int departs = DepartureIndex(results[0].Tokens, run.Tokens);
            string shown;
            if (r == 0 || departs < 0)
            {
                shown = Markup.Escape(run.Text);
            }
            else
            {
                string same = lm.Tokenizer.Decode(run.Tokens.Take(departs).ToArray());
                int cut = Math.Min(same.Length, run.Text.Length);
                shown = Markup.Escape(run.Text[..cut]) + "[yellow]" + Markup.Escape(run.Text[cut..]) + "[/]";
            }
            table.AddRow((r + 1).ToString(), run.Seed.ToString(), shown, r == 0 ? "-" : departs < 0 ? "identical" : $"token {departs + 1}");
        }
        AnsiConsole.Write(table);
    }
}

/// <summary>Renders a sampler trace: per stage, how many candidates survived and how much probability went.</summary>
internal static class ExplainView
{
    public static object Json(LanguageModel lm, SamplingTrace trace) => new
    {
        stages = trace.Stages.Select(s => new
        {
            stage = s.Stage, candidates_before = s.CandidatesBefore, candidates_after = s.CandidatesAfter, mass_removed = s.MassRemoved,
            top = s.Top.Select(t => new { id = t.Id, piece = lm.Tokenizer.TokenText(t.Id), prob = t.Probability }).ToArray(),
        }).ToArray(),
        random = trace.RandomDraw,
        chosen = trace.ChosenId,
        chosen_rank = trace.ChosenRank,
        chosen_prob = trace.ChosenProbability,
    };

    public static void Line(LanguageModel lm, int step, GeneratedToken token)
    {
        SamplingTrace trace = token.Trace!;
        string stages = string.Join(" → ", trace.Stages.Select(s => $"{s.Stage}: {s.CandidatesAfter:N0} left (−{s.MassRemoved:P1})"));
        string draw = trace.RandomDraw is { } u ? $"u={u:F4}" : "greedy";
        AnsiConsole.MarkupLine($"[grey]{step + 1,3}[/] [bold]{Markup.Escape(lm.Tokenizer.TokenDisplay(token.Id))}[/] rank {trace.ChosenRank}, p {trace.ChosenProbability:P1} ({draw})  [grey]{Markup.Escape(stages)}[/]");
    }

    public static void Table(LanguageModel lm, SamplingTrace trace)
    {
        var table = new Table().Border(TableBorder.Rounded).Title("the roll, stage by stage")
            .AddColumn("stage").AddColumn(new TableColumn("candidates").RightAligned()).AddColumn(new TableColumn("mass removed").RightAligned()).AddColumn("top candidates after the stage (renormalized)");
        foreach (StageReport s in trace.Stages)
        {
            string top = string.Join("  ", s.Top.Take(5).Select(t => $"{Markup.Escape(lm.Tokenizer.TokenDisplay(t.Id))} {t.Probability:P1}"));
            table.AddRow(Markup.Escape(s.Stage), $"{s.CandidatesBefore:N0} → {s.CandidatesAfter:N0}", $"{s.MassRemoved:P2}", top);
        }
        AnsiConsole.Write(table);
        string draw = trace.RandomDraw is { } u ? $"drew u = {u:F6} from the final distribution" : "temperature 0: took the best token, no draw";
        AnsiConsole.MarkupLine($"{draw} → [bold]{Markup.Escape(lm.Tokenizer.TokenDisplay(trace.ChosenId))}[/] (id {trace.ChosenId}), rank {trace.ChosenRank} in the model's own list, p {trace.ChosenProbability:P2} after the stages");
    }
}
