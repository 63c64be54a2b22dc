using System.Runtime.Intrinsics.X86;
using NextToken.Gguf;
using NextToken.Kernels;
using NextToken.Tensors;
using Xunit.Abstractions;

namespace NextToken.Tests;

/// <summary>
/// <c>--q8-activations</c> for K-quant rows (<see cref="KQuantActivations"/>): the activation in
/// 8-bit blocks of 256, integer dots against Q2_K … Q6_K super-blocks, in both instruction
/// forms (AVX-VNNI <c>vpdpwssd</c>, AVX2 <c>vpmaddwd</c>), against the scalar integer reference and
/// against the exact product.
/// </summary>
public unsafe class KQuantActivationTests(ITestOutputHelper output)
{
    public static TheoryData<string, GgmlType, KQuantForm> KernelCases()
    {
        var cases = new TheoryData<string, GgmlType, KQuantForm>();
        foreach (KQuantForm vnni in Enum.GetValues<KQuantForm>())
        {
            cases.Add("llama-k.q4_k_m.gguf", GgmlType.Q4_K, vnni);
            cases.Add("llama-k.q4_k_m.gguf", GgmlType.Q6_K, vnni);
            cases.Add("quant/llama-d256.q5_k.gguf", GgmlType.Q5_K, vnni);
            cases.Add("quant/gpt2-d256.q4_k_m.gguf", GgmlType.Q5_K, vnni);
            cases.Add("quant/llama-d256.q2_k.gguf", GgmlType.Q2_K, vnni);
            cases.Add("quant/llama-d256.q3_k.gguf", GgmlType.Q3_K, vnni);
        }
        return cases;
    }

    [Fact]
    public void Quantize_BlocksOf256_ScaleRoundingAndSumsOf16()
    {
        var random = new Random(3);
        float[] x = Enumerable.Range(0, 768).Select(i => (float)((random.NextDouble() * 2 - 1) * (1 + i / 256))).ToArray();
        var quants = new sbyte[x.Length];
        var scales = new float[3];
        var sums = new short[48];
        KQuantActivations.Quantize(x, quants, scales, sums);
        for (int b = 0; b < 3; b++)
            Assert.Equal(x.Skip(b * 256).Take(256).Max(Math.Abs) / 127, scales[b]);
        for (int i = 0; i < x.Length; i++)
            Assert.Equal((sbyte)MathF.Round(x[i] * (1 / scales[i / 256])), quants[i]);
        for (int k = 0; k < 48; k++)
            Assert.Equal(quants.Skip(16 * k).Take(16).Sum(q => q), sums[k]);
        var zeros = new float[256];
        KQuantActivations.Quantize(zeros, quants, scales, sums);
        Assert.Equal(0, scales[0]);
        Assert.All(quants.Take(256), q => Assert.Equal(0, q));
        Assert.Contains("multiple of 256", Assert.Throws<ArgumentException>(() => KQuantActivations.Quantize(new float[300], quants, scales, sums)).Message);
    }

    /// <summary>
    /// With f16 scales of 1 and an activation whose block maximum is 127 (scale exactly 1), every
    /// float step of the kernels adds integers below 2²⁴, so the result must equal the reference's
    /// integer total exactly: random super-blocks (every bit pattern, signed Q6_K scales down to −128),
    /// 1 to 4 rows per call, both instruction forms.
    /// </summary>
    [SkippableTheory]
    [InlineData(GgmlType.Q4_K, KQuantForm.Avx2)]
    [InlineData(GgmlType.Q5_K, KQuantForm.Avx2)]
    [InlineData(GgmlType.Q6_K, KQuantForm.Avx2)]
    [InlineData(GgmlType.Q4_K, KQuantForm.Vnni)]
    [InlineData(GgmlType.Q5_K, KQuantForm.Vnni)]
    [InlineData(GgmlType.Q6_K, KQuantForm.Vnni)]
    [InlineData(GgmlType.Q4_K, KQuantForm.Wide)]
    [InlineData(GgmlType.Q5_K, KQuantForm.Wide)]
    [InlineData(GgmlType.Q6_K, KQuantForm.Wide)]
    [InlineData(GgmlType.Q2_K, KQuantForm.Avx2)]
    [InlineData(GgmlType.Q3_K, KQuantForm.Avx2)]
    [InlineData(GgmlType.Q2_K, KQuantForm.Vnni)]
    [InlineData(GgmlType.Q3_K, KQuantForm.Vnni)]
    [InlineData(GgmlType.Q2_K, KQuantForm.Wide)]
    [InlineData(GgmlType.Q3_K, KQuantForm.Wide)]
    public void Kernel_IntegerSums_EqualTheScalarReferenceExactly(GgmlType type, KQuantForm vnni)
    {
        SkipUnless(vnni);
        // One, two and five super-blocks per row: the row loop's first, middle and last block.
        foreach (int n in new[] { 256, 512, 1280 }) IntegerSumsEqualTheReference(type, vnni, n);
    }

    private void IntegerSumsEqualTheReference(GgmlType type, KQuantForm vnni, int n)
    {
        const int rows = 4;
        int bytes = KQuantActivations.BlockBytes(type), blocks = n / 256;
        var random = new Random((int)type * 3 + (int)vnni);
        var stored = new byte[rows * blocks * bytes];
        random.NextBytes(stored);
        for (int block = 0; block < rows * blocks; block++)
        {
            // f16 1.0 for d (and dmin): integer results stay exact in float.
            int at = block * bytes + DAt(type);
            stored[at] = 0x00; stored[at + 1] = 0x3C;
            if (HasMinimum(type)) { stored[at + 2] = 0x00; stored[at + 3] = 0x3C; }
        }
        float[] x = Enumerable.Range(0, n).Select(_ => (float)random.Next(-127, 128)).ToArray();
        for (int b = 0; b < blocks; b++) x[256 * b] = b % 2 == 0 ? 127 : -127; // each block's scale exactly 1
        var quants = new sbyte[n];
        var scales = new float[blocks];
        var sums = new short[n / 16];
        KQuantActivations.Quantize(x, quants, scales, sums);
        Assert.All(scales, d => Assert.Equal(1f, d));
        var expected = new long[rows];
        for (int r = 0; r < rows; r++)
        {
            KQuantActivations.Reference(type, stored.AsSpan(r * blocks * bytes, blocks * bytes), quants, scales, sums, out var integers);
            expected[r] = integers.Sum(i => (long)i.Sum - i.Offset);
            Assert.True(integers.Sum(i => Math.Abs((long)i.Sum) + Math.Abs((long)i.Offset)) < 1 << 24, "the test's integers must stay exact in float");
        }
        fixed (byte* w = stored)
        fixed (sbyte* q = quants)
        fixed (float* d = scales)
        fixed (short* s = sums)
            for (int count = 1; count <= rows; count++)
                for (int first = 0; first + count <= rows; first++)
                {
                    var y = new float[4];
                    fixed (float* yp = y)
                        KQuantActivations.Dot4(type, vnni, w + first * blocks * bytes, blocks * bytes, count, q, d, s, blocks, yp);
                    for (int r = 0; r < count; r++)
                        Assert.Equal((float)expected[first + r], y[r]);
                }
        output.WriteLine($"{type} {Form(vnni)}: {rows} random rows of {n}, integer totals {string.Join(", ", expected)}, max |diff| 0");
    }

    /// <summary>
    /// Extreme super-blocks — every quant at its maximum (0xFF bytes), zero, or alternating, the largest 6-bit scales and
    /// Q6_K's −128 — against activations of ±127 (all +, all −, alternating), 1, 2 and 5 super-blocks, 1 to 3 rows: every
    /// form this CPU has gives the AVX2 form's floats bit for bit (the same integers in the same lanes, the same float
    /// steps; these sums pass 2²⁴, so float rounding is part of the comparison), and each is within float rounding of the
    /// scalar reference.
    /// </summary>
    [SkippableTheory]
    [InlineData(GgmlType.Q4_K)]
    [InlineData(GgmlType.Q5_K)]
    [InlineData(GgmlType.Q6_K)]
    [InlineData(GgmlType.Q2_K)]
    [InlineData(GgmlType.Q3_K)]
    public void Kernel_ExtremeBlocks_AllFormsBitIdentical(GgmlType type)
    {
        SkipUnless(KQuantForm.Avx2);
        KQuantForm[] forms = Enum.GetValues<KQuantForm>().Where(f => f == KQuantForm.Avx2 || (f == KQuantForm.Vnni ? AvxVnni.IsSupported : Avx512BW.IsSupported)).ToArray();
        int bytes = KQuantActivations.BlockBytes(type), cases = 0;
        double worst = 0;
        foreach (int blocks in new[] { 1, 2, 5 })
            foreach (byte quant in new byte[] { 0xFF, 0x00, 0xAA })
                foreach (int sign in new[] { 1, -1, 0 })
                {
                    int n = 256 * blocks;
                    var stored = new byte[3 * blocks * bytes];
                    for (int block = 0; block < 3 * blocks; block++)
                    {
                        Span<byte> b = stored.AsSpan(block * bytes, bytes);
                        for (int i = 0; i < bytes; i++) b[i] = (byte)(quant == 0xAA && i % 2 == 1 ? 0x55 : quant);
                        if (type == GgmlType.Q6_K)
                        {
                            b.Slice(192, 16).Fill(block % 2 == 0 ? (byte)0x80 : (byte)0x7F); // scales −128 or 127
                            b[208] = 0x00; b[209] = 0x3C;
                        }
                        else if (type == GgmlType.Q3_K)
                        {
                            b.Slice(96, 12).Fill(block % 2 == 0 ? (byte)0x00 : (byte)0xFF); // scales −32 or 31
                            b[108] = 0x00; b[109] = (byte)(block % 3 == 2 ? 0x00 : 0x3C); // d 1, or 0
                        }
                        else if (type == GgmlType.Q2_K)
                        {
                            b.Slice(0, 16).Fill(0xFF); // every scale and minimum 15
                            b[80] = 0x00; b[81] = (byte)(block % 3 == 2 ? 0x00 : 0x3C); b[82] = 0x00; b[83] = 0x3C; // d 1 or 0, dmin 1
                        }
                        else
                        {
                            b.Slice(4, 12).Fill(0xFF); // every scale and minimum 63
                            b[0] = 0x00; b[1] = 0x3C; b[2] = 0x00; b[3] = 0x3C;
                        }
                    }
                    float[] x = Enumerable.Range(0, n).Select(i => (float)(sign == 0 ? (i % 2 == 0 ? 127 : -127) : 127 * sign)).ToArray();
                    var quants = new sbyte[n];
                    var scales = new float[blocks];
                    var sums = new short[n / 16];
                    KQuantActivations.Quantize(x, quants, scales, sums);
                    for (int count = 1; count <= 3; count++)
                    {
                        var first = new float[count];
                        foreach (KQuantForm form in forms)
                        {
                            var y = new float[count];
                            fixed (byte* w = stored)
                            fixed (sbyte* q = quants)
                            fixed (float* d = scales, yp = y)
                            fixed (short* s = sums)
                                KQuantActivations.Dot4(type, form, w + (3 - count) * blocks * bytes, blocks * bytes, count, q, d, s, blocks, yp);
                            if (form == KQuantForm.Avx2) y.CopyTo(first, 0);
                            for (int r = 0; r < count; r++)
                            {
                                Assert.True(y[r] == first[r], $"{type} {Form(form)}, {blocks} blocks, bytes {quant:X2}, sign {sign}, row {r} of {count}: {y[r]} vs AVX2 {first[r]}");
                                float reference = KQuantActivations.Reference(type, stored.AsSpan((3 - count + r) * blocks * bytes, blocks * bytes), quants, scales, sums, out var integers);
                                double magnitude = integers.Sum(i => Math.Abs((double)i.Sum) + Math.Abs((double)i.Offset));
                                worst = Math.Max(worst, Math.Abs(y[r] - reference) / Math.Max(magnitude, 1));
                                Assert.True(Math.Abs(y[r] - reference) <= 1e-6 * magnitude, $"{type} {Form(form)}: {y[r]} vs reference {reference}");
                            }
                        }
                        cases++;
                    }
                }
        output.WriteLine($"{type}: {cases} extreme cases × forms {string.Join(", ", forms.Select(Form))}: bit-identical; max |Δ| vs reference {worst:E2} of Σ|integer terms|");
    }

    /// <summary>
    /// Real tensors (llama.cpp's quantizer): each kernel against the scalar reference (same integers,
    /// float rounding only: within 1e-5 of Σ|term|), and against the exact float64 product of the
    /// dequantized row and the unquantized x within the activation's rounding bound Σ|w|·d_x/2.
    /// </summary>
    [SkippableTheory]
    [MemberData(nameof(KernelCases))]
    public void Kernel_OnRealTensors_MatchesReferenceAndExactProduct(string file, GgmlType type, KQuantForm vnni)
    {
        SkipUnless(vnni);
        using var gguf = GgufFile.Open(Fixtures.Model(file));
        var random = new Random(11);
        int tensors = 0;
        double worstReference = 0, worstExact = 0;
        foreach (GgufTensorInfo info in gguf.Tensors.Where(t => t.Type == type).Take(3))
        {
            TensorData tensor = gguf.GetTensor(info.Name);
            int n = tensor.RowLength, blocks = n / 256, rows = Math.Min(tensor.RowCount, 67);
            float[] x = Enumerable.Range(0, n).Select(_ => (float)(random.NextDouble() * 4 - 2)).ToArray();
            var quants = new sbyte[n];
            var scales = new float[blocks];
            var sums = new short[n / 16];
            KQuantActivations.Quantize(x, quants, scales, sums);
            var row = new float[n];
            var y = new float[4];
            for (int r = 0; r < rows; r += 4)
            {
                int count = Math.Min(4, rows - r);
                fixed (sbyte* q = quants)
                fixed (float* d = scales, yp = y)
                fixed (short* s = sums)
                    KQuantActivations.Dot4(type, vnni, tensor.Data + r * tensor.RowBytes, tensor.RowBytes, count, q, d, s, blocks, yp);
                for (int k = 0; k < count; k++)
                {
                    float reference = KQuantActivations.Reference(type, tensor.Row(r + k), quants, scales, sums, out _);
                    Quantized.DequantizeRow(type, tensor.Row(r + k), row);
                    double exact = 0, magnitude = 0, bound = 0;
                    for (int i = 0; i < n; i++)
                    {
                        exact += (double)row[i] * x[i];
                        magnitude += Math.Abs((double)row[i] * x[i]);
                        bound += Math.Abs(row[i]) * scales[i / 256] / 2;
                    }
                    worstReference = Math.Max(worstReference, Math.Abs(y[k] - reference));
                    worstExact = Math.Max(worstExact, Math.Abs(y[k] - exact) / magnitude);
                    Assert.True(Math.Abs(y[k] - reference) <= 1e-5 * magnitude, $"{info.Name} row {r + k}: {y[k]} vs reference {reference}");
                    Assert.True(Math.Abs(y[k] - exact) <= bound * 1.001 + 1e-5 * magnitude, $"{info.Name} row {r + k}: {y[k]} vs exact {exact} (bound {bound})");
                }
            }
            tensors++;
        }
        Assert.True(tensors > 0, $"{file} has no {type} tensor");
        output.WriteLine($"{file} {type} {Form(vnni)}: {tensors} tensors, max |Δ| vs scalar reference {worstReference:E2}, max |Δ| vs exact product {worstExact:P3} of Σ|w·x|");
    }

    /// <summary>
    /// Through <see cref="MatMul.Forward(in TensorData, ReadOnlySpan{float}, int, Span{float}, int, bool, InterleavedBlock32.Cache?, bool)"/>
    /// with quantized activations: decode (1, 2 inputs) and prompt batches (5, 9), a row count that is
    /// not a multiple of four, one and two threads, against the public single-row dot of each input.
    /// </summary>
    [SkippableTheory]
    [InlineData("llama-k.q4_k_m.gguf", GgmlType.Q4_K)]
    [InlineData("llama-k.q4_k_m.gguf", GgmlType.Q6_K)]
    [InlineData("quant/llama-d256.q5_k.gguf", GgmlType.Q5_K)]
    [InlineData("quant/llama-d256.q2_k.gguf", GgmlType.Q2_K)]
    [InlineData("quant/llama-d256.q3_k.gguf", GgmlType.Q3_K)]
    public void MatMul_WithQuantizedActivations_EqualsTheRowByRowIntegerDot(string file, GgmlType type)
    {
        Skip.IfNot(KQuantActivations.IsSupported(type), "quantized activations need AVX2 (the matmul keeps the exact path, tested elsewhere)");
        output.WriteLine(AvxVnni.IsSupported ? "AVX-VNNI kernel" : "AVX2 kernel (vpmaddubsw + vpmaddwd)");
        using var gguf = GgufFile.Open(Fixtures.Model(file));
        GgufTensorInfo info = gguf.Tensors.Where(t => t.Type == type).MaxBy(t => gguf.GetTensor(t.Name).RowCount)!;
        TensorData full = gguf.GetTensor(info.Name);
        int n = full.RowLength, rows = Math.Min(full.RowCount, 103), blocks = n / 256;
        if (rows % 4 == 0) rows--;
        var view = new TensorData(info.Name, type, [n, rows], full.Data, rows * full.RowBytes);
        double worst = 0;
        foreach (int nBatch in new[] { 1, 2, 5, 9 })
            foreach (int threads in new[] { 1, 2 })
            {
                var random = new Random(nBatch * 10 + threads);
                float[] x = Enumerable.Range(0, nBatch * n).Select(_ => (float)(random.NextDouble() * 6 - 3)).ToArray();
                var y = new float[nBatch * rows];
                MatMul.Forward(view, x, nBatch, y, threads, quantizeActivations: true);
                var quants = new sbyte[n];
                var scales = new float[blocks];
                var sums = new short[n / 16];
                for (int b = 0; b < nBatch; b++)
                {
                    KQuantActivations.Quantize(x.AsSpan(b * n, n), quants, scales, sums);
                    for (int r = 0; r < rows; r++)
                    {
                        float expected = KQuantActivations.Dot(type, view.Row(r), quants, scales, sums);
                        worst = Math.Max(worst, Math.Abs(y[b * rows + r] - expected));
                        Assert.True(y[b * rows + r] == expected, $"{info.Name} input {b} of {nBatch}, row {r}, {threads} threads: {y[b * rows + r]} vs {expected}");
                    }
                }
            }
        output.WriteLine($"{file} '{info.Name}' ({type}) first {rows} rows, batches 1, 2, 5, 9 on 1 and 2 threads: max |diff| {worst} vs the single-row dot");
    }

    /// <summary>The prompt kernel (one row, four inputs) against the decode kernel per input, every instruction form (the 512-bit
    /// decode against the 256-bit prompt kernel the CPU takes): bit-identical.</summary>
    [SkippableTheory]
    [MemberData(nameof(KernelCases))]
    public void Row4Inputs_EqualsTheDecodeKernelPerInput(string file, GgmlType type, KQuantForm vnni)
    {
        SkipUnless(vnni);
        using var gguf = GgufFile.Open(Fixtures.Model(file));
        TensorData tensor = gguf.GetTensor(gguf.Tensors.First(t => t.Type == type).Name);
        int n = tensor.RowLength, blocks = n / 256, rows = Math.Min(tensor.RowCount, 9), nOut = 11;
        var random = new Random(17);
        float[] x = Enumerable.Range(0, 4 * n).Select(_ => (float)(random.NextDouble() * 4 - 2)).ToArray();
        var quants = new sbyte[4 * n];
        var scales = new float[4 * blocks];
        var sums = new short[4 * n / 16];
        for (int b = 0; b < 4; b++)
            KQuantActivations.Quantize(x.AsSpan(b * n, n), quants.AsSpan(b * n, n), scales.AsSpan(b * blocks, blocks), sums.AsSpan(b * n / 16, n / 16));
        var y = new float[4 * nOut];
        var one = new float[4];
        fixed (sbyte* q = quants)
        fixed (float* d = scales, yp = y, op = one)
        fixed (short* s = sums)
            for (int r = 0; r < rows; r++)
            {
                KQuantActivations.Row4Inputs(type, vnni == KQuantForm.Vnni || (vnni == KQuantForm.Wide && AvxVnni.IsSupported), tensor.Data + r * tensor.RowBytes, q, d, s, n, blocks, yp + r, nOut);
                for (int b = 0; b < 4; b++)
                {
                    KQuantActivations.Dot4(type, vnni, tensor.Data + r * tensor.RowBytes, tensor.RowBytes, 1, q + b * n, d + b * blocks, s + b * n / 16, blocks, op);
                    Assert.True(one[0] == y[b * nOut + r], $"{tensor.Name} row {r} input {b}: {y[b * nOut + r]} vs {one[0]}");
                }
            }
        output.WriteLine($"{file} '{tensor.Name}' ({type}) {Form(vnni)}: {rows} rows × 4 inputs, max |diff| 0 against the decode kernel");
    }

    [Fact]
    public void BadArguments_GetClearErrors()
    {
        var quants = new sbyte[256];
        var scales = new float[1];
        var sums = new short[16];
        Assert.Contains("Q8_0", Assert.Throws<NotSupportedException>(() => KQuantActivations.Dot(GgmlType.Q8_0, new byte[256], quants, scales, sums)).Message);
        Assert.Contains("144 bytes", Assert.Throws<ArgumentException>(() => KQuantActivations.Dot(GgmlType.Q4_K, new byte[100], quants, scales, sums)).Message);
        Assert.Contains("16 sums", Assert.Throws<ArgumentException>(() => KQuantActivations.Dot(GgmlType.Q6_K, new byte[210], quants, scales, new short[8])).Message);
    }

    /// <summary>Where the super-block's f16 d is (dmin follows it in Q2_K, Q4_K and Q5_K).</summary>
    private static int DAt(GgmlType type) => type switch { GgmlType.Q2_K => 80, GgmlType.Q3_K => 108, GgmlType.Q6_K => 208, _ => 0 };

    private static bool HasMinimum(GgmlType type) => type is GgmlType.Q2_K or GgmlType.Q4_K or GgmlType.Q5_K;

    private static void SkipUnless(KQuantForm form)
    {
        Skip.IfNot(Avx2.IsSupported, "the integer kernels need AVX2 (without it Dot runs the scalar reference, tested through MatMul elsewhere)");
        if (form == KQuantForm.Vnni) Skip.IfNot(AvxVnni.IsSupported, "this CPU (or DOTNET_EnableAVXVNNI=0) has no AVX-VNNI; the vpmaddwd form runs instead");
        if (form == KQuantForm.Wide) Skip.IfNot(Avx512BW.IsSupported, "this CPU (or DOTNET_EnableAVX512=0) has no AVX-512 BW; a 256-bit form runs instead");
    }

    private static string Form(KQuantForm form) => form switch
    {
        KQuantForm.Vnni => "AVX-VNNI (vpdpwssd)",
        KQuantForm.Wide => "512-bit (vpmaddwd zmm)",
        _ => "AVX2 (vpmaddwd)",
    };
}
