using System.CommandLine;
using System.Globalization;
using NextToken.Chat;
using NextToken.Gguf;
using NextToken.Tokenization;

namespace NextToken.Cli.Commands;

/// <summary><c>nexttoken template</c>: the exact prompt text a conversation becomes.</summary>
internal static class TemplateCommand
{
    public static Command Create()
    {
        var model = new Option<string?>("--model", "-m") { Description = "GGUF file whose tokenizer.chat_template (and BOS/EOS tokens) to use" };
        var templateFile = new Option<string?>("--template-file") { Description = "A Jinja chat template file" };
        var templateName = TemplateOption();
        var messages = new Option<string>("--messages")
        {
            Description = "JSON file: a list of messages [{\"role\": …, \"content\": …, \"tool_calls\": …}, …] or {\"messages\": […], \"tools\": […]}; " +
                "messages and tools reach the template as they are, as apply_chat_template(messages, tools=…) passes them",
            Required = true,
        };
        var bos = new Option<string?>("--bos-token") { Description = "Text of bos_token (default: the model's BOS token, else empty)" };
        var eos = new Option<string?>("--eos-token") { Description = "Text of eos_token (default: the model's EOS token, else empty)" };
        var noGenerationPrompt = new Option<bool>("--no-generation-prompt") { Description = "Leave out the opening of the assistant's turn" };
        var date = new Option<string?>("--date") { Description = "The day strftime_now returns, YYYY-MM-DD (default today)" };
        var command = new Command("template", "Render a conversation with a chat template and print the prompt exactly")
        {
            model, templateFile, templateName, messages, bos, eos, noGenerationPrompt, date,
        };
        command.SetAction(parse => CommonOptions.Run(parse, () =>
        {
            using GgufFile? file = parse.GetValue(model) is { } path ? GgufFile.Open(path) : null;
            Vocabulary? vocabulary = file?.ContainsKey("tokenizer.ggml.tokens") == true ? Vocabulary.FromGguf(file) : null;
            ChatTemplate template = Resolve(file, parse.GetValue(templateFile), parse.GetValue(templateName));
            DateTime? today = parse.GetValue(date) is { } d
                ? DateTime.TryParseExact(d, "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.None, out DateTime parsed)
                    ? parsed : throw new NextTokenException($"--date '{d}': expected YYYY-MM-DD")
                : null;
            string rendered = template.Render(ChatConversation.Load(parse.GetValue(messages)!), !parse.GetValue(noGenerationPrompt),
                parse.GetValue(bos) ?? TokenText(vocabulary, vocabulary?.BosId), parse.GetValue(eos) ?? TokenText(vocabulary, vocabulary?.EosId), today);
            Console.Out.Write(rendered);
            Console.Out.Flush();
            return 0;
        }));
        return command;
    }

    public static Option<string?> TemplateOption() =>
        new("--template") { Description = $"Built-in chat format instead of the model's: {string.Join(", ", ChatTemplate.BuiltIn.Keys)}" };

    /// <summary>An explicit file or name first, then the model's own template; "plain" when the model has none.</summary>
    public static ChatTemplate Resolve(GgufFile? file, string? templateFile, string? templateName)
    {
        if (templateFile is null && templateName is null && file is null) throw new NextTokenException("give --model, --template-file or --template NAME");
        return Resolve(file?.GetStringOrNull("tokenizer.chat_template"), $"{file?.FilePath}: tokenizer.chat_template", templateFile, templateName);
    }

    public static ChatTemplate Resolve(Models.LanguageModel model, string? templateFile, string? templateName) =>
        Resolve(model.ChatTemplate, $"{model.FilePath}: chat template", templateFile, templateName);

    private static ChatTemplate Resolve(string? own, string ownName, string? templateFile, string? templateName)
    {
        if (templateFile is not null) return new ChatTemplate(File.ReadAllText(templateFile), templateFile);
        if (templateName is not null) return ChatTemplate.FromName(templateName);
        return ChatTemplate.FromModelText(own, ownName) ?? ChatTemplate.FromName("plain");
    }

    public static string TokenText(Vocabulary? vocabulary, int? id) => vocabulary is not null && id is { } i ? vocabulary.Tokens[i] : "";
}
