using System.Diagnostics;
using System.Runtime.Intrinsics;
using NextToken.Gguf;
using NextToken.Kernels;
using NextToken.Tensors;

namespace NextToken.Bench;

/// <summary>
/// Exact K-quant decode from memory against a bare read of the same bytes in the same order: <c>--kquant-stream FILE [rounds] [threads]</c>.
/// AVX2 (run with DOTNET_EnableAVX512=0 DOTNET_EnableAVXVNNI=0): the plane kernels row by row (<see cref="KQuantPlanes"/>) and a read
/// of each row linearly with the same prefetch; AVX-512: the Q4_K table kernel (<see cref="KQuantTablesWide"/>) and a read of four
/// rows in step (each row's block prefetched four rows on, as the kernel does, and the next four rows prefetched in address order); "resident": the kernel over the first
/// matrix's first ~384 KB of rows, repeated to the same amount of work. Rows split between threads as MatMul's equal chunks
/// (groups of four). Minimum over rounds of the wall time and of the process's CPU time; cycles from the multiply-chain clock.
/// </summary>
public static unsafe class KQuantStreamTiming
{
    private static long s_sink;

    public static void Run(string model, int rounds, int threads)
    {
        bool wide = KQuantTablesWide.IsSupported;
        using GgufFile gguf = GgufFile.Open(model);
        double ghz = AlternatingClock.Time(() => { }, () => { }, 50).Gigahertz;
        foreach (GgmlType type in wide ? new[] { GgmlType.Q4_K } : new[] { GgmlType.Q4_K, GgmlType.Q6_K })
        {
            TensorData[] matrices = gguf.Tensors.Where(t => t.Type == type).Select(t => gguf.GetTensor(t.Name)).Where(t => t.RowLength % 256 == 0).ToArray();
            if (matrices.Length == 0)
            {
                Console.WriteLine($"{type}: no matrices of this type with rows of whole super-blocks in {model}");
                continue;
            }
            long bytes = 0;
            matrices = matrices.TakeWhile(m => (bytes += m.ByteLength) < 600_000_000).ToArray();
            bytes = matrices.Sum(m => m.ByteLength);
            long units = matrices.Sum(m => (long)m.RowLength / 256 * m.RowCount);
            int maxIn = matrices.Max(m => m.RowLength), maxOut = matrices.Max(m => m.RowCount);
            float[] x = GC.AllocateArray<float>(maxIn, pinned: true), arranged = GC.AllocateArray<float>(maxIn, pinned: true), y = GC.AllocateArray<float>(maxOut, pinned: true);
            float[] sums = GC.AllocateArray<float>(maxIn / 16, pinned: true), scales = GC.AllocateArray<float>(maxIn / 256, pinned: true);
            sbyte[] planes = GC.AllocateArray<sbyte>(3 * maxIn, pinned: true);
            for (int i = 0; i < maxIn; i++) x[i] = MathF.Sin(i * 0.37f);
            // (name, kernel or read, read's prefetch: 0 each row's block four rows on, as the kernels do; 1 the next four rows in address order)
            var variants = new List<(string Name, bool Kernel, int Order)> { ("kernel", true, 0), ("read", false, 0) };
            if (wide) variants.Add(("read-linear", false, 1));
            // Resident: the first matrix's first rows (~384 KB, in L2) read over and over, as many super-blocks as the matrices hold.
            TensorData first = matrices[0];
            int residentRows = (int)Math.Min(first.RowCount, 384 * 1024 / first.RowBytes) / 4 / threads * 4 * threads;
            long repeats = units / ((long)first.RowLength / 256 * residentRows);
            TensorData[] resident = Enumerable.Repeat(new TensorData(first.Name, first.Type, [first.RowLength, residentRows], first.Data, first.RowBytes * residentRows), (int)repeats).ToArray();
            variants.Add(("resident", true, 0));
            var best = new double[variants.Count];
            var bestCpu = new double[variants.Count];
            Array.Fill(best, double.MaxValue);
            Array.Fill(bestCpu, double.MaxValue);

            for (int round = -1; round < rounds; round++)
                for (int v = 0; v < variants.Count; v++)
                {
                    (string name, bool kernel, int order) = variants[v];
                    TensorData[] source = name == "resident" ? resident : matrices;
                    TimeSpan cpu0 = Process.GetCurrentProcess().TotalProcessorTime;
                    long t0 = Stopwatch.GetTimestamp();
                    RunOn(threads, t =>
                    {
                        fixed (float* xp = x, ap = arranged, yp = y, sp = sums, sc = scales)
                        fixed (sbyte* pp = planes)
                            foreach (TensorData m in source)
                            {
                                int groups = (m.RowCount + 3) / 4, start = (int)((long)groups * t / threads) * 4, end = Math.Min(m.RowCount, (int)((long)groups * (t + 1) / threads) * 4);
                                int n = m.RowLength;
                                if (kernel)
                                {
                                    if (wide) KQuantTablesWide.Arrange(xp, n, ap);
                                    else KQuantPlanes.Split(xp, n, pp, sc);
                                    KQuantPlanes.SubBlockSums(xp, n, KQuantRows.SumWidth(m.Type), sp);
                                    for (int o = start; o < end; o += 4)
                                        if (wide) KQuantTablesWide.Dot4(m.Type, m.Data + o * m.RowBytes, m.RowBytes, Math.Min(4, end - o), ap, sp, n, yp + o);
                                        else KQuantPlanes.Dot4(m.Type, m.Data + o * m.RowBytes, m.RowBytes, Math.Min(4, end - o), pp, sc, sp, n, yp + o);
                                }
                                else
                                    s_sink += wide ? ReadInStep(m.Data + start * m.RowBytes, m.RowBytes, end - start, order == 1)
                                                   : ReadRows(m.Data + start * m.RowBytes, m.RowBytes, end - start, m.Type == GgmlType.Q6_K ? 210 : 144);
                            }
                    });
                    double wall = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
                    double cpu = (Process.GetCurrentProcess().TotalProcessorTime - cpu0).TotalMilliseconds;
                    if (round >= 0) { best[v] = Math.Min(best[v], wall); bestCpu[v] = Math.Min(bestCpu[v], cpu); }
                }
            Console.WriteLine($"{type} {(wide ? "AVX-512 tables, four rows in step" : "AVX2 planes, row by row")}: {matrices.Length} matrices, {bytes / 1e6:F0} MB, {threads} thread(s), min of {rounds} wall, {ghz:F2} GHz");
            for (int v = 0; v < variants.Count; v++)
                Console.WriteLine($"  {variants[v].Name,-10} wall {best[v],7:F1} ms {bytes / best[v] / 1e6,6:F2} GB/s; CPU {bestCpu[v],7:F1} ms: {bestCpu[v] * 1e6 * ghz / units,6:F1} cycles per super-block and row");
        }
    }

    /// <summary>body(0 … threads − 1) on as many threads at once (Parallel.For may run both parts on the calling thread).</summary>
    private static void RunOn(int threads, Action<int> body)
    {
        if (threads == 1) { body(0); return; }
        var workers = new Thread[threads - 1];
        using var start = new Barrier(threads);
        for (int t = 1; t < threads; t++)
        {
            int id = t;
            workers[t - 1] = new Thread(() => { start.SignalAndWait(); body(id); });
            workers[t - 1].Start();
        }
        start.SignalAndWait();
        body(0);
        foreach (Thread w in workers) w.Join();
    }

    /// <summary>Each row's bytes summed linearly, row after row, prefetching the same place four rows on (as the AVX2 kernel reads).</summary>
    private static long ReadRows(byte* w, long rowBytes, int rows, int blockBytes)
    {
        Vector256<byte> acc = default;
        long skip = 4 * rowBytes;
        for (int r = 0; r < rows; r++)
        {
            byte* row = w + r * rowBytes, end = row + rowBytes;
            for (byte* b = row; b < end; b += blockBytes)
            {
                System.Runtime.Intrinsics.X86.Sse.Prefetch0(b + skip);
                System.Runtime.Intrinsics.X86.Sse.Prefetch0(b + skip + 64);
                System.Runtime.Intrinsics.X86.Sse.Prefetch0(b + skip + 128);
                if (blockBytes > 192) System.Runtime.Intrinsics.X86.Sse.Prefetch0(b + skip + 192);
                for (int i = 0; i + 32 <= blockBytes; i += 32) acc += Vector256.Load(b + i);
            }
        }
        return (long)Vector256.Sum(acc.AsUInt64());
    }

    /// <summary>
    /// Four rows' super-blocks in step (as the AVX-512 table kernel reads), prefetching each row's block four rows on (as the
    /// kernel does) or the next four rows in address order (<paramref name="linear"/>).
    /// </summary>
    private static long ReadInStep(byte* w, long rowBytes, int rows, bool linear)
    {
        Vector512<byte> acc = default;
        long skip = 4 * rowBytes;
        int blocks = (int)(rowBytes / 144);
        for (int r = 0; r < rows; r += 4)
        {
            int k = Math.Min(4, rows - r);
            for (int b = 0; b < blocks; b++)
            {
                if (linear)
                {
                    byte* next = w + r * rowBytes + skip + (long)b * 576;
                    for (int l = 0; l < 576; l += 64) System.Runtime.Intrinsics.X86.Sse.Prefetch0(next + l);
                }
                for (int j = 0; j < k; j++)
                {
                    byte* at = w + (r + j) * rowBytes + b * 144;
                    if (!linear)
                    {
                        System.Runtime.Intrinsics.X86.Sse.Prefetch0(at + skip);
                        System.Runtime.Intrinsics.X86.Sse.Prefetch0(at + skip + 64);
                        System.Runtime.Intrinsics.X86.Sse.Prefetch0(at + skip + 128);
                    }
                    acc += Vector512.Load(at + 16) + Vector512.Load(at + 80);
                }
            }
        }
        return (long)Vector512.Sum(acc.AsUInt64());
    }
}
