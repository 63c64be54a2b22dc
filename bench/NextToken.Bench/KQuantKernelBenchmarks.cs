using BenchmarkDotNet.Attributes;
using NextToken.Gguf;
using NextToken.Kernels;
using NextToken.Tensors;

namespace NextToken.Bench;

/// <summary>
/// The K-quant decode kernels alone, one thread, over a 2048 × 5632 matrix (TinyLlama-1.1B's FFN
/// shape) repeating the blocks llama.cpp's quantizer wrote: <see cref="KQuantRows"/> against the
/// generic four-row kernel it replaced (<see cref="ChunkedQuant"/>, the baseline), at each vector
/// width this CPU has (a width it lacks throws in setup, so it is reported, never timed wrongly).
/// </summary>
public unsafe class KQuantKernelBenchmarks
{
    private const int NIn = 5632, NOut = 2048;
    private byte[] _weights = [];
    private float[] _x = [], _y = [], _sums = [];
    private long _rowBytes;

    [Params(GgmlType.Q4_K, GgmlType.Q6_K, GgmlType.Q5_K, GgmlType.Q3_K, GgmlType.Q2_K)]
    public GgmlType Type { get; set; }

    [Params(512, 256)]
    public int Bits { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        bool available = Bits == 512 ? ChunkedQuant.Wide
            : System.Runtime.Intrinsics.X86.Avx2.IsSupported && System.Runtime.Intrinsics.X86.Fma.IsSupported;
        if (!available) throw new PlatformNotSupportedException($"no {Bits}-bit kernels on this CPU");
        _rowBytes = GgmlTypeInfo.RowBytes(Type, NIn);
        long bytes = _rowBytes * NOut;
        _weights = GC.AllocateUninitializedArray<byte>((int)bytes, pinned: true);
        using GgufFile gguf = GgufFile.Open(Corpus.Shared("fixtures", "models", "quant", $"llama-d256.{Type.ToString().ToLowerInvariant()}.gguf"));
        TensorData source = gguf.GetTensor(gguf.Tensors.First(t => t.Type == Type).Name);
        var stored = new ReadOnlySpan<byte>(source.Data, (int)source.ByteLength);
        for (long at = 0; at < bytes; at += stored.Length)
            stored[..(int)Math.Min(stored.Length, bytes - at)].CopyTo(_weights.AsSpan((int)at));
        _x = Enumerable.Range(0, NIn).Select(i => (float)Math.Sin(i)).ToArray();
        _y = new float[NOut];
        _sums = new float[NIn / 16];
        Console.WriteLine($"// {Type}: {bytes / 1e6:F1} MB of weights, {Bits}-bit kernels");
    }

    [Benchmark(Baseline = true)]
    public void Chunked()
    {
        fixed (byte* w = _weights)
        fixed (float* x = _x, y = _y)
            for (int o = 0; o < NOut; o += 4) ChunkedQuant.Dot4(Type, Bits == 512, w + o * _rowBytes, _rowBytes, x, NIn, y + o);
    }

    [Benchmark]
    public void KQuant()
    {
        fixed (byte* w = _weights)
        fixed (float* x = _x, y = _y, sums = _sums)
        {
            KQuantRows.SubBlockSums(x, NIn, KQuantRows.SumWidth(Type), sums);
            for (int o = 0; o < NOut; o += 4) KQuantRows.Dot4(Type, Bits == 512, w + o * _rowBytes, _rowBytes, 4, x, sums, NIn, y + o);
        }
    }
}
