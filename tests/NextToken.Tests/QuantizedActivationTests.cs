using NextToken.Gguf;
using NextToken.Kernels;
using NextToken.Models;
using NextToken.Tensors;
using Xunit.Abstractions;

namespace NextToken.Tests;

/// <summary>
/// The opt-in fast path that quantizes activations (llama.cpp's method), tested at the looser
/// tolerance the fixtures README gives for it ("of that order" as llama.cpp's 2%): each top-10
/// logit within 3% (llama-tiny.q8_0 and K-quants: see the theory) of the position's top logit, the same argmax where the reference's margin is
/// clear, and a top-10 overlap of at least 7.
/// </summary>
public unsafe class QuantizedActivationTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData("gpt2-tiny.q8_0.gguf", GgmlType.Q8_0)]
    [InlineData("gpt2-tiny.q4_0.gguf", GgmlType.Q4_0)]
    [InlineData("llama-tiny.q8_0.gguf", GgmlType.Q8_0)]
    public void IntegerDot_EqualsTheProductOfBothQuantizations(string file, GgmlType type)
    {
        using var gguf = GgufFile.Open(Fixtures.Model(file));
        var random = new Random(5);
        foreach (GgufTensorInfo info in gguf.Tensors.Where(t => t.Type == type).Take(4))
        {
            TensorData tensor = gguf.GetTensor(info.Name);
            float[] x = Enumerable.Range(0, tensor.RowLength).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
            var quants = new sbyte[x.Length];
            var scales = new float[x.Length / 32];
            var sums = new int[x.Length / 32];
            QuantizedActivations.Quantize(x, quants, scales, sums);
            Assert.Equal(Enumerable.Range(0, scales.Length).Select(b => quants.Skip(b * 32).Take(32).Sum(q => q)), sums);
            for (int i = 0; i < x.Length; i++)
            {
                // ggml's block_q8_0: quants from 127/max, the scale stored as float16 (see Quantize).
                float max = x.Skip(i / 32 * 32).Take(32).Max(Math.Abs);
                Assert.Equal((float)(Half)(max / 127), scales[i / 32]);
                Assert.Equal((sbyte)MathF.Round(x[i] * (max != 0 ? 127f / max : 0)), quants[i]); // in order, rounded half to even
            }
            int rows = Math.Min(258, tensor.RowCount); // not a multiple of 4: the four-row kernel and the single-row tail
            var expected = new double[rows];
            var magnitude = new double[rows];
            var row = new float[tensor.RowLength];
            for (int r = 0; r < rows; r++)
            {
                Quantized.DequantizeRow(type, tensor.Row(r), row);
                for (int i = 0; i < x.Length; i++)
                {
                    double term = (double)row[i] * quants[i] * scales[i / 32];
                    expected[r] += term;
                    magnitude[r] += Math.Abs(term);
                }
                float actual = QuantizedActivations.Dot(type, tensor.Row(r), quants, scales, sums);
                Assert.True(Math.Abs(actual - expected[r]) <= 1e-5 * magnitude[r] + 1e-6, $"{info.Name} row {r}: {actual} vs {expected[r]}");
            }
            var firstRows = new TensorData(tensor.Name, type, [tensor.RowLength, rows], tensor.Data, tensor.RowBytes * rows);
            if (!QuantizedActivations.IsSupported(type)) continue; // without AVX2 the matmul keeps the exact path
            foreach (int threads in new[] { 1, 2 })
            {
                var y = new float[rows];
                MatMul.Forward(firstRows, x, 1, y, threads, quantizeActivations: true);
                for (int r = 0; r < rows; r++)
                    Assert.True(Math.Abs(y[r] - expected[r]) <= 1e-5 * magnitude[r] + 1e-6, $"{info.Name} matmul row {r}, {threads} threads: {y[r]} vs {expected[r]}");
            }
        }
    }

    [Fact]
    public unsafe void BadArguments_GetClearErrors()
    {
        var quants = new sbyte[64];
        var scales = new float[2];
        var sums = new int[2];
        Assert.Throws<NotSupportedException>(() => QuantizedActivations.Dot(GgmlType.F32, new byte[256], quants, scales, sums));
        var error = Assert.Throws<ArgumentException>(() => QuantizedActivations.Dot(GgmlType.Q4_0, new byte[20], quants, scales, sums));
        Assert.Contains("36 bytes", error.Message);
        Assert.Contains("68 bytes", Assert.Throws<ArgumentException>(() => Quantized.DotRow(GgmlType.Q8_0, new byte[40], new float[64])).Message);
        Assert.Throws<NotSupportedException>(() => Quantized.DotRow(GgmlType.F32, new byte[256], new float[64]));
        byte[] stored = new byte[64 * 2];
        fixed (byte* data = stored)
        {
            var f16 = new TensorData("w.f16", GgmlType.F16, [64, 1], data, stored.Length);
            Assert.Contains("w.f16", Assert.Throws<ArgumentException>(() => new InterleavedBlock32.Cache().For(f16)).Message);
        }
    }

    /// <remarks>
    /// K-quant files take 6%: one activation scale per 256 values (llama.cpp's Q8_K) is coarser than
    /// one per 32 (measured 2.2–4.4% on these files). llama-k.q4_k_m is the outlier: 12.1% of the top
    /// logit, its top ten within 1.3 of each other (kafka position 10), so only an overlap of 4 is
    /// asked there. That is the method, not the kernels: the Q8_K-rounded activation times the exact
    /// float kernel gave the same logit (7.53 vs the exact 8.58), and blocks of 32 gave 6.1–6.4%;
    /// llama.cpp moves it by the same 12.10% (<see cref="LlamaCppParityTests"/>).
    /// </remarks>
    [SkippableTheory]
    [InlineData("gpt2-tiny.q8_0", 0.03, 7)]
    [InlineData("gpt2-tiny.q4_0", 0.03, 7)]
    [InlineData("llama-tiny.q8_0", 0.04, 7)]    // llama.cpp itself moves it 3.16% (system position 31; LlamaCppParityTests), and so do we
    [InlineData("llama-k.q4_k_m", 0.15, 4)]    // Q4_K and Q6_K rows against activation blocks of 256 (KQuantActivations)
    [InlineData("llama-d256.q5_k", 0.06, 7)]
    [InlineData("llama-d256.q6_k", 0.06, 7)]
    [InlineData("gpt2-d256.q4_k_m", 0.06, 7)]  // Q5_K attention, Q4_K and Q6_K
    [InlineData("llama-d256.q2_k", 0.06, 7)]
    [InlineData("llama-d256.q3_k", 0.06, 7)]
    public void Decode_WithQuantizedActivations_StaysWithinLlamaCppTolerance(string stem, double tolerance, int overlap)
    {
        // Without AVX2 the flag keeps the exact path, which the reference tests cover: nothing quantized to test.
        Skip.IfNot(QuantizedActivations.IsSupported(GgmlType.Q8_0), "quantized activations need AVX2");
        using LanguageModel model = ModelLoader.Load(ExpectedOutputs.ModelPath(stem));
        model.QuantizeActivations = true;
        double worstDecode = 0, worstPrompt = 0;
        foreach (ExpectedCase expected in ExpectedOutputs.Load(stem))
        {
            // Token by token (the decode kernels), then the whole case as one batch (the prompt kernels).
            ModelState state = model.CreateState();
            var logits = new float[model.VocabSize];
            for (int p = 0; p < expected.Tokens.Length; p++)
            {
                model.Forward(state, expected.Tokens.AsSpan(p, 1), logits);
                worstDecode = Math.Max(worstDecode, CheckPosition(expected, p, logits, tolerance, overlap));
            }
            var all = new float[expected.Tokens.Length * model.VocabSize];
            model.Forward(model.CreateState(), expected.Tokens, all, LogitsFor.AllPositions);
            for (int p = 0; p < expected.Tokens.Length; p++)
                worstPrompt = Math.Max(worstPrompt, CheckPosition(expected, p, all.AsSpan(p * model.VocabSize, model.VocabSize), tolerance, overlap));
        }
        output.WriteLine($"{stem}: quantized activations, worst |Δlogit| {worstDecode:P2} of the top logit token by token, {worstPrompt:P2} as one batch");
    }

    /// <summary>Each top-10 logit within the tolerance (of the top logit), the top-10 overlap, the argmax where the reference margin is twice that; returns the worst relative difference.</summary>
    private static double CheckPosition(ExpectedCase expected, int p, ReadOnlySpan<float> logits, double tolerance, int overlap)
    {
        ExpectedPosition e = expected.Positions[p];
        double scale = Math.Abs(e.Top[0].Logit), worst = 0;
        foreach (var (id, logit) in e.Top)
        {
            worst = Math.Max(worst, Math.Abs(logits[id] - logit) / scale);
            Assert.True(Math.Abs(logits[id] - logit) <= tolerance * scale, $"{expected.Name} position {p} token {id}: {logits[id]} vs {logit}");
        }
        int[] top = new Inspection.TokenDistribution(logits).Top(10).Select(t => t.Id).ToArray();
        Assert.True(top.Intersect(e.Top.Select(t => t.Id)).Count() >= overlap, $"{expected.Name} position {p}: top-10 overlap below {overlap}");
        if (e.Top[0].Logit - e.Top[1].Logit > 2 * tolerance * scale)
            Assert.Equal(e.Top[0].Id, top[0]);
        return worst;
    }
}
