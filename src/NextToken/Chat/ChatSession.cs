using System.Runtime.CompilerServices;
using NextToken.Generation;
using NextToken.Models;

namespace NextToken.Chat;

/// <summary>The whole conversation, rendered for the next turn, no longer fits the model's context.</summary>
public sealed class ConversationTooLongException(int tokens, int contextLength)
    : NextTokenException($"the conversation is {tokens} tokens, over the context of {contextLength}: reset it to start again")
{
    public int Tokens { get; } = tokens;
}

/// <summary>
/// A multi-turn conversation with one model. Each turn renders the whole conversation with the chat
/// template, but runs only the tokens after the longest prefix already in the KV cache, so earlier
/// turns are not re-read. With <see cref="ReanchorEvery"/> &gt; 0 the system prompt is restated in
/// every that-many-th user turn, against its fading grip in long conversations (see <c>drift</c>).
/// </summary>
public sealed class ChatSession
{
    private readonly LanguageModel _model;
    private readonly ModelState _state;
    private readonly List<ChatMessage> _history = [];
    private readonly string _bos, _eos;
    private readonly bool _plain;
    private List<int> _cached = [];

    public ChatSession(LanguageModel model, ChatTemplate template, string? systemPrompt = null, int reanchorEvery = 0, ulong seed = 0)
    {
        if (reanchorEvery < 0) throw new NextTokenException($"reanchor must be 0 (never) or more, not {reanchorEvery}");
        _model = model;
        Template = template;
        SystemPrompt = systemPrompt;
        ReanchorEvery = reanchorEvery;
        Seed = seed;
        _state = model.CreateState();
        var vocabulary = model.Tokenizer.Vocabulary;
        _bos = ChatPrompt.TokenText(vocabulary, vocabulary.BosId);
        _eos = ChatPrompt.TokenText(vocabulary, vocabulary.EosId);
        _plain = template.Source == ChatTemplate.BuiltIn["plain"];
    }

    public ChatTemplate Template { get; }

    /// <summary>Placed before the history on every turn; changing it changes the next prompt from its start.</summary>
    public string? SystemPrompt { get; set; }

    public int ReanchorEvery { get; }

    /// <summary>Turn n samples with seed <c>Seed + n</c>, so a conversation replays exactly.</summary>
    public ulong Seed { get; }

    /// <summary>User turns so far (since the last <see cref="Reset"/>).</summary>
    public int Turns { get; private set; }

    /// <summary>The conversation so far, without the system prompt; user turns as sent to the model (with any restated instructions).</summary>
    public IReadOnlyList<ChatMessage> History => _history;

    /// <summary>Prompt tokens of the last turn, and how many of them were reused from the KV cache.</summary>
    public int LastPromptTokens { get; private set; }
    public int LastReused { get; private set; }

    /// <summary>Tokens generated in the last turn.</summary>
    public int LastGenerated { get; private set; }

    /// <summary>Why the last reply stopped.</summary>
    public StopReason LastStopReason { get; private set; }

    /// <summary>Forgets the conversation; the cache is kept, so a new one sharing its start still reuses it.</summary>
    public void Reset()
    {
        _history.Clear();
        Turns = 0;
    }

    /// <summary>The user message as turn <paramref name="turn"/> sends it: restating the system prompt when that turn is due.</summary>
    public string UserContent(string text, int turn) =>
        ReanchorEvery > 0 && turn % ReanchorEvery == 0 && SystemPrompt is not null
            ? $"(Reminder of your instructions: {SystemPrompt})\n\n{text}"
            : text;

    /// <summary>The tokens the model reads for a next user turn <paramref name="text"/>: the whole conversation, rendered and tokenized.</summary>
    public int[] PromptTokens(string text) => Tokens(UserContent(text, Turns + 1));

    private int[] Tokens(string content)
    {
        var messages = new List<ChatMessage>();
        if (SystemPrompt is not null) messages.Add(new ChatMessage("system", SystemPrompt));
        messages.AddRange(_history);
        messages.Add(new ChatMessage("user", content));
        string prompt = Template.Render(messages, addGenerationPrompt: true, _bos, _eos);
        bool addBos = _model.Tokenizer.Vocabulary.AddBos && (_bos.Length == 0 || !prompt.StartsWith(_bos, StringComparison.Ordinal));
        return _model.Tokenizer.Encode(prompt, addBos, parseSpecial: true).Ids;
    }

    /// <summary>
    /// Sends the user's <paramref name="text"/> and streams the reply. When the enumeration
    /// completes, the turn and the reply (trimmed) join <see cref="History"/>; a turn that does not
    /// fit the context throws <see cref="ConversationTooLongException"/> and changes nothing.
    /// <paramref name="options"/>' seed is replaced by <c>Seed + turn</c>.
    /// </summary>
    public async IAsyncEnumerable<GeneratedToken> SendAsync(string text, GenerationOptions options, [EnumeratorCancellation] CancellationToken cancellation = default)
    {
        int turn = Turns + 1;
        string content = UserContent(text, turn);
        int[] ids = Tokens(content);
        if (ids.Length >= _model.ContextLength) throw new ConversationTooLongException(ids.Length, _model.ContextLength);

        // Reuse the cache up to the first token that differs; keep at least one token to run.
        int reuse = 0;
        while (reuse < _cached.Count && reuse < ids.Length - 1 && _cached[reuse] == ids[reuse]) reuse++;
        reuse = Math.Min(reuse, _state.Position);
        _state.Rewind(reuse);
        // A plain-text "template" has no end-of-turn token: stop where the model starts the next turn itself.
        if (_plain && options.StopStrings.Count == 0) options = options with { StopStrings = ["\nUser:", "\nAssistant:"] };
        var generator = new Generator(_model);
        var reply = new System.Text.StringBuilder();
        // Until the turn completes, the cache holds an unknown prefix: trust none of it.
        _cached = [];
        await foreach (GeneratedToken token in generator.GenerateAsync(_state, ids[reuse..], options with { Seed = Seed + (ulong)turn }, cancellation))
        {
            reply.Append(token.Text);
            yield return token;
        }
        reply.Append(generator.TrailingText);
        TrailingText = generator.TrailingText;
        _cached = ids.Concat(generator.Generated).Take(_state.Position).ToList();
        Turns = turn;
        _history.Add(new ChatMessage("user", content));
        _history.Add(new ChatMessage("assistant", reply.ToString().Trim()));
        (LastPromptTokens, LastReused, LastGenerated, LastStopReason) = (ids.Length, reuse, generator.Generated.Count, generator.StopReason);
    }

    /// <summary>Text the last reply held back to its end (an unfinished stop-string prefix or UTF-8 character), to print after its tokens.</summary>
    public string TrailingText { get; private set; } = "";
}
