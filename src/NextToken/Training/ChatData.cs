using System.Text.Json;
using NextToken.Chat;
using NextToken.Tokenization;

namespace NextToken.Training;

/// <summary>A chat as tokens, with which tokens belong to an assistant turn (the ones an SFT loss counts).</summary>
public sealed record SftExample(int[] Tokens, bool[] Assistant)
{
    public int AssistantCount => Assistant.Count(a => a);
}

/// <summary>A preference example as text: one prompt, a preferred and a rejected answer.</summary>
public sealed record PreferenceText(string Prompt, string Chosen, string Rejected);

/// <summary>
/// Training data in JSONL: chats (<c>{"messages": [{"role", "content"}, …]}</c>) and preference
/// pairs (<c>{"prompt", "chosen", "rejected"}</c>), turned into tokens through a chat template.
/// Every error names the file and the line (1-based).
/// </summary>
public static class ChatData
{
    public static List<List<ChatMessage>> ReadChats(string path) => ReadLines(path, (root, where) =>
    {
        if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("messages", out JsonElement messages) || messages.ValueKind != JsonValueKind.Array)
            throw new NextTokenException($"{where}: expected an object with a \"messages\" array");
        var list = new List<ChatMessage>();
        int i = 0;
        foreach (JsonElement m in messages.EnumerateArray())
        {
            if (m.ValueKind != JsonValueKind.Object || !m.TryGetProperty("role", out JsonElement role) || role.ValueKind != JsonValueKind.String
                || !m.TryGetProperty("content", out JsonElement content) || content.ValueKind != JsonValueKind.String)
                throw new NextTokenException($"{where}: messages[{i}] needs string fields \"role\" and \"content\"");
            list.Add(new ChatMessage(role.GetString()!, content.GetString()!));
            i++;
        }
        if (!list.Any(m => m.Role == "assistant")) throw new NextTokenException($"{where}: no assistant message (nothing to learn from)");
        return list;
    });

    public static List<PreferenceText> ReadPairs(string path) => ReadLines(path, (root, where) =>
    {
        string Field(string name) =>
            root.ValueKind == JsonValueKind.Object && root.TryGetProperty(name, out JsonElement value) && value.ValueKind == JsonValueKind.String
                ? value.GetString()! : throw new NextTokenException($"{where}: expected string fields \"prompt\", \"chosen\" and \"rejected\" (\"{name}\" is missing or not a string)");
        return new PreferenceText(Field("prompt"), Field("chosen"), Field("rejected"));
    });

    /// <summary>Reads a JSONL file (blank lines skipped); <paramref name="read"/> gets each line's JSON and "FILE line N".</summary>
    private static List<T> ReadLines<T>(string path, Func<JsonElement, string, T> read)
    {
        var items = new List<T>();
        int number = 0;
        foreach (string line in File.ReadLines(path))
        {
            number++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            string where = $"{path} line {number}";
            using JsonDocument document = JsonInput.Parse(line, where);
            items.Add(read(document.RootElement, where));
        }
        if (items.Count == 0) throw new NextTokenException($"{path}: no examples (the file is empty)");
        return items;
    }

    /// <summary>
    /// Renders the chat with <paramref name="template"/> and tokenizes it, marking the tokens of each
    /// assistant turn (TRL's assistant_only_loss): the text between the conversation rendered up to the
    /// turn with the generation prompt and rendered through the turn. Segments are tokenized one by one
    /// so the mask falls on token boundaries; the template must render turns by appending.
    /// </summary>
    public static SftExample Encode(IReadOnlyList<ChatMessage> messages, ChatTemplate template, Tokenizer tokenizer, string source)
    {
        Vocabulary vocabulary = tokenizer.Vocabulary;
        string bos = ChatPrompt.TokenText(vocabulary, vocabulary.BosId), eos = ChatPrompt.TokenText(vocabulary, vocabulary.EosId);
        string Render(int count, bool generationPrompt) => template.Render([.. messages.Take(count)], generationPrompt, bos, eos);
        string full = Render(messages.Count, false);
        var tokens = new List<int>();
        var assistant = new List<bool>();
        if (vocabulary.AddBos && vocabulary.BosId is { } bosId && (bos.Length == 0 || !full.StartsWith(bos, StringComparison.Ordinal)))
        {
            tokens.Add(bosId);
            assistant.Add(false);
        }
        void Add(string text, bool isAssistant)
        {
            if (text.Length == 0) return;
            int[] ids = tokenizer.Encode(text, addBos: false, parseSpecial: true).Ids;
            tokens.AddRange(ids);
            assistant.AddRange(Enumerable.Repeat(isAssistant, ids.Length));
        }
        int position = 0;
        for (int i = 0; i < messages.Count; i++)
        {
            if (messages[i].Role != "assistant") continue;
            string before = Render(i, true), through = Render(i + 1, false);
            if (!through.StartsWith(before, StringComparison.Ordinal) || !full.StartsWith(through, StringComparison.Ordinal) || before.Length < position)
                throw new NextTokenException($"{source}: {template.Name} does not render message {i} by appending to the conversation before it; the assistant-only loss needs a template that does (try --template plain or chatml)");
            Add(full[position..before.Length], false);
            Add(full[before.Length..through.Length], true);
            position = through.Length;
        }
        Add(full[position..], false);
        return new SftExample([.. tokens], [.. assistant]);
    }

    /// <summary>Prompt tokens (a user turn with the generation prompt) and the response tokens that follow it.</summary>
    public static (int[] Prompt, int[] Response) EncodePromptResponse(string prompt, string response, ChatTemplate template, Tokenizer tokenizer, string source)
    {
        SftExample example = Encode([new ChatMessage("user", prompt), new ChatMessage("assistant", response)], template, tokenizer, source);
        int first = Array.IndexOf(example.Assistant, true);
        if (first < 0) throw new NextTokenException($"{source}: the response is empty");
        int end = Array.LastIndexOf(example.Assistant, true) + 1;
        return (example.Tokens[..first], example.Tokens[first..end]);
    }

    /// <summary>
    /// Joins prompt and response into one sequence of at most <paramref name="maxTokens"/>: the response is
    /// cut at the end, and a prompt too long to leave room for a response token loses its beginning.
    /// </summary>
    public static (int[] Sequence, int PromptLength) Fit(int[] prompt, int[] response, int maxTokens)
    {
        if (maxTokens < 2) throw new NextTokenException($"a sequence limit of {maxTokens} tokens leaves no room for prompt and response");
        int[] p = prompt.Length == 0 ? [response[0]] : prompt;
        int[] r = prompt.Length == 0 ? response[1..] : response;
        if (r.Length == 0) throw new NextTokenException("a one-token response with no prompt has nothing to score");
        if (p.Length > maxTokens - 1) p = p[^(maxTokens - 1)..];
        int keep = Math.Min(r.Length, maxTokens - p.Length);
        return ([.. p, .. r[..keep]], p.Length);
    }

    /// <summary>A preference example as one pair of token sequences sharing the prompt (each at most <paramref name="maxTokens"/>).</summary>
    public static PreferencePair EncodePair(PreferenceText text, ChatTemplate template, Tokenizer tokenizer, int maxTokens, string source)
    {
        var (prompt, chosen) = EncodePromptResponse(text.Prompt, text.Chosen, template, tokenizer, source + " (chosen)");
        var (_, rejected) = EncodePromptResponse(text.Prompt, text.Rejected, template, tokenizer, source + " (rejected)");
        var (c, promptLength) = Fit(prompt, chosen, maxTokens);
        var (r, _) = Fit(prompt, rejected, maxTokens);
        return new PreferencePair(promptLength, c, r);
    }
}
