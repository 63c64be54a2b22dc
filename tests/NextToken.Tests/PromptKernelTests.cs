using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using NextToken.Kernels;
using NextToken.Tensors;
using Xunit.Abstractions;

namespace NextToken.Tests;

/// <summary>
/// The prompt path's pieces of issue #13 (prompt): Q4_K rows expanded for the panels, the input and result turned around
/// in 16 × 16 squares, and the shrinking chunks of a parallel region — each must give exactly what the step it replaced
/// gave, so results are compared bit for bit. A width this CPU (or the DOTNET_Enable* switches) lacks reports Skipped.
/// </summary>
public unsafe class PromptKernelTests(ITestOutputHelper output)
{
    private static bool HasWide => Vector512.IsHardwareAccelerated && Avx512F.IsSupported;
    private static bool HasNarrow => Vector256.IsHardwareAccelerated && Avx2.IsSupported;

    /// <summary>Random Q4_K super-blocks: random scale bytes and nibbles, d and dmin finite float16 values (some subnormal).</summary>
    internal static byte[] RandomQ4K(int blocks, int seed)
    {
        var random = new Random(seed);
        var bytes = new byte[blocks * 144];
        random.NextBytes(bytes);
        for (int b = 0; b < blocks; b++)
        {
            // Every third block's scales are tiny (float16 subnormals), the rest of ordinary size.
            float scale = b % 3 == 2 ? 3e-7f : 0.01f;
            BitConverter.TryWriteBytes(bytes.AsSpan(b * 144), (Half)((random.NextDouble() + 0.1) * scale));
            BitConverter.TryWriteBytes(bytes.AsSpan(b * 144 + 2), (Half)((random.NextDouble() + 0.1) * scale));
        }
        return bytes;
    }

    [SkippableTheory]
    [InlineData(1, true)]
    [InlineData(2, true)]
    [InlineData(3, true)]
    [InlineData(8, true)]
    [InlineData(1, false)]
    [InlineData(3, false)]
    [InlineData(8, false)]
    public void Q4KRow_EqualsScalarReferenceBitForBit(int blocks, bool wide)
    {
        Skip.IfNot(wide ? HasWide : HasNarrow, $"{(wide ? "AVX-512" : "AVX2")} is not available in this process");
        byte[] stored = RandomQ4K(blocks, 60 + blocks);
        var actual = new float[blocks * 256];
        if (wide) RowConvert.Q4KRow(stored, actual);
        else RowConvert.Q4KRowNarrow(stored, actual);
        var dispatched = new float[blocks * 256];
        RowConvert.ToSingle(GgmlType.Q4_K, stored, dispatched);
        for (int b = 0; b < blocks; b++)
            for (int i = 0; i < 256; i++)
            {
                float expected = ScalarReference.DequantizeElement(GgmlType.Q4_K, stored.AsSpan(b * 144, 144), i);
                Assert.True(BitConverter.SingleToInt32Bits(expected) == BitConverter.SingleToInt32Bits(actual[b * 256 + i]),
                    $"block {b} value {i}: {actual[b * 256 + i]}, reference {expected}");
                Assert.True(BitConverter.SingleToInt32Bits(expected) == BitConverter.SingleToInt32Bits(dispatched[b * 256 + i]), $"RowConvert.ToSingle, block {b} value {i}");
            }
        Assert.Throws<ArgumentException>(() => RowConvert.Q4KRow(stored.AsSpan(0, blocks * 144 - 1), actual));
        output.WriteLine($"{blocks} Q4_K blocks ({(wide ? "AVX-512" : "AVX2")}): all {blocks * 256} values equal to the scalar reference (max |Δ| 0)");
    }

    /// <summary>
    /// F32 and F16 weights through the panels (inputs packed, results turned around in whole 16 × 16 squares where they fit and
    /// value by value at the edges; F16 rows converted per k-block) against a float64 product, and 2–3 threads bit for bit against one.
    /// </summary>
    [Theory]
    [InlineData(16, 16, 16, GgmlType.F32)]     // one square each way
    [InlineData(128, 2048, 96, GgmlType.F32)]  // the prompt's shape, narrowed
    [InlineData(128, 2048, 96, GgmlType.F16)]
    [InlineData(129, 48, 33, GgmlType.F32)]    // a last input alone, rows past the last whole square
    [InlineData(37, 40, 130, GgmlType.F32)]    // nIn not a multiple of 16: a short last square of the packing
    [InlineData(37, 40, 130, GgmlType.F16)]
    [InlineData(64, 520, 17, GgmlType.F32)]    // a k-block of 8 past 512
    [InlineData(20, 520, 50, GgmlType.F16)]    // a converted short last k-block
    public void Panels_F32AndF16_MatchFloat64AndEveryThreadCount(int batch, int nIn, int nOut, GgmlType type)
    {
        var random = new Random(batch * 31 + nIn);
        float[] w = Enumerable.Range(0, nIn * nOut).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
        float[] x = Enumerable.Range(0, batch * nIn).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
        byte[] stored;
        if (type == GgmlType.F16)
        {
            Half[] halves = w.Select(v => (Half)v).ToArray();
            w = halves.Select(h => (float)h).ToArray(); // the reference multiplies what is stored
            stored = System.Runtime.InteropServices.MemoryMarshal.AsBytes(halves.AsSpan()).ToArray();
        }
        else stored = System.Runtime.InteropServices.MemoryMarshal.AsBytes(w.AsSpan()).ToArray();
        double worst = 0;
        fixed (byte* data = stored)
        {
            var weight = new TensorData("w", type, [nIn, nOut], data, stored.Length);
            var one = new float[batch * nOut];
            MatMul.Forward(weight, x, batch, one, threads: 1);
            for (int t = 0; t < batch; t++)
                for (int r = 0; r < nOut; r++)
                {
                    double sum = 0, magnitude = 0;
                    for (int i = 0; i < nIn; i++)
                    {
                        sum += (double)w[r * nIn + i] * x[t * nIn + i];
                        magnitude += Math.Abs((double)w[r * nIn + i] * x[t * nIn + i]);
                    }
                    double difference = Math.Abs(one[t * nOut + r] - sum);
                    worst = Math.Max(worst, difference);
                    Assert.True(difference <= 1e-6 * magnitude + 1e-30, $"input {t} row {r}: {one[t * nOut + r]} vs {sum}");
                }
            foreach (int threads in new[] { 2, 3 })
            {
                var y = new float[batch * nOut];
                MatMul.Forward(weight, x, batch, y, threads);
                Assert.Equal(one, y);
            }
        }
        output.WriteLine($"{type} {batch}×{nIn}×{nOut}: max |Δ| against float64 {worst:E2}; 2 and 3 threads equal to 1");
    }

    /// <summary>
    /// Several Q4_K matrices of one region (as q, k, v: 2048-like, 256-like and a short last tile) split into shrinking
    /// chunks at 2–4 threads: every output equal to one thread's, each matrix equal to its own call.
    /// </summary>
    [Fact]
    public void Prompt_SeveralMatricesInShrinkingChunks_EqualOneThread()
    {
        const int nIn = 512, batch = 40;
        int[] rows = [389, 64, 7];
        byte[][] stored = rows.Select((n, i) => RandomQ4K(n * nIn / 256, 80 + i)).ToArray();
        var random = new Random(90);
        float[] x = Enumerable.Range(0, batch * nIn).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
        fixed (byte* a = stored[0], b = stored[1], c = stored[2])
        {
            TensorData[] weights =
            [
                new("a", GgmlType.Q4_K, [nIn, rows[0]], a, stored[0].Length),
                new("b", GgmlType.Q4_K, [nIn, rows[1]], b, stored[1].Length),
                new("c", GgmlType.Q4_K, [nIn, rows[2]], c, stored[2].Length),
            ];
            float[][] one = rows.Select(n => new float[batch * n]).ToArray();
            MatMul.Forward(weights, x, batch, one, threads: 1);
            for (int i = 0; i < rows.Length; i++)
            {
                var alone = new float[batch * rows[i]];
                MatMul.Forward(weights[i], x, batch, alone, threads: 2);
                Assert.Equal(one[i], alone);
            }
            foreach (int threads in new[] { 2, 3, 4 })
            {
                float[][] together = rows.Select(n => new float[batch * n]).ToArray();
                MatMul.Forward(weights, x, batch, together, threads);
                for (int i = 0; i < rows.Length; i++) Assert.Equal(one[i], together[i]);
            }
        }
    }
}
