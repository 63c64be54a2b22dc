using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using NextToken.Gguf;
using NextToken.Kernels;
using NextToken.Tensors;
using Xunit.Abstractions;

namespace NextToken.Tests;

/// <summary>
/// The AVX-512 K-quant decode through 24-bit planes (<see cref="KQuantPlanesWide"/>): its integer sums against the
/// scalar reference exactly, the kernel against the float64 product within the 256-bit kernel's bound (and the
/// difference from the 256-bit plane kernel, which sums the same integers in other lanes), tails of 1–3 rows, and the
/// matmul's AVX-512 decode path taking it bit-identically per (row, input) across batch sizes 1–3, independent rows and
/// 1–2 threads.
/// </summary>
public unsafe class KQuantPlaneWideTests(ITestOutputHelper output)
{
    private static void SkipUnlessAvx512() =>
        Skip.IfNot(KQuantPlanesWide.IsSupported, "the 512-bit plane kernels need AVX-512 F and BW (this CPU or DOTNET_EnableAVX512=0 has none; MatMul keeps the 256-bit ones)");

    /// <summary>Values in ±2, optionally spread over ten decades, with an outlier of 1000 in every other 256-block.</summary>
    internal static float[] Input(int n, int seed, bool mixed)
    {
        var random = new Random(seed);
        float[] x = Enumerable.Range(0, n).Select(_ => (float)(random.NextDouble() * 4 - 2)).ToArray();
        if (mixed)
            for (int i = 0; i < n; i++) x[i] *= MathF.Pow(10, random.Next(-6, 4));
        for (int b = 0; b < n; b += 512) x[b + random.Next(256)] = 1000; // an outlier in every other block
        return x;
    }

    [SkippableTheory]
    [MemberData(nameof(KQuantPlaneTests.PlaneTypes), MemberType = typeof(KQuantPlaneTests))]
    public void Kernel_IntegerSums_EqualTheScalarReferenceExactly(GgmlType type)
    {
        SkipUnlessAvx512();
        int bytes = KQuantPlanes.WeightBlockBytes(type), blocks = 60, n = 256 * blocks;
        var random = new Random(3 + (int)type);
        var stored = new byte[blocks * bytes];
        random.NextBytes(stored);
        Array.Fill(stored, (byte)0xFF, 0, bytes); // the largest quants and scales (Q6_K: scale −1) in block 0
        var planes = new sbyte[3 * n];
        for (int i = 0; i < planes.Length; i++) planes[i] = (sbyte)(i % 5 == 0 ? (random.Next(2) == 0 ? -128 : 127) : random.Next(-128, 128));
        for (int b = 0; b < blocks; b++)
            for (int i = 0; i < 256; i++)
                planes[768 * b + i] = (sbyte)Math.Clamp((int)planes[768 * b + i], -127, 127); // p0's range
        if (type == GgmlType.Q6_K) stored[bytes + 192] = 0x80; // a scale of −128 in block 1
        for (int i = 0; i < 768; i++) planes[768 + i] = i < 256 ? (sbyte)-127 : (sbyte)-128; // against the most negative planes
        var scales = Enumerable.Repeat(1f, blocks).ToArray();
        var sums = new float[n / KQuantRows.SumWidth(type)];
        KQuantPlanes.Reference(type, stored, planes, scales, sums, n, out long[,] expected);
        long largest = 0;
        fixed (byte* w = stored)
        fixed (sbyte* p = planes)
            for (int b = 0; b < blocks; b++)
            {
                (long p0, long p1, long p2) = KQuantPlanesWide.BlockSums(type, w + b * bytes, p + 768 * b);
                Assert.Equal(expected[b, 0], p0);
                Assert.Equal(expected[b, 1], p1);
                Assert.Equal(expected[b, 2], p2);
                largest = Math.Max(largest, Math.Max(Math.Abs(p0), Math.Max(Math.Abs(p1), Math.Abs(p2))));
            }
        output.WriteLine($"{type}: {blocks} random super-blocks × 3 planes (extremes included), 512-bit integer sums equal the reference (largest |sum| {largest}), max |diff| 0");
    }

    public static TheoryData<string, GgmlType> RealCases => new()
    {
        { "llama-k.q4_k_m.gguf", GgmlType.Q4_K },
        { "llama-k.q4_k_m.gguf", GgmlType.Q6_K },
        { "quant/llama-d256.q4_k.gguf", GgmlType.Q4_K },
        { "quant/llama-d256.q6_k.gguf", GgmlType.Q6_K },
        { "quant/llama-d256.q5_k.gguf", GgmlType.Q5_K },
        { "quant/gpt2-d256.q4_k_m.gguf", GgmlType.Q5_K },
        { "quant/llama-d256.q2_k.gguf", GgmlType.Q2_K },
        { "quant/llama-d256.q3_k.gguf", GgmlType.Q3_K },
    };

    /// <summary>
    /// Real tensors, groups of 1–4 rows: the kernel against the float64 product of the dequantized row and the unsplit x,
    /// within the 256-bit plane kernel's bound (the split's Σ|w|·s/2 plus (blocks + 16)·2⁻²³ of Σ|w·x| + Σ|o|·Σ|x|).
    /// </summary>
    [SkippableTheory]
    [MemberData(nameof(RealCases))]
    public void Kernel_OnRealTensors_WithinBoundOfExactProduct(string file, GgmlType type)
    {
        SkipUnlessAvx512();
        using var gguf = GgufFile.Open(Fixtures.Model(file));
        int results = 0;
        double worst = 0, worstShare = 0, worstNarrow = 0;
        foreach (GgufTensorInfo info in gguf.Tensors.Where(t => t.Type == type).Take(4))
        {
            TensorData tensor = gguf.GetTensor(info.Name);
            int n = tensor.RowLength, rows = Math.Min(tensor.RowCount, 23), width = KQuantRows.SumWidth(type), bytes = KQuantPlanes.WeightBlockBytes(type);
            foreach (bool mixed in new[] { false, true })
            {
                float[] x = Input(n, results + n, mixed);
                var planes = new sbyte[3 * n];
                var scales = new float[n / 256];
                var sums = new float[n / width];
                var row = new float[n];
                var y = new float[4];
                fixed (float* xp = x, sp = scales, xs = sums, yp = y)
                fixed (sbyte* pp = planes)
                {
                    KQuantPlanes.Split(xp, n, pp, sp);
                    KQuantPlanes.SubBlockSums(xp, n, width, xs);
                    for (int first = 0, count = 1; first < rows; first += count, count = count % 4 + 1)
                    {
                        int group = Math.Min(count, rows - first);
                        KQuantPlanesWide.Dot4(type, tensor.Data + first * tensor.RowBytes, tensor.RowBytes, group, pp, sp, xs, n, yp);
                        for (int r = first; r < first + group; r++, results++)
                        {
                            var stored = new ReadOnlySpan<byte>(tensor.Data + r * tensor.RowBytes, (int)tensor.RowBytes);
                            Assert.Equal(KQuantPlanesWide.Dot(type, stored, planes, scales, sums, n), y[r - first]); // the 1-row form is the same
                            Quantized.DequantizeRow(type, stored, row);
                            double exact = 0, magnitude = 0, represent = 0, offsets = 0;
                            for (int i = 0; i < n; i++)
                            {
                                exact += (double)row[i] * x[i];
                                magnitude += Math.Abs((double)row[i] * x[i]);
                                represent += Math.Abs(row[i]) * (double)scales[i / 256] / 2;
                            }
                            for (int j = 0; j < n / width; j++)
                            {
                                double absX = 0;
                                for (int i = j * width; i < (j + 1) * width; i++) absX += Math.Abs(x[i]);
                                offsets += Math.Abs(KQuantPlaneTests.Offset(type, stored.Slice(j / (256 / width) * bytes, bytes), j % (256 / width))) * absX;
                            }
                            double bound = represent + (n / 256 + 16) * Math.Pow(2, -23) * (magnitude + offsets);
                            double delta = Math.Abs(y[r - first] - exact);
                            Assert.True(delta <= bound, $"{info.Name} row {r} ({type}): {y[r - first]} (256-bit {KQuantPlanes.Dot(type, stored, planes, scales, sums, n)}) vs exact {exact}, |Δ| {delta:E3} > bound {bound:E3}");
                            if (magnitude > 0)
                            {
                                worst = Math.Max(worst, delta / magnitude);
                                worstNarrow = Math.Max(worstNarrow, Math.Abs(KQuantPlanes.Dot(type, stored, planes, scales, sums, n) - exact) / magnitude);
                            }
                            if (bound > 0) worstShare = Math.Max(worstShare, delta / bound);
                        }
                    }
                }
            }
        }
        Assert.True(results > 0, $"{file} has no {type} tensor");
        output.WriteLine($"{file} {type}: {results} (row, input) results in groups of 1–4 rows; max |Δ| vs float64 product {worst:E2} of Σ|w·x| (256-bit plane kernel {worstNarrow:E2}); worst |Δ| / bound {worstShare:F3}");
    }

    /// <summary>
    /// Dot4 with 1–4 rows gives each row bit for bit its one-row result (Q4_K/Q5_K unpack four rows' scales and minimums
    /// together and take row r's from lane r), and the planes' float64 reference within 10⁻⁵ of a magnitude (the 256-bit
    /// kernel's row against |x|; measured 2·10⁻⁸–2·10⁻⁶): random bytes in every block (all scale and minimum bit patterns).
    /// </summary>
    [SkippableTheory]
    [MemberData(nameof(KQuantPlaneTests.PlaneTypes), MemberType = typeof(KQuantPlaneTests))]
    public void Kernel_FourRows_EqualEachRowAlone(GgmlType type)
    {
        SkipUnlessAvx512();
        (byte[] stored, int n, int rows) = KQuantPlaneTests.RandomRows(type, 11, n: 2048, rows: 7);
        long rowBytes = stored.Length / rows;
        float[] x = Input(n, 7, mixed: true);
        (sbyte[] planes, float[] scales, float[] sums) = KQuantPlaneTests.SplitInput(type, x);
        var y = new float[4];
        double worst = 0;
        fixed (byte* w = stored)
        fixed (float* sp = scales, xs = sums, yp = y)
        fixed (sbyte* pp = planes)
        {
            for (int first = 0; first < rows; first++)
                for (int count = 1; count <= Math.Min(4, rows - first); count++)
                {
                    KQuantPlanesWide.Dot4(type, w + first * rowBytes, rowBytes, count, pp, sp, xs, n, yp);
                    for (int r = 0; r < count; r++)
                    {
                        var row = new ReadOnlySpan<byte>(w + (first + r) * rowBytes, (int)rowBytes);
                        float alone = KQuantPlanesWide.Dot(type, row, planes, scales, sums, n);
                        Assert.Equal(alone, y[r]);
                        double exact = KQuantPlanes.Reference(type, row, planes, scales, sums, n, out _);
                        double magnitude = KQuantPlaneTests.Dots(type, row.ToArray(), 1, x.Select(Math.Abs).ToArray(), wide: false)[0];
                        worst = Math.Max(worst, Math.Abs(y[r] - exact) / Math.Max(Math.Abs(magnitude), 1e-30));
                    }
                }
        }
        output.WriteLine($"{type}: Dot4 of 1–4 rows from each of 7 random rows equals each row alone bit for bit; largest |kernel − planes' float64 reference| {worst:E2} of a magnitude");
        Assert.True(worst < 1e-5, $"{type}: {worst}");
    }

    /// <summary>An input block holding a NaN or an infinity makes every row's dot NaN, as the 256-bit kernel's (random rows, each type).</summary>
    [SkippableTheory]
    [MemberData(nameof(KQuantPlaneTests.PlaneTypes), MemberType = typeof(KQuantPlaneTests))]
    public void Kernel_NonFiniteInput_GivesNaN(GgmlType type)
    {
        SkipUnlessAvx512();
        (byte[] stored, int n, int rows) = KQuantPlaneTests.RandomRows(type, 2);
        foreach (float bad in new[] { float.NaN, float.PositiveInfinity, float.NegativeInfinity })
        {
            float[] x = Input(n, 5, mixed: false);
            x[300] = bad;
            float[] y = KQuantPlaneTests.Dots(type, stored, rows, x, wide: true);
            Assert.All(y, v => Assert.True(float.IsNaN(v), $"{type} with x holding {bad}: {v}, not NaN"));
        }
    }

    [Fact]
    public void BadArguments_GetSpecificErrors()
    {
        var row = new byte[144];
        Assert.Contains("not Q8_0", Assert.Throws<NotSupportedException>(() => KQuantPlanesWide.Dot(GgmlType.Q8_0, row, new sbyte[768], new float[1], new float[8], 256)).Message);
        Assert.Contains("288 row bytes (got 144)", Assert.Throws<ArgumentException>(() => KQuantPlanesWide.Dot(GgmlType.Q4_K, row, new sbyte[1536], new float[2], new float[16], 512)).Message);
        Assert.Contains("16 sub-block sums (got 8)", Assert.Throws<ArgumentException>(() => KQuantPlanesWide.Dot(GgmlType.Q6_K, new byte[210], new sbyte[768], new float[1], new float[8], 256)).Message);
        if (KQuantPlanesWide.IsSupported)
            Assert.Throws<ArgumentOutOfRangeException>(() => { fixed (byte* w = row) KQuantPlanesWide.Dot4(GgmlType.Q4_K, w, 144, 5, null, null, null, 256, null); });
    }

    /// <summary>
    /// Through MatMul.Forward with AVX-512: Q2_K, Q3_K, Q5_K and Q6_K decode (1–3 inputs, and 5 independent rows) takes the 512-bit
    /// plane kernel (Q4_K the permute tables: KQuantTableWideTests), bit-identical to <see cref="KQuantPlanesWide.Dot"/> per (row, input), 1 and 2 threads, a row count that is
    /// not a multiple of four. Where 512-bit operations are split (<see cref="CpuInfo.SplitsWideVectors"/>: Zen 4) it takes the 256-bit
    /// plane kernel, bit-identical to <see cref="KQuantPlanes.Dot"/>.
    /// </summary>
    [SkippableTheory]
    [InlineData("llama-k.q4_k_m.gguf", GgmlType.Q6_K)]
    [InlineData("quant/llama-d256.q6_k.gguf", GgmlType.Q6_K)]
    [InlineData("quant/llama-d256.q5_k.gguf", GgmlType.Q5_K)]
    [InlineData("quant/gpt2-d256.q4_k_m.gguf", GgmlType.Q5_K)]
    [InlineData("quant/llama-d256.q2_k.gguf", GgmlType.Q2_K)]
    [InlineData("quant/llama-d256.q3_k.gguf", GgmlType.Q3_K)]
    public void MatMul_Avx512Decode_TakesThePlaneKernelForItsCpu(string file, GgmlType type)
    {
        SkipUnlessAvx512();
        using var gguf = GgufFile.Open(Fixtures.Model(file));
        GgufTensorInfo info = gguf.Tensors.Where(t => t.Type == type).MaxBy(t => gguf.GetTensor(t.Name).RowCount)!;
        TensorData full = gguf.GetTensor(info.Name);
        int n = full.RowLength, rows = Math.Min(full.RowCount, 103), width = KQuantRows.SumWidth(type);
        if (rows % 4 == 0) rows--;
        var view = new TensorData(info.Name, type, [n, rows], full.Data, rows * full.RowBytes);
        int results = 0;
        foreach (int threads in new[] { 1, 2 })
            foreach ((int nBatch, bool independent) in new[] { (1, false), (2, false), (3, false), (5, true) })
            {
                float[] x = Input(nBatch * n, nBatch + threads, mixed: true);
                var y = new float[nBatch * rows];
                MatMul.Forward(view, x, nBatch, y, threads, independentRows: independent);
                var planes = new sbyte[3 * n];
                var scales = new float[n / 256];
                var sums = new float[n / width];
                for (int b = 0; b < nBatch; b++)
                {
                    fixed (float* xp = &x[b * n], sp = scales, xs = sums)
                    fixed (sbyte* pp = planes)
                    {
                        KQuantPlanes.Split(xp, n, pp, sp);
                        KQuantPlanes.SubBlockSums(xp, n, width, xs);
                    }
                    for (int r = 0; r < rows; r++, results++)
                        Assert.Equal(CpuInfo.SplitsWideVectors ? KQuantPlanes.Dot(type, view.Row(r), planes, scales, sums, n)
                                                               : KQuantPlanesWide.Dot(type, view.Row(r), planes, scales, sums, n), y[b * rows + r]);
                }
            }
        output.WriteLine($"{file} '{info.Name}' ({type}) first {rows} rows: {results} (row, input) results of decode batches 1–3 and 5 independent rows, 1 and 2 threads, max |diff| 0 vs {(CpuInfo.SplitsWideVectors ? "KQuantPlanes.Dot (512-bit operations split)" : "KQuantPlanesWide.Dot")}");
    }
}
