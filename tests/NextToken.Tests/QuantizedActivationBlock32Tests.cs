using System.Buffers.Binary;
using System.Runtime.Intrinsics.X86;
using NextToken.Kernels;
using NextToken.Models;
using NextToken.Tensors;
using Xunit.Abstractions;

namespace NextToken.Tests;

/// <summary>
/// <c>--q8-activations</c> decode of Q4_1, Q5_0, Q5_1, IQ4_NL and IQ4_XS rows (<see cref="QuantizedActivations"/>):
/// the kernels' integer sums equal the scalar reference's exactly (random and extreme blocks), the float results
/// of Dot / Dot4 match the reference's order-independent value, and whole models stay within the q8 tolerance.
/// </summary>
public unsafe class QuantizedActivationBlock32Tests(ITestOutputHelper output)
{
    public static TheoryData<GgmlType> Types => new() { GgmlType.Q4_1, GgmlType.Q5_0, GgmlType.Q5_1, GgmlType.IQ4_NL, GgmlType.IQ4_XS, GgmlType.Q4_0, GgmlType.Q8_0 };

    private static string Isa => AvxVnni.IsSupported ? "AVX-VNNI" : "AVX2 (vpmaddubsw + vpmaddwd)";

    /// <summary>Random stored rows: every byte random, the f16 scale (and minimum) fields set to finite values of a weight's size.</summary>
    internal static byte[] RandomRows(GgmlType type, int nIn, int rows, Random random)
    {
        long rowBytes = GgmlTypeInfo.RowBytes(type, nIn);
        var stored = new byte[rowBytes * rows];
        random.NextBytes(stored);
        int blockBytes = type == GgmlType.IQ4_XS ? 136 : (int)(rowBytes / (nIn / 32));
        bool minimum = type is GgmlType.Q4_1 or GgmlType.Q5_1;
        for (int at = 0; at < stored.Length; at += blockBytes)
        {
            BinaryPrimitives.WriteHalfLittleEndian(stored.AsSpan(at), (Half)((random.NextDouble() * 2 - 1) * 0.01));
            if (minimum) BinaryPrimitives.WriteHalfLittleEndian(stored.AsSpan(at + 2), (Half)((random.NextDouble() * 2 - 1) * 0.1));
        }
        return stored;
    }

    private static (sbyte[] Quants, float[] Scales, int[] Sums) QuantizeInput(float[] x)
    {
        var quants = new sbyte[x.Length];
        var scales = new float[x.Length / 32];
        var sums = new int[x.Length / 32];
        QuantizedActivations.Quantize(x, quants, scales, sums);
        return (quants, scales, sums);
    }

    [SkippableTheory]
    [MemberData(nameof(Types))]
    public void KernelBlockSums_EqualTheReference(GgmlType type)
    {
        Skip.IfNot(QuantizedActivations.IsSupported(type), "integer kernels need AVX2");
        var random = new Random((int)type);
        const int nIn = 2048, rows = 16;
        byte[] stored = RandomRows(type, nIn, rows, random);
        var (quants, _, sums) = QuantizeInput(Enumerable.Range(0, nIn).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray());
        long rowBytes = GgmlTypeInfo.RowBytes(type, nIn);
        fixed (byte* w = stored)
        fixed (sbyte* q = quants)
            for (int r = 0; r < rows; r++)
                for (int b = 0; b < nIn / 32; b++)
                {
                    int expected = QuantizedActivations.ReferenceBlockSum(type, stored.AsSpan((int)(r * rowBytes), (int)rowBytes), b, quants);
                    Assert.Equal(expected, QuantizedActivations.KernelBlockSum(type, w + r * rowBytes, b, q, sums[b]));
                }
        output.WriteLine($"{type}: {rows * nIn / 32} random blocks, integer sums identical ({Isa})");
    }

    /// <summary>
    /// Blocks where vpmaddubsw's 16-bit pair sums are largest: every weight at its largest unsigned factor (nibble 15, fifth
    /// bit set: 31; IQ4 grid −127 → |w| 127) against x all ±127 with the weight's sign (pairs 2·31·127 = 7874, 2·127·127 = 32258
    /// for the grid — below 32767), and all-zero nibbles; the sums must equal the reference's exactly.
    /// </summary>
    [SkippableTheory]
    [MemberData(nameof(Types))]
    public void ExtremeBlocks_DoNotSaturate(GgmlType type)
    {
        Skip.IfNot(QuantizedActivations.IsSupported(type), "integer kernels need AVX2");
        const int nIn = 256;
        long rowBytes = GgmlTypeInfo.RowBytes(type, nIn);
        foreach (byte fill in new byte[] { 0xFF, 0x00, 0x88 })
            foreach (sbyte sign in new sbyte[] { 1, -1 })
            {
                var stored = new byte[rowBytes];
                stored.AsSpan().Fill(fill);
                int blockBytes = type == GgmlType.IQ4_XS ? 136 : (int)(rowBytes / (nIn / 32));
                for (int at = 0; at < stored.Length; at += blockBytes) BinaryPrimitives.WriteHalfLittleEndian(stored.AsSpan(at), (Half)0.5);
                var quants = Enumerable.Repeat((sbyte)(127 * sign), nIn).ToArray();
                var sums = Enumerable.Repeat(32 * 127 * sign, nIn / 32).ToArray();
                fixed (byte* w = stored)
                fixed (sbyte* q = quants)
                    for (int b = 0; b < nIn / 32; b++)
                        Assert.Equal(QuantizedActivations.ReferenceBlockSum(type, stored, b, quants), QuantizedActivations.KernelBlockSum(type, w, b, q, sums[b]));
            }
    }

    /// <summary>
    /// Dot (one row) and Dot4 (four rows, via the matmul's decode path at 1 and 2 threads) against the float64 sum of
    /// dequantized weight × quantized activation: row counts 1–3 and 37 leave one to three rows to the single-row kernel.
    /// Tolerance 1e-5 of Σ|terms| (float32 accumulation in another order); the worst is reported.
    /// </summary>
    [SkippableTheory]
    [InlineData(GgmlType.Q4_1, 32, 3)]
    [InlineData(GgmlType.Q4_1, 2048, 37)]
    [InlineData(GgmlType.Q5_0, 64, 2)]
    [InlineData(GgmlType.Q5_0, 5632, 37)]
    [InlineData(GgmlType.Q5_1, 96, 1)]
    [InlineData(GgmlType.Q5_1, 2048, 37)]
    [InlineData(GgmlType.IQ4_NL, 160, 5)]
    [InlineData(GgmlType.IQ4_NL, 2048, 37)]
    [InlineData(GgmlType.IQ4_XS, 256, 3)]
    [InlineData(GgmlType.IQ4_XS, 2816, 37)]
    public void DotAndDot4_MatchTheProductOfBothQuantizations(GgmlType type, int nIn, int rows)
    {
        var random = new Random(nIn + rows);
        byte[] stored = RandomRows(type, nIn, rows, random);
        float[] x = Enumerable.Range(0, nIn).Select(_ => (float)(random.NextDouble() * 6 - 3)).ToArray();
        var (quants, scales, sums) = QuantizeInput(x);
        long rowBytes = GgmlTypeInfo.RowBytes(type, nIn);
        var expected = new double[rows];
        var magnitude = new double[rows];
        var row = new float[nIn];
        double worst = 0;
        for (int r = 0; r < rows; r++)
        {
            ReadOnlySpan<byte> rowBytesSpan = stored.AsSpan((int)(r * rowBytes), (int)rowBytes);
            Quantized.DequantizeRow(type, rowBytesSpan, row);
            for (int i = 0; i < nIn; i++)
            {
                double term = (double)row[i] * quants[i] * scales[i / 32];
                expected[r] += term;
                magnitude[r] += Math.Abs(term);
            }
            float reference = QuantizedActivations.ReferenceDot(type, rowBytesSpan, quants, scales, sums);
            float dot = QuantizedActivations.Dot(type, rowBytesSpan, quants, scales, sums);
            foreach (float actual in new[] { reference, dot })
            {
                worst = Math.Max(worst, Math.Abs(actual - expected[r]) / magnitude[r]);
                Assert.True(Math.Abs(actual - expected[r]) <= 1e-5 * magnitude[r], $"{type} row {r}: {actual} vs {expected[r]}");
            }
        }
        if (QuantizedActivations.IsSupported(type))
            fixed (byte* data = stored)
            {
                var weight = new TensorData("w", type, [nIn, rows], data, stored.Length);
                foreach (int threads in new[] { 1, 2 })
                {
                    var y = new float[rows];
                    MatMul.Forward(weight, x, 1, y, threads, quantizeActivations: true);
                    for (int r = 0; r < rows; r++)
                    {
                        worst = Math.Max(worst, Math.Abs(y[r] - expected[r]) / magnitude[r]);
                        Assert.True(Math.Abs(y[r] - expected[r]) <= 1e-5 * magnitude[r], $"{type} matmul row {r}, {threads} threads: {y[r]} vs {expected[r]}");
                    }
                }
            }
        output.WriteLine($"{type} 1×{nIn}×{rows} ({Isa}): worst |Δ| {worst:E2} of Σ|terms| against float64");
    }

    /// <summary>
    /// Whole models (all matrices of one type) decoded token by token with quantized activations against the float64
    /// reference: each top-10 logit within 6% of the position's top logit — the tolerance <see cref="QuantizedActivationTests"/>
    /// gives this family (llama-d256.q5_k, q6_k) — and the top-10 overlap at least 7. The kernels themselves match the
    /// float64 product of both quantizations to ~1e-7 (above), so what moves the logits is the 8-bit activation, not the arithmetic.
    /// </summary>
    [SkippableTheory]
    [InlineData("llama-d256.q4_1")]
    [InlineData("llama-d256.q5_0")]
    [InlineData("llama-d256.q5_1")]
    [InlineData("llama-d256.iq4_nl")]
    [InlineData("llama-d256.iq4_xs")]
    public void Decode_WithQuantizedActivations_StaysWithinTolerance(string stem)
    {
        Skip.IfNot(QuantizedActivations.IsSupported(GgmlType.Q4_1), "quantized activations need AVX2");
        const double tolerance = 0.06;
        using LanguageModel model = ModelLoader.Load(ExpectedOutputs.ModelPath(stem));
        double worst = 0, worstAbsolute = 0, worstExact = 0;
        foreach (ExpectedCase expected in ExpectedOutputs.Load(stem))
        {
            foreach (bool quantize in new[] { true, false })
            {
                model.QuantizeActivations = quantize;
                ModelState state = model.CreateState();
                var logits = new float[model.VocabSize];
                for (int p = 0; p < expected.Tokens.Length; p++)
                {
                    model.Forward(state, expected.Tokens.AsSpan(p, 1), logits);
                    ExpectedPosition e = expected.Positions[p];
                    double scale = Math.Abs(e.Top[0].Logit);
                    foreach (var (id, logit) in e.Top)
                    {
                        double difference = Math.Abs(logits[id] - logit);
                        if (!quantize)
                        {
                            worstExact = Math.Max(worstExact, difference / scale);
                            continue;
                        }
                        worst = Math.Max(worst, difference / scale);
                        worstAbsolute = Math.Max(worstAbsolute, difference);
                        Assert.True(difference <= tolerance * scale, $"{expected.Name} position {p} token {id}: {logits[id]} vs {logit}");
                    }
                    if (!quantize) continue;
                    int[] top = new Inspection.TokenDistribution(logits).Top(10).Select(t => t.Id).ToArray();
                    Assert.True(top.Intersect(e.Top.Select(t => t.Id)).Count() >= 7, $"{expected.Name} position {p}: top-10 overlap below 7");
                }
            }
        }
        output.WriteLine($"{stem} ({Isa}): quantized activations, worst |Δlogit| {worstAbsolute:E2} = {worst:P2} of the top logit token by token (exact path {worstExact:P4})");
    }
}
