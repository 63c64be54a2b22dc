using System.Diagnostics;

namespace NextToken.Kernels;

/// <summary>The parts of a decode step <see cref="StepProfile"/> times, in step order.</summary>
public enum StepPhase
{
    /// <summary>From the end of the last step to this one's forward pass (the caller's loop, input checks).</summary>
    Other,
    Embed,
    /// <summary>RMSNorms, residual adds and post-norms between the matmuls.</summary>
    Norms,
    QueryKeyValue,
    /// <summary>RoPE (GPT-2: the q/k/v bias) and the key/value cache store.</summary>
    RopeStore,
    Attention,
    AttentionOutput,
    /// <summary>The feed-forward's first matmuls (gate and up; GPT-2's up).</summary>
    GateUp,
    /// <summary>silu(gate) ⊙ up (GPT-2: bias and GELU).</summary>
    Glu,
    Down,
    LmHead,
}

/// <summary>
/// Where a decode step's time goes (<c>bench --step-profile</c>): wall time per phase on the calling thread, and for the
/// phases that run parallel regions (<see cref="WorkerPool.Run"/>), each thread's time inside chunks, the caller's wait for
/// chunks still running elsewhere, and how late the helper started. Off unless <see cref="Enabled"/>: then every hook is one
/// test of a static field. Process-wide, collecting for the one thread that started it (bench's loop).
/// </summary>
public static class StepProfile
{
    private const int MaxThreads = 64;
    private static readonly int Phases = Enum.GetValues<StepPhase>().Length;

    /// <summary>Collects while true, for the thread that called <see cref="Start"/> only.</summary>
    public static bool Enabled { get; private set; }

    private static int _owner;

    /// <summary>Whether the calling thread's phases and regions are collected.</summary>
    internal static bool Collects => Enabled && Environment.CurrentManagedThreadId == _owner;

    private static readonly long[] Wall = new long[Phases], RegionWall = new long[Phases], Wait = new long[Phases], Regions = new long[Phases], HelperLate = new long[Phases];
    private static readonly long[,] Busy = new long[Phases, MaxThreads], Chunks = new long[Phases, MaxThreads];
    // The regions since the last Mark, added to the phase Mark closes.
    private static readonly long[] PendingBusy = new long[MaxThreads], PendingChunks = new long[MaxThreads];
    private static long _pendingRegionWall, _pendingWait, _pendingRegions, _pendingLate, _last;
    private static long _regionStart, _firstHelperClaim;
    private static int _threads;

    public static void Start()
    {
        Array.Clear(Wall); Array.Clear(RegionWall); Array.Clear(Wait); Array.Clear(Regions); Array.Clear(HelperLate);
        Array.Clear(Busy); Array.Clear(Chunks); Array.Clear(PendingBusy); Array.Clear(PendingChunks);
        _pendingRegionWall = _pendingWait = _pendingRegions = _pendingLate = 0;
        _threads = 1;
        _last = Stopwatch.GetTimestamp();
        _owner = Environment.CurrentManagedThreadId;
        Enabled = true;
    }

    public static void Stop() => Enabled = false;

    /// <summary>Ends <paramref name="phase"/>: the time since the last mark, and the regions run in it, count as its.</summary>
    public static void Mark(StepPhase phase)
    {
        if (!Collects) return;
        long now = Stopwatch.GetTimestamp();
        int p = (int)phase;
        Wall[p] += now - _last;
        _last = now;
        RegionWall[p] += _pendingRegionWall;
        Wait[p] += _pendingWait;
        Regions[p] += _pendingRegions;
        HelperLate[p] += _pendingLate;
        for (int t = 0; t < _threads; t++)
        {
            Busy[p, t] += PendingBusy[t];
            Chunks[p, t] += PendingChunks[t];
            PendingBusy[t] = PendingChunks[t] = 0;
        }
        _pendingRegionWall = _pendingWait = _pendingRegions = _pendingLate = 0;
    }

    internal static void RegionStarted(int threads)
    {
        _threads = Math.Max(_threads, Math.Min(threads, MaxThreads));
        _firstHelperClaim = 0;
        _regionStart = Stopwatch.GetTimestamp();
    }

    /// <summary>A chunk ran on thread <paramref name="thread"/> (0 the caller) from <paramref name="start"/> to now.</summary>
    internal static void ChunkRan(int thread, long start)
    {
        if (thread >= MaxThreads) return;
        long now = Stopwatch.GetTimestamp();
        PendingBusy[thread] += now - start;
        PendingChunks[thread]++;
        if (thread > 0 && _firstHelperClaim == 0) Interlocked.CompareExchange(ref _firstHelperClaim, start, 0);
    }

    /// <summary>The caller finished its own chunks at <paramref name="drained"/> and saw the last chunk done now.</summary>
    internal static void RegionEnded(long drained)
    {
        long now = Stopwatch.GetTimestamp();
        _pendingRegionWall += now - _regionStart;
        _pendingWait += now - drained;
        _pendingRegions++;
        // A helper that claimed nothing was late by the whole region.
        long late = _firstHelperClaim == 0 ? now - _regionStart : _firstHelperClaim - _regionStart;
        _pendingLate += late;
    }

    /// <summary>The totals per phase since <see cref="Start"/>, divided by <paramref name="steps"/>, in milliseconds.</summary>
    public static IReadOnlyList<StepPhaseTimes> Report(int steps)
    {
        double ms = 1000.0 / Stopwatch.Frequency / Math.Max(1, steps);
        var rows = new List<StepPhaseTimes>();
        for (int p = 0; p < Phases; p++)
        {
            if (Wall[p] == 0 && Regions[p] == 0) continue;
            var busy = new double[_threads];
            var chunks = new double[_threads];
            for (int t = 0; t < _threads; t++)
            {
                busy[t] = Busy[p, t] * ms;
                chunks[t] = Chunks[p, t] / (double)Math.Max(1, steps);
            }
            rows.Add(new StepPhaseTimes((StepPhase)p, Wall[p] * ms, Regions[p] / (double)Math.Max(1, steps), RegionWall[p] * ms, busy, chunks, Wait[p] * ms, HelperLate[p] * ms));
        }
        return rows;
    }
}

/// <summary>
/// One phase's share of a decode step (milliseconds per step): <see cref="Wall"/> on the calling thread, of which
/// <see cref="RegionWall"/> inside parallel regions; per thread (0 the caller) the time inside chunks and the chunks run;
/// the caller's wait for others' chunks after its own ran out; and how long after a region opened a helper claimed its first chunk.
/// </summary>
public sealed record StepPhaseTimes(StepPhase Phase, double Wall, double Regions, double RegionWall, double[] Busy, double[] Chunks, double CallerWait, double HelperLate);
