using System.Buffers.Binary;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using NextToken.Kernels;
using NextToken.Tensors;
using Xunit.Abstractions;

namespace NextToken.Tests;

/// <summary>
/// The repacked block-32 kernels (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL) for <c>--q8-activations</c> (<see cref="InterleavedBlock32"/>), prompts and decode,
/// with AVX-VNNI and with plain AVX2 (called directly, so both run on a VNNI CPU): integer sums equal the scalar
/// reference's exactly (unit scales, random and extreme blocks), the f16 scales convert exactly, and through the matmul
/// every batch size (1–3 positions, tiles of four and their tails, rows past the last group of eight) gives the
/// row-by-row integer product up to float rounding.
/// </summary>
public unsafe class InterleavedBlock32Tests(ITestOutputHelper output)
{
    /// <summary>The kernel a test calls: 512-bit (AVX-512 BW), 256-bit AVX-VNNI, or plain AVX2.</summary>
    public enum Kernel { Wide, Vnni, Avx2 }

    public static TheoryData<GgmlType, Kernel> Kernels
    {
        get
        {
            var data = new TheoryData<GgmlType, Kernel>();
            foreach (GgmlType type in new[] { GgmlType.Q4_0, GgmlType.IQ4_NL, GgmlType.Q8_0, GgmlType.Q4_1, GgmlType.Q5_0, GgmlType.Q5_1 })
                foreach (Kernel kernel in Enum.GetValues<Kernel>())
                    if (kernel != Kernel.Wide || InterleavedBlock32.HasWide(type)) data.Add(type, kernel);
            return data;
        }
    }

    private static void Multiply(InterleavedBlock32 matrix, Kernel kernel, sbyte* q, float* d, int* s, int nBatch, float* y, int nOut, int groupStart, int groupEnd)
    {
        if (kernel == Kernel.Wide) matrix.MultiplyWide(q, d, s, nBatch, y, nOut, groupStart, groupEnd);
        else if (kernel == Kernel.Vnni) matrix.MultiplyVnni(q, d, s, nBatch, y, nOut, groupStart, groupEnd);
        else matrix.MultiplyWithoutVnni(q, d, s, nBatch, y, nOut, groupStart, groupEnd);
    }

    [SkippableFact]
    public void RowScales_ConvertEveryFiniteHalfExactly()
    {
        Skip.IfNot(Avx2.IsSupported, "the in-register half conversion is an AVX2 kernel");
        var halves = new ushort[8];
        var result = new float[8];
        for (int bits = 0; bits < 65536; bits += 8)
        {
            for (int i = 0; i < 8; i++) halves[i] = (ushort)(bits + i);
            if (((bits >> 10) & 0x1F) == 0x1F) continue; // infinities and NaNs: never a block scale
            fixed (ushort* h = halves)
            {
                InterleavedBlock32.RowScales((byte*)h).CopyTo(result);
                if (Avx512BW.IsSupported) // the sixteen-row form: the same eight twice, as two groups' scales
                    Assert.Equal(Vector512.Create(Vector256.Create(result), Vector256.Create(result)).AsInt32(), InterleavedBlock32.Scales16((byte*)h, (byte*)h).AsInt32());
            }
            for (int i = 0; i < 8; i++)
                Assert.Equal(BitConverter.SingleToInt32Bits((float)BitConverter.UInt16BitsToHalf(halves[i])), BitConverter.SingleToInt32Bits(result[i]));
        }
    }

    /// <summary>
    /// Unit scales (weights and activations), so each output is its row's integer sum over all blocks, exactly in float:
    /// random bytes and the blocks where 16-bit pair sums peak (IQ4 grid −127 or 113, Q4_0 nibble 15 or 0, Q5 q 31 with every fifth bit,
    /// Q8_0 −128, against x ±127). Minimums are 0 here (the matmul test below has them).
    /// </summary>
    [SkippableTheory]
    [MemberData(nameof(Kernels))]
    public void IntegerSums_EqualTheReference(GgmlType type, Kernel kernel)
    {
        Skip.IfNot(kernel switch { Kernel.Wide => Avx512BW.IsSupported, Kernel.Vnni => AvxVnni.IsSupported, _ => InterleavedBlock32.IsSupported },
                   kernel switch { Kernel.Wide => "no AVX-512 BW", Kernel.Vnni => "no AVX-VNNI", _ => "needs AVX2" });
        const int nIn = 224, nOut = 24; // 7 blocks, three groups
        int blocks = nIn / 32;
        var random = new Random((int)type);
        foreach (int fill in new[] { -1, 0x00, 0xFF, 0x88 })
            foreach (int nBatch in new[] { 1, 2, 3, 4, 5, 8, 13 }) // 13: tiles of eight and four and a single position
            {
                int blockBytes = (int)GgmlTypeInfo.RowBytes(type, 32);
                byte[] stored = new byte[nOut * blocks * blockBytes];
                random.NextBytes(stored);
                if (fill >= 0) Array.Fill(stored, (byte)(type == GgmlType.Q8_0 && fill == 0x88 ? 0x80 : fill)); // Q8_0: −1, 0 and −128
                for (int at = 0; at < stored.Length; at += blockBytes)
                {
                    BinaryPrimitives.WriteHalfLittleEndian(stored.AsSpan(at), (Half)1);
                    if (type is GgmlType.Q4_1 or GgmlType.Q5_1) BinaryPrimitives.WriteHalfLittleEndian(stored.AsSpan(at + 2), (Half)0); // the minimum: tested below
                }
                var quants = new sbyte[nBatch * nIn];
                for (int i = 0; i < quants.Length; i++)
                    quants[i] = fill < 0 ? (sbyte)random.Next(-127, 128) : (sbyte)((i & 1) == 0 ? 127 : -127);
                var scales = Enumerable.Repeat(1f, nBatch * blocks).ToArray();
                var sums = new int[nBatch * blocks];
                for (int i = 0; i < quants.Length; i++) sums[i / 32] += quants[i];
                var y = new float[nBatch * nOut];
                fixed (byte* data = stored)
                fixed (sbyte* q = quants)
                fixed (float* d = scales, yp = y)
                fixed (int* s = sums)
                {
                    using var cache = new InterleavedBlock32.Cache();
                    var weight = new TensorData("w", type, [nIn, nOut], data, stored.Length);
                    InterleavedBlock32 matrix = cache.For(weight);
                    // Three groups: a pair of groups and the odd last one; then from group 1, as a thread's share may start.
                    Multiply(matrix, kernel, q, d, s, nBatch, yp, nOut, 0, nOut / 8);
                    var fromOne = new float[nBatch * nOut];
                    fixed (float* f = fromOne) Multiply(matrix, kernel, q, d, s, nBatch, f, nOut, 1, nOut / 8);
                    for (int t = 0; t < nBatch; t++)
                        for (int r = 8; r < nOut; r++) Assert.Equal(yp[t * nOut + r], fromOne[t * nOut + r]);
                }
                for (int t = 0; t < nBatch; t++)
                    for (int r = 0; r < nOut; r++)
                    {
                        int expected = 0;
                        for (int b = 0; b < blocks; b++)
                            expected += QuantizedActivations.ReferenceBlockSum(type, stored.AsSpan(r * blocks * blockBytes, blocks * blockBytes), b, quants.AsSpan(t * nIn, nIn));
                        Assert.Equal(expected, y[t * nOut + r]);
                    }
            }
        output.WriteLine($"{type} {kernel}: integer sums identical (random and extreme blocks)");
    }

    /// <summary>
    /// Through the matmul with a cache (decode of 1–3 positions and prompts; 1 and 2 threads; 37 and 130 rows leave rows past the
    /// last group to the row kernel): the row-by-row integer product (<see cref="QuantizedActivations.Dot(GgmlType, ReadOnlySpan{byte}, ReadOnlySpan{sbyte}, ReadOnlySpan{float}, ReadOnlySpan{int})"/>)
    /// within 1e-4·(1 + |y|) (the same sums, added in another order), and independent rows equal each position alone bit for bit.
    /// </summary>
    [SkippableTheory]
    [InlineData(GgmlType.Q4_0, 1, 96, 37)]
    [InlineData(GgmlType.Q4_0, 3, 2048, 64)]
    [InlineData(GgmlType.Q4_0, 4, 64, 16)]     // one tile of four positions, two groups of eight rows
    [InlineData(GgmlType.Q4_0, 7, 96, 37)]     // a tile and three single positions; five rows past the last group
    [InlineData(GgmlType.Q4_0, 20, 768, 130)]  // a prompt; GPT-2's width
    [InlineData(GgmlType.IQ4_NL, 1, 96, 37)]
    [InlineData(GgmlType.IQ4_NL, 2, 2048, 64)]
    [InlineData(GgmlType.IQ4_NL, 7, 96, 37)]
    [InlineData(GgmlType.IQ4_NL, 20, 768, 130)]
    [InlineData(GgmlType.Q8_0, 1, 96, 37)]
    [InlineData(GgmlType.Q8_0, 5, 768, 64)]
    [InlineData(GgmlType.Q4_1, 1, 96, 37)]
    [InlineData(GgmlType.Q4_1, 6, 768, 64)]
    [InlineData(GgmlType.Q5_0, 1, 2048, 37)]
    [InlineData(GgmlType.Q5_0, 9, 96, 40)]
    [InlineData(GgmlType.Q5_1, 2, 96, 37)]
    [InlineData(GgmlType.Q5_1, 4, 768, 64)]
    public void MatMul_EqualsTheRowByRowIntegerProduct(GgmlType type, int nBatch, int nIn, int nOut)
    {
        Skip.IfNot(InterleavedBlock32.IsSupported && QuantizedActivations.IsSupported(type), "needs AVX2 (the matmul then keeps the float path, tested elsewhere)");
        Skip.If(nBatch >= 4 && !InterleavedBlock32.RepacksPrompts(type), $"{type} prompts keep the float path on this CPU (IntegerSums covers the kernel)");
        var random = new Random(nOut + (int)type);
        byte[] stored = QuantizedActivationBlock32Tests.RandomRows(type, nIn, nOut, random);
        float[] x = Enumerable.Range(0, nBatch * nIn).Select(_ => (float)(random.NextDouble() * 6 - 3)).ToArray();
        int blocks = nIn / 32;
        (sbyte[] quants, float[] scales, int[] sums) = QuantizeEach(x, nBatch, nIn);
        using var cache = new InterleavedBlock32.Cache();
        fixed (byte* data = stored)
        {
            var weight = new TensorData("w", type, [nIn, nOut], data, stored.Length);
            foreach (int threads in new[] { 1, 2 })
            {
                var y = new float[nBatch * nOut];
                MatMul.Forward(weight, x, nBatch, y, threads, quantizeActivations: true, interleaved: cache);
                double worst = 0;
                for (int t = 0; t < nBatch; t++)
                    for (int r = 0; r < nOut; r++)
                    {
                        float expected = QuantizedActivations.Dot(type, weight.Row(r), quants.AsSpan(t * nIn, nIn), scales.AsSpan(t * blocks, blocks), sums.AsSpan(t * blocks, blocks));
                        worst = Math.Max(worst, Math.Abs(y[t * nOut + r] - expected));
                        Assert.True(Math.Abs(y[t * nOut + r] - expected) <= 1e-4 * (1 + Math.Abs(expected)), $"position {t} row {r}, {threads} threads: {y[t * nOut + r]} vs {expected}");
                    }
                output.WriteLine($"{type} {nBatch}×{nIn}×{nOut}, {threads} threads: worst |Δ| {worst:E2} against the row-by-row integer product");
                var each = new float[nBatch * nOut];
                MatMul.Forward(weight, x, nBatch, each, threads, quantizeActivations: true, interleaved: cache, independentRows: true);
                for (int t = 0; t < nBatch; t++)
                {
                    var alone = new float[nOut];
                    MatMul.Forward(weight, x.AsSpan(t * nIn, nIn), 1, alone, threads, quantizeActivations: true, interleaved: cache);
                    Assert.Equal(alone, each.AsSpan(t * nOut, nOut).ToArray());
                }
            }
        }
        Assert.True(cache.Bytes > 0);
    }

    /// <summary>Each of the <paramref name="nBatch"/> rows of x quantized on its own, as the matmul quantizes activations.</summary>
    internal static (sbyte[] Quants, float[] Scales, int[] Sums) QuantizeEach(float[] x, int nBatch, int nIn)
    {
        int blocks = nIn / 32;
        var quants = new sbyte[nBatch * nIn];
        var scales = new float[nBatch * blocks];
        var sums = new int[nBatch * blocks];
        for (int t = 0; t < nBatch; t++)
            QuantizedActivations.Quantize(x.AsSpan(t * nIn, nIn), quants.AsSpan(t * nIn, nIn), scales.AsSpan(t * blocks, blocks), sums.AsSpan(t * blocks, blocks));
        return (quants, scales, sums);
    }
}
