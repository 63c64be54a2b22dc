using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics.X86;

namespace NextToken.Kernels;

/// <summary>
/// The order a decode kernel that reads G rows at once takes its rows in. Consecutive rows (o … o + G − 1) make G interleaved
/// streams each one row long (1.5–4 KB for F16 and F32 rows), which a core's hardware prefetcher, learning a stream from its
/// first misses and stopping at every 4 KB page, hardly follows; rows from G separate stretches of the range (o + i,
/// o + q + i, …, o + (G − 1)·q + i for i = 0 … q − 1) make G streams that each run on through q rows. A C loop reading a
/// mapped file on a Zen 4 (issue #13, seventeenth session), one thread, 4 rows of 1152 bytes at a time: 12 GB/s
/// consecutive without software prefetch, 19–21 with it, 31 in four stretches without it (one linear stream: 26–29).
/// Each row's result is the same either way: only which rows share a pass changes. <c>NEXTTOKEN_ROW_STREAMS=0</c> takes
/// consecutive rows (to compare both on one machine).
/// </summary>
internal static unsafe class RowStreams
{
    public static bool Enabled { get; } = Environment.GetEnvironmentVariable("NEXTTOKEN_ROW_STREAMS") != "0";

    /// <summary>Rows per stretch for a range of <paramref name="rows"/> read <paramref name="group"/> at a time, or 0 where the range holds fewer than two groups.</summary>
    public static int Stretch(int rows, int group) => Enabled && rows / group >= 2 ? rows / group : 0;

    /// <summary>
    /// The distance (in elements) from a row to the row its accumulators take next, for prefetching past its end: the next
    /// group's (consecutive rows, <paramref name="stride"/> = <paramref name="n"/>) or the next row of its stretch.
    /// </summary>
    public static long Following(long stride, int n, int group) => stride == n ? group * stride : n;

    /// <summary>
    /// Prefetches the line at <paramref name="address"/> for a streaming kernel: into L2 where <see cref="CpuInfo.PrefetchesToL2"/>
    /// says so, else into L1. The decode dispatch reads <see cref="Stretch"/> before it calls a kernel, so this class is
    /// initialized when the kernel compiles and the JIT folds the flag, keeping only the one instruction (checked with
    /// <c>DOTNET_JitDisasm</c> in <c>EightWide</c> and <c>F32Tile4x1Wide</c>); a kernel compiled earlier would keep a branch
    /// that always goes the same way.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Prefetch(void* address)
    {
        if (ToL2) Sse.Prefetch1(address);
        else Sse.Prefetch0(address);
    }

    private static readonly bool ToL2 = CpuInfo.PrefetchesToL2;

    /// <summary>A pass's results (<paramref name="count"/> of them, one per stretch) to their rows: y[k·stretch] = results[k].</summary>
    public static void Scatter(float* results, int count, float* y, int stretch)
    {
        for (int k = 0; k < count; k++) y[(long)k * stretch] = results[k];
    }
}
