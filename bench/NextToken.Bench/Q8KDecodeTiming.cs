using System.Diagnostics;
using System.Runtime.Intrinsics.X86;
using NextToken.Gguf;
using NextToken.Kernels;
using NextToken.Tensors;

namespace NextToken.Bench;

/// <summary>
/// <c>--alternate-q8k FILE [rounds]</c>: <c>--q8-activations</c> decode of K-quant rows (Q2_K … Q6_K) (<see cref="KQuantActivations.Dot4"/>, four rows at a
/// time as MatMul takes them; the 256-bit form and, with AVX-512 BW, the 512-bit one), one thread, timed in alternation with the exact plane kernel (<see cref="KQuantPlanes"/>, the decode
/// without the option) by the process's CPU time (one thread works), minimum of the rounds: resident (up to 256 rows of the file's first
/// matrix, in L2, 100 passes, the activation prepared in the first) and from memory (the file's matrices of the type, mapped, up to ~600 MB). Reports ns and cycles per super-block and row, and GB/s.
/// </summary>
public static unsafe class Q8KDecodeTiming
{
    private const int K = 3; // the kernels timed: exact planes, q8 256-bit, q8 512-bit (where AVX-512 BW is)

    public static void Alternate(string model, int rounds)
    {
        using GgufFile gguf = GgufFile.Open(model);
        bool vnni = AvxVnni.IsSupported, wide = Avx512BW.IsSupported;
        double ghz = AlternatingClock.Time(() => { }, () => { }, 50).Gigahertz;
        Console.WriteLine($"{(vnni ? "AVX-VNNI" : "AVX2")} form, clock {ghz:F2} GHz, min of {rounds} rounds");
        foreach (GgmlType type in new[] { GgmlType.Q2_K, GgmlType.Q3_K, GgmlType.Q4_K, GgmlType.Q5_K, GgmlType.Q6_K })
        {
            TensorData[] matrices = gguf.Tensors.Where(t => t.Type == type).Select(t => gguf.GetTensor(t.Name)).Where(t => t.RowLength % 256 == 0).ToArray();
            if (matrices.Length == 0) continue;
            long total = 0;
            matrices = matrices.TakeWhile(m => (total += m.ByteLength) < 600_000_000).ToArray();
            int maxIn = matrices.Max(m => m.RowLength), maxOut = matrices.Max(m => m.RowCount);
            var x = new float[maxIn];
            for (int i = 0; i < maxIn; i++) x[i] = MathF.Sin(i * 0.37f);
            var buffers = new Buffers(maxIn, maxOut);
            TensorData first = matrices[0];
            int residentRows = Math.Min(256, first.RowCount);
            TensorData resident = new(first.Name, type, [first.RowLength, residentRows], first.Data, residentRows * first.RowBytes);
            foreach ((string name, TensorData[] set, int passes) in new[] { ("resident", new[] { resident }, 100), ("memory", matrices, 1) })
            {
                long bytes = set.Sum(m => m.ByteLength) * passes, blockRows = set.Sum(m => (long)m.RowCount * (m.RowLength / 256)) * passes;
                var best = new double[K];
                Array.Fill(best, double.MaxValue);
                for (int round = -3; round < rounds; round++)
                    for (int k = 0; k < (wide ? K : K - 1); k++)
                    {
                        TimeSpan cpu0 = ThreadCpu();
                        for (int p = 0; p < passes; p++) Run(set, k, vnni, x, buffers, prepare: p == 0);
                        double ms = (ThreadCpu() - cpu0).TotalMilliseconds;
                        if (round >= 0) best[k] = Math.Min(best[k], ms);
                    }
                string[] names = ["exact planes", "q8", "q8 512-bit"];
                Console.WriteLine($"{type} {name}: {bytes / passes / 1e6:F1} MB" + string.Concat(Enumerable.Range(0, wide ? K : K - 1).Select(k =>
                    $"; {names[k]} {best[k]:F2} ms, {best[k] * 1e6 / blockRows:F2} ns = {best[k] * 1e6 / blockRows * ghz:F1} cycles/super-block-row, {bytes / best[k] / 1e6:F1} GB/s")));
            }
        }
    }

    private sealed class Buffers(int n, int rows)
    {
        public readonly float[] Y = new float[rows], Sums = new float[n / 16], PlaneScales = new float[n / 256], Scales = new float[n / 256];
        public readonly sbyte[] Planes = new sbyte[3 * n], Quants = new sbyte[n];
        public readonly short[] BlockSums = new short[n / 16];
    }

    private static void Run(TensorData[] matrices, int kernel, bool vnni, float[] xs, Buffers b, bool prepare)
    {
        fixed (float* x = xs, y = b.Y, sums = b.Sums, planeScales = b.PlaneScales, scales = b.Scales)
        fixed (sbyte* planes = b.Planes, quants = b.Quants)
        fixed (short* blockSums = b.BlockSums)
            foreach (TensorData m in matrices)
            {
                int n = m.RowLength, rows = m.RowCount;
                if (kernel == 0)
                {
                    if (prepare) KQuantPlanes.SubBlockSums(x, n, KQuantRows.SumWidth(m.Type), sums);
                    if (prepare) KQuantPlanes.Split(x, n, planes, planeScales);
                    for (int o = 0; o < rows; o += 4) KQuantPlanes.Dot4(m.Type, m.Data + o * m.RowBytes, m.RowBytes, Math.Min(4, rows - o), planes, planeScales, sums, n, y + o);
                    continue;
                }
                if (prepare) KQuantActivations.Quantize(xs.AsSpan(0, n), b.Quants, b.Scales, b.BlockSums);
                KQuantForm form = kernel == 2 ? KQuantForm.Wide : vnni ? KQuantForm.Vnni : KQuantForm.Avx2;
                for (int o = 0; o < rows; o += 4)
                    KQuantActivations.Dot4(m.Type, form, m.Data + o * m.RowBytes, m.RowBytes, Math.Min(4, rows - o), quants, scales, blockSums, n / 256, y + o);
            }
    }

    private static TimeSpan ThreadCpu() => Process.GetCurrentProcess().TotalProcessorTime;
}
