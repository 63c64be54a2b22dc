using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using BenchmarkDotNet.Attributes;
using NextToken.Gguf;
using NextToken.Kernels;
using NextToken.Tensors;

namespace NextToken.Bench;

/// <summary>
/// The AVX-512 exact K-quant decode kernels: the 512-bit float kernels (<see cref="KQuantRows"/> wide, "Float") against the
/// 512-bit plane kernels (<see cref="KQuantPlanesWide"/>, "Planes", their split and sub-block sums per pass included), on
/// 64 rows × 2048 that stay in L2, 8 passes per call. <c>--alternate-wide [rounds]</c> times them in alternation (minimum
/// of each, cycles per 256 values and row from a dependent 64-bit multiply chain, 3 cycles a link on AMD Zen and Intel);
/// <c>--alternate-wide-stream FILE [rounds]</c> reads every Q2_K–Q6_K matrix of a mapped model from memory, as decode
/// does, by CPU time. Needs AVX-512 F and BW.
/// </summary>
[MinColumn]
public unsafe class WidePlaneDecodeBenchmarks
{
    private const int NIn = 2048, Rows = 64, Passes = 8;
    private byte[] _weights = [];
    private float[] _x = [], _y = [], _sums = [], _planeScales = [];
    private sbyte[] _planes = [];
    private long _rowBytes;

    [Params(GgmlType.Q4_K, GgmlType.Q5_K, GgmlType.Q6_K, GgmlType.Q2_K, GgmlType.Q3_K)]
    public GgmlType Type { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        if (!KQuantPlanesWide.IsSupported) throw new PlatformNotSupportedException("needs AVX-512 F and BW");
        _rowBytes = GgmlTypeInfo.RowBytes(Type, NIn);
        long bytes = _rowBytes * Rows;
        _weights = GC.AllocateUninitializedArray<byte>((int)bytes, pinned: true);
        using GgufFile gguf = GgufFile.Open(Corpus.Shared("fixtures", "models", "quant", $"llama-d256.{Type.ToString().ToLowerInvariant()}.gguf"));
        TensorData source = gguf.GetTensor(gguf.Tensors.First(t => t.Type == Type).Name);
        var stored = new ReadOnlySpan<byte>(source.Data, (int)source.ByteLength);
        for (long at = 0; at < bytes; at += stored.Length)
            stored[..(int)Math.Min(stored.Length, bytes - at)].CopyTo(_weights.AsSpan((int)at));
        _x = GC.AllocateArray<float>(NIn, pinned: true);
        for (int i = 0; i < NIn; i++) _x[i] = (float)Math.Sin(i);
        _y = new float[Rows];
        _sums = GC.AllocateArray<float>(NIn / 16, pinned: true);
        _planes = GC.AllocateArray<sbyte>(3 * NIn, pinned: true);
        _planeScales = GC.AllocateArray<float>(NIn / 256, pinned: true);
    }

    /// <summary>The 512-bit plane kernel as decode runs it (split and sub-block sums once per pass).</summary>
    [Benchmark]
    public void Planes()
    {
        fixed (byte* w = _weights)
        fixed (float* x = _x, y = _y, sums = _sums, planeScales = _planeScales)
        fixed (sbyte* planes = _planes)
            for (int pass = 0; pass < Passes; pass++)
            {
                KQuantPlanes.Split(x, NIn, planes, planeScales);
                KQuantPlanes.SubBlockSums(x, NIn, KQuantRows.SumWidth(Type), sums);
                for (int o = 0; o < Rows; o += 4) KQuantPlanesWide.Dot4(Type, w + o * _rowBytes, _rowBytes, 4, planes, planeScales, sums, NIn, y + o);
            }
    }

    /// <summary>The 512-bit float kernel decode took before.</summary>
    [Benchmark(Baseline = true)]
    public void Float()
    {
        fixed (byte* w = _weights)
        fixed (float* x = _x, y = _y, sums = _sums)
            for (int pass = 0; pass < Passes; pass++)
            {
                KQuantRows.SubBlockSums(x, NIn, KQuantRows.SumWidth(Type), sums);
                for (int o = 0; o < Rows; o += 4) KQuantRows.Dot4(Type, true, w + o * _rowBytes, _rowBytes, 4, x, sums, NIn, y + o);
            }
    }


    public static void Alternate(int rounds)
    {
        Console.WriteLine($"{"type",-5} {"float µs",9} {"planes µs",10} {"GHz",5} {"float cyc/256",14} {"planes cyc/256",15} {"planes/float",13}");
        foreach (GgmlType type in new[] { GgmlType.Q4_K, GgmlType.Q5_K, GgmlType.Q6_K, GgmlType.Q2_K, GgmlType.Q3_K })
        {
            var bench = new WidePlaneDecodeBenchmarks { Type = type };
            bench.Setup();
            (double floats, double planes, double gigahertz) = AlternatingClock.Time(() => bench.Float(), () => bench.Planes(), rounds);
            double units = (double)Passes * Rows * NIn / 256;
            Console.WriteLine($"{type,-5} {floats,9:F1} {planes,10:F1} {gigahertz,5:F2} {floats * 1e3 * gigahertz / units,14:F1} {planes * 1e3 * gigahertz / units,15:F1} {planes / floats,13:F3}");
        }
    }

    /// <summary>Every Q2_K–Q6_K matrix of a model (up to ~600 MB per type) from memory, one thread, float and plane kernels in alternation, by CPU time.</summary>
    public static void AlternateStream(string model, int rounds)
    {
        using GgufFile gguf = GgufFile.Open(model);
        foreach (GgmlType type in new[] { GgmlType.Q4_K, GgmlType.Q5_K, GgmlType.Q6_K, GgmlType.Q2_K, GgmlType.Q3_K })
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
            double bestFloat = double.MaxValue, bestPlanes = double.MaxValue;
            for (int round = -1; round < rounds; round++)
                foreach (bool floats in new[] { true, false })
                {
                    TimeSpan cpu0 = Process.GetCurrentProcess().TotalProcessorTime;
                    Run(matrices, floats, x, y, sums, scales, planes);
                    double cpu = (Process.GetCurrentProcess().TotalProcessorTime - cpu0).TotalMilliseconds;
                    if (round < 0) continue; // the first round pages the file in and compiles
                    if (floats) bestFloat = Math.Min(bestFloat, cpu);
                    else bestPlanes = Math.Min(bestPlanes, cpu);
                }
            Console.WriteLine($"{type}: {matrices.Length} matrices, {bytes / 1e6:F0} MB; min of {rounds} by CPU time: float {bestFloat:F1} ms ({bytes / bestFloat / 1e6:F2} GB/s), planes {bestPlanes:F1} ms ({bytes / bestPlanes / 1e6:F2} GB/s), planes/float {bestPlanes / bestFloat:F3}; ns per 256 values and row float {bestFloat * 1e6 / (values / 256.0):F2} planes {bestPlanes * 1e6 / (values / 256.0):F2}");
        }
    }

    private static void Run(TensorData[] matrices, bool floats, float[] xs, float[] ys, float[] subSums, float[] planeScales, sbyte[] planeBytes)
    {
        fixed (float* x = xs, y = ys, sums = subSums, scales = planeScales)
        fixed (sbyte* planes = planeBytes)
            foreach (TensorData m in matrices)
            {
                int n = m.RowLength, rows = m.RowCount;
                if (floats) KQuantRows.SubBlockSums(x, n, KQuantRows.SumWidth(m.Type), sums);
                else
                {
                    KQuantPlanes.Split(x, n, planes, scales); // as decode prepares each input (MatMul.Run)
                    KQuantPlanes.SubBlockSums(x, n, KQuantRows.SumWidth(m.Type), sums);
                }
                for (int o = 0; o < rows; o += 4)
                    if (floats) KQuantRows.Dot4(m.Type, true, m.Data + o * m.RowBytes, m.RowBytes, Math.Min(4, rows - o), x, sums, n, y + o);
                    else KQuantPlanesWide.Dot4(m.Type, m.Data + o * m.RowBytes, m.RowBytes, Math.Min(4, rows - o), planes, scales, sums, n, y + o);
            }
    }
}
