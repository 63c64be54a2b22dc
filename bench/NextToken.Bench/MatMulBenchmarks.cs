using BenchmarkDotNet.Attributes;
using NextToken.Kernels;
using NextToken.Tensors;

namespace NextToken.Bench;

/// <summary>One decode-step matrix-vector product of GPT-2 small's MLP (768 → 3072), scalar reference as baseline.</summary>
public unsafe class MatMulBenchmarks
{
    private const int NIn = 768, NOut = 3072;
    private byte[] _weights = [];
    private float[] _x = [], _y = [];

    [Params(GgmlType.F32, GgmlType.F16, GgmlType.BF16)]
    public GgmlType Type { get; set; }

    [Params(1, 2)]
    public int Threads { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var random = new Random(1);
        int bytesPerValue = Type == GgmlType.F32 ? 4 : 2;
        _weights = new byte[NIn * NOut * bytesPerValue];
        for (int i = 0; i < NIn * NOut; i++)
        {
            float v = (float)(random.NextDouble() - 0.5);
            switch (Type)
            {
                case GgmlType.F32: BitConverter.TryWriteBytes(_weights.AsSpan(i * 4), v); break;
                case GgmlType.F16: BitConverter.TryWriteBytes(_weights.AsSpan(i * 2), (Half)v); break;
                default: BitConverter.TryWriteBytes(_weights.AsSpan(i * 2), (ushort)(BitConverter.SingleToUInt32Bits(v) >> 16)); break;
            }
        }
        _x = Enumerable.Range(0, NIn).Select(i => (float)Math.Sin(i)).ToArray();
        _y = new float[NOut];
    }

    [Benchmark(Baseline = true)]
    public void ScalarReference()
    {
        fixed (byte* data = _weights)
            MatMul.Reference(new TensorData("w", Type, [NIn, NOut], data, _weights.Length), _x, 1, _y);
    }

    [Benchmark]
    public void Vectorized()
    {
        fixed (byte* data = _weights)
            MatMul.Forward(new TensorData("w", Type, [NIn, NOut], data, _weights.Length), _x, 1, _y, Threads);
    }
}
