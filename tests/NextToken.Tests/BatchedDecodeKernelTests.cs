using NextToken.Gguf;
using NextToken.Kernels;
using NextToken.Tensors;
using Xunit.Abstractions;

namespace NextToken.Tests;

/// <summary>
/// The batched decode kernels (several independent inputs, each weight block unpacked once) must
/// give every input bit for bit what the single-input decode kernel gives it alone: a server's
/// streams may not change each other's tokens. Exact equality, every batch size 1–9 (and past one
/// pass of <see cref="BatchedDecode.MaxInputs"/>), each vector width, on the fixtures' weights.
/// </summary>
public unsafe class BatchedDecodeKernelTests(ITestOutputHelper output)
{
    private static readonly int[] BatchSizes = [1, 2, 3, 4, 5, 6, 7, 8, 9, 16, 17, 33];

    private static bool HasWide => System.Runtime.Intrinsics.Vector512.IsHardwareAccelerated && System.Runtime.Intrinsics.X86.Avx512F.IsSupported;
    private static bool HasNarrow => System.Runtime.Intrinsics.Vector256.IsHardwareAccelerated && System.Runtime.Intrinsics.X86.Avx2.IsSupported && System.Runtime.Intrinsics.X86.Fma.IsSupported;

    private static void SkipUnlessWidth(bool wide) =>
        Skip.IfNot(wide ? HasWide : HasNarrow, wide ? "an AVX-512 kernel; this CPU (or DOTNET_EnableAVX512=0) has no AVX-512"
                                                  : "an AVX2+FMA kernel; this CPU (or DOTNET_EnableAVX2=0) has none");

    private static float[] RandomInputs(int count, int seed)
    {
        var random = new Random(seed);
        var v = new float[count];
        for (int i = 0; i < count; i++) v[i] = (float)(random.NextDouble() * 2 - 1);
        return v;
    }

    /// <summary>Counts (row, input) pairs and fails on the first whose bits differ.</summary>
    private static int AssertBitIdentical(float[] expected, float[] actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            if (BitConverter.SingleToUInt32Bits(expected[i]) != BitConverter.SingleToUInt32Bits(actual[i]))
                Assert.Fail($"{what}, element {i}: batched {actual[i]:R}, alone {expected[i]:R} (|diff| {Math.Abs(actual[i] - expected[i]):E2})");
        return expected.Length;
    }

    public static TheoryData<string, GgmlType, bool> QuantizedWidths => new()
    {
        { "gpt2-tiny.q8_0.gguf", GgmlType.Q8_0, true },
        { "gpt2-tiny.q8_0.gguf", GgmlType.Q8_0, false },
        { "llama-tiny.q8_0.gguf", GgmlType.Q8_0, true },
        { "llama-tiny.q8_0.gguf", GgmlType.Q8_0, false },
    };

    [SkippableTheory]
    [MemberData(nameof(QuantizedWidths))]
    public void Dot4RowsBatch_EveryBatchSize_BitIdenticalToFourRowKernel(string fileName, GgmlType type, bool wide)
    {
        SkipUnlessWidth(wide);
        using var file = GgufFile.Open(Fixtures.Model(fileName));
        int pairs = 0, tensors = 0;
        foreach (GgufTensorInfo info in file.Tensors.Where(t => t.Type == type))
        {
            TensorData tensor = file.GetTensor(info.Name);
            int n = tensor.RowLength, rows = Math.Min(tensor.RowCount, 64) / 4 * 4;
            if (rows == 0) continue;
            tensors++;
            foreach (int nBatch in BatchSizes)
            {
                float[] x = RandomInputs(nBatch * n, nBatch + 31 * tensors);
                var batched = new float[nBatch * rows];
                var alone = new float[nBatch * rows];
                fixed (float* xp = x, yb = batched, ya = alone)
                    for (int o = 0; o < rows; o += 4)
                    {
                        byte* w = tensor.Data + o * tensor.RowBytes;
                        Quantized.Dot4RowsBatch(type, wide, w, tensor.RowBytes, xp, n, nBatch, yb + o, rows);
                        for (int b = 0; b < nBatch; b++)
                            if (wide) Quantized.Dot4RowsWide(type, w, tensor.RowBytes, xp + b * n, n, ya + b * rows + o);
                            else Quantized.Dot4RowsNarrow(type, w, tensor.RowBytes, xp + b * n, n, ya + b * rows + o);
                    }
                pairs += AssertBitIdentical(alone, batched, $"{info.Name} ({type}, {(wide ? "AVX-512" : "AVX2")}) batch {nBatch}");
            }
        }
        Assert.True(tensors > 0, $"{fileName} has no {type} tensor of 4+ rows");
        output.WriteLine($"{fileName} {type} {(wide ? "AVX-512" : "AVX2")}: {tensors} tensors, batches {string.Join(",", BatchSizes)}: {pairs} (row, input) results, max |diff| 0 (all bit-identical to the four-row kernel)");
    }

    public static TheoryData<string, GgmlType> MatMulCases => new()
    {
        { "gpt2-tiny.q8_0.gguf", GgmlType.Q8_0 },
        { "gpt2-tiny.q4_0.gguf", GgmlType.Q4_0 },
        { "gpt2-tiny.f32.gguf", GgmlType.F32 },
        { "gpt2-tiny.f16.gguf", GgmlType.F16 },
        { "quant/llama-d256.q4_k.gguf", GgmlType.Q4_K },
        { "quant/llama-d256.q6_k.gguf", GgmlType.Q6_K },
        { "llama-k.q4_k_m.gguf", GgmlType.Q6_K },
    };

    /// <summary>
    /// Through <see cref="MatMul.Forward(in TensorData, ReadOnlySpan{float}, int, Span{float}, int, bool, InterleavedBlock32.Cache?, bool)"/>
    /// with independent rows, as the server calls it: a row count that is not a multiple of the
    /// four-row group, one and two threads, against each input multiplied alone.
    /// </summary>
    [Theory]
    [MemberData(nameof(MatMulCases))]
    public void Forward_IndependentRows_EveryBatchSize_EqualsEachInputAlone(string fileName, GgmlType type)
    {
        using var file = GgufFile.Open(Fixtures.Model(fileName));
        GgufTensorInfo info = file.Tensors.Where(t => t.Type == type).MaxBy(t => file.GetTensor(t.Name).RowCount)!;
        TensorData full = file.GetTensor(info.Name);
        int n = full.RowLength, rows = Math.Min(full.RowCount, 103);
        if (rows % 4 == 0) rows--; // the last group is cut short
        var view = new TensorData(info.Name, type, [n, rows], full.Data, rows * full.RowBytes);
        int pairs = 0;
        foreach (int threads in new[] { 1, 2 })
            foreach (int nBatch in BatchSizes)
            {
                float[] x = RandomInputs(nBatch * n, 7 * nBatch + threads);
                var together = new float[nBatch * rows];
                MatMul.Forward(view, x, nBatch, together, threads, independentRows: true);
                var alone = new float[nBatch * rows];
                for (int b = 0; b < nBatch; b++)
                    MatMul.Forward(view, x.AsSpan(b * n, n), 1, alone.AsSpan(b * rows, rows), threads);
                pairs += AssertBitIdentical(alone, together, $"{info.Name} ({type}, {rows} rows) batch {nBatch}, {threads} threads");
            }
        output.WriteLine($"{fileName} '{info.Name}' first {rows} rows: {pairs} (row, input) results of batches {string.Join(",", BatchSizes)} on 1 and 2 threads, max |diff| 0 vs each input alone");
    }

    /// <summary>
    /// Float32 rows against <see cref="Dot.F32"/> per (row, input), at lengths that reach each of its
    /// tails (64-wide steps, 16- or 8-wide steps, scalar remainder, too short for vectors) and row
    /// counts that leave a last row unpaired. The width is the one Dot.F32 takes on this CPU (CI runs
    /// this again with 256-bit vectors preferred and with AVX-512 off).
    /// </summary>
    [Theory]
    [InlineData(768)]
    [InlineData(100)]
    [InlineData(24)]
    [InlineData(7)]
    public void F32Rows_EveryBatchSize_BitIdenticalToDotF32(int n)
    {
        using var file = GgufFile.Open(Fixtures.Model("gpt2-tiny.f32.gguf"));
        TensorData source = file.GetTensor(file.Tensors.Where(t => t.Type == GgmlType.F32).MaxBy(t => t.ByteLength)!.Name);
        // The fixture's stored float32 values, read as rows of n; 9, 10 and 11 rows leave 0, 1 and 2 after the groups of 3 (256-bit) or 4 (AVX-512),
        // and a lone input's 37 rows make stretches of 9 or 12 rows (RowStreams) with 1 left.
        Assert.True(source.ByteLength >= 37 * n * 4L, "fixture tensor too small");
        float* w = (float*)source.Data;
        int pairs = 0;
        foreach (int rows in new[] { 9, 10, 11, 37 })
        foreach (int nBatch in BatchSizes)
        {
            float[] x = RandomInputs(nBatch * n, 5 * nBatch + n);
            var batched = new float[nBatch * rows];
            var alone = new float[nBatch * rows];
            fixed (float* xp = x, yb = batched)
                BatchedDecode.F32Rows(w, n, xp, yb, nBatch, rows, 0, rows);
            for (int b = 0; b < nBatch; b++)
                for (int o = 0; o < rows; o++)
                    alone[b * rows + o] = Dot.F32(new ReadOnlySpan<float>(w + o * n, n), x.AsSpan(b * n, n));
            pairs += AssertBitIdentical(alone, batched, $"F32 n={n} rows {rows} batch {nBatch}");
        }
        output.WriteLine($"F32 rows of {n} ({(System.Runtime.Intrinsics.Vector512.IsHardwareAccelerated ? "AVX-512" : System.Runtime.Intrinsics.Vector256.IsHardwareAccelerated ? "256-bit" : "scalar")} path), 9/10/11/37 rows, batches {string.Join(",", BatchSizes)}: {pairs} results, max |diff| 0 vs Dot.F32");
    }

    public static TheoryData<string, GgmlType, bool> KQuantWidths => new()
    {
        { "llama-k.q4_k_m.gguf", GgmlType.Q4_K, true },
        { "llama-k.q4_k_m.gguf", GgmlType.Q4_K, false },
        { "llama-k.q4_k_m.gguf", GgmlType.Q6_K, true },
        { "llama-k.q4_k_m.gguf", GgmlType.Q6_K, false },
        { "quant/llama-d256.q4_k.gguf", GgmlType.Q4_K, true },
        { "quant/llama-d256.q4_k.gguf", GgmlType.Q4_K, false },
        { "quant/llama-d256.q6_k.gguf", GgmlType.Q6_K, true },
        { "quant/llama-d256.q6_k.gguf", GgmlType.Q6_K, false },
    };

    /// <summary>The K-quant batched kernels against <see cref="KQuantRows.Dot4"/> per input, for groups of 1 to 4 rows.</summary>
    [SkippableTheory]
    [MemberData(nameof(KQuantWidths))]
    public void KQuantDot4Batch_EveryBatchSizeAndGroup_BitIdenticalToDot4(string fileName, GgmlType type, bool wide)
    {
        SkipUnlessWidth(wide);
        using var file = GgufFile.Open(Fixtures.Model(fileName));
        int width = KQuantRows.SumWidth(type), pairs = 0, tensors = 0;
        foreach (GgufTensorInfo info in file.Tensors.Where(t => t.Type == type))
        {
            TensorData tensor = file.GetTensor(info.Name);
            int n = tensor.RowLength, perInput = n / width;
            if (tensor.RowCount < 4) continue;
            tensors++;
            foreach (int nBatch in BatchSizes)
                for (int rows = 1; rows <= 4; rows++)
                {
                    float[] x = RandomInputs(nBatch * n, 13 * nBatch + rows + tensors);
                    var sums = new float[nBatch * perInput];
                    var batched = new float[nBatch * 4];
                    var alone = new float[nBatch * 4];
                    fixed (float* xp = x, sp = sums, yb = batched, ya = alone)
                    {
                        for (int b = 0; b < nBatch; b++) KQuantRows.SubBlockSums(xp + b * n, n, width, sp + b * perInput);
                        KQuantRows.Dot4Batch(type, wide, tensor.Data, tensor.RowBytes, rows, xp, sp, perInput, n, nBatch, yb, 4);
                        for (int b = 0; b < nBatch; b++)
                            KQuantRows.Dot4(type, wide, tensor.Data, tensor.RowBytes, rows, xp + b * n, sp + b * perInput, n, ya + b * 4);
                    }
                    pairs += AssertBitIdentical(alone, batched, $"{info.Name} ({type}, {(wide ? "AVX-512" : "AVX2")}) batch {nBatch}, {rows} rows");
                }
        }
        Assert.True(tensors > 0, $"{fileName} has no {type} tensor of 4+ rows");
        output.WriteLine($"{fileName} {type} {(wide ? "AVX-512" : "AVX2")}: {tensors} tensors, batches {string.Join(",", BatchSizes)} × groups of 1–4 rows: {pairs} results, max |diff| 0 vs Dot4 per input");
    }

    /// <summary>
    /// Float16 rows (<see cref="HalfRows.Batch"/>: a pair of rows converted once for four inputs with
    /// AVX-512, two with AVX2, the rest alone) against <see cref="HalfRows.Eight"/> per input: the fixture's
    /// rows, a length with a 16-value tail (n an odd multiple of 16), rows holding an infinity and a NaN
    /// (their inputs' results are redone by the general conversion) and an input large enough that
    /// x·2¹¹² overflows.
    /// </summary>
    [SkippableTheory]
    [InlineData(true, 64)]
    [InlineData(true, 208)]
    [InlineData(false, 64)]
    [InlineData(false, 208)]
    public void HalfRowsBatch_EveryBatchSize_BitIdenticalToEightRowKernel(bool wide, int n)
    {
        SkipUnlessWidth(wide);
        const int rows = 24;
        var random = new Random(n);
        var halves = new ushort[rows * n];
        for (int i = 0; i < halves.Length; i++) halves[i] = BitConverter.HalfToUInt16Bits((Half)(random.NextDouble() * 0.2 - 0.1));
        halves[5 * n + 3] = BitConverter.HalfToUInt16Bits(Half.PositiveInfinity);
        halves[18 * n + n - 1] = BitConverter.HalfToUInt16Bits(Half.NaN);
        int pairs = AgainstEachInputAlone($"F16 n {n}", wide, halves, n, rows, 3, &HalfRows.Batch, &HalfRows.Eight, &HalfRows.Four,
            (x, nBatch) => { if (nBatch > 2) x[2 * n + 1] = 70_000; }); // input 2 overflows the fast conversion's scaling: redone for every row
        output.WriteLine($"{pairs} (row, input) results, max |diff| 0 vs the eight-row kernel alone");
    }

    /// <summary>
    /// Float16 rows known free of infinities and NaNs (<see cref="HalfRows.Batch(bool, ushort*, long, int, float*, int, int, float*, long, bool)"/>
    /// with finite = true, the server's batched decode of a finite matrix) skip the kernels' check and give the checked kernels' bits,
    /// for every batch size, with a 16-value tail and with an input whose x·2¹¹² overflows (still redone by the general conversion).
    /// </summary>
    [SkippableTheory]
    [InlineData(true, 64)]
    [InlineData(true, 208)]
    [InlineData(false, 64)]
    [InlineData(false, 208)]
    public void HalfRowsBatch_KnownFiniteRows_GiveTheCheckedKernelsBits(bool wide, int n)
    {
        SkipUnlessWidth(wide);
        const int rows = 28; // three groups of eight and a last four
        var random = new Random(n + 7);
        var halves = new ushort[rows * n];
        for (int i = 0; i < halves.Length; i++) halves[i] = BitConverter.HalfToUInt16Bits((Half)(random.NextDouble() * 0.2 - 0.1));
        halves[3] = BitConverter.HalfToUInt16Bits(Half.MaxValue); // the largest finite half: no check needed, still exact
        halves[n + 1] = 0x0001; // the smallest subnormal
        int pairs = 0;
        foreach (int nBatch in BatchSizes)
        {
            float[] x = RandomInputs(nBatch * n, 11 * nBatch + n);
            if (nBatch > 2) x[2 * n + 1] = 70_000; // input 2: x·2¹¹² overflows, every row redone
            var checkedResults = new float[nBatch * rows];
            var uncheckedResults = new float[nBatch * rows];
            fixed (ushort* w = halves)
            fixed (float* xp = x, yc = checkedResults, yu = uncheckedResults)
            {
                HalfRows.Batch(wide, w, n, rows, xp, n, nBatch, yc, rows, finite: false);
                HalfRows.Batch(wide, w, n, rows, xp, n, nBatch, yu, rows, finite: true);
            }
            pairs += AssertBitIdentical(checkedResults, uncheckedResults, $"F16 n {n} ({(wide ? "AVX-512" : "AVX2")}) batch {nBatch}");
            Assert.All(uncheckedResults, v => Assert.True(float.IsFinite(v)));
        }
        output.WriteLine($"{pairs} (row, input) results, max |diff| 0 vs the checked kernels");
    }

    /// <summary>
    /// bfloat16 rows (<see cref="HalfRows.BrainBatch"/>: each row's pairs loaded and split once for two inputs, eight
    /// rows per pass with AVX-512 and four with AVX2, each input split once per call, an odd input left alone) against <see cref="HalfRows.BrainEight"/> per
    /// input: lengths 64 (whole groups of 32) and 208 (a 16-value tail at 512 bits), 24 and 28 rows (a last group of
    /// four), rows holding an infinity and a NaN, every batch size.
    /// </summary>
    [SkippableTheory]
    [InlineData(true, 64, 24)]
    [InlineData(true, 208, 28)]
    [InlineData(false, 64, 24)]
    [InlineData(false, 208, 28)]
    public void BrainBatch_EveryBatchSize_BitIdenticalToEightRowKernel(bool wide, int n, int rows)
    {
        SkipUnlessWidth(wide);
        var random = new Random(n + rows);
        var brain = new ushort[rows * n];
        for (int i = 0; i < brain.Length; i++) brain[i] = (ushort)(BitConverter.SingleToUInt32Bits((float)(random.NextDouble() * 0.2 - 0.1)) >> 16);
        brain[5 * n + 3] = 0x7F80; // +inf
        brain[18 * n + n - 1] = 0x7FC1; // NaN
        int pairs = AgainstEachInputAlone($"BF16 n {n}", wide, brain, n, rows, 5, &HalfRows.BrainBatch, &HalfRows.BrainEight, &HalfRows.BrainFour);
        output.WriteLine($"{pairs} (row, input) results, max |diff| 0 vs the eight-row kernel alone");
    }

    /// <summary>
    /// A batched 16-bit-float kernel against its eight- (then four-) row kernel run per input, bit for bit, for every
    /// batch size (inputs seeded by <paramref name="seed"/>, changed by <paramref name="adjust"/>); row 5 of
    /// <paramref name="weights"/> holds an infinity, so its result for input 0 must stay non-finite; then a row count that is not
    /// a multiple of four is refused (the four-row kernel would read past it). Returns the (row, input) results compared.
    /// </summary>
    private static int AgainstEachInputAlone(string label, bool wide, ushort[] weights, int n, int rows, int seed,
        delegate*<bool, ushort*, long, int, float*, int, int, float*, long, void> batch,
        delegate*<bool, ushort*, long, float*, int, float*, void> eight,
        delegate*<bool, ushort*, long, float*, int, float*, void> four,
        Action<float[], int>? adjust = null)
    {
        int pairs = 0;
        foreach (int nBatch in BatchSizes)
        {
            float[] x = RandomInputs(nBatch * n, seed * nBatch + n);
            adjust?.Invoke(x, nBatch);
            var batched = new float[nBatch * rows];
            var alone = new float[nBatch * rows];
            fixed (ushort* w = weights)
            fixed (float* xp = x, yb = batched, ya = alone)
            {
                batch(wide, w, n, rows, xp, n, nBatch, yb, rows);
                for (int b = 0; b < nBatch; b++)
                {
                    int o = 0;
                    for (; o + 8 <= rows; o += 8) eight(wide, w + o * n, n, xp + b * n, n, ya + b * rows + o);
                    for (; o < rows; o += 4) four(wide, w + o * n, n, xp + b * n, n, ya + b * rows + o);
                }
            }
            pairs += AssertBitIdentical(alone, batched, $"{label} ({(wide ? "AVX-512" : "AVX2")}) batch {nBatch}");
            Assert.False(float.IsFinite(batched[5]), "the row holding +inf gives ±inf or NaN");
        }
        var x1 = new float[2 * n];
        var y1 = new float[2 * 6];
        fixed (ushort* w = weights)
        fixed (float* xp = x1, yp = y1)
        {
            ushort* wp = w;
            float* xq = xp, yq = yp;
            Assert.Throws<ArgumentException>(() => batch(wide, wp, n, 6, xq, n, 2, yq, 6));
        }
        return pairs;
    }
}
