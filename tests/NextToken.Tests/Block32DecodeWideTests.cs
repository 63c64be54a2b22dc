using System.Buffers.Binary;
using NextToken.Gguf;
using NextToken.Kernels;
using NextToken.Tensors;
using Xunit.Abstractions;

namespace NextToken.Tests;

/// <summary>
/// The AVX-512 decode kernels for IQ4_NL, IQ4_XS, Q5_0, Q4_1 and Q5_1 (<see cref="Block32DecodeWide"/>): against the
/// float64 product of <see cref="ScalarReference.DequantizeElement"/> values (1–4 rows, odd block counts, mixed magnitudes,
/// extreme quants and scales), NaN and infinity propagation, and MatMul's AVX-512 decode taking them bit-identically per
/// (row, input) across batch sizes, independent rows, threads and a row count that is not a multiple of four.
/// </summary>
public unsafe class Block32DecodeWideTests(ITestOutputHelper output)
{
    private static void SkipUnlessAvx512() =>
        Skip.IfNot(Block32DecodeWide.IsSupported, "the 512-bit block kernels need AVX-512 F and BW (this CPU or DOTNET_EnableAVX512=0 has none)");

    /// <summary>Float32 sums of n products: error within a few n·ε of Σ|w·x| (16 lanes and a 4-level reduction: ~n/16 + 4 roundings per lane).</summary>
    private const double Tolerance = 1e-5;

    /// <summary>Random blocks with finite, varied f16 scales (and minimums), the first block all-ones bits in its quants.</summary>
    private static byte[] Blocks(GgmlType type, int blocks, int seed)
    {
        int bytes = (int)GgmlTypeInfo.RowBytes(type, Block32DecodeWide.BlockSize(type));
        var random = new Random(seed);
        var stored = new byte[blocks * bytes];
        random.NextBytes(stored);
        for (int b = 0; b < blocks; b++)
        {
            Span<byte> block = stored.AsSpan(b * bytes, bytes);
            BinaryPrimitives.WriteHalfLittleEndian(block, (Half)((random.NextDouble() * 2 - 1) * Math.Pow(2, random.Next(-12, 4))));
            if (type is GgmlType.Q4_1 or GgmlType.Q5_1)
                BinaryPrimitives.WriteHalfLittleEndian(block[2..], (Half)((random.NextDouble() * 2 - 1) * Math.Pow(2, random.Next(-12, 4))));
            if (b == 0) block[(type is GgmlType.Q4_1 or GgmlType.Q5_1 ? 4 : 2)..].Fill(0xFF); // the largest quants (and scales, fifth bits)
        }
        return stored;
    }

    private static float[] Input(int n, int seed)
    {
        var random = new Random(seed);
        float[] x = new float[n];
        for (int i = 0; i < n; i++) x[i] = (float)((random.NextDouble() * 4 - 2) * Math.Pow(10, random.Next(-4, 3)));
        return x;
    }

    /// <summary>Σ w·x in float64 from the reference's values, and Σ|w·x|.</summary>
    private static (double Sum, double Magnitude) Reference(GgmlType type, ReadOnlySpan<byte> row, ReadOnlySpan<float> x, int n)
    {
        int size = Block32DecodeWide.BlockSize(type), bytes = (int)GgmlTypeInfo.RowBytes(type, size);
        double sum = 0, magnitude = 0;
        for (int i = 0; i < n; i++)
        {
            double p = (double)ScalarReference.DequantizeElement(type, row.Slice(i / size * bytes, bytes), i % size) * x[i];
            sum += p;
            magnitude += Math.Abs(p);
        }
        return (sum, magnitude);
    }

    public static TheoryData<GgmlType> Types => new() { GgmlType.IQ4_NL, GgmlType.IQ4_XS, GgmlType.Q5_0, GgmlType.Q4_1, GgmlType.Q5_1 };

    [SkippableTheory]
    [MemberData(nameof(Types))]
    public void Kernel_MatchesTheFloat64Reference(GgmlType type)
    {
        SkipUnlessAvx512();
        int size = Block32DecodeWide.BlockSize(type);
        double worst = 0;
        int cases = 0;
        foreach (int blocks in size == 32 ? new[] { 1, 3, 7, 64, 176 } : new[] { 1, 3, 8, 22 })
            foreach (int rows in new[] { 1, 2, 3, 4 })
            {
                int n = blocks * size;
                long rowBytes = GgmlTypeInfo.RowBytes(type, n);
                byte[] stored = Blocks(type, blocks * rows, blocks * 10 + rows);
                float[] x = Input(n, blocks + rows);
                var y = new float[4];
                fixed (byte* w = stored)
                fixed (float* xp = x, yp = y)
                {
                    yp[rows <= 3 ? rows : 0] = 12345; // a missing row's slot stays untouched
                    Block32DecodeWide.Dot4(type, w, rowBytes, rows, xp, n, yp);
                    if (rows < 4) Assert.Equal(12345f, yp[rows]);
                }
                for (int r = 0; r < rows; r++, cases++)
                {
                    (double expected, double magnitude) = Reference(type, stored.AsSpan((int)(r * rowBytes), (int)rowBytes), x, n);
                    double relative = Math.Abs(y[r] - expected) / Math.Max(magnitude, 1e-30);
                    Assert.True(relative <= Tolerance, $"{type} {blocks} blocks, row {r} of {rows}: {y[r]} vs {expected} (|diff|/Σ|wx| {relative:E2})");
                    worst = Math.Max(worst, relative);
                }
            }
        output.WriteLine($"{type}: {cases} (rows, blocks) results, max |diff|/Σ|w·x| {worst:E2} (tolerance {Tolerance:E0})");
    }

    [SkippableTheory]
    [MemberData(nameof(Types))]
    public void Kernel_PropagatesNaNAndInfinity(GgmlType type)
    {
        SkipUnlessAvx512();
        int size = Block32DecodeWide.BlockSize(type), blocks = size == 32 ? 9 : 2, n = blocks * size;
        long rowBytes = GgmlTypeInfo.RowBytes(type, n);
        byte[] stored = Blocks(type, 4 * blocks, 7);
        foreach (float special in new[] { float.NaN, float.PositiveInfinity, float.NegativeInfinity })
        {
            float[] x = Input(n, 3);
            x[n - 5] = special;
            var y = new float[4];
            fixed (byte* w = stored)
            fixed (float* xp = x, yp = y)
                Block32DecodeWide.Dot4(type, w, rowBytes, 4, xp, n, yp);
            for (int r = 0; r < 4; r++)
            {
                (double expected, _) = Reference(type, stored.AsSpan((int)(r * rowBytes), (int)rowBytes), x, n);
                if (double.IsNaN(expected)) Assert.True(float.IsNaN(y[r]), $"{type} row {r}, x has {special}: {y[r]}, reference NaN");
                else if (type is GgmlType.Q4_1 or GgmlType.Q5_1 && double.IsInfinity(expected))
                    // d·Σq·x + m·Σx (as ChunkedQuant): an infinite x meets d and m apart, so opposite signs give ∞ − ∞.
                    Assert.True(float.IsNaN(y[r]) || y[r] == expected, $"{type} row {r}, x has {special}: {y[r]}, reference {expected}");
                else Assert.Equal(expected, (double)y[r]);
            }
        }
    }

    [SkippableFact]
    public void Kernel_RejectsBadRowCounts()
    {
        SkipUnlessAvx512();
        Assert.Throws<ArgumentOutOfRangeException>(() => Block32DecodeWide.Dot4(GgmlType.IQ4_NL, null, 18, 5, null, 32, null));
        Assert.Throws<ArgumentOutOfRangeException>(() => Block32DecodeWide.Dot4(GgmlType.IQ4_NL, null, 18, 0, null, 32, null));
        // A row that is not whole blocks (a tail would be dropped silently otherwise).
        Assert.Throws<ArgumentException>(() => Block32DecodeWide.Dot4(GgmlType.IQ4_XS, null, 136, 4, null, 32, null));
        Assert.Throws<ArgumentException>(() => Block32DecodeWide.Dot4(GgmlType.Q5_0, null, 22, 4, null, 48, null));
    }

    /// <summary>
    /// Through MatMul.Forward with AVX-512: decode (1–3 inputs, 5 independent rows) takes the block kernels, bit-identical to
    /// <see cref="Block32DecodeWide.Dot"/> per (row, input), 1 and 2 threads, a row count not a multiple of four.
    /// </summary>
    [SkippableTheory]
    [InlineData("quant/llama-d256.iq4_nl.gguf", GgmlType.IQ4_NL)]
    [InlineData("quant/llama-d256.iq4_xs.gguf", GgmlType.IQ4_XS)]
    [InlineData("quant/llama-d256.q5_0.gguf", GgmlType.Q5_0)]
    [InlineData("quant/llama-d256.q4_1.gguf", GgmlType.Q4_1)]
    [InlineData("quant/llama-d256.q5_1.gguf", GgmlType.Q5_1)]
    public void MatMul_Avx512Decode_TakesTheBlockKernel(string file, GgmlType type)
    {
        SkipUnlessAvx512();
        using var gguf = GgufFile.Open(Fixtures.Model(file));
        GgufTensorInfo info = gguf.Tensors.Where(t => t.Type == type).MaxBy(t => gguf.GetTensor(t.Name).RowCount)!;
        TensorData full = gguf.GetTensor(info.Name);
        int n = full.RowLength, rows = Math.Min(full.RowCount, 103);
        if (rows % 4 == 0) rows--;
        var view = new TensorData(info.Name, type, [n, rows], full.Data, rows * full.RowBytes);
        int results = 0;
        double worst = 0;
        foreach (int threads in new[] { 1, 2 })
            foreach ((int nBatch, bool independent) in new[] { (1, false), (2, false), (3, false), (5, true) })
            {
                float[] x = Input(nBatch * n, nBatch + threads);
                var y = new float[nBatch * rows];
                MatMul.Forward(view, x, nBatch, y, threads, independentRows: independent);
                for (int b = 0; b < nBatch; b++)
                    for (int r = 0; r < rows; r++, results++)
                    {
                        fixed (byte* w = view.Row(r))
                        fixed (float* xp = &x[b * n])
                            Assert.Equal(Block32DecodeWide.Dot(type, w, xp, n), y[b * rows + r]);
                        (double expected, double magnitude) = Reference(type, view.Row(r), x.AsSpan(b * n, n), n);
                        worst = Math.Max(worst, Math.Abs(y[b * rows + r] - expected) / Math.Max(magnitude, 1e-30));
                    }
            }
        Assert.True(worst <= Tolerance);
        output.WriteLine($"{file} '{info.Name}' ({type}) first {rows} rows: {results} (row, input) results, bit-identical to Block32DecodeWide.Dot; max |diff|/Σ|w·x| vs float64 {worst:E2}");
    }
}
