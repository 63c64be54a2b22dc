namespace NextToken.Chat;

/// <summary>One turn of a conversation.</summary>
public sealed record ChatMessage(string Role, string Content);

/// <summary>
/// Turns a conversation into the exact prompt text a chat model was trained on, by rendering
/// the model's own Jinja chat template (GGUF <c>tokenizer.chat_template</c> or Hugging Face's
/// <c>tokenizer_config.json</c>).
/// </summary>
public sealed class ChatTemplate
{
    private readonly JinjaTemplate _template;

    public ChatTemplate(string source, string name = "chat template")
    {
        Source = source;
        Name = name;
        try
        {
            _template = JinjaTemplate.Parse(source);
        }
        catch (TemplateException error)
        {
            throw new TemplateException($"{name}: {error.Message}");
        }
    }

    public string Source { get; }
    public string Name { get; }

    /// <param name="today">The date templates see through <c>strftime_now</c> (some print it in the system turn).</param>
    public string Render(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt = true, string bosToken = "", string eosToken = "", DateTime? today = null)
    {
        var variables = new Dictionary<string, object?>
        {
            ["messages"] = messages.Select(m => (object?)new Dictionary<string, object?> { ["role"] = m.Role, ["content"] = m.Content }).ToList(),
            ["add_generation_prompt"] = addGenerationPrompt,
            ["bos_token"] = bosToken,
            ["eos_token"] = eosToken,
        };
        try
        {
            return _template.Render(variables, today);
        }
        catch (TemplateException error)
        {
            throw new TemplateException($"{Name}: {error.Message}");
        }
    }
}
