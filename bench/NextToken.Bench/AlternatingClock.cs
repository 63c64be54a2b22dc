using System.Diagnostics;
using System.Runtime.CompilerServices;

namespace NextToken.Bench;

/// <summary>
/// Two kernels timed in alternation within one process (for a machine whose load moves between BenchmarkDotNet's runs):
/// the minimum of each, and the clock rate from a chain of dependent 64-bit multiplies timed beside them, so times can be
/// given in cycles.
/// </summary>
internal static class AlternatingClock
{
    private static ulong s_multiplier = 0x9E3779B97F4A7C15; // a field, so the JIT cannot fold the chain
    private static ulong s_sink;

    /// <summary>4096 dependent 64-bit integer multiplies: 3 cycles each (imul latency on Intel since Sandy Bridge and on AMD Zen), 12,288 cycles.</summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)] // optimized from the first call: a clock must not wait for tiering
    public static ulong MultiplyChain()
    {
        ulong a = s_multiplier | 1, k = s_multiplier;
        for (int i = 0; i < 4096; i++) a *= k;
        return a;
    }

    /// <summary>After a warm-up (tier-1 code installed), <paramref name="rounds"/> of first, second, clock: the minimum µs of each kernel and the clock in GHz.</summary>
    public static (double First, double Second, double Gigahertz) Time(Action first, Action second, int rounds)
    {
        for (int i = 0; i < 200; i++) { first(); second(); s_sink += MultiplyChain(); }
        Thread.Sleep(500);
        double a = double.MaxValue, b = double.MaxValue, chain = double.MaxValue, tick = 1e6 / Stopwatch.Frequency;
        for (int round = 0; round < rounds; round++)
        {
            long t0 = Stopwatch.GetTimestamp();
            first();
            long t1 = Stopwatch.GetTimestamp();
            second();
            long t2 = Stopwatch.GetTimestamp();
            s_sink += MultiplyChain();
            long t3 = Stopwatch.GetTimestamp();
            a = Math.Min(a, (t1 - t0) * tick);
            b = Math.Min(b, (t2 - t1) * tick);
            chain = Math.Min(chain, (t3 - t2) * tick);
        }
        return (a, b, 12288 / chain / 1e3);
    }
}
