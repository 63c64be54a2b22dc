using System.Runtime.CompilerServices;
namespace NextToken.Kernels;

/// <summary>A piece of parallel work split into numbered chunks.</summary>
public interface IParallelWork
{
    void Execute(int chunk);
}

/// <summary>
/// A persistent pool of worker threads sized to the machine, for the many short parallel regions of
/// a forward pass (a decode step runs about five per layer, each a few tens of microseconds). The
/// calling thread works too; chunks are handed out through one atomic counter. Between regions a
/// worker spins on the region counter for a while before it sleeps, as ggml's thread pool does:
/// waking a sleeping thread costs more than a small matmul. If another thread is already using
/// the pool, the caller runs its chunks itself rather than wait.
/// </summary>
public sealed class WorkerPool
{
    public static readonly WorkerPool Shared = new(Environment.ProcessorCount);

    /// <summary>Polling (under a millisecond of pause instructions) after the last region before a worker sleeps.</summary>
    private const int SpinsBeforeSleep = 20_000;

    private int _busy; // 1 while a Run owns the workers (not a Monitor: that would let the same thread re-enter)
    private readonly SemaphoreSlim _wake = new(0);
    private IParallelWork? _work;
    private int _chunks, _next, _pending, _sleeping;
    // One word so a worker reads a region and its helper count together: (region number << 16) | helpers.
    private long _announced;
    private Exception? _error;

    private WorkerPool(int threads)
    {
        Threads = Math.Max(1, threads);
        for (int i = 1; i < Threads; i++)
        {
            int index = i;
            new Thread(() => WorkerLoop(index)) { IsBackground = true, Name = $"nexttoken-worker-{i}" }.Start();
        }
    }

    /// <summary>Threads available, the caller included.</summary>
    public int Threads { get; }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void Run(IParallelWork work, int chunks, int threads)
    {
        int helpers = Math.Min(Math.Min(threads, Threads) - 1, chunks - 1);
        if (helpers <= 0 || Interlocked.CompareExchange(ref _busy, 1, 0) != 0)
        {
            for (int i = 0; i < chunks; i++) work.Execute(i);
            return;
        }
        try
        {
            _work = work;
            _chunks = chunks;
            _error = null;
            Volatile.Write(ref _next, 0);
            Volatile.Write(ref _pending, helpers);
            long region = (Volatile.Read(ref _announced) >> 16) + 1;
            Interlocked.Exchange(ref _announced, region << 16 | (long)helpers); // publishes the fields above to spinning workers
            int sleeping = Volatile.Read(ref _sleeping);
            if (sleeping > 0) _wake.Release(sleeping);
            try
            {
                Drain(work, chunks);
            }
            finally
            {
                // The helpers are running on other cores: poll with pause instructions only (yielding
                // to the scheduler costs microseconds), and yield only if they are slow to finish.
                var spinner = new SpinWait();
                for (int spin = 0; Volatile.Read(ref _pending) != 0; spin++)
                {
                    if (spin < SpinsBeforeSleep) Thread.SpinWait(1);
                    else spinner.SpinOnce(sleep1Threshold: -1);
                }
                _work = null;
            }
            if (_error is { } error) throw new AggregateException("a parallel chunk failed", error);
        }
        finally
        {
            Volatile.Write(ref _busy, 0);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void Drain(IParallelWork work, int chunks)
    {
        for (int chunk = Interlocked.Increment(ref _next) - 1; chunk < chunks; chunk = Interlocked.Increment(ref _next) - 1)
            work.Execute(chunk);
    }

    /// <summary>Worker <paramref name="index"/> (1-based) joins a region when the region asks for at least that many helpers.</summary>
    private void WorkerLoop(int index)
    {
        long seen = 0;
        while (true)
        {
            long announced = WaitForRegion(seen);
            seen = announced;
            if (index > (announced & 0xFFFF)) continue;
            try
            {
                if (_work is { } work) Drain(work, _chunks);
            }
            catch (Exception error)
            {
                _error = error; // reported by the caller; the worker lives on
                Volatile.Write(ref _next, int.MaxValue / 2);
            }
            Interlocked.Decrement(ref _pending);
        }
    }

    /// <summary>Polls for an announcement other than <paramref name="seen"/>, then sleeps until one is made.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private long WaitForRegion(long seen)
    {
        for (int spin = 0; spin < SpinsBeforeSleep; spin++)
        {
            long announced = Volatile.Read(ref _announced);
            if (announced != seen) return announced;
            Thread.SpinWait(1);
        }
        while (true)
        {
            Interlocked.Increment(ref _sleeping);
            long announced = Interlocked.Read(ref _announced); // a Run that missed our count cannot have missed this read
            if (announced == seen) _wake.Wait();
            Interlocked.Decrement(ref _sleeping);
            announced = Interlocked.Read(ref _announced);
            if (announced != seen) return announced;
        }
    }
}
