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
            if (parse.GetValue(recent) < 1) throw new NextTokenException($"--recent must be at least 1, not {parse.GetValue(recent)}");
            var (_, cache) = lm.RunWithCache(ids, name => name.EndsWith(HookNames.PatternSuffix, StringComparison.Ordinal));
            CachedActivation[] patterns = cache.AttentionPatterns(lm.LayerCount);
            int heads = patterns[0].Shape[0];
            int? chosenLayer = parse.GetValue(layer);
            if (chosenLayer is { } cl && (cl < 0 || cl >= lm.LayerCount)) throw new NextTokenException($"--layer {cl}: the model has layers 0 to {lm.LayerCount - 1}");
            if (parse.GetValue(head) is { } ch && (ch < 0 || ch >= heads)) throw new NextTokenException($"--head {ch}: the model has heads 0 to {heads - 1}");
            var namedSpans = new List<(string Name, int Start, int End)> { ("first token", 0, 1), ($"last {parse.GetValue(recent)}", Math.Max(0, n - parse.GetValue(recent)), n) };
            foreach (string span in parse.GetValue(spans) ?? [])
            {
                string[] parts = span.Split(':');
                if (parts.Length != 2 || !int.TryParse(parts[0], out int s) || !int.TryParse(parts[1], out int e) || s < 0 || e > n || s >= e)
                    throw new NextTokenException($"--span '{span}': expected START:END with 0 ≤ START < END ≤ {n}");
                namedSpans.Add(($"{s}:{e}", s, e));
            }
            int query = n - 1;
            var rows = new List<(int Layer, int Head, double[] Shares)>();
            foreach (int l in chosenLayer is { } only ? [only] : Enumerable.Range(0, lm.LayerCount))
                for (int h = 0; h < heads; h++)
                    rows.Add((l, h, namedSpans.Select(s => AttentionShares.Share(patterns[l], h, query, s.Start, s.End)).ToArray()));

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
                JsonOutput.Write(new
                {
                    tokens = ids,
                    spans = namedSpans.Select(s => new { name = s.Name, start = s.Start, end = s.End }).ToArray(),
                    last_query = rows.Select(r => new { layer = r.Layer, head = r.Head, shares = r.Shares }).ToArray(),
                    patterns = chosenLayer is { } pl ? patterns[pl].Data : null,
                });
                return 0;
            }
            var table = new Table().Border(TableBorder.Rounded).Title($"where the last token ({Markup.Escape(lm.Tokenizer.TokenDisplay(ids[^1]))}) looks").AddColumn("layer").AddColumn("head");
            foreach (var s in namedSpans) table.AddColumn(new TableColumn(Markup.Escape(s.Name)).RightAligned());
            foreach (var (l, h, shares) in rows) table.AddRow([l.ToString(), h.ToString(), .. shares.Select(v => $"{v:P1}")]);
            AnsiConsole.Write(table);
            return 0;
        }));
        return command;
    }
}
