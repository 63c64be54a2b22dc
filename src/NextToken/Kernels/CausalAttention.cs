using System.Runtime.CompilerServices;
using System.Numerics.Tensors;
using System.Runtime.Intrinsics;

namespace NextToken.Kernels;

/// <summary>
/// Causal multi-head attention over a KV cache, with grouped-query sharing (query head h reads
/// KV head h / (nHead / nKvHead); plain multi-head attention is nKvHead = nHead). When asked, the
/// softmax probabilities are kept so hooks can read the pattern; otherwise each (position, head)
/// works in a small per-thread row that stays in L1.
/// </summary>
public sealed class CausalAttention : IParallelWork
{
    private float[] _queries = [], _keyCache = [], _valueCache = [], _output = [];
    private int _queryStride, _p0;
    private long _cacheOffset;
    private bool _keepPattern;
    private float[]? _scores;
    [ThreadStatic] private static float[]? _scratch;

    private readonly int _nHead, _nKvHead, _headDim, _nCtx;

    public CausalAttention(int nHead, int nKvHead, int headDim, int nCtx, int maxBatch)
    {
        if (nHead % nKvHead != 0)
            throw new NextTokenException($"attention head count {nHead} is not a multiple of the KV head count {nKvHead}");
        (_nHead, _nKvHead, _headDim, _nCtx, _maxBatch) = (nHead, nKvHead, headDim, nCtx, maxBatch);
    }

    private readonly int _maxBatch;

    /// <summary>[maxBatch, nHead, nCtx] attention probabilities of the last batch run with keepPattern (allocated on first use).</summary>
    private float[] Scores => _scores ??= new float[(long)_maxBatch * _nHead * _nCtx];

    public int KvDim => _nKvHead * _headDim;

    /// <summary>
    /// For queries at positions p0 … p0+n−1 (keys and values already in the cache up to p0+n−1):
    /// output[t, h] = softmax(q[t, h] · K[0..p0+t]ᵀ / √headDim) · V[0..p0+t].
    /// </summary>
    /// <param name="queries">[n, queryStride], head h at columns h·headDim</param>
    /// <param name="keyCache">[nCtx, kvDim] of this layer, starting at <paramref name="cacheOffset"/></param>
    /// <param name="output">[n, nHead·headDim]</param>
    /// <param name="keepPattern">Keep the probabilities for <see cref="Pattern"/> (a hook wants them).</param>
    public void Run(float[] queries, int queryStride, float[] keyCache, float[] valueCache, long cacheOffset,
                    int p0, int n, float[] output, int threads, bool keepPattern = false)
    {
        int work = n * _nHead;
        long cost = (long)work * (p0 + n) * _headDim;
        (_queries, _queryStride, _keyCache, _valueCache, _cacheOffset, _p0, _output) = (queries, queryStride, keyCache, valueCache, cacheOffset, p0, output);
        _keepPattern = keepPattern;
        if (keepPattern) _ = Scores;
        _work = work;
        _chunks = threads > 1 && cost > 65_536 ? Math.Min(work, threads * 8) : 1;
        WorkerPool.Shared.Run(this, _chunks, threads);
    }

    private int _work, _chunks;

    /// <summary>
    /// A run of consecutive (query position, head) pairs of the current <see cref="Run"/>: threads
    /// take whole runs, not alternate pairs, so they do not write the same cache lines of the output.
    /// </summary>
    public void Execute(int chunk)
    {
        int start = (int)((long)_work * chunk / _chunks), end = (int)((long)_work * (chunk + 1) / _chunks);
        for (int item = start; item < end; item++)
            AttendOne(_queries, _queryStride, _keyCache, _valueCache, _cacheOffset, _p0, item / _nHead, item % _nHead, _output);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private unsafe void AttendOne(float[] queries, int queryStride, float[] keyCache, float[] valueCache, long cacheOffset,
                                  int p0, int t, int head, float[] output)
    {
        int hd = _headDim, kvDim = KvDim, keys = p0 + t + 1;
        int kvHead = head / (_nHead / _nKvHead);
        float scale = 1f / MathF.Sqrt(hd);
        Span<float> scores = _keepPattern
            ? Scores.AsSpan((t * _nHead + head) * _nCtx, keys)
            : (_scratch is { } scratch && scratch.Length >= _nCtx ? scratch : _scratch = new float[_nCtx]).AsSpan(0, keys);
        fixed (float* q = &queries[t * queryStride + head * hd])
        fixed (float* k = &keyCache[cacheOffset + kvHead * hd])
        fixed (float* v = &valueCache[cacheOffset + kvHead * hd])
        fixed (float* o = &output[t * _nHead * hd + head * hd])
        {
            // Scores: q · k_j for every earlier key (rows of the cache are kvDim apart).
            if (hd % 64 == 0 && Vector512.IsHardwareAccelerated)
                ScoresWide(q, k, kvDim, hd, keys, scale, scores);
            else if (hd % 8 == 0 && Vector256.IsHardwareAccelerated)
            {
                for (int j = 0; j < keys; j++)
                {
                    float* kj = k + (long)j * kvDim;
                    Vector256<float> acc = Vector256.Load(q) * Vector256.Load(kj);
                    for (int i = 8; i < hd; i += 8) acc = Vector256.FusedMultiplyAdd(Vector256.Load(q + i), Vector256.Load(kj + i), acc);
                    scores[j] = Vector256.Sum(acc) * scale;
                }
            }
            else
            {
                for (int j = 0; j < keys; j++)
                    scores[j] = TensorPrimitives.Dot(new ReadOnlySpan<float>(q, hd), new ReadOnlySpan<float>(k + (long)j * kvDim, hd)) * scale;
            }
            TensorPrimitives.SoftMax(scores, scores);

            // Output: Σ_j p_j · v_j.
            var result = new Span<float>(o, hd);
            result.Clear();
            if (hd % 64 == 0 && Vector512.IsHardwareAccelerated)
                WeightedValuesWide(scores, v, kvDim, hd, o);
            else if (hd % 8 == 0 && hd <= 256 && Vector256.IsHardwareAccelerated)
            {
                for (int i = 0; i < hd; i += 8)
                {
                    Vector256<float> acc = Vector256<float>.Zero;
                    for (int j = 0; j < keys; j++) acc = Vector256.FusedMultiplyAdd(Vector256.Create(scores[j]), Vector256.Load(v + (long)j * kvDim + i), acc);
                    acc.Store(o + i);
                }
            }
            else
            {
                for (int j = 0; j < keys; j++)
                    TensorPrimitives.MultiplyAdd(new ReadOnlySpan<float>(v + (long)j * kvDim, hd), scores[j], result, result);
            }
        }
    }

    /// <summary>scores[j] = scale · q · k_j, four keys at a time so four FMA chains run side by side (AVX-512, hd a multiple of 64).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void ScoresWide(float* q, float* k, int kvDim, int hd, int keys, float scale, Span<float> scores)
    {
        int j = 0;
        for (; j + 4 <= keys; j += 4)
        {
            float* k0 = k + (long)j * kvDim, k1 = k0 + kvDim, k2 = k1 + kvDim, k3 = k2 + kvDim;
            Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
            for (int i = 0; i < hd; i += 16)
            {
                Vector512<float> qi = Vector512.Load(q + i);
                a0 = Vector512.FusedMultiplyAdd(qi, Vector512.Load(k0 + i), a0);
                a1 = Vector512.FusedMultiplyAdd(qi, Vector512.Load(k1 + i), a1);
                a2 = Vector512.FusedMultiplyAdd(qi, Vector512.Load(k2 + i), a2);
                a3 = Vector512.FusedMultiplyAdd(qi, Vector512.Load(k3 + i), a3);
            }
            scores[j] = Vector512.Sum(a0) * scale;
            scores[j + 1] = Vector512.Sum(a1) * scale;
            scores[j + 2] = Vector512.Sum(a2) * scale;
            scores[j + 3] = Vector512.Sum(a3) * scale;
        }
        for (; j < keys; j++)
        {
            float* kj = k + (long)j * kvDim;
            Vector512<float> acc = default;
            for (int i = 0; i < hd; i += 16) acc = Vector512.FusedMultiplyAdd(Vector512.Load(q + i), Vector512.Load(kj + i), acc);
            scores[j] = Vector512.Sum(acc) * scale;
        }
    }

    /// <summary>
    /// o = Σ_j p_j · v_j, 64 columns at a time in four accumulators, two keys per step into separate
    /// accumulators so consecutive FMAs do not wait on each other (AVX-512, hd a multiple of 64).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void WeightedValuesWide(ReadOnlySpan<float> p, float* v, int kvDim, int hd, float* o)
    {
        int keys = p.Length;
        for (int c = 0; c < hd; c += 64)
        {
            Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
            Vector512<float> b0 = default, b1 = default, b2 = default, b3 = default;
            int j = 0;
            for (; j + 2 <= keys; j += 2)
            {
                float* v0 = v + (long)j * kvDim + c, v1 = v0 + kvDim;
                var p0 = Vector512.Create(p[j]);
                var p1 = Vector512.Create(p[j + 1]);
                a0 = Vector512.FusedMultiplyAdd(p0, Vector512.Load(v0), a0);
                a1 = Vector512.FusedMultiplyAdd(p0, Vector512.Load(v0 + 16), a1);
                a2 = Vector512.FusedMultiplyAdd(p0, Vector512.Load(v0 + 32), a2);
                a3 = Vector512.FusedMultiplyAdd(p0, Vector512.Load(v0 + 48), a3);
                b0 = Vector512.FusedMultiplyAdd(p1, Vector512.Load(v1), b0);
                b1 = Vector512.FusedMultiplyAdd(p1, Vector512.Load(v1 + 16), b1);
                b2 = Vector512.FusedMultiplyAdd(p1, Vector512.Load(v1 + 32), b2);
                b3 = Vector512.FusedMultiplyAdd(p1, Vector512.Load(v1 + 48), b3);
            }
            if (j < keys)
            {
                float* v0 = v + (long)j * kvDim + c;
                var p0 = Vector512.Create(p[j]);
                a0 = Vector512.FusedMultiplyAdd(p0, Vector512.Load(v0), a0);
                a1 = Vector512.FusedMultiplyAdd(p0, Vector512.Load(v0 + 16), a1);
                a2 = Vector512.FusedMultiplyAdd(p0, Vector512.Load(v0 + 32), a2);
                a3 = Vector512.FusedMultiplyAdd(p0, Vector512.Load(v0 + 48), a3);
            }
            (a0 + b0).Store(o + c);
            (a1 + b1).Store(o + c + 16);
            (a2 + b2).Store(o + c + 32);
            (a3 + b3).Store(o + c + 48);
        }
    }

    /// <summary>The last batch's probabilities as [nHead, n, p0+n] (zeros above the diagonal), for hooks.</summary>
    public float[] Pattern(int p0, int n)
    {
        if (!_keepPattern) throw new InvalidOperationException("the last attention run did not keep its pattern (Run with keepPattern: true)");
        int keys = p0 + n;
        var pattern = new float[_nHead * n * keys];
        for (int h = 0; h < _nHead; h++)
            for (int t = 0; t < n; t++)
                Scores.AsSpan((t * _nHead + h) * _nCtx, p0 + t + 1).CopyTo(pattern.AsSpan((h * n + t) * keys));
        return pattern;
    }
}
