using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace NextToken.Kernels;

/// <summary>
/// Causal multi-head attention over a KV cache, with grouped-query sharing (query head h reads
/// KV head h / (nHead / nKvHead); plain multi-head attention is nKvHead = nHead). When asked, the
/// softmax probabilities are kept so hooks can read the pattern; otherwise each (position, head)
/// works in a small per-thread row that stays in L1. Options of some families: the scale of q·k
/// (default 1/√headDim), a softcap cap·tanh(s/cap) of the scores before the mask (Gemma 2), and
/// a sliding window per call (a query at position i sees keys j with 0 ≤ i − j &lt; window).
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
    private readonly float _scale, _softcap;
    private int _window;

    /// <param name="scale">multiplier of q·k; 0 means 1/√headDim</param>
    /// <param name="softcap">scores become softcap·tanh(s/softcap) before the mask; 0 = off</param>
    public CausalAttention(int nHead, int nKvHead, int headDim, int nCtx, int maxBatch, float scale = 0, float softcap = 0)
    {
        if (nHead % nKvHead != 0)
            throw new NextTokenException($"attention head count {nHead} is not a multiple of the KV head count {nKvHead}");
        (_nHead, _nKvHead, _headDim, _nCtx, _maxBatch) = (nHead, nKvHead, headDim, nCtx, maxBatch);
        _scale = scale > 0 ? scale : 1f / MathF.Sqrt(headDim);
        _softcap = softcap;
        _groupedItemHeads = ItemHeadsOf(nHead / nKvHead);
    }

    private readonly int _maxBatch;

    /// <summary>
    /// Take the 256-bit (AVX2+FMA) kernels even where AVX-512 is there, so tests and benchmarks on
    /// an AVX-512 machine run the path an AVX2-only CPU takes. Per instance: no other user is affected.
    /// </summary>
    internal bool PreferNarrow { get; set; }

    /// <summary>The AVX-512 kernels apply (unless <see cref="PreferNarrow"/>).</summary>
    private bool Wide => Vector512.IsHardwareAccelerated && !PreferNarrow;

    /// <summary>The 256-bit blocked prompt kernel needs FMA: without it Vector256.FusedMultiplyAdd is emulated in software.</summary>
    private static bool NarrowBlocks => Vector256.IsHardwareAccelerated && Fma.IsSupported;

    /// <summary>[maxBatch, nHead, nCtx] attention probabilities of the last batch run with keepPattern (allocated on first use).</summary>
    private float[] Scores => _scores ??= new float[(long)_maxBatch * _nHead * _nCtx];

    public int KvDim => _nKvHead * _headDim;

    /// <summary>Where KV head <paramref name="kvHead"/>'s rows start in a layer's cache block at <paramref name="cacheOffset"/>.</summary>
    private long HeadOffset(long cacheOffset, int kvHead) => cacheOffset + (long)kvHead * _nCtx * _headDim;

    /// <summary>
    /// Writes the keys and values of positions p0 … p0+n−1 into a layer's cache block, laid out
    /// [nKvHead, nCtx, headDim] so that each head's keys are one contiguous run for attention to stream.
    /// </summary>
    /// <param name="keys">[n, keyStride], KV head h at columns h·headDim</param>
    /// <param name="values">[n, valueStride], likewise</param>
    /// <param name="keyCache">[nLayer, nKvHead, nCtx, headDim]; this layer's block starts at <paramref name="cacheOffset"/></param>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void Store(ReadOnlySpan<float> keys, int keyStride, ReadOnlySpan<float> values, int valueStride,
                      float[] keyCache, float[] valueCache, long cacheOffset, int p0, int n)
    {
        if (p0 < 0 || p0 + n > _nCtx) throw new ArgumentOutOfRangeException(nameof(p0), $"positions {p0}…{p0 + n - 1} are outside the context of {_nCtx}");
        if (n > 0 && (keys.Length < (long)(n - 1) * keyStride + KvDim || values.Length < (long)(n - 1) * valueStride + KvDim))
            throw new ArgumentException($"{n} positions of {KvDim} keys and values need longer rows than {keys.Length} and {values.Length} floats");
        int hd = _headDim;
        for (int t = 0; t < n; t++)
            for (int h = 0; h < _nKvHead; h++)
            {
                long at = HeadOffset(cacheOffset, h) + (long)(p0 + t) * hd;
                keys.Slice(t * keyStride + h * hd, hd).CopyTo(keyCache.AsSpan(checked((int)at), hd));
                values.Slice(t * valueStride + h * hd, hd).CopyTo(valueCache.AsSpan(checked((int)at), hd));
            }
    }

    /// <summary>
    /// For queries at positions p0 … p0+n−1 (keys and values already in the cache up to p0+n−1):
    /// output[t, h] = softmax(q[t, h] · K[0..p0+t]ᵀ / √headDim) · V[0..p0+t].
    /// </summary>
    /// <param name="queries">[n, queryStride], head h at columns h·headDim</param>
    /// <param name="keyCache">as written by <see cref="Store"/>; this layer's block starts at <paramref name="cacheOffset"/></param>
    /// <param name="output">[n, nHead·headDim]</param>
    /// <param name="keepPattern">Keep the probabilities for <see cref="Pattern"/> (a hook wants them).</param>
    /// <param name="window">Sliding window: keys a query sees, itself included; 0 = every earlier key.</param>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void Run(float[] queries, int queryStride, float[] keyCache, float[] valueCache, long cacheOffset,
                    int p0, int n, float[] output, int threads, bool keepPattern = false, int window = 0)
    {
        _window = window;
        int work = n * _nHead;
        long cost = (long)work * (p0 + n) * _headDim;
        (_queries, _queryStride, _keyCache, _valueCache, _cacheOffset, _p0, _output) = (queries, queryStride, keyCache, valueCache, cacheOffset, p0, output);
        _keepPattern = keepPattern;
        if (keepPattern) _ = Scores;
        // A prompt runs 16 queries of one head at a time (see AttendBlock) unless a hook wants the pattern.
        _wide = Wide;
        _blockedWide = _wide && _headDim % 16 == 0;
        _blocked = !keepPattern && n >= BlockQueries && (_blockedWide || NarrowBlocks);
        _n = n;
        _headsPerItem = Grouped(keepPattern) ? _groupedItemHeads : HeadsPerItem(n, threads);
        _partsWanted = _blocked || !Grouped(keepPattern) ? 1 : PartsWanted(threads);
        _parts = PartsOf(p0 + n).Parts;
        _work = _blocked ? _nHead * ((n + BlockQueries - 1) / BlockQueries) : n * (_nHead / _headsPerItem) * _parts;
        EnsurePartials(n);
        _chunks = threads > 1 && cost > 65_536 ? Math.Min(_work, threads * 8) : 1;
        WorkerPool.Shared.Run(this, _chunks, threads);
        if (_parts > 1)
            for (int t = 0; t < n; t++) MergeParts(t, p0 + t + 1);
    }

    /// <summary>
    /// One query per row, each row a different context (its own caches and position): several
    /// sequences decoded together. Each (row, head) is computed exactly as <see cref="Run"/>
    /// computes a single decode step, so a row's output does not depend on the other rows.
    /// </summary>
    /// <param name="keyCaches">per row, that context's key cache (layer block at <paramref name="cacheOffset"/>)</param>
    /// <param name="positions">per row, the position of its query (its key and value already stored there)</param>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void RunEach(float[] queries, int queryStride, float[][] keyCaches, float[][] valueCaches, long cacheOffset,
                        int[] positions, int n, float[] output, int threads, int window = 0)
    {
        _window = window;
        if (keyCaches.Length < n || valueCaches.Length < n || positions.Length < n)
            throw new ArgumentException($"attention over {n} contexts needs {n} caches and positions");
        long cost = 0;
        for (int t = 0; t < n; t++)
        {
            if (positions[t] < 0 || positions[t] >= _nCtx) throw new ArgumentOutOfRangeException(nameof(positions), $"position {positions[t]} is outside the context of {_nCtx}");
            cost += (long)_nHead * (positions[t] + 1) * _headDim;
        }
        (_queries, _queryStride, _cacheOffset, _output) = (queries, queryStride, cacheOffset, output);
        (_eachKeys, _eachValues, _eachPositions) = (keyCaches, valueCaches, positions);
        _keepPattern = false;
        _blocked = false;
        _wide = Wide;
        _n = n;
        _headsPerItem = Grouped(keepPattern: false) ? _groupedItemHeads : HeadsPerItem(n, threads);
        _partsWanted = Grouped(keepPattern: false) ? PartsWanted(threads) : 1;
        _parts = 1;
        for (int t = 0; t < n; t++) _parts = Math.Max(_parts, PartsOf(positions[t] + 1).Parts);
        _work = n * (_nHead / _headsPerItem) * _parts;
        EnsurePartials(n);
        _chunks = threads > 1 && cost > 65_536 ? Math.Min(_work, threads * 8) : 1;
        try
        {
            WorkerPool.Shared.Run(this, _chunks, threads);
            if (_parts > 1)
                for (int t = 0; t < n; t++) MergeParts(t, positions[t] + 1);
        }
        finally
        {
            _eachKeys = _eachValues = null;
            _eachPositions = null;
        }
    }

    private float[][]? _eachKeys, _eachValues;
    private int[]? _eachPositions;

    private const int BlockQueries = 16;
    private int _work, _chunks, _n, _headsPerItem = 1, _parts = 1, _partsWanted = 1;
    private bool _blocked, _blockedWide, _wide;

    /// <summary>
    /// Whether single queries take <see cref="AttendGroupWide{TH, TD, TP}"/> or <see cref="AttendGroupNarrow{TH, TD, TP}"/> (AVX-512, or
    /// AVX2 with FMA; no pattern kept, head size 64, 128, 256, 80 or 96 — the last two, Phi-2's and Phi-3's, on AVX-512 only
    /// where one pass of sixteen accumulators holds the item's heads: one or two). Their items are then always
    /// <see cref="_groupedItemHeads"/> heads of one KV head: the order of the kernels' sums depends on the heads they run
    /// with, and a query's result must not depend on how many rows or threads share the call (a batch of contexts equals
    /// each alone, bit for bit).
    /// </summary>
    private bool Grouped(bool keepPattern) =>
        !keepPattern && (_headDim is 64 or 128 or 256 ? _wide || NarrowBlocks
            : _headDim is 80 or 96 && (_wide ? (int)System.Numerics.BitOperations.RoundUpToPowerOf2((uint)_groupedItemHeads) * (_headDim / 16) <= 16 : NarrowBlocks));

    /// <summary>
    /// Heads of one grouped item: the whole group of a KV head up to eight (beyond, its largest divisor up to eight, each
    /// such part reading the rows once). 3, 5, 6 or 7 heads are laid out as the next power of two (<see cref="IHeads"/>).
    /// </summary>
    private readonly int _groupedItemHeads;

    private static int ItemHeadsOf(int group)
    {
        int heads = Math.Min(group, 8);
        while (group % heads != 0) heads--;
        return heads;
    }

    /// <summary>
    /// Fewest keys per part of a grouped decode (flash-decoding's split). When a query has fewer grouped items than threads
    /// (one KV head, or few), its keys go in parts of at least this many that threads take apart, each leaving its
    /// unnormalised outputs with each head's maximum and sum, merged by <see cref="MergeParts"/> in part order. The split
    /// depends on the query's keys, the model's shape and the thread count, never on what shares the call, so a query's
    /// bits do not either (a batch of contexts equals each alone at the same thread count). Where every thread already has
    /// a group, parts would only add work (each part's setup and tail, the merge on the calling thread), so they are not
    /// taken. Zen 5, 2 threads, attention of one generated token through all layers, whole groups → parts (positions 1024 /
    /// 4096): Gemma 3 1B's shape (4 heads on 1 KV head, head size 256, 26 layers) AVX-512 2.1–2.2 → 1.0–1.1 ms / 9.7–11.2 →
    /// 4.6–5.0, AVX2 3.9–4.0 → 1.9–2.1 / 20.2–21.2 → 10.0–10.3.
    /// </summary>
    private const int MinPartKeys = 256;

    private float[] _partials = [];

    /// <summary>The first key a query ending at <paramref name="end"/> (exclusive) sees: 0, or the window's start.</summary>
    private int FirstKey(int end) => _window > 0 ? Math.Max(0, end - _window) : 0;

    /// <summary>
    /// The thread count a grouped decode's split plans for, in place of the call's (capped by the pool's threads): lets
    /// tests split into more parts than this machine has cores.
    /// </summary>
    internal int? SplitThreads { get; set; }

    /// <summary>Parts per query that give every one of <paramref name="threads"/> threads an item: 1 when the groups do.</summary>
    private int PartsWanted(int threads)
    {
        threads = SplitThreads ?? Math.Min(threads, WorkerPool.Shared.Threads);
        int items = _nHead / _groupedItemHeads;
        return items >= threads ? 1 : (threads + items - 1) / items;
    }

    /// <summary>
    /// How the grouped decode of the query ending at <paramref name="end"/> splits its keys: parts of PartKeys (a multiple of
    /// 16, the last part shorter), none empty.
    /// </summary>
    private (int Parts, int PartKeys) PartsOf(int end)
    {
        int keys = end - FirstKey(end), parts = Math.Min(_partsWanted, keys / MinPartKeys);
        if (parts <= 1) return (1, keys);
        int partKeys = ((keys + parts - 1) / parts + 15) & ~15;
        return ((keys + partKeys - 1) / partKeys, partKeys);
    }

    /// <summary>Floats of one part's partial result: the item's heads' outputs, then their maxima and sums.</summary>
    private int PartFloats => _headsPerItem * (_headDim + 2);

    /// <summary>Where (query t, the item of head0, part) keeps its partial result in <see cref="_partials"/>.</summary>
    private int PartSlot(int t, int head0, int part) =>
        ((t * (_nHead / _headsPerItem) + head0 / _headsPerItem) * _parts + part) * PartFloats;

    private void EnsurePartials(int n)
    {
        if (_parts <= 1) return;
        int needed = n * (_nHead / _headsPerItem) * _parts * PartFloats;
        if (_partials.Length < needed) _partials = new float[needed];
    }

    /// <summary>
    /// Query t's outputs from its parts, for every item of heads: with M the largest part maximum, each part weighs
    /// e^(mᵢ − M); the output is Σ weightᵢ · outputᵢ / Σ weightᵢ · sumᵢ, summed in part order.
    /// </summary>
    private unsafe void MergeParts(int t, int end)
    {
        int parts = PartsOf(end).Parts, hd = _headDim, heads = _headsPerItem;
        if (parts <= 1) return;
        Span<float> weights = stackalloc float[parts];
        for (int head0 = 0; head0 < _nHead; head0 += heads)
            for (int g = 0; g < heads; g++)
            {
                float max = float.NegativeInfinity, sum = 0;
                for (int c = 0; c < parts; c++) max = Math.Max(max, _partials[PartSlot(t, head0, c) + heads * hd + g]);
                for (int c = 0; c < parts; c++)
                {
                    int stats = PartSlot(t, head0, c) + heads * hd;
                    weights[c] = MathF.Exp(_partials[stats + g] - max);
                    sum += weights[c] * _partials[stats + heads + g];
                }
                Span<float> o = _output.AsSpan((t * _nHead + head0 + g) * hd, hd);
                TensorPrimitives.Multiply(_partials.AsSpan(PartSlot(t, head0, 0) + g * hd, hd), weights[0], o);
                for (int c = 1; c < parts; c++)
                    TensorPrimitives.MultiplyAdd(_partials.AsSpan(PartSlot(t, head0, c) + g * hd, hd), weights[c], o, o);
                TensorPrimitives.Multiply(o, 1 / sum, o);
            }
    }

    /// <summary>A part's statistics (<see cref="AttendGroup"/>): each head's maximum, then its sum (lane g: head g).</summary>
    private static unsafe void PartStats(Vector512<float> sum, Vector512<float> max, int count, float* stats)
    {
        for (int g = 0; g < count; g++) (stats[g], stats[count + g]) = (max.GetElement(g), sum.GetElement(g));
    }

    /// <inheritdoc cref="PartStats(Vector512{float}, Vector512{float}, int, float*)"/>
    private static unsafe void PartStats(Vector256<float> sum, Vector256<float> max, int count, float* stats)
    {
        for (int g = 0; g < count; g++) (stats[g], stats[count + g]) = (max.GetElement(g), sum.GetElement(g));
    }

    /// <summary>
    /// Heads a row work item takes together: the query heads that share a KV head (read once for all
    /// of them), or a divisor of that group when whole groups would leave a thread without work.
    /// </summary>
    private int HeadsPerItem(int n, int threads)
    {
        int group = _nHead / _nKvHead;
        for (int heads = group; heads > 1; heads--)
            if (group % heads == 0 && n * (_nHead / heads) >= threads) return heads;
        return 1;
    }

    /// <summary>The last <see cref="Run"/> took the 256-bit blocked prompt kernel (tests check the path they meant to test ran).</summary>
    internal bool LastRunBlockedNarrow => _blocked && !_blockedWide;

    /// <summary>
    /// A run of consecutive work items of the current <see cref="Run"/> — (query position, heads
    /// sharing a KV head) pairs, or (head, block of 16 queries) for a prompt: threads take whole runs,
    /// not alternate items, so they do not write the same cache lines of the output. A prompt's items
    /// go head by head (at depth 4096, GPT-2's shape: 1.4× faster than block by block, AVX2 and AVX-512).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void Execute(int chunk)
    {
        int start = (int)((long)_work * chunk / _chunks), end = (int)((long)_work * (chunk + 1) / _chunks);
        for (int item = start; item < end; item++)
        {
            if (_blocked)
            {
                // Head-major: consecutive items read the same KV head (the heads sharing it are consecutive too), which stays in L2.
                int blocks = (_n + BlockQueries - 1) / BlockQueries, t0 = item % blocks * BlockQueries, head = item / blocks;
                if (_blockedWide) AttendBlock(_queries, _queryStride, _keyCache, _valueCache, _cacheOffset, _p0, _n, t0, head, _output);
                else AttendBlockNarrow(_queries, _queryStride, _keyCache, _valueCache, _cacheOffset, _p0, _n, t0, head, _output);
            }
            else
            {
                // Items go query, KV group, part of the keys (consecutive parts read consecutive rows of one KV head).
                int perRow = _nHead / _headsPerItem, part = item % _parts, rowItem = item / _parts;
                int t = rowItem / perRow, head0 = rowItem % perRow * _headsPerItem;
                // Row t's query sits at positions[t]: as a single step, with p0 chosen so p0 + t is that position.
                if (_eachPositions is { } positions)
                    AttendHeads(_queries, _queryStride, _eachKeys![t], _eachValues![t], _cacheOffset, positions[t] - t, t, head0, _headsPerItem, _output, part);
                else
                    AttendHeads(_queries, _queryStride, _keyCache, _valueCache, _cacheOffset, _p0, t, head0, _headsPerItem, _output, part);
            }
        }
    }

    [ThreadStatic] private static float[]? _blockScratch;

    /// <summary>
    /// Queries t0 … t0+15 of one head at once, with AVX-512: the 16 queries are transposed so one
    /// vector holds one dimension of all of them; each key then costs headDim broadcast-FMAs for 16
    /// scores, the softmax runs down the 16 lanes, and each value row is broadcast into 16 outputs.
    /// Scores are [key][16 queries] in a per-thread buffer; future keys are masked to −∞.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private unsafe void AttendBlock(float[] queries, int queryStride, float[] keyCache, float[] valueCache, long cacheOffset,
                                    int p0, int n, int t0, int head, float[] output)
    {
        int hd = _headDim, stride = hd, kvHead = head / (_nHead / _nKvHead);
        int lanes = Math.Min(BlockQueries, n - t0);
        // With a window, keys before the first query's window are never read: key j of the block is first + j.
        int first = _window > 0 ? Math.Max(0, p0 + t0 - _window + 1) : 0, keys = p0 + t0 + lanes - first;
        int scratchLength = (hd + keys) * BlockQueries + hd * BlockQueries;
        float[] scratch = _blockScratch is { } b && b.Length >= scratchLength ? b : _blockScratch = new float[Math.Max(scratchLength, (hd + _nCtx) * BlockQueries * 2)];
        float scale = _scale;
        fixed (float* q = queries)
        fixed (float* kBase = &keyCache[HeadOffset(cacheOffset, kvHead) + (long)first * hd])
        fixed (float* vBase = &valueCache[HeadOffset(cacheOffset, kvHead) + (long)first * hd])
        fixed (float* o = output)
        fixed (float* work = scratch)
        {
            float* qt = work;                           // [hd][16] queries transposed, pre-scaled by 1/√hd
            float* p = work + hd * BlockQueries;        // [keys][16] scores, then probabilities
            float* ot = p + keys * BlockQueries;        // [hd][16] outputs transposed
            for (int d = 0; d < hd; d++)
                for (int i = 0; i < BlockQueries; i++)
                    qt[d * BlockQueries + i] = i < lanes ? q[(long)(t0 + i) * queryStride + head * hd + d] * scale : 0;

            // Scores, eight keys at a time so eight FMA chains run side by side.
            int j = 0;
            for (; j + 8 <= keys; j += 8)
            {
                float* k0 = kBase + (long)j * stride;
                Vector512<float> s0 = default, s1 = default, s2 = default, s3 = default, s4 = default, s5 = default, s6 = default, s7 = default;
                for (int d = 0; d < hd; d++)
                {
                    Vector512<float> qd = Vector512.Load(qt + d * BlockQueries);
                    s0 = Vector512.FusedMultiplyAdd(qd, Vector512.Create(k0[d]), s0);
                    s1 = Vector512.FusedMultiplyAdd(qd, Vector512.Create(k0[stride + d]), s1);
                    s2 = Vector512.FusedMultiplyAdd(qd, Vector512.Create(k0[2 * stride + d]), s2);
                    s3 = Vector512.FusedMultiplyAdd(qd, Vector512.Create(k0[3 * stride + d]), s3);
                    s4 = Vector512.FusedMultiplyAdd(qd, Vector512.Create(k0[4 * stride + d]), s4);
                    s5 = Vector512.FusedMultiplyAdd(qd, Vector512.Create(k0[5 * stride + d]), s5);
                    s6 = Vector512.FusedMultiplyAdd(qd, Vector512.Create(k0[6 * stride + d]), s6);
                    s7 = Vector512.FusedMultiplyAdd(qd, Vector512.Create(k0[7 * stride + d]), s7);
                }
                float* pj = p + j * BlockQueries;
                s0.Store(pj); s1.Store(pj + 16); s2.Store(pj + 32); s3.Store(pj + 48);
                s4.Store(pj + 64); s5.Store(pj + 80); s6.Store(pj + 96); s7.Store(pj + 112);
            }
            for (; j < keys; j++)
            {
                float* kj = kBase + (long)j * stride;
                Vector512<float> sj = default;
                for (int d = 0; d < hd; d++) sj = Vector512.FusedMultiplyAdd(Vector512.Load(qt + d * BlockQueries), Vector512.Create(kj[d]), sj);
                sj.Store(p + j * BlockQueries);
            }

            if (_softcap > 0) Ops.Softcap(new Span<float>(p, keys * BlockQueries), _softcap, new Span<float>(p, keys * BlockQueries));

            // Causal mask: query i (position p0+t0+i) sees keys up to p0+t0+i.
            var lane = Vector512.Create(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
            for (int k = 1; k < lanes; k++)
            {
                float* pk = p + (p0 + t0 + k - first) * BlockQueries;
                Vector512.ConditionalSelect(Vector512.LessThan(lane, Vector512.Create(k)).AsSingle(), Vector512.Create(float.NegativeInfinity), Vector512.Load(pk)).Store(pk);
            }
            // Window: key first+j is too old for query i when (p0+t0+i) − (first+j) ≥ window, i.e. for lanes i ≥ j + first − p0 − t0 + window.
            if (_window > 0)
                for (j = 0; j < keys; j++)
                {
                    int from = j + first - p0 - t0 + _window;
                    if (from >= lanes) break;
                    float* pj = p + j * BlockQueries;
                    Vector512.ConditionalSelect(Vector512.GreaterThanOrEqual(lane, Vector512.Create(from)).AsSingle(), Vector512.Create(float.NegativeInfinity), Vector512.Load(pj)).Store(pj);
                }

            // Softmax down each lane.
            Vector512<float> max = Vector512.Create(float.NegativeInfinity);
            for (j = 0; j < keys; j++) max = Vector512.Max(max, Vector512.Load(p + j * BlockQueries));
            Vector512<float> sum = default;
            for (j = 0; j < keys; j++)
            {
                Vector512<float> e = Vector512.Exp(Vector512.Load(p + j * BlockQueries) - max);
                e.Store(p + j * BlockQueries);
                sum += e;
            }
            Vector512<float> inverse = Vector512<float>.One / sum;

            // Outputs: eight dimensions at a time, each value broadcast into the 16 queries' lanes.
            for (int d0 = 0; d0 < hd; d0 += 8)
            {
                Vector512<float> o0 = default, o1 = default, o2 = default, o3 = default, o4 = default, o5 = default, o6 = default, o7 = default;
                for (j = 0; j < keys; j++)
                {
                    Vector512<float> pj = Vector512.Load(p + j * BlockQueries);
                    float* vj = vBase + (long)j * stride + d0;
                    o0 = Vector512.FusedMultiplyAdd(pj, Vector512.Create(vj[0]), o0);
                    o1 = Vector512.FusedMultiplyAdd(pj, Vector512.Create(vj[1]), o1);
                    o2 = Vector512.FusedMultiplyAdd(pj, Vector512.Create(vj[2]), o2);
                    o3 = Vector512.FusedMultiplyAdd(pj, Vector512.Create(vj[3]), o3);
                    o4 = Vector512.FusedMultiplyAdd(pj, Vector512.Create(vj[4]), o4);
                    o5 = Vector512.FusedMultiplyAdd(pj, Vector512.Create(vj[5]), o5);
                    o6 = Vector512.FusedMultiplyAdd(pj, Vector512.Create(vj[6]), o6);
                    o7 = Vector512.FusedMultiplyAdd(pj, Vector512.Create(vj[7]), o7);
                }
                float* od = ot + d0 * BlockQueries;
                (o0 * inverse).Store(od); (o1 * inverse).Store(od + 16); (o2 * inverse).Store(od + 32); (o3 * inverse).Store(od + 48);
                (o4 * inverse).Store(od + 64); (o5 * inverse).Store(od + 80); (o6 * inverse).Store(od + 96); (o7 * inverse).Store(od + 112);
            }
            for (int i = 0; i < lanes; i++)
            {
                float* row = o + (long)(t0 + i) * _nHead * hd + head * hd;
                for (int d = 0; d < hd; d++) row[d] = ot[d * BlockQueries + i];
            }
        }
    }

    /// <summary>
    /// <see cref="AttendBlock"/> with 256-bit vectors (AVX2+FMA), any head size: the 16 queries are two
    /// vectors (0–7, 8–15), so each broadcast key or value element feeds two FMAs. Scores take six keys
    /// per step and outputs six dimensions per step: twelve independent accumulators, which with the
    /// two query (or probability) vectors and the broadcast fill 15 of the 16 registers. Keys go in
    /// tiles of <see cref="NarrowTile"/> with a running softmax (each lane's maximum so far; earlier
    /// sums and outputs rescaled when it grows), so a tile's probabilities and value rows stay in L1
    /// for the passes over them however deep the context.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private unsafe void AttendBlockNarrow(float[] queries, int queryStride, float[] keyCache, float[] valueCache, long cacheOffset,
                                          int p0, int n, int t0, int head, float[] output)
    {
        const int B = BlockQueries;
        int hd = _headDim, stride = hd, kvHead = head / (_nHead / _nKvHead);
        int lanes = Math.Min(B, n - t0);
        int first = _window > 0 ? Math.Max(0, p0 + t0 - _window + 1) : 0, keys = p0 + t0 + lanes - first;
        int scratchLength = (2 * hd + NarrowTile) * B;
        float[] scratch = _blockScratch is { } b && b.Length >= scratchLength ? b : _blockScratch = new float[Math.Max(scratchLength, (hd + _nCtx) * B * 2)];
        float scale = _scale;
        fixed (float* q = queries)
        fixed (float* kBase = &keyCache[HeadOffset(cacheOffset, kvHead) + (long)first * hd])
        fixed (float* vBase = &valueCache[HeadOffset(cacheOffset, kvHead) + (long)first * hd])
        fixed (float* o = output)
        fixed (float* work = scratch)
        {
            float* qt = work;                 // [hd][16] queries transposed, pre-scaled
            float* ot = qt + hd * B;          // [hd][16] outputs transposed, unnormalized
            float* p = ot + hd * B;           // [tile][16] scores, then probabilities
            for (int d = 0; d < hd; d++)
                for (int i = 0; i < B; i++)
                    qt[d * B + i] = i < lanes ? q[(long)(t0 + i) * queryStride + head * hd + d] * scale : 0;
            new Span<float>(ot, hd * B).Clear();

            var laneLo = Vector256.Create(0, 1, 2, 3, 4, 5, 6, 7);
            var laneHi = Vector256.Create(8, 9, 10, 11, 12, 13, 14, 15);
            var minusInfinity = Vector256.Create(float.NegativeInfinity);
            Vector256<float> maxLo = minusInfinity, maxHi = minusInfinity, sumLo = default, sumHi = default;
            bool windowDone = _window == 0;
            for (int j0 = 0; j0 < keys; j0 += NarrowTile)
            {
                int tile = Math.Min(NarrowTile, keys - j0);
                TileScoresNarrow(qt, kBase + (long)j0 * stride, stride, hd, tile, p);
                if (_softcap > 0) Ops.Softcap(new Span<float>(p, tile * B), _softcap, new Span<float>(p, tile * B));

                // Causal mask: query i (position p0+t0+i) sees keys up to p0+t0+i, i.e. key index p0+t0+k−first hides lanes below k.
                for (int k = Math.Max(1, j0 + first - p0 - t0); k < lanes; k++)
                {
                    int at = p0 + t0 + k - first - j0;
                    if (at >= tile) break;
                    float* pk = p + at * B;
                    var limit = Vector256.Create(k);
                    Vector256.ConditionalSelect(Vector256.LessThan(laneLo, limit).AsSingle(), minusInfinity, Vector256.Load(pk)).Store(pk);
                    Vector256.ConditionalSelect(Vector256.LessThan(laneHi, limit).AsSingle(), minusInfinity, Vector256.Load(pk + 8)).Store(pk + 8);
                }
                // Window: key first+j is too old for lanes i ≥ j + first − p0 − t0 + window (only the first keys, so only the first tiles).
                for (int j = 0; !windowDone && j < tile; j++)
                {
                    int from = j0 + j + first - p0 - t0 + _window;
                    if (from >= lanes) { windowDone = true; break; }
                    float* pj = p + j * B;
                    var limit = Vector256.Create(from);
                    Vector256.ConditionalSelect(Vector256.GreaterThanOrEqual(laneLo, limit).AsSingle(), minusInfinity, Vector256.Load(pj)).Store(pj);
                    Vector256.ConditionalSelect(Vector256.GreaterThanOrEqual(laneHi, limit).AsSingle(), minusInfinity, Vector256.Load(pj + 8)).Store(pj + 8);
                }

                // Running softmax: the new maximum of each lane; what was summed under the old one shrinks by exp(old − new).
                Vector256<float> newLo = maxLo, newHi = maxHi;
                for (int j = 0; j < tile; j++)
                {
                    newLo = Vector256.Max(newLo, Vector256.Load(p + j * B));
                    newHi = Vector256.Max(newHi, Vector256.Load(p + j * B + 8));
                }
                // A lane with no key seen yet keeps −∞ as its maximum but subtracts 0, so exp gives 0, not exp(−∞ + ∞) = NaN.
                Vector256<float> shiftLo = Vector256.ConditionalSelect(Vector256.Equals(newLo, minusInfinity), Vector256<float>.Zero, newLo);
                Vector256<float> shiftHi = Vector256.ConditionalSelect(Vector256.Equals(newHi, minusInfinity), Vector256<float>.Zero, newHi);
                if (j0 > 0)
                {
                    Vector256<float> shrinkLo = Vector256.Exp(maxLo - shiftLo), shrinkHi = Vector256.Exp(maxHi - shiftHi);
                    sumLo *= shrinkLo;
                    sumHi *= shrinkHi;
                    for (int d = 0; d < hd; d++)
                    {
                        (Vector256.Load(ot + d * B) * shrinkLo).Store(ot + d * B);
                        (Vector256.Load(ot + d * B + 8) * shrinkHi).Store(ot + d * B + 8);
                    }
                }
                (maxLo, maxHi) = (newLo, newHi);
                for (int j = 0; j < tile; j++)
                {
                    Vector256<float> eLo = Vector256.Exp(Vector256.Load(p + j * B) - shiftLo), eHi = Vector256.Exp(Vector256.Load(p + j * B + 8) - shiftHi);
                    eLo.Store(p + j * B);
                    eHi.Store(p + j * B + 8);
                    sumLo += eLo;
                    sumHi += eHi;
                }
                TileValuesNarrow(p, vBase + (long)j0 * stride, stride, hd, tile, ot);
            }

            Vector256<float> inverseLo = Vector256<float>.One / sumLo, inverseHi = Vector256<float>.One / sumHi;
            for (int d = 0; d < hd; d++)
            {
                (Vector256.Load(ot + d * B) * inverseLo).Store(ot + d * B);
                (Vector256.Load(ot + d * B + 8) * inverseHi).Store(ot + d * B + 8);
            }
            for (int i = 0; i < lanes; i++)
            {
                float* row = o + (long)(t0 + i) * _nHead * hd + head * hd;
                for (int d = 0; d < hd; d++) row[d] = ot[d * B + i];
            }
        }
    }

    /// <summary>Keys per tile of <see cref="AttendBlockNarrow"/>: 8 KB of probabilities and 32 KB of value rows at head size 64.</summary>
    private const int NarrowTile = 128;

    /// <summary>p[j][16] = q_t[16 queries] · k_j for <paramref name="tile"/> keys, six keys per step (twelve accumulators).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void TileScoresNarrow(float* qt, float* kBase, int stride, int hd, int tile, float* p)
    {
        const int B = BlockQueries;
        int j = 0;
        for (; j + 6 <= tile; j += 6)
        {
            // Six row pointers and one native-int index: the addresses cost no arithmetic in the loop.
            float* k0 = kBase + (long)j * stride, k1 = k0 + stride, k2 = k1 + stride, k3 = k2 + stride, k4 = k3 + stride, k5 = k4 + stride;
            Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default, a4 = default, a5 = default;
            Vector256<float> b0 = default, b1 = default, b2 = default, b3 = default, b4 = default, b5 = default;
            float* qd = qt;
            for (nint d = 0; d < hd; d++, qd += B)
            {
                Vector256<float> lo = Vector256.Load(qd), hi = Vector256.Load(qd + 8);
                Vector256<float> k = Vector256.Create(k0[d]);
                a0 = Vector256.FusedMultiplyAdd(lo, k, a0); b0 = Vector256.FusedMultiplyAdd(hi, k, b0);
                k = Vector256.Create(k1[d]);
                a1 = Vector256.FusedMultiplyAdd(lo, k, a1); b1 = Vector256.FusedMultiplyAdd(hi, k, b1);
                k = Vector256.Create(k2[d]);
                a2 = Vector256.FusedMultiplyAdd(lo, k, a2); b2 = Vector256.FusedMultiplyAdd(hi, k, b2);
                k = Vector256.Create(k3[d]);
                a3 = Vector256.FusedMultiplyAdd(lo, k, a3); b3 = Vector256.FusedMultiplyAdd(hi, k, b3);
                k = Vector256.Create(k4[d]);
                a4 = Vector256.FusedMultiplyAdd(lo, k, a4); b4 = Vector256.FusedMultiplyAdd(hi, k, b4);
                k = Vector256.Create(k5[d]);
                a5 = Vector256.FusedMultiplyAdd(lo, k, a5); b5 = Vector256.FusedMultiplyAdd(hi, k, b5);
            }
            float* pj = p + j * B;
            a0.Store(pj); b0.Store(pj + 8); a1.Store(pj + 16); b1.Store(pj + 24); a2.Store(pj + 32); b2.Store(pj + 40);
            a3.Store(pj + 48); b3.Store(pj + 56); a4.Store(pj + 64); b4.Store(pj + 72); a5.Store(pj + 80); b5.Store(pj + 88);
        }
        for (; j < tile; j++)
        {
            float* kj = kBase + (long)j * stride;
            Vector256<float> a = default, bh = default;
            for (int d = 0; d < hd; d++)
            {
                Vector256<float> k = Vector256.Create(kj[d]);
                a = Vector256.FusedMultiplyAdd(Vector256.Load(qt + d * B), k, a);
                bh = Vector256.FusedMultiplyAdd(Vector256.Load(qt + d * B + 8), k, bh);
            }
            a.Store(p + j * B);
            bh.Store(p + j * B + 8);
        }
    }

    /// <summary>
    /// ot[d][16] += Σ_j p[j][16] · v_j[d] over <paramref name="tile"/> keys: six dimensions per pass over
    /// the tile (twelve accumulators), then pairs, then a last single one.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void TileValuesNarrow(float* p, float* vBase, int stride, int hd, int tile, float* ot)
    {
        const int B = BlockQueries;
        int d0 = 0;
        for (; d0 + 6 <= hd; d0 += 6)
        {
            float* od = ot + d0 * B;
            Vector256<float> a0 = Vector256.Load(od), a1 = Vector256.Load(od + 16), a2 = Vector256.Load(od + 32);
            Vector256<float> a3 = Vector256.Load(od + 48), a4 = Vector256.Load(od + 64), a5 = Vector256.Load(od + 80);
            Vector256<float> b0 = Vector256.Load(od + 8), b1 = Vector256.Load(od + 24), b2 = Vector256.Load(od + 40);
            Vector256<float> b3 = Vector256.Load(od + 56), b4 = Vector256.Load(od + 72), b5 = Vector256.Load(od + 88);
            float* vj = vBase + d0, pj = p;
            for (int j = 0; j < tile; j++, vj += stride, pj += B)
            {
                Vector256<float> lo = Vector256.Load(pj), hi = Vector256.Load(pj + 8);
                Vector256<float> v = Vector256.Create(vj[0]);
                a0 = Vector256.FusedMultiplyAdd(lo, v, a0); b0 = Vector256.FusedMultiplyAdd(hi, v, b0);
                v = Vector256.Create(vj[1]);
                a1 = Vector256.FusedMultiplyAdd(lo, v, a1); b1 = Vector256.FusedMultiplyAdd(hi, v, b1);
                v = Vector256.Create(vj[2]);
                a2 = Vector256.FusedMultiplyAdd(lo, v, a2); b2 = Vector256.FusedMultiplyAdd(hi, v, b2);
                v = Vector256.Create(vj[3]);
                a3 = Vector256.FusedMultiplyAdd(lo, v, a3); b3 = Vector256.FusedMultiplyAdd(hi, v, b3);
                v = Vector256.Create(vj[4]);
                a4 = Vector256.FusedMultiplyAdd(lo, v, a4); b4 = Vector256.FusedMultiplyAdd(hi, v, b4);
                v = Vector256.Create(vj[5]);
                a5 = Vector256.FusedMultiplyAdd(lo, v, a5); b5 = Vector256.FusedMultiplyAdd(hi, v, b5);
            }
            a0.Store(od); b0.Store(od + 8); a1.Store(od + 16); b1.Store(od + 24); a2.Store(od + 32); b2.Store(od + 40);
            a3.Store(od + 48); b3.Store(od + 56); a4.Store(od + 64); b4.Store(od + 72); a5.Store(od + 80); b5.Store(od + 88);
        }
        for (; d0 < hd; d0 += 2)
        {
            // The last one to five dimensions; a single one reads its neighbour only when it exists.
            bool pair = d0 + 1 < hd;
            float* od = ot + d0 * B;
            Vector256<float> a0 = Vector256.Load(od), b0 = Vector256.Load(od + 8);
            Vector256<float> a1 = pair ? Vector256.Load(od + 16) : default, b1 = pair ? Vector256.Load(od + 24) : default;
            float* vj = vBase + d0;
            for (int j = 0; j < tile; j++, vj += stride)
            {
                Vector256<float> lo = Vector256.Load(p + j * B), hi = Vector256.Load(p + j * B + 8);
                Vector256<float> v = Vector256.Create(vj[0]);
                a0 = Vector256.FusedMultiplyAdd(lo, v, a0); b0 = Vector256.FusedMultiplyAdd(hi, v, b0);
                if (pair)
                {
                    v = Vector256.Create(vj[1]);
                    a1 = Vector256.FusedMultiplyAdd(lo, v, a1); b1 = Vector256.FusedMultiplyAdd(hi, v, b1);
                }
            }
            a0.Store(od); b0.Store(od + 8);
            if (pair) { a1.Store(od + 16); b1.Store(od + 24); }
        }
    }

    /// <summary>
    /// Query t of heads head0 … head0+count−1, which share one KV head (grouped-query attention): keys
    /// and values go in tiles of <see cref="DecodeTile"/> that every head of the group reads while the
    /// tile is in L2, so at depth the KV head comes from memory once per group, not once per head. With AVX-512 or AVX2, no
    /// pattern kept and head size 64, 128, 256, 80 or 96, <see cref="AttendGroupWide{TH, TD, TP}"/> (AVX2:
    /// <see cref="AttendGroupNarrow{TH, TD, TP}"/>) reads each row once for all of them instead (<see cref="Grouped"/>),
    /// over the whole query's keys or over part <paramref name="part"/> of them (<see cref="MinPartKeys"/>).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private unsafe void AttendHeads(float[] queries, int queryStride, float[] keyCache, float[] valueCache, long cacheOffset,
                                    int p0, int t, int head0, int count, float[] output, int part = 0)
    {
        int hd = _headDim, stride = hd, end = p0 + t + 1;
        // Keys first … end−1: all earlier ones, or the last `window` of them.
        int first = FirstKey(end), keys = end - first;
        int kvHead = head0 / (_nHead / _nKvHead);
        float scale = _scale;
        int rowLength = _nCtx;
        float[] rows;
        long rowStart;
        if (_keepPattern)
        {
            // Head h's probabilities go straight into its pattern row; positions before the window stay 0.
            (rows, rowStart) = (Scores, (long)(t * _nHead + head0) * _nCtx + first);
            for (int g = 0; g < count; g++) rows.AsSpan((int)(rowStart - first) + g * _nCtx, first).Clear();
        }
        else
        {
            int length = (_nHead / _nKvHead) * _nCtx;
            (rows, rowStart) = (_scratch is { } scratch && scratch.Length >= length ? scratch : _scratch = new float[length], 0);
        }
        fixed (float* qRow = &queries[t * queryStride])
        fixed (float* k = &keyCache[HeadOffset(cacheOffset, kvHead) + (long)first * hd])
        fixed (float* v = &valueCache[HeadOffset(cacheOffset, kvHead) + (long)first * hd])
        fixed (float* oRow = &output[t * _nHead * hd])
        {
            if (Grouped(_keepPattern))
            {
                float* qg = qRow + head0 * hd, og = oRow + head0 * hd;
                (int parts, int partKeys) = PartsOf(end);
                if (part >= parts) return; // a shorter context than the call's longest: its other items have nothing to do
                if (parts == 1)
                {
                    AttendGroup(qg, k, v, keys, og, count, part: false);
                    return;
                }
                // Part `part` of the keys: its unnormalised outputs, then each head's maximum and sum (MergeParts).
                int from = part * partKeys;
                fixed (float* partials = _partials)
                {
                    float* slot = partials + PartSlot(t, head0, part);
                    AttendGroup(qg, k + (long)from * hd, v + (long)from * hd, Math.Min(partKeys, keys - from), slot, count, part: true);
                }
                return;
            }
            for (int j0 = 0; j0 < keys; j0 += DecodeTile)
            {
                int tile = Math.Min(DecodeTile, keys - j0);
                for (int g = 0; g < count; g++)
                    QueryScores(qRow + (head0 + g) * hd, k + (long)j0 * stride, stride, hd, tile, scale, rows.AsSpan((int)rowStart + g * rowLength + j0, tile));
            }
            for (int g = 0; g < count; g++)
            {
                Span<float> scores = rows.AsSpan((int)rowStart + g * rowLength, keys);
                if (_softcap > 0) Ops.Softcap(scores, _softcap, scores);
                TensorPrimitives.SoftMax(scores, scores);
                new Span<float>(oRow + (head0 + g) * hd, hd).Clear();
            }
            for (int j0 = 0; j0 < keys; j0 += DecodeTile)
            {
                int tile = Math.Min(DecodeTile, keys - j0);
                for (int g = 0; g < count; g++)
                    AddWeightedValues(rows.AsSpan((int)rowStart + g * rowLength + j0, tile), v + (long)j0 * stride, stride, hd, oRow + (head0 + g) * hd);
            }
        }
    }

    [ThreadStatic] private static float[]? _groupScratch;

    /// <summary>
    /// <paramref name="count"/> heads of one KV head through the grouped kernel of that many heads. For a
    /// <paramref name="part"/> of the keys the outputs are left unnormalised and each head's score maximum and
    /// Σ exp(score − maximum) follow them, at o[count·headDim + head] and o[count·headDim + count + head].
    /// </summary>
    private unsafe void AttendGroup(float* q, float* k, float* v, int keys, float* o, int count, bool part)
    {
        switch ((_headDim, part))
        {
            case (64, false): AttendGroup<Head64, Whole>(q, k, v, keys, o, count); return;
            case (128, false): AttendGroup<Head128, Whole>(q, k, v, keys, o, count); return;
            case (256, false): AttendGroup<Head256, Whole>(q, k, v, keys, o, count); return;
            case (64, true): AttendGroup<Head64, KeysPart>(q, k, v, keys, o, count); return;
            case (128, true): AttendGroup<Head128, KeysPart>(q, k, v, keys, o, count); return;
            case (256, true): AttendGroup<Head256, KeysPart>(q, k, v, keys, o, count); return;
            case (80, false): AttendGroup<Head80, Whole>(q, k, v, keys, o, count); return;
            case (96, false): AttendGroup<Head96, Whole>(q, k, v, keys, o, count); return;
            case (80, true): AttendGroup<Head80, KeysPart>(q, k, v, keys, o, count); return;
            case (96, true): AttendGroup<Head96, KeysPart>(q, k, v, keys, o, count); return;
            default: throw new InvalidOperationException($"no grouped attention kernel for head size {_headDim}");
        }
    }

    /// <summary>
    /// Whether a grouped kernel computes a query's whole output or one part of its keys (<see cref="MinPartKeys"/>): a
    /// type, so that each case compiles without the other's branch.
    /// </summary>
    private interface IPartMode { static abstract bool Part { get; } }
    private struct Whole : IPartMode { public static bool Part => false; }
    private struct KeysPart : IPartMode { public static bool Part => true; }

    private unsafe void AttendGroup<TD, TP>(float* q, float* k, float* v, int keys, float* o, int count) where TD : struct, IHeadSize where TP : struct, IPartMode
    {
        switch ((_wide, count))
        {
            case (true, 1): AttendGroupWide<OneHead, TD, TP>(q, k, v, keys, o); return;
            case (true, 2): AttendGroupWide<TwoHeads, TD, TP>(q, k, v, keys, o); return;
            case (true, 3): AttendGroupWide<ThreeHeads, TD, TP>(q, k, v, keys, o); return;
            case (true, 4): AttendGroupWide<FourHeads, TD, TP>(q, k, v, keys, o); return;
            case (true, 5): AttendGroupWide<FiveHeads, TD, TP>(q, k, v, keys, o); return;
            case (true, 6): AttendGroupWide<SixHeads, TD, TP>(q, k, v, keys, o); return;
            case (true, 7): AttendGroupWide<SevenHeads, TD, TP>(q, k, v, keys, o); return;
            case (true, 8): AttendGroupWide<EightHeads, TD, TP>(q, k, v, keys, o); return;
            case (false, 1): AttendGroupNarrow<OneHead, TD, TP>(q, k, v, keys, o); return;
            case (false, 2): AttendGroupNarrow<TwoHeads, TD, TP>(q, k, v, keys, o); return;
            case (false, 3): AttendGroupNarrow<ThreeHeads, TD, TP>(q, k, v, keys, o); return;
            case (false, 4): AttendGroupNarrow<FourHeads, TD, TP>(q, k, v, keys, o); return;
            case (false, 5): AttendGroupNarrow<FiveHeads, TD, TP>(q, k, v, keys, o); return;
            case (false, 6): AttendGroupNarrow<SixHeads, TD, TP>(q, k, v, keys, o); return;
            case (false, 7): AttendGroupNarrow<SevenHeads, TD, TP>(q, k, v, keys, o); return;
            case (false, 8): AttendGroupNarrow<EightHeads, TD, TP>(q, k, v, keys, o); return;
            default: throw new InvalidOperationException($"no grouped attention kernel for {count} heads");
        }
    }

    /// <summary>
    /// How far ahead the grouped decode kernel prefetches keys and values: 4 KB (1 KB and 16 KB were slower; without it GPT-2's
    /// shape at position 1024 took 1.15× the time).
    /// </summary>
    private const int PrefetchFloats = 1024;

    /// <summary>
    /// One query of <typeparamref name="TH"/>.Count heads sharing a KV head (consecutive queries at q, outputs at o, head size
    /// <typeparamref name="TD"/>.Size) with AVX-512, each key and value row read once for all of them. Scores are kept
    /// [key][head]: a step of 16 / <typeparamref name="TH"/>.Lanes keys makes sixteen dot products in sixteen FMA chains
    /// (fewer for 3, 5, 6 or 7 heads: padding lanes have none and score 0), which one shuffle tree (<see cref="Sum16"/>)
    /// adds into one vector, stored whole; the softmax runs down those 16-lane rows, every lane folded with the lanes of its
    /// head (max, then sum); values go in passes of as many heads as sixteen accumulators of the head size hold (four at
    /// 64, two at 128, one at 256), each value row loaded once per pass.
    /// </summary>
    /// <remarks>
    /// The tiled per-head path (below in <see cref="AttendHeads"/>) reads each key and value row once per head of the group
    /// from L2 and paid a horizontal sum per key and head. Zen 5, 2 threads, attention of one generated token through all
    /// layers, twenty-second session, that path → this, alternating runs: the 1.1B shape (32 heads sharing 4 KV heads,
    /// head size 64, 22 layers) at position 160 0.43–0.49 → 0.21 ms, 1024 2.9–3.1 → 1.3, 4096 12.5–13.1 → 6.0–6.6; GPT-2's
    /// (12 heads, 12 layers) 0.16 → 0.15, 1.7 → 1.0–1.1, 7.8 → 5.2–5.3. Values over tiles of <see cref="GroupTile"/> keys
    /// when a group takes several passes: without them (every pass over all keys) the 1.1B shape took 1.5–1.6× the time
    /// from position 1024.
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private unsafe void AttendGroupWide<TH, TD, TP>(float* q, float* k, float* v, int keys, float* o) where TH : struct, IHeads where TD : struct, IHeadSize where TP : struct, IPartMode
    {
        int h = TH.Lanes, count = TH.Count, hd = TD.Size, step = 16 / h, rows = (keys + step - 1) / step;
        float[] buffer = _groupScratch is { } kept && kept.Length >= 16 * rows + h * hd ? kept : _groupScratch = new float[Math.Max(16 * rows + h * hd, 16 * (_nCtx + 16))];
        Vector512<float> scale = Vector512.Create(_scale);
        fixed (float* p = buffer)
        {
            int full = keys / step;
            for (int r = 0; r < full; r++)
            {
                float* kr = k + (long)r * step * hd;
                for (int line = 0; line < 16 * hd / h; line += 16) Sse.Prefetch0(kr + PrefetchFloats + line);
                Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default, a4 = default, a5 = default, a6 = default, a7 = default;
                Vector512<float> a8 = default, a9 = default, a10 = default, a11 = default, a12 = default, a13 = default, a14 = default, a15 = default;
                // Product m: head m % h of the query against key m / h of the step — lane m of the summed vector.
                for (int i = 0; i < hd; i += 16)
                {
                    float* qi = q + i, ki = kr + i;
                    if (0 % h < count) a0 = Vector512.FusedMultiplyAdd(Vector512.Load(qi + 0 % h * hd), Vector512.Load(ki + 0 / h * hd), a0);
                    if (1 % h < count) a1 = Vector512.FusedMultiplyAdd(Vector512.Load(qi + 1 % h * hd), Vector512.Load(ki + 1 / h * hd), a1);
                    if (2 % h < count) a2 = Vector512.FusedMultiplyAdd(Vector512.Load(qi + 2 % h * hd), Vector512.Load(ki + 2 / h * hd), a2);
                    if (3 % h < count) a3 = Vector512.FusedMultiplyAdd(Vector512.Load(qi + 3 % h * hd), Vector512.Load(ki + 3 / h * hd), a3);
                    if (4 % h < count) a4 = Vector512.FusedMultiplyAdd(Vector512.Load(qi + 4 % h * hd), Vector512.Load(ki + 4 / h * hd), a4);
                    if (5 % h < count) a5 = Vector512.FusedMultiplyAdd(Vector512.Load(qi + 5 % h * hd), Vector512.Load(ki + 5 / h * hd), a5);
                    if (6 % h < count) a6 = Vector512.FusedMultiplyAdd(Vector512.Load(qi + 6 % h * hd), Vector512.Load(ki + 6 / h * hd), a6);
                    if (7 % h < count) a7 = Vector512.FusedMultiplyAdd(Vector512.Load(qi + 7 % h * hd), Vector512.Load(ki + 7 / h * hd), a7);
                    if (8 % h < count) a8 = Vector512.FusedMultiplyAdd(Vector512.Load(qi + 8 % h * hd), Vector512.Load(ki + 8 / h * hd), a8);
                    if (9 % h < count) a9 = Vector512.FusedMultiplyAdd(Vector512.Load(qi + 9 % h * hd), Vector512.Load(ki + 9 / h * hd), a9);
                    if (10 % h < count) a10 = Vector512.FusedMultiplyAdd(Vector512.Load(qi + 10 % h * hd), Vector512.Load(ki + 10 / h * hd), a10);
                    if (11 % h < count) a11 = Vector512.FusedMultiplyAdd(Vector512.Load(qi + 11 % h * hd), Vector512.Load(ki + 11 / h * hd), a11);
                    if (12 % h < count) a12 = Vector512.FusedMultiplyAdd(Vector512.Load(qi + 12 % h * hd), Vector512.Load(ki + 12 / h * hd), a12);
                    if (13 % h < count) a13 = Vector512.FusedMultiplyAdd(Vector512.Load(qi + 13 % h * hd), Vector512.Load(ki + 13 / h * hd), a13);
                    if (14 % h < count) a14 = Vector512.FusedMultiplyAdd(Vector512.Load(qi + 14 % h * hd), Vector512.Load(ki + 14 / h * hd), a14);
                    if (15 % h < count) a15 = Vector512.FusedMultiplyAdd(Vector512.Load(qi + 15 % h * hd), Vector512.Load(ki + 15 / h * hd), a15);
                }
                (Sum16(a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15) * scale).Store(p + 16 * r);
            }
            // The last keys (fewer than a step) one by one; the rest of their row −∞ (after the softcap, which would make it
            // finite), which the softmax makes 0.
            for (int m = 0; m < 16 && full < rows; m++)
            {
                int j = full * step + m / h;
                if (j >= keys || m % h >= count) { p[16 * full + m] = 0; continue; }
                Vector512<float> acc = default;
                for (int i = 0; i < hd; i += 16) acc = Vector512.FusedMultiplyAdd(Vector512.Load(q + m % h * hd + i), Vector512.Load(k + (long)j * hd + i), acc);
                p[16 * full + m] = Vector512.Sum(acc) * _scale;
            }
            if (_softcap > 0) Ops.Softcap(new Span<float>(p, 16 * rows), _softcap, new Span<float>(p, 16 * rows));
            for (int m = (keys - full * step) * h; full < rows && m < 16; m++) p[16 * full + m] = float.NegativeInfinity;

            Vector512<float> max = Vector512.Create(float.NegativeInfinity);
            for (int r = 0; r < rows; r++) max = Vector512.Max(max, Vector512.Load(p + 16 * r));
            max = FoldHeads<TH, MaxFold>(max);
            Vector512<float> sum = default;
            for (int r = 0; r < rows; r++)
            {
                Vector512<float> e = Vector512.Exp(Vector512.Load(p + 16 * r) - max);
                e.Store(p + 16 * r);
                sum += e;
            }
            Vector512<float> inverse = Vector512<float>.One;
            if (TP.Part) PartStats(FoldHeads<TH, SumFold>(sum), max, count, o + count * hd);
            else inverse /= FoldHeads<TH, SumFold>(sum);

            // Values: passes of `heads` heads, each head's hd/16 accumulators; accumulator m is head m / chunks, chunk m % chunks.
            int chunks = hd / 16, heads = Math.Min(h, 16 / chunks);
            if (heads < h)
            {
                // Several passes: over tiles of keys whose values stay in L1 for all of them, the sixteen accumulators of a
                // pass (heads g0 … in order: contiguous in acc) kept between tiles.
                float* acc = p + 16 * rows;
                new Span<float>(acc, h * hd).Clear();
                for (int j0 = 0; j0 < keys; j0 += GroupTile)
                {
                    int j1 = Math.Min(keys, j0 + GroupTile);
                    for (int g0 = 0; g0 < count; g0 += heads)
                    {
                        float* ag = acc + g0 * hd, pg = p + g0;
                        Vector512<float> o0 = Vector512.Load(ag), o1 = Vector512.Load(ag + 16), o2 = Vector512.Load(ag + 32), o3 = Vector512.Load(ag + 48);
                        Vector512<float> o4 = Vector512.Load(ag + 64), o5 = Vector512.Load(ag + 80), o6 = Vector512.Load(ag + 96), o7 = Vector512.Load(ag + 112);
                        Vector512<float> o8 = Vector512.Load(ag + 128), o9 = Vector512.Load(ag + 144), o10 = Vector512.Load(ag + 160), o11 = Vector512.Load(ag + 176);
                        Vector512<float> o12 = Vector512.Load(ag + 192), o13 = Vector512.Load(ag + 208), o14 = Vector512.Load(ag + 224), o15 = Vector512.Load(ag + 240);
                        for (int j = j0; j < j1; j++)
                        {
                            float* vj = v + (long)j * hd, pj = pg + j * h;
                            o0 = Vector512.FusedMultiplyAdd(Vector512.Create(pj[0 / chunks]), Vector512.Load(vj + 0 % chunks * 16), o0);
                            o1 = Vector512.FusedMultiplyAdd(Vector512.Create(pj[1 / chunks]), Vector512.Load(vj + 1 % chunks * 16), o1);
                            o2 = Vector512.FusedMultiplyAdd(Vector512.Create(pj[2 / chunks]), Vector512.Load(vj + 2 % chunks * 16), o2);
                            o3 = Vector512.FusedMultiplyAdd(Vector512.Create(pj[3 / chunks]), Vector512.Load(vj + 3 % chunks * 16), o3);
                            o4 = Vector512.FusedMultiplyAdd(Vector512.Create(pj[4 / chunks]), Vector512.Load(vj + 4 % chunks * 16), o4);
                            o5 = Vector512.FusedMultiplyAdd(Vector512.Create(pj[5 / chunks]), Vector512.Load(vj + 5 % chunks * 16), o5);
                            o6 = Vector512.FusedMultiplyAdd(Vector512.Create(pj[6 / chunks]), Vector512.Load(vj + 6 % chunks * 16), o6);
                            o7 = Vector512.FusedMultiplyAdd(Vector512.Create(pj[7 / chunks]), Vector512.Load(vj + 7 % chunks * 16), o7);
                            o8 = Vector512.FusedMultiplyAdd(Vector512.Create(pj[8 / chunks]), Vector512.Load(vj + 8 % chunks * 16), o8);
                            o9 = Vector512.FusedMultiplyAdd(Vector512.Create(pj[9 / chunks]), Vector512.Load(vj + 9 % chunks * 16), o9);
                            o10 = Vector512.FusedMultiplyAdd(Vector512.Create(pj[10 / chunks]), Vector512.Load(vj + 10 % chunks * 16), o10);
                            o11 = Vector512.FusedMultiplyAdd(Vector512.Create(pj[11 / chunks]), Vector512.Load(vj + 11 % chunks * 16), o11);
                            o12 = Vector512.FusedMultiplyAdd(Vector512.Create(pj[12 / chunks]), Vector512.Load(vj + 12 % chunks * 16), o12);
                            o13 = Vector512.FusedMultiplyAdd(Vector512.Create(pj[13 / chunks]), Vector512.Load(vj + 13 % chunks * 16), o13);
                            o14 = Vector512.FusedMultiplyAdd(Vector512.Create(pj[14 / chunks]), Vector512.Load(vj + 14 % chunks * 16), o14);
                            o15 = Vector512.FusedMultiplyAdd(Vector512.Create(pj[15 / chunks]), Vector512.Load(vj + 15 % chunks * 16), o15);
                        }
                        o0.Store(ag); o1.Store(ag + 16); o2.Store(ag + 32); o3.Store(ag + 48); o4.Store(ag + 64); o5.Store(ag + 80); o6.Store(ag + 96); o7.Store(ag + 112);
                        o8.Store(ag + 128); o9.Store(ag + 144); o10.Store(ag + 160); o11.Store(ag + 176); o12.Store(ag + 192); o13.Store(ag + 208); o14.Store(ag + 224); o15.Store(ag + 240);
                    }
                }
                for (int g = 0; g < count; g++)
                {
                    Vector512<float> invG = Vector512.Create(inverse.GetElement(g));
                    for (int c = 0; c < hd; c += 16) (Vector512.Load(acc + g * hd + c) * invG).Store(o + g * hd + c);
                }
                return;
            }
            for (int g0 = 0; g0 < count; g0 += heads)
            {
                Vector512<float> o0 = default, o1 = default, o2 = default, o3 = default, o4 = default, o5 = default, o6 = default, o7 = default;
                Vector512<float> o8 = default, o9 = default, o10 = default, o11 = default, o12 = default, o13 = default, o14 = default, o15 = default;
                int used = Math.Min(heads, count) * chunks; // one pass (heads ≥ h): no padding lanes
                float* pg = p + g0;
                int j = 0;
                if (used <= 8)
                    // Eight accumulators or fewer: two keys per step into two sets, so that eight or more FMA chains run side by side.
                    for (; j + 2 <= keys; j += 2)
                    {
                        float* v0 = v + (long)j * hd, v1 = v0 + hd, p0 = pg + j * h, p1 = p0 + h;
                        for (int line = 0; line < 2 * hd; line += 16) Sse.Prefetch0(v0 + PrefetchFloats + line);
                        o0 = Vector512.FusedMultiplyAdd(Vector512.Create(p0[0 / chunks]), Vector512.Load(v0 + 0 % chunks * 16), o0);
                        o8 = Vector512.FusedMultiplyAdd(Vector512.Create(p1[0 / chunks]), Vector512.Load(v1 + 0 % chunks * 16), o8);
                        if (used > 1) o1 = Vector512.FusedMultiplyAdd(Vector512.Create(p0[1 / chunks]), Vector512.Load(v0 + 1 % chunks * 16), o1);
                        if (used > 1) o9 = Vector512.FusedMultiplyAdd(Vector512.Create(p1[1 / chunks]), Vector512.Load(v1 + 1 % chunks * 16), o9);
                        if (used > 2) o2 = Vector512.FusedMultiplyAdd(Vector512.Create(p0[2 / chunks]), Vector512.Load(v0 + 2 % chunks * 16), o2);
                        if (used > 2) o10 = Vector512.FusedMultiplyAdd(Vector512.Create(p1[2 / chunks]), Vector512.Load(v1 + 2 % chunks * 16), o10);
                        if (used > 3) o3 = Vector512.FusedMultiplyAdd(Vector512.Create(p0[3 / chunks]), Vector512.Load(v0 + 3 % chunks * 16), o3);
                        if (used > 3) o11 = Vector512.FusedMultiplyAdd(Vector512.Create(p1[3 / chunks]), Vector512.Load(v1 + 3 % chunks * 16), o11);
                        if (used > 4) o4 = Vector512.FusedMultiplyAdd(Vector512.Create(p0[4 / chunks]), Vector512.Load(v0 + 4 % chunks * 16), o4);
                        if (used > 4) o12 = Vector512.FusedMultiplyAdd(Vector512.Create(p1[4 / chunks]), Vector512.Load(v1 + 4 % chunks * 16), o12);
                        if (used > 5) o5 = Vector512.FusedMultiplyAdd(Vector512.Create(p0[5 / chunks]), Vector512.Load(v0 + 5 % chunks * 16), o5);
                        if (used > 5) o13 = Vector512.FusedMultiplyAdd(Vector512.Create(p1[5 / chunks]), Vector512.Load(v1 + 5 % chunks * 16), o13);
                        if (used > 6) o6 = Vector512.FusedMultiplyAdd(Vector512.Create(p0[6 / chunks]), Vector512.Load(v0 + 6 % chunks * 16), o6);
                        if (used > 6) o14 = Vector512.FusedMultiplyAdd(Vector512.Create(p1[6 / chunks]), Vector512.Load(v1 + 6 % chunks * 16), o14);
                        if (used > 7) o7 = Vector512.FusedMultiplyAdd(Vector512.Create(p0[7 / chunks]), Vector512.Load(v0 + 7 % chunks * 16), o7);
                        if (used > 7) o15 = Vector512.FusedMultiplyAdd(Vector512.Create(p1[7 / chunks]), Vector512.Load(v1 + 7 % chunks * 16), o15);
                    }
                for (; j < keys; j++)
                {
                    float* vj = v + (long)j * hd, pj = pg + j * h;
                    for (int line = 0; line < hd; line += 16) Sse.Prefetch0(vj + PrefetchFloats + line);
                    o0 = Vector512.FusedMultiplyAdd(Vector512.Create(pj[0 / chunks]), Vector512.Load(vj + 0 % chunks * 16), o0);
                    if (used > 1) o1 = Vector512.FusedMultiplyAdd(Vector512.Create(pj[1 / chunks]), Vector512.Load(vj + 1 % chunks * 16), o1);
                    if (used > 2) o2 = Vector512.FusedMultiplyAdd(Vector512.Create(pj[2 / chunks]), Vector512.Load(vj + 2 % chunks * 16), o2);
                    if (used > 3) o3 = Vector512.FusedMultiplyAdd(Vector512.Create(pj[3 / chunks]), Vector512.Load(vj + 3 % chunks * 16), o3);
                    if (used > 4) o4 = Vector512.FusedMultiplyAdd(Vector512.Create(pj[4 / chunks]), Vector512.Load(vj + 4 % chunks * 16), o4);
                    if (used > 5) o5 = Vector512.FusedMultiplyAdd(Vector512.Create(pj[5 / chunks]), Vector512.Load(vj + 5 % chunks * 16), o5);
                    if (used > 6) o6 = Vector512.FusedMultiplyAdd(Vector512.Create(pj[6 / chunks]), Vector512.Load(vj + 6 % chunks * 16), o6);
                    if (used > 7) o7 = Vector512.FusedMultiplyAdd(Vector512.Create(pj[7 / chunks]), Vector512.Load(vj + 7 % chunks * 16), o7);
                    if (used > 8) o8 = Vector512.FusedMultiplyAdd(Vector512.Create(pj[8 / chunks]), Vector512.Load(vj + 8 % chunks * 16), o8);
                    if (used > 9) o9 = Vector512.FusedMultiplyAdd(Vector512.Create(pj[9 / chunks]), Vector512.Load(vj + 9 % chunks * 16), o9);
                    if (used > 10) o10 = Vector512.FusedMultiplyAdd(Vector512.Create(pj[10 / chunks]), Vector512.Load(vj + 10 % chunks * 16), o10);
                    if (used > 11) o11 = Vector512.FusedMultiplyAdd(Vector512.Create(pj[11 / chunks]), Vector512.Load(vj + 11 % chunks * 16), o11);
                    if (used > 12) o12 = Vector512.FusedMultiplyAdd(Vector512.Create(pj[12 / chunks]), Vector512.Load(vj + 12 % chunks * 16), o12);
                    if (used > 13) o13 = Vector512.FusedMultiplyAdd(Vector512.Create(pj[13 / chunks]), Vector512.Load(vj + 13 % chunks * 16), o13);
                    if (used > 14) o14 = Vector512.FusedMultiplyAdd(Vector512.Create(pj[14 / chunks]), Vector512.Load(vj + 14 % chunks * 16), o14);
                    if (used > 15) o15 = Vector512.FusedMultiplyAdd(Vector512.Create(pj[15 / chunks]), Vector512.Load(vj + 15 % chunks * 16), o15);
                }
                if (used <= 8) (o0, o1, o2, o3, o4, o5, o6, o7) = (o0 + o8, o1 + o9, o2 + o10, o3 + o11, o4 + o12, o5 + o13, o6 + o14, o7 + o15);
                // Head g0 + m / chunks, columns (m % chunks)·16 …, times that head's 1/Σ (lane g of `inverse`).
                Span<Vector512<float>> accumulators = [o0, o1, o2, o3, o4, o5, o6, o7, o8, o9, o10, o11, o12, o13, o14, o15];
                for (int m = 0; m < used; m++)
                {
                    int g = g0 + m / chunks;
                    (accumulators[m] * inverse.GetElement(g)).Store(o + g * hd + m % chunks * 16);
                }
            }
        }
    }

    /// <summary>
    /// <see cref="AttendGroupWide{TH, TD, TP}"/> with 256-bit vectors: eight dot products per step (8 / <typeparamref name="TH"/>.Lanes
    /// keys; none in padding lanes) summed by <see cref="Sum8"/> into one row of eight scores, the softmax down 8-lane rows,
    /// values head by head in eight accumulators (64 columns at a time, then the last 16 or 32 at head sizes 80 and 96)
    /// over tiles of <see cref="GroupTile"/> keys that stay in L1 for the group's heads.
    /// </summary>
    /// <remarks>
    /// Zen 5 with AVX2, 2 threads, attention of one generated token through all layers, the tiled path → this: the 1.1B
    /// shape at position 160 0.54 → 0.35 ms, 1024 3.7 → 2.4, 4096 16 → 10; GPT-2's 0.16 → 0.135, 1.7 → 1.2–1.5, 10.8 → 7.8–8.0.
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private unsafe void AttendGroupNarrow<TH, TD, TP>(float* q, float* k, float* v, int keys, float* o) where TH : struct, IHeads where TD : struct, IHeadSize where TP : struct, IPartMode
    {
        int h = TH.Lanes, count = TH.Count, hd = TD.Size, step = 8 / h, rows = (keys + step - 1) / step;
        float[] buffer = _groupScratch is { } kept && kept.Length >= 8 * rows + h * hd ? kept : _groupScratch = new float[Math.Max(8 * rows + h * hd, 16 * (_nCtx + 16))];
        Vector256<float> scale = Vector256.Create(_scale);
        fixed (float* p = buffer)
        {
            float* acc = p + 8 * rows; // [head][hd] running sums of the values
            int full = keys / step;
            for (int r = 0; r < full; r++)
            {
                float* kr = k + (long)r * step * hd;
                Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default, a4 = default, a5 = default, a6 = default, a7 = default;
                for (int i = 0; i < hd; i += 8)
                {
                    float* qi = q + i, ki = kr + i;
                    if (0 % h < count) a0 = Vector256.FusedMultiplyAdd(Vector256.Load(qi + 0 % h * hd), Vector256.Load(ki + 0 / h * hd), a0);
                    if (1 % h < count) a1 = Vector256.FusedMultiplyAdd(Vector256.Load(qi + 1 % h * hd), Vector256.Load(ki + 1 / h * hd), a1);
                    if (2 % h < count) a2 = Vector256.FusedMultiplyAdd(Vector256.Load(qi + 2 % h * hd), Vector256.Load(ki + 2 / h * hd), a2);
                    if (3 % h < count) a3 = Vector256.FusedMultiplyAdd(Vector256.Load(qi + 3 % h * hd), Vector256.Load(ki + 3 / h * hd), a3);
                    if (4 % h < count) a4 = Vector256.FusedMultiplyAdd(Vector256.Load(qi + 4 % h * hd), Vector256.Load(ki + 4 / h * hd), a4);
                    if (5 % h < count) a5 = Vector256.FusedMultiplyAdd(Vector256.Load(qi + 5 % h * hd), Vector256.Load(ki + 5 / h * hd), a5);
                    if (6 % h < count) a6 = Vector256.FusedMultiplyAdd(Vector256.Load(qi + 6 % h * hd), Vector256.Load(ki + 6 / h * hd), a6);
                    if (7 % h < count) a7 = Vector256.FusedMultiplyAdd(Vector256.Load(qi + 7 % h * hd), Vector256.Load(ki + 7 / h * hd), a7);
                }
                (Sum8(a0, a1, a2, a3, a4, a5, a6, a7) * scale).Store(p + 8 * r);
            }
            for (int m = 0; m < 8 && full < rows; m++)
            {
                int j = full * step + m / h;
                if (j >= keys || m % h >= count) { p[8 * full + m] = 0; continue; }
                Vector256<float> dot = default;
                for (int i = 0; i < hd; i += 8) dot = Vector256.FusedMultiplyAdd(Vector256.Load(q + m % h * hd + i), Vector256.Load(k + (long)j * hd + i), dot);
                p[8 * full + m] = Vector256.Sum(dot) * _scale;
            }
            if (_softcap > 0) Ops.Softcap(new Span<float>(p, 8 * rows), _softcap, new Span<float>(p, 8 * rows));
            for (int m = (keys - full * step) * h; full < rows && m < 8; m++) p[8 * full + m] = float.NegativeInfinity; // after the softcap, as above

            Vector256<float> max = Vector256.Create(float.NegativeInfinity);
            for (int r = 0; r < rows; r++) max = Vector256.Max(max, Vector256.Load(p + 8 * r));
            max = FoldHeads<TH, MaxFold>(max);
            Vector256<float> sum = default;
            for (int r = 0; r < rows; r++)
            {
                Vector256<float> e = Vector256.Exp(Vector256.Load(p + 8 * r) - max);
                e.Store(p + 8 * r);
                sum += e;
            }
            Vector256<float> inverse = Vector256<float>.One;
            if (TP.Part) PartStats(FoldHeads<TH, SumFold>(sum), max, count, o + count * hd);
            else inverse /= FoldHeads<TH, SumFold>(sum);

            // Values: per tile of keys, each head 64 columns at a time in eight accumulators kept at acc between tiles.
            new Span<float>(acc, h * hd).Clear();
            for (int j0 = 0; j0 < keys; j0 += GroupTile)
            {
                int j1 = Math.Min(keys, j0 + GroupTile);
                for (int g = 0; g < count; g++)
                {
                    for (int c0 = 0; c0 + 64 <= hd; c0 += 64)
                    {
                        float* ag = acc + g * hd + c0;
                        Vector256<float> o0 = Vector256.Load(ag), o1 = Vector256.Load(ag + 8), o2 = Vector256.Load(ag + 16), o3 = Vector256.Load(ag + 24);
                        Vector256<float> o4 = Vector256.Load(ag + 32), o5 = Vector256.Load(ag + 40), o6 = Vector256.Load(ag + 48), o7 = Vector256.Load(ag + 56);
                        for (int j = j0; j < j1; j++)
                        {
                            float* vj = v + (long)j * hd + c0;
                            Vector256<float> pj = Vector256.Create(p[j * h + g]);
                            o0 = Vector256.FusedMultiplyAdd(pj, Vector256.Load(vj), o0);
                            o1 = Vector256.FusedMultiplyAdd(pj, Vector256.Load(vj + 8), o1);
                            o2 = Vector256.FusedMultiplyAdd(pj, Vector256.Load(vj + 16), o2);
                            o3 = Vector256.FusedMultiplyAdd(pj, Vector256.Load(vj + 24), o3);
                            o4 = Vector256.FusedMultiplyAdd(pj, Vector256.Load(vj + 32), o4);
                            o5 = Vector256.FusedMultiplyAdd(pj, Vector256.Load(vj + 40), o5);
                            o6 = Vector256.FusedMultiplyAdd(pj, Vector256.Load(vj + 48), o6);
                            o7 = Vector256.FusedMultiplyAdd(pj, Vector256.Load(vj + 56), o7);
                        }
                        o0.Store(ag); o1.Store(ag + 8); o2.Store(ag + 16); o3.Store(ag + 24);
                        o4.Store(ag + 32); o5.Store(ag + 40); o6.Store(ag + 48); o7.Store(ag + 56);
                    }
                    // Head sizes 80 and 96: the last 16 or 32 columns (two or four accumulators).
                    if (hd % 64 != 0)
                    {
                        int c0 = hd & ~63;
                        float* ag = acc + g * hd + c0;
                        Vector256<float> o0 = Vector256.Load(ag), o1 = Vector256.Load(ag + 8), o2 = default, o3 = default;
                        if (hd % 64 == 32) (o2, o3) = (Vector256.Load(ag + 16), Vector256.Load(ag + 24));
                        for (int j = j0; j < j1; j++)
                        {
                            float* vj = v + (long)j * hd + c0;
                            Vector256<float> pj = Vector256.Create(p[j * h + g]);
                            o0 = Vector256.FusedMultiplyAdd(pj, Vector256.Load(vj), o0);
                            o1 = Vector256.FusedMultiplyAdd(pj, Vector256.Load(vj + 8), o1);
                            if (hd % 64 == 32) o2 = Vector256.FusedMultiplyAdd(pj, Vector256.Load(vj + 16), o2);
                            if (hd % 64 == 32) o3 = Vector256.FusedMultiplyAdd(pj, Vector256.Load(vj + 24), o3);
                        }
                        o0.Store(ag); o1.Store(ag + 8);
                        if (hd % 64 == 32) { o2.Store(ag + 16); o3.Store(ag + 24); }
                    }
                }
            }
            for (int g = 0; g < count; g++)
            {
                Vector256<float> invG = Vector256.Create(inverse.GetElement(g));
                for (int c = 0; c < hd; c += 8) (Vector256.Load(acc + g * hd + c) * invG).Store(o + g * hd + c);
            }
        }
    }

    /// <summary>Keys per tile of <see cref="AttendGroupNarrow{TH, TD, TP}"/>'s values: 32 KB of values at head size 64, in L1 for the group's heads.</summary>
    private const int GroupTile = 128;

    /// <summary>Every lane combined with the lanes of the same head (lane m: head m % Lanes of key m / Lanes), by halving steps.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> FoldHeads<TH, TFold>(Vector256<float> x) where TH : struct, IHeads where TFold : struct, IFold
    {
        if (TH.Lanes <= 4) x = TFold.Combine(x, Avx.Permute2x128(x, x, 1));          // lane l with l ^ 4
        if (TH.Lanes <= 2) x = TFold.Combine(x, Avx.Shuffle(x, x, 0b01_00_11_10));    // l ^ 2
        if (TH.Lanes <= 1) x = TFold.Combine(x, Avx.Shuffle(x, x, 0b10_11_00_01));    // l ^ 1
        return x;
    }

    /// <summary>Every lane combined with the lanes of the same head (lane m: head m % Lanes of key m / Lanes), by halving steps.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> FoldHeads<TH, TFold>(Vector512<float> x) where TH : struct, IHeads where TFold : struct, IFold
    {
        if (TH.Lanes <= 8) x = TFold.Combine(x, Avx512F.Shuffle4x128(x, x, 0b01_00_11_10)); // lane l with l ^ 8
        if (TH.Lanes <= 4) x = TFold.Combine(x, Avx512F.Shuffle4x128(x, x, 0b10_11_00_01)); // l ^ 4
        if (TH.Lanes <= 2) x = TFold.Combine(x, Avx512F.Shuffle(x, x, 0b01_00_11_10));       // l ^ 2
        if (TH.Lanes <= 1) x = TFold.Combine(x, Avx512F.Shuffle(x, x, 0b10_11_00_01));       // l ^ 1
        return x;
    }

    /// <summary>
    /// Heads of a grouped kernel: <c>Count</c> real ones laid out in <c>Lanes</c> (the next power of two) per key; the padding
    /// lanes' products are skipped (their scores 0, their softmax never read) and their values never computed.
    /// </summary>
    private interface IHeads { static abstract int Count { get; } static abstract int Lanes { get; } }
    private struct OneHead : IHeads { public static int Count => 1; public static int Lanes => 1; }
    private struct TwoHeads : IHeads { public static int Count => 2; public static int Lanes => 2; }
    private struct ThreeHeads : IHeads { public static int Count => 3; public static int Lanes => 4; }
    private struct FourHeads : IHeads { public static int Count => 4; public static int Lanes => 4; }
    private struct FiveHeads : IHeads { public static int Count => 5; public static int Lanes => 8; }
    private struct SixHeads : IHeads { public static int Count => 6; public static int Lanes => 8; }
    private struct SevenHeads : IHeads { public static int Count => 7; public static int Lanes => 8; }
    private struct EightHeads : IHeads { public static int Count => 8; public static int Lanes => 8; }

    private interface IHeadSize { static abstract int Size { get; } }
    private struct Head64 : IHeadSize { public static int Size => 64; }
    private struct Head128 : IHeadSize { public static int Size => 128; }
    private struct Head256 : IHeadSize { public static int Size => 256; }
    private struct Head80 : IHeadSize { public static int Size => 80; }
    private struct Head96 : IHeadSize { public static int Size => 96; }

    private interface IFold
    {
        static abstract Vector512<float> Combine(Vector512<float> a, Vector512<float> b);
        static abstract Vector256<float> Combine(Vector256<float> a, Vector256<float> b);
    }

    private struct MaxFold : IFold
    {
        public static Vector512<float> Combine(Vector512<float> a, Vector512<float> b) => Vector512.Max(a, b);
        public static Vector256<float> Combine(Vector256<float> a, Vector256<float> b) => Vector256.Max(a, b);
    }

    private struct SumFold : IFold
    {
        public static Vector512<float> Combine(Vector512<float> a, Vector512<float> b) => a + b;
        public static Vector256<float> Combine(Vector256<float> a, Vector256<float> b) => a + b;
    }

    /// <summary>Keys per tile of <see cref="AttendHeads"/>: 64 KB of keys (or values) at head size 64.</summary>
    private const int DecodeTile = 256;

    /// <summary>scores[j] = scale · q · k_j for one query.</summary>
    private unsafe void QueryScores(float* q, float* k, int stride, int hd, int keys, float scale, Span<float> scores)
    {
        if (hd % 64 == 0 && _wide)
            ScoresWide(q, k, stride, hd, keys, scale, scores);
        else if (hd % 8 == 0 && Vector256.IsHardwareAccelerated)
            ScoresNarrow(q, k, stride, hd, keys, scale, scores);
        else
            for (int j = 0; j < keys; j++)
                scores[j] = TensorPrimitives.Dot(new ReadOnlySpan<float>(q, hd), new ReadOnlySpan<float>(k + (long)j * stride, hd)) * scale;
    }

    /// <summary>o += Σ_j p_j · v_j for one query.</summary>
    private unsafe void AddWeightedValues(ReadOnlySpan<float> p, float* v, int stride, int hd, float* o)
    {
        if (hd % 64 == 0 && _wide)
            WeightedValuesWide(p, v, stride, hd, o);
        else if (hd % 8 == 0 && Vector256.IsHardwareAccelerated)
            WeightedValuesNarrow(p, v, stride, hd, o);
        else
        {
            var result = new Span<float>(o, hd);
            for (int j = 0; j < p.Length; j++)
                TensorPrimitives.MultiplyAdd(new ReadOnlySpan<float>(v + (long)j * stride, hd), p[j], result, result);
        }
    }

    /// <summary>
    /// scores[j] = scale · q · k_j (AVX-512, hd a multiple of 64): sixteen keys per step in sixteen FMA chains whose sums
    /// one shuffle tree (<see cref="Sum16"/>) turns into one vector of sixteen scores, then four keys per step.
    /// </summary>
    /// <remarks>
    /// One horizontal sum per key (<c>Vector512.Sum</c>, ~8 operations against the dot product's 4 FMAs at head size 64)
    /// took about as long as the products; the tree costs 45 operations per 16 keys. Zen 5, 2 threads, attention of one
    /// generated token through all layers (twenty-second session, measured before these shapes went to the grouped decode
    /// kernels; the tiled path now serves kept patterns and the head sizes those do not take): the 1.1B shape (32 heads sharing 4 KV heads, head size
    /// 64, 22 layers) at position 160 0.41 → 0.30 ms, 1024 2.46 → 2.13, 4096 10.3–11.2 → 8.5; GPT-2's (12 heads, 12
    /// layers) 0.155 → 0.156, 1.43 → 1.28, 6.27 → 5.21 (at depth the reads of keys and values dominate).
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void ScoresWide(float* q, float* k, int stride, int hd, int keys, float scale, Span<float> scores)
    {
        int j = 0;
        fixed (float* out16 = scores)
            for (; j + 16 <= keys; j += 16)
            {
                Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default, a4 = default, a5 = default, a6 = default, a7 = default;
                Vector512<float> a8 = default, a9 = default, a10 = default, a11 = default, a12 = default, a13 = default, a14 = default, a15 = default;
                for (int i = 0; i < hd; i += 16)
                {
                    Vector512<float> qi = Vector512.Load(q + i);
                    float* ki = k + (long)j * stride + i;
                    a0 = Vector512.FusedMultiplyAdd(qi, Vector512.Load(ki), a0);
                    a1 = Vector512.FusedMultiplyAdd(qi, Vector512.Load(ki + stride), a1);
                    a2 = Vector512.FusedMultiplyAdd(qi, Vector512.Load(ki + 2 * stride), a2);
                    a3 = Vector512.FusedMultiplyAdd(qi, Vector512.Load(ki + 3 * stride), a3);
                    a4 = Vector512.FusedMultiplyAdd(qi, Vector512.Load(ki + 4 * stride), a4);
                    a5 = Vector512.FusedMultiplyAdd(qi, Vector512.Load(ki + 5 * stride), a5);
                    a6 = Vector512.FusedMultiplyAdd(qi, Vector512.Load(ki + 6 * stride), a6);
                    a7 = Vector512.FusedMultiplyAdd(qi, Vector512.Load(ki + 7 * stride), a7);
                    a8 = Vector512.FusedMultiplyAdd(qi, Vector512.Load(ki + 8 * stride), a8);
                    a9 = Vector512.FusedMultiplyAdd(qi, Vector512.Load(ki + 9 * stride), a9);
                    a10 = Vector512.FusedMultiplyAdd(qi, Vector512.Load(ki + 10 * stride), a10);
                    a11 = Vector512.FusedMultiplyAdd(qi, Vector512.Load(ki + 11 * stride), a11);
                    a12 = Vector512.FusedMultiplyAdd(qi, Vector512.Load(ki + 12 * stride), a12);
                    a13 = Vector512.FusedMultiplyAdd(qi, Vector512.Load(ki + 13 * stride), a13);
                    a14 = Vector512.FusedMultiplyAdd(qi, Vector512.Load(ki + 14 * stride), a14);
                    a15 = Vector512.FusedMultiplyAdd(qi, Vector512.Load(ki + 15 * stride), a15);
                }
                (Sum16(a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15) * scale).Store(out16 + j);
            }
        for (; j + 4 <= keys; j += 4)
        {
            float* k0 = k + (long)j * stride, k1 = k0 + stride, k2 = k1 + stride, k3 = k2 + stride;
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
            float* kj = k + (long)j * stride;
            Vector512<float> acc = default;
            for (int i = 0; i < hd; i += 16) acc = Vector512.FusedMultiplyAdd(Vector512.Load(q + i), Vector512.Load(kj + i), acc);
            scores[j] = Vector512.Sum(acc) * scale;
        }
    }

    /// <summary>
    /// Lane i = the sum of v_i's sixteen lanes, for sixteen vectors: pairs of vectors halve to 256 bits side by side, then to
    /// 128 (each quarter one vector's four partial sums), then two in-lane steps add those — 45 operations.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Sum16(Vector512<float> v0, Vector512<float> v1, Vector512<float> v2, Vector512<float> v3, Vector512<float> v4, Vector512<float> v5,
                                          Vector512<float> v6, Vector512<float> v7, Vector512<float> v8, Vector512<float> v9, Vector512<float> v10, Vector512<float> v11,
                                          Vector512<float> v12, Vector512<float> v13, Vector512<float> v14, Vector512<float> v15)
    {
        // Quarters of c0: v0, v4, v8, v12 (four partial sums each); c1: v1, v5, v9, v13; c2: v2, …; c3: v3, ….
        Vector512<float> c0 = Quarters(Halves(v0, v4), Halves(v8, v12)), c1 = Quarters(Halves(v1, v5), Halves(v9, v13));
        Vector512<float> c2 = Quarters(Halves(v2, v6), Halves(v10, v14)), c3 = Quarters(Halves(v3, v7), Halves(v11, v15));
        // Quarter i of d0: (v_4i, v_4i+1) partials interleaved; of d1: (v_4i+2, v_4i+3); the last step adds each pair.
        Vector512<float> d0 = Avx512F.UnpackLow(c0, c1) + Avx512F.UnpackHigh(c0, c1), d1 = Avx512F.UnpackLow(c2, c3) + Avx512F.UnpackHigh(c2, c3);
        return Avx512F.Shuffle(d0, d1, 0b01_00_01_00) + Avx512F.Shuffle(d0, d1, 0b11_10_11_10);

        // [x.q0 + x.q2, x.q1 + x.q3, y.q0 + y.q2, y.q1 + y.q3] (q: 128-bit quarters)
        static Vector512<float> Halves(Vector512<float> x, Vector512<float> y) =>
            Avx512F.Shuffle4x128(x, y, 0b01_00_01_00) + Avx512F.Shuffle4x128(x, y, 0b11_10_11_10);
        // Two Halves results (x, y | z, w) → quarters x, y, z, w, each its vector's four partial sums.
        static Vector512<float> Quarters(Vector512<float> u, Vector512<float> w) =>
            Avx512F.Shuffle4x128(u, w, 0b10_00_10_00) + Avx512F.Shuffle4x128(u, w, 0b11_01_11_01);
    }

    /// <summary>
    /// Lane i = the sum of v_i's eight lanes, for eight vectors: pairs halve to 128 bits side by side, then two in-lane steps
    /// (21 operations where eight <c>Vector256.Sum</c> take ~50).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Sum8(Vector256<float> v0, Vector256<float> v1, Vector256<float> v2, Vector256<float> v3,
                                         Vector256<float> v4, Vector256<float> v5, Vector256<float> v6, Vector256<float> v7)
    {
        // Halves: [x.lo + x.hi | y.lo + y.hi]; the low halves then end with v0 … v3, the high halves with v4 … v7.
        Vector256<float> u0 = Halves(v0, v4), u1 = Halves(v1, v5), u2 = Halves(v2, v6), u3 = Halves(v3, v7);
        Vector256<float> d0 = Avx.UnpackLow(u0, u1) + Avx.UnpackHigh(u0, u1), d1 = Avx.UnpackLow(u2, u3) + Avx.UnpackHigh(u2, u3);
        return Avx.Shuffle(d0, d1, 0b01_00_01_00) + Avx.Shuffle(d0, d1, 0b11_10_11_10);

        static Vector256<float> Halves(Vector256<float> x, Vector256<float> y) => Avx.Permute2x128(x, y, 0x20) + Avx.Permute2x128(x, y, 0x31);
    }

    /// <summary>
    /// o += Σ_j p_j · v_j, 64 columns at a time in four accumulators, two keys per step into separate
    /// accumulators so consecutive FMAs do not wait on each other (AVX-512, hd a multiple of 64).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void WeightedValuesWide(ReadOnlySpan<float> p, float* v, int stride, int hd, float* o)
    {
        int keys = p.Length;
        for (int c = 0; c < hd; c += 64)
        {
            Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
            Vector512<float> b0 = default, b1 = default, b2 = default, b3 = default;
            int j = 0;
            for (; j + 2 <= keys; j += 2)
            {
                float* v0 = v + (long)j * stride + c, v1 = v0 + stride;
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
                float* v0 = v + (long)j * stride + c;
                var p0 = Vector512.Create(p[j]);
                a0 = Vector512.FusedMultiplyAdd(p0, Vector512.Load(v0), a0);
                a1 = Vector512.FusedMultiplyAdd(p0, Vector512.Load(v0 + 16), a1);
                a2 = Vector512.FusedMultiplyAdd(p0, Vector512.Load(v0 + 32), a2);
                a3 = Vector512.FusedMultiplyAdd(p0, Vector512.Load(v0 + 48), a3);
            }
            (Vector512.Load(o + c) + (a0 + b0)).Store(o + c);
            (Vector512.Load(o + c + 16) + (a1 + b1)).Store(o + c + 16);
            (Vector512.Load(o + c + 32) + (a2 + b2)).Store(o + c + 32);
            (Vector512.Load(o + c + 48) + (a3 + b3)).Store(o + c + 48);
        }
    }

    /// <summary>
    /// scores[j] = scale · q · k_j with 256-bit vectors (hd a multiple of 8): four keys per step, each
    /// in two accumulators (even and odd groups of eight columns), so eight FMA chains run side by side
    /// where one chain per key waited on each FMA's latency.
    /// </summary>
    /// <remarks>
    /// Eight keys per step with the sums made one vector by a shuffle tree (as <see cref="ScoresWide"/>) did not win here
    /// (twenty-second session, Zen 5 with AVX2, 2 threads, attention per token): the 1.1B shape 0.95–1.0× the time, GPT-2's
    /// 1.1× at position 4096; reading those eight keys row by row instead: GPT-2's 0.9× at 4096, the 1.1B's 1.05–1.12×.
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void ScoresNarrow(float* q, float* k, int stride, int hd, int keys, float scale, Span<float> scores)
    {
        int j = 0;
        for (; j + 4 <= keys; j += 4)
        {
            float* k0 = k + (long)j * stride, k1 = k0 + stride, k2 = k1 + stride, k3 = k2 + stride;
            Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
            Vector256<float> b0 = default, b1 = default, b2 = default, b3 = default;
            int i = 0;
            for (; i + 16 <= hd; i += 16)
            {
                Vector256<float> qa = Vector256.Load(q + i), qb = Vector256.Load(q + i + 8);
                a0 = Vector256.FusedMultiplyAdd(qa, Vector256.Load(k0 + i), a0);
                a1 = Vector256.FusedMultiplyAdd(qa, Vector256.Load(k1 + i), a1);
                a2 = Vector256.FusedMultiplyAdd(qa, Vector256.Load(k2 + i), a2);
                a3 = Vector256.FusedMultiplyAdd(qa, Vector256.Load(k3 + i), a3);
                b0 = Vector256.FusedMultiplyAdd(qb, Vector256.Load(k0 + i + 8), b0);
                b1 = Vector256.FusedMultiplyAdd(qb, Vector256.Load(k1 + i + 8), b1);
                b2 = Vector256.FusedMultiplyAdd(qb, Vector256.Load(k2 + i + 8), b2);
                b3 = Vector256.FusedMultiplyAdd(qb, Vector256.Load(k3 + i + 8), b3);
            }
            if (i < hd)
            {
                Vector256<float> qa = Vector256.Load(q + i);
                a0 = Vector256.FusedMultiplyAdd(qa, Vector256.Load(k0 + i), a0);
                a1 = Vector256.FusedMultiplyAdd(qa, Vector256.Load(k1 + i), a1);
                a2 = Vector256.FusedMultiplyAdd(qa, Vector256.Load(k2 + i), a2);
                a3 = Vector256.FusedMultiplyAdd(qa, Vector256.Load(k3 + i), a3);
            }
            scores[j] = Vector256.Sum(a0 + b0) * scale;
            scores[j + 1] = Vector256.Sum(a1 + b1) * scale;
            scores[j + 2] = Vector256.Sum(a2 + b2) * scale;
            scores[j + 3] = Vector256.Sum(a3 + b3) * scale;
        }
        for (; j < keys; j++)
        {
            float* kj = k + (long)j * stride;
            Vector256<float> acc = default;
            for (int i = 0; i < hd; i += 8) acc = Vector256.FusedMultiplyAdd(Vector256.Load(q + i), Vector256.Load(kj + i), acc);
            scores[j] = Vector256.Sum(acc) * scale;
        }
    }

    /// <summary>
    /// o += Σ_j p_j · v_j with 256-bit vectors (hd a multiple of 8): 32 columns at a time in four
    /// accumulators, two keys per step into separate ones (eight chains), then groups of eight columns
    /// with four keys per step; each probability is broadcast once per step, not once per key and group.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void WeightedValuesNarrow(ReadOnlySpan<float> p, float* v, int stride, int hd, float* o)
    {
        int keys = p.Length, c = 0;
        for (; c + 32 <= hd; c += 32)
        {
            Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
            Vector256<float> b0 = default, b1 = default, b2 = default, b3 = default;
            int j = 0;
            for (; j + 2 <= keys; j += 2)
            {
                float* v0 = v + (long)j * stride + c, v1 = v0 + stride;
                var p0 = Vector256.Create(p[j]);
                var p1 = Vector256.Create(p[j + 1]);
                a0 = Vector256.FusedMultiplyAdd(p0, Vector256.Load(v0), a0);
                a1 = Vector256.FusedMultiplyAdd(p0, Vector256.Load(v0 + 8), a1);
                a2 = Vector256.FusedMultiplyAdd(p0, Vector256.Load(v0 + 16), a2);
                a3 = Vector256.FusedMultiplyAdd(p0, Vector256.Load(v0 + 24), a3);
                b0 = Vector256.FusedMultiplyAdd(p1, Vector256.Load(v1), b0);
                b1 = Vector256.FusedMultiplyAdd(p1, Vector256.Load(v1 + 8), b1);
                b2 = Vector256.FusedMultiplyAdd(p1, Vector256.Load(v1 + 16), b2);
                b3 = Vector256.FusedMultiplyAdd(p1, Vector256.Load(v1 + 24), b3);
            }
            if (j < keys)
            {
                float* v0 = v + (long)j * stride + c;
                var p0 = Vector256.Create(p[j]);
                a0 = Vector256.FusedMultiplyAdd(p0, Vector256.Load(v0), a0);
                a1 = Vector256.FusedMultiplyAdd(p0, Vector256.Load(v0 + 8), a1);
                a2 = Vector256.FusedMultiplyAdd(p0, Vector256.Load(v0 + 16), a2);
                a3 = Vector256.FusedMultiplyAdd(p0, Vector256.Load(v0 + 24), a3);
            }
            (Vector256.Load(o + c) + (a0 + b0)).Store(o + c);
            (Vector256.Load(o + c + 8) + (a1 + b1)).Store(o + c + 8);
            (Vector256.Load(o + c + 16) + (a2 + b2)).Store(o + c + 16);
            (Vector256.Load(o + c + 24) + (a3 + b3)).Store(o + c + 24);
        }
        for (; c < hd; c += 8)
        {
            Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
            int j = 0;
            for (; j + 4 <= keys; j += 4)
            {
                float* v0 = v + (long)j * stride + c;
                a0 = Vector256.FusedMultiplyAdd(Vector256.Create(p[j]), Vector256.Load(v0), a0);
                a1 = Vector256.FusedMultiplyAdd(Vector256.Create(p[j + 1]), Vector256.Load(v0 + stride), a1);
                a2 = Vector256.FusedMultiplyAdd(Vector256.Create(p[j + 2]), Vector256.Load(v0 + 2 * stride), a2);
                a3 = Vector256.FusedMultiplyAdd(Vector256.Create(p[j + 3]), Vector256.Load(v0 + 3 * stride), a3);
            }
            for (; j < keys; j++) a0 = Vector256.FusedMultiplyAdd(Vector256.Create(p[j]), Vector256.Load(v + (long)j * stride + c), a0);
            (Vector256.Load(o + c) + (a0 + a1 + (a2 + a3))).Store(o + c);
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
