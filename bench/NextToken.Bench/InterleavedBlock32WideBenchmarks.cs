using System.Runtime.CompilerServices;
using BenchmarkDotNet.Attributes;
using NextToken.Kernels;
using NextToken.Tensors;

namespace NextToken.Bench;

/// <summary>
/// The repacked block-32 kernels alone (activations quantized beforehand): the 512-bit AVX-512 BW form (sixteen rows per
/// register, <c>vpmaddubsw</c> + <c>vpmaddwd</c>) against the 256-bit AVX-VNNI one, a 2048 × 5632 matrix (TinyLlama-1.1B's
/// FFN shape), one thread, random stored bytes; then decode of a 16384 × 8192 matrix from memory on two threads, with scales of a weight's size. Needs AVX-512 BW and AVX-VNNI.
/// <c>--alternate-interleaved512 [rounds]</c> times both in alternation in one process (minimum of each, in cycles) for a loaded machine.
/// </summary>
[MinColumn]
public unsafe class InterleavedBlock32WideBenchmarks
{
    private int NIn = 2048, NOut = 5632;
    private int _threads = 1;
    private byte[] _weights = [];
    private sbyte[] _quants = [];
    private float[] _scales = [], _y = [];
    private int[] _sums = [];
    private readonly InterleavedBlock32.Cache _cache = new();
    private InterleavedBlock32? _matrix;

    public static GgmlType[] Types { get; } = [GgmlType.Q4_0, GgmlType.Q4_1, GgmlType.Q5_0, GgmlType.Q5_1]; // a property: BenchmarkDotNet reads [ParamsSource] from properties and methods only

    [ParamsSource(nameof(Types))]
    public GgmlType Type { get; set; }

    [Params(1, 16)]
    public int Batch { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        if (!System.Runtime.Intrinsics.X86.Avx512BW.IsSupported || !System.Runtime.Intrinsics.X86.AvxVnni.IsSupported)
            throw new PlatformNotSupportedException("needs AVX-512 BW and AVX-VNNI");
        var random = new Random(1);
        long rowBytes = GgmlTypeInfo.RowBytes(Type, NIn);
        int blockBytes = (int)(rowBytes / (NIn / 32));
        _weights = GC.AllocateArray<byte>((int)(rowBytes * NOut), pinned: true);
        random.NextBytes(_weights);
        for (int at = 0; at < _weights.Length; at += blockBytes)
        {
            BitConverter.TryWriteBytes(_weights.AsSpan(at), (Half)((random.NextDouble() * 2 - 1) * 0.01));
            if (Type is GgmlType.Q4_1 or GgmlType.Q5_1) BitConverter.TryWriteBytes(_weights.AsSpan(at + 2), (Half)((random.NextDouble() * 2 - 1) * 0.1));
        }
        float[] x = Enumerable.Range(0, NIn * Batch).Select(i => (float)Math.Sin(i)).ToArray();
        _quants = GC.AllocateArray<sbyte>(NIn * Batch, pinned: true);
        _scales = GC.AllocateArray<float>(NIn / 32 * Batch, pinned: true);
        _sums = GC.AllocateArray<int>(NIn / 32 * Batch, pinned: true);
        for (int t = 0; t < Batch; t++)
            QuantizedActivations.Quantize(x.AsSpan(t * NIn, NIn), _quants.AsSpan(t * NIn, NIn), _scales.AsSpan(t * NIn / 32, NIn / 32), _sums.AsSpan(t * NIn / 32, NIn / 32));
        _y = GC.AllocateArray<float>(NOut * Batch, pinned: true);
        fixed (byte* data = _weights)
            _matrix = _cache.For(new TensorData("w", Type, [NIn, NOut], data, _weights.Length));
    }

    [GlobalCleanup]
    public void Cleanup() => _cache.Dispose();

    [Benchmark(Baseline = true)]
    public void Vnni256()
    {
        // The arrays are pinned: their addresses hold for the lambda.
        nint q = (nint)Unsafe.AsPointer(ref _quants[0]), d = (nint)Unsafe.AsPointer(ref _scales[0]), s = (nint)Unsafe.AsPointer(ref _sums[0]), y = (nint)Unsafe.AsPointer(ref _y[0]);
        Split(g => _matrix!.MultiplyVnni((sbyte*)q, (float*)d, (int*)s, Batch, (float*)y, NOut, g.Start, g.End));
    }

    [Benchmark]
    public void Wide512()
    {
        // The arrays are pinned: their addresses hold for the lambda.
        nint q = (nint)Unsafe.AsPointer(ref _quants[0]), d = (nint)Unsafe.AsPointer(ref _scales[0]), s = (nint)Unsafe.AsPointer(ref _sums[0]), y = (nint)Unsafe.AsPointer(ref _y[0]);
        Split(g => _matrix!.MultiplyWide((sbyte*)q, (float*)d, (int*)s, Batch, (float*)y, NOut, g.Start, g.End));
    }

    private delegate void Groups((int Start, int End) groups);

    /// <summary>The groups of eight rows in <see cref="_threads"/> even shares, as the matmul's threads take them.</summary>
    private void Split(Groups kernel)
    {
        int groups = NOut / 8;
        if (_threads == 1) kernel((0, groups));
        else Parallel.For(0, _threads, new ParallelOptions { MaxDegreeOfParallelism = _threads }, i => kernel((groups * i / _threads, groups * (i + 1) / _threads)));
    }

    /// <summary>Each type and batch: the two timed in alternation, minimum of <paramref name="rounds"/>, ns and cycles per 32 values, row and position.</summary>
    public static void Alternate(int rounds)
    {
        Console.WriteLine($"5632 rows × 2048, one thread, kernels only, min of {rounds}; ns (cycles) per 32 values, row and position");
        foreach (int batch in new[] { 1, 16 })
            foreach (GgmlType type in Types)
            {
                var bench = new InterleavedBlock32WideBenchmarks { Type = type, Batch = batch };
                bench.Setup();
                var (narrow, wide, gigahertz) = AlternatingClock.Time(bench.Vnni256, bench.Wide512, rounds);
                double units = (double)bench.NOut * bench.NIn / 32 * batch;
                Console.WriteLine($"{type,-7} batch {batch,2}  256-bit VNNI {narrow * 1e3 / units,6:F3} ({narrow * 1e3 * gigahertz / units,5:F2})  " +
                                  $"512-bit {wide * 1e3 / units,6:F3} ({wide * 1e3 * gigahertz / units,5:F2})  512/256 {wide / narrow:F3}  {gigahertz:F2} GHz");
                bench.Cleanup();
            }
        // Decode from memory: a 16384 × 8192 matrix (75–100 MB, past every cache) on two threads, as a model's decode streams its weights.
        foreach (GgmlType type in Types)
        {
            var bench = new InterleavedBlock32WideBenchmarks { Type = type, Batch = 1, NIn = 8192, NOut = 16384, _threads = 2 };
            bench.Setup();
            var (narrow, wide, _) = AlternatingClock.Time(bench.Vnni256, bench.Wide512, rounds);
            double bytes = GgmlTypeInfo.RowBytes(type, bench.NIn) * (double)bench.NOut;
            Console.WriteLine($"{type,-7} decode from memory, 2 threads  256-bit VNNI {narrow:F0} µs ({bytes / narrow / 1e3:F1} GB/s)  512-bit {wide:F0} µs ({bytes / wide / 1e3:F1} GB/s)  512/256 {wide / narrow:F3}");
            bench.Cleanup();
        }
    }
}
