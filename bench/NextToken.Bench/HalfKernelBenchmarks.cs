using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using System.Runtime.Intrinsics;
using NextToken.Kernels;
using NextToken.Tensors;

namespace NextToken.Bench;

/// <summary>
/// The float16 kernels alone, one thread, new against old, with AVX-512 and with AVX2 (a second job
/// runs with <c>DOTNET_EnableAVX512=0</c>): decode of a 2048 × 5632 matrix (TinyLlama-1.1B's FFN
/// shape, 23 MB: weight bytes / time = GB/s) by <see cref="HalfRows"/> (8 rows per group, the
/// conversion's 2¹¹² moved onto x, the inf/NaN check folded into the loop) against the four-row
/// kernels of <see cref="Dot"/> (a separate inf/NaN pass, the seven-operation conversion); and the
/// prompt path's expansion of those rows to float32 (<see cref="RowConvert"/>, fast conversion)
/// against the general vector conversion it used before; and bfloat16 decode
/// (<see cref="HalfRows.BrainEight"/>) against the row-by-row <see cref="Dot.BF16"/> (ratios are all
/// to the old float16 decode).
/// </summary>
[Config(typeof(WidthConfig))]
public unsafe class HalfKernelBenchmarks
{
    private sealed class WidthConfig : ManualConfig
    {
        public WidthConfig()
        {
            AddJob(Job.Default.WithId("AVX-512"));
            AddJob(Job.Default.WithEnvironmentVariables(new BenchmarkDotNet.Jobs.EnvironmentVariable("DOTNET_EnableAVX512", "0")).WithId("AVX2"));
        }
    }

    private const int NIn = 5632, NOut = 2048;
    private ushort[] _weights = [];
    private float[] _x = [], _y = [], _rows = [];

    [GlobalSetup]
    public void Setup()
    {
        if (!HalfRows.Wide && !HalfRows.Narrow) throw new PlatformNotSupportedException("no 256- or 512-bit kernels on this CPU");
        var random = new Random(1);
        _weights = GC.AllocateUninitializedArray<ushort>(NIn * NOut, pinned: true);
        for (int i = 0; i < _weights.Length; i++) _weights[i] = BitConverter.HalfToUInt16Bits((Half)(random.NextDouble() * 0.1 - 0.05));
        _x = Enumerable.Range(0, NIn).Select(i => (float)Math.Sin(i)).ToArray();
        _y = new float[NOut];
        _rows = new float[NIn];
        Console.WriteLine($"// {_weights.Length * 2 / 1e6:F1} MB of F16 weights; AVX-512 kernels {HalfRows.Wide}");
    }

    [Benchmark(Baseline = true)]
    public void DecodeOld()
    {
        bool wide = Vector512Kernels;
        fixed (ushort* w = _weights)
        fixed (float* x = _x, y = _y)
            for (int o = 0; o < NOut; o += 4)
            {
                if (wide) Dot.F16FourRows(w + (long)o * NIn, NIn, x, NIn, y + o);
                else Dot.F16FourRowsNarrow(w + (long)o * NIn, NIn, x, NIn, y + o);
            }
    }

    [Benchmark]
    public void DecodeNew()
    {
        bool wide = HalfRows.Wide;
        fixed (ushort* w = _weights)
        fixed (float* x = _x, y = _y)
            for (int o = 0; o < NOut; o += 8) HalfRows.Eight(wide, w + (long)o * NIn, NIn, x, NIn, y + o);
    }

    /// <summary>
    /// <see cref="DecodeNew"/> on rows known free of infinities and NaNs (<see cref="TensorData.HalvesAllFinite"/>): the kernel
    /// without its per-value check, as MatMul takes it for such a matrix. The matrix here stays in L3 and L2 on some CPUs, so
    /// the difference is the check's arithmetic; end to end see README, Speed (issue #13, seventeenth session).
    /// </summary>
    [Benchmark]
    public void DecodeNewKnownFinite()
    {
        bool wide = HalfRows.Wide;
        fixed (ushort* w = _weights)
        fixed (float* x = _x, y = _y)
            for (int o = 0; o < NOut; o += 8) HalfRows.Eight(wide, w + (long)o * NIn, NIn, x, NIn, y + o, finite: true);
    }

    /// <summary>The same bits read as bfloat16, row by row with <see cref="Dot.BF16"/> (the decode path's before).</summary>
    [Benchmark]
    public void DecodeBrainOld()
    {
        for (int o = 0; o < NOut; o++) _y[o] = Dot.BF16(_weights.AsSpan(o * NIn, NIn), _x);
    }

    [Benchmark]
    public void DecodeBrainNew()
    {
        bool wide = HalfRows.Wide;
        fixed (ushort* w = _weights)
        fixed (float* x = _x, y = _y)
            for (int o = 0; o < NOut; o += 8) HalfRows.BrainEight(wide, w + (long)o * NIn, NIn, x, NIn, y + o);
    }

    /// <summary>Every row expanded to float32 with the general conversion (the prompt path's before).</summary>
    [Benchmark]
    public void ExpandOld()
    {
        ref float target = ref System.Runtime.InteropServices.MemoryMarshal.GetArrayDataReference(_rows);
        for (int o = 0; o < NOut; o++)
        {
            ref ushort source = ref _weights[o * NIn];
            if (Vector512.IsHardwareAccelerated)
                for (int i = 0; i < NIn; i += 16)
                    Dot.HalfToSingle(Vector512.WidenLower(Vector512.Create(Vector256.LoadUnsafe(ref source, (nuint)i), default)))
                        .StoreUnsafe(ref target, (nuint)i);
            else
                for (int i = 0; i < NIn; i += 8)
                    Dot.HalfToSingle(Vector256.WidenLower(Vector256.Create(Vector128.LoadUnsafe(ref source, (nuint)i), default)))
                        .StoreUnsafe(ref target, (nuint)i);
        }
    }

    /// <summary>Every row expanded to float32 as the prompt path now does (<see cref="RowConvert.ToSingle"/>).</summary>
    [Benchmark]
    public void ExpandNew()
    {
        for (int o = 0; o < NOut; o++)
            RowConvert.ToSingle(GgmlType.F16, System.Runtime.InteropServices.MemoryMarshal.AsBytes(_weights.AsSpan(o * NIn, NIn)), _rows);
    }

    private static bool Vector512Kernels => Vector512.IsHardwareAccelerated && System.Runtime.Intrinsics.X86.Avx512F.IsSupported;
}
