using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;
using NextToken.Chat;
using NextToken.Generation;
using NextToken.Inspection;
using NextToken.Models;
using NextToken.Sampling;

namespace NextToken.Server;

/// <summary>
/// The OpenAI endpoints (<c>/v1/completions</c>, <c>/v1/chat/completions</c>, <c>/v1/models</c>)
/// and llama-server's <c>/tokenize</c> and <c>/detokenize</c>, over one <see cref="ModelHost"/>.
/// </summary>
internal sealed class OpenAiEndpoints(ModelHost host)
{
    private LanguageModel Model => host.Model;

    public object Models() => new
    {
        @object = "list",
        data = new[] { new { id = host.Id, @object = "model", created = host.Created.ToUnixTimeSeconds(), owned_by = "nexttoken" } },
    };

    public async Task Completions(HttpContext context, RequestFields request)
    {
        CheckModel(request);
        int[] prompt = CompletionPrompt(request);
        bool echo = request.Bool("echo") ?? false;
        int maxTokens = request.Integer("max_tokens", 0, int.MaxValue) ?? 16;
        if (maxTokens == 0 && !echo) throw ApiError.BadValue("max_tokens", "'max_tokens' must be at least 1 (0 only with 'echo')");
        maxTokens = Math.Min(maxTokens, Room(prompt));
        int? logprobs = request.Integer("logprobs", 0, 20);
        var choice = new ChoiceSettings(prompt, Options(request, maxTokens, logprobs ?? 0), request.Integer("n", 1, 16) ?? 1,
            request.Seed("seed"), echo, logprobs is not null, Chat: false, request.Bool("stream") ?? false, IncludeUsage(request), request.Bool("cache_prompt") ?? true);
        await Run(context, choice, "text_completion");
    }

    public async Task ChatCompletions(HttpContext context, RequestFields request)
    {
        CheckModel(request);
        List<ChatMessage> messages = Messages(request);
        ChatTemplate template = ChatPrompt.Template(Model) ?? ChatTemplate.FromName("plain");
        int[] prompt;
        lock (host.TokenizerGate) prompt = ChatPrompt.Tokens(Model, messages, template);
        CheckContext(prompt, "messages");
        int? maxTokens = request.Integer("max_completion_tokens", 1, int.MaxValue) ?? request.Integer("max_tokens", 1, int.MaxValue);
        bool logprobs = request.Bool("logprobs") ?? false;
        int? top = request.Integer("top_logprobs", 0, 20);
        if (top is not null && !logprobs) throw ApiError.BadValue("top_logprobs", "'top_logprobs' needs 'logprobs': true");
        var choice = new ChoiceSettings(prompt, Options(request, Math.Min(maxTokens ?? int.MaxValue, Room(prompt)), top ?? 0), request.Integer("n", 1, 16) ?? 1,
            request.Seed("seed"), Echo: false, logprobs, Chat: true, request.Bool("stream") ?? false, IncludeUsage(request), request.Bool("cache_prompt") ?? true);
        await Run(context, choice, "chat.completion");
    }

    public object Tokenize(RequestFields request)
    {
        string content = request.String("content") ?? throw new ApiError(400, "'content' is required: the text to tokenize", "content", "missing_field");
        bool special = request.Bool("add_special") ?? Model.Tokenizer.Vocabulary.AddBos;
        bool parseSpecial = request.Bool("parse_special") ?? false;
        int[] ids;
        lock (host.TokenizerGate) ids = Model.Tokenizer.Encode(content, special, parseSpecial).Ids;
        if (request.Bool("with_pieces") ?? false)
            return new { tokens = ids.Select(id => new { id, piece = Model.Tokenizer.TokenText(id) }).ToArray() };
        return new { tokens = ids };
    }

    public object Detokenize(RequestFields request)
    {
        int[] ids = TokenIds(request.Get("tokens") ?? throw new ApiError(400, "'tokens' is required: a list of token ids", "tokens", "missing_field"), "tokens");
        lock (host.TokenizerGate) return new { content = Model.Tokenizer.Decode(ids) };
    }

    private sealed record ChoiceSettings(int[] Prompt, GenerationOptions Options, int N, ulong? Seed, bool Echo, bool Logprobs, bool Chat, bool Stream, bool IncludeUsage, bool CachePrompt);

    private async Task Run(HttpContext context, ChoiceSettings settings, string objectName)
    {
        string id = (settings.Chat ? "chatcmpl-" : "cmpl-") + Guid.NewGuid().ToString("N")[..24];
        long created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        // Every choice is its own sequence, decoded side by side in free slots; all stop when the client goes.
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted);
        CancellationToken cancel = stop.Token;
        try
        {
            var requests = new SequenceRequest[settings.N];
            for (int index = 0; index < settings.N; index++)
            {
                ulong? seed = settings.Seed is { } s ? unchecked(s + (ulong)index) : null;
                requests[index] = new SequenceRequest(settings.Prompt, settings.Options with { Seed = seed },
                    promptLogits: index == 0 && settings.Echo && settings.Logprobs, settings.CachePrompt, cancel);
            }
            host.Scheduler.Submit(requests);
            if (settings.Stream)
            {
                context.Response.ContentType = "text/event-stream";
                context.Response.Headers.CacheControl = "no-cache";
            }
            float[]? promptLogits = settings.Echo && settings.Logprobs ? await requests[0].Prefilled.Task.WaitAsync(cancel) : null;
            string promptText = settings.Echo ? string.Concat(settings.Prompt.Select(Model.Tokenizer.TokenText)) : "";
            var choices = new JsonArray();
            int completionTokens = 0;
            for (int index = 0; index < settings.N; index++)
            {
                SequenceRequest request = requests[index];
                var text = new StringBuilder();
                var tokenLogprobs = new List<GeneratedToken>();
                if (settings.Stream && settings.Chat)
                    await Send(context, Chunk(id, created, objectName, index, new JsonObject { ["role"] = "assistant", ["content"] = "" }, null, null));
                if (settings.Echo)
                {
                    // The prompt as its tokens spell it (a BOS included), so text_offset indexes this text.
                    text.Append(promptText);
                    if (settings.Stream)
                        await Send(context, Chunk(id, created, objectName, index, null, promptText, settings.Logprobs ? EchoLogprobs(settings, promptLogits!) : null));
                }
                int offset = text.Length;
                await foreach (GeneratedToken token in request.Tokens.Reader.ReadAllAsync(cancel))
                {
                    completionTokens++;
                    text.Append(token.Text);
                    if (settings.Logprobs) tokenLogprobs.Add(token);
                    if (settings.Stream && (token.Text.Length > 0 || settings.Logprobs))
                    {
                        JsonNode? lp = settings.Logprobs ? (settings.Chat ? ChatLogprobs([token]) : TextLogprobs([token], offset)) : null;
                        await Send(context, settings.Chat
                            ? Chunk(id, created, objectName, index, new JsonObject { ["content"] = token.Text }, null, lp)
                            : Chunk(id, created, objectName, index, null, token.Text, lp));
                    }
                    offset += token.Text.Length;
                }
                TokenStream stream = request.Stream!;
                text.Append(stream.TrailingText);
                string finish = stream.StopReason is StopReason.EndOfGeneration or StopReason.StopString ? "stop" : "length";
                if (settings.Stream)
                {
                    JsonObject last = settings.Chat
                        ? Chunk(id, created, objectName, index, new JsonObject { ["content"] = stream.TrailingText }, null, null)
                        : Chunk(id, created, objectName, index, null, stream.TrailingText, null);
                    last["choices"]![0]!["finish_reason"] = finish;
                    await Send(context, last);
                    continue;
                }
                choices.Add(Choice(settings, index, text.ToString(), finish, promptLogits, tokenLogprobs));
            }
            var usage = new JsonObject
            {
                ["prompt_tokens"] = settings.Prompt.Length,
                ["completion_tokens"] = completionTokens,
                ["total_tokens"] = settings.Prompt.Length + completionTokens,
            };
            if (settings.Stream)
            {
                if (settings.IncludeUsage)
                    await Send(context, new JsonObject { ["id"] = id, ["object"] = objectName + (settings.Chat ? ".chunk" : ""), ["created"] = created, ["model"] = host.Id, ["choices"] = new JsonArray(), ["usage"] = usage });
                await context.Response.WriteAsync("data: [DONE]\n\n", NextTokenServer.ClientGone(context));
                return;
            }
            var response = new JsonObject
            {
                ["id"] = id,
                ["object"] = objectName,
                ["created"] = created,
                ["model"] = host.Id,
                ["system_fingerprint"] = "nexttoken",
                ["choices"] = choices,
                ["usage"] = usage,
            };
            context.Response.ContentType = "application/json";
            await context.Response.WriteAsync(response.ToJsonString(), NextTokenServer.ClientGone(context));
        }
        finally
        {
            stop.Cancel(); // choices still running (an error, a client gone) free their slots
        }
    }

    private JsonObject Choice(ChoiceSettings settings, int index, string text, string finish, float[]? promptLogits, List<GeneratedToken> tokens)
    {
        if (settings.Chat)
        {
            return new JsonObject
            {
                ["index"] = index,
                ["message"] = new JsonObject { ["role"] = "assistant", ["content"] = text, ["refusal"] = null },
                ["logprobs"] = settings.Logprobs ? ChatLogprobs(tokens) : null,
                ["finish_reason"] = finish,
            };
        }
        JsonObject? logprobs = null;
        if (settings.Logprobs)
        {
            var legacy = new LegacyLogprobs();
            int offset = 0;
            if (promptLogits is not null) offset = AddEcho(legacy, settings, promptLogits);
            AddGenerated(legacy, tokens, offset);
            logprobs = legacy.ToJson();
        }
        return new JsonObject { ["text"] = text, ["index"] = index, ["logprobs"] = logprobs, ["finish_reason"] = finish };
    }

    /// <summary>The legacy completions' logprobs: four parallel lists.</summary>
    private sealed class LegacyLogprobs
    {
        private readonly JsonArray _tokens = [], _logprobs = [], _tops = [], _offsets = [];

        public void Add(string token, double? logprob, JsonObject? top, int offset)
        {
            _tokens.Add(token);
            _logprobs.Add(logprob);
            _tops.Add(top);
            _offsets.Add(offset);
        }

        public JsonObject ToJson() => new() { ["tokens"] = _tokens, ["token_logprobs"] = _logprobs, ["top_logprobs"] = _tops, ["text_offset"] = _offsets };
    }

    private JsonObject EchoLogprobs(ChoiceSettings settings, float[] logits)
    {
        var legacy = new LegacyLogprobs();
        AddEcho(legacy, settings, logits);
        return legacy.ToJson();
    }

    /// <summary>The prompt's own tokens (the first has no context, so null); returns the text offset after them.</summary>
    private int AddEcho(LegacyLogprobs legacy, ChoiceSettings settings, float[] logits)
    {
        int vocab = Model.VocabSize, offset = 0;
        for (int i = 0; i < settings.Prompt.Length; i++)
        {
            int id = settings.Prompt[i];
            string piece = Model.Tokenizer.TokenText(id);
            if (i == 0)
                legacy.Add(piece, null, null, offset);
            else
            {
                var distribution = new TokenDistribution(logits.AsSpan((i - 1) * vocab, vocab));
                legacy.Add(piece, Math.Log(distribution.Probability(id)), TopObject(distribution.Top(Math.Max(settings.Options.TopAlternatives, 1))), offset);
            }
            offset += piece.Length;
        }
        return offset;
    }

    private void AddGenerated(LegacyLogprobs legacy, IReadOnlyList<GeneratedToken> generated, int offset)
    {
        foreach (GeneratedToken token in generated)
        {
            legacy.Add(Model.Tokenizer.TokenText(token.Id), token.LogProbability, TopObject(token.Alternatives), offset);
            offset += token.Text.Length;
        }
    }

    private JsonObject TextLogprobs(IReadOnlyList<GeneratedToken> generated, int offset)
    {
        var legacy = new LegacyLogprobs();
        AddGenerated(legacy, generated, offset);
        return legacy.ToJson();
    }

    private JsonObject TopObject(RankedToken[] alternatives)
    {
        var top = new JsonObject();
        foreach (RankedToken t in alternatives)
        {
            string key = Model.Tokenizer.TokenText(t.Id);
            if (!top.ContainsKey(key)) top[key] = Math.Log(t.Probability);
        }
        return top;
    }

    private JsonObject ChatLogprobs(IReadOnlyList<GeneratedToken> generated)
    {
        var content = new JsonArray();
        foreach (GeneratedToken token in generated)
        {
            var top = new JsonArray();
            foreach (RankedToken t in token.Alternatives)
                top.Add(new JsonObject { ["token"] = Model.Tokenizer.TokenText(t.Id), ["logprob"] = Math.Log(t.Probability), ["bytes"] = Bytes(t.Id) });
            content.Add(new JsonObject
            {
                ["token"] = Model.Tokenizer.TokenText(token.Id),
                ["logprob"] = token.LogProbability,
                ["bytes"] = Bytes(token.Id),
                ["top_logprobs"] = top,
            });
        }
        return new JsonObject { ["content"] = content, ["refusal"] = null };
    }

    private JsonArray Bytes(int id) => new(Model.Tokenizer.TokenBytes(id).ToArray().Select(b => (JsonNode?)JsonValue.Create((int)b)).ToArray());

    private JsonObject Chunk(string id, long created, string objectName, int index, JsonObject? delta, string? text, JsonNode? logprobs)
    {
        JsonObject choice = delta is not null
            ? new JsonObject { ["index"] = index, ["delta"] = delta, ["logprobs"] = logprobs, ["finish_reason"] = null }
            : new JsonObject { ["text"] = text, ["index"] = index, ["logprobs"] = logprobs, ["finish_reason"] = null };
        return new JsonObject
        {
            ["id"] = id,
            ["object"] = delta is not null ? objectName + ".chunk" : objectName,
            ["created"] = created,
            ["model"] = host.Id,
            ["system_fingerprint"] = "nexttoken",
            ["choices"] = new JsonArray(choice),
        };
    }

    private static async Task Send(HttpContext context, JsonObject chunk)
    {
        // The work stops at the time limit through its own token; a write stops only if the client is gone.
        CancellationToken clientGone = NextTokenServer.ClientGone(context);
        await context.Response.WriteAsync("data: " + chunk.ToJsonString() + "\n\n", clientGone);
        await context.Response.Body.FlushAsync(clientGone);
    }

    private GenerationOptions Options(RequestFields request, int maxTokens, int topAlternatives)
    {
        SamplingOptions sampling = Sampling(request, Model.VocabSize, new SamplingOptions());
        return new GenerationOptions
        {
            MaxTokens = maxTokens,
            Sampling = sampling,
            StopStrings = request.StopStrings("stop"),
            TopAlternatives = topAlternatives,
            StopAtEndOfGeneration = !(request.Bool("ignore_eos") ?? false),
        };
    }

    /// <summary>The sampler fields of a request (OpenAI's and NextToken's), each absent one from <paramref name="defaults"/>.</summary>
    internal static SamplingOptions Sampling(RequestFields request, int vocabSize, SamplingOptions defaults) => new()
    {
        Temperature = (float)(request.Number("temperature", 0, 2) ?? defaults.Temperature),
        TopP = (float)(request.Number("top_p", 0, 1, minExclusive: true) ?? defaults.TopP),
        TopK = request.Integer("top_k", 0, vocabSize) ?? defaults.TopK,
        MinP = (float)(request.Number("min_p", 0, 1) ?? defaults.MinP),
        TypicalP = (float)(request.Number("typical_p", 0, 1, minExclusive: true) ?? defaults.TypicalP),
        PresencePenalty = (float)(request.Number("presence_penalty", -2, 2) ?? defaults.PresencePenalty),
        FrequencyPenalty = (float)(request.Number("frequency_penalty", -2, 2) ?? defaults.FrequencyPenalty),
        RepeatPenalty = (float)(request.Number("repeat_penalty", 0, 10, minExclusive: true) ?? defaults.RepeatPenalty),
        LogitBias = request.LogitBias("logit_bias", vocabSize),
        Order = request.String("sampler_order") switch
        {
            null => defaults.Order,
            "llama.cpp" => SamplerOrder.LlamaCpp,
            "hf" or "huggingface" => SamplerOrder.HuggingFace,
            string other => throw ApiError.BadValue("sampler_order", $"'sampler_order' must be 'llama.cpp' or 'huggingface', not '{other}'"),
        },
    };

    /// <summary>The most tokens a reply can have: what the context holds after the prompt (a larger max_tokens is capped, finishing with "length").</summary>
    private int Room(int[] prompt) => Math.Max(0, Model.ContextLength - prompt.Length);

    private static bool IncludeUsage(RequestFields request) =>
        request.Get("stream_options") is { ValueKind: JsonValueKind.Object } o && o.TryGetProperty("include_usage", out JsonElement u) && u.ValueKind == JsonValueKind.True;

    private void CheckModel(RequestFields request)
    {
        if (request.String("model") is { } name && name != host.Id)
            throw new ApiError(404, $"The model '{name}' does not exist; this server serves '{host.Id}'", "model", "model_not_found");
    }

    private int[] CompletionPrompt(RequestFields request)
    {
        JsonElement prompt = request.Get("prompt") ?? throw new ApiError(400, "'prompt' is required: a string or a list of token ids", "prompt", "missing_field");
        int[] ids = prompt.ValueKind switch
        {
            JsonValueKind.String => Encode(prompt.GetString()!),
            JsonValueKind.Array when prompt.GetArrayLength() == 1 && prompt[0].ValueKind == JsonValueKind.String => Encode(prompt[0].GetString()!),
            JsonValueKind.Array => TokenIds(prompt, "prompt"), // ids exactly as given: no BOS added
            _ => throw RequestFields.WrongKind("prompt", prompt, "a string or a list of token ids"),
        };
        if (ids.Length == 0) throw ApiError.BadValue("prompt", "'prompt' is empty");
        CheckContext(ids, "prompt");
        return ids;
    }

    private int[] Encode(string text)
    {
        lock (host.TokenizerGate) return Model.Tokenizer.Encode(text, Model.Tokenizer.Vocabulary.AddBos).Ids;
    }

    private void CheckContext(int[] ids, string param)
    {
        if (ids.Length >= Model.ContextLength)
            throw new ApiError(400, $"the prompt has {ids.Length} tokens; this model's context holds {Model.ContextLength}, with room for at least one more", param, "context_length_exceeded");
    }

    private int[] TokenIds(JsonElement list, string param)
    {
        if (list.ValueKind != JsonValueKind.Array) throw RequestFields.WrongKind(param, list, "a list of token ids");
        var ids = new int[list.GetArrayLength()];
        int i = 0;
        foreach (JsonElement item in list.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Number || !item.TryGetInt32(out int id) || (uint)id >= (uint)Model.VocabSize)
                throw ApiError.BadValue(param, $"'{param}'[{i}] is {item.GetRawText()}; expected a token id from 0 to {Model.VocabSize - 1}");
            ids[i++] = id;
        }
        return ids;
    }

    /// <summary>OpenAI-style messages from the field <paramref name="name"/> (errors name it and the message's index).</summary>
    internal static List<ChatMessage> Messages(RequestFields request, string name = "messages")
    {
        JsonElement list = request.Get(name) ?? throw new ApiError(400, $"'{name}' is required: a list of {{role, content}}", name, "missing_field");
        if (list.ValueKind != JsonValueKind.Array) throw RequestFields.WrongKind(name, list, "a list of messages");
        if (list.GetArrayLength() == 0) throw ApiError.BadValue(name, $"'{name}' is empty");
        var messages = new List<ChatMessage>();
        int i = 0;
        foreach (JsonElement m in list.EnumerateArray())
        {
            string at = $"{name}[{i++}]";
            if (m.ValueKind != JsonValueKind.Object) throw RequestFields.WrongKind(at, m, "an object {role, content}");
            if (!m.TryGetProperty("role", out JsonElement role) || role.ValueKind != JsonValueKind.String)
                throw new ApiError(400, $"'{at}.role' is required: system, user, assistant or tool", $"{at}.role", "missing_field");
            string content = m.TryGetProperty("content", out JsonElement c) ? c.ValueKind switch
            {
                JsonValueKind.String => c.GetString()!,
                JsonValueKind.Null => "",
                // content parts: the text ones, joined (images and audio are not for these models)
                JsonValueKind.Array => string.Concat(c.EnumerateArray().Select(part =>
                    part.ValueKind == JsonValueKind.Object && part.TryGetProperty("type", out JsonElement t) && t.GetString() == "text" && part.TryGetProperty("text", out JsonElement text) && text.ValueKind == JsonValueKind.String
                        ? text.GetString()
                        : throw ApiError.BadValue($"{at}.content", $"'{at}.content' parts must be {{\"type\": \"text\", \"text\": ...}}"))),
                _ => throw RequestFields.WrongKind($"{at}.content", c, "a string or a list of text parts"),
            } : "";
            messages.Add(new ChatMessage(role.GetString()!, content));
        }
        return messages;
    }
}
