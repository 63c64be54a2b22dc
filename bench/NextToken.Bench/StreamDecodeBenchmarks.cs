using System.Diagnostics;
using NextToken.Gguf;
using NextToken.Kernels;
using NextToken.Tensors;

namespace NextToken.Bench;

/// <summary>
/// The AVX2 K-quant plane kernels reading their rows from memory, as decode does: every matrix of one type in a GGUF file
/// (memory-mapped, 4 KB pages, far more than the caches), one thread, groups of four rows as MatMul's DotRows takes them.
/// <c>--alternate-stream FILE [rounds]</c> times the 256-bit float kernels they replaced (<see cref="KQuantRows"/>, "previous") and the
/// current ones (<see cref="KQuantPlanes"/>, "planes") in alternation, by the process's CPU time (one thread works) and the wall clock (minimum
/// of each, for a loaded machine), and reports GB/s and ns per 32 values and row. Run with DOTNET_EnableAVX512=0 DOTNET_EnableAVXVNNI=0.
/// </summary>
public static unsafe class StreamDecodeBenchmarks
{
    public static void Alternate(string model, int rounds)
    {
        using GgufFile gguf = GgufFile.Open(model);
        foreach (GgmlType type in new[] { GgmlType.Q4_K, GgmlType.Q5_K, GgmlType.Q6_K, GgmlType.Q2_K, GgmlType.Q3_K })
        {
            TensorData[] matrices = gguf.Tensors.Where(t => t.Type == type).Select(t => gguf.GetTensor(t.Name)).Where(t => t.RowLength % 256 == 0).ToArray();
            if (matrices.Length == 0) continue;
            // At most ~600 MB per round, so a round stays well under a second; all of it larger than any cache.
            long bytes = 0;
            matrices = matrices.TakeWhile(m => (bytes += m.ByteLength) < 600_000_000).ToArray();
            bytes = matrices.Sum(m => m.ByteLength);
            long values = matrices.Sum(m => (long)m.RowLength * m.RowCount);
            int maxIn = matrices.Max(m => m.RowLength), maxOut = matrices.Max(m => m.RowCount);
            float[] x = new float[maxIn], y = new float[maxOut], sums = new float[maxIn / 16], scales = new float[maxIn / 256];
            sbyte[] planes = new sbyte[3 * maxIn];
            for (int i = 0; i < maxIn; i++) x[i] = MathF.Sin(i * 0.37f);
            double bestPrevious = double.MaxValue, bestPlanes = double.MaxValue, wallPrevious = double.MaxValue, wallPlanes = double.MaxValue;
            for (int round = -1; round < rounds; round++)
                foreach (bool previous in new[] { true, false })
                {
                    TimeSpan cpu0 = ThreadCpu();
                    long t0 = Stopwatch.GetTimestamp();
                    Run(matrices, previous, x, y, sums, scales, planes);
                    double wall = Stopwatch.GetElapsedTime(t0).TotalMilliseconds, cpu = (ThreadCpu() - cpu0).TotalMilliseconds;
                    if (round < 0) continue; // the first round pages the file in and compiles
                    if (previous) { bestPrevious = Math.Min(bestPrevious, cpu); wallPrevious = Math.Min(wallPrevious, wall); }
                    else { bestPlanes = Math.Min(bestPlanes, cpu); wallPlanes = Math.Min(wallPlanes, wall); }
                }
            Console.WriteLine($"{type}: {matrices.Length} matrices, {bytes / 1e6:F0} MB; min of {rounds}: CPU previous {bestPrevious:F1} ms ({bytes / bestPrevious / 1e6:F2} GB/s), planes {bestPlanes:F1} ms ({bytes / bestPlanes / 1e6:F2} GB/s), planes/previous {bestPlanes / bestPrevious:F3}; wall previous {wallPrevious:F1} planes {wallPlanes:F1} ({wallPlanes / wallPrevious:F3}); ns per 32 values and row previous {bestPrevious * 1e6 / (values / 32.0):F3} planes {bestPlanes * 1e6 / (values / 32.0):F3}");
        }
    }

    private static void Run(TensorData[] matrices, bool previous, float[] xs, float[] ys, float[] subSums, float[] planeScales, sbyte[] planeBytes)
    {
        fixed (float* x = xs, y = ys, sums = subSums, scales = planeScales)
        fixed (sbyte* planes = planeBytes)
            foreach (TensorData m in matrices)
            {
                int n = m.RowLength, rows = m.RowCount;
                if (previous) KQuantRows.SubBlockSums(x, n, KQuantRows.SumWidth(m.Type), sums);
                else
                {
                    KQuantPlanes.SubBlockSums(x, n, KQuantRows.SumWidth(m.Type), sums);
                    KQuantPlanes.Split(x, n, planes, scales);
                }
                for (int o = 0; o < rows; o += 4)
                    if (previous) KQuantRows.Dot4(m.Type, false, m.Data + o * m.RowBytes, m.RowBytes, Math.Min(4, rows - o), x, sums, n, y + o);
                    else KQuantPlanes.Dot4(m.Type, m.Data + o * m.RowBytes, m.RowBytes, Math.Min(4, rows - o), planes, scales, sums, n, y + o);
            }
    }

    // The process's CPU time: one thread does the work (the runtime's own threads are idle meanwhile).
    private static TimeSpan ThreadCpu() => Process.GetCurrentProcess().TotalProcessorTime;
}
