using System.Diagnostics;
using NextToken.Gguf;
using NextToken.Kernels;
using NextToken.Tensors;

namespace NextToken.Bench;

/// <summary>
/// Task kqa2's A/B of the AVX2 plane kernels: <see cref="KQuantPlanesBefore"/> (the kernel before it) against
/// <see cref="KQuantPlanes"/>, alternating within one process. <c>--kqa2-ab [rounds]</c>: 64 rows × 2048 resident in L2,
/// 8 passes a call, minimum wall time of each and cycles per 32 values and row by the multiply-chain clock.
/// <c>--kqa2-ab-stream FILE [rounds]</c>: every matrix of each K type of a mapped model (≤ 600 MB), one thread, minimum
/// thread CPU time. Run with DOTNET_EnableAVX512=0 DOTNET_EnableAVXVNNI=0.
/// </summary>
public static unsafe class Kqa2Alternate
{
    private const int NIn = 2048, Rows = 64, Passes = 8;
    private static readonly GgmlType[] Types = [GgmlType.Q4_K, GgmlType.Q5_K, GgmlType.Q6_K, GgmlType.Q2_K, GgmlType.Q3_K];

    public static void Resident(int rounds)
    {
        Console.WriteLine($"{"type",-5} {"old µs",9} {"new µs",9} {"GHz",5} {"old cyc/32",11} {"new cyc/32",11} {"new/old",8}");
        foreach (GgmlType type in Types)
        {
            long rowBytes = GgmlTypeInfo.RowBytes(type, NIn), bytes = rowBytes * Rows;
            byte[] weights = GC.AllocateUninitializedArray<byte>((int)bytes, pinned: true);
            using (GgufFile gguf = GgufFile.Open(Corpus.Shared("fixtures", "models", "quant", $"llama-d256.{type.ToString().ToLowerInvariant()}.gguf")))
            {
                TensorData source = gguf.GetTensor(gguf.Tensors.First(t => t.Type == type).Name);
                var stored = new ReadOnlySpan<byte>(source.Data, (int)source.ByteLength);
                for (long at = 0; at < bytes; at += stored.Length)
                    stored[..(int)Math.Min(stored.Length, bytes - at)].CopyTo(weights.AsSpan((int)at));
            }
            float[] x = GC.AllocateArray<float>(NIn, pinned: true), y = GC.AllocateArray<float>(Rows, pinned: true), y2 = GC.AllocateArray<float>(Rows, pinned: true);
            float[] sums = GC.AllocateArray<float>(NIn / 16, pinned: true), scales = GC.AllocateArray<float>(NIn / 256, pinned: true);
            sbyte[] planes = GC.AllocateArray<sbyte>(3 * NIn, pinned: true);
            for (int i = 0; i < NIn; i++) x[i] = MathF.Sin(i);
            fixed (byte* w = weights)
            fixed (float* px = x, py = y, py2 = y2, ps = sums, psc = scales)
            fixed (sbyte* pp = planes)
            {
                byte* wp = w; float* xp = px, yp = py, yp2 = py2, sp = ps, scp = psc; sbyte* plp = pp;
                KQuantPlanes.Split(xp, NIn, plp, scp);
                KQuantPlanes.SubBlockSums(xp, NIn, KQuantRows.SumWidth(type), sp);
                void Old() { for (int p = 0; p < Passes; p++) for (int o = 0; o < Rows; o += 4) KQuantPlanesBefore.Dot4(type, wp + o * rowBytes, rowBytes, 4, plp, scp, sp, NIn, yp2 + o); }
                void New() { for (int p = 0; p < Passes; p++) for (int o = 0; o < Rows; o += 4) KQuantPlanes.Dot4(type, wp + o * rowBytes, rowBytes, 4, plp, scp, sp, NIn, yp + o); }
                // KQA2_SWAP=1 times the new kernel first (an order check).
                (double a, double b, double ghz) = Environment.GetEnvironmentVariable("KQA2_SWAP") == "1" ? Swap(AlternatingClock.Time(New, Old, rounds)) : AlternatingClock.Time(Old, New, rounds);
                for (int r = 0; r < Rows; r++)
                    if (BitConverter.SingleToInt32Bits(y[r]) != BitConverter.SingleToInt32Bits(y2[r])) { Console.WriteLine($"// {type}: row {r} differs: {y2[r]} → {y[r]}"); break; }
                double units = (double)Passes * Rows * NIn / 32;
                Console.WriteLine($"{type,-5} {a,9:F1} {b,9:F1} {ghz,5:F2} {a * 1e3 * ghz / units,11:F2} {b * 1e3 * ghz / units,11:F2} {b / a,8:F3}");
            }
        }
    }

    private static (double, double, double) Swap((double New, double Old, double Ghz) t) => (t.Old, t.New, t.Ghz);

    public static void Stream(string model, int rounds)
    {
        using GgufFile gguf = GgufFile.Open(model);
        foreach (GgmlType type in Types)
        {
            TensorData[] matrices = gguf.Tensors.Where(t => t.Type == type).Select(t => gguf.GetTensor(t.Name)).Where(t => t.RowLength % 256 == 0).ToArray();
            if (matrices.Length == 0) continue;
            long bytes = 0;
            matrices = matrices.TakeWhile(m => (bytes += m.ByteLength) < 600_000_000).ToArray();
            bytes = matrices.Sum(m => m.ByteLength);
            long values = matrices.Sum(m => (long)m.RowLength * m.RowCount);
            int maxIn = matrices.Max(m => m.RowLength), maxOut = matrices.Max(m => m.RowCount);
            float[] x = new float[maxIn], y = new float[maxOut], sums = new float[maxIn / 16], scales = new float[maxIn / 256];
            sbyte[] planes = new sbyte[3 * maxIn];
            for (int i = 0; i < maxIn; i++) x[i] = MathF.Sin(i * 0.37f);
            double bestOld = double.MaxValue, bestNew = double.MaxValue;
            for (int round = -1; round < rounds; round++)
                foreach (bool old in new[] { true, false })
                {
                    TimeSpan cpu0 = Process.GetCurrentProcess().TotalProcessorTime;
                    Run(matrices, old, x, y, sums, scales, planes);
                    double cpu = (Process.GetCurrentProcess().TotalProcessorTime - cpu0).TotalMilliseconds;
                    if (round < 0) continue;
                    if (old) bestOld = Math.Min(bestOld, cpu); else bestNew = Math.Min(bestNew, cpu);
                }
            Console.WriteLine($"{type}: {matrices.Length} matrices, {bytes / 1e6:F0} MB; min CPU of {rounds}: old {bestOld:F1} ms ({bytes / bestOld / 1e6:F2} GB/s), new {bestNew:F1} ms ({bytes / bestNew / 1e6:F2} GB/s), new/old {bestNew / bestOld:F3}; ns/32/row old {bestOld * 1e6 / (values / 32.0):F3} new {bestNew * 1e6 / (values / 32.0):F3}");
        }
    }

    private static void Run(TensorData[] matrices, bool old, float[] xs, float[] ys, float[] subSums, float[] planeScales, sbyte[] planeBytes)
    {
        fixed (float* x = xs, y = ys, sums = subSums, scales = planeScales)
        fixed (sbyte* planes = planeBytes)
            foreach (TensorData m in matrices)
            {
                int n = m.RowLength, rows = m.RowCount;
                KQuantPlanes.SubBlockSums(x, n, KQuantRows.SumWidth(m.Type), sums);
                KQuantPlanes.Split(x, n, planes, scales);
                for (int o = 0; o < rows; o += 4)
                    if (old) KQuantPlanesBefore.Dot4(m.Type, m.Data + o * m.RowBytes, m.RowBytes, Math.Min(4, rows - o), planes, scales, sums, n, y + o);
                    else KQuantPlanes.Dot4(m.Type, m.Data + o * m.RowBytes, m.RowBytes, Math.Min(4, rows - o), planes, scales, sums, n, y + o);
            }
    }
}
