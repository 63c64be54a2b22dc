using BenchmarkDotNet.Attributes;
using NextToken.Kernels;
using NextToken.Tensors;

namespace NextToken.Bench;

/// <summary>
/// <c>--q8-activations</c> decode of the block-32 types beside Q4_0 (Q4_1, Q5_0, Q5_1, IQ4_NL, IQ4_XS): one token through a
/// 2048 × 5632 matrix (TinyLlama-1.1B's FFN shape), one thread, the exact float kernels (baseline) against the integer ones
/// (the activation's quantization included). Stored bytes are random with scales of a weight's size. AVX-512 machines run
/// the exact path at 512 bits; DOTNET_EnableAVX512=0 DOTNET_EnableAVXVNNI=0 gives the AVX2 comparison.
/// </summary>
[MinColumn]
public unsafe class QuantizedBlock32DecodeBenchmarks
{
    private const int NIn = 2048, NOut = 5632;
    private byte[] _weights = [];
    private float[] _x = [], _y = [];

    [Params(GgmlType.Q4_1, GgmlType.Q5_0, GgmlType.Q5_1, GgmlType.IQ4_NL, GgmlType.IQ4_XS)]
    public GgmlType Type { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        if (!QuantizedActivations.IsSupported(Type)) throw new PlatformNotSupportedException("no AVX2 on this CPU");
        var random = new Random(1);
        long rowBytes = GgmlTypeInfo.RowBytes(Type, NIn);
        _weights = new byte[rowBytes * NOut];
        random.NextBytes(_weights);
        int blockBytes = Type == GgmlType.IQ4_XS ? 136 : (int)(rowBytes / (NIn / 32));
        for (int at = 0; at < _weights.Length; at += blockBytes)
        {
            BitConverter.TryWriteBytes(_weights.AsSpan(at), (Half)((random.NextDouble() * 2 - 1) * 0.01));
            if (Type is GgmlType.Q4_1 or GgmlType.Q5_1) BitConverter.TryWriteBytes(_weights.AsSpan(at + 2), (Half)((random.NextDouble() * 2 - 1) * 0.1));
        }
        _x = Enumerable.Range(0, NIn).Select(i => (float)Math.Sin(i)).ToArray();
        _y = new float[NOut];
    }

    private TensorData Weight(byte* data) => new("w", Type, [NIn, NOut], data, _weights.Length);

    [Benchmark(Baseline = true)]
    public void Exact()
    {
        fixed (byte* data = _weights)
            MatMul.Forward(Weight(data), _x, 1, _y, threads: 1);
    }

    [Benchmark]
    public void Q8Activations()
    {
        fixed (byte* data = _weights)
            MatMul.Forward(Weight(data), _x, 1, _y, threads: 1, quantizeActivations: true);
    }
}
