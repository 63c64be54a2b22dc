using System.CommandLine;
using NextToken.Inspection;
using NextToken.Models;
using Spectre.Console;

namespace NextToken.Cli.Commands;

/// <summary><c>nexttoken lens</c>: the logit lens, layer by layer.</summary>
internal static class LensCommand
{
    public static Command Create()
    {
        var model = CommonOptions.Model();
        var prompt = CommonOptions.Prompt();
        var promptArgument = CommonOptions.PromptArgument();
        var tokens = CommonOptions.Tokens();
        var position = new Option<int>("--position") { Description = "Position to decode (negative counts from the end)", DefaultValueFactory = _ => -1 };
        var top = new Option<int>("--top", "-k") { Description = "Tokens shown per layer", DefaultValueFactory = _ => 5 };
        var plot = new Option<string?>("--plot") { Description = "Write a chart (.png or .svg) of KL to the final distribution and the final token's probability per layer" };
        var threads = CommonOptions.Threads();
        var json = CommonOptions.Json();
        var command = new Command("lens", "Decode the residual stream after every layer through the final norm and unembedding (logit lens)")
        {
            promptArgument, model, prompt, tokens, position, top, plot, threads, json,
        };
        command.SetAction(parse => CommonOptions.Run(parse, () =>
        {
            using LanguageModel lm = CommonOptions.LoadModel(parse, parse.GetValue(model), parse.GetValue(threads));
            int[] ids = CommonOptions.PromptIds(lm.Tokenizer, parse.GetValue(prompt) ?? parse.GetValue(promptArgument), parse.GetValue(tokens), lm.Tokenizer.Vocabulary.AddBos, false);
            if (parse.GetValue(top) < 1) throw new NextTokenException($"--top must be at least 1, not {parse.GetValue(top)}");
            LensResult lens = LogitLens.Analyze(lm, ids, parse.GetValue(position), parse.GetValue(top));
            LensLayer[] layers = lens.Layers;
            int finalTop = layers[^1].Top[0].Id;
            if (parse.GetValue(plot) is { } path)
            {
                double[] x = Enumerable.Range(0, layers.Length).Select(i => (double)i).ToArray();
                Plots.Lines(path, $"logit lens: how early \"{lm.Tokenizer.TokenText(finalTop)}\" emerges", "depth (0 = embeddings)", "nats / probability", x,
                    ("KL(final ‖ layer)", layers.Select(l => l.KlToFinal).ToArray()),
                    ("P(final top token)", layers.Select(l => new TokenDistribution(l.Logits).Probability(finalTop)).ToArray()));
            }
            if (parse.GetValue(json))
            {
                JsonOutput.Write(Reports.Lens(lm, ids, parse.GetValue(position), parse.GetValue(top)));
                return 0;
            }
            int at = (parse.GetValue(position) + ids.Length) % ids.Length;
            var table = new Table().Border(TableBorder.Rounded).Title($"logit lens at position {(parse.GetValue(position) + ids.Length) % ids.Length} ({Markup.Escape(lm.Tokenizer.TokenDisplay(ids[(parse.GetValue(position) + ids.Length) % ids.Length]))})")
                .AddColumn("residual stream").AddColumn("decodes to (probability)").AddColumn(new TableColumn("KL to final").RightAligned())
                .AddColumn(new TableColumn($"rank of {Markup.Escape(lm.Tokenizer.TokenDisplay(finalTop))}").RightAligned())
                .AddColumn(new TableColumn("residual norm").RightAligned());
            for (int s = 0; s < layers.Length; s++)
            {
                LensLayer l = layers[s];
                // Stage s > 0 is block s - 1's output (hook_resid_post); the embeddings have no block before them.
                table.AddRow(l.Stage, string.Join("  ", l.Top.Select(t => $"{Markup.Escape(lm.Tokenizer.TokenDisplay(t.Id))} {t.Probability:P1}")),
                    l.KlToFinal.ToString("F3"), l.RankOfFinalTop.ToString("N0"), s == 0 ? "" : lens.ResidualNorms[s - 1][at].ToString("F2"));
            }
            AnsiConsole.Write(table);
            return 0;
        }));
        return command;
    }
}
