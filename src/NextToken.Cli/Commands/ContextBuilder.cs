using NextToken.Chat;
using NextToken.Models;

namespace NextToken.Cli.Commands;

/// <summary>Turns a prompt and an optional system prompt into tokens: chat-formatted when the model has a template.</summary>
internal static class ContextBuilder
{
    public static int[] Tokens(LanguageModel model, string prompt, string? system, ChatTemplate? template)
    {
        var vocabulary = model.Tokenizer.Vocabulary;
        if (template is null)
        {
            // Base models: the system prompt is a paragraph in front of the prompt.
            string text = system is null ? prompt : system + "\n\n" + prompt;
            return model.Tokenizer.Encode(text, vocabulary.AddBos).Ids;
        }
        var messages = new List<ChatMessage>();
        if (system is not null) messages.Add(new ChatMessage("system", system));
        messages.Add(new ChatMessage("user", prompt));
        string bos = TemplateCommand.TokenText(vocabulary, vocabulary.BosId);
        string rendered = template.Render(messages, addGenerationPrompt: true, bos, TemplateCommand.TokenText(vocabulary, vocabulary.EosId));
        bool addBos = vocabulary.AddBos && (bos.Length == 0 || !rendered.StartsWith(bos, StringComparison.Ordinal));
        return model.Tokenizer.Encode(rendered, addBos, parseSpecial: true).Ids;
    }

    /// <summary>The template to format with: an explicit choice, else the model's own, else none (plain text).</summary>
    public static ChatTemplate? Template(LanguageModel model, string? name, bool raw) =>
        raw ? null : name is not null ? ChatTemplate.FromName(name) : ChatTemplate.FromModelText(model.ChatTemplate, $"{model.FilePath}: chat template");
}
