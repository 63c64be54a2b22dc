using System.Runtime.InteropServices;
using NextToken.Kernels;

namespace NextToken.Bench;

/// <summary>
/// bfloat16 or float16 decode of several inputs, one thread: the lone eight-row kernel (<see cref="HalfRows.BrainEight"/>,
/// <see cref="HalfRows.Eight"/>) run per input on each group of rows, as <c>MatMul.DotRows</c> ran BF16 before, against
/// <see cref="HalfRows.BrainBatch"/> / <see cref="HalfRows.Batch"/>, in alternation within each round (min CPU time of the
/// rounds; the machine is shared), and for F16 the batch with the rows known finite (no check). Two shapes of GPT-2 small's
/// MLP (L3-sized) and one read from memory (64 MB).
/// <c>bench -- --bf16-batch [rounds]</c>, <c>--f16-batch [rounds]</c>.
/// </summary>
public static unsafe class HalfBatchTiming
{
    public static void Run(bool brain, int rounds)
    {
        bool wide = HalfRows.Wide;
        Console.WriteLine($"{(brain ? "BF16" : "F16")} batched decode, {(wide ? "AVX-512" : "AVX2")}, one thread, min of {rounds}; load {File.ReadAllText("/proc/loadavg").Trim()}");
        foreach ((int nIn, int nOut, int reps) in new[] { (768, 3072, 20), (3072, 768, 20), (2048, 16384, 1) })
        {
            var random = new Random(1);
            ushort[] weights = new ushort[nIn * nOut];
            for (int i = 0; i < weights.Length; i++)
            {
                float value = (float)(random.NextDouble() - 0.5);
                weights[i] = brain ? (ushort)(BitConverter.SingleToUInt32Bits(value) >> 16) : BitConverter.HalfToUInt16Bits((Half)value);
            }
            foreach (int batch in new[] { 2, 3, 4, 8 })
            {
                float[] x = Enumerable.Range(0, nIn * batch).Select(i => MathF.Sin(i)).ToArray(), y = new float[nOut * batch];
                double perInput = double.MaxValue, batched = double.MaxValue, known = double.MaxValue;
                fixed (ushort* w = weights)
                fixed (float* xp = x, yp = y)
                    for (int r = 0; r < rounds; r++)
                    {
                        double c0 = ThreadCpuSeconds();
                        for (int k = 0; k < reps; k++)
                            for (int o = 0; o < nOut; o += 8)
                                for (int b = 0; b < batch; b++)
                                    if (brain) HalfRows.BrainEight(wide, w + (long)o * nIn, nIn, xp + b * nIn, nIn, yp + b * nOut + o);
                                    else HalfRows.Eight(wide, w + (long)o * nIn, nIn, xp + b * nIn, nIn, yp + b * nOut + o);
                        double c1 = ThreadCpuSeconds();
                        for (int k = 0; k < reps; k++)
                            if (brain) HalfRows.BrainBatch(wide, w, nIn, nOut, xp, nIn, batch, yp, nOut);
                            else HalfRows.Batch(wide, w, nIn, nOut, xp, nIn, batch, yp, nOut);
                        double c2 = ThreadCpuSeconds();
                        if (!brain)
                            for (int k = 0; k < reps; k++) HalfRows.Batch(wide, w, nIn, nOut, xp, nIn, batch, yp, nOut, finite: true);
                        double c3 = ThreadCpuSeconds();
                        perInput = Math.Min(perInput, (c1 - c0) / reps);
                        batched = Math.Min(batched, (c2 - c1) / reps);
                        known = Math.Min(known, (c3 - c2) / reps);
                    }
                // F16: the batch again with the rows known finite (no check), as MatMul runs it for a finite matrix.
                string finite = brain ? "" : $", known finite {known * 1e6,8:F1} us ({known / batched:F3}x the checked batch)";
                Console.WriteLine($"{nIn,5} x {nOut,-5} batch {batch}: per input {perInput * 1e6,8:F1} us, batched {batched * 1e6,8:F1} us ({batched / perInput:F3}x the time){finite}");
            }
        }
        Resident(brain, wide, rounds);
        Streamed(brain, wide, rounds);
        Console.WriteLine($"load {File.ReadAllText("/proc/loadavg").Trim()}");
    }

    /// <summary>The lone eight-row kernel on 64 rows × 2048 (256 KB: L2-resident), min of 100·rounds passes: ns per 32 values and row.</summary>
    private static void Resident(bool brain, bool wide, int rounds)
    {
        const int nIn = 2048, nOut = 64;
        var random = new Random(2);
        ushort[] weights = new ushort[nIn * nOut];
        for (int i = 0; i < weights.Length; i++)
        {
            float value = (float)(random.NextDouble() - 0.5);
            weights[i] = brain ? (ushort)(BitConverter.SingleToUInt32Bits(value) >> 16) : BitConverter.HalfToUInt16Bits((Half)value);
        }
        float[] x = Enumerable.Range(0, nIn).Select(i => MathF.Sin(i)).ToArray(), y = new float[nOut];
        double best = double.MaxValue;
        fixed (ushort* w = weights)
        fixed (float* xp = x, yp = y)
            for (int r = 0; r < 100 * rounds; r++)
            {
                double c0 = ThreadCpuSeconds();
                for (int k = 0; k < 10; k++)
                    for (int o = 0; o < nOut; o += 8)
                        if (brain) HalfRows.BrainEight(wide, w + (long)o * nIn, nIn, xp, nIn, yp + o);
                        else HalfRows.Eight(wide, w + (long)o * nIn, nIn, xp, nIn, yp + o);
                best = Math.Min(best, (ThreadCpuSeconds() - c0) / 10);
            }
        Console.WriteLine($"lone kernel resident ({nOut} x {nIn}): {best * 1e9 / (nOut * nIn / 32.0):F3} ns per 32 values and row ({nOut * nIn * 2 / best / 1e9:F1} GB/s)");
    }

    /// <summary>
    /// The lone eight-row kernel on one input over 8192 rows × 16384 (256 MB, read from memory each pass; F16 as MatMul runs a
    /// finite matrix, unchecked), min of the rounds: the one-thread read rate a generation step of a large model sees.
    /// </summary>
    private static void Streamed(bool brain, bool wide, int rounds)
    {
        const int nIn = 16384, nOut = 8192;
        ushort* w = (ushort*)NativeMemory.AlignedAlloc((nuint)nIn * nOut * 2, 4096);
        try
        {
            var random = new Random(3);
            for (long i = 0; i < (long)nIn * nOut; i++)
            {
                float value = (float)(random.NextDouble() - 0.5);
                w[i] = brain ? (ushort)(BitConverter.SingleToUInt32Bits(value) >> 16) : BitConverter.HalfToUInt16Bits((Half)value);
            }
            float[] x = Enumerable.Range(0, nIn).Select(i => MathF.Sin(i)).ToArray(), y = new float[nOut];
            double best = double.MaxValue;
            fixed (float* xp = x, yp = y)
                for (int r = 0; r < rounds; r++)
                {
                    double c0 = ThreadCpuSeconds();
                    for (int o = 0; o < nOut; o += 8)
                        if (brain) HalfRows.BrainEight(wide, w + (long)o * nIn, nIn, xp, nIn, yp + o);
                        else HalfRows.Eight(wide, w + (long)o * nIn, nIn, xp, nIn, yp + o, finite: true);
                    best = Math.Min(best, ThreadCpuSeconds() - c0);
                }
            Console.WriteLine($"lone kernel from memory ({nOut} x {nIn}, 256 MB): {best * 1e3:F1} ms ({(double)nOut * nIn * 2 / best / 1e9:F1} GB/s)");
        }
        finally { NativeMemory.AlignedFree(w); }
    }

    [DllImport("libc", EntryPoint = "clock_gettime")]
    private static extern int ClockGetTime(int clock, long* time);

    private static double ThreadCpuSeconds()
    {
        long* t = stackalloc long[2];
        ClockGetTime(3, t); // CLOCK_THREAD_CPUTIME_ID: seconds, nanoseconds
        return t[0] + t[1] * 1e-9;
    }
}
