using System.Diagnostics;
using System.Runtime.CompilerServices;
using BenchmarkDotNet.Attributes;
using NextToken.Gguf;
using NextToken.Kernels;
using NextToken.Tensors;

namespace NextToken.Bench;

/// <summary>
/// The AVX-512 decode of IQ4_NL, IQ4_XS, Q5_0, Q4_1, Q5_1: the generic 512-bit float kernel (<see cref="ChunkedQuant"/> wide,
/// "Chunked") against <see cref="Block32DecodeWide"/> ("Block"), on 64 rows × 2048 that stay in L2, 8 passes per call.
/// <c>--alternate-block32-wide [rounds]</c> times them in alternation (minimum of each, cycles per 256 values and row from a dependent
/// 64-bit multiply chain, 3 cycles a link); <c>--alternate-block32-wide-stream FILE [rounds]</c> reads every matrix of those types of a
/// mapped model from memory, one thread, as decode does, by CPU time. Needs AVX-512 F and BW.
/// </summary>
[MinColumn]
public unsafe class Block32DecodeWideBenchmarks
{
    private const int NIn = 2048, Rows = 64, Passes = 8;
    private static readonly GgmlType[] s_types = [GgmlType.IQ4_XS, GgmlType.IQ4_NL, GgmlType.Q5_0, GgmlType.Q4_1, GgmlType.Q5_1];
    private byte[] _weights = [];
    private float[] _x = [], _y = [];
    private long _rowBytes;

    [Params(GgmlType.IQ4_XS, GgmlType.IQ4_NL, GgmlType.Q5_0, GgmlType.Q4_1, GgmlType.Q5_1)]
    public GgmlType Type { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        if (!Block32DecodeWide.IsSupported) throw new PlatformNotSupportedException("needs AVX-512 F and BW");
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
    }

    [Benchmark]
    public void Block()
    {
        fixed (byte* w = _weights)
        fixed (float* x = _x, y = _y)
            for (int pass = 0; pass < Passes; pass++)
                for (int o = 0; o < Rows; o += 4) Block32DecodeWide.Dot4(Type, w + o * _rowBytes, _rowBytes, 4, x, NIn, y + o);
    }

    [Benchmark(Baseline = true)]
    public void Chunked()
    {
        fixed (byte* w = _weights)
        fixed (float* x = _x, y = _y)
            for (int pass = 0; pass < Passes; pass++)
                for (int o = 0; o < Rows; o += 4) ChunkedQuant.Dot4(Type, true, w + o * _rowBytes, _rowBytes, x, NIn, y + o);
    }


    public static void Alternate(int rounds)
    {
        Console.WriteLine($"{"type",-6} {"chunked µs",11} {"block µs",9} {"GHz",5} {"chunked cyc/256",16} {"block cyc/256",14} {"block/chunked",14}");
        foreach (GgmlType type in s_types)
        {
            var bench = new Block32DecodeWideBenchmarks { Type = type };
            bench.Setup();
            (double chunked, double block, double gigahertz) = AlternatingClock.Time(() => bench.Chunked(), () => bench.Block(), rounds);
            double units = (double)Passes * Rows * NIn / 256;
            Console.WriteLine($"{type,-6} {chunked,11:F1} {block,9:F1} {gigahertz,5:F2} {chunked * 1e3 * gigahertz / units,16:F1} {block * 1e3 * gigahertz / units,14:F1} {block / chunked,14:F3}");
        }
    }

    /// <summary>Every matrix of the five types in a model (up to ~600 MB per type) from memory, one thread, both kernels in alternation, by CPU time.</summary>
    public static void AlternateStream(string model, int rounds)
    {
        using GgufFile gguf = GgufFile.Open(model);
        foreach (GgmlType type in s_types)
        {
            TensorData[] matrices = gguf.Tensors.Where(t => t.Type == type).Select(t => gguf.GetTensor(t.Name)).Where(t => t.RowLength % 256 == 0).ToArray();
            if (matrices.Length == 0) continue;
            long bytes = 0;
            matrices = matrices.TakeWhile(m => (bytes += m.ByteLength) < 600_000_000).ToArray();
            bytes = matrices.Sum(m => m.ByteLength);
            long values = matrices.Sum(m => (long)m.RowLength * m.RowCount);
            int maxIn = matrices.Max(m => m.RowLength), maxOut = matrices.Max(m => m.RowCount);
            float[] x = new float[maxIn], y = new float[maxOut];
            for (int i = 0; i < maxIn; i++) x[i] = MathF.Sin(i * 0.37f);
            double bestChunked = double.MaxValue, bestBlock = double.MaxValue;
            for (int round = -1; round < rounds; round++)
                foreach (bool chunked in new[] { true, false })
                {
                    TimeSpan cpu0 = Process.GetCurrentProcess().TotalProcessorTime;
                    Run(matrices, chunked, x, y);
                    double cpu = (Process.GetCurrentProcess().TotalProcessorTime - cpu0).TotalMilliseconds;
                    if (round < 0) continue; // the first round pages the file in and compiles
                    if (chunked) bestChunked = Math.Min(bestChunked, cpu);
                    else bestBlock = Math.Min(bestBlock, cpu);
                }
            Console.WriteLine($"{type}: {matrices.Length} matrices, {bytes / 1e6:F0} MB; min of {rounds} by CPU time: chunked {bestChunked:F1} ms ({bytes / bestChunked / 1e6:F2} GB/s), " +
                              $"block {bestBlock:F1} ms ({bytes / bestBlock / 1e6:F2} GB/s), block/chunked {bestBlock / bestChunked:F3}; ns per 256 values and row {bestChunked * 1e6 / (values / 256.0):F2} → {bestBlock * 1e6 / (values / 256.0):F2}");
        }
    }

    private static void Run(TensorData[] matrices, bool chunked, float[] xs, float[] ys)
    {
        fixed (float* x = xs, y = ys)
            foreach (TensorData m in matrices)
            {
                int n = m.RowLength, rows = m.RowCount;
                for (int o = 0; o + 4 <= rows; o += 4)
                    if (chunked) ChunkedQuant.Dot4(m.Type, true, m.Data + o * m.RowBytes, m.RowBytes, x, n, y + o);
                    else Block32DecodeWide.Dot4(m.Type, m.Data + o * m.RowBytes, m.RowBytes, 4, x, n, y + o);
            }
    }
}
