using System.Text.Json.Serialization;

namespace NextToken.Server;

// The request and response shapes as the OpenAPI document describes them. The handlers read
// bodies through RequestFields (to name the field in every error), so these types are the
// contract's description, not the parser.

/// <summary>OpenAI's error body; every key is always present.</summary>
public sealed record ErrorBody([property: JsonPropertyName("error")] ErrorDetail Error);

public sealed record ErrorDetail(
    [property: JsonPropertyName("message")] string Message,
    [property: JsonPropertyName("type")] string Type,
    [property: JsonPropertyName("param")] string? Param,
    [property: JsonPropertyName("code")] string? Code);

/// <summary>Sampler settings shared by both generation endpoints.</summary>
public record SamplingFields
{
    [JsonPropertyName("model")] public string? Model { get; init; }
    [JsonPropertyName("max_tokens")] public int? MaxTokens { get; init; }
    [JsonPropertyName("temperature")] public double? Temperature { get; init; }
    [JsonPropertyName("top_p")] public double? TopP { get; init; }
    [JsonPropertyName("top_k")] public int? TopK { get; init; }
    [JsonPropertyName("min_p")] public double? MinP { get; init; }
    [JsonPropertyName("typical_p")] public double? TypicalP { get; init; }
    [JsonPropertyName("presence_penalty")] public double? PresencePenalty { get; init; }
    [JsonPropertyName("frequency_penalty")] public double? FrequencyPenalty { get; init; }
    [JsonPropertyName("repeat_penalty")] public double? RepeatPenalty { get; init; }
    [JsonPropertyName("logit_bias")] public Dictionary<string, double>? LogitBias { get; init; }
    [JsonPropertyName("sampler_order")] public string? SamplerOrder { get; init; }
    [JsonPropertyName("seed")] public long? Seed { get; init; }
    [JsonPropertyName("stop")] public string[]? Stop { get; init; }
    [JsonPropertyName("n")] public int? N { get; init; }
    [JsonPropertyName("stream")] public bool? Stream { get; init; }
    [JsonPropertyName("stream_options")] public StreamOptions? StreamOptions { get; init; }
    [JsonPropertyName("ignore_eos")] public bool? IgnoreEos { get; init; }
    [JsonPropertyName("cache_prompt")] public bool? CachePrompt { get; init; }
}

public sealed record StreamOptions([property: JsonPropertyName("include_usage")] bool? IncludeUsage);

/// <summary>POST /v1/completions: <c>prompt</c> is a string or a list of token ids (used exactly, no BOS added).</summary>
public sealed record CompletionRequest : SamplingFields
{
    [JsonPropertyName("prompt")] public required object Prompt { get; init; }
    [JsonPropertyName("echo")] public bool? Echo { get; init; }
    [JsonPropertyName("logprobs")] public int? Logprobs { get; init; }
}

public sealed record ChatMessageSchema(
    [property: JsonPropertyName("role")] string Role,
    [property: JsonPropertyName("content")] string? Content);

/// <summary>POST /v1/chat/completions.</summary>
public sealed record ChatCompletionRequest : SamplingFields
{
    [JsonPropertyName("messages")] public required ChatMessageSchema[] Messages { get; init; }
    [JsonPropertyName("max_completion_tokens")] public int? MaxCompletionTokens { get; init; }
    [JsonPropertyName("logprobs")] public bool? Logprobs { get; init; }
    [JsonPropertyName("top_logprobs")] public int? TopLogprobs { get; init; }
}

public sealed record Usage(
    [property: JsonPropertyName("prompt_tokens")] int PromptTokens,
    [property: JsonPropertyName("completion_tokens")] int CompletionTokens,
    [property: JsonPropertyName("total_tokens")] int TotalTokens);

public sealed record LegacyLogprobs(
    [property: JsonPropertyName("tokens")] string[] Tokens,
    [property: JsonPropertyName("token_logprobs")] double?[] TokenLogprobs,
    [property: JsonPropertyName("top_logprobs")] Dictionary<string, double>?[] TopLogprobs,
    [property: JsonPropertyName("text_offset")] int[] TextOffset);

public sealed record CompletionChoice(
    [property: JsonPropertyName("text")] string Text,
    [property: JsonPropertyName("index")] int Index,
    [property: JsonPropertyName("logprobs")] LegacyLogprobs? Logprobs,
    [property: JsonPropertyName("finish_reason")] string FinishReason);

public sealed record CompletionResponse(
    [property: JsonPropertyName("id")] string Id,
    [property: JsonPropertyName("object")] string Object,
    [property: JsonPropertyName("created")] long Created,
    [property: JsonPropertyName("model")] string Model,
    [property: JsonPropertyName("choices")] CompletionChoice[] Choices,
    [property: JsonPropertyName("usage")] Usage Usage);

public sealed record TopLogprob(
    [property: JsonPropertyName("token")] string Token,
    [property: JsonPropertyName("logprob")] double Logprob,
    [property: JsonPropertyName("bytes")] int[] Bytes);

public sealed record TokenLogprob(
    [property: JsonPropertyName("token")] string Token,
    [property: JsonPropertyName("logprob")] double Logprob,
    [property: JsonPropertyName("bytes")] int[] Bytes,
    [property: JsonPropertyName("top_logprobs")] TopLogprob[] TopLogprobs);

public sealed record ChatLogprobs([property: JsonPropertyName("content")] TokenLogprob[] Content);

public sealed record ChatChoice(
    [property: JsonPropertyName("index")] int Index,
    [property: JsonPropertyName("message")] ChatMessageSchema Message,
    [property: JsonPropertyName("logprobs")] ChatLogprobs? Logprobs,
    [property: JsonPropertyName("finish_reason")] string FinishReason);

public sealed record ChatCompletionResponse(
    [property: JsonPropertyName("id")] string Id,
    [property: JsonPropertyName("object")] string Object,
    [property: JsonPropertyName("created")] long Created,
    [property: JsonPropertyName("model")] string Model,
    [property: JsonPropertyName("choices")] ChatChoice[] Choices,
    [property: JsonPropertyName("usage")] Usage Usage);

public sealed record ModelEntry(
    [property: JsonPropertyName("id")] string Id,
    [property: JsonPropertyName("object")] string Object,
    [property: JsonPropertyName("created")] long Created,
    [property: JsonPropertyName("owned_by")] string OwnedBy);

public sealed record ModelList(
    [property: JsonPropertyName("object")] string Object,
    [property: JsonPropertyName("data")] ModelEntry[] Data);

public sealed record TokenizeRequest(
    [property: JsonPropertyName("content")] string Content,
    [property: JsonPropertyName("add_special")] bool? AddSpecial,
    [property: JsonPropertyName("parse_special")] bool? ParseSpecial,
    [property: JsonPropertyName("with_pieces")] bool? WithPieces);

public sealed record TokenizeResponse([property: JsonPropertyName("tokens")] int[] Tokens);

public sealed record DetokenizeRequest([property: JsonPropertyName("tokens")] int[] Tokens);

public sealed record DetokenizeResponse([property: JsonPropertyName("content")] string Content);

public sealed record InspectSampling(
    [property: JsonPropertyName("temperature")] double? Temperature,
    [property: JsonPropertyName("top_k")] int? TopK,
    [property: JsonPropertyName("top_p")] double? TopP,
    [property: JsonPropertyName("min_p")] double? MinP,
    [property: JsonPropertyName("typical_p")] double? TypicalP);

/// <summary>POST /v1/inspect/next: text or token ids; with <c>explain</c>, one roll explained; with <c>logits</c>, the whole row.</summary>
public sealed record InspectNextRequest(
    [property: JsonPropertyName("prompt")] string? Prompt,
    [property: JsonPropertyName("tokens")] int[]? Tokens,
    [property: JsonPropertyName("add_bos")] bool? AddBos,
    [property: JsonPropertyName("top")] int? Top,
    [property: JsonPropertyName("explain")] InspectSampling? Explain,
    [property: JsonPropertyName("seed")] long? Seed,
    [property: JsonPropertyName("logits")] bool? Logits,
    [property: JsonPropertyName("routing")] bool? Routing);

public sealed record InspectNextWithLogits(
    [property: JsonPropertyName("report")] Inspection.NextReport Report,
    [property: JsonPropertyName("logits_f32_base64")] string LogitsF32Base64);

public sealed record InspectCompareRequest(
    [property: JsonPropertyName("prompt")] string Prompt,
    [property: JsonPropertyName("prompt_b")] string? PromptB,
    [property: JsonPropertyName("system_a")] string? SystemA,
    [property: JsonPropertyName("system_b")] string? SystemB,
    [property: JsonPropertyName("template")] string? Template,
    [property: JsonPropertyName("raw")] bool? Raw,
    [property: JsonPropertyName("top")] int? Top);

public sealed record InspectLensRequest(
    [property: JsonPropertyName("prompt")] string? Prompt,
    [property: JsonPropertyName("tokens")] int[]? Tokens,
    [property: JsonPropertyName("position")] int? Position,
    [property: JsonPropertyName("top")] int? Top);

public sealed record InspectSpan(
    [property: JsonPropertyName("start")] int Start,
    [property: JsonPropertyName("end")] int End);

/// <summary>POST /v1/inspect/attention: text or token ids; spans [start, end) whose share of the last position's attention is reported.</summary>
public sealed record InspectAttentionRequest(
    [property: JsonPropertyName("prompt")] string? Prompt,
    [property: JsonPropertyName("tokens")] int[]? Tokens,
    [property: JsonPropertyName("add_bos")] bool? AddBos,
    [property: JsonPropertyName("layer")] int? Layer,
    [property: JsonPropertyName("spans")] InspectSpan[]? Spans,
    [property: JsonPropertyName("recent")] int? Recent);

/// <summary>POST /v1/inspect/drift: a conversation (or N built-in exchanges) measured turn by turn against the system prompt.</summary>
public sealed record InspectDriftRequest(
    [property: JsonPropertyName("system")] string System,
    [property: JsonPropertyName("conversation")] ChatMessageSchema[]? Conversation,
    [property: JsonPropertyName("synthetic")] int? Synthetic,
    [property: JsonPropertyName("reanchor")] int? Reanchor,
    [property: JsonPropertyName("template")] string? Template);

/// <summary>POST /v1/inspect/steer: continuations with and without resid(add) − resid(sub) × coeff at a layer; sampler fields as in completions.</summary>
public sealed record InspectSteerRequest : SamplingFields
{
    [JsonPropertyName("prompt")] public required string Prompt { get; init; }
    [JsonPropertyName("add")] public required string Add { get; init; }
    [JsonPropertyName("sub")] public required string Sub { get; init; }
    [JsonPropertyName("layer")] public int? Layer { get; init; }
    [JsonPropertyName("coeff")] public double? Coeff { get; init; }
    [JsonPropertyName("runs")] public int? Runs { get; init; }
}

/// <summary>POST /v1/inspect/steer/sweep: every layer × coefficient; targets default to the add text.</summary>
public sealed record InspectSteerSweepRequest(
    [property: JsonPropertyName("prompt")] string Prompt,
    [property: JsonPropertyName("add")] string Add,
    [property: JsonPropertyName("sub")] string Sub,
    [property: JsonPropertyName("coeffs")] double[]? Coeffs,
    [property: JsonPropertyName("targets")] string[]? Targets);

/// <summary>POST /v1/inspect/routing (mixture-of-experts models): the prompt chat-formatted unless raw; with system, what it changes.</summary>
public sealed record InspectRoutingRequest(
    [property: JsonPropertyName("prompt")] string Prompt,
    [property: JsonPropertyName("system")] string? System,
    [property: JsonPropertyName("template")] string? Template,
    [property: JsonPropertyName("raw")] bool? Raw);

/// <summary>POST /v1/inspect/map: prompts whose tokens are placed in 2-D by PCA, or along the concept axis mean(axis_a) − mean(axis_b).</summary>
public sealed record InspectMapRequest(
    [property: JsonPropertyName("prompts")] string[] Prompts,
    [property: JsonPropertyName("layer")] int? Layer,
    [property: JsonPropertyName("axis_a")] string[]? AxisA,
    [property: JsonPropertyName("axis_b")] string[]? AxisB);

public sealed record Health([property: JsonPropertyName("status")] string Status);
