using NextToken.Models;

namespace NextToken.Server;

/// <summary>The served model, its scheduler (slots and queue) and its counters.</summary>
internal sealed class ModelHost : IDisposable
{
    public ModelHost(LanguageModel model, string id, int parallel, int maxQueue)
    {
        Model = model;
        Id = id;
        Scheduler = new Scheduler(model, parallel, maxQueue, Metrics);
    }

    public LanguageModel Model { get; }
    public string Id { get; }
    public DateTimeOffset Created { get; } = DateTimeOffset.UtcNow;
    public ServerMetrics Metrics { get; } = new();
    public Scheduler Scheduler { get; }

    /// <summary>Tokenizers keep caches that are not safe to share: request handlers encode one at a time.</summary>
    public object TokenizerGate { get; } = new();

    public void Dispose()
    {
        Scheduler.Dispose();
        Model.Dispose();
    }
}

/// <summary>Counters for <c>/metrics</c> (Prometheus text).</summary>
internal sealed class ServerMetrics
{
    private long _requests, _errors, _promptTokens, _cachedTokens, _generated;
    private readonly System.Diagnostics.Stopwatch _busy = new();

    public int QueueDepth { get; set; }
    public int SlotsBusy { get; set; }

    public void AddRequest() => Interlocked.Increment(ref _requests);
    public void AddError() => Interlocked.Increment(ref _errors);
    public void AddPromptTokens(int computed, int reused)
    {
        Interlocked.Add(ref _promptTokens, computed);
        Interlocked.Add(ref _cachedTokens, reused);
    }
    public void AddGeneratedToken() => Interlocked.Increment(ref _generated);
    public void Busy(bool busy)
    {
        if (busy) _busy.Start(); else _busy.Stop();
    }

    public string Prometheus() =>
        $"""
        # HELP nexttoken_requests_total HTTP requests to the API endpoints.
        # TYPE nexttoken_requests_total counter
        nexttoken_requests_total {_requests}
        # HELP nexttoken_request_errors_total Requests answered with an error.
        # TYPE nexttoken_request_errors_total counter
        nexttoken_request_errors_total {_errors}
        # HELP nexttoken_prompt_tokens_total Prompt tokens run through the model.
        # TYPE nexttoken_prompt_tokens_total counter
        nexttoken_prompt_tokens_total {_promptTokens}
        # HELP nexttoken_prompt_tokens_cached_total Prompt tokens reused from the KV cache.
        # TYPE nexttoken_prompt_tokens_cached_total counter
        nexttoken_prompt_tokens_cached_total {_cachedTokens}
        # HELP nexttoken_generated_tokens_total Tokens generated.
        # TYPE nexttoken_generated_tokens_total counter
        nexttoken_generated_tokens_total {_generated}
        # HELP nexttoken_generated_tokens_per_second Generated tokens per second of slot time.
        # TYPE nexttoken_generated_tokens_per_second gauge
        nexttoken_generated_tokens_per_second {(_busy.Elapsed.TotalSeconds > 0 ? _generated / _busy.Elapsed.TotalSeconds : 0).ToString("F2", System.Globalization.CultureInfo.InvariantCulture)}
        # HELP nexttoken_queue_depth Requests waiting for the slot.
        # TYPE nexttoken_queue_depth gauge
        nexttoken_queue_depth {QueueDepth}
        # HELP nexttoken_slots_busy Slots running a request.
        # TYPE nexttoken_slots_busy gauge
        nexttoken_slots_busy {SlotsBusy}

        """;
}
