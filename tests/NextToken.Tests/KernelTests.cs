using NextToken.Kernels;
using NextToken.Tensors;

namespace NextToken.Tests;

/// <summary>Each vectorized kernel against its plain scalar reference.</summary>
public unsafe class KernelTests
{
    private static float[] RandomVector(int n, int seed, float scale = 1)
    {
        var random = new Random(seed);
        var v = new float[n];
        for (int i = 0; i < n; i++) v[i] = (float)(random.NextDouble() * 2 - 1) * scale;
        return v;
    }

    private static void AssertClose(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, double tolerance)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(expected[i] - actual[i]) <= tolerance * (1 + Math.Abs(expected[i])), $"index {i}: expected {expected[i]}, got {actual[i]}");
    }

    [Theory]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(64)]
    [InlineData(768)]
    [InlineData(1000)]
    public void LayerNorm_MatchesScalarReference(int n)
    {
        float[] x = RandomVector(n, 1, 3), w = RandomVector(n, 2), b = RandomVector(n, 3);
        var expected = new float[n];
        var actual = new float[n];
        ScalarReference.LayerNorm(x, w, b, 1e-5f, expected);
        Ops.LayerNorm(x, w, b, 1e-5f, actual);
        AssertClose(expected, actual, 1e-5);
    }

    [Fact]
    public void GeluTanh_MatchesScalarReference_InPlace()
    {
        float[] x = RandomVector(1031, 4, 6);
        var expected = new float[x.Length];
        ScalarReference.GeluTanh(x, expected);
        Ops.GeluTanh(x, x);
        AssertClose(expected, x, 1e-6);
    }

    [Fact]
    public void SwiGlu_MatchesScalarReference_InPlace()
    {
        float[] gate = RandomVector(1031, 10, 8), up = RandomVector(1031, 11, 3);
        var expected = new float[gate.Length];
        ScalarReference.SwiGlu(gate, up, expected);
        Ops.SwiGlu(gate, up, gate);
        AssertClose(expected, gate, 1e-5);
    }

    [Theory]
    [InlineData(16)]   // one vector step of adjacent pairs, scalar halves
    [InlineData(64)]   // the 135M/GPT-2 head size: vector steps for both layouts
    [InlineData(72)]   // vector steps and a scalar tail
    public void RopeKernels_MatchTheAngleFormula(int dims)
    {
        const int position = 37;
        float[] cos = new float[dims / 2], sin = new float[dims / 2];
        for (int i = 0; i < dims / 2; i++)
        {
            double angle = position * Math.Pow(10000, -2.0 * i / dims);
            (cos[i], sin[i]) = ((float)Math.Cos(angle), (float)Math.Sin(angle));
        }
        float[] x = RandomVector(dims, 12), expected = (float[])x.Clone(), actual = (float[])x.Clone();
        ScalarReference.RopeAdjacentPairs(expected, position, 10000, dims);
        Ops.RopeAdjacentPairs(actual, cos, sin);
        AssertClose(expected, actual, 1e-5);
        // Rotating halves is the same rotation on a permuted vector: pair i is (x[i], x[i + d/2]).
        float[] permuted = new float[dims];
        for (int i = 0; i < dims / 2; i++) (permuted[i], permuted[i + dims / 2]) = (x[2 * i], x[2 * i + 1]);
        Ops.RopeHalves(permuted, cos, sin);
        for (int i = 0; i < dims / 2; i++)
        {
            Assert.Equal(expected[2 * i], permuted[i], 5);
            Assert.Equal(expected[2 * i + 1], permuted[i + dims / 2], 5);
        }
    }

    [Theory]
    [InlineData(4, 4, 16, 0, 5)]     // the tiny fixtures' head size
    [InlineData(12, 12, 64, 37, 1)]  // GPT-2 decode (AVX-512 kernels: 16 keys per step twice, then four, then two alone)
    [InlineData(12, 12, 64, 6, 9)]   // GPT-2 prompt after a cached prefix
    [InlineData(9, 3, 64, 100, 2)]   // SmolLM's grouped-query heads
    [InlineData(8, 2, 128, 13, 3)]   // Llama-2/3 head size
    [InlineData(2, 1, 24, 3, 4)]     // 8-lane path
    [InlineData(2, 2, 6, 3, 2)]      // no vector path
    [InlineData(12, 12, 64, 0, 40)]  // a prompt: blocks of 16 queries (AVX-512), a short last block
    [InlineData(9, 3, 64, 21, 33)]   // a prompt after a cached prefix, grouped-query heads
    [InlineData(4, 2, 16, 5, 16)]    // one block, the smallest head size that takes it
    [InlineData(8, 2, 64, 300, 1)]   // decode at depth: the four heads of a KV head together, keys in two tiles
    [InlineData(4, 1, 128, 260, 1)]  // one KV head for four heads: with 2 threads, two items of two heads
    [InlineData(32, 4, 64, 200, 1)]  // TinyLlama's eight heads per KV head (AVX-512: one item, two keys per step), the last key alone
    [InlineData(16, 2, 128, 150, 1)] // eight heads per KV head at head size 128: values in four passes of two heads
    [InlineData(4, 2, 64, 1, 1)]     // two keys, fewer than one step of the grouped kernel (eight keys for two heads)
    [InlineData(9, 3, 64, 200, 1)]   // SmolLM's three heads per KV head: the four-head kernel, one zero query padding each group
    [InlineData(14, 2, 64, 300, 1)]  // Qwen2.5-0.5B's seven heads per KV head: padded to eight, values in two passes (the second with the pad)
    [InlineData(12, 2, 128, 150, 1)] // six heads per KV head at head size 128: padded to eight, the fourth pass all padding (skipped)
    [InlineData(24, 8, 128, 140, 1)] // Llama 3.2 3B's three heads per KV head at head size 128: the second pass one real head and the pad
    [InlineData(8, 1, 256, 130, 1)]  // Gemma's head size 256, one KV head for eight heads: a pass per head
    [InlineData(4, 2, 256, 33, 1)]   // head size 256, two heads per KV head
    [InlineData(16, 1, 64, 70, 1)]   // sixteen heads per KV head: items of eight, each reading the rows once
    [InlineData(12, 1, 64, 70, 1)]   // twelve heads per KV head: items of six, padded to eight
    [InlineData(5, 1, 128, 21, 1)]   // five heads: padded to eight, three keys of the last step alone (one per step)
    [InlineData(4, 1, 128, 1100, 1)] // one KV head at depth: with 2 threads two parts of keys (threads share the KV head), merged
    [InlineData(8, 1, 256, 700, 1)]  // head size 256 in two parts
    [InlineData(4, 1, 64, 509, 6)]   // six queries across 512 keys: one part, then two (items of the call's most parts)
    [InlineData(9, 3, 64, 1030, 1)]  // three groups: no parts on 2 threads; planned for 8, three parts each
    [InlineData(32, 32, 96, 300, 1)] // Phi-3's head size 96, one head per KV head (AVX-512: the grouped kernel, six accumulators)
    [InlineData(4, 2, 80, 200, 1)]   // Phi-2's head size 80, two heads per KV head (AVX-512: one pass of ten accumulators)
    [InlineData(2, 1, 96, 1100, 1)]  // head size 96 on one KV head at depth: parts on 2 threads
    [InlineData(8, 2, 96, 100, 1)]   // head size 96, four heads per KV head: AVX-512 would need 24 accumulators, the tiled path (AVX2: grouped)
    public void Attention_MatchesScalarReference(int nHead, int nKvHead, int headDim, int p0, int n)
    {
        int kvDim = nKvHead * headDim, nCtx = p0 + n + 3;
        float[] queries = RandomVector(n * nHead * headDim, 21, 2);
        float[] keys = RandomVector(nCtx * kvDim, 22, 2), values = RandomVector(nCtx * kvDim, 23);
        var expected = new float[n * nHead * headDim];
        ScalarReference.Attention(queries, keys, values, nHead, nKvHead, headDim, p0, n, expected);
        // Last: the grouped decode's split planned for 8 threads (up to eight parts of keys), run on 2.
        foreach ((int threads, bool keepPattern, int? split) in new[] { (1, false, null), (2, false, null), (2, true, null), (2, false, (int?)8) })
        {
            var attention = new CausalAttention(nHead, nKvHead, headDim, nCtx, n) { SplitThreads = split };
            // The cache is a layer block after another one, to check the offsets; positions arrive in two calls.
            long layer = (long)nCtx * kvDim;
            float[] keyCache = new float[2 * layer], valueCache = new float[2 * layer];
            attention.Store(keys, kvDim, values, kvDim, keyCache, valueCache, layer, 0, p0 + 1);
            attention.Store(keys.AsSpan((p0 + 1) * kvDim), kvDim, values.AsSpan((p0 + 1) * kvDim), kvDim, keyCache, valueCache, layer, p0 + 1, n - 1);
            // Past the outputs, a sentinel no kernel may write (a grouped kernel's padding lanes have no output).
            var output = new float[expected.Length + 8 * headDim];
            output.AsSpan(expected.Length).Fill(-7f);
            attention.Run(queries, nHead * headDim, keyCache, valueCache, layer, p0, n, output, threads, keepPattern);
            AssertClose(expected, output[..expected.Length], 1e-5);
            Assert.All(output[expected.Length..], x => Assert.Equal(-7f, x));
        }
    }

    /// <summary>
    /// A decoded query's output is the same bits whatever shares its call — alone, or beside other contexts
    /// (<see cref="CausalAttention.RunEach"/>) on as many threads — also where the grouped decode kernels run, whose items
    /// are then whole KV groups (their sums' order depends on the heads they run with), and where they split a query's
    /// keys into parts (planned from the thread count and the query's keys, never from the other rows).
    /// </summary>
    [Theory]
    [InlineData(32, 4, 64)]  // TinyLlama's shape: eight heads per KV head, the grouped kernel with AVX-512
    [InlineData(8, 1, 128)]  // one KV head for eight heads: one item per query there
    [InlineData(12, 12, 64)] // GPT-2: one head per item
    [InlineData(9, 3, 64)]   // three heads per KV head: the four-lane layout with one padding lane
    [InlineData(12, 1, 64)]  // twelve heads per KV head: items of six, padded to eight
    [InlineData(6, 2, 40)]   // head size 40: the tiled path
    [InlineData(4, 1, 64)]   // one KV head: on 2 threads positions past 512 keys go in parts, others not
    [InlineData(8, 8, 96)]   // Phi-3's head size 96: the grouped kernels
    public void Decode_SameBitsAloneOrBesideOtherContexts(int nHead, int nKvHead, int headDim)
    {
        int kvDim = nKvHead * headDim, nCtx = 1400, width = nHead * headDim;
        int[] positions = [50, 1299, 7, 600];
        float[] queries = RandomVector(positions.Length * width, 51, 2);
        var keyCaches = new float[positions.Length][];
        var valueCaches = new float[positions.Length][];
        var attention = new CausalAttention(nHead, nKvHead, headDim, nCtx, positions.Length);
        for (int t = 0; t < positions.Length; t++)
        {
            (keyCaches[t], valueCaches[t]) = (new float[nCtx * kvDim], new float[nCtx * kvDim]);
            attention.Store(RandomVector(nCtx * kvDim, 52 + t, 2), kvDim, RandomVector(nCtx * kvDim, 62 + t), kvDim, keyCaches[t], valueCaches[t], 0, 0, positions[t] + 1);
        }
        // At each thread count (and with the split planned for 8 threads), together equals alone.
        foreach ((int threads, int? split) in new[] { (1, null), (2, null), (2, (int?)8) })
        {
            attention.SplitThreads = split;
            var together = new float[positions.Length * width];
            attention.RunEach(queries, width, keyCaches, valueCaches, 0, positions, positions.Length, together, threads);
            for (int t = 0; t < positions.Length; t++)
            {
                var alone = new float[width];
                attention.Run(queries[(t * width)..((t + 1) * width)], width, keyCaches[t], valueCaches[t], 0, positions[t], 1, alone, threads);
                Assert.Equal(alone, together.AsSpan(t * width, width).ToArray());
            }
        }
    }

    [Theory]
    [InlineData(4, 2, 32, 0, 40, 8, 50f)]     // Gemma 2's prompt: blocks of 16 queries with window and softcap
    [InlineData(4, 2, 32, 30, 1, 8, 50f)]     // decode past the window
    [InlineData(4, 1, 32, 5, 20, 8, 0f)]      // Gemma 3 local layer: window only, a block straddling its start
    [InlineData(4, 2, 16, 9, 7, 4, 2f)]       // row path (7 queries), a small cap most scores reach
    [InlineData(2, 2, 64, 100, 17, 1, 0f)]    // window 1: each query sees only itself
    [InlineData(8, 2, 64, 3, 33, 0, 30f)]     // softcap alone, AVX-512 decode kernels (head 64)
    [InlineData(32, 4, 64, 60, 1, 20, 30f)]   // decode of eight heads per KV head with window and softcap (AVX-512: the grouped kernel)
    [InlineData(8, 2, 64, 40, 1, 0, 2f)]      // grouped kernel, a small softcap and a last row with unused lanes (41 keys, four per step): those stay −∞
    [InlineData(4, 1, 64, 1500, 1, 700, 30f)] // one KV head, a window of 700 keys at depth: two parts (2 threads) from the window's start, softcap
    public void Attention_WindowAndSoftcap_MatchScalarReference(int nHead, int nKvHead, int headDim, int p0, int n, int window, float softcap)
    {
        int kvDim = nKvHead * headDim, nCtx = p0 + n + 3;
        float scale = 0.7f / MathF.Sqrt(headDim); // a query scale other than 1/√headDim, as Gemma's 27B models use
        // Large queries so that scores pass the cap, as in gemma2-tiny's head 0.
        float[] queries = RandomVector(n * nHead * headDim, 31, 6);
        float[] keys = RandomVector(nCtx * kvDim, 32, 6), values = RandomVector(nCtx * kvDim, 33);
        var expected = new float[n * nHead * headDim];
        ScalarReference.Attention(queries, keys, values, nHead, nKvHead, headDim, p0, n, expected, scale, softcap, window);
        foreach ((int threads, bool keepPattern) in new[] { (1, false), (2, false), (1, true) })
        {
            var attention = new CausalAttention(nHead, nKvHead, headDim, nCtx, n, scale, softcap);
            float[] keyCache = new float[nCtx * kvDim], valueCache = new float[nCtx * kvDim];
            attention.Store(keys, kvDim, values, kvDim, keyCache, valueCache, 0, 0, p0 + n);
            var output = new float[expected.Length];
            attention.Run(queries, nHead * headDim, keyCache, valueCache, 0, p0, n, output, threads, keepPattern, window);
            AssertClose(expected, output, 2e-5);
            if (keepPattern && window > 0)
            {
                // The pattern: zero outside the window, rows summing to 1.
                float[] pattern = attention.Pattern(p0, n);
                int keysTotal = p0 + n;
                for (int h = 0; h < nHead; h++)
                    for (int t = 0; t < n; t++)
                    {
                        ReadOnlySpan<float> row = pattern.AsSpan((h * n + t) * keysTotal, keysTotal);
                        for (int j = 0; j < keysTotal; j++)
                            if (p0 + t - j >= window || j > p0 + t) Assert.Equal(0f, row[j]);
                        Assert.Equal(1.0, System.Numerics.Tensors.TensorPrimitives.Sum(row), 1e-5);
                    }
            }
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(17)]
    [InlineData(128)]
    [InlineData(1000)]
    public void SoftcapAndGeGlu_MatchScalarReference(int n)
    {
        float[] x = RandomVector(n, 41, 80), gate = RandomVector(n, 42, 4), up = RandomVector(n, 43, 2);
        var expected = new float[n];
        var actual = new float[n];
        ScalarReference.Softcap(x, 30, expected);
        Ops.Softcap(x, 30, actual);
        AssertClose(expected, actual, 1e-5);
        ScalarReference.GeGluTanh(gate, up, expected);
        Ops.GeGluTanh(gate, up, actual);
        AssertClose(expected, actual, 1e-5);
        // In place, as the models run it.
        Ops.GeGluTanh(gate, up, gate);
        AssertClose(expected, gate, 1e-5);
    }

    [Theory]
    [InlineData(4, 32)]   // Qwen3 / Gemma 3: per-head q norm
    [InlineData(1, 64)]   // OLMoE: one norm over the whole projection
    [InlineData(3, 7)]    // no vector path
    public void RmsNormHeads_MatchesScalarReferencePerHead(int heads, int headDim)
    {
        float[] x = RandomVector(heads * headDim, 51, 5), weight = RandomVector(headDim, 52);
        var expected = new float[x.Length];
        for (int h = 0; h < heads; h++)
            ScalarReference.RmsNorm(x.AsSpan(h * headDim, headDim), weight, 1e-6f, expected.AsSpan(h * headDim, headDim));
        Ops.RmsNormHeads(x, weight, 1e-6f);
        AssertClose(expected, x, 1e-5);
    }

    [Theory]
    [InlineData(GgmlType.F32, 1, 5, 3)]
    [InlineData(GgmlType.F32, 4, 64, 192)]
    [InlineData(GgmlType.F16, 1, 300, 17)]
    [InlineData(GgmlType.F16, 3, 768, 64)]
    [InlineData(GgmlType.BF16, 1, 33, 9)]
    [InlineData(GgmlType.BF16, 5, 256, 130)]
    [InlineData(GgmlType.F32, 16, 64, 192)]   // prompt path (panels): one 16-input tile
    [InlineData(GgmlType.F32, 70, 40, 13)]    // a 64-input tile, a 16-input tile, a short last row tile
    [InlineData(GgmlType.F16, 20, 96, 130)]
    [InlineData(GgmlType.BF16, 128, 256, 131)]
    [InlineData(GgmlType.Q8_0, 33, 64, 50)]
    [InlineData(GgmlType.Q4_0, 130, 128, 96)]
    public void MatMul_MatchesScalarReference(GgmlType type, int batch, int nIn, int nOut)
    {
        float[] values = RandomVector(nIn * nOut, 5);
        byte[] stored = type switch
        {
            GgmlType.Q8_0 or GgmlType.Q4_0 => Quantize.Blocks(type, values),
            GgmlType.F32 => System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()).ToArray(),
            GgmlType.F16 => System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.Select(v => (Half)v).ToArray().AsSpan()).ToArray(),
            _ => System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.Select(v => (ushort)(BitConverter.SingleToUInt32Bits(v) >> 16)).ToArray().AsSpan()).ToArray(),
        };
        float[] x = RandomVector(batch * nIn, 6);
        var expected = new float[batch * nOut];
        fixed (byte* data = stored)
        {
            var weight = new TensorData("w", type, [nIn, nOut], data, stored.Length);
            MatMul.Reference(weight, x, batch, expected);
            foreach (int threads in new[] { 1, 2 })
            {
                var actual = new float[batch * nOut];
                MatMul.Forward(weight, x, batch, actual, threads);
                AssertClose(expected, actual, 1e-4);
            }
        }
    }

    [Fact]
    public void AttentionStore_OutsideTheContextOrShortRows_IsAClearError()
    {
        var attention = new CausalAttention(2, 2, 16, 8, 4);
        float[] cache = new float[8 * 32], rows = new float[3 * 32];
        Assert.Throws<ArgumentOutOfRangeException>(() => attention.Store(rows, 32, rows, 32, cache, cache, 0, 6, 3));
        Assert.Contains("need longer rows", Assert.Throws<ArgumentException>(() => attention.Store(rows, 32, rows, 32, cache, cache, 0, 0, 4)).Message);
        attention.Store(rows, 32, rows, 32, cache, cache, 0, 5, 3); // the last three positions fit exactly
    }

    [Theory]
    [InlineData(1, false)]
    [InlineData(2, true)]   // decode with quantized activations: Q8_0 and Q4_0 take the integer path, F16 the exact one
    [InlineData(20, false)] // prompt panels
    public void MatMul_SeveralMatricesOneInput_EqualsOneCallEach(int batch, bool quantizeActivations)
    {
        const int nIn = 128;
        (GgmlType Type, int Rows)[] shapes = [(GgmlType.Q8_0, 96), (GgmlType.F16, 37), (GgmlType.Q4_0, 1030)];
        var stored = shapes.Select((shape, i) =>
        {
            float[] values = RandomVector(nIn * shape.Rows, 40 + i);
            return shape.Type == GgmlType.F16
                ? System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.Select(v => (Half)v).ToArray().AsSpan()).ToArray()
                : Quantize.Blocks(shape.Type, values);
        }).ToArray();
        float[] x = RandomVector(batch * nIn, 44);
        fixed (byte* a = stored[0], b = stored[1], c = stored[2])
        {
            TensorData[] weights =
            [
                new("a", shapes[0].Type, [nIn, shapes[0].Rows], a, stored[0].Length),
                new("b", shapes[1].Type, [nIn, shapes[1].Rows], b, stored[1].Length),
                new("c", shapes[2].Type, [nIn, shapes[2].Rows], c, stored[2].Length),
            ];
            foreach (int threads in new[] { 1, 2 })
            {
                float[][] together = shapes.Select(shape => new float[batch * shape.Rows]).ToArray();
                MatMul.Forward(weights, x, batch, together, threads, quantizeActivations);
                for (int i = 0; i < weights.Length; i++)
                {
                    var alone = new float[batch * shapes[i].Rows];
                    MatMul.Forward(weights[i], x, batch, alone, threads, quantizeActivations);
                    Assert.Equal(alone, together[i]);
                }
            }
        }
    }

    [Theory]
    [InlineData(GgmlType.F32, 1, 64, 192)]
    [InlineData(GgmlType.F32, 3, 64, 300)]
    [InlineData(GgmlType.F16, 2, 96, 130)]
    [InlineData(GgmlType.BF16, 1, 33, 513)]
    public void MatMul_TransposedStorage_MatchesScalarReference(GgmlType type, int batch, int nIn, int nOut)
    {
        // Conv1D layout: element (i, o) at i·nOut + o.
        float[] values = RandomVector(nIn * nOut, 8);
        byte[] stored = type switch
        {
            GgmlType.F32 => System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()).ToArray(),
            GgmlType.F16 => System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.Select(v => (Half)v).ToArray().AsSpan()).ToArray(),
            _ => System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.Select(v => (ushort)(BitConverter.SingleToUInt32Bits(v) >> 16)).ToArray().AsSpan()).ToArray(),
        };
        float[] x = RandomVector(batch * nIn, 9);
        var expected = new float[batch * nOut];
        var actual = new float[batch * nOut];
        fixed (byte* data = stored)
        {
            var weight = new TensorData("w", type, [nIn, nOut], data, stored.Length, transposed: true);
            MatMul.Reference(weight, x, batch, expected);
            MatMul.Forward(weight, x, batch, actual, threads: 2);
        }
        if (type == GgmlType.F32)
        {
            // The reference reads the layout too, so check one output of it by hand.
            double byHand = 0;
            for (int i = 0; i < nIn; i++) byHand += (double)x[i] * values[i * nOut + 5];
            Assert.Equal(byHand, expected[5], 3);
        }
        AssertClose(expected, actual, 1e-4);
    }

    [Fact]
    public void Softmax_TensorPrimitivesMatchesScalarReference()
    {
        float[] x = RandomVector(50257, 7, 10);
        var expected = new float[x.Length];
        var actual = new float[x.Length];
        ScalarReference.Softmax(x, expected);
        System.Numerics.Tensors.TensorPrimitives.SoftMax(x, actual);
        AssertClose(expected, actual, 1e-5);
    }

    [Fact]
    public void Bf16Conversion_KeepsTheHighHalf()
    {
        Assert.Equal(1.0f, Dot.BF16ToSingle(0x3F80));
        Assert.Equal(-2.0f, Dot.BF16ToSingle(0xC000));
    }
}

public class HalfConversionTests
{
    [Fact]
    public void DotF16_EveryHalfValue_ConvertsExactly()
    {
        // All 65,536 bit patterns (subnormals, infinities and NaNs included), one at a time against x = e_i.
        var row = new Half[32];
        var x = new float[32];
        x[5] = 1;
        for (int bits = 0; bits < 65536; bits++)
        {
            row[5] = BitConverter.UInt16BitsToHalf((ushort)bits);
            float expected = (float)row[5];
            float actual = NextToken.Kernels.Dot.F16(row, x);
            if (float.IsNaN(expected)) Assert.True(float.IsNaN(actual), $"bits 0x{bits:X4}");
            else Assert.True(expected == actual || (float.IsInfinity(expected) && expected == actual), $"bits 0x{bits:X4}: {actual} vs {expected}");
        }
    }

    [Theory]
    [InlineData(GgmlType.F16)]
    [InlineData(GgmlType.BF16)]
    public void RowConvert_EveryBitPattern_ConvertsExactly(GgmlType type)
    {
        // All 65,536 patterns in one row of 65,536 + 3 values, so the vector loop and the scalar tail both run.
        ushort[] bits = Enumerable.Range(0, 65539).Select(i => (ushort)(i % 65536)).ToArray();
        var converted = new float[bits.Length];
        RowConvert.ToSingle(type, System.Runtime.InteropServices.MemoryMarshal.AsBytes(bits.AsSpan()), converted);
        for (int i = 0; i < bits.Length; i++)
        {
            float expected = type == GgmlType.F16 ? (float)BitConverter.UInt16BitsToHalf(bits[i]) : BitConverter.UInt32BitsToSingle((uint)bits[i] << 16);
            Assert.True(BitConverter.SingleToUInt32Bits(expected) == BitConverter.SingleToUInt32Bits(converted[i]) || (float.IsNaN(expected) && float.IsNaN(converted[i])),
                $"bits 0x{bits[i]:X4}: {converted[i]} vs {expected}");
        }
    }

    [SkippableFact]
    public void FiniteHalfConversion_EveryFiniteBitPattern_ConvertsExactly()
    {
        Skip.IfNot(System.Runtime.Intrinsics.Vector512.IsHardwareAccelerated, "an AVX-512 kernel; this CPU (or DOTNET_EnableAVX512=0) has no AVX-512");
        var converted = new float[16];
        for (int start = 0; start < 65536; start += 16)
        {
            var bits = new short[16];
            for (int i = 0; i < 16; i++) bits[i] = (short)(start + i);
            System.Runtime.Intrinsics.Vector512.CopyTo(Dot.FiniteHalfToSingle(System.Runtime.Intrinsics.Vector256.Create(bits)), converted);
            for (int i = 0; i < 16; i++)
            {
                Half half = BitConverter.UInt16BitsToHalf((ushort)(start + i));
                if (Half.IsFinite(half))
                    Assert.True(BitConverter.SingleToUInt32Bits((float)half) == BitConverter.SingleToUInt32Bits(converted[i]), $"bits 0x{start + i:X4}: {converted[i]} vs {(float)half}");
            }
        }
    }

    [SkippableTheory]
    [InlineData(false)]
    [InlineData(true)]  // a row group holding an infinity takes the general conversion
    public unsafe void DotF16FourRows_MatchesRowByRow(bool withInfinity)
    {
        Skip.IfNot(System.Runtime.Intrinsics.Vector512.IsHardwareAccelerated, "an AVX-512 kernel; this CPU (or DOTNET_EnableAVX512=0) has no AVX-512");
        const int n = 96;
        var random = new Random(9);
        Half[] rows = Enumerable.Range(0, 4 * n).Select(_ => (Half)(random.NextDouble() * 4 - 2)).ToArray();
        if (withInfinity) rows[2 * n + 7] = Half.PositiveInfinity;
        float[] x = Enumerable.Range(0, n).Select(_ => (float)(random.NextDouble() - 0.5)).ToArray();
        var four = new float[4];
        fixed (Half* w = rows)
        fixed (float* xp = x, y = four)
            Dot.F16FourRows((ushort*)w, n, xp, n, y);
        for (int r = 0; r < 4; r++)
            Assert.Equal(Dot.F16(rows.AsSpan(r * n, n), x), four[r], 4);
    }

    [SkippableFact]
    public void FiniteHalfConversionNarrow_EveryFiniteBitPattern_ConvertsExactly()
    {
        Skip.IfNot(System.Runtime.Intrinsics.Vector256.IsHardwareAccelerated, "a 256-bit kernel; this CPU (or DOTNET_EnableAVX2=0) has no 256-bit vectors");
        var converted = new float[8];
        for (int start = 0; start < 65536; start += 8)
        {
            var wide = new int[8];
            for (int i = 0; i < 8; i++) wide[i] = (short)(start + i); // sign-extended, as the AVX2 load does
            System.Runtime.Intrinsics.Vector256.CopyTo(Dot.FiniteHalfToSingle(System.Runtime.Intrinsics.Vector256.Create(wide)), converted);
            for (int i = 0; i < 8; i++)
            {
                Half half = BitConverter.UInt16BitsToHalf((ushort)(start + i));
                if (Half.IsFinite(half))
                    Assert.True(BitConverter.SingleToUInt32Bits((float)half) == BitConverter.SingleToUInt32Bits(converted[i]), $"bits 0x{start + i:X4}: {converted[i]} vs {(float)half}");
            }
        }
    }

    [SkippableTheory]
    [InlineData(false)]
    [InlineData(true)]
    public unsafe void DotF16FourRowsNarrow_MatchesRowByRow(bool withNaN)
    {
        Skip.IfNot(System.Runtime.Intrinsics.X86.Avx2.IsSupported && System.Runtime.Intrinsics.X86.Fma.IsSupported, "an AVX2+FMA kernel; this CPU (or DOTNET_EnableAVX2=0) has none");
        const int n = 96;
        var random = new Random(10);
        Half[] rows = Enumerable.Range(0, 4 * n).Select(_ => (Half)(random.NextDouble() * 4 - 2)).ToArray();
        if (withNaN) rows[3 * n + 50] = Half.NaN;
        float[] x = Enumerable.Range(0, n).Select(_ => (float)(random.NextDouble() - 0.5)).ToArray();
        var four = new float[4];
        fixed (Half* w = rows)
        fixed (float* xp = x, y = four)
            Dot.F16FourRowsNarrow((ushort*)w, n, xp, n, y);
        for (int r = 0; r < 4; r++)
        {
            float expected = Dot.F16(rows.AsSpan(r * n, n), x);
            if (float.IsNaN(expected)) Assert.True(float.IsNaN(four[r]), $"row {r}: {four[r]}, expected NaN");
            else Assert.Equal(expected, four[r], 4);
        }
    }

    [Fact]
    public void DotF16_MatchesTwoPassForm()
    {
        var random = new Random(3);
        Half[] row = Enumerable.Range(0, 1000).Select(_ => (Half)(random.NextDouble() * 4 - 2)).ToArray();
        float[] x = Enumerable.Range(0, 1000).Select(_ => (float)(random.NextDouble() - 0.5)).ToArray();
        Assert.Equal(NextToken.Kernels.Dot.F16TwoPass(row, x), NextToken.Kernels.Dot.F16(row, x), 3);
    }
}
