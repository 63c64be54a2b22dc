using System.CommandLine;
using System.Runtime.InteropServices;
using NextToken.Inspection;
using NextToken.Models;
using NextToken.Sampling;
using Spectre.Console;

namespace NextToken.Cli.Commands;

/// <summary><c>nexttoken next</c>: the score of every vocabulary entry for the next position.</summary>
internal static class NextCommand
{
    public static Command Create()
    {
        var model = CommonOptions.Model();
        var prompt = CommonOptions.Prompt();
        var promptArgument = CommonOptions.PromptArgument();
        var tokens = CommonOptions.Tokens();
        var top = new Option<int>("--top", "-k") { Description = "How many of the best-scoring tokens to list", DefaultValueFactory = _ => 10 };
        var addBos = CommonOptions.AddBos();
        var parseSpecial = CommonOptions.ParseSpecial();
        var dumpLogits = new Option<string?>("--dump-logits") { Description = "Write the full last-position logit row to this file (little-endian float32)" };
        var showRouting = new Option<bool>("--show-routing") { Description = "Mixture-of-experts models: show which experts each token was sent to in every layer" };
        var explain = new Option<bool>("--explain") { Description = "Roll the dice once with the sampling flags and show each stage: candidates kept, mass removed, the number drawn" };
        var threads = CommonOptions.Threads();
        var json = CommonOptions.Json();
        var sampling = new SamplingFlags();
        var command = new Command("next", "Score every vocabulary entry as the next token and list the best")
        {
            promptArgument, model, prompt, tokens, top, addBos, parseSpecial, dumpLogits, showRouting, explain, threads, json,
        };
        sampling.AddTo(command);
        command.SetAction(parse => CommonOptions.Run(parse, () =>
        {
            using LanguageModel lm = CommonOptions.LoadModel(parse, parse.GetValue(model), parse.GetValue(threads));
            string? text = parse.GetValue(prompt) ?? parse.GetValue(promptArgument);
            int[] ids = CommonOptions.PromptIds(lm.Tokenizer, text, parse.GetValue(tokens), parse.GetValue(addBos), parse.GetValue(parseSpecial));
            int k = parse.GetValue(top);
            if (k < 1) throw new NextTokenException($"--top must be at least 1, not {k}");
            var logits = new float[lm.VocabSize];
            lm.Forward(lm.CreateState(), ids, logits);
            if (parse.GetValue(dumpLogits) is { } dumpPath)
                File.WriteAllBytes(dumpPath, MemoryMarshal.AsBytes(logits.AsSpan()).ToArray());
            ulong seed = parse.GetValue(explain) ? parse.GetValue(sampling.Seed) ?? Xoshiro256StarStar.RandomSeed() : 0;
            if (parse.GetValue(json))
            {
                JsonOutput.Write(Reports.Next(lm, ids, logits, k, parse.GetValue(explain) ? sampling.Build(parse) : null, seed, parse.GetValue(showRouting)));
                return 0;
            }
            RoutingLedger? routing = parse.GetValue(showRouting) ? RoutingLedger.Record(lm, ids) : null;
            var distribution = new TokenDistribution(logits);
            RankedToken[] best = distribution.Top(k);
            SamplingTrace? trace = null;
            if (parse.GetValue(explain))
            {
                trace = new SamplingTrace();
                new SamplerChain(lm.VocabSize, sampling.Build(parse), new Xoshiro256StarStar(seed)).Sample(logits, trace);
            }
            if (routing is not null) ShowRouting(lm, ids, routing);
            Show(lm, ids, distribution, best);
            if (trace is not null)
            {
                AnsiConsole.MarkupLine($"[grey]{Markup.Escape(GenerateCommand.Describe(sampling.Build(parse)))}; seed {seed}[/]");
                ExplainView.Table(lm, trace);
            }
            return 0;
        }));
        return command;
    }

    private static void Show(LanguageModel lm, int[] ids, TokenDistribution distribution, RankedToken[] best)
    {
        string strip = string.Join("", ids.Select(id => $"[grey][[[/]{Markup.Escape(lm.Tokenizer.TokenDisplay(id))}[grey]]][/]"));
        AnsiConsole.MarkupLine($"Model: {Markup.Escape(CommonOptions.Describe(lm))}");
        AnsiConsole.MarkupLine($"Context: {ids.Length} tokens {strip}");
        AnsiConsole.MarkupLine($"Scores for all [bold]{CommonOptions.Number(lm.VocabSize)}[/] vocabulary entries; entropy {distribution.Entropy:F3} nats. The best {best.Length}:");
        var table = new Table().Border(TableBorder.Rounded)
            .AddColumn(new TableColumn("rank").RightAligned())
            .AddColumn(new TableColumn("id").RightAligned())
            .AddColumn("token")
            .AddColumn(new TableColumn("logit").RightAligned())
            .AddColumn(new TableColumn("probability").RightAligned())
            .AddColumn("");
        double shown = 0;
        foreach (RankedToken t in best)
        {
            shown += t.Probability;
            int bar = (int)Math.Round(t.Probability * 24); // short enough not to wrap in an 80-column terminal
            table.AddRow(t.Rank.ToString(), CommonOptions.Number(t.Id), Markup.Escape(lm.Tokenizer.TokenDisplay(t.Id)),
                t.Logit.ToString("F4"), FormatProbability(t.Probability), $"[green]{new string('█', bar)}[/]");
        }
        AnsiConsole.Write(table);
        int rest = lm.VocabSize - best.Length;
        AnsiConsole.MarkupLine($"… [bold]{CommonOptions.Number(rest)}[/] more entries hold the remaining [bold]{FormatProbability(Math.Max(0, 1 - shown))}[/] of the probability.");
    }

    private static void ShowRouting(LanguageModel lm, int[] ids, RoutingLedger routing)
    {
        var table = new Table().Border(TableBorder.Rounded).Title("experts chosen per token (weight)").AddColumn(new TableColumn("#").RightAligned()).AddColumn("token");
        for (int l = 0; l < lm.LayerCount; l++) table.AddColumn($"layer {l}");
        var byPosition = routing.Entries.ToLookup(c => c.Position);
        for (int p = 0; p < ids.Length; p++)
        {
            var cells = new List<string> { p.ToString(), Markup.Escape(lm.Tokenizer.TokenDisplay(ids[p])) };
            foreach (RoutingEntry choice in byPosition[p].OrderBy(c => c.Layer))
                cells.Add(string.Join(" ", choice.Experts.Zip(choice.Weights, (e, w) => $"[bold]{e}[/] ({w:F2})")));
            table.AddRow(cells.ToArray());
        }
        AnsiConsole.Write(table);
    }

    private static string FormatProbability(double p) => p >= 1e-4 ? $"{p * 100:F2}%" : p.ToString("E2");
}
