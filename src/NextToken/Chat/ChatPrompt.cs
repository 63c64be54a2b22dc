using NextToken.Models;
using NextToken.Tokenization;

namespace NextToken.Chat;

/// <summary>
/// Turns chat messages into the tokens a model sees — the one place that decides how (the CLI's
/// commands and the server both come here): through the model's chat template, BOS added only
/// when the vocabulary wants it and the rendered text does not already start with it, special
/// tokens written by the template recognised as such.
/// </summary>
public static class ChatPrompt
{
    /// <summary>The template to use: <paramref name="name"/> (a built-in one), else the model's own, else none.</summary>
    public static ChatTemplate? Template(LanguageModel model, string? name = null) =>
        name is not null ? ChatTemplate.FromName(name) : ChatTemplate.FromModelText(model.ChatTemplate, $"{model.FilePath}: chat template");

    /// <summary>The text of a special token, or "" when the vocabulary has none (what templates get as bos_token/eos_token).</summary>
    public static string TokenText(Vocabulary? vocabulary, int? id) => vocabulary is not null && id is { } i ? vocabulary.Tokens[i] : "";

    /// <summary>The messages rendered by <paramref name="template"/> and tokenized.</summary>
    public static int[] Tokens(LanguageModel model, IReadOnlyList<ChatMessage> messages, ChatTemplate template, bool addGenerationPrompt = true)
    {
        Vocabulary vocabulary = model.Tokenizer.Vocabulary;
        string bos = TokenText(vocabulary, vocabulary.BosId);
        string rendered = template.Render(messages, addGenerationPrompt, bos, TokenText(vocabulary, vocabulary.EosId));
        bool addBos = vocabulary.AddBos && (bos.Length == 0 || !rendered.StartsWith(bos, StringComparison.Ordinal));
        return model.Tokenizer.Encode(rendered, addBos, parseSpecial: true).Ids;
    }

    /// <summary>
    /// A prompt with an optional system prompt: chat-formatted when there is a template; for base
    /// models (no template) the system prompt is a paragraph in front of the prompt.
    /// </summary>
    public static int[] Tokens(LanguageModel model, string prompt, string? system, ChatTemplate? template)
    {
        if (template is null)
        {
            string text = system is null ? prompt : system + "\n\n" + prompt;
            return model.Tokenizer.Encode(text, model.Tokenizer.Vocabulary.AddBos).Ids;
        }
        var messages = new List<ChatMessage>();
        if (system is not null) messages.Add(new ChatMessage("system", system));
        messages.Add(new ChatMessage("user", prompt));
        return Tokens(model, messages, template);
    }
}
