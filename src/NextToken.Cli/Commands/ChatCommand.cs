using System.CommandLine;
using System.Globalization;
using NextToken.Chat;
using NextToken.Generation;
using NextToken.Models;
using NextToken.Sampling;
using Spectre.Console;

namespace NextToken.Cli.Commands;

/// <summary>
/// <c>nexttoken chat</c>: a multi-turn console conversation. Each turn renders the whole
/// conversation with the chat template, but only the tokens after the longest prefix already in
/// the KV cache are run, so earlier turns are not re-read.
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
        var sampling = new SamplingFlags();
        var command = new Command("chat", "Talk with a model turn by turn (/system TEXT, /reset, /temp T, /quit)")
        {
            model, system, template, templateFile, reanchor, maxTokens, threads,
        };
        sampling.AddTo(command);
        command.SetAction((parse, cancellation) => CommonOptions.RunAsync(parse, async () =>
        {
            using LanguageModel lm = CommonOptions.LoadModel(parse, parse.GetValue(model), parse.GetValue(threads));
            ChatTemplate chatTemplate = TemplateCommand.Resolve(lm, parse.GetValue(templateFile), parse.GetValue(template));
            bool plain = chatTemplate.Source == ChatTemplate.BuiltIn["plain"];
            var vocabulary = lm.Tokenizer.Vocabulary;
            string bos = TemplateCommand.TokenText(vocabulary, vocabulary.BosId), eos = TemplateCommand.TokenText(vocabulary, vocabulary.EosId);
            SamplingOptions options = sampling.Build(parse);
            ulong seed = parse.GetValue(sampling.Seed) ?? Xoshiro256StarStar.RandomSeed();
            int every = parse.GetValue(reanchor);
            if (every < 0) throw new NextTokenException($"--reanchor must be 0 or more, not {every}");
            string? systemPrompt = parse.GetValue(system);
            var history = new List<ChatMessage>();
            ModelState state = lm.CreateState();
            var cached = new List<int>();
            int turn = 0;

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
                            history.Clear();
                            turn = 0;
                            AnsiConsole.MarkupLine("[grey]conversation cleared[/]");
                            continue;
                        case "/system":
                            systemPrompt = parts.Length > 1 ? parts[1] : null;
                            AnsiConsole.MarkupLine($"[grey]system prompt {(systemPrompt is null ? "removed" : "set")}[/]");
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

                turn++;
                string content = every > 0 && turn % every == 0 && systemPrompt is not null
                    ? $"(Reminder of your instructions: {systemPrompt})\n\n{line}"
                    : line;
                var messages = new List<ChatMessage>();
                if (systemPrompt is not null) messages.Add(new ChatMessage("system", systemPrompt));
                messages.AddRange(history);
                messages.Add(new ChatMessage("user", content));
                string prompt = chatTemplate.Render(messages, addGenerationPrompt: true, bos, eos);
                bool addBos = vocabulary.AddBos && (bos.Length == 0 || !prompt.StartsWith(bos, StringComparison.Ordinal));
                int[] ids = lm.Tokenizer.Encode(prompt, addBos, parseSpecial: true).Ids;
                if (ids.Length >= lm.ContextLength)
                {
                    AnsiConsole.MarkupLine($"[red]the conversation is {ids.Length} tokens, over the context of {lm.ContextLength}: /reset to start again[/]");
                    turn--;
                    continue;
                }

                // Reuse the cache up to the first token that differs; keep at least one token to run.
                int reuse = 0;
                while (reuse < cached.Count && reuse < ids.Length - 1 && cached[reuse] == ids[reuse]) reuse++;
                state.Rewind(Math.Min(reuse, state.Position));
                var generator = new Generator(lm);
                var reply = new System.Text.StringBuilder();
                Console.Write("assistant> ");
                await foreach (GeneratedToken token in generator.GenerateAsync(state, ids[reuse..], new GenerationOptions
                {
                    MaxTokens = CommonOptions.Checked(parse, maxTokens, 0),
                    Sampling = options,
                    Seed = seed + (ulong)turn,
                    StopStrings = plain ? ["\nUser:", "\nAssistant:"] : [],
                }, cancellation))
                {
                    reply.Append(token.Text);
                    Console.Write(token.Text);
                }
                reply.Append(generator.TrailingText);
                Console.WriteLine(generator.TrailingText);
                cached = ids.Concat(generator.Generated).Take(state.Position).ToList();
                history.Add(new ChatMessage("user", content));
                history.Add(new ChatMessage("assistant", reply.ToString().Trim()));
                AnsiConsole.MarkupLine($"[grey]({generator.Generated.Count} tokens; {reuse} of {ids.Length} prompt tokens reused from the cache)[/]");
            }
            return 0;
        }));
        return command;
    }
}
