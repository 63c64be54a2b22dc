using System.CommandLine;
using System.Globalization;
using NextToken.Chat;
using NextToken.Generation;
using NextToken.Models;
using NextToken.Sampling;
using Spectre.Console;

namespace NextToken.Cli.Commands;

/// <summary>
/// <c>nexttoken chat</c>: a multi-turn console conversation over the library's <see cref="ChatSession"/>
/// (history, KV-cache prefix reuse, re-anchoring).
/// </summary>
internal static class ChatCommand
{
    public static Command Create()
    {
        var model = CommonOptions.Model();
        var system = new Option<string?>("--system", "-s") { Description = "System prompt" };
        var template = TemplateCommand.TemplateOption();
        var templateFile = new Option<string?>("--template-file") { Description = "A Jinja chat template file" };
        var reanchor = new Option<int>("--reanchor") { Description = "Restate the system prompt in every Nth user turn (0 = never), against drift in long conversations" };
        var maxTokens = new Option<int>("--max-tokens", "-n") { Description = "Most tokens per reply", DefaultValueFactory = _ => 256 };
        var threads = CommonOptions.Threads();
        var context = CommonOptions.Context();
        var sampling = new SamplingFlags();
        var command = new Command("chat", "Talk with a model turn by turn (/system TEXT, /reset, /temp T, /quit)")
        {
            model, system, template, templateFile, reanchor, maxTokens, threads, context,
        };
        sampling.AddTo(command);
        command.SetAction((parse, cancellation) => CommonOptions.RunAsync(parse, async () =>
        {
            using LanguageModel lm = CommonOptions.LoadModel(parse, parse.GetValue(model), parse.GetValue(threads), parse.GetValue(context));
            ChatTemplate chatTemplate = TemplateCommand.Resolve(lm, parse.GetValue(templateFile), parse.GetValue(template));
            SamplingOptions options = sampling.Build(parse);
            ulong seed = parse.GetValue(sampling.Seed) ?? Xoshiro256StarStar.RandomSeed();
            int every = parse.GetValue(reanchor);
            if (every < 0) throw new NextTokenException($"--reanchor must be 0 or more, not {every}");
            int replyTokens = CommonOptions.Checked(parse, maxTokens, 0);
            var session = new ChatSession(lm, chatTemplate, parse.GetValue(system), every, seed);

            AnsiConsole.MarkupLine($"[grey]{Markup.Escape(Path.GetFileName(lm.FilePath))} · {Markup.Escape(chatTemplate.Name)} · {Markup.Escape(GenerateCommand.Describe(options))} · seed {seed}[/]");
            AnsiConsole.MarkupLine("[grey]/system TEXT · /reset · /temp T · /quit[/]");
            while (true)
            {
                Console.Write("you> ");
                string? line = Console.ReadLine();
                if (line is null || line.Trim() is "/quit" or "/exit") break;
                if (line.StartsWith('/'))
                {
                    string[] parts = line.Split(' ', 2);
                    switch (parts[0])
                    {
                        case "/reset":
                            session.Reset();
                            AnsiConsole.MarkupLine("[grey]conversation cleared[/]");
                            continue;
                        case "/system":
                            session.SystemPrompt = parts.Length > 1 ? parts[1] : null;
                            AnsiConsole.MarkupLine($"[grey]system prompt {(session.SystemPrompt is null ? "removed" : "set")}[/]");
                            continue;
                        case "/temp" when parts.Length > 1 && float.TryParse(parts[1], NumberStyles.Float, CultureInfo.InvariantCulture, out float t) && t >= 0:
                            options = options with { Temperature = t };
                            AnsiConsole.MarkupLine($"[grey]{Markup.Escape(GenerateCommand.Describe(options))}[/]");
                            continue;
                        default:
                            AnsiConsole.MarkupLine("[yellow]commands: /system TEXT, /reset, /temp T (T ≥ 0), /quit[/]");
                            continue;
                    }
                }

                Console.Write("assistant> ");
                try
                {
                    await foreach (GeneratedToken token in session.SendAsync(line, new GenerationOptions { MaxTokens = replyTokens, Sampling = options }, cancellation))
                        Console.Write(token.Text);
                }
                catch (ConversationTooLongException error)
                {
                    Console.WriteLine();
                    AnsiConsole.MarkupLine($"[red]{Markup.Escape(error.Message)}[/]");
                    continue;
                }
                Console.WriteLine(session.TrailingText);
                AnsiConsole.MarkupLine($"[grey]({session.LastGenerated} tokens; {session.LastReused} of {session.LastPromptTokens} prompt tokens reused from the cache)[/]");
            }
            return 0;
        }));
        return command;
    }
}
