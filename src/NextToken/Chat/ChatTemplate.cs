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

    /// <summary>
    /// Formats for models whose files carry no template, by name. "plain" is what NextToken uses
    /// for base models such as GPT-2: the system prompt as a paragraph, then "User:" and
    /// "Assistant:" lines, ending with "Assistant:" for the model to continue.
    /// </summary>
    public static IReadOnlyDictionary<string, string> BuiltIn { get; } = new Dictionary<string, string>
    {
        ["plain"] =
            "{% for m in messages %}{% if m.role == 'system' %}{{ m.content }}\n\n{% elif m.role == 'user' %}User: {{ m.content }}\n" +
            "{% else %}Assistant: {{ m.content }}\n{% endif %}{% endfor %}{% if add_generation_prompt %}Assistant:{% endif %}",
        ["chatml"] =
            "{% for m in messages %}{{ '<|im_start|>' + m.role + '\n' + m.content + '<|im_end|>\n' }}{% endfor %}" +
            "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}",
        ["llama2"] =
            "{% if messages[0].role == 'system' %}{% set system = '<<SYS>>\n' + messages[0].content + '\n<</SYS>>\n\n' %}{% set rest = messages[1:] %}" +
            "{% else %}{% set system = '' %}{% set rest = messages %}{% endif %}" +
            "{% for m in rest %}{% if m.role == 'user' %}{{ bos_token + '[INST] ' + (system if loop.first else '') + m.content.strip() + ' [/INST]' }}" +
            "{% else %}{{ ' ' + m.content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}",
        ["llama3"] =
            "{{ bos_token }}{% for m in messages %}{{ '<|start_header_id|>' + m.role + '<|end_header_id|>\n\n' + m.content | trim + '<|eot_id|>' }}{% endfor %}" +
            "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}",
        ["phi3"] =
            "{% for m in messages %}{{ '<|' + m.role + '|>\n' + m.content + '<|end|>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}",
        ["zephyr"] =
            "{% for m in messages %}{{ '<|' + m.role + '|>\n' + m.content + eos_token + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}",
        ["gemma"] =
            "{{ bos_token }}{% for m in messages %}{% set role = 'model' if m.role == 'assistant' else 'user' %}" +
            "{{ '<start_of_turn>' + role + '\n' + m.content | trim + '<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}",
    };

    public static ChatTemplate FromName(string name) =>
        BuiltIn.TryGetValue(name, out string? source)
            ? new ChatTemplate(source, $"built-in template '{name}'")
            : throw new TemplateException($"unknown template '{name}'; built-in templates: {string.Join(", ", BuiltIn.Keys)}");

    /// <summary>The model's template from <c>tokenizer.chat_template</c>, or null when the file has none.</summary>
    public static ChatTemplate? FromGguf(Gguf.GgufFile file) =>
        FromModelText(file.GetStringOrNull("tokenizer.chat_template"), $"{file.FilePath}: tokenizer.chat_template");

    /// <summary>A model's own template text (null when it has none); a template that cannot be parsed suggests the built-ins.</summary>
    public static ChatTemplate? FromModelText(string? source, string name)
    {
        if (source is null) return null;
        try
        {
            return new ChatTemplate(source, name);
        }
        catch (TemplateException error)
        {
            throw new TemplateException($"{error.Message}. Pick a built-in format with --template NAME ({string.Join(", ", BuiltIn.Keys)})");
        }
    }

    /// <param name="today">The date templates see through <c>strftime_now</c> (some print it in the system turn).</param>
    public string Render(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt = true, string bosToken = "", string eosToken = "", DateTime? today = null) =>
        Render(ChatConversation.FromMessages(messages), addGenerationPrompt, bosToken, eosToken, today);

    /// <summary>
    /// Renders JSON-shaped messages (with <c>tool_calls</c>, <c>tool</c> turns, …) and tools, with the
    /// variables Hugging Face's <c>apply_chat_template</c> passes: <c>messages</c>, <c>tools</c> (None when
    /// there are none), <c>documents</c> (None), <c>add_generation_prompt</c>, <c>bos_token</c>, <c>eos_token</c>.
    /// A template that calls <c>raise_exception(text)</c> fails with a <see cref="TemplateException"/> whose
    /// <see cref="TemplateException.Raised"/> is that text.
    /// </summary>
    public string Render(ChatConversation conversation, bool addGenerationPrompt = true, string bosToken = "", string eosToken = "", DateTime? today = null)
    {
        var variables = new Dictionary<string, object?>
        {
            ["messages"] = conversation.Messages,
            ["tools"] = conversation.Tools,
            ["documents"] = null,
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
            throw new TemplateException($"{Name}: {error.Message}") { Raised = error.Raised };
        }
    }
}
