using System.CommandLine;
using System.Diagnostics;
using NextToken.Generation;
using NextToken.Models;
using Spectre.Console;

namespace NextToken.Cli.Commands;

/// <summary><c>nexttoken generate</c>: greedy continuation, streamed as it is produced.</summary>
internal static class GenerateCommand
{
    public static Command Create()
    {
        var model = CommonOptions.Model();
        var prompt = CommonOptions.Prompt();
        var promptArgument = CommonOptions.PromptArgument();
        var tokens = CommonOptions.Tokens();
        var maxTokens = new Option<int>("--max-tokens", "-n") { Description = "Most new tokens to generate", DefaultValueFactory = _ => 32 };
        var temperature = new Option<float>("--temperature") { Description = "Sampling temperature; this version supports 0 (greedy) only", DefaultValueFactory = _ => 0f };
        var addBos = CommonOptions.AddBos();
        var parseSpecial = CommonOptions.ParseSpecial();
        var ignoreEos = new Option<bool>("--ignore-eos") { Description = "Keep generating past the end-of-sequence token" };
        var threads = CommonOptions.Threads();
        var json = CommonOptions.Json();
        var command = new Command("generate", "Continue a prompt token by token (temperature 0: always the top token)")
        {
            promptArgument, model, prompt, tokens, maxTokens, temperature, addBos, parseSpecial, ignoreEos, threads, json,
        };
        command.SetAction(parse => CommonOptions.Run(parse, () =>
        {
            if (parse.GetValue(temperature) != 0)
                throw new NextTokenException($"--temperature {parse.GetValue(temperature)}: this version generates greedily only; use --temperature 0");
            int max = parse.GetValue(maxTokens);
            if (max < 0) throw new NextTokenException($"--max-tokens must be 0 or more, not {max}");
            using LanguageModel lm = CommonOptions.LoadModel(parse.GetValue(model)!, parse.GetValue(threads));
            string? text = parse.GetValue(prompt) ?? parse.GetValue(promptArgument);
            int[] ids = CommonOptions.PromptIds(lm.Tokenizer, text, parse.GetValue(tokens), parse.GetValue(addBos), parse.GetValue(parseSpecial));
            if (ids.Length >= lm.ContextLength)
                throw new ContextFullException(0, ids.Length, lm.ContextLength);
            var generator = new GreedyGenerator(lm);
            bool asJson = parse.GetValue(json);
            var generated = new List<int>();
            var output = new System.Text.StringBuilder();
            if (!asJson) AnsiConsole.Markup($"[grey]{Markup.Escape(text ?? lm.Tokenizer.Decode(ids))}[/]");
            var clock = Stopwatch.StartNew();
            foreach (GeneratedToken token in generator.Generate(ids, max, stopAtEos: !parse.GetValue(ignoreEos)))
            {
                generated.Add(token.Id);
                output.Append(token.Text);
                if (!asJson) Console.Write(token.Text);
            }
            output.Append(generator.TrailingText);
            double seconds = clock.Elapsed.TotalSeconds;
            if (asJson)
            {
                JsonOutput.Write(new { tokens = generated, text = output.ToString(), stop_reason = generator.StopReason.ToString() });
                return 0;
            }
            Console.WriteLine(generator.TrailingText);
            string why = generator.StopReason switch
            {
                StopReason.EndOfSequence => "end-of-sequence token",
                StopReason.ContextFull => $"context full ({lm.ContextLength} tokens)",
                _ => "max tokens",
            };
            AnsiConsole.MarkupLine($"[grey]{generated.Count} tokens in {seconds:F2} s ({generated.Count / Math.Max(seconds, 1e-9):F1} tok/s, prompt included); stopped: {why}[/]");
            return 0;
        }));
        return command;
    }
}
