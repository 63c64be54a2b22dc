using System.Runtime.CompilerServices;
using NextToken.Generation;
using NextToken.Models;

namespace NextToken.Server;

/// <summary>
/// The served model and its one slot: requests take turns (waiting in a bounded queue), and each
/// reuses the KV cache for the prefix its prompt shares with what the slot ran last.
/// </summary>
internal sealed class ModelHost(LanguageModel model, string id, int maxQueue) : IDisposable
{
    private readonly SemaphoreSlim _slot = new(1, 1);
    private readonly GenerationSlot _context = new(model);
    private int _waiting;

    public LanguageModel Model { get; } = model;
    public string Id { get; } = id;
    public DateTimeOffset Created { get; } = DateTimeOffset.UtcNow;
    public ServerMetrics Metrics { get; } = new();

    /// <summary>Takes the slot, waiting in the queue; a full queue is a 503.</summary>
    public async Task<IDisposable> AcquireAsync(CancellationToken cancel)
    {
        if (Interlocked.Increment(ref _waiting) > maxQueue + 1)
        {
            Interlocked.Decrement(ref _waiting);
            throw new ApiError(503, $"the server is busy: {maxQueue} requests are already waiting; try again shortly", null, "server_busy", "server_error");
        }
        Metrics.QueueDepth = Math.Max(0, _waiting - 1);
        try
        {
            await _slot.WaitAsync(cancel);
        }
        catch
        {
            Interlocked.Decrement(ref _waiting);
            throw;
        }
        return new Lease(this);
    }

    private sealed class Lease(ModelHost host) : IDisposable
    {
        private int _released;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _released, 1) != 0) return;
            Interlocked.Decrement(ref host._waiting);
            host.Metrics.QueueDepth = Math.Max(0, host._waiting - 1);
            host._slot.Release();
        }
    }

    /// <summary>Logits for every prompt position, the prompt left in the cache. Call while holding the slot.</summary>
    public float[] PromptLogits(int[] prompt) => _context.PromptLogits(prompt);

    /// <summary>Generates after <paramref name="prompt"/>, reusing the cached prefix. Call while holding the slot.</summary>
    public async IAsyncEnumerable<GeneratedToken> GenerateAsync(Generator generator, int[] prompt, GenerationOptions options,
                                                                [EnumeratorCancellation] CancellationToken cancel)
    {
        bool first = true;
        await foreach (GeneratedToken token in _context.GenerateAsync(generator, prompt, options, cancel))
        {
            if (first) Metrics.AddPromptTokens(prompt.Length - _context.LastReused, _context.LastReused);
            first = false;
            Metrics.AddGeneratedToken();
            yield return token;
        }
    }

    public void Dispose()
    {
        Model.Dispose();
        _slot.Dispose();
    }
}

/// <summary>Counters for <c>/metrics</c> (Prometheus text).</summary>
internal sealed class ServerMetrics
{
    private long _requests, _errors, _promptTokens, _cachedTokens, _generated;
    private readonly System.Diagnostics.Stopwatch _busy = new();

    public int QueueDepth { get; set; }
    public int SlotsBusy => _busy.IsRunning ? 1 : 0;

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
