using BenchmarkDotNet.Attributes;
using NextToken.Kernels;
using NextToken.Tensors;

namespace NextToken.Bench;

/// <summary>
/// The exact Q4_0 four-row decode kernels alone, one thread, over a 2048 × 5632 matrix
/// (TinyLlama-1.1B's FFN shape, 6.5 MB): the current kernel against the one it replaced
/// (baseline), at each vector width this CPU has (a width it lacks throws in setup, so it is
/// reported, never timed wrongly). Run with DOTNET_EnableAVX512=0 DOTNET_EnableAVXVNNI=0 to see an
/// AVX2-only CPU's JIT output.
/// </summary>
public unsafe class Q4DecodeBenchmarks
{
    private const int NIn = 2048, NOut = 5632;
    private byte[] _weights = [];
    private float[] _x = [], _y = [];
    private long _rowBytes;

    [Params(512, 256)]
    public int Bits { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        bool available = Bits == 512 ? System.Runtime.Intrinsics.Vector512.IsHardwareAccelerated && System.Runtime.Intrinsics.X86.Avx512F.IsSupported
            : System.Runtime.Intrinsics.X86.Avx2.IsSupported && System.Runtime.Intrinsics.X86.Fma.IsSupported;
        if (!available) throw new PlatformNotSupportedException($"no {Bits}-bit kernels on this CPU");
        var random = new Random(1);
        _weights = Quantize.Blocks(GgmlType.Q4_0, Enumerable.Range(0, NIn * NOut).Select(_ => (float)(random.NextDouble() - 0.5)).ToArray());
        _rowBytes = GgmlTypeInfo.RowBytes(GgmlType.Q4_0, NIn);
        _x = Enumerable.Range(0, NIn).Select(i => (float)Math.Sin(i)).ToArray();
        _y = new float[NOut];
    }

    [Benchmark(Baseline = true)]
    public void Previous()
    {
        fixed (byte* w = _weights)
        fixed (float* x = _x, y = _y)
            for (int o = 0; o < NOut; o += 4)
                if (Bits == 512) Quantized.Dot4RowsWidePrevious(GgmlType.Q4_0, w + o * _rowBytes, _rowBytes, x, NIn, y + o);
                else Quantized.Dot4RowsNarrowPrevious(GgmlType.Q4_0, w + o * _rowBytes, _rowBytes, x, NIn, y + o);
    }

    [Benchmark]
    public void Current()
    {
        fixed (byte* w = _weights)
        fixed (float* x = _x, y = _y)
            for (int o = 0; o < NOut; o += 4)
                if (Bits == 512) Quantized.Dot4RowsWide(GgmlType.Q4_0, w + o * _rowBytes, _rowBytes, x, NIn, y + o);
                else Quantized.Dot4RowsNarrow(GgmlType.Q4_0, w + o * _rowBytes, _rowBytes, x, NIn, y + o);
    }
}
