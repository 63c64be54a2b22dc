using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using BenchmarkDotNet.Attributes;
using NextToken.Gguf;
using NextToken.Kernels;
using NextToken.Tensors;

namespace NextToken.Bench;

/// <summary>
/// The AVX2 exact decode kernels on weights that stay in L2 (64 rows × 2048, 72–210 KB, passed 8
/// times per call), so the time is the kernel's arithmetic, not memory: ns per call ÷ (8 · 64 ·
/// 2048/32 blocks of 32 values) × the clock gives cycles per 32 values and row, to set against the
/// port count of each kernel's operations (README, Speed). <c>--alternate-resident</c> (Program.cs)
/// times the kernels in alternation within one process instead, for a loaded machine. Run with
/// DOTNET_EnableAVX512=0 DOTNET_EnableAVXVNNI=0 to see an AVX2-only CPU's JIT output.
/// </summary>
[MinColumn]
public unsafe class ResidentDecodeBenchmarks
{
    private const int NIn = 2048, Rows = 64, Passes = 8;
    private byte[] _weights = [];
    private float[] _x = [], _y = [], _sums = [], _planeScales = [];
    private sbyte[] _planes = [];
    private long _rowBytes;
    private float _one = 1f, _factor = 0.999f, _step = 0.001f;
    private static double s_sink;

    [Params(GgmlType.Q4_0, GgmlType.Q8_0, GgmlType.Q4_K, GgmlType.Q5_K, GgmlType.Q6_K, GgmlType.Q2_K, GgmlType.Q3_K)]
    public GgmlType Type { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        if (!(Avx2Available && !Vector512.IsHardwareAccelerated))
            throw new PlatformNotSupportedException("needs AVX2 and FMA with 512-bit vectors off (DOTNET_EnableAVX512=0)");
        _rowBytes = GgmlTypeInfo.RowBytes(Type, NIn);
        long bytes = _rowBytes * Rows;
        _weights = GC.AllocateUninitializedArray<byte>((int)bytes, pinned: true);
        if (KQuantRows.Handles(Type))
        {
            using GgufFile gguf = GgufFile.Open(Corpus.Shared("fixtures", "models", "quant", $"llama-d256.{Type.ToString().ToLowerInvariant()}.gguf"));
            TensorData source = gguf.GetTensor(gguf.Tensors.First(t => t.Type == Type).Name);
            var stored = new ReadOnlySpan<byte>(source.Data, (int)source.ByteLength);
            for (long at = 0; at < bytes; at += stored.Length)
                stored[..(int)Math.Min(stored.Length, bytes - at)].CopyTo(_weights.AsSpan((int)at));
        }
        else
        {
            var random = new Random(1);
            Quantize.Blocks(Type, Enumerable.Range(0, NIn * Rows).Select(_ => (float)(random.NextDouble() - 0.5)).ToArray()).CopyTo(_weights, 0);
        }
        _x = GC.AllocateArray<float>(NIn, pinned: true);
        for (int i = 0; i < NIn; i++) _x[i] = (float)Math.Sin(i);
        _y = new float[Rows];
        _sums = GC.AllocateArray<float>(NIn / 32 * Quantized.Q4_0PreparedFloats, pinned: true);
        _planes = GC.AllocateArray<sbyte>(3 * NIn, pinned: true);
        _planeScales = GC.AllocateArray<float>(NIn / 256, pinned: true);
        Console.WriteLine($"// {Type}: {bytes / 1e3:F0} KB of weights, {Passes} passes");
    }

    /// <summary>
    /// For each type, <paramref name="rounds"/> rounds of Previous, Kernel, Clock and FmaThroughput back to back
    /// (one call each, after a warm-up that lets tiered compilation finish), printing each one's minimum and the
    /// cycles per 32 values and row that the clock implies: on a loaded machine they all see the same
    /// conditions, and the minimum is the least disturbed call.
    /// </summary>
    public static void Alternate(int rounds)
    {
        Console.WriteLine($"{"type",-5} {"previous µs",12} {"kernel µs",10} {"chain µs",9} {"8 chains µs",12} {"imul µs",8} {"GHz",5} {"prev ns/32",11} {"new ns/32",10} {"new cyc/32",11} {"new/prev",9}");
        foreach (GgmlType type in new[] { GgmlType.Q4_0, GgmlType.Q8_0, GgmlType.Q4_K, GgmlType.Q5_K, GgmlType.Q6_K, GgmlType.Q2_K, GgmlType.Q3_K })
        {
            var bench = new ResidentDecodeBenchmarks { Type = type };
            bench.Setup();
            for (int i = 0; i < 200; i++) { if (KQuantRows.Handles(type)) bench.Prepare(); bench.Previous(); bench.Kernel(); bench.Clock(); bench.FmaThroughput(); bench.MultiplyChain(); }
            Thread.Sleep(500); // tier-1 code installed
            double previous = double.MaxValue, kernel = double.MaxValue, clock = double.MaxValue, throughput = double.MaxValue, multiplies = double.MaxValue;
            double tick = 1e6 / System.Diagnostics.Stopwatch.Frequency;
            for (int round = 0; round < rounds; round++)
            {
                long t0 = System.Diagnostics.Stopwatch.GetTimestamp();
                bench.Previous();
                long t1 = System.Diagnostics.Stopwatch.GetTimestamp();
                bench.Kernel();
                long t2 = System.Diagnostics.Stopwatch.GetTimestamp();
                s_sink += bench.Clock(); // used, so the chain is not removed once inlined
                long t3 = System.Diagnostics.Stopwatch.GetTimestamp();
                s_sink += bench.FmaThroughput();
                long t4 = System.Diagnostics.Stopwatch.GetTimestamp();
                s_sink += bench.MultiplyChain();
                long t5 = System.Diagnostics.Stopwatch.GetTimestamp();
                multiplies = Math.Min(multiplies, (t5 - t4) * tick);
                previous = Math.Min(previous, (t1 - t0) * tick);
                kernel = Math.Min(kernel, (t2 - t1) * tick);
                clock = Math.Min(clock, (t3 - t2) * tick);
                throughput = Math.Min(throughput, (t4 - t3) * tick);
            }
            // The per-pass preparation alone (K-quants: the split and the sub-block sums), which each pass above includes once.
            double prepare = double.MaxValue;
            if (KQuantRows.Handles(type))
                for (int round = 0; round < rounds; round++)
                {
                    long t0 = System.Diagnostics.Stopwatch.GetTimestamp();
                    bench.Prepare();
                    prepare = Math.Min(prepare, (System.Diagnostics.Stopwatch.GetTimestamp() - t0) * tick);
                }
            if (prepare < double.MaxValue) Console.WriteLine($"// {type}: split and sums of {NIn} values {prepare:F2} µs (min of {rounds}), {prepare * 1e3 / NIn:F3} ns per value");
            // The clock from the multiply-add chain (4 cycles a link); the multiply chain (3) and the eight chains (two per cycle) check it.
            double units = (double)Passes * Rows * NIn / 32, gigahertz = 16384 / clock / 1e3;
            Console.WriteLine($"{type,-5} {previous,12:F1} {kernel,10:F1} {clock,9:F2} {throughput,12:F2} {multiplies,8:F2} {gigahertz,5:F2} {previous * 1e3 / units,11:F3} {kernel * 1e3 / units,10:F3} {kernel * 1e3 * gigahertz / units,11:F2} {kernel / previous,9:F3}");
        }
    }

    private static bool Avx2Available => System.Runtime.Intrinsics.X86.Avx2.IsSupported && System.Runtime.Intrinsics.X86.Fma.IsSupported;

    /// <summary>
    /// The exact kernel as the matmul runs it (per-call x preparation included, once per pass); K-quants: <see cref="KQuantPlanes"/>
    /// (its split and sub-block sums per pass, <see cref="Prepare"/>), which decode takes for Q2_K–Q6_K.
    /// </summary>
    [Benchmark]
    public void Kernel()
    {
        fixed (byte* w = _weights)
        fixed (float* x = _x, y = _y, sums = _sums, planeScales = _planeScales)
        fixed (sbyte* planes = _planes)
            for (int pass = 0; pass < Passes; pass++)
            {
                if (Type == GgmlType.Q4_0)
                {
                    Quantized.PrepareQ4_0(x, NIn, sums);
                    for (int o = 0; o < Rows; o += 4) Quantized.Dot4RowsNarrowQ4_0Placed(w + o * _rowBytes, _rowBytes, sums, NIn, y + o);
                }
                else if (Type == GgmlType.Q8_0)
                    for (int o = 0; o < Rows; o += 4) Quantized.Dot4RowsNarrow(Type, w + o * _rowBytes, _rowBytes, x, NIn, y + o);
                else
                {
                    KQuantPlanes.Split(x, NIn, planes, planeScales);
                    KQuantPlanes.SubBlockSums(x, NIn, KQuantRows.SumWidth(Type), sums);
                    for (int o = 0; o < Rows; o += 4) KQuantPlanes.Dot4(Type, w + o * _rowBytes, _rowBytes, 4, planes, planeScales, sums, NIn, y + o);
                }
            }
    }

    /// <summary>The K-quant plane kernels' per-call preparation of x: the split and the sub-block sums.</summary>
    [Benchmark]
    public void Prepare()
    {
        fixed (float* x = _x, sums = _sums, planeScales = _planeScales)
        fixed (sbyte* planes = _planes)
        {
            KQuantPlanes.Split(x, NIn, planes, planeScales);
            KQuantPlanes.SubBlockSums(x, NIn, KQuantRows.SumWidth(Type), sums);
        }
    }

    /// <summary>The kernel each type had before (Q4_0: the shifting kernel with its offsets made once per pass; Q2_K–Q6_K: the 256-bit float kernels the plane kernels replaced, <see cref="KQuantRows"/>; Q8_0 unchanged). The plane kernels' own before/after of issue #13's ninth session is in the README; that kernel is in the history (6e815c2, KQuantPlanes.cs).</summary>
    [Benchmark(Baseline = true)]
    public void Previous()
    {
        fixed (byte* w = _weights)
        fixed (float* x = _x, y = _y, sums = _sums, planeScales = _planeScales)
        fixed (sbyte* planes = _planes)
            for (int pass = 0; pass < Passes; pass++)
            {
                if (Type == GgmlType.Q4_0)
                {
                    Quantized.Q4_0Offsets(x, NIn, sums);
                    for (int o = 0; o < Rows; o += 4) Quantized.Dot4RowsNarrowQ4_0(w + o * _rowBytes, _rowBytes, x, sums, NIn, y + o);
                }
                else if (Type == GgmlType.Q8_0)
                    for (int o = 0; o < Rows; o += 4) Quantized.Dot4RowsNarrow(Type, w + o * _rowBytes, _rowBytes, x, NIn, y + o);
                else
                {
                    KQuantRows.SubBlockSums(x, NIn, KQuantRows.SumWidth(Type), sums);
                    for (int o = 0; o < Rows; o += 4) KQuantRows.Dot4(Type, false, w + o * _rowBytes, _rowBytes, 4, x, sums, NIn, y + o);
                }
            }
    }

    /// <summary>4096 dependent 256-bit multiply-adds: 4 cycles each (FMA latency on Intel since Skylake; AMD Zen 2–4 5), so 16384 cycles.</summary>
    [Benchmark, MethodImpl(MethodImplOptions.NoInlining)] // its own tier-1 code, not inlined into Alternate's loop
    public float Clock()
    {
        Vector256<float> a = Vector256.Create(_one), b = Vector256.Create(_factor), c = Vector256.Create(_step); // fields: nothing to fold at compile time
        for (int i = 0; i < 4096; i++) a = Vector256.FusedMultiplyAdd(a, b, c);
        return a.ToScalar();
    }

    /// <summary>4096 dependent 64-bit integer multiplies: 3 cycles each (imul latency on Intel since Sandy Bridge and on AMD Zen), a second clock.</summary>
    [Benchmark, MethodImpl(MethodImplOptions.NoInlining)] // its own tier-1 code, not inlined into Alternate's loop
    public ulong MultiplyChain() => AlternatingClock.MultiplyChain();

    /// <summary>4096 × 8 independent 256-bit multiply-adds: at two per cycle (ports 0 and 1) 16384 cycles, as <see cref="Clock"/>; a shorter time would mean a third FMA port.</summary>
    [Benchmark, MethodImpl(MethodImplOptions.NoInlining)] // its own tier-1 code, not inlined into Alternate's loop
    public float FmaThroughput()
    {
        Vector256<float> b = Vector256.Create(0.999f), c = Vector256.Create(0.001f);
        Vector256<float> a0 = Vector256.Create(1f), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
        for (int i = 0; i < 4096; i++)
        {
            a0 = Vector256.FusedMultiplyAdd(a0, b, c); a1 = Vector256.FusedMultiplyAdd(a1, b, c);
            a2 = Vector256.FusedMultiplyAdd(a2, b, c); a3 = Vector256.FusedMultiplyAdd(a3, b, c);
            a4 = Vector256.FusedMultiplyAdd(a4, b, c); a5 = Vector256.FusedMultiplyAdd(a5, b, c);
            a6 = Vector256.FusedMultiplyAdd(a6, b, c); a7 = Vector256.FusedMultiplyAdd(a7, b, c);
        }
        return (a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7).ToScalar();
    }
}
