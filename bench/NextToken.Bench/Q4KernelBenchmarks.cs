using BenchmarkDotNet.Attributes;
using NextToken.Kernels;
using NextToken.Tensors;

namespace NextToken.Bench;

/// <summary>
/// The exact Q4_0/Q8_0 four-row decode kernels alone, one thread, over a 2048 × 5632 matrix
/// (TinyLlama-1.1B's FFN shape; Q4_0 6.5 MB): the current kernel against the one it replaced
/// (baseline), at each vector width this CPU has (a width it lacks throws in setup, so it is
/// reported, never timed wrongly). Run with DOTNET_EnableAVX512=0 DOTNET_EnableAVXVNNI=0 to see an
/// AVX2-only CPU's JIT output.
/// </summary>
[MinColumn]
public unsafe class Q4DecodeBenchmarks
{
    private const int NIn = 2048, NOut = 5632;
    private byte[] _weights = [];
    private float[] _x = [], _y = [], _offsets = new float[NIn / 32 * Quantized.Q4_0PreparedFloats];
    private long _rowBytes;

    [Params(512, 256)]
    public int Bits { get; set; }

    [Params(GgmlType.Q4_0, GgmlType.Q8_0)]
    public GgmlType Type { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        bool available = Bits == 512 ? System.Runtime.Intrinsics.Vector512.IsHardwareAccelerated && System.Runtime.Intrinsics.X86.Avx512F.IsSupported
            : System.Runtime.Intrinsics.X86.Avx2.IsSupported && System.Runtime.Intrinsics.X86.Fma.IsSupported;
        if (!available) throw new PlatformNotSupportedException($"no {Bits}-bit kernels on this CPU");
        var random = new Random(1);
        _weights = Quantize.Blocks(Type, Enumerable.Range(0, NIn * NOut).Select(_ => (float)(random.NextDouble() - 0.5)).ToArray());
        _rowBytes = GgmlTypeInfo.RowBytes(Type, NIn);
        _x = Enumerable.Range(0, NIn).Select(i => (float)Math.Sin(i)).ToArray();
        _y = new float[NOut];
    }

    [Benchmark(Baseline = true)]
    public void Previous()
    {
        fixed (byte* w = _weights)
        fixed (float* x = _x, y = _y)
            for (int o = 0; o < NOut; o += 4)
                if (Bits == 512) Quantized.Dot4RowsWidePrevious(Type, w + o * _rowBytes, _rowBytes, x, NIn, y + o);
                else Quantized.Dot4RowsNarrowPrevious(Type, w + o * _rowBytes, _rowBytes, x, NIn, y + o);
    }

    /// <summary>As the matmul runs it: with AVX2, Q4_0's x placed for the nibbles in place once per call (included in the time).</summary>
    [Benchmark]
    public void Current()
    {
        fixed (byte* w = _weights)
        fixed (float* x = _x, y = _y, offsets = _offsets)
        {
            bool given = Bits == 256 && Type == GgmlType.Q4_0;
            if (given) Quantized.PrepareQ4_0(x, NIn, offsets);
            for (int o = 0; o < NOut; o += 4)
                if (Bits == 512) Quantized.Dot4RowsWide(Type, w + o * _rowBytes, _rowBytes, x, NIn, y + o);
                else if (given) Quantized.Dot4RowsNarrowQ4_0Placed(w + o * _rowBytes, _rowBytes, offsets, NIn, y + o);
                else Quantized.Dot4RowsNarrow(Type, w + o * _rowBytes, _rowBytes, x, NIn, y + o);
        }
    }
}

/// <summary>
/// The repacked Q4_0 prompt kernel of <c>--q8-activations</c> (768 → 3072, GPT-2's MLP, 128
/// positions, one thread): VNNI (<c>vpdpbusd</c>, the baseline) against plain AVX2
/// (<c>vpmaddubsw</c> + <c>vpmaddwd</c>), the only integer prompt path an AVX2-only CPU has; before
/// it, such a CPU took the float panel path (<see cref="FloatPanels"/>).
/// </summary>
[MinColumn]
public unsafe class Q4InterleavedBenchmarks
{
    private const int NIn = 768, NOut = 3072, Batch = 128;
    private byte[] _weights = [];
    private float[] _x = [], _y = [], _scales = [];
    private sbyte[] _quants = [];
    private int[] _sums = [];
    private InterleavedBlock32.Cache _cache = new();

    [GlobalSetup]
    public void Setup()
    {
        if (!System.Runtime.Intrinsics.X86.Avx2.IsSupported) throw new PlatformNotSupportedException("no AVX2 on this CPU");
        var random = new Random(1);
        _weights = GC.AllocateArray<byte>((int)GgmlTypeInfo.RowBytes(GgmlType.Q4_0, NIn) * NOut, pinned: true);
        Quantize.Blocks(GgmlType.Q4_0, Enumerable.Range(0, NIn * NOut).Select(_ => (float)(random.NextDouble() - 0.5)).ToArray()).CopyTo(_weights, 0);
        _x = Enumerable.Range(0, NIn * Batch).Select(i => (float)Math.Sin(i)).ToArray();
        _y = new float[NOut * Batch];
        _quants = new sbyte[NIn * Batch];
        _scales = new float[NIn / 32 * Batch];
        _sums = new int[NIn / 32 * Batch];
        for (int t = 0; t < Batch; t++)
            QuantizedActivations.Quantize(_x.AsSpan(t * NIn, NIn), _quants.AsSpan(t * NIn, NIn), _scales.AsSpan(t * NIn / 32, NIn / 32), _sums.AsSpan(t * NIn / 32, NIn / 32));
    }

    [GlobalCleanup]
    public void Cleanup() => _cache.Dispose();

    private TensorData Weight(byte* data) => new("w", GgmlType.Q4_0, [NIn, NOut], data, _weights.Length);

    [Benchmark(Baseline = true)]
    public void Vnni()
    {
        if (!System.Runtime.Intrinsics.X86.AvxVnni.IsSupported) throw new PlatformNotSupportedException("no AVX-VNNI on this CPU (or DOTNET_EnableAVXVNNI=0)");
        fixed (byte* data = _weights)
        fixed (sbyte* q = _quants)
        fixed (float* d = _scales, y = _y)
        fixed (int* s = _sums)
            _cache.For(Weight(data)).Multiply(q, d, s, Batch, y, NOut, 0, NOut / 8);
    }

    [Benchmark]
    public void Avx2()
    {
        fixed (byte* data = _weights)
        fixed (sbyte* q = _quants)
        fixed (float* d = _scales, y = _y)
        fixed (int* s = _sums)
            _cache.For(Weight(data)).MultiplyWithoutVnni(q, d, s, Batch, y, NOut, 0, NOut / 8);
    }

    [Benchmark]
    public void FloatPanels()
    {
        fixed (byte* data = _weights)
            MatMul.Forward(Weight(data), _x, Batch, _y, threads: 1);
    }
}

/// <summary>
/// Q8_0/Q4_0 rows expanded to float32 (the exact prompt path expands each weight row once per
/// tile): element by element (the AVX2 baseline, what CPUs without AVX-512 ran) against the AVX2
/// kernel, over 3072 rows of 768.
/// </summary>
[MinColumn]
public unsafe class QuantDequantizeBenchmarks
{
    private const int NIn = 768, NOut = 3072;
    private byte[] _weights = [];
    private float[] _y = [];

    [Params(GgmlType.Q4_0, GgmlType.Q8_0)]
    public GgmlType Type { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        if (!(System.Runtime.Intrinsics.X86.Avx2.IsSupported && System.Runtime.Intrinsics.X86.Fma.IsSupported)) throw new PlatformNotSupportedException("no AVX2+FMA on this CPU");
        var random = new Random(1);
        _weights = Quantize.Blocks(Type, Enumerable.Range(0, NIn * NOut).Select(_ => (float)(random.NextDouble() - 0.5)).ToArray());
        _y = new float[NIn];
    }

    [Benchmark(Baseline = true)]
    public void ElementByElement()
    {
        GgmlTypeInfo.TryGetLayout(Type, out int blockSize, out int blockBytes);
        for (int r = 0; r < NOut; r++)
            for (int b = 0; b < NIn / blockSize; b++)
                Quantized.DequantizeBlock(Type, _weights.AsSpan(r * (NIn / blockSize) * blockBytes + b * blockBytes, blockBytes), _y.AsSpan(b * blockSize, blockSize));
    }

    [Benchmark]
    public void Avx2()
    {
        long rowBytes = GgmlTypeInfo.RowBytes(Type, NIn);
        fixed (byte* w = _weights)
        fixed (float* y = _y)
            for (int r = 0; r < NOut; r++) Quantized.DequantizeRowNarrow(Type, w + r * rowBytes, NIn / 32, y);
    }
}

/// <summary>
/// The <c>--q8-activations</c> Q4_0 decode kernel (four rows against one quantized activation),
/// one thread, 2048 × 5632: the broadcasting nibble unpack against the split-and-join one it
/// replaced (baseline). VNNI where the CPU has it; run with DOTNET_EnableAVXVNNI=0 for plain AVX2.
/// </summary>
[MinColumn]
public unsafe class Q4QuantizedDecodeBenchmarks
{
    private const int NIn = 2048, NOut = 5632;
    private byte[] _weights = [];
    private float[] _y = [], _scales = [];
    private sbyte[] _quants = [];
    private int[] _sums = [];
    private long _rowBytes;

    [GlobalSetup]
    public void Setup()
    {
        if (!System.Runtime.Intrinsics.X86.Avx2.IsSupported) throw new PlatformNotSupportedException("no AVX2 on this CPU");
        var random = new Random(1);
        _weights = Quantize.Blocks(GgmlType.Q4_0, Enumerable.Range(0, NIn * NOut).Select(_ => (float)(random.NextDouble() - 0.5)).ToArray());
        _rowBytes = GgmlTypeInfo.RowBytes(GgmlType.Q4_0, NIn);
        float[] x = Enumerable.Range(0, NIn).Select(i => (float)Math.Sin(i)).ToArray();
        (_quants, _scales, _sums, _y) = (new sbyte[NIn], new float[NIn / 32], new int[NIn / 32], new float[NOut]);
        QuantizedActivations.Quantize(x, _quants, _scales, _sums);
    }

    [Benchmark(Baseline = true)]
    public void Previous()
    {
        fixed (byte* w = _weights)
        fixed (sbyte* q = _quants)
        fixed (float* d = _scales, y = _y)
        fixed (int* s = _sums)
            for (int o = 0; o < NOut; o += 4) QuantizedActivations.Dot4Q4_0Previous(w + o * _rowBytes, _rowBytes, q, d, s, NIn / 32, y + o);
    }

    [Benchmark]
    public void Current()
    {
        fixed (byte* w = _weights)
        fixed (sbyte* q = _quants)
        fixed (float* d = _scales, y = _y)
        fixed (int* s = _sums)
            for (int o = 0; o < NOut; o += 4) QuantizedActivations.Dot4(GgmlType.Q4_0, w + o * _rowBytes, _rowBytes, q, d, s, NIn / 32, y + o);
    }
}
