using BenchmarkDotNet.Attributes;
using NextToken.Gguf;
using NextToken.Kernels;
using NextToken.Tensors;

namespace NextToken.Bench;

/// <summary>
/// Exact decode of 8 independent inputs (a server's streams) through GPT-2 small's MLP matrices
/// (768 → 3072 and 3072 → 768), one thread: the single-input four-row kernel run once per input,
/// as <c>MatMul.DotRows</c> did (the baseline; F32: <see cref="Dot.F32"/> per row and input; F16/BF16: <see cref="HalfRows.Eight"/>/<see cref="HalfRows.BrainEight"/> per input), against the batched kernel that unpacks each block
/// once for all inputs (bit-identical results), and <see cref="MatMul.Forward(in TensorData, ReadOnlySpan{float}, int, Span{float}, int, bool, InterleavedBlock32.Cache?, bool)"/>
/// with independent rows as the server calls it. Width: AVX-512 where present, else AVX2. K-quants:
/// the fixture's llama.cpp-quantized blocks repeated (each input's sub-block sums made in both).
/// </summary>
public unsafe class BatchedDecodeBenchmarks
{
    private byte[] _weights = [];
    private float[] _x = [], _y = [];
    private long _rowBytes;
    private bool _wide;
    private float[] _sums = [];
    private int _width;

    [Params(GgmlType.Q8_0, GgmlType.F32, GgmlType.F16, GgmlType.BF16, GgmlType.Q4_K, GgmlType.Q6_K)]
    public GgmlType Type { get; set; }

    [Params("768x3072", "3072x768")]
    public string Shape { get; set; } = "768x3072";

    /// <summary>8 streams; 1 is a lone decode step (F32: <see cref="BatchedDecode.F32Rows"/>' four rows per pass against <see cref="Dot.F32"/> row by row).</summary>
    [Params(1, 8)]
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
        _rowBytes = GgmlTypeInfo.RowBytes(Type, NIn);
        if (KQuantRows.Handles(Type))
        {
            // K-quant blocks as llama.cpp's quantizer wrote them (the fixture's), repeated to fill the matrix.
            _weights = new byte[_rowBytes * NOut];
            using GgufFile gguf = GgufFile.Open(Corpus.Shared("fixtures", "models", "quant", $"llama-d256.{Type.ToString().ToLowerInvariant()}.gguf"));
            TensorData source = gguf.GetTensor(gguf.Tensors.First(t => t.Type == Type).Name);
            var stored = new ReadOnlySpan<byte>(source.Data, (int)source.ByteLength);
            for (int at = 0; at < _weights.Length; at += stored.Length)
                stored[..Math.Min(stored.Length, _weights.Length - at)].CopyTo(_weights.AsSpan(at));
            _width = KQuantRows.SumWidth(Type);
            _sums = new float[Batch * NIn / _width];
        }
        else
            _weights = Type switch
            {
                GgmlType.F32 => System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()).ToArray(),
                GgmlType.F16 => System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.Select(v => (Half)v).ToArray().AsSpan()).ToArray(),
                GgmlType.BF16 => System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.Select(v => (ushort)(BitConverter.SingleToUInt32Bits(v) >> 16)).ToArray().AsSpan()).ToArray(),
                _ => Quantize.Blocks(Type, values),
            };
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
            if (_width != 0)
                fixed (float* sums = _sums)
                {
                    int perInput = nIn / _width;
                    for (int b = 0; b < Batch; b++) KQuantRows.SubBlockSums(x + b * nIn, nIn, _width, sums + b * perInput);
                    for (int o = 0; o < nOut; o += 4)
                        for (int b = 0; b < Batch; b++)
                            KQuantRows.Dot4(Type, _wide, w + o * _rowBytes, _rowBytes, 4, x + b * nIn, sums + b * perInput, nIn, y + b * nOut + o);
                }
            else if (Type == GgmlType.F32)
                for (int o = 0; o < nOut; o++) // the old DotRows: row by row, each input's Dot.F32
                    for (int b = 0; b < Batch; b++)
                        y[b * nOut + o] = Dot.F32(new ReadOnlySpan<float>((float*)w + (long)o * nIn, nIn), new ReadOnlySpan<float>(x + b * nIn, nIn));
            else if (Type == GgmlType.F16)
                for (int o = 0; o < nOut; o += 8) // eight rows per input, as DotRows ran F16 before HalfRows.Batch
                    for (int b = 0; b < Batch; b++)
                        HalfRows.Eight(_wide, (ushort*)w + (long)o * nIn, nIn, x + b * nIn, nIn, y + b * nOut + o);
            else if (Type == GgmlType.BF16)
                for (int o = 0; o < nOut; o += 8) // eight rows per input, as DotRows ran BF16 before HalfRows.BrainBatch
                    for (int b = 0; b < Batch; b++)
                        HalfRows.BrainEight(_wide, (ushort*)w + (long)o * nIn, nIn, x + b * nIn, nIn, y + b * nOut + o);
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
            if (_width != 0)
                fixed (float* sums = _sums)
                {
                    int perInput = nIn / _width;
                    for (int b = 0; b < Batch; b++) KQuantRows.SubBlockSums(x + b * nIn, nIn, _width, sums + b * perInput);
                    for (int o = 0; o < nOut; o += 4)
                        KQuantRows.Dot4Batch(Type, _wide, w + o * _rowBytes, _rowBytes, 4, x, sums, perInput, nIn, Batch, y + o, nOut);
                }
            else if (Type == GgmlType.F32) BatchedDecode.F32Rows((float*)w, nIn, x, y, Batch, nOut, 0, nOut);
            else if (Type == GgmlType.F16) HalfRows.Batch(_wide, (ushort*)w, nIn, nOut, x, nIn, Batch, y, nOut);
            else if (Type == GgmlType.BF16) HalfRows.BrainBatch(_wide, (ushort*)w, nIn, nOut, x, nIn, Batch, y, nOut);
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
