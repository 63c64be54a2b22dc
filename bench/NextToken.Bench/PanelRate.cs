using System.Diagnostics;
using NextToken.Kernels;
using NextToken.Tensors;

namespace NextToken.Bench;

/// <summary>
/// <c>--panel-rate [rounds] [label …]</c>: prompt matmuls (128 inputs; 1.1B's 2048 → 5632 and 5632 → 2048, GPT-2's 768 → 3072, F32 and
/// F16 weights, resident) through <see cref="MatMul.Forward(in TensorData, ReadOnlySpan{float}, int, Span{float}, int, bool, InterleavedBlock32.Cache?, bool)"/>,
/// as GFLOP/s per CPU-second (min process CPU time of the rounds; on a 2-core Zen 5 with AVX2 the 256-bit peak is 110 per core).
/// PANEL_FILE=model.gguf takes a mapped model's F16/F32 matrices instead (~400 MB, read from memory as a prompt reads them), PANEL_THREADS
/// the thread count (default 1). Each label is one more timed column run in alternation — a slot for a kernel variant
/// switched by the label when one is being tried (issue #13 tried KBlock 256 and a prefetch of the inputs in the AVX2 tile: no gain; the sixteenth session, weights as the vector operand in 16 × 6 and 32 × 12 tiles: even in whole prompts).
/// </summary>
public static unsafe class PanelRate
{
    private static readonly int Threads = int.TryParse(Environment.GetEnvironmentVariable("PANEL_THREADS"), out int t) ? t : 1;

    public static void Run(int rounds, string[] variants)
    {
        if (variants.Length == 0) variants = ["0"];
        const int batch = 128;
        if (Environment.GetEnvironmentVariable("PANEL_FILE") is { } file)
        {
            using var gguf = NextToken.Gguf.GgufFile.Open(file);
            long total = 0;
            TensorData[] matrices = gguf.Tensors.Where(t => t.Type is GgmlType.F16 or GgmlType.F32 && t.Dims.Length == 2 && t.Dims[1] > 1 && !t.Name.Contains("embd") && !t.Name.Contains("wte") && !t.Name.Contains("wpe"))
                .Select(t => gguf.GetTensor(t.Name)).TakeWhile(m => (total += m.ByteLength) < 400_000_000).ToArray();
            int maxIn = matrices.Max(m => m.RowLength), maxOut = matrices.Max(m => m.RowCount);
            float[] xs = Enumerable.Range(0, maxIn * batch).Select(i => MathF.Sin(i * 0.1f)).ToArray(), ys = new float[maxOut * batch];
            double flops = matrices.Sum(m => 2.0 * m.RowLength * m.RowCount * batch);
            var bests = new double[variants.Length];
            Array.Fill(bests, double.MaxValue);
            for (int round = -1; round < rounds; round++)
                for (int v = 0; v < variants.Length; v++)
                {
                    TimeSpan cpu0 = Process.GetCurrentProcess().TotalProcessorTime;
                    foreach (TensorData m in matrices)
                        MatMul.Forward(m, xs.AsSpan(0, m.RowLength * batch), batch, ys.AsSpan(0, m.RowCount * batch), Threads);
                    double cpu = (Process.GetCurrentProcess().TotalProcessorTime - cpu0).TotalMilliseconds;
                    if (round >= 0) bests[v] = Math.Min(bests[v], cpu);
                }
            Console.WriteLine($"{file}: {Threads} threads, {matrices.Length} matrices, {matrices.Sum(m => m.ByteLength) / 1e6:F0} MB, min of {rounds}, load {File.ReadAllText("/proc/loadavg").Split(' ')[0]}: " +
                string.Join("  ", variants.Select((v, i) => $"v{v} {bests[i]:F1} ms {flops / bests[i] / 1e6:F1} GFLOP/s")));
            return;
        }
        foreach ((int nIn, int nOut) in new[] { (2048, 5632), (5632, 2048), (768, 3072) })
            foreach (GgmlType type in new[] { GgmlType.F32, GgmlType.F16 })
            {
                var random = new Random(3);
                float[] values = Enumerable.Range(0, nIn * nOut).Select(_ => (float)(random.NextDouble() - 0.5)).ToArray();
                byte[] weights = type == GgmlType.F32 ? System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()).ToArray()
                    : System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.Select(v => (Half)v).ToArray().AsSpan()).ToArray();
                float[] x = Enumerable.Range(0, nIn * batch).Select(i => MathF.Sin(i * 0.1f)).ToArray(), y = new float[nOut * batch];
                var best = new double[variants.Length];
                Array.Fill(best, double.MaxValue);
                fixed (byte* data = weights)
                {
                    var tensor = new TensorData("w", type, [nIn, nOut], data, weights.Length);
                    for (int round = -1; round < rounds; round++)
                        for (int v = 0; v < variants.Length; v++)
                        {
                            TimeSpan cpu0 = Process.GetCurrentProcess().TotalProcessorTime;
                            MatMul.Forward(tensor, x, batch, y, 1);
                            double cpu = (Process.GetCurrentProcess().TotalProcessorTime - cpu0).TotalMilliseconds;
                            if (round >= 0) best[v] = Math.Min(best[v], cpu);
                        }
                }
                double flop = 2.0 * nIn * nOut * batch;
                Console.WriteLine($"{type} {nIn}→{nOut} ×{batch}, min of {rounds}, load {File.ReadAllText("/proc/loadavg").Split(' ')[0]}: " +
                    string.Join("  ", variants.Select((v, i) => $"v{v} {best[i]:F2} ms {flop / best[i] / 1e6:F1} GFLOP/s")));
            }
    }
}
