using System.Buffers.Binary;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using NextToken.Kernels;
using NextToken.Tensors;
using Xunit.Abstractions;

namespace NextToken.Tests;

/// <summary>
/// The AVX2 placed-byte decode kernels (<see cref="Block32Decode"/>: Q4_1, Q5_0, Q5_1, IQ4_NL, IQ4_XS) against the scalar
/// reference (<see cref="ScalarReference.DequantizeElement"/> multiplied in float64), and through <see cref="MatMul"/> on
/// the AVX2 path (run with DOTNET_EnableAVX512=0 DOTNET_EnableAVXVNNI=0; elsewhere that part reports Skipped).
/// Tolerance 1e-6 of Σ|w·x| (the float kernels' order: each product rounded once, float32 sums).
/// </summary>
public unsafe class Block32DecodeTests(ITestOutputHelper output)
{
    internal static bool HasAvx2 => Avx2.IsSupported && Fma.IsSupported;

    /// <summary>The matmul's decode takes these kernels: AVX2 without AVX-512 (as DotRows' narrow branch).</summary>
    internal static bool NarrowPath => HasAvx2 && Vector256.IsHardwareAccelerated && !(Vector512.IsHardwareAccelerated && Avx512F.IsSupported);

    /// <summary>Random blocks: every quant byte random, the f16 scales (and minimums) random in ±[2⁻⁸, 2⁻³].</summary>
    internal static byte[] RandomRows(GgmlType type, int nIn, int nOut, Random random)
    {
        GgmlTypeInfo.TryGetLayout(type, out int blockSize, out int blockBytes);
        var stored = new byte[nOut * (nIn / blockSize) * blockBytes];
        random.NextBytes(stored);
        for (int at = 0; at < stored.Length; at += blockBytes)
        {
            BinaryPrimitives.WriteHalfLittleEndian(stored.AsSpan(at), RandomScale(random));
            if (type is GgmlType.Q4_1 or GgmlType.Q5_1) BinaryPrimitives.WriteHalfLittleEndian(stored.AsSpan(at + 2), RandomScale(random));
        }
        return stored;
    }

    private static Half RandomScale(Random random) => (Half)((random.Next(2) * 2 - 1) * Math.Pow(2, -8 + 5 * random.NextDouble()));

    internal static (double Value, double Magnitude) Reference(GgmlType type, byte[] stored, int row, int nIn, ReadOnlySpan<float> x)
    {
        GgmlTypeInfo.TryGetLayout(type, out int blockSize, out int blockBytes);
        long rowBytes = GgmlTypeInfo.RowBytes(type, nIn);
        double value = 0, magnitude = 0;
        for (int i = 0; i < nIn; i++)
        {
            double w = ScalarReference.DequantizeElement(type, stored.AsSpan((int)(row * rowBytes + i / blockSize * blockBytes), blockBytes), i % blockSize);
            value += w * x[i];
            magnitude += Math.Abs(w * x[i]);
        }
        return (value, magnitude);
    }

    public static TheoryData<GgmlType, int> Shapes => new()
    {
        { GgmlType.Q4_1, 32 }, { GgmlType.Q4_1, 160 }, { GgmlType.Q4_1, 2048 },
        { GgmlType.Q5_0, 32 }, { GgmlType.Q5_0, 96 }, { GgmlType.Q5_0, 2048 },
        { GgmlType.Q5_1, 32 }, { GgmlType.Q5_1, 224 }, { GgmlType.Q5_1, 2048 },
        { GgmlType.IQ4_NL, 32 }, { GgmlType.IQ4_NL, 160 }, { GgmlType.IQ4_NL, 2048 },
        { GgmlType.IQ4_XS, 256 }, { GgmlType.IQ4_XS, 768 }, { GgmlType.IQ4_XS, 2048 },
    };

    /// <summary>A row that is not whole blocks is refused by name (the kernel would drop its tail silently otherwise).</summary>
    [SkippableFact]
    public void Kernel_PartialBlocks_AreRefused()
    {
        Skip.IfNot(HasAvx2, "an AVX2 kernel; this CPU (or DOTNET_EnableAVX2=0) has none");
        Assert.Throws<ArgumentException>(() => Block32Decode.Dot4(GgmlType.IQ4_XS, null, 136, null, 32, null));
        Assert.Throws<ArgumentException>(() => Block32Decode.Dot4(GgmlType.Q4_1, null, 20, null, 48, null));
        Assert.Throws<ArgumentException>(() => Block32Decode.Dot4(GgmlType.Q5_1, null, 24, null, 0, null));
    }

    [SkippableTheory]
    [MemberData(nameof(Shapes))]
    public void Kernel_FourRows_MatchesScalarReference(GgmlType type, int nIn)
    {
        Skip.IfNot(HasAvx2, "an AVX2 kernel; this CPU (or DOTNET_EnableAVX2=0) has none");
        const int nOut = 12;
        var random = new Random(nIn * 31 + (int)type);
        byte[] stored = RandomRows(type, nIn, nOut, random);
        float[] x = Enumerable.Range(0, nIn).Select(_ => (float)(random.NextDouble() * 6 - 3)).ToArray();
        var prepared = new float[nIn / 32 * Block32Decode.PreparedFloats];
        var y = new float[nOut];
        var previous = new float[nOut];
        long rowBytes = GgmlTypeInfo.RowBytes(type, nIn);
        fixed (byte* w = stored)
        fixed (float* xp = x, pp = prepared, yp = y, old = previous)
        {
            Assert.True(Block32Decode.Prepare(xp, nIn, pp));
            for (int o = 0; o < nOut; o += 4)
            {
                Block32Decode.Dot4(type, w + o * rowBytes, rowBytes, pp, nIn, yp + o);
                ChunkedQuant.Dot4(type, false, w + o * rowBytes, rowBytes, xp, nIn, old + o);
            }
        }
        double worst = 0, worstPrevious = 0;
        for (int r = 0; r < nOut; r++)
        {
            (double expected, double magnitude) = Reference(type, stored, r, nIn, x);
            double difference = Math.Abs(y[r] - expected) / magnitude;
            worst = Math.Max(worst, difference);
            worstPrevious = Math.Max(worstPrevious, Math.Abs(previous[r] - expected) / magnitude);
            Assert.True(difference <= 1e-6, $"row {r}: {y[r]} vs {expected} (|Δ|/Σ|w·x| {difference:E2})");
        }
        output.WriteLine($"{type} placed-byte decode, {nOut}×{nIn}: max |Δ|/Σ|w·x| {worst:E2} (float kernel {worstPrevious:E2}; tolerance 1e-6)");
    }

    /// <summary>
    /// IQ4's top byte (grid + 128, 1 … 241: shifted down, not masked, and meeting x unscaled) at both ends of the grid and
    /// every nibble, against x from the smallest magnitude <see cref="Block32Decode.Prepare"/> accepts (2⁻¹⁰²) to 2²⁰.
    /// </summary>
    [SkippableTheory]
    [InlineData(GgmlType.IQ4_NL, 64)]
    [InlineData(GgmlType.IQ4_XS, 256)]
    public void Kernel_IQ4TopByte_AtTheGridEnds(GgmlType type, int nIn)
    {
        Skip.IfNot(HasAvx2, "an AVX2 kernel; this CPU (or DOTNET_EnableAVX2=0) has none");
        const int nOut = 4;
        var random = new Random(7);
        byte[] stored = RandomRows(type, nIn, nOut, random);
        GgmlTypeInfo.TryGetLayout(type, out _, out int blockBytes);
        int quantsAt = type == GgmlType.IQ4_XS ? 8 : 2, quantBytes = type == GgmlType.IQ4_XS ? 128 : 16;
        for (int at = 0; at < stored.Length; at += blockBytes)
            for (int i = 0; i < quantBytes; i++)
                stored[at + quantsAt + i] = (at / blockBytes % 4) switch { 0 => 0xFF, 1 => 0x00, 2 => 0x0F, _ => (byte)(i * 0x11) }; // 113s, −127s, mixed, each nibble
        float[] x = Enumerable.Range(0, nIn).Select(i => (i % 3 == 0 ? -1 : 1) * MathF.ScaleB(1f, i % 7 == 0 ? -102 : i % 41 - 20)).ToArray();
        var prepared = new float[nIn / 32 * Block32Decode.PreparedFloats];
        var y = new float[nOut];
        long rowBytes = GgmlTypeInfo.RowBytes(type, nIn);
        fixed (byte* w = stored)
        fixed (float* xp = x, pp = prepared, yp = y)
        {
            Assert.True(Block32Decode.Prepare(xp, nIn, pp));
            Block32Decode.Dot4(type, w, rowBytes, pp, nIn, yp);
        }
        double worst = 0;
        for (int r = 0; r < nOut; r++)
        {
            (double expected, double magnitude) = Reference(type, stored, r, nIn, x);
            double difference = Math.Abs(y[r] - expected) / magnitude;
            worst = Math.Max(worst, difference);
            Assert.True(difference <= 1e-6, $"row {r}: {y[r]} vs {expected} (|Δ|/Σ|w·x| {difference:E2})");
        }
        output.WriteLine($"{type} top byte at the grid ends, x over 2^-102 … 2^20: max |Δ|/Σ|w·x| {worst:E2} (tolerance 1e-6)");
    }

    /// <summary>Every tensor of the type in a llama-quantize fixture, rows in groups of four, against the float64 reference (inputs of mixed magnitude).</summary>
    [SkippableTheory]
    [InlineData("quant/llama-d256.q4_1.gguf", GgmlType.Q4_1)]
    [InlineData("quant/llama-d256.q5_0.gguf", GgmlType.Q5_0)]
    [InlineData("quant/llama-d256.q5_1.gguf", GgmlType.Q5_1)]
    [InlineData("quant/llama-d256.iq4_nl.gguf", GgmlType.IQ4_NL)]
    [InlineData("quant/llama-d256.iq4_xs.gguf", GgmlType.IQ4_XS)]
    public void Kernel_FixtureTensors_MatchScalarReference(string file, GgmlType type)
    {
        Skip.IfNot(HasAvx2, "an AVX2 kernel; this CPU (or DOTNET_EnableAVX2=0) has none");
        double worst = 0;
        int rows = ForEachFixtureTensor(file, type, (tensor, nOut, x) =>
        {
            int nIn = tensor.RowLength;
            var prepared = new float[nIn / 32 * Block32Decode.PreparedFloats];
            var y = new float[nOut];
            fixed (float* xp = x, pp = prepared, yp = y)
            {
                Assert.True(Block32Decode.Prepare(xp, nIn, pp));
                for (int o = 0; o < nOut; o += 4) Block32Decode.Dot4(type, tensor.Data + o * tensor.RowBytes, tensor.RowBytes, pp, nIn, yp + o);
            }
            byte[] stored = new ReadOnlySpan<byte>(tensor.Data, (int)(nOut * tensor.RowBytes)).ToArray();
            for (int r = 0; r < nOut; r++)
            {
                (double expected, double magnitude) = Reference(type, stored, r, nIn, x);
                double difference = Math.Abs(y[r] - expected) / magnitude;
                worst = Math.Max(worst, difference);
                Assert.True(difference <= 1e-6, $"{tensor.Name} row {r}: {y[r]} vs {expected} (|Δ|/Σ|w·x| {difference:E2})");
            }
        });
        output.WriteLine($"{file}: {rows} {type} rows, max |Δ|/Σ|w·x| {worst:E2} (tolerance 1e-6)");
    }

    /// <summary>
    /// Every tensor of the type in a llama-quantize fixture, its rows in groups of four (nOut) against an input whose values
    /// spread over three decades, as activations do; returns the rows checked (the file must hold some).
    /// </summary>
    internal static int ForEachFixtureTensor(string file, GgmlType type, Action<TensorData, int, float[]> check)
    {
        using var gguf = Gguf.GgufFile.Open(Fixtures.Model(file));
        var random = new Random(5);
        int rows = 0;
        foreach (Gguf.GgufTensorInfo info in gguf.Tensors.Where(t => t.Type == type))
        {
            TensorData tensor = gguf.GetTensor(info.Name);
            int nOut = tensor.RowCount & ~3;
            float[] x = Enumerable.Range(0, tensor.RowLength).Select(_ => (float)((random.NextDouble() * 2 - 1) * Math.Pow(10, random.NextDouble() * 3 - 1))).ToArray();
            check(tensor, nOut, x);
            rows += nOut;
        }
        Assert.True(rows > 0, $"{file} has no {type} tensors");
        return rows;
    }

    /// <summary>
    /// Through the matmul on the AVX2 path, 1–7 rows (so 1–3 rows after the groups of four take the row-by-row kernel) and
    /// batches of one and two inputs: within the tolerance of the float64 reference, each input as alone.
    /// </summary>
    [SkippableTheory]
    [InlineData(GgmlType.IQ4_NL, 288)]
    [InlineData(GgmlType.IQ4_XS, 512)]
    public void MatMul_RowCountsAndBatches_MatchScalarReference(GgmlType type, int nIn) => MatMulRowCountsAndBatches(type, nIn);

    /// <summary>The matmul on the AVX2 path against the float64 reference, 1–7 rows, batches of 1 and 2, each input as alone (Block32PlanesTests too).</summary>
    internal static void MatMulRowCountsAndBatches(GgmlType type, int nIn)
    {
        Skip.IfNot(NarrowPath, "the AVX2 decode path (DOTNET_EnableAVX512=0 DOTNET_EnableAVXVNNI=0)");
        var random = new Random(7 + (int)type);
        for (int nOut = 1; nOut <= 7; nOut++)
        {
            byte[] stored = RandomRows(type, nIn, nOut, random);
            fixed (byte* w = stored)
                for (int nBatch = 1; nBatch <= 2; nBatch++)
                {
                    float[] x = Enumerable.Range(0, nBatch * nIn).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
                    var weight = new TensorData("w", type, [nIn, nOut], w, stored.Length);
                    var y = new float[nBatch * nOut];
                    MatMul.Forward(weight, x, nBatch, y, 1);
                    for (int t = 0; t < nBatch; t++)
                    {
                        var alone = new float[nOut];
                        MatMul.Forward(weight, x.AsSpan(t * nIn, nIn), 1, alone, 1);
                        for (int r = 0; r < nOut; r++)
                        {
                            (double expected, double magnitude) = Reference(type, stored, r, nIn, x.AsSpan(t * nIn, nIn));
                            Assert.True(Math.Abs(y[t * nOut + r] - expected) <= 1e-6 * magnitude, $"{nOut} rows, input {t}, row {r}: {y[t * nOut + r]} vs {expected}");
                            Assert.Equal(alone[r], y[t * nOut + r]);
                        }
                    }
                }
        }
    }

    /// <summary>
    /// Inputs the kernels cannot take exactly — an infinity, a NaN, a nonzero |x| below 2⁻¹⁰² — keep the float kernel: Prepare
    /// says so, and the matmul's result is bit for bit the float kernel's (the same NaN or infinity). 2⁻¹⁰² itself is placed.
    /// </summary>
    [SkippableTheory]
    [InlineData(GgmlType.IQ4_NL)]
    [InlineData(GgmlType.IQ4_XS)]
    public void NonFiniteAndTinyInputs_BehaveAsTheFloatKernel(GgmlType type)
    {
        Skip.IfNot(NarrowPath, "the AVX2 decode path (DOTNET_EnableAVX512=0 DOTNET_EnableAVXVNNI=0)");
        const int nIn = 512, nOut = 8;
        var random = new Random(3);
        byte[] stored = RandomRows(type, nIn, nOut, random);
        long rowBytes = GgmlTypeInfo.RowBytes(type, nIn);
        var prepared = new float[nIn / 32 * Block32Decode.PreparedFloats];
        foreach ((float special, bool placed) in new[] { (float.PositiveInfinity, false), (float.NegativeInfinity, false), (float.NaN, false), (1e-35f, false),
                                                           (float.Epsilon, false), (MathF.ScaleB(1, -102), true), (0f, true) })
        {
            float[] x = Enumerable.Range(0, nIn).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
            x[77] = special;
            var y = new float[nOut];
            var expected = new float[nOut];
            fixed (byte* w = stored)
            fixed (float* xp = x, pp = prepared, e = expected)
            {
                Assert.Equal(placed, Block32Decode.Prepare(xp, nIn, pp));
                MatMul.Forward(new TensorData("w", type, [nIn, nOut], w, stored.Length), x, 1, y, 1);
                for (int o = 0; o < nOut; o += 4) ChunkedQuant.Dot4(type, false, w + o * rowBytes, rowBytes, xp, nIn, e + o);
            }
            for (int r = 0; r < nOut; r++)
                if (placed)
                {
                    (double reference, double magnitude) = Reference(type, stored, r, nIn, x);
                    Assert.True(Math.Abs(y[r] - reference) <= 1e-6 * magnitude, $"x[77] = {special}, row {r}: {y[r]} vs {reference}");
                }
                else
                    Assert.Equal(BitConverter.SingleToInt32Bits(expected[r]), BitConverter.SingleToInt32Bits(y[r]));
            if (!placed && !float.IsFinite(special)) Assert.All(y, v => Assert.False(float.IsFinite(v)));
        }
    }
}
