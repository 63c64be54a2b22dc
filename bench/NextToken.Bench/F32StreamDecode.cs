using System.Diagnostics;
using NextToken.Gguf;
using NextToken.Kernels;
using NextToken.Tensors;

namespace NextToken.Bench;

/// <summary>
/// F32 decode reading a mapped model's float32 matrices from memory, one thread, through <see cref="BatchedDecode.F32Rows"/>
/// with one input: <c>--alternate-f32 FILE [rounds] [rows:ahead …]</c> times each narrow (AVX2) variant in alternation
/// (minimum process CPU time and wall clock of each). Run with DOTNET_EnableAVX512=0 DOTNET_EnableAVXVNNI=0.
/// </summary>
public static unsafe class F32StreamDecode
{
    public static void Alternate(string model, int rounds, string[] variants)
    {
        using GgufFile gguf = GgufFile.Open(model);
        TensorData[] matrices = gguf.Tensors.Where(t => t.Type == GgmlType.F32 && t.Dims.Length == 2 && t.Dims[1] > 1).Select(t => gguf.GetTensor(t.Name)).ToArray();
        long bytes = matrices.Sum(m => m.ByteLength);
        int maxIn = matrices.Max(m => m.RowLength), maxOut = matrices.Max(m => m.RowCount);
        float[] x = new float[maxIn], y = new float[maxOut];
        for (int i = 0; i < maxIn; i++) x[i] = MathF.Sin(i * 0.37f);
        if (variants.Length == 0) variants = ["2:128", "3:384"]; // before issue #13, now
        var cpuBest = new double[variants.Length];
        var wallBest = new double[variants.Length];
        Array.Fill(cpuBest, double.MaxValue); Array.Fill(wallBest, double.MaxValue);
        for (int round = -1; round < rounds; round++)
            for (int v = 0; v < variants.Length; v++)
            {
                string[] parts = variants[v].Split(':');
                int rows = int.Parse(parts[0]), ahead = int.Parse(parts[1]);
                TimeSpan cpu0 = Process.GetCurrentProcess().TotalProcessorTime;
                long t0 = Stopwatch.GetTimestamp();
                fixed (float* xp = x, yp = y)
                    foreach (TensorData m in matrices)
                        BatchedDecode.F32Rows((float*)m.Data, m.RowLength, xp, yp, 1, m.RowCount, 0, m.RowCount, rows, ahead);
                double wall = Stopwatch.GetElapsedTime(t0).TotalMilliseconds, cpu = (Process.GetCurrentProcess().TotalProcessorTime - cpu0).TotalMilliseconds;
                if (round < 0) continue;
                cpuBest[v] = Math.Min(cpuBest[v], cpu); wallBest[v] = Math.Min(wallBest[v], wall);
            }
        Console.WriteLine($"{matrices.Length} F32 matrices, {bytes / 1e6:F0} MB, min of {rounds}, load {File.ReadAllText("/proc/loadavg").Split(' ')[0]}");
        for (int v = 0; v < variants.Length; v++)
            Console.WriteLine($"  {variants[v],-8} CPU {cpuBest[v]:F1} ms ({bytes / cpuBest[v] / 1e6:F2} GB/s)  wall {wallBest[v]:F1} ms ({bytes / wallBest[v] / 1e6:F2} GB/s)");
    }
}
