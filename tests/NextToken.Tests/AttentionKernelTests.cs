using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using NextToken.Kernels;
using Xunit.Abstractions;

namespace NextToken.Tests;

/// <summary>
/// The 256-bit (AVX2+FMA) attention kernels against the float64 reference, forced on an AVX-512
/// machine through <see cref="CausalAttention.PreferNarrow"/>: the blocked prompt kernel (16 queries
/// as two vectors, keys in tiles of 128 with a running softmax) and the decode kernels (four keys per step, value rows in eight accumulators).
/// </summary>
public class AttentionKernelTests(ITestOutputHelper output)
{
    private static float[] RandomVector(int n, int seed, float scale = 1)
    {
        var random = new Random(seed);
        var v = new float[n];
        for (int i = 0; i < n; i++) v[i] = (float)(random.NextDouble() * 2 - 1) * scale;
        return v;
    }

    [SkippableTheory]
    [InlineData(12, 12, 64, 0, 40, 0, 0f)]     // a prompt: blocks of 16, a short last block, the first block's causal mask
    [InlineData(9, 3, 64, 300, 33, 0, 0f)]     // at depth, grouped-query heads (SmolLM's 9/3), 33 queries
    [InlineData(8, 2, 128, 13, 20, 0, 0f)]     // Llama-2/3 head size
    [InlineData(4, 2, 24, 5, 17, 0, 0f)]       // head size 24: four passes of six dimensions
    [InlineData(4, 4, 20, 7, 16, 0, 0f)]       // head size 20: three passes of six, then a pair
    [InlineData(2, 1, 7, 3, 18, 0, 0f)]        // head size 7: one pass of six and a single dimension
    [InlineData(4, 2, 32, 0, 40, 8, 50f)]      // Gemma 2's prompt: window and softcap
    [InlineData(4, 1, 32, 5, 20, 8, 0f)]       // window only, a block straddling its start
    [InlineData(2, 2, 64, 100, 17, 1, 0f)]     // window 1: each query sees only itself
    [InlineData(8, 2, 64, 3, 33, 0, 30f)]      // softcap alone
    [InlineData(4, 2, 64, 125, 16, 0, 0f)]     // 141 keys: the causal mask straddles the first tile's end; query 0 sees nothing in the second tile
    [InlineData(4, 2, 32, 200, 20, 150, 50f)]  // window and softcap over two tiles (running maximum and rescaling)
    [InlineData(9, 3, 64, 300, 1, 0, 0f)]      // decode at depth, three heads per KV head: the four-head grouped kernel with a zero query, 301 keys
    [InlineData(14, 2, 64, 260, 1, 100, 30f)]  // seven heads per KV head padded to eight, window and softcap
    [InlineData(12, 2, 128, 150, 1, 0, 0f)]    // six heads at head size 128 padded to eight
    [InlineData(8, 1, 256, 140, 1, 0, 0f)]     // head size 256 (Gemma), eight heads per KV head: four 64-column parts per head
    [InlineData(4, 1, 64, 1200, 1, 0, 0f)]     // one KV head at depth: two parts of keys (2 threads), merged
    [InlineData(32, 32, 96, 200, 1, 0, 0f)]    // Phi-3's head size 96: 64 columns, then the last 32
    [InlineData(8, 2, 80, 300, 1, 100, 30f)]   // Phi-2's head size 80 (64 + 16 columns), four heads per KV head, window and softcap
    [InlineData(4, 1, 96, 900, 1, 0, 0f)]      // head size 96 on one KV head at depth: parts
    [InlineData(7, 1, 64, 1100, 2, 600, 30f)]  // seven heads on one KV head, two queries, a 600-key window in two parts, softcap
    [InlineData(8, 2, 128, 40, 3, 0, 0f)]      // a few rows, head 128: four 32-column passes
    [InlineData(2, 1, 24, 10, 2, 0, 0f)]       // head 24: a 16-column step then 8, values in 8-column groups
    [InlineData(4, 2, 32, 30, 1, 8, 50f)]      // decode past the window, with softcap
    [InlineData(4, 4, 64, 0, 1, 0, 0f)]        // the very first token: one key
    [InlineData(4, 1, 128, 260, 1, 0, 0f)]     // one KV head for four heads: with 2 threads, two items of two heads; two key tiles
    [InlineData(6, 2, 40, 600, 1, 500, 30f)]   // head 40 (a 32-column pass, then 8), window and softcap over two tiles, three heads per KV head
    [InlineData(32, 4, 64, 300, 1, 200, 30f)]  // the grouped decode kernel: eight heads per KV head, one key per step, values over two tiles, window and softcap
    [InlineData(16, 8, 128, 130, 1, 0, 0f)]    // the grouped decode kernel, two heads per KV head at head size 128: four keys per step, two half-head passes
    [InlineData(12, 12, 64, 20, 1, 0, 0f)]     // the grouped decode kernel, one head: eight keys per step, then five alone
    [InlineData(8, 2, 64, 40, 1, 0, 2f)]       // the grouped decode kernel, a small softcap and a last row with unused lanes (41 keys, two per step): those stay −∞
    public void NarrowAttention_MatchesFloat64Reference(int nHead, int nKvHead, int headDim, int p0, int n, int window, float softcap)
    {
        Skip.IfNot(Vector256.IsHardwareAccelerated && Fma.IsSupported, "the 256-bit attention kernels need AVX2+FMA; this CPU (or DOTNET_EnableAVX2=0) has none");
        int kvDim = nKvHead * headDim, nCtx = p0 + n + 3;
        float scale = softcap > 0 ? 0.7f / MathF.Sqrt(headDim) : 0;
        // Large queries with a softcap, so that scores pass the cap.
        float[] queries = RandomVector(n * nHead * headDim, 61, softcap > 0 ? 6 : 2);
        float[] keys = RandomVector(nCtx * kvDim, 62, softcap > 0 ? 6 : 2), values = RandomVector(nCtx * kvDim, 63);
        var expected = new float[n * nHead * headDim];
        ScalarReference.Attention(queries, keys, values, nHead, nKvHead, headDim, p0, n, expected, scale, softcap, window);
        const double tolerance = 2e-5; // relative: |Δ| ≤ 2e-5·(1 + |expected|), float32 sums over ≤ 333 keys
        foreach ((int threads, bool keepPattern) in new[] { (1, false), (2, false), (1, true) })
        {
            var attention = new CausalAttention(nHead, nKvHead, headDim, nCtx, n, scale, softcap) { PreferNarrow = true };
            float[] keyCache = new float[nCtx * kvDim], valueCache = new float[nCtx * kvDim];
            attention.Store(keys, kvDim, values, kvDim, keyCache, valueCache, 0, 0, p0 + n);
            var actual = new float[expected.Length];
            attention.Run(queries, nHead * headDim, keyCache, valueCache, 0, p0, n, actual, threads, keepPattern, window);
            // 16 queries or more without a pattern to keep take the blocked kernel, else the row kernels.
            Assert.Equal(n >= 16 && !keepPattern, attention.LastRunBlockedNarrow);
            double worst = 0;
            for (int i = 0; i < expected.Length; i++)
            {
                double diff = Math.Abs(expected[i] - actual[i]);
                worst = Math.Max(worst, diff);
                Assert.True(diff <= tolerance * (1 + Math.Abs(expected[i])), $"index {i}: expected {expected[i]}, got {actual[i]}");
            }
            output.WriteLine($"{threads} thread(s){(keepPattern ? ", pattern kept" : "")}: max |Δ| {worst:E2} over {expected.Length} outputs (tolerance {tolerance:E0} relative)");
        }
    }
}
