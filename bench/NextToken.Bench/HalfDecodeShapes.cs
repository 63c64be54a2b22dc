using System.Diagnostics;
using System.Runtime.InteropServices;
using NextToken.Gguf;
using NextToken.Kernels;
using NextToken.Tensors;

namespace NextToken.Bench;

/// <summary>
/// F16 or BF16 decode (one input) of a model file's matrices through <see cref="MatMul.Forward(in TensorData, ReadOnlySpan{float}, int, Span{float}, int, bool, InterleavedBlock32.Cache?, bool)"/>,
/// straight from the memory map as generation reads them: per shape (all matrices of that shape one after another)
/// with one and two threads, and all that a token reads in file order. Minimum over rounds of CPU time — one thread
/// its own, two the process's halved (the pool's workers poll while they wait) — because the machine is shared and
/// time spent descheduled is not the kernel's; GB/s = bytes / that time. Compare builds by alternating processes.
/// <c>bench -- --half-shapes FILE [rounds]</c>; <c>HALF_SHAPE=8192x3072</c> keeps one shape (<c>none</c>: only the whole pass).
/// </summary>
public static unsafe class HalfDecodeShapes
{
    public static void Run(string path, int rounds)
    {
        using GgufFile gguf = GgufFile.Open(path);
        // The file's half type: F16, else BF16 (a BF16 file from llama-quantize keeps a few F32 vectors only).
        GgmlType type = gguf.Tensors.Any(t => t.Type == GgmlType.F16 && t.Dims.Length == 2) ? GgmlType.F16 : GgmlType.BF16;
        var matrices = gguf.Tensors.Where(t => t.Type == type && t.Dims.Length == 2).Select(t => gguf.GetTensor(t.Name)).ToList();
        if (matrices.Count == 0)
        {
            Console.Error.WriteLine($"error: {path}: no two-dimensional F16 or BF16 matrices to time (--half-shapes needs an F16 or BF16 model)");
            return;
        }
        Console.WriteLine($"{Path.GetFileName(path)}: {matrices.Count} {type} matrices, min of {rounds} rounds; AVX-512 kernels {HalfRows.Wide}; load {File.ReadAllText("/proc/loadavg").Trim()}");
        int maxIn = matrices.Max(m => m.RowLength), maxOut = matrices.Max(m => m.RowCount);
        float[] x = new float[maxIn], y = new float[maxOut];
        for (int i = 0; i < maxIn; i++) x[i] = MathF.Sin(i);
        string? only = Environment.GetEnvironmentVariable("HALF_SHAPE");
        foreach (var shape in matrices.GroupBy(m => (m.RowCount, m.RowLength)).Where(g => only == null || only == $"{g.Key.RowCount}x{g.Key.RowLength}"))
            foreach (int threads in new[] { 1, 2 })
            {
                var group = shape.ToList();
                (double best, double wall) = Time(group, x, y, threads, rounds);
                long bytes = group.Sum(m => m.ByteLength);
                Console.WriteLine($"{shape.Key.RowCount,6} x {shape.Key.RowLength,-5} ×{group.Count,-3} t={threads}  {best / group.Count * 1e6,8:F1} us/matrix {bytes / best / 1e9,6:F1} GB/s (wall {wall / group.Count * 1e6,8:F1} us)");
            }
        if (gguf.HasTensor("output.weight")) matrices.RemoveAll(m => m.Name.StartsWith("token_embd", StringComparison.Ordinal)); // a token reads one row of it
        foreach (int threads in new[] { 1, 2 })
        {
            (double best, double wall) = Time(matrices, x, y, threads, rounds);
            Console.WriteLine($"all in file order t={threads}  {best * 1e3,8:F2} ms {matrices.Sum(m => m.ByteLength) / best / 1e9,6:F1} GB/s (wall {wall * 1e3,8:F2} ms)");
        }
    }

    [DllImport("libc", EntryPoint = "clock_gettime")]
    private static extern int ClockGetTime(int clock, long* time);

    private static double CpuSeconds(int threads)
    {
        long* t = stackalloc long[2];
        ClockGetTime(threads == 1 ? 3 : 2, t); // CLOCK_THREAD_CPUTIME_ID or CLOCK_PROCESS_CPUTIME_ID: seconds, nanoseconds
        return t[0] + t[1] * 1e-9;
    }

    private static (double Cpu, double Wall) Time(List<TensorData> group, float[] x, float[] y, int threads, int rounds)
    {
        double best = double.MaxValue, wall = double.MaxValue;
        for (int r = 0; r < rounds; r++)
        {
            long t0 = Stopwatch.GetTimestamp();
            double c0 = CpuSeconds(threads);
            foreach (TensorData m in group) MatMul.Forward(m, x.AsSpan(0, m.RowLength), 1, y.AsSpan(0, m.RowCount), threads);
            best = Math.Min(best, (CpuSeconds(threads) - c0) / threads);
            wall = Math.Min(wall, Stopwatch.GetElapsedTime(t0).TotalSeconds);
        }
        return (best, wall);
    }
}
