using System.CommandLine;
using NextToken.Inspection;
using NextToken.Models;
using Spectre.Console;

namespace NextToken.Cli.Commands;

/// <summary><c>nexttoken map</c>: the activation-space navigator.</summary>
internal static class MapCommand
{
    public static Command Create()
    {
        var model = CommonOptions.Model();
        var prompts = new Option<string>("--prompts") { Description = "Text file, one prompt per line", Required = true };
        var layer = new Option<int>("--layer") { Description = "Residual stream entering this layer (the layer count = the final residual)", DefaultValueFactory = _ => 0 };
        var axisA = new Option<string?>("--axis-a") { Description = "Prompts (one per line) for one end of a concept axis, e.g. code" };
        var axisB = new Option<string?>("--axis-b") { Description = "Prompts for the other end, e.g. legal text; the x axis becomes mean(A) − mean(B)" };
        var plot = new Option<string?>("--plot") { Description = "Scatter plot (.png or .svg) with token labels" };
        var threads = CommonOptions.Threads();
        var json = CommonOptions.Json();
        var command = new Command("map", "Project per-token residual vectors to 2-D (PCA or concept axes)")
        {
            model, prompts, layer, axisA, axisB, plot, threads, json,
        };
        command.SetAction(parse => CommonOptions.Run(parse, () =>
        {
            using LanguageModel lm = CommonOptions.LoadModel(parse, parse.GetValue(model), parse.GetValue(threads));
            int[][] Read(string path) => File.ReadAllLines(path).Where(l => l.Trim().Length > 0)
                .Select(l => lm.Tokenizer.Encode(l, lm.Tokenizer.Vocabulary.AddBos).Ids).ToArray() is { Length: > 0 } r ? r : throw new NextTokenException($"{path}: no prompts");
            int l = parse.GetValue(layer);
            var (a, b) = (parse.GetValue(axisA), parse.GetValue(axisB));
            if ((a is null) != (b is null)) throw new NextTokenException("a concept axis needs both --axis-a and --axis-b");
            MapReport report = Reports.Map(lm, Read(parse.GetValue(prompts)!), l, a is null ? null : Read(a), b is null ? null : Read(b),
                a is null || b is null ? "" : $"{Path.GetFileNameWithoutExtension(a)} − {Path.GetFileNameWithoutExtension(b)}");
            if (parse.GetValue(plot) is { } path)
                Plots.LabelledScatter(path, $"residual stream at layer {l}", report.XAxis, report.YAxis,
                    report.Points.Select(p => (p.X, p.Y, lm.Tokenizer.TokenDisplay(p.Id), p.Prompt)).ToList());
            if (parse.GetValue(json))
            {
                JsonOutput.Write(report);
                return 0;
            }
            var table = new Table().Border(TableBorder.Rounded).Title($"{report.Points.Length} token vectors at layer {l}").AddColumn("prompt").AddColumn("token")
                .AddColumn(new TableColumn(Markup.Escape(report.XAxis)).RightAligned()).AddColumn(new TableColumn(Markup.Escape(report.YAxis)).RightAligned());
            foreach (ReportMapPoint p in report.Points.Take(200)) table.AddRow((p.Prompt + 1).ToString(), Markup.Escape(lm.Tokenizer.TokenDisplay(p.Id)), p.X.ToString("F2"), p.Y.ToString("F2"));
            AnsiConsole.Write(table);
            return 0;
        }));
        return command;
    }
}
