using NextToken.Kernels;
using NextToken.Tensors;
using Xunit.Abstractions;

namespace NextToken.Tests;

/// <summary>
/// The AVX2 plane kernels for Q4_1, Q5_0 and Q5_1 (<see cref="Block32Planes"/>): the split against its scalar form bit for
/// bit, the kernels against the scalar reference (<see cref="ScalarReference.DequantizeElement"/> multiplied in float64)
/// with tolerance 1e-6 of Σ|w·x|, and through <see cref="MatMul"/> on the AVX2 path (run with DOTNET_EnableAVX512=0
/// DOTNET_EnableAVXVNNI=0; elsewhere that part reports Skipped).
/// </summary>
public unsafe class Block32PlanesTests(ITestOutputHelper output)
{
    private const double Tolerance = 1e-6;

    private static bool HasAvx2 => Block32DecodeTests.HasAvx2;

    /// <summary>Blocks of every kind the split meets: plain, zero, subnormal, near float's largest, one outlier, alternating signs.</summary>
    private static float[] MixedInputs(int n, Random random) => Enumerable.Range(0, n).Select(i => (i / 32 % 6) switch
    {
        0 => (float)(random.NextDouble() * 6 - 3),
        1 => 0f,
        2 => BitConverter.Int32BitsToSingle(random.Next(0, 1 << 20)) * (i % 2 == 0 ? 1 : -1), // subnormals
        3 => (float)(random.NextDouble() * 2 - 1) * 3e38f,
        4 => i % 32 == 5 ? 1e6f : (float)(random.NextDouble() * 2 - 1) * 1e-3f,
        _ => (i % 2 == 0 ? 1 : -1) * MathF.ScaleB(1f, i % 41 - 20),
    }).ToArray();

    [SkippableFact]
    public void Prepare_EqualsScalarReference_BitForBit()
    {
        Skip.IfNot(HasAvx2, "an AVX2 kernel; this CPU (or DOTNET_EnableAVX2=0) has none");
        const int n = 32 * 24;
        float[] x = MixedInputs(n, new Random(11));
        var expected = new byte[n / 32 * Block32Planes.PreparedBytes];
        var actual = new byte[expected.Length];
        Assert.True(Block32Planes.PrepareReference(x, expected));
        fixed (float* xp = x)
        fixed (byte* p = actual)
            Assert.True(Block32Planes.Prepare(xp, n, p));
        Assert.Equal(expected, actual);
    }

    /// <summary>
    /// The split's power-of-two scale (<see cref="KQuantPlanes.BlockScale"/>, exponent from the bits for normal maxima) against the
    /// same rule in <see cref="MathF.ILogB"/>/<see cref="MathF.ScaleB"/> arithmetic: every exponent, significands at and around
    /// the 127/64 edge, subnormals, zero.
    /// </summary>
    [Fact]
    public void BlockScale_EqualsTheExponentArithmetic()
    {
        var random = new Random(17);
        var maxima = new List<float> { 0f, float.Epsilon, float.MaxValue, 1.984375f, BitConverter.Int32BitsToSingle(0x3FFE0001) };
        for (int biased = 0; biased < 255; biased++)
            foreach (int mantissa in new[] { 0, 1, 0x7DFFFF, 0x7E0000, 0x7E0001, 0x7FFFFF, random.Next(0x800000) })
                maxima.Add(BitConverter.Int32BitsToSingle(biased << 23 | mantissa));
        foreach (float amax in maxima)
        {
            KQuantPlanes.BlockScale(amax, out float scale, out float inv1, out float inv2);
            float expectedScale = 1, expectedInv1 = 0, expectedInv2 = 1;
            if (amax != 0)
            {
                int e = MathF.ILogB(amax) - 22;
                if (MathF.ScaleB(amax, -e) > 127 << 16) e++;
                e = Math.Max(e, -149);
                (expectedScale, expectedInv1, expectedInv2) = (MathF.ScaleB(1f, e), MathF.ScaleB(1f, Math.Min(-e, 127)), MathF.ScaleB(1f, -e - Math.Min(-e, 127)));
            }
            Assert.True(scale == expectedScale && inv1 == expectedInv1 && inv2 == expectedInv2,
                        $"max|x| {amax:R} (0x{BitConverter.SingleToInt32Bits(amax):X8}): {scale:R}, {inv1:R}, {inv2:R} against {expectedScale:R}, {expectedInv1:R}, {expectedInv2:R}");
        }
        KQuantPlanes.BlockScale(float.PositiveInfinity, out float infinite, out _, out _);
        Assert.True(float.IsNaN(infinite));
    }

    [SkippableTheory]
    [InlineData(float.PositiveInfinity)]
    [InlineData(float.NegativeInfinity)]
    [InlineData(float.NaN)]
    public void Prepare_NonFiniteInput_IsRefused(float special)
    {
        Skip.IfNot(HasAvx2, "an AVX2 kernel; this CPU (or DOTNET_EnableAVX2=0) has none");
        float[] x = MixedInputs(128, new Random(2));
        x[100] = special;
        var prepared = new byte[4 * Block32Planes.PreparedBytes];
        Assert.False(Block32Planes.PrepareReference(x, prepared));
        fixed (float* xp = x)
        fixed (byte* p = prepared)
            Assert.False(Block32Planes.Prepare(xp, x.Length, p));
    }

    [SkippableFact]
    public void Kernel_PartialBlocks_AreRefused()
    {
        Skip.IfNot(HasAvx2, "an AVX2 kernel; this CPU (or DOTNET_EnableAVX2=0) has none");
        Assert.Throws<ArgumentException>(() => Block32Planes.Dot4(GgmlType.Q4_1, null, 20, null, 48, null));
        Assert.Throws<ArgumentException>(() => Block32Planes.Dot4(GgmlType.Q5_0, null, 22, null, 0, null));
        Assert.Throws<ArgumentException>(() => Block32Planes.Prepare(null, 40, null));
        Assert.Throws<NotSupportedException>(() => Block32Planes.Dot4(GgmlType.IQ4_NL, null, 18, null, 32, null));
    }

    public static TheoryData<GgmlType, int> Shapes => new()
    {
        { GgmlType.Q4_1, 32 }, { GgmlType.Q4_1, 192 }, { GgmlType.Q4_1, 2048 },
        { GgmlType.Q5_0, 32 }, { GgmlType.Q5_0, 192 }, { GgmlType.Q5_0, 2048 },
        { GgmlType.Q5_1, 32 }, { GgmlType.Q5_1, 192 }, { GgmlType.Q5_1, 2048 },
    };

    /// <summary>Random blocks against x of every kind <see cref="MixedInputs"/> makes (but near float's largest: the products would overflow), and against plain x.</summary>
    [SkippableTheory]
    [MemberData(nameof(Shapes))]
    public void Kernel_FourRows_MatchesScalarReference(GgmlType type, int nIn)
    {
        Skip.IfNot(HasAvx2, "an AVX2 kernel; this CPU (or DOTNET_EnableAVX2=0) has none");
        const int nOut = 12;
        var random = new Random(nIn * 17 + (int)type);
        byte[] stored = Block32DecodeTests.RandomRows(type, nIn, nOut, random);
        foreach (bool mixed in new[] { false, true })
        {
            float[] x = mixed
                ? MixedInputs(nIn, random).Select(v => Math.Abs(v) > 1e30f ? v * 1e-30f : v).ToArray()
                : Enumerable.Range(0, nIn).Select(_ => (float)(random.NextDouble() * 6 - 3)).ToArray();
            (double worst, double worstFloat) = Compare(type, stored, nOut, x);
            output.WriteLine($"{type} planes, {nOut}×{nIn}, {(mixed ? "mixed" : "plain")} x: max |Δ|/Σ|w·x| {worst:E2} (float kernel {worstFloat:E2}; tolerance {Tolerance:E0})");
        }
    }

    /// <summary>
    /// The integer sums at their largest: every quant at its top (0xFF nibbles, all fifth bits set) or zero, against x whose
    /// 24-bit values reach the split's range with digits at both signs' ends — an overflow or a saturated <c>vpmaddubsw</c>
    /// pair would be far outside the tolerance.
    /// </summary>
    [SkippableTheory]
    [InlineData(GgmlType.Q4_1)]
    [InlineData(GgmlType.Q5_0)]
    [InlineData(GgmlType.Q5_1)]
    public void Kernel_ExtremeQuantsAndDigits_StayExact(GgmlType type)
    {
        Skip.IfNot(HasAvx2, "an AVX2 kernel; this CPU (or DOTNET_EnableAVX2=0) has none");
        const int nIn = 256, nOut = 8;
        var random = new Random(13);
        byte[] stored = Block32DecodeTests.RandomRows(type, nIn, nOut, random);
        GgmlTypeInfo.TryGetLayout(type, out _, out int blockBytes);
        int quantsAt = type == GgmlType.Q5_0 ? 2 : 4; // after d (and m): Q5's fifth bits, then the nibbles
        for (int at = 0, block = 0; at < stored.Length; at += blockBytes, block++)
            for (int i = quantsAt; i < blockBytes; i++)
                stored[at + i] = block % 3 == 2 ? (byte)0 : (byte)0xFF; // the quants (and Q5's fifth bits) all at the top, or all zero
        // Per block all +, all − or alternating, every value just below 127·2¹⁶ after scaling (1.984375 = 127·2¹⁶·2⁻²²): p0 = ±127.
        float[] x = Enumerable.Range(0, nIn).Select(i => (i / 32 % 3) switch
        {
            0 => 1.984375f - i % 32 * 1e-6f,
            1 => -(1.984375f - i % 32 * 3e-6f),
            _ => (i % 2 == 0 ? 1 : -1) * (1.984375f - i % 32 * 2e-6f),
        }).ToArray();
        (double worst, _) = Compare(type, stored, nOut, x);
        output.WriteLine($"{type} planes, extreme quants and digits: max |Δ|/Σ|w·x| {worst:E2} (tolerance {Tolerance:E0})");
    }

    /// <summary>Every tensor of the type in a llama-quantize fixture, rows in groups of four, against the float64 reference (inputs of mixed magnitude).</summary>
    [SkippableTheory]
    [InlineData("quant/llama-d256.q4_1.gguf", GgmlType.Q4_1)]
    [InlineData("quant/llama-d256.q5_0.gguf", GgmlType.Q5_0)]
    [InlineData("quant/llama-d256.q5_1.gguf", GgmlType.Q5_1)]
    public void Kernel_FixtureTensors_MatchScalarReference(string file, GgmlType type)
    {
        Skip.IfNot(HasAvx2, "an AVX2 kernel; this CPU (or DOTNET_EnableAVX2=0) has none");
        double worst = 0;
        int rows = Block32DecodeTests.ForEachFixtureTensor(file, type, (tensor, nOut, x) =>
        {
            byte[] stored = new ReadOnlySpan<byte>(tensor.Data, (int)(nOut * tensor.RowBytes)).ToArray();
            worst = Math.Max(worst, Compare(type, stored, nOut, x).Worst);
        });
        output.WriteLine($"{file}: {rows} {type} rows, max |Δ|/Σ|w·x| {worst:E2} (tolerance {Tolerance:E0})");
    }

    [SkippableTheory]
    [InlineData(GgmlType.Q4_1, 96)]
    [InlineData(GgmlType.Q5_0, 160)]
    [InlineData(GgmlType.Q5_1, 64)]
    public void MatMul_RowCountsAndBatches_MatchScalarReference(GgmlType type, int nIn) => Block32DecodeTests.MatMulRowCountsAndBatches(type, nIn);

    /// <summary>
    /// Through the matmul on the AVX2 path: an input holding an infinity or NaN keeps the float kernel (bit for bit its result);
    /// tiny inputs — 2⁻¹⁰⁰, subnormals down to 2⁻¹⁴⁹, zeros — are split (no lower bound, unlike the placed-byte kernels) and
    /// stay within the tolerance.
    /// </summary>
    [SkippableTheory]
    [InlineData(GgmlType.Q4_1)]
    [InlineData(GgmlType.Q5_0)]
    [InlineData(GgmlType.Q5_1)]
    public void MatMul_NonFiniteAndTinyInputs(GgmlType type)
    {
        Skip.IfNot(Block32DecodeTests.NarrowPath, "the AVX2 decode path (DOTNET_EnableAVX512=0 DOTNET_EnableAVXVNNI=0)");
        const int nIn = 512, nOut = 8;
        var random = new Random(3);
        byte[] stored = Block32DecodeTests.RandomRows(type, nIn, nOut, random);
        long rowBytes = GgmlTypeInfo.RowBytes(type, nIn);
        foreach ((float special, bool split) in new[] { (float.PositiveInfinity, false), (float.NegativeInfinity, false), (float.NaN, false), (1e-35f, true),
                                                          (float.Epsilon, true), (0f, true) })
        {
            float[] x = Enumerable.Range(0, nIn).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
            x[77] = special;
            if (split && special != 0) // a whole block of tiny values, so its scale goes down to them
                for (int i = 64; i < 96; i++) x[i] = special * (i % 3 - 1) * (1 + i % 5);
            var y = new float[nOut];
            var expected = new float[nOut];
            fixed (byte* w = stored)
            fixed (float* xp = x, e = expected)
            {
                MatMul.Forward(new TensorData("w", type, [nIn, nOut], w, stored.Length), x, 1, y, 1);
                for (int o = 0; o < nOut; o += 4) ChunkedQuant.Dot4(type, false, w + o * rowBytes, rowBytes, xp, nIn, e + o);
            }
            for (int r = 0; r < nOut; r++)
                if (split)
                {
                    (double reference, double magnitude) = Block32DecodeTests.Reference(type, stored, r, nIn, x);
                    Assert.True(Math.Abs(y[r] - reference) <= Tolerance * magnitude, $"x[77] = {special}, row {r}: {y[r]} vs {reference}");
                }
                else
                    Assert.Equal(BitConverter.SingleToInt32Bits(expected[r]), BitConverter.SingleToInt32Bits(y[r]));
            if (!split) Assert.All(y, v => Assert.False(float.IsFinite(v)));
        }
    }

    /// <summary>The plane kernel and the placed-byte float kernel on the same rows against the float64 reference: the worst relative errors.</summary>
    private static (double Worst, double WorstFloat) Compare(GgmlType type, byte[] stored, int nOut, float[] x)
    {
        int nIn = x.Length;
        long rowBytes = GgmlTypeInfo.RowBytes(type, nIn);
        var split = new byte[nIn / 32 * Block32Planes.PreparedBytes];
        var y = new float[nOut];
        var previous = new float[nOut];
        fixed (byte* w = stored, p = split)
        fixed (float* xp = x, yp = y, old = previous)
        {
            Assert.True(Block32Planes.Prepare(xp, nIn, p));
            for (int o = 0; o < nOut; o += 4)
            {
                Block32Planes.Dot4(type, w + o * rowBytes, rowBytes, p, nIn, yp + o);
                ChunkedQuant.Dot4(type, false, w + o * rowBytes, rowBytes, xp, nIn, old + o);
            }
        }
        double worst = 0, worstFloat = 0;
        for (int r = 0; r < nOut; r++)
        {
            (double expected, double magnitude) = Block32DecodeTests.Reference(type, stored, r, nIn, x);
            double difference = magnitude == 0 ? Math.Abs(y[r]) : Math.Abs(y[r] - expected) / magnitude;
            worst = Math.Max(worst, difference);
            worstFloat = Math.Max(worstFloat, magnitude == 0 ? Math.Abs(previous[r]) : Math.Abs(previous[r] - expected) / magnitude);
            Assert.True(difference <= Tolerance, $"row {r}: {y[r]} vs {expected} (|Δ|/Σ|w·x| {difference:E2})");
        }
        return (worst, worstFloat);
    }
}
