using NextToken.Chat;
using NextToken.Models;

namespace NextToken.Cli.Commands;

/// <summary>The CLI's options for chat formatting, mapped onto the library's <see cref="ChatPrompt"/>.</summary>
internal static class ContextBuilder
{
    public static int[] Tokens(LanguageModel model, string prompt, string? system, ChatTemplate? template) =>
        ChatPrompt.Tokens(model, prompt, system, template);

    /// <summary>The template to format with: an explicit choice, else the model's own, else none (plain text).</summary>
    public static ChatTemplate? Template(LanguageModel model, string? name, bool raw) => raw ? null : ChatPrompt.Template(model, name);
}
