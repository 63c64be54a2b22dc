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
/// calling thread works too. Chunks are claimed through one 64-bit word holding the region number
/// and the next chunk, so a worker that arrives after its region ended (descheduled, or slow to wake)
/// claims nothing, and the caller waits only for chunks that were claimed, never for a worker that
/// has not joined: with more runnable threads than cores (a busy machine) a worker without a core
/// no longer stalls every region. Between regions a worker polls for a short while, yielding its
/// core to other runnable threads between polls, then sleeps: waking a sleeping thread costs more
/// than a small matmul, but a poll that holds a core another thread needs costs more still. If
/// another thread is already using the pool, the caller runs its chunks itself rather than wait.
/// </summary>
public sealed class WorkerPool
{
    public static readonly WorkerPool Shared = new(Environment.ProcessorCount);

    /// <summary>Polls (pause instructions, about a millisecond in all) after the last region before a worker sleeps.</summary>
    private const int SpinsBeforeSleep = 20_000;

    /// <summary>Pauses between two yields of a polling thread (a few microseconds): a yield costs a system call, but gives the core to a runnable thread at once.</summary>
    private const int SpinsPerYield = 64;

    private int _busy; // 1 while a Run owns the workers (not a Monitor: that would let the same thread re-enter)
    private readonly SemaphoreSlim _wake = new(0);
    private IParallelWork? _work;
    private int _chunks, _done, _sleeping;
    // (region number mod 2³² << 32) | next chunk: a claim is one compare-exchange that fails once the region is over.
    private long _next;
    // One word so a worker reads a region and its helper count together: (region number << 16) | helpers.
    private long _announced;
    private Exception? _error;
    private bool _profiled; // the current region's chunk times go to StepProfile

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
        bool profile = StepProfile.Collects;
        try
        {
            if (profile) StepProfile.RegionStarted(helpers + 1);
            long region = (Volatile.Read(ref _announced) >> 16) + 1;
            // Close the last region's claim word first: a late worker that read it before would
            // otherwise compare its chunk with this region's (larger) count, win its compare-exchange
            // on the old word, run a chunk of this region and count it twice — _done then passes
            // `chunks` and this caller waits for ever.
            Interlocked.Exchange(ref _next, First(region) | int.MaxValue);
            _work = work;
            _chunks = chunks;
            _error = null;
            _profiled = profile;
            Volatile.Write(ref _done, 0);
            Interlocked.Exchange(ref _next, First(region)); // opens the region's chunks (after the fields above)
            Interlocked.Exchange(ref _announced, region << 16 | (long)helpers);
            int sleeping = Volatile.Read(ref _sleeping);
            if (sleeping > 0) _wake.Release(sleeping);
            Drain(region, 0, profile);
            long drained = profile ? System.Diagnostics.Stopwatch.GetTimestamp() : 0;
            // Every chunk is claimed now; wait for those still running on other threads, yielding
            // now and then in case one of them was descheduled and waits for this core.
            var spinner = new SpinWait();
            for (int spin = 1; Volatile.Read(ref _done) != chunks; spin++)
            {
                if (spin > SpinsBeforeSleep) spinner.SpinOnce(sleep1Threshold: -1);
                else if (spin % SpinsPerYield == 0) Thread.Yield();
                else Thread.SpinWait(1);
            }
            _work = null;
            if (profile) StepProfile.RegionEnded(drained);
            if (_error is { } error) throw new AggregateException("a parallel chunk failed", error);
        }
        finally
        {
            Volatile.Write(ref _busy, 0);
        }
    }

    /// <summary>The claim word of a region's first chunk (the region number's low 32 bits, so it never overflows).</summary>
    private static long First(long region) => (long)((ulong)(uint)region << 32);

    /// <summary>Claims and runs chunks of <paramref name="region"/> until none is left (or the region is over).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void Drain(long region, int thread, bool profile)
    {
        while (true)
        {
            long next = Volatile.Read(ref _next);
            if (next >>> 32 != (uint)region) return;
            int chunk = (int)next;
            // _work and _chunks belong to this region while it is current and a claim of it is unfinished.
            if (chunk >= Volatile.Read(ref _chunks)) return;
            if (Interlocked.CompareExchange(ref _next, next + 1, next) != next) continue;
            long start = profile ? System.Diagnostics.Stopwatch.GetTimestamp() : 0;
            try
            {
                _work!.Execute(chunk);
            }
            catch (Exception error)
            {
                _error = error; // reported by the caller; the worker lives on
                // Claim the rest so nobody starts them; they count as done.
                long rest;
                do rest = Volatile.Read(ref _next);
                while ((int)rest < _chunks && Interlocked.CompareExchange(ref _next, First(region) | (uint)_chunks, rest) != rest);
                Interlocked.Add(ref _done, _chunks - (int)rest);
            }
            if (profile) StepProfile.ChunkRan(thread, start);
            Interlocked.Increment(ref _done);
        }
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
            Drain(announced >> 16, index, _profiled);
        }
    }

    /// <summary>Polls for an announcement other than <paramref name="seen"/>, yielding now and then, then sleeps until one is made.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private long WaitForRegion(long seen)
    {
        for (int spin = 1; spin <= SpinsBeforeSleep; spin++)
        {
            long announced = Volatile.Read(ref _announced);
            if (announced != seen) return announced;
            if (spin % SpinsPerYield == 0) Thread.Yield();
            else Thread.SpinWait(1);
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
