using System.Numerics.Tensors;

namespace NextToken.Kernels;

/// <summary>
/// Causal multi-head attention over a KV cache, with grouped-query sharing (query head h reads
/// KV head h / (nHead / nKvHead); plain multi-head attention is nKvHead = nHead). The softmax
/// probabilities stay in <see cref="Scores"/> so hooks can read the pattern.
/// </summary>
public sealed class CausalAttention : IParallelWork
{
    private float[] _queries = [], _keyCache = [], _valueCache = [], _output = [];
    private int _queryStride, _p0;
    private long _cacheOffset;

    private readonly int _nHead, _nKvHead, _headDim, _nCtx;

    public CausalAttention(int nHead, int nKvHead, int headDim, int nCtx, int maxBatch)
    {
        if (nHead % nKvHead != 0)
            throw new NextTokenException($"attention head count {nHead} is not a multiple of the KV head count {nKvHead}");
        (_nHead, _nKvHead, _headDim, _nCtx) = (nHead, nKvHead, headDim, nCtx);
        Scores = new float[maxBatch * nHead * nCtx];
    }

    /// <summary>[maxBatch, nHead, nCtx] attention probabilities of the last batch.</summary>
    public float[] Scores { get; }

    public int KvDim => _nKvHead * _headDim;

    /// <summary>
    /// For queries at positions p0 … p0+n−1 (keys and values already in the cache up to p0+n−1):
    /// output[t, h] = softmax(q[t, h] · K[0..p0+t]ᵀ / √headDim) · V[0..p0+t].
    /// </summary>
    /// <param name="queries">[n, queryStride], head h at columns h·headDim</param>
    /// <param name="keyCache">[nCtx, kvDim] of this layer, starting at <paramref name="cacheOffset"/></param>
    /// <param name="output">[n, nHead·headDim]</param>
    public void Run(float[] queries, int queryStride, float[] keyCache, float[] valueCache, long cacheOffset,
                    int p0, int n, float[] output, int threads)
    {
        int work = n * _nHead;
        long cost = (long)work * (p0 + n) * _headDim;
        (_queries, _queryStride, _keyCache, _valueCache, _cacheOffset, _p0, _output) = (queries, queryStride, keyCache, valueCache, cacheOffset, p0, output);
        WorkerPool.Shared.Run(this, work, threads > 1 && cost > 65_536 ? threads : 1);
    }

    /// <summary>One (query position, head) pair of the current <see cref="Run"/>.</summary>
    public void Execute(int chunk) =>
        AttendOne(_queries, _queryStride, _keyCache, _valueCache, _cacheOffset, _p0, chunk / _nHead, chunk % _nHead, _output);

    private void AttendOne(float[] queries, int queryStride, float[] keyCache, float[] valueCache, long cacheOffset,
                           int p0, int t, int head, float[] output)
    {
        int hd = _headDim, kvDim = KvDim, keys = p0 + t + 1;
        int kvHead = head / (_nHead / _nKvHead);
        float scale = 1f / MathF.Sqrt(hd);
        ReadOnlySpan<float> q = queries.AsSpan(t * queryStride + head * hd, hd);
        Span<float> scores = Scores.AsSpan((t * _nHead + head) * _nCtx, keys);
        ReadOnlySpan<float> k = keyCache.AsSpan((int)cacheOffset, keys * kvDim);
        ReadOnlySpan<float> v = valueCache.AsSpan((int)cacheOffset, keys * kvDim);
        for (int j = 0; j < keys; j++)
            scores[j] = TensorPrimitives.Dot(q, k.Slice(j * kvDim + kvHead * hd, hd)) * scale;
        TensorPrimitives.SoftMax(scores, scores);
        Span<float> o = output.AsSpan(t * _nHead * hd + head * hd, hd);
        o.Clear();
        for (int j = 0; j < keys; j++)
            TensorPrimitives.MultiplyAdd(v.Slice(j * kvDim + kvHead * hd, hd), scores[j], o, o);
    }

    /// <summary>The last batch's probabilities as [nHead, n, p0+n] (zeros above the diagonal), for hooks.</summary>
    public float[] Pattern(int p0, int n)
    {
        int keys = p0 + n;
        var pattern = new float[_nHead * n * keys];
        for (int h = 0; h < _nHead; h++)
            for (int t = 0; t < n; t++)
                Scores.AsSpan((t * _nHead + h) * _nCtx, p0 + t + 1).CopyTo(pattern.AsSpan((h * n + t) * keys));
        return pattern;
    }
}
