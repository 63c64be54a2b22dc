using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using NextToken.Gguf;
using NextToken.Kernels;
using NextToken.Tensors;
using Xunit.Abstractions;

namespace NextToken.Tests;

/// <summary>
/// The Q4_0/Q8_0 kernels of issue #13 at each vector width against the scalar reference: every
/// weight dequantized element by element (<see cref="ScalarReference.DequantizeElement"/>) and
/// multiplied in float64. A width this CPU (or the DOTNET_Enable* switches) lacks reports Skipped.
/// </summary>
public unsafe class Q4KernelTests(ITestOutputHelper output)
{
    private static bool HasWide => Vector512.IsHardwareAccelerated && Avx512F.IsSupported;
    private static bool HasNarrow => Avx2.IsSupported && Fma.IsSupported;

    /// <summary>y[t, r] = Σ_i dequantized(w[r, i]) · x[t, i] in float64, one element at a time, and Σ|terms| for the tolerance.</summary>
    private static (double[] Values, double[] Magnitudes) Reference(GgmlType type, byte[] stored, int nIn, int nOut, float[] x, int nBatch)
    {
        GgmlTypeInfo.TryGetLayout(type, out int blockSize, out int blockBytes);
        long rowBytes = GgmlTypeInfo.RowBytes(type, nIn);
        var row = new double[nIn];
        var values = new double[nBatch * nOut];
        var magnitudes = new double[nBatch * nOut];
        for (int r = 0; r < nOut; r++)
        {
            for (int i = 0; i < nIn; i++)
                row[i] = ScalarReference.DequantizeElement(type, stored.AsSpan((int)(r * rowBytes + i / blockSize * blockBytes), blockBytes), i % blockSize);
            for (int t = 0; t < nBatch; t++)
                for (int i = 0; i < nIn; i++)
                {
                    values[t * nOut + r] += row[i] * x[t * nIn + i];
                    magnitudes[t * nOut + r] += Math.Abs(row[i] * x[t * nIn + i]);
                }
        }
        return (values, magnitudes);
    }

    private static (byte[] Stored, float[] X) RandomCase(GgmlType type, int nIn, int nOut, int nBatch, int seed)
    {
        var random = new Random(seed);
        byte[] stored = Quantize.Blocks(type, Enumerable.Range(0, nIn * nOut).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray());
        float[] x = Enumerable.Range(0, nBatch * nIn).Select(_ => (float)(random.NextDouble() * 6 - 3)).ToArray();
        return (stored, x);
    }

    [SkippableTheory]
    [InlineData(512, GgmlType.Q4_0, 64)]
    [InlineData(512, GgmlType.Q4_0, 2048)]
    [InlineData(512, GgmlType.Q8_0, 768)]
    [InlineData(256, GgmlType.Q4_0, 64)]
    [InlineData(256, GgmlType.Q4_0, 2048)]
    [InlineData(256, GgmlType.Q8_0, 768)]
    public void FourRowDecode_EachWidth_MatchesScalarReference(int bits, GgmlType type, int nIn)
    {
        Skip.IfNot(bits == 512 ? HasWide : HasNarrow, $"a {bits}-bit kernel; this CPU (or DOTNET_EnableAVX512=0 / DOTNET_EnableAVX2=0) has none");
        const int nOut = 24;
        (byte[] stored, float[] x) = RandomCase(type, nIn, nOut, 1, nIn + bits);
        (double[] expected, double[] magnitude) = Reference(type, stored, nIn, nOut, x, 1);
        var y = new float[nOut];
        long rowBytes = GgmlTypeInfo.RowBytes(type, nIn);
        fixed (byte* w = stored)
        fixed (float* xp = x, yp = y)
            for (int o = 0; o < nOut; o += 4)
                if (bits == 512) Quantized.Dot4RowsWide(type, w + o * rowBytes, rowBytes, xp, nIn, yp + o);
                else Quantized.Dot4RowsNarrow(type, w + o * rowBytes, rowBytes, xp, nIn, yp + o);
        if (bits == 256 && type == GgmlType.Q4_0)
        {
            // The matmul's form with the offset terms made once per call: the same arithmetic, so the same bits.
            var given = new float[nOut];
            var offsets = new float[nIn / 4];
            fixed (byte* w = stored)
            fixed (float* xp = x, yp = given, op = offsets)
            {
                Quantized.Q4_0Offsets(xp, nIn, op);
                for (int o = 0; o < nOut; o += 4) Quantized.Dot4RowsNarrowQ4_0(w + o * rowBytes, rowBytes, xp, op, nIn, yp + o);
            }
            Assert.Equal(y, given);
            // The kernel the matmul takes: nibbles masked in place against x placed and scaled by PrepareQ4_0 (same tolerance below).
            var placed = new float[nOut];
            var prepared = new float[nIn / 32 * Quantized.Q4_0PreparedFloats];
            fixed (byte* w = stored)
            fixed (float* xp = x, yp = placed, pp = prepared)
            {
                Assert.True(Quantized.PrepareQ4_0(xp, nIn, pp));
                for (int o = 0; o < nOut; o += 4) Quantized.Dot4RowsNarrowQ4_0Placed(w + o * rowBytes, rowBytes, pp, nIn, yp + o);
            }
            double worstPlaced = 0;
            for (int r = 0; r < nOut; r++)
            {
                double difference = Math.Abs(placed[r] - expected[r]);
                worstPlaced = Math.Max(worstPlaced, difference);
                Assert.True(difference <= 1e-6 * magnitude[r], $"placed, row {r}: {placed[r]} vs {expected[r]} (|Δ| {difference:E2}, Σ|terms| {magnitude[r]:E2})");
            }
            output.WriteLine($"Q4_0 AVX2 placed-nibble kernel, {nOut}×{nIn}: max |Δ| {worstPlaced:E2}");
        }
        double worst = 0, worstRelative = 0;
        for (int r = 0; r < nOut; r++)
        {
            double difference = Math.Abs(y[r] - expected[r]);
            worst = Math.Max(worst, difference);
            worstRelative = Math.Max(worstRelative, difference / magnitude[r]);
            Assert.True(difference <= 1e-6 * magnitude[r], $"row {r}: {y[r]} vs {expected[r]} (|Δ| {difference:E2}, Σ|terms| {magnitude[r]:E2})");
        }
        output.WriteLine($"{type} {bits}-bit four-row decode, {nOut}×{nIn}: max |Δ| {worst:E2}, max |Δ|/Σ|terms| {worstRelative:E2} (tolerance 1e-6)");
    }

    /// <summary>The AVX2 row expansion of the exact prompt path: every block of the fixtures, bit for bit the scalar reference.</summary>
    [SkippableTheory]
    [InlineData("gpt2-tiny.q4_0.gguf", GgmlType.Q4_0)]
    [InlineData("gpt2-tiny.q8_0.gguf", GgmlType.Q8_0)]
    [InlineData("llama-tiny.q8_0.gguf", GgmlType.Q8_0)]
    public void DequantizeRowNarrow_EveryBlockOfFixture_EqualsScalarReference(string file, GgmlType type)
    {
        Skip.IfNot(HasNarrow, "an AVX2 kernel; this CPU (or DOTNET_EnableAVX2=0) has none");
        using var gguf = GgufFile.Open(Fixtures.Model(file));
        long blocks = 0;
        foreach (GgufTensorInfo info in gguf.Tensors.Where(t => t.Type == type))
        {
            TensorData tensor = gguf.GetTensor(info.Name);
            var row = new float[tensor.RowLength];
            for (int r = 0; r < tensor.RowCount; r++)
            {
                fixed (float* y = row)
                    Quantized.DequantizeRowNarrow(type, tensor.Data + r * tensor.RowBytes, row.Length / 32, y);
                ReadOnlySpan<byte> bytes = tensor.Row(r);
                int blockBytes = type == GgmlType.Q4_0 ? 18 : 34;
                for (int b = 0; b < row.Length / 32; b++, blocks++)
                    for (int i = 0; i < 32; i++)
                    {
                        float expected = ScalarReference.DequantizeElement(type, bytes.Slice(b * blockBytes, blockBytes), i);
                        if (expected != row[b * 32 + i]) Assert.Fail($"{info.Name} row {r} block {b} value {i}: {row[b * 32 + i]}, reference {expected}");
                    }
            }
        }
        Assert.True(blocks > 0, $"{file} has no {type} blocks");
        output.WriteLine($"{file}: {blocks} {type} blocks expanded by the AVX2 kernel, all equal to the scalar reference (max |Δ| 0)");
    }

    /// <summary>
    /// The exact prompt path (panels of expanded rows) on a batch of 20 and 37 rows, against the
    /// scalar reference, on whatever width this process dispatches to.
    /// </summary>
    [Theory]
    [InlineData(GgmlType.Q4_0)]
    [InlineData(GgmlType.Q8_0)]
    public void Prompt_PanelPath_MatchesScalarReference(GgmlType type)
    {
        const int nIn = 1024, nOut = 37, nBatch = 20;
        (byte[] stored, float[] x) = RandomCase(type, nIn, nOut, nBatch, 20);
        (double[] expected, double[] magnitude) = Reference(type, stored, nIn, nOut, x, nBatch);
        double worst = 0;
        fixed (byte* data = stored)
            foreach (int threads in new[] { 1, 2 })
            {
                var y = new float[nBatch * nOut];
                MatMul.Forward(new TensorData("w", type, [nIn, nOut], data, stored.Length), x, nBatch, y, threads);
                for (int i = 0; i < y.Length; i++)
                {
                    worst = Math.Max(worst, Math.Abs(y[i] - expected[i]));
                    Assert.True(Math.Abs(y[i] - expected[i]) <= 1e-6 * magnitude[i], $"input {i / nOut} row {i % nOut}, {threads} threads: {y[i]} vs {expected[i]}");
                }
            }
        output.WriteLine($"{type} prompt {nBatch}×{nIn}×{nOut} ({Width}): max |Δ| {worst:E2}");
    }

    /// <summary>
    /// The matmul as the model calls it for one token, on every Q4_0/Q8_0 matrix of the fixtures and
    /// on a matrix of 37 rows (9 groups of four and one row alone), on whatever width this process dispatches to.
    /// </summary>
    [Theory]
    [InlineData("gpt2-tiny.q4_0.gguf", GgmlType.Q4_0)]
    [InlineData("gpt2-tiny.q8_0.gguf", GgmlType.Q8_0)]
    [InlineData("llama-tiny.q8_0.gguf", GgmlType.Q8_0)]
    public void Decode_FixtureMatrices_MatchScalarReference(string file, GgmlType type)
    {
        using var gguf = GgufFile.Open(Fixtures.Model(file));
        var random = new Random(11);
        double worst = 0, worstRelative = 0;
        int matrices = 0;
        foreach (GgufTensorInfo info in gguf.Tensors.Where(t => t.Type == type))
        {
            TensorData tensor = gguf.GetTensor(info.Name);
            float[] x = Enumerable.Range(0, tensor.RowLength).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
            byte[] stored = new ReadOnlySpan<byte>(tensor.Data, (int)tensor.ByteLength).ToArray();
            (double[] expected, double[] magnitude) = Reference(type, stored, tensor.RowLength, tensor.RowCount, x, 1);
            var y = new float[tensor.RowCount];
            MatMul.Forward(tensor, x, 1, y, threads: 1);
            for (int r = 0; r < y.Length; r++)
            {
                double difference = Math.Abs(y[r] - expected[r]);
                worst = Math.Max(worst, difference);
                worstRelative = Math.Max(worstRelative, difference / magnitude[r]);
                Assert.True(difference <= 1e-6 * magnitude[r], $"{info.Name} row {r}: {y[r]} vs {expected[r]}");
            }
            matrices++;
        }
        Assert.True(matrices > 0, $"{file} has no {type} matrix");
        output.WriteLine($"{file}: {matrices} {type} matrices decoded ({Width}), max |Δ| {worst:E2}, max |Δ|/Σ|terms| {worstRelative:E2} (tolerance 1e-6)");
    }

    /// <summary>
    /// The placed-nibble AVX2 Q4_0 kernel scales x by down to 2⁻²⁸, exact only while the result is a
    /// normal float: an input holding a nonzero |x| below 2⁻⁹⁸ must take the shifting kernel
    /// (<see cref="Quantized.PrepareQ4_0"/> says so), 2⁻⁹⁸ itself and zeros not. Through the matmul,
    /// a batch mixing such inputs gives each input the bits it gets alone, within the scalar reference's tolerance.
    /// </summary>
    [SkippableFact]
    public void Decode_Q4_0_TinyInputs_TakeTheShiftingKernel_BatchEqualsLone()
    {
        Skip.IfNot(HasNarrow, "an AVX2 kernel; this CPU (or DOTNET_EnableAVX2=0) has none");
        const int nIn = 256, nOut = 12, nBatch = 3;
        (byte[] stored, float[] x) = RandomCase(GgmlType.Q4_0, nIn, nOut, nBatch, 98);
        for (int i = 0; i < nIn; i += 7) x[i] = 0;
        x[5] = MathF.ScaleB(1, -98); x[6] = -MathF.ScaleB(1, -98); // input 0: smallest exactly scalable values
        x[nIn + 40] = 1e-35f; x[nIn + 41] = -float.Epsilon; // input 1: values x·2^-28 would round
        var prepared = new float[nIn / 32 * Quantized.Q4_0PreparedFloats];
        fixed (float* xp = x, pp = prepared)
        {
            Assert.True(Quantized.PrepareQ4_0(xp, nIn, pp), "zeros and ±2^-98 scale exactly");
            Assert.False(Quantized.PrepareQ4_0(xp + nIn, nIn, pp), "1e-35 and the smallest subnormal do not");
            Assert.True(Quantized.PrepareQ4_0(xp + 2 * nIn, nIn, pp));
        }
        (double[] expected, double[] magnitude) = Reference(GgmlType.Q4_0, stored, nIn, nOut, x, nBatch);
        var batched = new float[nBatch * nOut];
        var lone = new float[nBatch * nOut];
        double worst = 0;
        fixed (byte* data = stored)
        {
            var weight = new TensorData("w", GgmlType.Q4_0, [nIn, nOut], data, stored.Length);
            MatMul.Forward(weight, x, nBatch, batched, threads: 1);
            for (int t = 0; t < nBatch; t++)
                MatMul.Forward(weight, x.AsSpan(t * nIn, nIn), 1, lone.AsSpan(t * nOut, nOut), threads: 1);
        }
        Assert.Equal(lone, batched);
        for (int i = 0; i < batched.Length; i++)
        {
            worst = Math.Max(worst, Math.Abs(batched[i] - expected[i]));
            Assert.True(Math.Abs(batched[i] - expected[i]) <= 1e-6 * magnitude[i], $"input {i / nOut} row {i % nOut}: {batched[i]} vs {expected[i]}");
        }
        output.WriteLine($"Q4_0 decode with tiny inputs ({Width}): batch equals lone, max |Δ| {worst:E2}");
    }

    [Theory]
    [InlineData(GgmlType.Q4_0, 1)]
    [InlineData(GgmlType.Q4_0, 3)]
    [InlineData(GgmlType.Q8_0, 1)]
    [InlineData(GgmlType.Q8_0, 3)]
    public void Decode_RowsNotAMultipleOfTheGroup_MatchScalarReference(GgmlType type, int nBatch)
    {
        const int nIn = 320, nOut = 37;
        (byte[] stored, float[] x) = RandomCase(type, nIn, nOut, nBatch, 37 * nBatch);
        (double[] expected, double[] magnitude) = Reference(type, stored, nIn, nOut, x, nBatch);
        double worst = 0;
        fixed (byte* data = stored)
            foreach (int threads in new[] { 1, 2 })
            {
                var y = new float[nBatch * nOut];
                MatMul.Forward(new TensorData("w", type, [nIn, nOut], data, stored.Length), x, nBatch, y, threads);
                for (int i = 0; i < y.Length; i++)
                {
                    worst = Math.Max(worst, Math.Abs(y[i] - expected[i]));
                    Assert.True(Math.Abs(y[i] - expected[i]) <= 1e-6 * magnitude[i], $"input {i / nOut} row {i % nOut}, {threads} threads: {y[i]} vs {expected[i]}");
                }
            }
        output.WriteLine($"{type} {nBatch}×{nIn}×{nOut} ({Width}): max |Δ| {worst:E2}");
    }

    /// <summary>
    /// The repacked Q4_0 prompt kernel for <c>--q8-activations</c> with plain AVX2 (vpmaddubsw +
    /// vpmaddwd, no VNNI), called directly so it runs on a VNNI CPU too: it must give the row-by-row
    /// integer product (<see cref="QuantizedActivations.Dot(GgmlType, ReadOnlySpan{byte}, ReadOnlySpan{sbyte}, ReadOnlySpan{float}, ReadOnlySpan{int})"/>)
    /// up to float rounding (the sums are added in another order; 1e-4·(1 + |y|) as the VNNI kernel's test), for tiles of four positions and single positions.
    /// </summary>
    [SkippableTheory]
    [InlineData(4, 64, 16)]
    [InlineData(7, 96, 40)]
    [InlineData(21, 768, 64)]
    public void InterleavedQ4_0WithoutVnni_EqualsTheRowByRowIntegerProduct(int nBatch, int nIn, int nOut)
    {
        Skip.IfNot(HasNarrow, "an AVX2 kernel; this CPU (or DOTNET_EnableAVX2=0) has none");
        (byte[] stored, float[] x) = RandomCase(GgmlType.Q4_0, nIn, nOut, nBatch, nOut + 1);
        int blocks = nIn / 32;
        (sbyte[] quants, float[] scales, int[] sums) = InterleavedBlock32Tests.QuantizeEach(x, nBatch, nIn);
        using var cache = new InterleavedBlock32.Cache();
        var y = new float[nBatch * nOut];
        double worst = 0;
        fixed (byte* data = stored)
        fixed (sbyte* q = quants)
        fixed (float* d = scales, yp = y)
        fixed (int* s = sums)
        {
            var weight = new TensorData("w", GgmlType.Q4_0, [nIn, nOut], data, stored.Length);
            cache.For(weight).MultiplyWithoutVnni(q, d, s, nBatch, yp, nOut, 0, nOut / 8);
            for (int t = 0; t < nBatch; t++)
                for (int r = 0; r < nOut; r++)
                {
                    float expected = QuantizedActivations.Dot(GgmlType.Q4_0, weight.Row(r), quants.AsSpan(t * nIn, nIn), scales.AsSpan(t * blocks, blocks), sums.AsSpan(t * blocks, blocks));
                    worst = Math.Max(worst, Math.Abs(y[t * nOut + r] - expected));
                    Assert.True(Math.Abs(y[t * nOut + r] - expected) <= 1e-4 * (1 + Math.Abs(expected)), $"position {t} row {r}: {y[t * nOut + r]} vs {expected}");
                }
        }
        output.WriteLine($"AVX2 interleaved Q4_0, {nBatch}×{nIn}×{nOut}: max |Δ| {worst:E2} against the row-by-row integer product");
    }

    /// <summary>
    /// <c>--q8-activations</c> decode (four rows at a time, 37 rows so one is left alone): each
    /// output equals Σ_b d_w·d_x·Σ w_q·x_q computed here in float64 from the stored integers and
    /// the activation's own quantization (the integer part is exact, only the float sum may differ).
    /// </summary>
    [SkippableTheory]
    [InlineData(GgmlType.Q4_0)]
    [InlineData(GgmlType.Q8_0)]
    public void QuantizedActivationDecode_EqualsTheIntegerProduct(GgmlType type)
    {
        Skip.IfNot(QuantizedActivations.IsSupported(type), "integer kernels need AVX2");
        const int nIn = 768, nOut = 37;
        (byte[] stored, float[] x) = RandomCase(type, nIn, nOut, 1, 41);
        int blocks = nIn / 32, blockBytes = type == GgmlType.Q4_0 ? 18 : 34;
        var quants = new sbyte[nIn];
        var scales = new float[blocks];
        var sums = new int[blocks];
        QuantizedActivations.Quantize(x, quants, scales, sums);
        var y = new float[nOut];
        fixed (byte* data = stored)
            MatMul.Forward(new TensorData("w", type, [nIn, nOut], data, stored.Length), x, 1, y, threads: 1, quantizeActivations: true);
        double worst = 0;
        for (int r = 0; r < nOut; r++)
        {
            double expected = 0, magnitude = 0;
            for (int b = 0; b < blocks; b++)
            {
                int at = r * blocks * blockBytes + b * blockBytes;
                double d = (double)BitConverter.UInt16BitsToHalf((ushort)(stored[at] | stored[at + 1] << 8)) * scales[b];
                long dot = 0;
                for (int i = 0; i < 32; i++)
                {
                    int w = type == GgmlType.Q8_0 ? (sbyte)stored[at + 2 + i] : (i < 16 ? stored[at + 2 + i] & 0x0F : stored[at + 2 + i - 16] >> 4) - 8;
                    dot += w * quants[b * 32 + i];
                }
                expected += d * dot;
                magnitude += Math.Abs(d * dot);
            }
            worst = Math.Max(worst, Math.Abs(y[r] - expected));
            Assert.True(Math.Abs(y[r] - expected) <= 1e-6 * magnitude + 1e-6, $"row {r}: {y[r]} vs {expected}");
        }
        output.WriteLine($"{type} --q8-activations decode 1×{nIn}×{nOut} ({(AvxVnni.IsSupported ? "VNNI" : "AVX2")}): max |Δ| {worst:E2} against the float64 sum of integer products");
    }

    /// <summary>
    /// Under the AVX2 emulation (DOTNET_EnableAVX512=0 and DOTNET_EnableAVXVNNI=0), the process sees
    /// a plain AVX2 + FMA CPU: no AVX-512, no VNNI — so the kernels above run their AVX2 paths.
    /// </summary>
    [SkippableFact]
    public void AvxEmulation_SwitchesOffAvx512AndVnni()
    {
        Skip.IfNot(Environment.GetEnvironmentVariable("DOTNET_EnableAVX512") == "0" && Environment.GetEnvironmentVariable("DOTNET_EnableAVXVNNI") == "0",
            "runs under the AVX2 emulation only (DOTNET_EnableAVX512=0 DOTNET_EnableAVXVNNI=0)");
        Assert.False(Vector512.IsHardwareAccelerated);
        Assert.False(Avx512F.IsSupported);
        Assert.False(AvxVnni.IsSupported);
        Assert.False(Avx512Vbmi.IsSupported);
        output.WriteLine($"emulated: AVX2 {Avx2.IsSupported}, FMA {Fma.IsSupported}, AVX-VNNI {AvxVnni.IsSupported}, AVX-512F {Avx512F.IsSupported}");
    }

    /// <summary>
    /// Zen 4's split 512-bit operations steer K-quant decode to the 256-bit plane kernels; only a process that runs AVX-512
    /// and only an AMD family 19h CPU may report them (an AVX2 process, Zen 5 and Intel parts never do).
    /// </summary>
    [SkippableFact]
    public void SplitsWideVectors_OnlyZen4WithAvx512()
    {
        Skip.If(Environment.GetEnvironmentVariable("NEXTTOKEN_SPLIT_WIDE") is "0" or "1", "the detection is overridden by NEXTTOKEN_SPLIT_WIDE");
        (int family, bool amd) = Processor();
        Assert.Equal(Vector512.IsHardwareAccelerated && amd && family == 0x19, CpuInfo.SplitsWideVectors);
        output.WriteLine($"family {family:X}h, AMD {amd}, 512-bit vectors {Vector512.IsHardwareAccelerated}: splits wide vectors {CpuInfo.SplitsWideVectors}");
    }

    /// <summary>
    /// The streaming decode kernels prefetch into L2 on AMD family 19h (Zen 3, Zen 4) whatever width the process runs, and
    /// into L1 everywhere else (Zen 5, Intel).
    /// </summary>
    [SkippableFact]
    public void PrefetchesToL2_OnlyAmdFamily19h()
    {
        Skip.If(Environment.GetEnvironmentVariable("NEXTTOKEN_PREFETCH_L2") is "0" or "1", "the detection is overridden by NEXTTOKEN_PREFETCH_L2");
        (int family, bool amd) = Processor();
        Assert.Equal(amd && family == 0x19, CpuInfo.PrefetchesToL2);
        output.WriteLine($"family {family:X}h, AMD {amd}: prefetches into {(CpuInfo.PrefetchesToL2 ? "L2" : "L1")}");
    }

    /// <summary>The CPU's family (extended family added) and whether it is an AMD one, read here independently of <see cref="CpuInfo"/>.</summary>
    private static (int Family, bool Amd) Processor()
    {
        if (!X86Base.IsSupported) return (0, false);
        (int eax, _, _, _) = X86Base.CpuId(1, 0);
        (_, int ebx, _, _) = X86Base.CpuId(0, 0);
        int family = ((eax >> 8) & 0xF) == 0xF ? 0xF + ((eax >> 20) & 0xFF) : (eax >> 8) & 0xF;
        return (family, ebx == 0x68747541 /* "Auth" */);
    }

    private static string Width => HasWide ? "AVX-512" : HasNarrow ? "AVX2" : "portable";
}
