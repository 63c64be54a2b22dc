using System.CommandLine;
using NextToken.Inspection;
using NextToken.Models;
using Spectre.Console;

namespace NextToken.Cli.Commands;

/// <summary><c>nexttoken attention</c>: attention patterns and the share paid to spans of the context.</summary>
internal static class AttentionCommand
{
    public static Command Create()
    {
        var model = CommonOptions.Model();
        var prompt = CommonOptions.Prompt();
        var promptArgument = CommonOptions.PromptArgument();
        var tokens = CommonOptions.Tokens();
        var layer = new Option<int?>("--layer") { Description = "Layer to show and plot (default: every layer in the table, the last in the plot)" };
        var head = new Option<int?>("--head") { Description = "Head to plot (default: the mean over heads)" };
        var spans = new Option<string[]>("--span") { Description = "Token span START:END (end exclusive) whose attention share to report; repeatable" };
        var recent = new Option<int>("--recent") { Description = "Size of the recent window reported", DefaultValueFactory = _ => 8 };
        var plot = new Option<string?>("--plot") { Description = "Heatmap (.png or .svg) of the chosen layer's pattern" };
        var threads = CommonOptions.Threads();
        var json = CommonOptions.Json();
        var command = new Command("attention", "Attention patterns per layer and head, and where the last position looks")
        {
            promptArgument, model, prompt, tokens, layer, head, spans, recent, plot, threads, json,
        };
        command.SetAction(parse => CommonOptions.Run(parse, () =>
        {
            using LanguageModel lm = CommonOptions.LoadModel(parse, parse.GetValue(model), parse.GetValue(threads));
            int[] ids = CommonOptions.PromptIds(lm.Tokenizer, parse.GetValue(prompt) ?? parse.GetValue(promptArgument), parse.GetValue(tokens), lm.Tokenizer.Vocabulary.AddBos, false);
            int n = ids.Length;
            var extra = new List<(int Start, int End)>();
            foreach (string span in parse.GetValue(spans) ?? [])
            {
                string[] parts = span.Split(':');
                if (parts.Length != 2 || !int.TryParse(parts[0], out int s) || !int.TryParse(parts[1], out int e) || s < 0 || e > n || s >= e)
                    throw new NextTokenException($"--span '{span}': expected START:END with 0 ≤ START < END ≤ {n}");
                extra.Add((s, e));
            }
            if (parse.GetValue(recent) < 1) throw new NextTokenException($"--recent must be at least 1, not {parse.GetValue(recent)}");
            int? chosenLayer = parse.GetValue(layer);
            if (chosenLayer is { } cl && (cl < 0 || cl >= lm.LayerCount)) throw new NextTokenException($"--layer {cl}: the model has layers 0 to {lm.LayerCount - 1}");
            CachedActivation[] patterns = Reports.AttentionPatterns(lm, ids);
            int heads = patterns[0].Shape[0];
            if (parse.GetValue(head) is { } ch && (ch < 0 || ch >= heads)) throw new NextTokenException($"--head {ch}: the model has heads 0 to {heads - 1}");
            AttentionReport report = Reports.Attention(lm, ids, patterns, chosenLayer, extra, parse.GetValue(recent));

            if (parse.GetValue(plot) is { } path)
            {
                int l = chosenLayer ?? lm.LayerCount - 1;
                var values = new double[n, n];
                for (int q = 0; q < n; q++)
                    for (int k = 0; k <= q; k++)
                        values[q, k] = parse.GetValue(head) is { } h
                            ? patterns[l].Data[(h * n + q) * n + k]
                            : Enumerable.Range(0, heads).Average(hh => patterns[l].Data[(hh * n + q) * n + k]);
                string[] labels = ids.Select(id => lm.Tokenizer.TokenDisplay(id)).ToArray();
                Plots.Heatmap(path, $"layer {l}, {(parse.GetValue(head) is { } hp ? $"head {hp}" : "mean over heads")}", values, labels, labels);
            }
            if (parse.GetValue(json))
            {
                JsonOutput.Write(report);
                return 0;
            }
            var table = new Table().Border(TableBorder.Rounded).Title($"where the last token ({Markup.Escape(lm.Tokenizer.TokenDisplay(ids[^1]))}) looks").AddColumn("layer").AddColumn("head");
            foreach (ReportSpan s in report.Spans) table.AddColumn(new TableColumn(Markup.Escape(s.Name)).RightAligned());
            foreach (ReportAttentionRow r in report.LastQuery) table.AddRow([r.Layer.ToString(), r.Head.ToString(), .. r.Shares.Select(v => $"{v:P1}")]);
            AnsiConsole.Write(table);
            return 0;
        }));
        return command;
    }
}
