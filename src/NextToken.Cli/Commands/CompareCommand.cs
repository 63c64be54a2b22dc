using System.CommandLine;
using NextToken.Chat;
using NextToken.Inspection;
using NextToken.Models;
using Spectre.Console;

namespace NextToken.Cli.Commands;

/// <summary><c>nexttoken compare</c>: the next-token list under two contexts, side by side.</summary>
internal static class CompareCommand
{
    public static Command Create()
    {
        var model = CommonOptions.Model();
        var prompt = CommonOptions.Prompt();
        prompt.Required = true;
        var promptB = new Option<string?>("--prompt-b") { Description = "Prompt of context B (default: the same prompt)" };
        var systemA = new Option<string?>("--system-a") { Description = "System prompt of context A (default: none)" };
        var systemB = new Option<string?>("--system-b") { Description = "System prompt of context B (default: none)" };
        var top = new Option<int>("--top", "-k") { Description = "Rows of the ranked lists", DefaultValueFactory = _ => 10 };
        var template = TemplateCommand.TemplateOption();
        var raw = new Option<bool>("--raw") { Description = "Plain text, even when the model has a chat template" };
        var threads = CommonOptions.Threads();
        var json = CommonOptions.Json();
        var command = new Command("compare", "Compare next-token distributions under two contexts (e.g. with and without a system prompt)")
        {
            model, prompt, promptB, systemA, systemB, top, template, raw, threads, json,
        };
        command.SetAction(parse => CommonOptions.Run(parse, () =>
        {
            using LanguageModel lm = CommonOptions.LoadModel(parse, parse.GetValue(model), parse.GetValue(threads));
            ChatTemplate? chat = ContextBuilder.Template(lm, parse.GetValue(template), parse.GetValue(raw));
            int[] a = ContextBuilder.Tokens(lm, parse.GetValue(prompt)!, parse.GetValue(systemA), chat);
            int[] b = ContextBuilder.Tokens(lm, parse.GetValue(promptB) ?? parse.GetValue(prompt)!, parse.GetValue(systemB), chat);
            int k = parse.GetValue(top);
            if (k < 1) throw new NextTokenException($"--top must be at least 1, not {k}");
            CompareReport result = Reports.Compare(lm, a, b, k);
            if (parse.GetValue(json))
            {
                JsonOutput.Write(result);
                return 0;
            }
            AnsiConsole.MarkupLine($"A: {a.Length} tokens{(parse.GetValue(systemA) is { } sa ? $", system \"{Markup.Escape(sa)}\"" : "")}   B: {b.Length} tokens{(parse.GetValue(systemB) is { } sb ? $", system \"{Markup.Escape(sb)}\"" : "")}{(chat is null ? "" : $"   (formatted with {Markup.Escape(chat.Name)})")}");
            var table = new Table().Border(TableBorder.Rounded).AddColumn(new TableColumn("rank in B").RightAligned()).AddColumn("token")
                .AddColumn(new TableColumn("P(A)").RightAligned()).AddColumn(new TableColumn("P(B)").RightAligned())
                .AddColumn(new TableColumn("rank in A").RightAligned()).AddColumn(new TableColumn("change").RightAligned());
            var newIds = result.NewInTopK.Select(t => t.Id).ToHashSet();
            foreach (ReportComparedToken t in result.TopB)
            {
                string change = newIds.Contains(t.Id) ? "[green]new[/]" : t.RankChange > 0 ? $"[green]▲{t.RankChange}[/]" : t.RankChange < 0 ? $"[red]▼{-t.RankChange}[/]" : "=";
                table.AddRow(t.RankB.ToString(), Markup.Escape(lm.Tokenizer.TokenDisplay(t.Id)), $"{t.ProbabilityA:P2}", $"{t.ProbabilityB:P2}", t.RankA.ToString("N0"), change);
            }
            AnsiConsole.Write(table);
            if (result.Dropped.Length > 0)
                AnsiConsole.MarkupLine("dropped from A's top " + k + ": " + string.Join(", ", result.Dropped.Select(t => $"{Markup.Escape(lm.Tokenizer.TokenDisplay(t.Id))} (rank {t.RankA} → {t.RankB:N0})")));
            AnsiConsole.MarkupLine($"KL(A‖B) {result.KlAB:F4}  KL(B‖A) {result.KlBA:F4}  JS {result.JensenShannon:F4}  TV {result.TotalVariation:F4} nats/prob;  entropy A {result.EntropyA:F3}, B {result.EntropyB:F3} nats;  top-{k} overlap {result.TopKOverlap}/{k}");
            return 0;
        }));
        return command;
    }

    internal static float[] NextLogits(LanguageModel model, int[] tokens)
    {
        var logits = new float[model.VocabSize];
        model.Forward(model.CreateState(), tokens, logits);
        return logits;
    }
}
