using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using NextToken.Gguf;
using NextToken.Kernels;
using NextToken.Tensors;

namespace NextToken.Bench;

/// <summary>
/// <c>--q8-activations</c> on K-quant rows, one thread, over a 2048 × 5632 matrix (TinyLlama-1.1B's
/// FFN shape) repeating the blocks llama.cpp's quantizer wrote: the exact 256-bit decode kernel
/// (<see cref="KQuantRows"/>, the baseline) against <see cref="KQuantActivations"/> — decode (one
/// input, its quantization included) and a prompt of 16 inputs (per call; divide by 16 per token) —
/// for Q2_K … Q6_K in the AVX2 (<c>vpmaddwd</c>), AVX-VNNI (<c>vpdpwssd</c>) and 512-bit (Q2_K, Q3_K, Q4_K, Q6_K) forms (decode takes its four rows one at a time:
/// <c>--alternate-q8k FILE</c> times it resident and from memory in cycles per super-block, <see cref="Q8KDecodeTiming"/>), and a 16-token prompt through
/// <see cref="MatMul"/> exact and quantized; each with AVX-512 on and off (AVX-VNNI off too). A
/// form the job lacks throws in setup, so it is reported, never timed wrongly.
/// </summary>
[Config(typeof(WidthConfig))]
public unsafe class KQuantActivationBenchmarks
{
    private sealed class WidthConfig : ManualConfig
    {
        public WidthConfig()
        {
            AddJob(Job.ShortRun.WithId("AVX-512"));
            AddJob(Job.ShortRun.WithEnvironmentVariables(new EnvironmentVariable("DOTNET_EnableAVX512", "0"), new EnvironmentVariable("DOTNET_EnableAVXVNNI", "0")).WithId("AVX2"));
        }
    }

    private const int NIn = 5632, NOut = 2048, Prompt = 16;
    private byte[] _weights = [];
    private float[] _x = [], _y = [], _sums = [], _scales = [];
    private sbyte[] _quants = [];
    private short[] _blockSums = [];
    private long _rowBytes;

    [Params(GgmlType.Q4_K, GgmlType.Q6_K, GgmlType.Q5_K, GgmlType.Q2_K, GgmlType.Q3_K)]
    public GgmlType Type { get; set; }

    [Params(KQuantForm.Avx2, KQuantForm.Vnni, KQuantForm.Wide)]
    public KQuantForm Form { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        if (!System.Runtime.Intrinsics.X86.Avx2.IsSupported || !System.Runtime.Intrinsics.X86.Fma.IsSupported)
            throw new PlatformNotSupportedException("the kernels need AVX2 and FMA");
        if (Form == KQuantForm.Vnni && !System.Runtime.Intrinsics.X86.AvxVnni.IsSupported) throw new PlatformNotSupportedException("no AVX-VNNI on this CPU");
        if (Form == KQuantForm.Wide && !System.Runtime.Intrinsics.X86.Avx512BW.IsSupported) throw new PlatformNotSupportedException("no AVX-512 BW on this CPU");
        _rowBytes = GgmlTypeInfo.RowBytes(Type, NIn);
        long bytes = _rowBytes * NOut;
        _weights = GC.AllocateUninitializedArray<byte>((int)bytes, pinned: true);
        using GgufFile gguf = GgufFile.Open(Corpus.Shared("fixtures", "models", "quant", $"llama-d256.{Type.ToString().ToLowerInvariant()}.gguf"));
        TensorData source = gguf.GetTensor(gguf.Tensors.First(t => t.Type == Type).Name);
        var stored = new ReadOnlySpan<byte>(source.Data, (int)source.ByteLength);
        for (long at = 0; at < bytes; at += stored.Length)
            stored[..(int)Math.Min(stored.Length, bytes - at)].CopyTo(_weights.AsSpan((int)at));
        _x = Enumerable.Range(0, Prompt * NIn).Select(i => (float)Math.Sin(i)).ToArray();
        _y = new float[Prompt * NOut];
        _sums = new float[NIn / 16];
        _quants = new sbyte[Prompt * NIn];
        _scales = new float[Prompt * NIn / 256];
        _blockSums = new short[Prompt * NIn / 16];
        for (int b = 0; b < Prompt; b++)
            KQuantActivations.Quantize(_x.AsSpan(b * NIn, NIn), _quants.AsSpan(b * NIn, NIn), _scales.AsSpan(b * NIn / 256, NIn / 256), _blockSums.AsSpan(b * NIn / 16, NIn / 16));
        Console.WriteLine($"// {Type}: {bytes / 1e6:F1} MB of weights, {Form} integer form");
    }

    [Benchmark(Baseline = true)]
    public void ExactDecode()
    {
        fixed (byte* w = _weights)
        fixed (float* x = _x, y = _y, sums = _sums)
        {
            KQuantRows.SubBlockSums(x, NIn, KQuantRows.SumWidth(Type), sums);
            for (int o = 0; o < NOut; o += 4) KQuantRows.Dot4(Type, false, w + o * _rowBytes, _rowBytes, 4, x, sums, NIn, y + o);
        }
    }

    [Benchmark]
    public void Q8Decode()
    {
        KQuantActivations.Quantize(_x.AsSpan(0, NIn), _quants, _scales, _blockSums);
        fixed (byte* w = _weights)
        fixed (sbyte* q = _quants)
        fixed (float* d = _scales, y = _y)
        fixed (short* s = _blockSums)
            for (int o = 0; o < NOut; o += 4) KQuantActivations.Dot4(Type, Form, w + o * _rowBytes, _rowBytes, 4, q, d, s, NIn / 256, y + o);
    }

    /// <summary>A 16-token prompt through <see cref="MatMul"/> on one thread, exact (the panel or tiled float path this CPU takes).</summary>
    [Benchmark]
    public void ExactPromptMatMul16()
    {
        fixed (byte* w = _weights)
            MatMul.Forward(new TensorData("w", Type, [NIn, NOut], w, _weights.Length), _x, Prompt, _y, 1);
    }

    /// <summary>The same with quantized activations (the AVX-VNNI form where the CPU has it, whatever <see cref="Form"/> says).</summary>
    [Benchmark]
    public void Q8PromptMatMul16()
    {
        fixed (byte* w = _weights)
            MatMul.Forward(new TensorData("w", Type, [NIn, NOut], w, _weights.Length), _x, Prompt, _y, 1, quantizeActivations: true);
    }

    /// <summary>16 inputs: four rows at a time, each row against the inputs four at a time (as <see cref="KQuantActivations.Rows"/>; 256-bit: AVX-VNNI where the CPU has it for <see cref="KQuantForm.Wide"/>).</summary>
    [Benchmark]
    public void Q8Prompt16()
    {
        fixed (byte* w = _weights)
        fixed (sbyte* q = _quants)
        fixed (float* d = _scales, y = _y)
        fixed (short* s = _blockSums)
            for (int o = 0; o < NOut; o += 4)
                for (int b = 0; b < Prompt; b += 4)
                    for (int r = 0; r < 4; r++)
                        KQuantActivations.Row4Inputs(Type, Form == KQuantForm.Vnni || (Form == KQuantForm.Wide && System.Runtime.Intrinsics.X86.AvxVnni.IsSupported), w + (o + r) * _rowBytes, q + b * NIn, d + b * NIn / 256, s + b * NIn / 16, NIn, NIn / 256, y + b * NOut + o + r, NOut);
    }
}

/// <summary>
/// <c>--q8-activations</c> prompts on Q4_K, one thread, a 128-token prompt against a 2048 × 5632
/// matrix (TinyLlama-1.1B's FFN shape) repeating llama.cpp-quantized blocks: today's row-by-row
/// kernel (<see cref="KQuantActivations.Rows"/>, the baseline; AVX-VNNI where the job has it) against
/// the eight-row interleaved copy (<see cref="InterleavedQ4K"/>, in the form the job has and in the
/// plain AVX2 form) and the exact float panels (<see cref="MatMul"/> without quantized
/// activations); each with AVX-512 on and off (AVX-VNNI off too). Activations are quantized in setup.
/// </summary>
[Config(typeof(WidthConfig))]
public unsafe class Q4KInterleavedBenchmarks
{
    private sealed class WidthConfig : ManualConfig
    {
        public WidthConfig()
        {
            AddJob(Job.ShortRun.WithId("AVX-512"));
            AddJob(Job.ShortRun.WithEnvironmentVariables(new EnvironmentVariable("DOTNET_EnableAVX512", "0"), new EnvironmentVariable("DOTNET_EnableAVXVNNI", "0")).WithId("AVX2"));
        }
    }

    private const int NIn = 5632, NOut = 2048, Batch = 128;
    private byte[] _weights = [];
    private float[] _x = [], _y = [], _scales = [];
    private sbyte[] _quants = [];
    private short[] _sums = [];
    private readonly InterleavedBlock32.Cache _cache = new();

    [GlobalSetup]
    public void Setup()
    {
        if (!InterleavedQ4K.IsSupported) throw new PlatformNotSupportedException("the kernels need AVX2 and FMA");
        long bytes = GgmlTypeInfo.RowBytes(GgmlType.Q4_K, NIn) * NOut;
        _weights = GC.AllocateUninitializedArray<byte>((int)bytes, pinned: true);
        using GgufFile gguf = GgufFile.Open(Corpus.Shared("fixtures", "models", "quant", "llama-d256.q4_k.gguf"));
        TensorData source = gguf.GetTensor(gguf.Tensors.First(t => t.Type == GgmlType.Q4_K).Name);
        var stored = new ReadOnlySpan<byte>(source.Data, (int)source.ByteLength);
        for (long at = 0; at < bytes; at += stored.Length)
            stored[..(int)Math.Min(stored.Length, bytes - at)].CopyTo(_weights.AsSpan((int)at));
        _x = Enumerable.Range(0, Batch * NIn).Select(i => (float)Math.Sin(i)).ToArray();
        _y = new float[Batch * NOut];
        _quants = new sbyte[Batch * NIn];
        _scales = new float[Batch * NIn / 256];
        _sums = new short[Batch * NIn / 16];
        for (int b = 0; b < Batch; b++)
            KQuantActivations.Quantize(_x.AsSpan(b * NIn, NIn), _quants.AsSpan(b * NIn, NIn), _scales.AsSpan(b * NIn / 256, NIn / 256), _sums.AsSpan(b * NIn / 16, NIn / 16));
        fixed (byte* w = _weights) _cache.Q4K(Weight(w)); // the copy is made once per model, not timed
    }

    [GlobalCleanup]
    public void Cleanup() => _cache.Dispose();

    private TensorData Weight(byte* data) => new("w", GgmlType.Q4_K, [NIn, NOut], data, _weights.Length);

    [Benchmark(Baseline = true)]
    public void RowByRow()
    {
        fixed (byte* w = _weights)
        fixed (sbyte* q = _quants)
        fixed (float* d = _scales, y = _y)
        fixed (short* s = _sums)
            KQuantActivations.Rows(Weight(w), q, d, s, y, Batch, 0, NOut);
    }

    [Benchmark]
    public void Interleaved()
    {
        fixed (byte* w = _weights)
        fixed (sbyte* q = _quants)
        fixed (float* d = _scales, y = _y)
        fixed (short* s = _sums)
            _cache.Q4K(Weight(w)).Multiply(q, d, s, Batch, y, NOut, 0, NOut / 8);
    }

    [Benchmark]
    public void InterleavedWithoutVnni()
    {
        fixed (byte* w = _weights)
        fixed (sbyte* q = _quants)
        fixed (float* d = _scales, y = _y)
        fixed (short* s = _sums)
            _cache.Q4K(Weight(w)).MultiplyWithoutVnni(q, d, s, Batch, y, NOut, 0, NOut / 8);
    }

    [Benchmark]
    public void ExactPanels()
    {
        fixed (byte* w = _weights)
            MatMul.Forward(Weight(w), _x, Batch, _y, 1);
    }
}
