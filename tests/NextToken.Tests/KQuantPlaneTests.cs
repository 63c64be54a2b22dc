using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using NextToken.Gguf;
using NextToken.Kernels;
using NextToken.Tensors;
using Xunit.Abstractions;

namespace NextToken.Tests;

/// <summary>
/// The AVX2 K-quant decode through 24-bit fixed-point activations (<see cref="KQuantPlanes"/>): the split
/// (vector = scalar, digits in range, error within s/2), the kernel's integer sums against the scalar
/// reference exactly, the kernel against the float64 product of the dequantized row and the unsplit x on
/// real tensors and random rows (outliers, zeros, tiny and huge values), argument errors, and the matmul's
/// AVX2 decode path taking it.
/// </summary>
public unsafe class KQuantPlaneTests(ITestOutputHelper output)
{
    /// <summary>The K-quant types the plane kernels decode, for every kernel test of both plane classes.</summary>
    public static TheoryData<GgmlType> PlaneTypes => new() { GgmlType.Q4_K, GgmlType.Q5_K, GgmlType.Q6_K, GgmlType.Q2_K, GgmlType.Q3_K };

    private static void SkipUnlessAvx2() =>
        Skip.IfNot(KQuantPlanes.IsSupported, "the 24-bit plane kernels need AVX2 and FMA (this CPU or DOTNET_EnableAVX2=0 has none; MatMul keeps the float kernels)");

    /// <summary>Inputs of every kind the split must hold: plain, an outlier 1000× the rest, zeros, tiny, huge, mixed magnitudes.</summary>
    private static float[] Input(string kind, int n, int seed)
    {
        var random = new Random(seed);
        float[] x = Enumerable.Range(0, n).Select(_ => (float)(random.NextDouble() * 4 - 2)).ToArray();
        switch (kind)
        {
            case "outlier":
                for (int b = 0; b < n; b += 256) x[b + random.Next(256)] = 1000 * (random.Next(2) * 2 - 1) * 2;
                break;
            case "zeros":
                for (int i = 0; i < n; i++) if (i % 3 != 0 || i < 256) x[i] = 0; // a whole block of zeros, then sparse
                break;
            case "tiny":
                for (int i = 0; i < n; i++) x[i] *= i < 256 ? 1e-38f : i < 512 ? 1e-43f : 1e-20f; // blocks at and below float's normal range
                break;
            case "huge":
                for (int i = 0; i < n; i++) x[i] *= 1e30f;
                break;
            case "mixed":
                for (int i = 0; i < n; i++) x[i] *= MathF.Pow(10, random.Next(-6, 4));
                break;
        }
        return x;
    }

    private static readonly string[] Kinds = ["plain", "outlier", "zeros", "tiny", "huge", "mixed"];

    [Fact]
    public void Split_VectorEqualsReference_DigitsInRange_ErrorWithinHalfScale()
    {
        const int n = 1024;
        double worst = 0;
        foreach (string kind in Kinds.Append("nan"))
        {
            float[] x = Input(kind == "nan" ? "plain" : kind, n, kind.Length);
            if (kind == "nan") { x[300] = float.NaN; x[700] = float.PositiveInfinity; }
            var reference = new sbyte[3 * n];
            var referenceScales = new float[n / 256];
            KQuantPlanes.SplitReference(x, reference, referenceScales);
            var planes = new sbyte[3 * n];
            var scales = new float[n / 256];
            fixed (float* xp = x, sp = scales)
            fixed (sbyte* pp = planes)
                KQuantPlanes.Split(xp, n, pp, sp);
            Assert.Equal(referenceScales, scales);
            Assert.Equal(reference, planes);
            for (int b = 0; b < n / 256; b++)
            {
                float amax = x.Skip(256 * b).Take(256).Max(MathF.Abs), s = scales[b];
                if (kind == "nan" && b is 1 or 2)
                {
                    Assert.True(float.IsNaN(s), $"block {b} holds a NaN or infinity: its scale must be NaN");
                    Assert.All(planes.Skip(768 * b).Take(768), p => Assert.Equal(0, p));
                    continue;
                }
                Assert.Equal(s, MathF.ScaleB(1, MathF.ILogB(s))); // a power of two
                if (amax > 0 && s > float.Epsilon) // not clamped at the smallest subnormal (then exact)
                    Assert.True(s / 2 <= amax / (127 << 16), $"{kind} block {b}: scale {s} too coarse for max|x| {amax}");
                for (int i = 0; i < 256; i++)
                {
                    int at = KQuantPlanes.Position(i), p0 = planes[768 * b + at], p1 = planes[768 * b + 256 + at], p2 = planes[768 * b + 512 + at];
                    Assert.InRange(p0, -127, 127);
                    double error = Math.Abs(x[256 * b + i] - (double)s * (p0 * 65536 + p1 * 256 + p2));
                    Assert.True(error <= s / 2.0, $"{kind} x[{256 * b + i}] = {x[256 * b + i]}: |error| {error} > s/2 = {s / 2.0}");
                    if (amax > 0) worst = Math.Max(worst, error / amax);
                }
            }
        }
        output.WriteLine($"split of {n} values × {Kinds.Length + 1} kinds: vector bytes = scalar reference, digits in range, max |x − s·v| / max|x| of the block {worst:E2} (bound 1/(127·2¹⁶) = {1.0 / (127 << 16):E2})");
        Assert.Contains("multiple of 256", Assert.Throws<ArgumentException>(() => KQuantPlanes.SplitReference(new float[300], new sbyte[900], new float[2])).Message);
        Assert.Contains("plane bytes", Assert.Throws<ArgumentException>(() => KQuantPlanes.SplitReference(new float[256], new sbyte[700], new float[1])).Message);
    }

    /// <summary>The vectorized sub-block sums equal the scalar reference bit for bit (widths 16 and 32, lengths of 128 to 5632, every input kind, NaN).</summary>
    [Fact]
    public void SubBlockSums_VectorEqualsReference()
    {
        int cases = 0;
        foreach (int n in new[] { 128, 256, 384, 2048, 5632 })
            foreach (string kind in Kinds.Append("nan"))
                foreach (int width in new[] { 16, 32 })
                {
                    float[] x = Input(kind == "nan" ? "plain" : kind == "plain" || n % 256 == 0 ? kind : "plain", n, n + width);
                    if (kind == "nan") x[n / 2] = float.NaN;
                    var expected = new float[n / width];
                    var actual = new float[n / width];
                    KQuantPlanes.SubBlockSumsReference(x, width, expected);
                    fixed (float* xp = x, sp = actual)
                        KQuantPlanes.SubBlockSums(xp, n, width, sp);
                    for (int k = 0; k < expected.Length; k++)
                        Assert.Equal(BitConverter.SingleToInt32Bits(expected[k]), BitConverter.SingleToInt32Bits(actual[k]));
                    cases++;
                }
        output.WriteLine($"sub-block sums: {cases} (length, kind, width) cases, vector = scalar reference bit for bit");
    }

    /// <summary>
    /// Random super-blocks (every bit pattern: Q6_K scales down to −128, all 6-bit scales) against planes of
    /// random bytes at the digits' extremes: the kernel's per-plane integer sums equal the reference's exactly.
    /// </summary>
    [SkippableTheory]
    [MemberData(nameof(PlaneTypes))]
    public void Kernel_IntegerSums_EqualTheScalarReferenceExactly(GgmlType type)
    {
        SkipUnlessAvx2();
        int bytes = KQuantPlanes.WeightBlockBytes(type), blocks = 40, n = 256 * blocks;
        var random = new Random((int)type);
        var stored = new byte[blocks * bytes];
        random.NextBytes(stored);
        var planes = new sbyte[3 * n];
        for (int i = 0; i < planes.Length; i++) planes[i] = (sbyte)(i % 7 == 0 ? (random.Next(2) == 0 ? -128 : 127) : random.Next(-128, 128));
        for (int b = 0; b < blocks; b++)
            for (int i = 0; i < 256; i++)
                planes[768 * b + i] = (sbyte)Math.Clamp((int)planes[768 * b + i], -127, 127); // p0's range
        var scales = Enumerable.Repeat(1f, blocks).ToArray();
        var sums = new float[n / KQuantRows.SumWidth(type)];
        KQuantPlanes.Reference(type, stored, planes, scales, sums, n, out long[,] expected);
        long largest = 0;
        fixed (byte* w = stored)
        fixed (sbyte* p = planes)
            for (int b = 0; b < blocks; b++)
            {
                (long p0, long p1, long p2) = KQuantPlanes.BlockSums(type, w + b * bytes, p + 768 * b);
                Assert.Equal(expected[b, 0], p0);
                Assert.Equal(expected[b, 1], p1);
                Assert.Equal(expected[b, 2], p2);
                largest = Math.Max(largest, Math.Max(Math.Abs(p0), Math.Max(Math.Abs(p1), Math.Abs(p2))));
            }
        output.WriteLine($"{type}: {blocks} random super-blocks × 3 planes, integer sums equal (largest |sum| {largest}), max |diff| 0");
    }

    /// <summary>
    /// Super-blocks at the bounds the kernels' int32 sums are sized for (every quant and scale at its largest magnitude:
    /// Q6_K scales −128, Q3_K's sc − 32 = −32 and 31) against planes of one sign at the digits' extremes (p0 ±127,
    /// p1 = p2 = 127 or −128), offsets zero: the dot equals the float64 reference within float32 rounding. Q4_K, Q5_K,
    /// Q2_K and Q3_K add P1·2⁸ + P2 in int32 (Q5_K's reaches 257·7,999,488 ≈ 2.06·10⁹ of 2³¹), where an overflow
    /// would be off by 2³² in a lane.
    /// </summary>
    [SkippableTheory]
    [MemberData(nameof(PlaneTypes))]
    public void Kernel_ExtremeBlocks_SumsDoNotOverflow(GgmlType type)
    {
        SkipUnlessAvx2();
        int bytes = KQuantPlanes.WeightBlockBytes(type), blocks = 4, n = 256 * blocks;
        var stored = new byte[blocks * bytes];
        Array.Fill(stored, (byte)0xFF); // q and 6-bit scales at their largest
        for (int b = 0; b < blocks; b++)
        {
            int at = b * bytes;
            ushort one = BitConverter.HalfToUInt16Bits((Half)1);
            switch (type)
            {
                case GgmlType.Q6_K:
                    stored.AsSpan(at + 192, 16).Fill(0x80); // −128
                    BitConverter.TryWriteBytes(stored.AsSpan(at + 208), one);
                    break;
                case GgmlType.Q3_K:
                    if (b % 2 == 1) stored.AsSpan(at + 96, 12).Clear(); // sc − 32 = −32 (odd blocks), 31 (even)
                    BitConverter.TryWriteBytes(stored.AsSpan(at + 108), one);
                    break;
                case GgmlType.Q2_K:
                    BitConverter.TryWriteBytes(stored.AsSpan(at + 80), one);
                    BitConverter.TryWriteBytes(stored.AsSpan(at + 82), one);
                    break;
                default:
                    BitConverter.TryWriteBytes(stored.AsSpan(at), one);
                    BitConverter.TryWriteBytes(stored.AsSpan(at + 2), one);
                    break;
            }
        }
        var scales = Enumerable.Repeat(1f, blocks).ToArray();
        var sums = new float[n / KQuantRows.SumWidth(type)];
        foreach (int sign in new[] { 1, -1 })
        {
            var planes = new sbyte[3 * n];
            for (int b = 0; b < blocks; b++)
            {
                planes.AsSpan(768 * b, 256).Fill((sbyte)(127 * sign));
                planes.AsSpan(768 * b + 256, 512).Fill((sbyte)(sign > 0 ? 127 : -128));
            }
            double expected = KQuantPlanes.Reference(type, stored, planes, scales, sums, n, out long[,] integers);
            float y = KQuantPlanes.Dot(type, stored, planes, scales, sums, n);
            double relative = Math.Abs(y - expected) / Math.Abs(expected);
            Assert.True(relative <= 4 * Math.Pow(2, -24) * blocks, $"{type} sign {sign}: {y} vs reference {expected}, relative {relative:E2}");
            // Every lane holds an eighth of the block's sums here (uniform blocks): the per-lane value the int32 must hold.
            output.WriteLine($"{type} sign {sign}: per lane P1 {integers[0, 1] / 8}, P1·2⁸ + P2 {(integers[0, 1] * 256 + integers[0, 2]) / 8} (int32 up to {int.MaxValue}), relative |Δ| {relative:E2}");
        }
    }

    /// <summary>
    /// Each row's dot is the same bits whichever group of 1–4 rows it is computed in and at whichever place: MatMul's threads
    /// split the rows at different places, and a batch's inputs each go through the same call.
    /// </summary>
    [SkippableTheory]
    [MemberData(nameof(PlaneTypes))]
    public void Kernel_RowBits_IndependentOfGrouping(GgmlType type)
    {
        SkipUnlessAvx2();
        (byte[] stored, int n, int rows) = RandomRows(type, 300, n: 1536, rows: 7);
        long rowBytes = stored.Length / rows;
        (sbyte[] planes, float[] scales, float[] sums) = SplitInput(type, Input("mixed", n, 5));
        var single = new float[rows];
        var y = new float[4];
        fixed (byte* w = stored)
        fixed (float* sp = scales, xs = sums, yp = y, one = single)
        fixed (sbyte* pp = planes)
        {
            for (int r = 0; r < rows; r++) KQuantPlanes.Dot4(type, w + r * rowBytes, rowBytes, 1, pp, sp, xs, n, one + r);
            for (int group = 2; group <= 4; group++)
                for (int first = 0; first + group <= rows; first++)
                {
                    KQuantPlanes.Dot4(type, w + first * rowBytes, rowBytes, group, pp, sp, xs, n, yp);
                    for (int r = 0; r < group; r++)
                        Assert.Equal(BitConverter.SingleToInt32Bits(single[first + r]), BitConverter.SingleToInt32Bits(y[r]));
                }
        }
    }

    /// <summary>The general-purpose-register unpacking of Q4_K/Q5_K scales and minimums equals the vector one on random 12-byte fields (every bit pattern).</summary>
    [SkippableFact]
    public void ScalesK4Integers_EqualsTheScalarUnpacking()
    {
        SkipUnlessAvx2();
        var random = new Random(7);
        var block = new byte[144];
        fixed (byte* b = block)
            for (int trial = 0; trial < 2000; trial++)
            {
                random.NextBytes(block);
                if (trial < 2) Array.Fill(block, (byte)(trial == 0 ? 0 : 0xFF));
                (Vector256<int> scales, Vector256<int> mins) = ChunkedQuant.ScalesK4Integers(b);
                for (int j = 0; j < 8; j++)
                {
                    Quantized.ScaleMinK4(j, block.AsSpan(4, 12), out int sc, out int m);
                    Assert.Equal(sc, scales[j]);
                    Assert.Equal(m, mins[j]);
                }
            }
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
    /// Real tensors (llama.cpp's quantizer), every input kind, groups of 1–4 rows: the kernel against the float64 product
    /// of the dequantized row and the unsplit x. Bound: the split's Σ|w|·s/2 plus float32 rounding of the combination,
    /// (blocks + 16)·2⁻²³ of M = Σ|w·x| + Σ_j |o_j|·Σ|x| over sub-block j (the offsets o·Σx are formed as in the float
    /// kernel). Prints max |Δ| / Σ|w·x| beside the float kernel's on the same rows.
    /// </summary>
    [SkippableTheory]
    [MemberData(nameof(RealCases))]
    public void Kernel_OnRealTensors_WithinBoundOfExactProduct(string file, GgmlType type)
    {
        SkipUnlessAvx2();
        using var gguf = GgufFile.Open(Fixtures.Model(file));
        int tensors = 0, results = 0;
        double worstNew = 0, worstOld = 0, worstShare = 0;
        var perKind = new Dictionary<string, (double New, double Old)>();
        foreach (GgufTensorInfo info in gguf.Tensors.Where(t => t.Type == type).Take(4))
        {
            TensorData tensor = gguf.GetTensor(info.Name);
            int n = tensor.RowLength, rows = Math.Min(tensor.RowCount, 23);
            foreach (string kind in Kinds)
            {
                float[] x = Input(kind, n, tensors * 10 + kind.Length);
                (double, double, double) worst = CheckRows(type, tensor.Data, tensor.RowBytes, rows, x, $"{info.Name} {kind}");
                worstNew = Math.Max(worstNew, worst.Item1);
                worstOld = Math.Max(worstOld, worst.Item2);
                worstShare = Math.Max(worstShare, worst.Item3);
                (double New, double Old) kept = perKind.GetValueOrDefault(kind);
                perKind[kind] = (Math.Max(kept.New, worst.Item1), Math.Max(kept.Old, worst.Item2));
                results += rows;
            }
            tensors++;
        }
        Assert.True(tensors > 0, $"{file} has no {type} tensor");
        output.WriteLine($"{file} {type}: {tensors} tensors, {results} rows × {string.Join("/", Kinds)} inputs; max |Δ| vs float64 product {worstNew:E2} of Σ|w·x| (float AVX2 kernel {worstOld:E2}); worst |Δ| / bound {worstShare:F3}; per input (new/float): {string.Join(", ", perKind.Select(k => $"{k.Key} {k.Value.New:E1}/{k.Value.Old:E1}"))}");
    }

    /// <summary>
    /// Random rows of 2048 values (TinyLlama's width) with f16 scales of real magnitudes, each input kind: the same bound.
    /// The outlier inputs show the method's cost: the other values of an outlier's block keep 24 bits relative to the outlier.
    /// </summary>
    [SkippableTheory]
    [MemberData(nameof(PlaneTypes))]
    public void Kernel_OnRandomRows_WithinBoundOfExactProduct(GgmlType type)
    {
        SkipUnlessAvx2();
        const int n = 2048, rows = 9;
        int bytes = KQuantPlanes.WeightBlockBytes(type), blocks = n / 256;
        var random = new Random(100 + (int)type);
        var stored = new byte[rows * blocks * bytes];
        random.NextBytes(stored);
        for (int block = 0; block < rows * blocks; block++)
        {
            int at = block * bytes;
            ushort Scale() => BitConverter.HalfToUInt16Bits((Half)(random.NextDouble() * 0.01 + 1e-4));
            if (type == GgmlType.Q6_K) BitConverter.TryWriteBytes(stored.AsSpan(at + 208), Scale());
            else if (type == GgmlType.Q3_K) BitConverter.TryWriteBytes(stored.AsSpan(at + 108), Scale());
            else if (type == GgmlType.Q2_K) { BitConverter.TryWriteBytes(stored.AsSpan(at + 80), Scale()); BitConverter.TryWriteBytes(stored.AsSpan(at + 82), Scale()); }
            else { BitConverter.TryWriteBytes(stored.AsSpan(at), Scale()); BitConverter.TryWriteBytes(stored.AsSpan(at + 2), Scale()); }
        }
        var lines = new List<string>();
        fixed (byte* w = stored)
            foreach (string kind in Kinds)
            {
                (double worstNew, double worstOld, double share) = CheckRows(type, w, blocks * bytes, rows, Input(kind, n, kind.Length * 7), $"random {kind}");
                lines.Add($"{kind} {worstNew:E2} (float kernel {worstOld:E2}, |Δ|/bound {share:F3})");
            }
        output.WriteLine($"{type}, {rows} random rows of {n}: max |Δ| vs float64 product / Σ|w·x| per input: {string.Join("; ", lines)}");
    }

    /// <summary>Rows 0 … rows − 1 in groups of 1–4 against x; returns the worst |Δ| / Σ|w·x| of this kernel and the float one, and the worst |Δ| / bound.</summary>
    private static (double New, double Old, double Share) CheckRows(GgmlType type, byte* w, long rowBytes, int rows, float[] x, string what)
    {
        int n = x.Length, width = KQuantRows.SumWidth(type), blocks = n / 256, bytes = KQuantPlanes.WeightBlockBytes(type);
        var planes = new sbyte[3 * n];
        var scales = new float[blocks];
        var sums = new float[n / width];
        var row = new float[n];
        var y = new float[4];
        var old = new float[4];
        double worstNew = 0, worstOld = 0, share = 0;
        fixed (float* xp = x, sp = scales, xs = sums, yp = y, op = old)
        fixed (sbyte* pp = planes)
        {
            KQuantPlanes.Split(xp, n, pp, sp);
            KQuantPlanes.SubBlockSums(xp, n, width, xs);
            for (int first = 0, count = 1; first < rows; first += count, count = count % 4 + 1)
            {
                int group = Math.Min(count, rows - first);
                KQuantPlanes.Dot4(type, w + first * rowBytes, rowBytes, group, pp, sp, xs, n, yp);
                bool hasOld = Avx2.IsSupported && Fma.IsSupported && Vector256.IsHardwareAccelerated;
                if (hasOld) KQuantRows.Dot4(type, false, w + first * rowBytes, rowBytes, group, xp, xs, n, op);
                for (int r = first; r < first + group; r++)
                {
                    var stored = new ReadOnlySpan<byte>(w + r * rowBytes, (int)rowBytes);
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
                        offsets += Math.Abs(Offset(type, stored.Slice(j / (256 / width) * bytes, bytes), j % (256 / width))) * absX;
                    }
                    double bound = represent + (blocks + 16) * Math.Pow(2, -23) * (magnitude + offsets);
                    double delta = Math.Abs(y[r - first] - exact);
                    Assert.True(delta <= bound, $"{what} row {r} ({type}): {y[r - first]} vs exact {exact}, |Δ| {delta:E3} > bound {bound:E3}");
                    // The scalar reference (float64 over the same split) within the same bound of the dequantized product.
                    double reference = KQuantPlanes.Reference(type, stored, planes, scales, sums, n, out _);
                    Assert.True(Math.Abs(reference - exact) <= bound, $"{what} row {r} ({type}): reference {reference} vs exact {exact}, bound {bound:E3}");
                    if (magnitude > 0)
                    {
                        worstNew = Math.Max(worstNew, delta / magnitude);
                        if (hasOld) worstOld = Math.Max(worstOld, Math.Abs(old[r - first] - exact) / magnitude);
                    }
                    if (bound > 0) share = Math.Max(share, delta / bound);
                }
            }
        }
        return (worstNew, worstOld, share);
    }

    /// <summary>Sub-block j's offset o (value = d·sc·q + o): −dmin·m for Q2_K/Q4_K/Q5_K, −32·d·sc for Q6_K, −4·d·(sc − 32) for Q3_K.</summary>
    internal static double Offset(GgmlType type, ReadOnlySpan<byte> block, int j)
    {
        if (type == GgmlType.Q2_K) return -(double)BitConverter.UInt16BitsToHalf(BitConverter.ToUInt16(block[82..])) * (block[j] >> 4);
        if (type == GgmlType.Q3_K)
        {
            Span<int> sc = stackalloc int[16];
            Quantized.ScalesQ3_K(block.Slice(96, 12), sc);
            return -4.0 * (double)BitConverter.UInt16BitsToHalf(BitConverter.ToUInt16(block[108..])) * sc[j];
        }
        if (type == GgmlType.Q6_K) return -32.0 * (double)BitConverter.UInt16BitsToHalf(BitConverter.ToUInt16(block[208..])) * (sbyte)block[192 + j];
        Quantized.ScaleMinK4(j, block.Slice(4, 12), out _, out int m);
        return -(double)BitConverter.UInt16BitsToHalf(BitConverter.ToUInt16(block[2..])) * m;
    }

    /// <summary>An input block holding a NaN or an infinity (scale NaN, zero planes) makes every row's dot NaN, as the float kernels' (random rows, each type).</summary>
    [SkippableTheory]
    [MemberData(nameof(PlaneTypes))]
    public void Kernel_NonFiniteInput_GivesNaN(GgmlType type)
    {
        SkipUnlessAvx2();
        (byte[] stored, int n, int rows) = RandomRows(type, 1);
        foreach (float bad in new[] { float.NaN, float.PositiveInfinity, float.NegativeInfinity })
        {
            float[] x = Input("plain", n, 3);
            x[n - 5] = bad;
            float[] y = Dots(type, stored, rows, x, wide: false);
            Assert.All(y, v => Assert.True(float.IsNaN(v), $"{type} with x holding {bad}: {v}, not NaN"));
        }
    }

    /// <summary>Rows of random bytes with f16 scales of real magnitudes at each type's d (and dmin).</summary>
    internal static (byte[] Stored, int N, int Rows) RandomRows(GgmlType type, int seed, int n = 1024, int rows = 5)
    {
        int bytes = KQuantPlanes.WeightBlockBytes(type), blocks = n / 256;
        var random = new Random(seed + (int)type);
        var stored = new byte[rows * blocks * bytes];
        random.NextBytes(stored);
        for (int at = 0; at < stored.Length; at += bytes)
        {
            ushort Scale() => BitConverter.HalfToUInt16Bits((Half)(random.NextDouble() * 0.01 + 1e-4));
            int[] places = type switch { GgmlType.Q6_K => [208], GgmlType.Q3_K => [108], GgmlType.Q2_K => [80, 82], _ => [0, 2] };
            foreach (int place in places) BitConverter.TryWriteBytes(stored.AsSpan(at + place), Scale());
        }
        return (stored, n, rows);
    }

    /// <summary>x as the plane kernels take it: three planes, a scale per 256 values and the type's sub-block sums.</summary>
    internal static (sbyte[] Planes, float[] Scales, float[] Sums) SplitInput(GgmlType type, float[] x)
    {
        int n = x.Length;
        var planes = new sbyte[3 * n];
        var scales = new float[n / 256];
        var sums = new float[n / KQuantRows.SumWidth(type)];
        fixed (float* xp = x, sp = scales, xs = sums)
        fixed (sbyte* pp = planes)
        {
            KQuantPlanes.Split(xp, n, pp, sp);
            KQuantPlanes.SubBlockSums(xp, n, KQuantRows.SumWidth(type), xs);
        }
        return (planes, scales, sums);
    }

    /// <summary>All rows against x through Split, SubBlockSums and Dot4 (the 512-bit kernel with <paramref name="wide"/>), in groups of 1–4.</summary>
    internal static float[] Dots(GgmlType type, byte[] stored, int rows, float[] x, bool wide)
    {
        int n = x.Length;
        long rowBytes = stored.Length / rows;
        var planes = new sbyte[3 * n];
        var scales = new float[n / 256];
        var sums = new float[n / KQuantRows.SumWidth(type)];
        var y = new float[rows];
        fixed (byte* w = stored)
        fixed (float* xp = x, sp = scales, xs = sums, yp = y)
        fixed (sbyte* pp = planes)
        {
            KQuantPlanes.Split(xp, n, pp, sp);
            KQuantPlanes.SubBlockSums(xp, n, KQuantRows.SumWidth(type), xs);
            for (int first = 0, count = 1; first < rows; first += count, count = count % 4 + 1)
            {
                int group = Math.Min(count, rows - first);
                if (wide) KQuantPlanesWide.Dot4(type, w + first * rowBytes, rowBytes, group, pp, sp, xs, n, yp + first);
                else KQuantPlanes.Dot4(type, w + first * rowBytes, rowBytes, group, pp, sp, xs, n, yp + first);
            }
        }
        return y;
    }

    [Fact]
    public void BadArguments_GetSpecificErrors()
    {
        var row = new byte[144];
        Assert.Contains("not Q8_0", Assert.Throws<NotSupportedException>(() => KQuantPlanes.Dot(GgmlType.Q8_0, row, new sbyte[768], new float[1], new float[8], 256)).Message);
        Assert.Contains("multiple of 256", Assert.Throws<ArgumentException>(() => KQuantPlanes.Dot(GgmlType.Q4_K, row, new sbyte[768], new float[1], new float[8], 200)).Message);
        Assert.Contains("288 row bytes (got 144)", Assert.Throws<ArgumentException>(() => KQuantPlanes.Dot(GgmlType.Q4_K, row, new sbyte[1536], new float[2], new float[16], 512)).Message);
        Assert.Contains("768 plane bytes (got 512)", Assert.Throws<ArgumentException>(() => KQuantPlanes.Dot(GgmlType.Q4_K, row, new sbyte[512], new float[1], new float[8], 256)).Message);
        Assert.Contains("16 sub-block sums (got 8)", Assert.Throws<ArgumentException>(() => KQuantPlanes.Dot(GgmlType.Q6_K, new byte[210], new sbyte[768], new float[1], new float[8], 256)).Message);
        if (KQuantPlanes.IsSupported)
            Assert.Throws<ArgumentOutOfRangeException>(() => { fixed (byte* w = row) KQuantPlanes.Dot4(GgmlType.Q4_K, w, 144, 5, null, null, null, 256, null); });
    }

    /// <summary>
    /// Through <see cref="MatMul.Forward(in TensorData, ReadOnlySpan{float}, int, Span{float}, int, bool, InterleavedBlock32.Cache?, bool)"/>:
    /// with AVX2 and no AVX-512, Q2_K–Q6_K decode (1–3 inputs, and independent rows) takes the plane kernel
    /// (<see cref="KQuantPlanes.Decodes"/>): bit-identical to
    /// <see cref="KQuantPlanes.Dot"/> per (row, input), 1 and 2 threads, a row count that is not a multiple of four.
    /// </summary>
    [SkippableTheory]
    [InlineData("llama-k.q4_k_m.gguf", GgmlType.Q6_K)]
    [InlineData("quant/llama-d256.q6_k.gguf", GgmlType.Q6_K)]
    [InlineData("quant/llama-d256.q5_k.gguf", GgmlType.Q5_K)]
    [InlineData("quant/gpt2-d256.q4_k_m.gguf", GgmlType.Q5_K)]
    [InlineData("llama-k.q4_k_m.gguf", GgmlType.Q4_K)]
    [InlineData("quant/llama-d256.q4_k.gguf", GgmlType.Q4_K)]
    [InlineData("quant/llama-d256.q2_k.gguf", GgmlType.Q2_K)]
    [InlineData("quant/llama-d256.q3_k.gguf", GgmlType.Q3_K)]
    public void MatMul_Avx2Decode_TakesThePlaneKernel(string file, GgmlType type)
    {
        SkipUnlessAvx2();
        Skip.If(Vector512.IsHardwareAccelerated && Avx512F.IsSupported, "with AVX-512 decode keeps the 512-bit float kernels (run under DOTNET_EnableAVX512=0 DOTNET_EnableAVXVNNI=0)");
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
                float[] x = Input("mixed", nBatch * n, nBatch + threads);
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
                        Assert.Equal(KQuantPlanes.Dot(type, view.Row(r), planes, scales, sums, n), y[b * rows + r]);
                }
            }
        output.WriteLine($"{file} '{info.Name}' ({type}) first {rows} rows: {results} (row, input) results of decode batches 1–3 and 5 independent rows, 1 and 2 threads, max |diff| 0 vs KQuantPlanes.Dot");
    }
}
