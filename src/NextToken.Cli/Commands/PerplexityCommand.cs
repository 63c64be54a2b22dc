using System.CommandLine;
using NextToken.Inspection;
using NextToken.Models;
using Spectre.Console;

namespace NextToken.Cli.Commands;

/// <summary>
/// <c>nexttoken perplexity</c>: how well a model predicts a text (exp of the mean negative
/// log-likelihood, windowed as llama-perplexity does), and with <c>--kl-divergence-base</c> how far
/// its distributions are from another model's at every scored position.
/// </summary>
internal static class PerplexityCommand
{
    public static Command Create()
    {
        var model = CommonOptions.Model();
        var file = new Option<string?>("--file", "-f") { Description = "The text to score (UTF-8)" };
        var text = new Option<string?>("--text") { Description = "The text to score, given inline" };
        var context = new Option<int?>("--ctx", "-c") { Description = "Window length in tokens (default: 512, or the model's context if shorter)" };
        var stride = new Option<int?>("--stride") { Description = "Slide windows this many tokens apart and score each window's last STRIDE targets (every token scored once); default: llama-perplexity's side-by-side windows scoring their second halves" };
        var chunks = new Option<int?>("--chunks") { Description = "Score only the first N windows" };
        var klBase = new Option<string?>("--kl-divergence-base") { Description = "Another model (same vocabulary) to compare with: KL(base ‖ model) at every scored position, its percentiles, and how often the top tokens agree" };
        var addBos = CommonOptions.AddBos();
        var threads = CommonOptions.Threads();
        var json = CommonOptions.Json();
        var command = new Command("perplexity", "Perplexity of a model on a text, and its KL divergence from a base model")
        {
            model, file, text, context, stride, chunks, klBase, addBos, threads, json,
        };
        command.SetAction(parse => CommonOptions.Run(parse, () =>
        {
            string input = (parse.GetValue(text), parse.GetValue(file)) switch
            {
                ({ } t, null) => t,
                (null, { } f) => File.ReadAllText(f),
                (null, null) => throw new NextTokenException("nothing to score: give --file FILE or --text TEXT"),
                _ => throw new NextTokenException("give either --text or --file, not both"),
            };
            // The window is also the context to allocate (as llama-perplexity's -c).
            using LanguageModel lm = CommonOptions.LoadModel(parse, parse.GetValue(model), parse.GetValue(threads), parse.GetValue(context));
            using LanguageModel? baseModel = parse.GetValue(klBase) is { } basePath ? CommonOptions.LoadModel(parse, basePath, parse.GetValue(threads), parse.GetValue(context)) : null;
            bool bos = (parse.GetValue(addBos) ?? lm.Tokenizer.Vocabulary.AddBos) && lm.Tokenizer.Vocabulary.BosId is not null;
            int[] tokens = lm.Tokenizer.Encode(input, bos).Ids;
            int ctx = parse.GetValue(context) ?? Math.Min(512, Math.Min(lm.ContextLength, baseModel?.ContextLength ?? int.MaxValue));
            var options = new PerplexityOptions(ctx, parse.GetValue(stride), bos ? lm.Tokenizer.Vocabulary.BosId : null);
            if (parse.GetValue(chunks) is { } limit)
            {
                if (limit < 1) throw new NextTokenException($"--chunks must be at least 1, not {limit}");
                IReadOnlyList<PerplexityWindow> all = options.Windows(tokens.Length);
                PerplexityWindow lastKept = all[Math.Min(limit, all.Count) - 1];
                tokens = tokens[..(lastKept.Start + lastKept.Length)];
            }
            bool quiet = parse.GetValue(json);
            PerplexityResult result = quiet
                ? Perplexity.Measure(lm, tokens, options, baseModel)
                : WithProgress(progress => Perplexity.Measure(lm, tokens, options, baseModel, progress));
            if (quiet)
            {
                JsonOutput.Write(new
                {
                    model = lm.FilePath,
                    base_model = baseModel?.FilePath,
                    tokens = result.Tokens,
                    ctx,
                    stride = options.Stride,
                    windows = result.Windows,
                    scored = result.Scored,
                    mean_nll = result.MeanNll,
                    nll_stderr = result.NllStandardError,
                    perplexity = result.Perplexity,
                    kl = result.Kl is not { } kl ? null : new
                    {
                        mean = kl.Mean,
                        stderr = kl.StandardError,
                        median = kl.Median,
                        p90 = kl.P90,
                        p99 = kl.P99,
                        max = kl.Max,
                        top1_agreement = kl.TopOneAgreement,
                        base_mean_nll = kl.BaseMeanNll,
                        base_perplexity = kl.BasePerplexity,
                    },
                });
                return 0;
            }
            Show(lm, baseModel, ctx, options, result);
            return 0;
        }));
        return command;
    }

    private static PerplexityResult WithProgress(Func<IProgress<(int Done, int Total)>, PerplexityResult> measure)
    {
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
        PerplexityResult? result = null;
        console.Progress()
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn())
            .Start(context =>
            {
                ProgressTask? task = null;
                result = measure(new SynchronousProgress(p =>
                {
                    task ??= context.AddTask("windows", maxValue: p.Total);
                    task.Value = p.Done;
                }));
            });
        return result!;
    }

    private static void Show(LanguageModel lm, LanguageModel? baseModel, int ctx, PerplexityOptions options, PerplexityResult result)
    {
        AnsiConsole.MarkupLine($"Model: {Markup.Escape(CommonOptions.Describe(lm))}");
        string how = options.Stride is { } s ? $"windows of {ctx} tokens, {s} apart, each scoring its last {s}" : $"windows of {ctx} tokens side by side, second halves scored";
        AnsiConsole.MarkupLine($"{CommonOptions.Number(result.Tokens)} tokens; {result.Windows} {how}: {CommonOptions.Number(result.Scored)} predictions scored.");
        AnsiConsole.MarkupLine($"Perplexity [bold]{result.Perplexity:F4}[/] (mean negative log-likelihood {result.MeanNll:F5} ± {result.NllStandardError:F5} nats)");
        if (result.Kl is not { } kl) return;
        AnsiConsole.MarkupLine($"Base: {Markup.Escape(CommonOptions.Describe(baseModel!))}: perplexity {kl.BasePerplexity:F4}; ratio {result.Perplexity / kl.BasePerplexity:F4}");
        var table = new Table().Border(TableBorder.Rounded).Title("KL(base ‖ model) per scored position, nats")
            .AddColumn("mean").AddColumn("±").AddColumn("median").AddColumn("90%").AddColumn("99%").AddColumn("max").AddColumn("same top token");
        table.AddRow(kl.Mean.ToString("G4"), kl.StandardError.ToString("G2"), kl.Median.ToString("G4"), kl.P90.ToString("G4"), kl.P99.ToString("G4"), kl.Max.ToString("G4"), $"{kl.TopOneAgreement * 100:F2}%");
        AnsiConsole.Write(table);
    }

    /// <summary>Reports on the calling thread (Progress&lt;T&gt; would post to the thread pool and lag behind the bar).</summary>
    private sealed class SynchronousProgress(Action<(int Done, int Total)> report) : IProgress<(int Done, int Total)>
    {
        public void Report((int Done, int Total) value) => report(value);
    }
}
