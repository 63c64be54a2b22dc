using BenchmarkDotNet.Attributes;
using NextToken.Gguf;
using NextToken.Kernels;
using NextToken.Tensors;

namespace NextToken.Bench;

/// <summary>
/// Decode (one input row) through a 2048 × 5632 matrix, TinyLlama-1.1B's FFN shape, in every
/// quantized weight type, 1 and 2 threads. The matrix repeats the blocks of a fixture file that
/// llama.cpp's quantizer wrote in that type, so scales and values are realistic; the weight bytes
/// divided by the time give GB/s (the decode speed of a memory-bound model).
/// </summary>
public unsafe class WeightTypeBenchmarks
{
    private const int NIn = 5632, NOut = 2048;
    private byte[] _weights = [];
    private float[] _x = [], _y = [];

    [Params(GgmlType.Q8_0, GgmlType.Q4_0, GgmlType.Q4_1, GgmlType.Q5_0, GgmlType.Q5_1, GgmlType.IQ4_NL,
            GgmlType.Q2_K, GgmlType.Q3_K, GgmlType.Q4_K, GgmlType.Q5_K, GgmlType.Q6_K, GgmlType.IQ4_XS)]
    public GgmlType Type { get; set; }

    [Params(1, 2)]
    public int Threads { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        string file = Type switch
        {
            GgmlType.Q8_0 => "llama-d192.q4_k_m.gguf",
            GgmlType.Q4_0 => null!,
            _ => $"llama-d256.{Type.ToString().ToLowerInvariant()}.gguf",
        };
        long bytes = GgmlTypeInfo.RowBytes(Type, NIn) * NOut;
        _weights = GC.AllocateUninitializedArray<byte>((int)bytes, pinned: true);
        if (Type == GgmlType.Q4_0)
        {
            var random = new Random(1);
            float[] values = Enumerable.Range(0, NIn * NOut).Select(_ => (float)(random.NextDouble() - 0.5)).ToArray();
            NextToken.Kernels.Quantize.Blocks(Type, values).CopyTo(_weights, 0);
        }
        else
        {
            using GgufFile gguf = GgufFile.Open(Corpus.Shared("fixtures", "models", "quant", file));
            TensorData source = gguf.GetTensor(gguf.Tensors.First(t => t.Type == Type).Name);
            var stored = new ReadOnlySpan<byte>(source.Data, (int)source.ByteLength);
            for (long at = 0; at < bytes; at += stored.Length)
                stored[..(int)Math.Min(stored.Length, bytes - at)].CopyTo(_weights.AsSpan((int)at));
        }
        _x = Enumerable.Range(0, NIn).Select(i => (float)Math.Sin(i)).ToArray();
        _y = new float[NOut];
        Console.WriteLine($"// {Type}: {bytes / 1e6:F1} MB of weights; AVX-512 {System.Runtime.Intrinsics.Vector512.IsHardwareAccelerated}, AVX2 {System.Runtime.Intrinsics.X86.Avx2.IsSupported}");
    }

    [Benchmark]
    public void Decode()
    {
        fixed (byte* data = _weights)
            MatMul.Forward(new TensorData("w", Type, [NIn, NOut], data, _weights.Length), _x, 1, _y, Threads);
    }
}
