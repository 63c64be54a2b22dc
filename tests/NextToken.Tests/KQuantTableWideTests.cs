using NextToken.Gguf;
using NextToken.Kernels;
using NextToken.Tensors;
using Xunit.Abstractions;

namespace NextToken.Tests;

/// <summary>
/// The AVX-512 Q4_K decode through permute tables (<see cref="KQuantTablesWide"/>): x's arrangement against its scalar
/// reference, the kernel against the float64 product (error reported as a fraction of Σ|w·x|, beside the float kernel's)
/// on real and random rows, 1/2/5 super-blocks, tails of 1–3 rows, inputs spanning decades, tiny and non-finite inputs,
/// and the matmul's AVX-512 Q4_K decode taking it bit-identically per (row, input) across batch sizes, independent rows
/// and 1–2 threads.
/// </summary>
public unsafe class KQuantTableWideTests(ITestOutputHelper output)
{
    private static void SkipUnlessAvx512() =>
        Skip.IfNot(KQuantTablesWide.IsSupported, "the permute-table kernel needs AVX-512 F and BW (this CPU or DOTNET_EnableAVX512=0 has none; MatMul keeps the plane kernels)");

    private static float[] Input(int n, int seed, bool mixed) => KQuantPlaneWideTests.Input(n, seed, mixed);

    /// <summary>Rows against x through Arrange, SubBlockSums and Dot4 in groups of 1–4 (the kernel as decode runs it).</summary>
    private static float[] Dots(byte[] stored, int rows, float[] x)
    {
        int n = x.Length;
        long rowBytes = stored.Length / rows;
        var arranged = new float[n];
        var sums = new float[n / 32];
        var y = new float[rows];
        fixed (byte* w = stored)
        fixed (float* xp = x, ap = arranged, xs = sums, yp = y)
        {
            KQuantTablesWide.Arrange(xp, n, ap);
            KQuantPlanes.SubBlockSums(xp, n, 32, xs);
            for (int first = 0, count = 1; first < rows; first += count, count = count % 4 + 1)
                KQuantTablesWide.Dot4(GgmlType.Q4_K, w + first * rowBytes, rowBytes, Math.Min(count, rows - first), ap, xs, n, yp + first);
        }
        return y;
    }

    /// <summary>The float kernel's results (<see cref="KQuantRows"/> at 512 bits), for comparison.</summary>
    private static float[] FloatDots(byte[] stored, int rows, float[] x)
    {
        int n = x.Length;
        long rowBytes = stored.Length / rows;
        var sums = new float[n / 32];
        var y = new float[rows];
        fixed (byte* w = stored)
        fixed (float* xp = x, xs = sums, yp = y)
        {
            KQuantRows.SubBlockSums(xp, n, 32, xs);
            for (int first = 0; first < rows; first += 4)
                KQuantRows.Dot4(GgmlType.Q4_K, true, w + first * rowBytes, rowBytes, Math.Min(4, rows - first), xp, xs, n, yp + first);
        }
        return y;
    }

    /// <summary>Σ w·x in float64 from the dequantized row, with Σ|w·x| and the minimums' Σ|dmin·m|·Σ|x|.</summary>
    private static (double Exact, double Magnitude, double Offsets) Exact(ReadOnlySpan<byte> stored, float[] x)
    {
        int n = x.Length;
        var row = new float[n];
        Quantized.DequantizeRow(GgmlType.Q4_K, stored, row);
        double exact = 0, magnitude = 0, offsets = 0;
        for (int i = 0; i < n; i++)
        {
            exact += (double)row[i] * x[i];
            magnitude += Math.Abs((double)row[i] * x[i]);
        }
        for (int j = 0; j < n / 32; j++)
        {
            double absX = 0;
            for (int i = 32 * j; i < 32 * j + 32; i++) absX += Math.Abs(x[i]);
            offsets += Math.Abs(KQuantPlaneTests.Offset(GgmlType.Q4_K, stored.Slice(j / 8 * 144, 144), j % 8)) * absX;
        }
        return (exact, magnitude, offsets);
    }

    /// <summary>
    /// The rounding bound: every product exact (the table entries d·sc·q are), each lane's sum rounded once per term
    /// (n/32 terms, the minimums included), then the 16 lanes and two sums added: (n/32 + 24)·2⁻²⁴ of Σ|terms|.
    /// </summary>
    private static double Bound(int n, double magnitude, double offsets) => (n / 32 + 24) * Math.Pow(2, -24) * (magnitude + offsets);

    [SkippableFact]
    public void Arrange_EqualsTheScalarReference()
    {
        SkipUnlessAvx512();
        foreach (int n in new[] { 32, 256, 1280 })
        {
            float[] x = Input(n, n, mixed: true);
            x[n / 2] = float.PositiveInfinity; // its 32 all NaN
            var arranged = new float[n];
            var reference = new float[n];
            fixed (float* xp = x, ap = arranged) KQuantTablesWide.Arrange(xp, n, ap);
            KQuantTablesWide.ArrangeReference(x, reference);
            Assert.Equal(reference.Select(BitConverter.SingleToInt32Bits), arranged.Select(BitConverter.SingleToInt32Bits));
            if (n > 32) Assert.Equal(x[2 * 3 + 1], reference[16 + 3]); // value 7 of the first 32: the fourth odd one
            Assert.True(float.IsNaN(reference[n / 2 / 32 * 32]));
        }
    }

    public static TheoryData<string> RealFiles => new() { "llama-k.q4_k_m.gguf", "quant/llama-d256.q4_k.gguf" };

    /// <summary>Real tensors, groups of 1–4 rows: within the rounding bound of the float64 product, and as close as the float kernel or closer.</summary>
    [SkippableTheory]
    [MemberData(nameof(RealFiles))]
    public void Kernel_OnRealTensors_WithinBoundOfExactProduct(string file)
    {
        SkipUnlessAvx512();
        using var gguf = GgufFile.Open(Fixtures.Model(file));
        int results = 0;
        double worst = 0, worstFloat = 0, worstShare = 0;
        foreach (GgufTensorInfo info in gguf.Tensors.Where(t => t.Type == GgmlType.Q4_K).Take(4))
        {
            TensorData tensor = gguf.GetTensor(info.Name);
            int n = tensor.RowLength, rows = Math.Min(tensor.RowCount, 23);
            byte[] stored = new ReadOnlySpan<byte>(tensor.Data, (int)(rows * tensor.RowBytes)).ToArray();
            foreach (bool mixed in new[] { false, true })
            {
                float[] x = Input(n, results + n, mixed);
                float[] y = Dots(stored, rows, x), floats = FloatDots(stored, rows, x);
                var sums = new float[n / 32];
                fixed (float* xp = x, xs = sums) KQuantPlanes.SubBlockSums(xp, n, 32, xs);
                for (int r = 0; r < rows; r++, results++)
                {
                    ReadOnlySpan<byte> row = stored.AsSpan((int)(r * tensor.RowBytes), (int)tensor.RowBytes);
                    Assert.Equal(KQuantTablesWide.Dot(GgmlType.Q4_K, row, x, sums, n), y[r]); // the 1-row form is the same
                    (double exact, double magnitude, double offsets) = Exact(row, x);
                    double delta = Math.Abs(y[r] - exact), bound = Bound(n, magnitude, offsets);
                    Assert.True(delta <= bound, $"{info.Name} row {r}: {y[r]} (float kernel {floats[r]}) vs exact {exact}, |Δ| {delta:E3} > bound {bound:E3}");
                    if (magnitude > 0)
                    {
                        worst = Math.Max(worst, delta / magnitude);
                        worstFloat = Math.Max(worstFloat, Math.Abs(floats[r] - exact) / magnitude);
                    }
                    if (bound > 0) worstShare = Math.Max(worstShare, delta / bound);
                }
            }
        }
        Assert.True(results > 0, $"{file} has no Q4_K tensor");
        output.WriteLine($"{file}: {results} (row, input) results in groups of 1–4 rows; max |Δ| vs float64 product {worst:E2} of Σ|w·x| (float kernel {worstFloat:E2}); worst |Δ| / bound {worstShare:F3}");
    }

    /// <summary>
    /// Random rows (all scale and minimum bit patterns, f16 d and dmin of real magnitudes) of 1, 2 and 5 super-blocks:
    /// Dot4 of 1–4 rows gives each row bit for bit its one-row result, within the bound of the float64 product, for
    /// plain inputs, inputs spanning 10⁻⁶–10³, and tiny ones (10⁻³⁰, products near float's smallest normals).
    /// </summary>
    [SkippableTheory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(5)]
    public void Kernel_RandomRows_TailsAndSizes(int blocks)
    {
        SkipUnlessAvx512();
        int n = 256 * blocks;
        (byte[] stored, _, int rows) = KQuantPlaneTests.RandomRows(GgmlType.Q4_K, 17 + blocks, n: n, rows: 7);
        long rowBytes = stored.Length / rows;
        double worst = 0, worstFloat = 0;
        foreach (string kind in new[] { "plain", "mixed", "tiny" })
        {
            float[] x = Input(n, 7 * blocks, mixed: kind == "mixed");
            if (kind == "tiny")
                for (int i = 0; i < n; i++) x[i] *= 1e-30f;
            var arranged = new float[n];
            var sums = new float[n / 32];
            var y = new float[4];
            float[] floats = FloatDots(stored, rows, x);
            fixed (byte* w = stored)
            fixed (float* xp = x, ap = arranged, xs = sums, yp = y)
            {
                KQuantTablesWide.Arrange(xp, n, ap);
                KQuantPlanes.SubBlockSums(xp, n, 32, xs);
                for (int first = 0; first < rows; first++)
                    for (int count = 1; count <= Math.Min(4, rows - first); count++)
                    {
                        KQuantTablesWide.Dot4(GgmlType.Q4_K, w + first * rowBytes, rowBytes, count, ap, xs, n, yp);
                        for (int r = 0; r < count; r++)
                        {
                            var row = new ReadOnlySpan<byte>(w + (first + r) * rowBytes, (int)rowBytes);
                            Assert.Equal(KQuantTablesWide.Dot(GgmlType.Q4_K, row, x, sums, n), y[r]);
                            (double exact, double magnitude, double offsets) = Exact(row, x);
                            double delta = Math.Abs(y[r] - exact), bound = Bound(n, magnitude, offsets) + 1e-44;
                            Assert.True(delta <= bound, $"{kind} row {first + r}: {y[r]} vs exact {exact}, |Δ| {delta:E3} > bound {bound:E3}");
                            if (magnitude > 0 && count == 1)
                            {
                                worst = Math.Max(worst, delta / magnitude);
                                worstFloat = Math.Max(worstFloat, Math.Abs(floats[first + r] - exact) / magnitude);
                            }
                        }
                    }
            }
        }
        output.WriteLine($"{blocks} super-block(s), 7 random rows, Dot4 of 1–4 rows equals each row alone bit for bit; plain, 10⁻⁶–10³ and 10⁻³⁰ inputs: max |Δ| vs float64 {worst:E2} of Σ|w·x| (float kernel {worstFloat:E2})");
    }

    /// <summary>An input holding a NaN or an infinity makes every row's dot NaN, as the plane kernels' (random rows).</summary>
    [SkippableFact]
    public void Kernel_NonFiniteInput_GivesNaN()
    {
        SkipUnlessAvx512();
        (byte[] stored, int n, int rows) = KQuantPlaneTests.RandomRows(GgmlType.Q4_K, 2);
        foreach (float bad in new[] { float.NaN, float.PositiveInfinity, float.NegativeInfinity })
        {
            float[] x = Input(n, 5, mixed: false);
            x[300] = bad;
            float[] y = Dots(stored, rows, x);
            Assert.All(y, v => Assert.True(float.IsNaN(v), $"x holding {bad}: {v}, not NaN"));
        }
    }

    [Fact]
    public void BadArguments_GetSpecificErrors()
    {
        var row = new byte[144];
        Assert.Contains("no permute-table kernel for Q6_K", Assert.Throws<NotSupportedException>(() => KQuantTablesWide.Dot(GgmlType.Q6_K, row, new float[256], new float[8], 256)).Message);
        if (!KQuantTablesWide.IsSupported) return;
        Assert.Contains("multiple of 256", Assert.Throws<ArgumentException>(() => KQuantTablesWide.Dot(GgmlType.Q4_K, row, new float[256], new float[8], 200)).Message);
        Assert.Contains("288 row bytes (got 144)", Assert.Throws<ArgumentException>(() => KQuantTablesWide.Dot(GgmlType.Q4_K, row, new float[512], new float[16], 512)).Message);
        Assert.Contains("16 sub-block sums (got 8)", Assert.Throws<ArgumentException>(() => KQuantTablesWide.Dot(GgmlType.Q4_K, new byte[288], new float[512], new float[8], 512)).Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => { fixed (byte* w = row) KQuantTablesWide.Dot4(GgmlType.Q4_K, w, 144, 5, null, null, 256, null); });
    }

    /// <summary>
    /// Through MatMul.Forward with AVX-512: Q4_K decode (1–3 inputs, and 5 independent rows) takes the permute-table
    /// kernel, bit-identical to <see cref="KQuantTablesWide.Dot"/> per (row, input), 1 and 2 threads, a row count that is
    /// not a multiple of four; a Q4_K_M file (Q6_K beside Q4_K, so planes and tables in one model) included. Where 512-bit
    /// operations are split (<see cref="CpuInfo.SplitsWideVectors"/>: Zen 4) it takes the 256-bit planes, bit-identical to <see cref="KQuantPlanes.Dot"/>.
    /// </summary>
    [SkippableTheory]
    [MemberData(nameof(RealFiles))]
    public void MatMul_Avx512Decode_TakesTheKernelForItsCpu(string file)
    {
        SkipUnlessAvx512();
        using var gguf = GgufFile.Open(Fixtures.Model(file));
        GgufTensorInfo info = gguf.Tensors.Where(t => t.Type == GgmlType.Q4_K).MaxBy(t => gguf.GetTensor(t.Name).RowCount)!;
        TensorData full = gguf.GetTensor(info.Name);
        int n = full.RowLength, rows = Math.Min(full.RowCount, 103);
        if (rows % 4 == 0) rows--;
        var view = new TensorData(info.Name, GgmlType.Q4_K, [n, rows], full.Data, rows * full.RowBytes);
        int results = 0;
        foreach (int threads in new[] { 1, 2 })
            foreach ((int nBatch, bool independent) in new[] { (1, false), (2, false), (3, false), (5, true) })
            {
                float[] x = Input(nBatch * n, nBatch + threads, mixed: true);
                var y = new float[nBatch * rows];
                MatMul.Forward(view, x, nBatch, y, threads, independentRows: independent);
                var sums = new float[n / 32];
                var planes = new sbyte[3 * n];
                var scales = new float[n / 256];
                for (int b = 0; b < nBatch; b++)
                {
                    float[] input = x.AsSpan(b * n, n).ToArray();
                    fixed (float* xp = input, xs = sums, sp = scales)
                    fixed (sbyte* pp = planes)
                    {
                        KQuantPlanes.SubBlockSums(xp, n, 32, xs);
                        KQuantPlanes.Split(xp, n, pp, sp);
                    }
                    for (int r = 0; r < rows; r++, results++)
                        Assert.Equal(CpuInfo.SplitsWideVectors ? KQuantPlanes.Dot(GgmlType.Q4_K, view.Row(r), planes, scales, sums, n)
                                                               : KQuantTablesWide.Dot(GgmlType.Q4_K, view.Row(r), input, sums, n), y[b * rows + r]);
                }
            }
        output.WriteLine($"{file} '{info.Name}' (Q4_K) first {rows} rows: {results} (row, input) results of decode batches 1–3 and 5 independent rows, 1 and 2 threads, max |diff| 0 vs {(CpuInfo.SplitsWideVectors ? "KQuantPlanes.Dot (512-bit operations split)" : "KQuantTablesWide.Dot")}");
    }
}
