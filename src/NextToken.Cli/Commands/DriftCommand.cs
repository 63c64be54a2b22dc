using System.CommandLine;
using NextToken.Chat;
using NextToken.Inspection;
using NextToken.Models;
using Spectre.Console;

namespace NextToken.Cli.Commands;

/// <summary><c>nexttoken drift</c>: does the system prompt lose its grip as the conversation grows?</summary>
internal static class DriftCommand
{
    public static Command Create()
    {
        var model = CommonOptions.Model();
        var system = new Option<string>("--system", "-s") { Description = "System prompt", Required = true };
        var conversation = new Option<string?>("--conversation") { Description = "JSONL file, one {\"role\", \"content\"} turn per line" };
        var synthetic = new Option<int?>("--synthetic") { Description = "Use N built-in user/assistant exchanges instead of a file" };
        var reanchor = new Option<int>("--reanchor") { Description = "Also measure with the system prompt restated in every Nth user turn" };
        var template = TemplateCommand.TemplateOption();
        var plot = new Option<string?>("--plot") { Description = "Line chart (.png or .svg) of attention share and KL per turn" };
        var threads = CommonOptions.Threads();
        var context = CommonOptions.Context();
        var json = CommonOptions.Json();
        var command = new Command("drift", "Measure, turn by turn, the attention paid to the system prompt and its effect on the next token")
        {
            model, system, conversation, synthetic, reanchor, template, plot, threads, context, json,
        };
        command.SetAction(parse => CommonOptions.Run(parse, () =>
        {
            using LanguageModel lm = CommonOptions.LoadModel(parse, parse.GetValue(model), parse.GetValue(threads), parse.GetValue(context));
            ChatTemplate chat = TemplateCommand.Resolve(lm, null, parse.GetValue(template));
            List<ChatMessage> turns = (parse.GetValue(conversation), CommonOptions.Checked(parse, synthetic, 1, 100_000)) switch
            {
                ({ } conversationPath, null) => ReadJsonl(conversationPath),
                (null, { } n) when n > 0 => DriftMeter.SyntheticConversation(n),
                (null, null) => throw new NextTokenException("give --conversation FILE.jsonl or --synthetic N"),
                _ => throw new NextTokenException("give either --conversation or --synthetic N (N ≥ 1), not both"),
            };
            int every = parse.GetValue(reanchor);
            if (every < 0) throw new NextTokenException($"--reanchor must be 0 (off) or more, not {every}");
            DriftReport report = Reports.Drift(lm, chat, parse.GetValue(system)!, turns, every);
            ReportDriftTurn[] plain = report.Turns;
            ReportDriftTurn[]? anchored = report.Reanchored;
            if (parse.GetValue(plot) is { } path)
            {
                double[] x = plain.Select(t => (double)t.Turn).ToArray();
                var series = new List<(string, double[])>
                {
                    ("attention to system prompt", plain.Select(t => t.SystemShare).ToArray()),
                    ("attention to first token (sink)", plain.Select(t => t.SinkShare).ToArray()),
                    ("KL(with ‖ without system)", plain.Select(t => t.KlWithoutSystem).ToArray()),
                };
                if (anchored is not null) series.Add(($"attention to system prompt, restated every {every}", anchored.Select(t => t.SystemShare).ToArray()));
                Plots.Lines(path, "system prompt drift", "user turn", "share of attention / nats", x, series.ToArray());
            }
            if (parse.GetValue(json))
            {
                JsonOutput.Write(report);
                return 0;
            }
            Show($"drift ({Markup.Escape(chat.Name)})", plain);
            if (anchored is not null) Show($"with the system prompt restated every {every} user turns", anchored);
            if (report.ContextFullAtTurn is { } fullAt) AnsiConsole.MarkupLine($"[yellow]stopped before turn {fullAt}: the conversation no longer fits the context of {lm.ContextLength} tokens[/]");
            return 0;
        }));
        return command;
    }

    private static void Show(string title, ReportDriftTurn[] turns)
    {
        var table = new Table().Border(TableBorder.Rounded).Title(title).AddColumn(new TableColumn("turn").RightAligned())
            .AddColumn(new TableColumn("context").RightAligned()).AddColumn(new TableColumn("distance").RightAligned())
            .AddColumn(new TableColumn("attention to system").RightAligned()).AddColumn("per layer")
            .AddColumn(new TableColumn("to first token (sink)").RightAligned()).AddColumn(new TableColumn("KL with‖without").RightAligned());
        foreach (ReportDriftTurn t in turns)
            table.AddRow(t.Turn.ToString(), t.ContextTokens.ToString(), t.Distance.ToString(), $"{t.SystemShare:P2}",
                string.Join(" ", t.SystemSharePerLayer.Select(v => $"{v:P1}")), $"{t.SinkShare:P1}", t.KlWithoutSystem.ToString("F4"));
        AnsiConsole.Write(table);
    }

    private static List<ChatMessage> ReadJsonl(string path)
    {
        var messages = new List<ChatMessage>();
        int lineNumber = 0;
        foreach (string line in File.ReadLines(path))
        {
            lineNumber++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            try
            {
                using var doc = System.Text.Json.JsonDocument.Parse(line);
                messages.Add(new ChatMessage(doc.RootElement.GetProperty("role").GetString()!, doc.RootElement.GetProperty("content").GetString() ?? ""));
            }
            catch (Exception error) when (error is System.Text.Json.JsonException or KeyNotFoundException or InvalidOperationException)
            {
                throw new NextTokenException($"{path}:{lineNumber}: expected {{\"role\": …, \"content\": …}} ({error.Message})");
            }
        }
        return messages;
    }
}
