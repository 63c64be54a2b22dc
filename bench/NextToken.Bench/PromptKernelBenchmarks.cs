using BenchmarkDotNet.Attributes;
using NextToken.Kernels;
using NextToken.Tensors;

namespace NextToken.Bench;

/// <summary>
/// Q4_K rows expanded to float32 for the exact prompt panels, 5632 rows of 2048 (a 1.1B gate matrix) in slices of 512
/// as the panels take them: the general chunk kernel (baseline, <see cref="Quantized.DequantizeRow"/>) against the
/// Q4_K kernels of <see cref="RowConvert"/> (lookup with AVX-512; run with DOTNET_EnableAVX512=0 for the AVX2 one).
/// </summary>
[MinColumn]
public unsafe class Q4KExpansionBenchmarks
{
    private const int NIn = 2048, NOut = 5632, Slice = 512, BlockBytes = 144;
    private byte[] _weights = [];
    private float[] _y = [];

    [GlobalSetup]
    public void Setup()
    {
        var random = new Random(1);
        _weights = new byte[NOut * NIn / 256 * BlockBytes];
        random.NextBytes(_weights);
        for (int b = 0; b < _weights.Length; b += BlockBytes)
        {
            BitConverter.TryWriteBytes(_weights.AsSpan(b), (Half)(random.NextDouble() * 0.01));
            BitConverter.TryWriteBytes(_weights.AsSpan(b + 2), (Half)(random.NextDouble() * 0.01));
        }
        _y = new float[6 * Slice];
    }

    [Benchmark(Baseline = true)]
    public void ChunkKernel()
    {
        int sliceBytes = Slice / 256 * BlockBytes, rowBytes = NIn / 256 * BlockBytes;
        for (int k0 = 0; k0 < NIn; k0 += Slice)
            for (int r = 0; r < NOut; r++)
                Quantized.DequantizeRow(GgmlType.Q4_K, _weights.AsSpan(r * rowBytes + k0 / 256 * BlockBytes, sliceBytes), _y.AsSpan(r % 6 * Slice, Slice));
    }

    [Benchmark]
    public void PanelExpansion()
    {
        int sliceBytes = Slice / 256 * BlockBytes, rowBytes = NIn / 256 * BlockBytes;
        for (int k0 = 0; k0 < NIn; k0 += Slice)
            for (int r = 0; r < NOut; r++)
                RowConvert.ToSingle(GgmlType.Q4_K, _weights.AsSpan(r * rowBytes + k0 / 256 * BlockBytes, sliceBytes), _y.AsSpan(r % 6 * Slice, Slice));
    }
}

/// <summary>
/// One exact prompt matmul through the panels, 128 inputs × 2048 × 5632 (a 1.1B gate matrix), Q4_K and Q4_0, at 1 and 2
/// threads: packing, expansion, tiles, turnaround and the chunk split together.
/// </summary>
[MinColumn]
public unsafe class PromptMatMulBenchmarks
{
    private const int NIn = 2048, NOut = 5632, Batch = 128;
    private byte[] _weights = [];
    private float[] _x = [], _y = [];

    [Params(GgmlType.Q4_K, GgmlType.Q4_0)]
    public GgmlType Type { get; set; }

    [Params(1, 2)]
    public int Threads { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var random = new Random(2);
        if (Type == GgmlType.Q4_K)
        {
            _weights = new byte[NOut * NIn / 256 * 144];
            random.NextBytes(_weights);
            for (int b = 0; b < _weights.Length; b += 144)
            {
                BitConverter.TryWriteBytes(_weights.AsSpan(b), (Half)(random.NextDouble() * 0.01));
                BitConverter.TryWriteBytes(_weights.AsSpan(b + 2), (Half)(random.NextDouble() * 0.01));
            }
        }
        else _weights = Quantize.Blocks(Type, Enumerable.Range(0, NIn * NOut).Select(_ => (float)(random.NextDouble() - 0.5)).ToArray());
        _x = Enumerable.Range(0, NIn * Batch).Select(i => (float)Math.Sin(i)).ToArray();
        _y = new float[NOut * Batch];
    }

    [Benchmark]
    public void Prompt()
    {
        fixed (byte* data = _weights)
            MatMul.Forward(new TensorData("w", Type, [NIn, NOut], data, _weights.Length), _x, Batch, _y, Threads);
    }
}
