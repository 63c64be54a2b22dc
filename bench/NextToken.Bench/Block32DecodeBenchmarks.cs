using System.Buffers.Binary;
using System.Diagnostics;
using BenchmarkDotNet.Attributes;
using NextToken.Gguf;
using NextToken.Kernels;
using NextToken.Tensors;

namespace NextToken.Bench;

/// <summary>
/// The AVX2 decode of Q4_1, Q5_0, Q5_1, IQ4_NL and IQ4_XS: the float kernel (<see cref="ChunkedQuant"/>, baseline) against the
/// placed-byte kernel (<see cref="Block32Decode"/>, its x placement once per pass included), one thread, 64 rows × 2048 (resident
/// in L2) passed 8 times per call. <c>--alternate-block32 [FILE.gguf] [rounds]</c> times them in alternation instead (minimum of
/// each, for a loaded machine): resident, and with a file every matrix of these types read from the mapping (CPU time), with
/// the plane kernels (<see cref="Block32Planes"/>, Q4_1/Q5_0/Q5_1: what the matmul takes) in a third column.
/// Run with DOTNET_EnableAVX512=0 DOTNET_EnableAVXVNNI=0.
/// </summary>
[MinColumn]
public unsafe class Block32DecodeBenchmarks
{
    private const int NIn = 2048, Rows = 64, Passes = 8;
    private byte[] _weights = [];
    private float[] _x = [], _y = [], _prepared = [];
    private byte[] _split = [];
    private long _rowBytes;

    [Params(GgmlType.Q4_1, GgmlType.Q5_0, GgmlType.Q5_1, GgmlType.IQ4_NL, GgmlType.IQ4_XS)]
    public GgmlType Type { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        if (!Block32Decode.IsSupported) throw new PlatformNotSupportedException("needs AVX2 and FMA");
        _rowBytes = GgmlTypeInfo.RowBytes(Type, NIn);
        _weights = GC.AllocateUninitializedArray<byte>((int)(_rowBytes * Rows), pinned: true);
        var random = new Random(1);
        random.NextBytes(_weights);
        GgmlTypeInfo.TryGetLayout(Type, out _, out int blockBytes);
        for (int at = 0; at < _weights.Length; at += blockBytes)
        {
            BinaryPrimitives.WriteHalfLittleEndian(_weights.AsSpan(at), (Half)(random.NextDouble() * 0.02 - 0.01));
            if (Type is GgmlType.Q4_1 or GgmlType.Q5_1) BinaryPrimitives.WriteHalfLittleEndian(_weights.AsSpan(at + 2), (Half)(random.NextDouble() * 0.02 - 0.01));
        }
        _x = GC.AllocateArray<float>(NIn, pinned: true);
        for (int i = 0; i < NIn; i++) _x[i] = (float)Math.Sin(i);
        _y = new float[Rows];
        _prepared = GC.AllocateArray<float>(NIn / 32 * Block32Decode.PreparedFloats, pinned: true);
        _split = GC.AllocateArray<byte>(NIn / 32 * Block32Planes.PreparedBytes, pinned: true);
    }

    [Benchmark(Baseline = true)]
    public void Previous()
    {
        fixed (byte* w = _weights)
        fixed (float* x = _x, y = _y)
            for (int pass = 0; pass < Passes; pass++)
                for (int o = 0; o < Rows; o += 4) ChunkedQuant.Dot4(Type, false, w + o * _rowBytes, _rowBytes, x, NIn, y + o);
    }

    [Benchmark]
    public void Kernel()
    {
        fixed (byte* w = _weights)
        fixed (float* x = _x, y = _y, p = _prepared)
            for (int pass = 0; pass < Passes; pass++)
            {
                Block32Decode.Prepare(x, NIn, p);
                for (int o = 0; o < Rows; o += 4) Block32Decode.Dot4(Type, w + o * _rowBytes, _rowBytes, p, NIn, y + o);
            }
    }

    /// <summary>The plane kernel, its split once per pass included (Q4_1, Q5_0, Q5_1; <see cref="Block32PlanesBenchmarks"/>).</summary>
    public void Planes()
    {
        fixed (byte* w = _weights, p = _split)
        fixed (float* x = _x, y = _y)
            for (int pass = 0; pass < Passes; pass++)
            {
                Block32Planes.Prepare(x, NIn, p);
                for (int o = 0; o < Rows; o += 4) Block32Planes.Dot4(Type, w + o * _rowBytes, _rowBytes, p, NIn, y + o);
            }
    }

    private static readonly GgmlType[] Types = [GgmlType.Q4_1, GgmlType.Q5_0, GgmlType.Q5_1, GgmlType.IQ4_NL, GgmlType.IQ4_XS];

    public static void Alternate(string? model, int rounds)
    {
        // The clock from ResidentDecodeBenchmarks' chain of dependent FMAs (4 cycles a link, 4096 links), timed alongside.
        var clockBench = new ResidentDecodeBenchmarks { Type = GgmlType.Q4_0 };
        clockBench.Setup();
        Console.WriteLine($"resident: {Rows} rows × {NIn}, {Passes} passes, min of {rounds}; ns (cycles) per 32 values and row");
        foreach (GgmlType type in Types)
        {
            var bench = new Block32DecodeBenchmarks { Type = type };
            bench.Setup();
            bool planes = Block32Planes.Decodes(type);
            for (int i = 0; i < 200; i++) { bench.Previous(); bench.Kernel(); if (planes) bench.Planes(); clockBench.Clock(); }
            Thread.Sleep(300);
            double previous = double.MaxValue, kernel = double.MaxValue, split = double.MaxValue, clock = double.MaxValue;
            float sink = 0;
            for (int round = 0; round < rounds; round++)
            {
                long t0 = Stopwatch.GetTimestamp();
                bench.Previous();
                long t1 = Stopwatch.GetTimestamp();
                bench.Kernel();
                long t2 = Stopwatch.GetTimestamp();
                if (planes) bench.Planes();
                long t3 = Stopwatch.GetTimestamp();
                sink += clockBench.Clock();
                clock = Math.Min(clock, Stopwatch.GetElapsedTime(t3).TotalMicroseconds);
                split = Math.Min(split, Stopwatch.GetElapsedTime(t2, t3).TotalMicroseconds);
                previous = Math.Min(previous, Stopwatch.GetElapsedTime(t0, t1).TotalMicroseconds);
                kernel = Math.Min(kernel, Stopwatch.GetElapsedTime(t1, t2).TotalMicroseconds);
            }
            double units = (double)Passes * Rows * NIn / 32;
            double gigahertz = 16384 / clock / 1e3;
            string planesColumn = planes ? $"  planes {split * 1e3 / units,6:F3} ({split * 1e3 * gigahertz / units,5:F2})  planes/placed {split / kernel:F3}" : "";
            Console.WriteLine($"{type,-7} previous {previous * 1e3 / units,6:F3} ({previous * 1e3 * gigahertz / units,5:F2})  placed {kernel * 1e3 / units,6:F3} ({kernel * 1e3 * gigahertz / units,5:F2})  placed/previous {kernel / previous:F3}{planesColumn}  {gigahertz:F2} GHz{(sink == 0 ? " " : "")}");
        }
        if (string.IsNullOrEmpty(model)) return;
        using GgufFile gguf = GgufFile.Open(model);
        foreach (GgmlType type in Types)
        {
            TensorData[] matrices = gguf.Tensors.Where(t => t.Type == type).Select(t => gguf.GetTensor(t.Name)).Where(t => t.RowLength % 256 == 0 && t.RowCount % 4 == 0).ToArray();
            if (matrices.Length == 0) continue;
            long bytes = 0;
            matrices = matrices.TakeWhile(m => (bytes += m.ByteLength) < 600_000_000).ToArray();
            bytes = matrices.Sum(m => m.ByteLength);
            int maxIn = matrices.Max(m => m.RowLength), maxOut = matrices.Max(m => m.RowCount);
            float[] x = new float[maxIn], y = new float[maxOut], prepared = new float[maxIn / 32 * Block32Decode.PreparedFloats];
            byte[] split = new byte[maxIn / 32 * Block32Planes.PreparedBytes];
            for (int i = 0; i < maxIn; i++) x[i] = MathF.Sin(i * 0.37f);
            double[] best = [double.MaxValue, double.MaxValue, double.MaxValue];
            int[] variants = Block32Planes.Decodes(type) ? [0, 1, 2] : [0, 1];
            for (int round = -1; round < rounds; round++)
                foreach (int variant in variants)
                {
                    TimeSpan cpu0 = Process.GetCurrentProcess().TotalProcessorTime;
                    Stream(matrices, variant, x, y, prepared, split);
                    double cpu = (Process.GetCurrentProcess().TotalProcessorTime - cpu0).TotalMilliseconds;
                    if (round < 0) continue; // pages the file in, compiles
                    best[variant] = Math.Min(best[variant], cpu);
                }
            string planesColumn = variants.Length == 3 ? $", planes {best[2]:F1} ms ({bytes / best[2] / 1e6:F2} GB/s), planes/placed {best[2] / best[1]:F3}" : "";
            Console.WriteLine($"{type,-7} stream: {matrices.Length} matrices, {bytes / 1e6:F0} MB; min CPU of {rounds}: previous {best[0]:F1} ms ({bytes / best[0] / 1e6:F2} GB/s), placed {best[1]:F1} ms ({bytes / best[1] / 1e6:F2} GB/s), placed/previous {best[1] / best[0]:F3}{planesColumn}");
        }
    }

    private static void Stream(TensorData[] matrices, int variant, float[] xs, float[] ys, float[] preparedBuffer, byte[] splitBuffer)
    {
        fixed (float* x = xs, y = ys, p = preparedBuffer)
        fixed (byte* s = splitBuffer)
            foreach (TensorData m in matrices)
            {
                int n = m.RowLength;
                if (variant == 1) Block32Decode.Prepare(x, n, p);
                if (variant == 2) Block32Planes.Prepare(x, n, s);
                for (int o = 0; o < m.RowCount; o += 4)
                    if (variant == 0) ChunkedQuant.Dot4(m.Type, false, m.Data + o * m.RowBytes, m.RowBytes, x, n, y + o);
                    else if (variant == 1) Block32Decode.Dot4(m.Type, m.Data + o * m.RowBytes, m.RowBytes, p, n, y + o);
                    else Block32Planes.Dot4(m.Type, m.Data + o * m.RowBytes, m.RowBytes, s, n, y + o);
            }
    }
}

/// <summary>
/// The AVX2 plane kernels (<see cref="Block32Planes"/>) against the placed-byte float kernels they replaced for Q4_1, Q5_0 and
/// Q5_1 (<see cref="Block32Decode"/>, baseline), each with its x preparation once per pass; the data of
/// <see cref="Block32DecodeBenchmarks"/>. Run with DOTNET_EnableAVX512=0 DOTNET_EnableAVXVNNI=0.
/// </summary>
[MinColumn]
public class Block32PlanesBenchmarks
{
    private readonly Block32DecodeBenchmarks _data = new();

    [Params(GgmlType.Q4_1, GgmlType.Q5_0, GgmlType.Q5_1)]
    public GgmlType Type { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _data.Type = Type;
        _data.Setup();
    }

    [Benchmark(Baseline = true)]
    public void Placed() => _data.Kernel();

    [Benchmark]
    public void Planes() => _data.Planes();
}
