using System.Runtime.Intrinsics.X86;
using NextToken.Gguf;
using NextToken.Kernels;
using NextToken.Models;
using NextToken.Tensors;
using Xunit.Abstractions;

namespace NextToken.Tests;

/// <summary>
/// <c>--q8-activations</c> prompts on Q4_K matrices repacked into groups of eight interleaved rows
/// (<see cref="InterleavedQ4K"/>): the repack round-trips, the integer sums equal the scalar
/// reference's exactly (both instruction forms, through the matmul at every tile shape), real
/// tensors and whole models agree with the row-by-row kernel up to float rounding, and a prompt
/// allocates nothing once warm.
/// </summary>
public unsafe class InterleavedQ4KTests(ITestOutputHelper output)
{
    private const string Q4KM = "llama-k.q4_k_m.gguf";

    private static string Form => AvxVnni.IsSupported ? "AVX-VNNI" : "AVX2";

    /// <summary>Every stored super-block of every row in a whole group, rebuilt from the repacked copy, equals the file's bytes.</summary>
    [Fact]
    public void Repack_RoundTrips_EveryRowAndSuperBlock()
    {
        using var gguf = GgufFile.Open(Fixtures.Model(Q4KM));
        int tensors = 0;
        long blocks = 0;
        var block = new byte[144];
        foreach (GgufTensorInfo info in gguf.Tensors.Where(t => t.Type == GgmlType.Q4_K))
        {
            TensorData full = gguf.GetTensor(info.Name);
            int rows = full.RowCount / 8 * 8 - 5; // 8·k + 3 rows: the last three stay outside the groups
            var weight = new TensorData(info.Name, GgmlType.Q4_K, [full.RowLength, rows], full.Data, rows * full.RowBytes);
            using var repacked = new InterleavedQ4K(weight);
            Assert.Equal(rows / 8, repacked.Groups);
            Assert.Equal(repacked.Groups * repacked.Blocks * (long)InterleavedQ4K.SuperBytes, repacked.Bytes);
            for (int r = 0; r < repacked.Groups * 8; r++)
                for (int b = 0; b < repacked.Blocks; b++, blocks++)
                {
                    repacked.Unpack(r, b, block);
                    Assert.True(block.AsSpan().SequenceEqual(weight.Row(r).Slice(b * 144, 144)), $"{info.Name} row {r} super-block {b}");
                }
            tensors++;
        }
        Assert.True(tensors > 0);
        output.WriteLine($"{Q4KM}: {tensors} Q4_K tensors, {blocks} super-blocks rebuilt byte for byte from the interleaved groups");
    }

    [Fact]
    public void BadMatrices_GetClearErrors()
    {
        var stored = new byte[7 * 144];
        fixed (byte* data = stored)
        {
            var few = new TensorData("w.few", GgmlType.Q4_K, [256, 7], data, stored.Length);
            Assert.Contains("w.few", Assert.Throws<ArgumentException>(() => new InterleavedBlock32.Cache().Q4K(few)).Message);
            var q6 = new TensorData("w.q6", GgmlType.Q6_K, [256, 4], data, 4 * 210);
            Assert.Contains("Q6_K", Assert.Throws<ArgumentException>(() => new InterleavedQ4K(q6)).Message);
        }
    }

    public static TheoryData<int, int> Shapes()
    {
        var cases = new TheoryData<int, int>();
        foreach (int nBatch in new[] { 4, 5, 16, 33, 128 })
            foreach (int rows in new[] { 16, 19 })
                cases.Add(nBatch, rows);
        return cases;
    }

    /// <summary>
    /// Random super-blocks (every scale, minimum and nibble pattern) with d = dmin = 1 and activations
    /// whose block scale is exactly 1: every float step adds integers below 2²⁴, so each output must
    /// equal the scalar reference's integer total Σ(sum − offset) exactly. The AVX2 form called
    /// directly (so it runs on a VNNI CPU too), and the matmul (the form this CPU takes; the rows
    /// past the last group through the row-by-row kernel) on one and two threads.
    /// </summary>
    [SkippableTheory]
    [MemberData(nameof(Shapes))]
    public void Kernel_IntegerSums_EqualTheScalarReferenceExactly(int nBatch, int rows)
    {
        Skip.IfNot(InterleavedQ4K.IsSupported && KQuantActivations.IsSupported(GgmlType.Q4_K), "needs AVX2 (the matmul keeps the exact float path without it, tested elsewhere)");
        const int n = 512, blocks = 2;
        var random = new Random(nBatch * 100 + rows);
        var stored = new byte[rows * blocks * 144];
        random.NextBytes(stored);
        for (int block = 0; block < rows * blocks; block++)
        {
            stored[block * 144] = 0x00; stored[block * 144 + 1] = 0x3C; // f16 1.0: d
            stored[block * 144 + 2] = 0x00; stored[block * 144 + 3] = 0x3C; // and dmin
        }
        float[] x = Enumerable.Range(0, nBatch * n).Select(_ => (float)random.Next(-127, 128)).ToArray();
        for (int t = 0; t < nBatch; t++) { x[t * n] = 127; x[t * n + 256] = -127; }
        var quants = new sbyte[nBatch * n];
        var scales = new float[nBatch * blocks];
        var sums = new short[nBatch * n / 16];
        for (int t = 0; t < nBatch; t++)
            KQuantActivations.Quantize(x.AsSpan(t * n, n), quants.AsSpan(t * n, n), scales.AsSpan(t * blocks, blocks), sums.AsSpan(t * n / 16, n / 16));
        Assert.All(scales, d => Assert.Equal(1f, d));
        var expected = new long[nBatch * rows];
        fixed (byte* data = stored)
        {
            var weight = new TensorData("w", GgmlType.Q4_K, [n, rows], data, stored.Length);
            for (int t = 0; t < nBatch; t++)
                for (int r = 0; r < rows; r++)
                {
                    KQuantActivations.Reference(GgmlType.Q4_K, weight.Row(r), quants.AsSpan(t * n, n), scales.AsSpan(t * blocks, blocks), sums.AsSpan(t * n / 16, n / 16), out var integers);
                    expected[t * rows + r] = integers.Sum(i => (long)i.Sum - i.Offset);
                    Assert.True(integers.Sum(i => Math.Abs((long)i.Sum) + Math.Abs((long)i.Offset)) < 1 << 24, "the test's integers must stay exact in float");
                }
            using var cache = new InterleavedBlock32.Cache();
            var y = new float[nBatch * rows];
            fixed (sbyte* q = quants)
            fixed (float* d = scales, yp = y)
            fixed (short* s = sums)
                cache.Q4K(weight).MultiplyWithoutVnni(q, d, s, nBatch, yp, rows, 0, rows / 8);
            for (int t = 0; t < nBatch; t++)
                for (int r = 0; r < rows / 8 * 8; r++)
                    Assert.True(y[t * rows + r] == expected[t * rows + r], $"AVX2 form, input {t} row {r}: {y[t * rows + r]} vs {expected[t * rows + r]}");
            Array.Clear(y);
            fixed (sbyte* q = quants)
            fixed (float* d = scales, yp = y)
            fixed (short* s = sums)
                cache.Q4K(weight).Multiply(q, d, s, nBatch, yp, rows, 0, rows / 8);
            for (int t = 0; t < nBatch; t++)
                for (int r = 0; r < rows / 8 * 8; r++)
                    Assert.True(y[t * rows + r] == expected[t * rows + r], $"{Form} form, input {t} row {r}: {y[t * rows + r]} vs {expected[t * rows + r]}");
            foreach (int threads in new[] { 1, 2 })
            {
                Array.Clear(y);
                MatMul.Forward(weight, x, nBatch, y, threads, quantizeActivations: true, interleaved: cache);
                for (int t = 0; t < nBatch; t++)
                    for (int r = 0; r < rows; r++)
                        Assert.True(y[t * rows + r] == expected[t * rows + r], $"matmul, {threads} threads, input {t} row {r}: {y[t * rows + r]} vs {expected[t * rows + r]}");
            }
            Assert.True(cache.Bytes > 0, "the matmul must have taken the repacked copy");
        }
        output.WriteLine($"{nBatch} inputs × {rows} rows of {n}: the AVX2 and {Form} forms, and the matmul on 1 and 2 threads, equal the reference's integer totals, max |diff| 0");
    }

    /// <summary>
    /// Real tensors (llama.cpp's quantizer), 8·k and 8·k + 3 rows, every tile shape, one and two
    /// threads: the repacked kernel against today's row-by-row kernel (the same integers; the float
    /// sums differ only in where the integer sums are converted), within 1e-6 of Σ|w·x| per output.
    /// </summary>
    [SkippableTheory]
    [InlineData(4)]
    [InlineData(5)]
    [InlineData(16)]
    [InlineData(33)]
    [InlineData(128)]
    public void MatMul_OnRealTensors_EqualsTheRowByRowKernel(int nBatch)
    {
        Skip.IfNot(InterleavedQ4K.IsSupported && KQuantActivations.IsSupported(GgmlType.Q4_K), "needs AVX2 (the matmul keeps the exact float path without it, tested elsewhere)");
        using var gguf = GgufFile.Open(Fixtures.Model(Q4KM));
        GgufTensorInfo info = gguf.Tensors.Where(t => t.Type == GgmlType.Q4_K).MaxBy(t => gguf.GetTensor(t.Name).RowLength)!;
        TensorData full = gguf.GetTensor(info.Name);
        int n = full.RowLength;
        double worst = 0, worstRelative = 0;
        var random = new Random(nBatch);
        float[] x = Enumerable.Range(0, nBatch * n).Select(_ => (float)(random.NextDouble() * 4 - 2)).ToArray();
        using var cache = new InterleavedBlock32.Cache();
        foreach (int rows in new[] { 64, 67 })
        {
            var weight = new TensorData(info.Name, GgmlType.Q4_K, [n, rows], full.Data, rows * full.RowBytes);
            var magnitude = new double[nBatch * rows];
            var row = new float[n];
            for (int r = 0; r < rows; r++)
            {
                Quantized.DequantizeRow(GgmlType.Q4_K, weight.Row(r), row);
                for (int t = 0; t < nBatch; t++)
                    for (int i = 0; i < n; i++) magnitude[t * rows + r] += Math.Abs((double)row[i] * x[t * n + i]);
            }
            foreach (int threads in new[] { 1, 2 })
            {
                var repacked = new float[nBatch * rows];
                var today = new float[nBatch * rows];
                MatMul.Forward(weight, x, nBatch, repacked, threads, quantizeActivations: true, interleaved: cache);
                InterleavedQ4K.KeepRowKernel = true;
                try { MatMul.Forward(weight, x, nBatch, today, threads, quantizeActivations: true, interleaved: cache); }
                finally { InterleavedQ4K.KeepRowKernel = false; }
                for (int k = 0; k < repacked.Length; k++)
                {
                    double diff = Math.Abs(repacked[k] - today[k]);
                    worst = Math.Max(worst, diff);
                    worstRelative = Math.Max(worstRelative, diff / magnitude[k]);
                    Assert.True(diff <= 1e-6 * magnitude[k], $"'{info.Name}' {rows} rows, {threads} threads, input {k / rows} row {k % rows}: {repacked[k]} vs {today[k]} (Σ|w·x| {magnitude[k]})");
                }
            }
        }
        Assert.True(cache.Bytes > 0, "the matmul must have taken the repacked copy");
        output.WriteLine($"'{info.Name}' [{n}], 64 and 67 rows, {nBatch} inputs, 1 and 2 threads ({(AvxVnni.IsSupported ? "AVX-VNNI" : "AVX2")}): max |Δ| {worst:E2} vs the row-by-row kernel, {worstRelative:E2} of Σ|w·x|");
    }

    /// <summary>
    /// Whole models with <c>--q8-activations</c>, each expected case as one prompt: logits through the
    /// repacked Q4_K matrices against the row-by-row kernel. Each matmul differs by float rounding
    /// only (≈1e-6, above), but a later layer's activation that lands that close to a rounding
    /// boundary of its 8-bit quantization flips by one step, which the next layers carry: measured
    /// 0.4–1.2% of the largest |logit| on prompts of more than 32 tokens (below 1e-6 when none
    /// flips), so 3% is asked — half the method's own 6% against the exact logits.
    /// </summary>
    [SkippableTheory]
    [InlineData("llama-k.q4_k_m")]
    [InlineData("llama-d256.q4_k")]
    [InlineData("gpt2-d256.q4_k_m")]
    public void Prompt_Logits_EqualTheRowByRowKernel(string stem)
    {
        Skip.IfNot(InterleavedQ4K.IsSupported && KQuantActivations.IsSupported(GgmlType.Q4_K), "needs AVX2 (the flag keeps the exact path without it)");
        using LanguageModel model = ModelLoader.Load(ExpectedOutputs.ModelPath(stem));
        model.QuantizeActivations = true;
        double worst = 0, worstRelative = 0;
        int prompts = 0;
        foreach (ExpectedCase expected in ExpectedOutputs.Load(stem).Where(c => c.Tokens.Length >= 4))
        {
            int[] tokens = expected.Tokens;
            var repacked = new float[tokens.Length * model.VocabSize];
            var today = new float[tokens.Length * model.VocabSize];
            model.Forward(model.CreateState(), tokens, repacked, LogitsFor.AllPositions);
            InterleavedQ4K.KeepRowKernel = true;
            try { model.Forward(model.CreateState(), tokens, today, LogitsFor.AllPositions); }
            finally { InterleavedQ4K.KeepRowKernel = false; }
            double scale = today.Max(Math.Abs), diff = 0;
            for (int k = 0; k < today.Length; k++) diff = Math.Max(diff, Math.Abs(repacked[k] - today[k]));
            worst = Math.Max(worst, diff);
            worstRelative = Math.Max(worstRelative, diff / scale);
            Assert.True(diff <= 0.03 * scale, $"{expected.Name}: max |Δlogit| {diff} (largest |logit| {scale})");
            prompts++;
        }
        Assert.True(prompts > 0, $"{stem} has no case of 4 tokens or more");
        output.WriteLine($"{stem} --q8-activations, {prompts} prompts: max |Δlogit| {worst:E2} ({worstRelative:E2} of the largest |logit|) repacked vs row-by-row Q4_K kernel ({(AvxVnni.IsSupported ? "AVX-VNNI" : "AVX2")})");
    }

    /// <summary>Prompts through the repacked path allocate nothing once the copies and buffers exist (one and two threads).</summary>
    [SkippableFact]
    public void Prompt_AfterWarmUp_AllocatesNothing()
    {
        Skip.IfNot(InterleavedQ4K.IsSupported && KQuantActivations.IsSupported(GgmlType.Q4_K), "needs AVX2 (the flag keeps the exact path without it)");
        using LanguageModel model = ModelLoader.Load(ExpectedOutputs.ModelPath("llama-k.q4_k_m"));
        model.QuantizeActivations = true;
        int[] prompt = ExpectedOutputs.Load("llama-k.q4_k_m").First(c => c.Tokens.Length >= 4).Tokens[..4];
        var logits = new float[model.VocabSize];
        foreach (int threads in new[] { 1, 2 })
        {
            model.Threads = threads;
            ModelState state = model.CreateState();
            for (int i = 0; i < 3; i++) // warm up: the repacked copies, buffers, JIT
            {
                state.Rewind(0);
                model.Forward(state, prompt, logits);
            }
            var windows = new long[4];
            for (int w = 0; w < windows.Length; w++)
            {
                long before = GC.GetAllocatedBytesForCurrentThread();
                for (int i = 0; i < 8; i++)
                {
                    state.Rewind(0);
                    model.Forward(state, prompt, logits);
                }
                windows[w] = GC.GetAllocatedBytesForCurrentThread() - before;
            }
            output.WriteLine($"{threads} thread(s), bytes allocated per window of 8 prompts of {prompt.Length} tokens: {string.Join(" ", windows)}");
            Assert.True(windows.Min() == 0, $"a prompt allocated in every window: {string.Join(", ", windows)} bytes");
            Assert.True(windows.Sum() <= 64 << 10, $"prompts allocated {windows.Sum()} bytes: more than one-off scratch");
        }
    }
}
