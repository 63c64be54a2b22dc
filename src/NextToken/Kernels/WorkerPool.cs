namespace NextToken.Kernels;

/// <summary>A piece of parallel work split into numbered chunks.</summary>
public interface IParallelWork
{
    void Execute(int chunk);
}

/// <summary>
/// A persistent pool of worker threads sized to the machine, for the many short parallel regions of
/// a forward pass (a decode step runs about five per layer). The calling thread works too; chunks
/// are handed out through one atomic counter. If another thread is already using the pool, the
/// caller runs its chunks itself rather than wait.
/// </summary>
public sealed class WorkerPool
{
    public static readonly WorkerPool Shared = new(Environment.ProcessorCount);

    private int _busy; // 1 while a Run owns the workers (not a Monitor: that would let the same thread re-enter)
    private readonly SemaphoreSlim _wake = new(0);
    private IParallelWork? _work;
    private int _chunks, _next, _pending;
    private Exception? _error;

    private WorkerPool(int threads)
    {
        Threads = Math.Max(1, threads);
        for (int i = 1; i < Threads; i++)
            new Thread(WorkerLoop) { IsBackground = true, Name = $"nexttoken-worker-{i}" }.Start();
    }

    /// <summary>Threads available, the caller included.</summary>
    public int Threads { get; }

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
            Volatile.Write(ref _next, 0);
            Volatile.Write(ref _pending, helpers);
            _error = null;
            _wake.Release(helpers);
            try
            {
                Drain(work, chunks);
            }
            finally
            {
                var spinner = new SpinWait();
                while (Volatile.Read(ref _pending) != 0) spinner.SpinOnce(sleep1Threshold: -1);
                _work = null;
            }
            if (_error is { } error) throw new AggregateException("a parallel chunk failed", error);
        }
        finally
        {
            Volatile.Write(ref _busy, 0);
        }
    }

    private void Drain(IParallelWork work, int chunks)
    {
        for (int chunk = Interlocked.Increment(ref _next) - 1; chunk < chunks; chunk = Interlocked.Increment(ref _next) - 1)
            work.Execute(chunk);
    }

    private void WorkerLoop()
    {
        while (true)
        {
            _wake.Wait();
            IParallelWork? work = _work;
            try
            {
                if (work is not null) Drain(work, _chunks);
            }
            catch (Exception error)
            {
                _error = error; // reported by the caller; the worker lives on
                Volatile.Write(ref _next, int.MaxValue / 2);
            }
            Interlocked.Decrement(ref _pending);
        }
    }
}
