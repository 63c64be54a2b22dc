using BenchmarkDotNet.Attributes;
using NextToken.Kernels;
using NextToken.Tensors;

namespace NextToken.Bench;

/// <summary>
/// Exact decode of 8 independent inputs (a server's streams) through GPT-2 small's MLP matrices
/// (768 → 3072 and 3072 → 768), one thread: the single-input four-row kernel run once per input,
/// as <c>MatMul.DotRows</c> did (the baseline; F32: <see cref="Dot.F32"/> per row and input), against the batched kernel that unpacks each block
/// once for all inputs (bit-identical results), and <see cref="MatMul.Forward(in TensorData, ReadOnlySpan{float}, int, Span{float}, int, bool, InterleavedQ4_0.Cache?, bool)"/>
/// with independent rows as the server calls it. Width: AVX-512 where present, else AVX2.
/// </summary>
public unsafe class BatchedDecodeBenchmarks
{
    private byte[] _weights = [];
    private float[] _x = [], _y = [];
    private long _rowBytes;
    private bool _wide;

    [Params(GgmlType.Q8_0, GgmlType.F32)]
    public GgmlType Type { get; set; }

    [Params("768x3072", "3072x768")]
    public string Shape { get; set; } = "768x3072";

    [Params(8)]
    public int Batch { get; set; }

    private int NIn => int.Parse(Shape.Split('x')[0]);
    private int NOut => int.Parse(Shape.Split('x')[1]);

    [GlobalSetup]
    public void Setup()
    {
        _wide = System.Runtime.Intrinsics.Vector512.IsHardwareAccelerated && System.Runtime.Intrinsics.X86.Avx512F.IsSupported;
        if (!_wide && !(System.Runtime.Intrinsics.X86.Avx2.IsSupported && System.Runtime.Intrinsics.X86.Fma.IsSupported))
            throw new PlatformNotSupportedException("no AVX-512 or AVX2+FMA decode kernels on this CPU");
        var random = new Random(1);
        float[] values = Enumerable.Range(0, NIn * NOut).Select(_ => (float)(random.NextDouble() - 0.5)).ToArray();
        _weights = Type == GgmlType.F32 ? System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()).ToArray() : Quantize.Blocks(Type, values);
        _rowBytes = GgmlTypeInfo.RowBytes(Type, NIn);
        _x = Enumerable.Range(0, NIn * Batch).Select(i => (float)Math.Sin(i)).ToArray();
        _y = new float[NOut * Batch];
        Console.WriteLine($"// {Type} {NIn}→{NOut}, batch {Batch}, {(_wide ? "AVX-512" : "AVX2")}");
    }

    [Benchmark(Baseline = true)]
    public void PerInput()
    {
        int nIn = NIn, nOut = NOut;
        fixed (byte* w = _weights)
        fixed (float* x = _x, y = _y)
            if (Type == GgmlType.F32)
                for (int o = 0; o < nOut; o++) // the old DotRows: row by row, each input's Dot.F32
                    for (int b = 0; b < Batch; b++)
                        y[b * nOut + o] = Dot.F32(new ReadOnlySpan<float>((float*)w + (long)o * nIn, nIn), new ReadOnlySpan<float>(x + b * nIn, nIn));
            else
                for (int o = 0; o < nOut; o += 4)
                    for (int b = 0; b < Batch; b++)
                        if (_wide) Quantized.Dot4RowsWide(Type, w + o * _rowBytes, _rowBytes, x + b * nIn, nIn, y + b * nOut + o);
                        else Quantized.Dot4RowsNarrow(Type, w + o * _rowBytes, _rowBytes, x + b * nIn, nIn, y + b * nOut + o);
    }

    [Benchmark]
    public void Batched()
    {
        int nIn = NIn, nOut = NOut;
        fixed (byte* w = _weights)
        fixed (float* x = _x, y = _y)
            if (Type == GgmlType.F32) BatchedDecode.F32Rows((float*)w, nIn, x, y, Batch, nOut, 0, nOut);
            else
                for (int o = 0; o < nOut; o += 4)
                    Quantized.Dot4RowsBatch(Type, _wide, w + o * _rowBytes, _rowBytes, x, nIn, Batch, y + o, nOut);
    }

    [Benchmark]
    public void ForwardIndependentRows()
    {
        fixed (byte* data = _weights)
            MatMul.Forward(new TensorData("w", Type, [NIn, NOut], data, _weights.Length), _x, Batch, _y, 1, independentRows: true);
    }
}
