using BenchmarkDotNet.Attributes;
using NextToken.Kernels;
using NextToken.Tensors;

namespace NextToken.Bench;

/// <summary>
/// GPT-2 small's MLP up-projection (768 → 3072) for one token (decode), 16 and 128 (prompt panels),
/// scalar reference as baseline; Q8_0/Q4_0 also with quantized activations.
/// </summary>
public unsafe class MatMulBenchmarks
{
    private const int NIn = 768, NOut = 3072;
    private byte[] _weights = [];
    private float[] _x = [], _y = [];

    [Params(GgmlType.F32, GgmlType.F16, GgmlType.BF16, GgmlType.Q8_0, GgmlType.Q4_0)]
    public GgmlType Type { get; set; }

    [Params(1, 2)]
    public int Threads { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var random = new Random(1);
        float[] values = Enumerable.Range(0, NIn * NOut).Select(_ => (float)(random.NextDouble() - 0.5)).ToArray();
        _weights = Type switch
        {
            GgmlType.F32 => System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()).ToArray(),
            GgmlType.F16 => System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.Select(v => (Half)v).ToArray().AsSpan()).ToArray(),
            GgmlType.BF16 => System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.Select(v => (ushort)(BitConverter.SingleToUInt32Bits(v) >> 16)).ToArray().AsSpan()).ToArray(),
            _ => NextToken.Kernels.Quantize.Blocks(Type, values),
        };
        _x = Enumerable.Range(0, NIn * Batch).Select(i => (float)Math.Sin(i)).ToArray();
        _y = new float[NOut * Batch];
    }

    [Params(1, 16, 128)]
    public int Batch { get; set; }

    [Benchmark(Baseline = true)]
    public void ScalarReference()
    {
        fixed (byte* data = _weights)
            MatMul.Reference(new TensorData("w", Type, [NIn, NOut], data, _weights.Length), _x, Batch, _y);
    }

    [Benchmark]
    public void Vectorized()
    {
        fixed (byte* data = _weights)
            MatMul.Forward(new TensorData("w", Type, [NIn, NOut], data, _weights.Length), _x, Batch, _y, Threads);
    }

    [Benchmark]
    public void QuantizedActivations()
    {
        fixed (byte* data = _weights)
            MatMul.Forward(new TensorData("w", Type, [NIn, NOut], data, _weights.Length), _x, Batch, _y, Threads, quantizeActivations: true);
    }
}
