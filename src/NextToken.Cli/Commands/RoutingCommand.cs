using System.CommandLine;
using NextToken.Chat;
using NextToken.Inspection;
using NextToken.Models;
using Spectre.Console;

namespace NextToken.Cli.Commands;

/// <summary><c>nexttoken routing</c>: the mixture-of-experts ledger.</summary>
internal static class RoutingCommand
{
    public static Command Create()
    {
        var model = CommonOptions.Model();
        var prompt = CommonOptions.Prompt();
        prompt.Required = true;
        var system = new Option<string?>("--system") { Description = "Also route the prompt behind this system prompt and list the tokens routed differently" };
        var template = TemplateCommand.TemplateOption();
        var raw = new Option<bool>("--raw") { Description = "Plain text, even when the model has a chat template" };
        var threads = CommonOptions.Threads();
        var json = CommonOptions.Json();
        var command = new Command("routing", "Which experts each token is sent to, layer by layer, and how the load spreads")
        {
            model, prompt, system, template, raw, threads, json,
        };
        command.SetAction(parse => CommonOptions.Run(parse, () =>
        {
            using LanguageModel lm = CommonOptions.LoadModel(parse, parse.GetValue(model), parse.GetValue(threads));
            ChatTemplate? chat = ContextBuilder.Template(lm, parse.GetValue(template), parse.GetValue(raw));
            int[] ids = ContextBuilder.Tokens(lm, parse.GetValue(prompt)!, null, chat);
            int[]? withSystem = parse.GetValue(system) is { } systemPrompt ? ContextBuilder.Tokens(lm, parse.GetValue(prompt)!, systemPrompt, chat) : null;
            RoutingReport report = Reports.Routing(lm, ids, withSystem);
            if (parse.GetValue(json))
            {
                JsonOutput.Write(report);
                return 0;
            }
            int layers = report.Load.Length, experts = report.Load[0].Length;
            var table = new Table().Border(TableBorder.Rounded).Title("experts per token (renormalized weight)").AddColumn(new TableColumn("#").RightAligned()).AddColumn("token");
            for (int l = 0; l < layers; l++) table.AddColumn($"layer {l}");
            for (int p = 0; p < ids.Length; p++)
            {
                var cells = new List<string> { p.ToString(), Markup.Escape(lm.Tokenizer.TokenDisplay(ids[p])) };
                foreach (ReportRoutingEntry e in report.Entries.Where(e => e.Position == p).OrderBy(e => e.Layer))
                    cells.Add(string.Join(" ", e.Experts.Zip(e.Weights, (x, w) => $"[bold]{x}[/] ({w:F2})")));
                table.AddRow(cells.ToArray());
            }
            AnsiConsole.Write(table);
            var load = new Table().Border(TableBorder.Rounded).Title("expert load (tokens routed / summed weight)").AddColumn("layer");
            for (int e = 0; e < experts; e++) load.AddColumn(new TableColumn($"expert {e}").RightAligned());
            for (int l = 0; l < layers; l++)
                load.AddRow([l.ToString(), .. report.Load[l].Select(e => $"{e.Tokens} / {e.Weight:F2}")]);
            AnsiConsole.Write(load);
            if (report.DifferencesWithSystem is { } differences)
                AnsiConsole.MarkupLine(differences.Length == 0
                    ? "with the system prompt, every shared token is routed to the same experts"
                    : $"with the system prompt, {differences.Length} (token, layer) pairs route differently: " +
                      string.Join(", ", differences.Take(20).Select(d => $"{Markup.Escape(lm.Tokenizer.TokenDisplay(ids[d.Position]))}@L{d.Layer}")));
            return 0;
        }));
        return command;
    }
}
