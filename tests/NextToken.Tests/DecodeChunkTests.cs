using NextToken.Kernels;
using NextToken.Tensors;

namespace NextToken.Tests;

/// <summary>
/// Decode regions split into chunks that shrink towards the end (as q, k and v: a large matrix, a smaller one and a short
/// last tile): at 2–4 threads every output bit for bit equal to one thread's, and each matrix equal to its own call.
/// </summary>
public unsafe class DecodeChunkTests
{
    public static TheoryData<GgmlType> Types => new() { GgmlType.F32, GgmlType.BF16, GgmlType.Q8_0, GgmlType.Q4_0, GgmlType.Q4_K };

    [Theory]
    [MemberData(nameof(Types))]
    public void Decode_SeveralMatricesInShrinkingChunks_EqualOneThread(GgmlType type)
    {
        const int nIn = 512;
        int[] rows = [389, 64, 7];
        byte[][] stored = rows.Select((n, i) => Random(type, n, nIn, 30 + i)).ToArray();
        var random = new Random(40);
        float[] x = Enumerable.Range(0, nIn).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
        fixed (byte* a = stored[0], b = stored[1], c = stored[2])
        {
            TensorData[] weights =
            [
                new("a", type, [nIn, rows[0]], a, stored[0].Length),
                new("b", type, [nIn, rows[1]], b, stored[1].Length),
                new("c", type, [nIn, rows[2]], c, stored[2].Length),
            ];
            foreach (bool quantizeActivations in new[] { false, true })
            {
                float[][] one = rows.Select(n => new float[n]).ToArray();
                MatMul.Forward(weights, x, 1, one, threads: 1, quantizeActivations);
                for (int i = 0; i < rows.Length; i++)
                {
                    var alone = new float[rows[i]];
                    MatMul.Forward(weights[i], x, 1, alone, threads: 2, quantizeActivations);
                    Assert.Equal(one[i], alone);
                }
                foreach (int threads in new[] { 2, 3, 4 })
                {
                    float[][] together = rows.Select(n => new float[n]).ToArray();
                    MatMul.Forward(weights, x, 1, together, threads, quantizeActivations);
                    for (int i = 0; i < rows.Length; i++) Assert.Equal(one[i], together[i]);
                }
            }
        }
    }

    private static byte[] Random(GgmlType type, int rows, int nIn, int seed)
    {
        if (type == GgmlType.Q4_K) return PromptKernelTests.RandomQ4K(rows * nIn / 256, seed);
        var random = new Random(seed);
        float[] values = Enumerable.Range(0, rows * nIn).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
        switch (type)
        {
            case GgmlType.F32:
                return System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()).ToArray();
            case GgmlType.BF16:
                // The upper half of each float32: a bfloat16 of the same value, rounded down.
                return values.SelectMany(v => BitConverter.GetBytes((ushort)(BitConverter.SingleToUInt32Bits(v) >> 16))).ToArray();
            default:
                return Quantize.Blocks(type, values);
        }
    }
}
