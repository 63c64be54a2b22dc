using System.Runtime.CompilerServices;
using System.Text;
using Microsoft.Extensions.AI;
using NextToken.Generation;
using NextToken.Models;
using NextToken.Sampling;
using AiChatMessage = Microsoft.Extensions.AI.ChatMessage;

namespace NextToken.Chat;

/// <summary>
/// A loaded model as a <see cref="IChatClient"/> (Microsoft.Extensions.AI), streaming or not, so it
/// drops into <c>ChatClientBuilder</c> pipelines. <see cref="ChatOptions"/> map onto the sampler
/// (temperature, top-p, top-k, seed, stop sequences, max output tokens, presence and frequency
/// penalties); each response carries its tokens' log-probabilities in
/// <c>AdditionalProperties["logprobs"]</c> (a list of <see cref="TokenLogprob"/>). Calls take
/// turns on one KV cache, reusing the prefix a conversation shares with the previous call.
/// </summary>
public sealed class NextTokenChatClient : IChatClient
{
    private readonly GenerationSlot _slot;
    private readonly SemaphoreSlim _turn = new(1, 1);
    private readonly ChatTemplate _template;
    private readonly bool _ownsModel;

    /// <param name="template">A template to use instead of the model's own (models without one use "plain").</param>
    public NextTokenChatClient(LanguageModel model, string modelId, ChatTemplate? template = null, bool ownsModel = false)
    {
        _slot = new GenerationSlot(model);
        _template = template ?? ChatPrompt.Template(model) ?? ChatTemplate.FromName("plain");
        _ownsModel = ownsModel;
        Metadata = new ChatClientMetadata("NextToken", null, modelId);
    }

    public ChatClientMetadata Metadata { get; }

    /// <summary>One generated token and how likely the model found it (natural log).</summary>
    public sealed record TokenLogprob(int Id, string Token, double Logprob, int Rank);

    public async Task<ChatResponse> GetResponseAsync(IEnumerable<AiChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
    {
        var text = new StringBuilder();
        ChatResponseUpdate? last = null;
        var logprobs = new List<TokenLogprob>();
        await foreach (ChatResponseUpdate update in GetStreamingResponseAsync(messages, options, cancellationToken))
        {
            text.Append(update.Text);
            if (update.AdditionalProperties?["logprobs"] is List<TokenLogprob> step) logprobs.AddRange(step);
            last = update;
        }
        var response = new ChatResponse(new AiChatMessage(ChatRole.Assistant, text.ToString()))
        {
            ModelId = Metadata.DefaultModelId,
            ResponseId = last?.ResponseId,
            CreatedAt = last?.CreatedAt,
            FinishReason = last?.FinishReason,
            AdditionalProperties = new AdditionalPropertiesDictionary { ["logprobs"] = logprobs },
        };
        if (last?.Contents.OfType<UsageContent>().FirstOrDefault() is { } usage) response.Usage = usage.Details;
        return response;
    }

    public async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<AiChatMessage> messages, ChatOptions? options = null,
                                                                               [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var turns = messages.Select(m => new ChatMessage(m.Role.Value, m.Text)).ToList();
        if (turns.Count == 0) throw new ArgumentException("no messages", nameof(messages));
        LanguageModel model = _slot.Model;
        int[] prompt = ChatPrompt.Tokens(model, turns, _template);
        GenerationOptions generation = Options(options, model.ContextLength - prompt.Length);
        string responseId = "nexttoken-" + Guid.NewGuid().ToString("N")[..16];
        DateTimeOffset created = DateTimeOffset.UtcNow;
        await _turn.WaitAsync(cancellationToken);
        try
        {
            var generator = new Generator(model);
            int produced = 0;
            await foreach (GeneratedToken token in _slot.GenerateAsync(generator, prompt, generation, cancellationToken))
            {
                produced++;
                yield return Update(responseId, created, token.Text, new List<TokenLogprob> { new(token.Id, model.Tokenizer.TokenText(token.Id), token.LogProbability, token.Rank) });
            }
            ChatResponseUpdate final = Update(responseId, created, generator.TrailingText, []);
            final.FinishReason = generator.StopReason is StopReason.EndOfGeneration or StopReason.StopString ? ChatFinishReason.Stop : ChatFinishReason.Length;
            final.Contents.Add(new UsageContent(new UsageDetails { InputTokenCount = prompt.Length, OutputTokenCount = produced, TotalTokenCount = prompt.Length + produced }));
            yield return final;
        }
        finally
        {
            _turn.Release();
        }
    }

    private ChatResponseUpdate Update(string id, DateTimeOffset created, string text, List<TokenLogprob> logprobs) =>
        new(ChatRole.Assistant, text)
        {
            ResponseId = id,
            MessageId = id,
            CreatedAt = created,
            ModelId = Metadata.DefaultModelId,
            AdditionalProperties = new AdditionalPropertiesDictionary { ["logprobs"] = logprobs },
        };

    private static GenerationOptions Options(ChatOptions? options, int room)
    {
        if (room < 1) throw new NextTokenException($"the conversation fills the model's context; no room to answer");
        var defaults = new SamplingOptions();
        var sampling = new SamplingOptions
        {
            Temperature = options?.Temperature ?? defaults.Temperature,
            TopP = options?.TopP ?? defaults.TopP,
            TopK = options?.TopK ?? defaults.TopK,
            PresencePenalty = options?.PresencePenalty ?? 0,
            FrequencyPenalty = options?.FrequencyPenalty ?? 0,
        };
        sampling.Validate();
        int maxTokens = options?.MaxOutputTokens ?? room;
        if (maxTokens < 1) throw new NextTokenException($"MaxOutputTokens must be at least 1, not {maxTokens}");
        return new GenerationOptions
        {
            MaxTokens = Math.Min(maxTokens, room),
            Sampling = sampling,
            Seed = options?.Seed is { } seed ? unchecked((ulong)seed) : null,
            StopStrings = options?.StopSequences?.ToArray() ?? [],
        };
    }

    public object? GetService(Type serviceType, object? serviceKey = null) =>
        serviceKey is null && serviceType.IsInstanceOfType(this) ? this
        : serviceKey is null && serviceType == typeof(ChatClientMetadata) ? Metadata
        : serviceKey is null && serviceType == typeof(LanguageModel) ? _slot.Model
        : null;

    public void Dispose()
    {
        _turn.Dispose();
        if (_ownsModel) _slot.Model.Dispose();
    }
}
