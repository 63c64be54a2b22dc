using System.Threading.Channels;
using NextToken.Generation;
using NextToken.Models;

namespace NextToken.Server;

/// <summary>One sequence to generate: a prompt, how to sample, and where its tokens go.</summary>
internal sealed class SequenceRequest(int[] prompt, GenerationOptions options, bool promptLogits, bool cachePrompt, CancellationToken cancel)
{
    public int[] Prompt { get; } = prompt;
    public GenerationOptions Options { get; } = options;
    public bool WantsPromptLogits { get; } = promptLogits;
    public bool CachePrompt { get; } = cachePrompt;
    public CancellationToken Cancel { get; } = cancel;

    /// <summary>The tokens as they are chosen; completed when the sequence ends (with the error, if one ended it).</summary>
    public Channel<GeneratedToken> Tokens { get; } = Channel.CreateUnbounded<GeneratedToken>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });

    /// <summary>Set once the prompt has run: its logits for every position when asked for ([length, vocab]), else an empty array.</summary>
    public TaskCompletionSource<float[]> Prefilled { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Stop reason, trailing text and seed, once <see cref="Tokens"/> completes.</summary>
    public TokenStream? Stream { get; set; }

    public int ReusedPromptTokens { get; set; }

    public void Fail(Exception error)
    {
        Prefilled.TrySetException(error);
        Tokens.Writer.TryComplete(error);
    }
}

/// <summary>
/// Continuous batching over <c>--parallel</c> slots, as llama-server does: each slot has its own KV
/// cache (kept between requests for prompt-prefix reuse); a new request takes a free slot and runs
/// its prompt; then every active slot's next token goes through the model in one
/// <see cref="LanguageModel.ForwardEach"/> pass, which reads the weights once for all of them and
/// gives each row exactly what it would get alone — so a request's tokens do not depend on what
/// else is running. Requests beyond the slots wait in a bounded queue (full: 503). Only the
/// scheduler's thread runs the model.
/// </summary>
internal sealed class Scheduler : IDisposable
{
    private sealed class Slot(ModelState state, int vocab)
    {
        public ModelState State { get; } = state;
        public float[] Logits { get; } = new float[vocab];
        public List<int> Cached { get; } = [];
        public SequenceRequest? Request { get; set; }
        public TokenStream? Stream { get; set; }
    }

    private readonly LanguageModel _model;
    private readonly Slot[] _slots;
    private readonly List<SequenceRequest> _waiting = []; // first come, first served; guarded by itself
    private readonly Channel<Action> _exclusive = Channel.CreateUnbounded<Action>();
    private readonly SemaphoreSlim _wake = new(0);
    private readonly ServerMetrics _metrics;
    private readonly Thread _thread;
    private readonly CancellationTokenSource _stopping = new();
    private int _queued;
    private readonly int _maxQueue;

    public Scheduler(LanguageModel model, int parallel, int maxQueue, ServerMetrics metrics)
    {
        if (parallel < 1) throw new NextTokenException($"--parallel must be at least 1, not {parallel}");
        _model = model;
        _metrics = metrics;
        _maxQueue = maxQueue;
        // The first slot's buffers serve as the batch's scratch, so they need room for every slot's
        // row; the default batch (prompt chunks of up to 128 positions) is larger than any --parallel.
        _slots = Enumerable.Range(0, parallel).Select(_ => new Slot(model.CreateState(), model.VocabSize)).ToArray();
        if (_slots[0].State.MaxBatch < parallel)
            throw new NextTokenException($"--parallel {parallel} exceeds the model's batch buffers ({_slots[0].State.MaxBatch})");
        _thread = new Thread(Loop) { IsBackground = true, Name = "nexttoken-scheduler" };
        _thread.Start();
    }

    public int Parallel => _slots.Length;

    /// <summary>Queues the sequences of one request, all or none: a queue without room for all is a 503.</summary>
    public void Submit(IReadOnlyList<SequenceRequest> requests)
    {
        if (Interlocked.Add(ref _queued, requests.Count) > _maxQueue + _slots.Length)
        {
            Interlocked.Add(ref _queued, -requests.Count);
            throw new ApiError(503, $"the server is busy: {_slots.Length} slots and {_maxQueue} places in the queue are taken; try again shortly", null, "server_busy", "server_error");
        }
        lock (_waiting)
        {
            if (_stopping.IsCancellationRequested)
            {
                Interlocked.Add(ref _queued, -requests.Count);
                throw new ApiError(503, "the server is shutting down", null, "server_busy", "server_error");
            }
            _waiting.AddRange(requests);
            _metrics.QueueDepth = _waiting.Count;
        }
        // A request given up while it waits (client gone, time limit) leaves the queue at once, even
        // while every slot is busy, so dead requests neither hold places nor make others wait.
        foreach (SequenceRequest request in requests) request.Cancel.Register(static scheduler => ((Scheduler)scheduler!).Wake(), this);
        Wake();
    }

    private void Wake()
    {
        try
        {
            _wake.Release();
        }
        catch (ObjectDisposedException)
        {
            // the scheduler has stopped; nothing waits for the signal
        }
    }

    /// <summary>Fails and removes the waiting requests that were given up.</summary>
    private void DropCancelled()
    {
        lock (_waiting)
        {
            int dropped = _waiting.RemoveAll(request =>
            {
                if (!request.Cancel.IsCancellationRequested) return false;
                request.Fail(new OperationCanceledException(request.Cancel));
                return true;
            });
            if (dropped == 0) return;
            Interlocked.Add(ref _queued, -dropped);
            _metrics.QueueDepth = _waiting.Count;
        }
    }

    private bool TryTakeWaiting(out SequenceRequest request)
    {
        lock (_waiting)
        {
            if (_waiting.Count == 0)
            {
                request = null!;
                return false;
            }
            request = _waiting[0];
            _waiting.RemoveAt(0);
            _metrics.QueueDepth = _waiting.Count;
            return true;
        }
    }

    /// <summary>
    /// Runs <paramref name="work"/> on the scheduler's thread between two decode steps (the model
    /// is never run from two threads): inspection, which runs whole contexts and may register hooks.
    /// </summary>
    public Task<T> RunExclusiveAsync<T>(Func<T> work, CancellationToken cancel)
    {
        var done = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        if (!_exclusive.Writer.TryWrite(() =>
            {
                if (cancel.IsCancellationRequested)
                {
                    done.TrySetCanceled(cancel);
                    return;
                }
                try
                {
                    done.TrySetResult(work());
                }
                catch (Exception error)
                {
                    done.TrySetException(error);
                }
            }))
            throw new ApiError(503, "the server is shutting down", null, "server_busy", "server_error");
        Wake();
        return done.Task.WaitAsync(cancel);
    }

    private int Busy => _slots.Count(s => s.Request is not null);

    private void Loop()
    {
        var states = new ModelState[_slots.Length];
        var tokens = new int[_slots.Length];
        var active = new Slot[_slots.Length];
        var logits = new float[_slots.Length * _model.VocabSize];
        WarmUp(logits);
        while (!_stopping.IsCancellationRequested)
        {
            try
            {
                while (_exclusive.Reader.TryRead(out Action? work)) work();
                DropCancelled();
                Admit();
                int n = 0;
                foreach (Slot slot in _slots)
                {
                    if (slot.Request is null) continue;
                    if (slot.Request.Cancel.IsCancellationRequested)
                    {
                        Release(slot, null);
                        continue;
                    }
                    active[n] = slot;
                    states[n] = slot.State;
                    tokens[n] = slot.Stream!.NextInput;
                    n++;
                }
                _metrics.SlotsBusy = n;
                if (n == 0)
                {
                    // Nothing to decode: sleep until a request or other work arrives.
                    _wake.Wait(_stopping.Token);
                    continue;
                }
                _metrics.Busy(true);
                _model.ForwardEach(states.AsSpan(0, n), tokens.AsSpan(0, n), logits);
                for (int i = 0; i < n; i++)
                {
                    Slot slot = active[i];
                    logits.AsSpan(i * _model.VocabSize, _model.VocabSize).CopyTo(slot.Logits);
                    Deliver(slot);
                }
                _metrics.Busy(false);
            }
            catch (OperationCanceledException) when (_stopping.IsCancellationRequested)
            {
                break;
            }
            catch (Exception error)
            {
                // A failure inside the model ends every running sequence with it; the server goes on.
                _metrics.Busy(false);
                foreach (Slot slot in _slots)
                    if (slot.Request is not null) Release(slot, error);
            }
        }
        foreach (Slot slot in _slots)
            if (slot.Request is not null) Release(slot, new OperationCanceledException("the server stopped"));
        lock (_waiting)
        {
            foreach (SequenceRequest waiting in _waiting) waiting.Fail(new OperationCanceledException("the server stopped"));
            _waiting.Clear();
        }
        while (_exclusive.Reader.TryRead(out Action? work)) work(); // each sees the model still loaded
    }

    /// <summary>
    /// Runs each path a request takes once before the first request (llama-server warms its model up too):
    /// a 16-token prompt (the prompt kernels), one batched step of two slots and one step of a lone slot
    /// (the decode kernels), and a sampling step. Kernels are compiled fully optimized on first call, so
    /// otherwise the first request waits for that (its first token 50–100 ms late). The slots are
    /// rewound to empty afterwards; requests that arrive meanwhile wait in the queue.
    /// </summary>
    private void WarmUp(float[] logits)
    {
        const int promptLength = 16;
        if (_model.ContextLength < promptLength + 2) return;
        try
        {
            var prompt = new int[promptLength]; // token 0 exists in every vocabulary
            Slot first = _slots[0], second = _slots[^1];
            _model.Forward(first.State, prompt, first.Logits);
            if (second != first)
            {
                _model.Forward(second.State, prompt.AsSpan(0, 1), second.Logits);
                _model.ForwardEach([first.State, second.State], [0, 0], logits);
            }
            _model.Forward(first.State, prompt.AsSpan(0, 1), first.Logits);
            new TokenStream(_model, new GenerationOptions { MaxTokens = 1 }).Step(first.Logits, first.State.Position);
        }
        catch (Exception error) when (error is not OutOfMemoryException)
        {
            // A model that fails here fails the first request with its own message; the warm-up only saves time.
        }
        finally
        {
            foreach (Slot slot in _slots) slot.State.Rewind(0);
        }
    }

    /// <summary>Gives waiting requests the free slots (the one whose cache shares most of the prompt first) and runs their prompts.</summary>
    private void Admit()
    {
        while (_slots.Any(s => s.Request is null) && TryTakeWaiting(out SequenceRequest request))
        {
            if (request.Cancel.IsCancellationRequested)
            {
                Interlocked.Decrement(ref _queued);
                request.Fail(new OperationCanceledException(request.Cancel));
                continue;
            }
            Slot slot = _slots.Where(s => s.Request is null).MaxBy(s => request.CachePrompt ? CommonPrefix(s.Cached, request.Prompt) : 0)!;
            slot.Request = request;
            try
            {
                Prefill(slot, request);
                Deliver(slot);
            }
            catch (Exception error)
            {
                Release(slot, error);
            }
        }
    }

    private void Prefill(Slot slot, SequenceRequest request)
    {
        int[] prompt = request.Prompt;
        slot.Stream = request.Stream = new TokenStream(_model, request.Options);
        if (request.WantsPromptLogits)
        {
            var all = new float[(long)prompt.Length * _model.VocabSize];
            slot.State.Rewind(0);
            slot.Cached.Clear();
            _model.Forward(slot.State, prompt, all, LogitsFor.AllPositions);
            all.AsSpan(all.Length - _model.VocabSize).CopyTo(slot.Logits);
            request.Prefilled.TrySetResult(all);
        }
        else
        {
            int common = request.CachePrompt ? CommonPrefix(slot.Cached, prompt) : 0;
            if (common == prompt.Length) common--; // the last prompt token must run to give the first distribution
            slot.State.Rewind(common);
            slot.Cached.RemoveRange(common, slot.Cached.Count - common);
            request.ReusedPromptTokens = common;
            _model.Forward(slot.State, prompt.AsSpan(common), slot.Logits);
            request.Prefilled.TrySetResult([]);
        }
        slot.Cached.Clear();
        slot.Cached.AddRange(prompt);
        _metrics.AddPromptTokens(prompt.Length - request.ReusedPromptTokens, request.ReusedPromptTokens);
    }

    /// <summary>The slot's next token from its logits, to its request; frees the slot when the sequence ends.</summary>
    private void Deliver(Slot slot)
    {
        SequenceRequest request = slot.Request!;
        TokenStream stream = slot.Stream!;
        if (stream.Finished)
        {
            Release(slot, null);
            return;
        }
        GeneratedToken? token = stream.Step(slot.Logits, slot.State.Position);
        if (token is not null)
        {
            _metrics.AddGeneratedToken();
            request.Tokens.Writer.TryWrite(token);
            slot.Cached.Add(token.Id);
        }
        if (stream.Finished) Release(slot, null);
    }

    private void Release(Slot slot, Exception? error)
    {
        SequenceRequest request = slot.Request!;
        slot.Stream?.Stop();
        // What the cache holds: prompt and generated tokens as far as they ran (the last chosen one never ran).
        if (slot.Cached.Count > slot.State.Position) slot.Cached.RemoveRange(slot.State.Position, slot.Cached.Count - slot.State.Position);
        if (slot.Cached.Count != slot.State.Position)
        {
            slot.State.Rewind(0);
            slot.Cached.Clear();
        }
        slot.Request = null;
        slot.Stream = null;
        Interlocked.Decrement(ref _queued);
        if (error is not null) request.Fail(error);
        else if (request.Cancel.IsCancellationRequested) request.Fail(new OperationCanceledException(request.Cancel));
        else
        {
            request.Prefilled.TrySetResult([]);
            request.Tokens.Writer.TryComplete();
        }
    }

    private static int CommonPrefix(List<int> cached, int[] prompt)
    {
        int n = 0;
        while (n < cached.Count && n < prompt.Length && cached[n] == prompt[n]) n++;
        return n;
    }

    public void Dispose()
    {
        lock (_waiting) _stopping.Cancel(); // no request joins the queue after the loop has emptied it
        _exclusive.Writer.TryComplete();
        _thread.Join(TimeSpan.FromSeconds(10));
        _stopping.Dispose();
        _wake.Dispose();
    }
}
