using BenchmarkDotNet.Attributes;
using NextToken.Kernels;

namespace NextToken.Bench;

/// <summary>
/// GPT-2 small's attention for one layer (12 heads of 64): one query after 255 cached positions
/// (decode) and a 128-token prompt (blocks of 16 queries), scalar reference as baseline; with
/// Depth 4096 the same after 4096 more positions (as <c>bench --depth 4096</c>); KvHeads 3 shares each KV head among
/// four query heads (grouped-query attention: the grouped decode kernel of four heads), KvHeads 4 among three (SmolLM's
/// and Llama 3.2 3B's ratio: the four-lane layout with one padding lane). Run under DOTNET_EnableAVX512=0 for the AVX2
/// kernels.
/// </summary>
[MinColumn]
public class AttentionBenchmarks
{
    private const int Heads = 12, HeadDim = 64, Context = 4096 + 384;
    private float[] _queries = [], _keys = [], _values = [], _keyCache = [], _valueCache = [], _output = [];
    private CausalAttention _attention = null!;

    [Params(1, 128)]
    public int Queries { get; set; }

    [Params(1, 2)]
    public int Threads { get; set; }

    [Params(0, 4096)]
    public int Depth { get; set; }

    [Params(12, 4, 3)]
    public int KvHeads { get; set; }

    private int Cached => Depth + (Queries == 1 ? 255 : 0);

    [GlobalSetup]
    public void Setup()
    {
        var random = new Random(2);
        float Next() => (float)(random.NextDouble() * 2 - 1);
        _queries = Enumerable.Range(0, Queries * Heads * HeadDim).Select(_ => Next()).ToArray();
        _keys = Enumerable.Range(0, Context * KvHeads * HeadDim).Select(_ => Next()).ToArray();
        _values = Enumerable.Range(0, Context * KvHeads * HeadDim).Select(_ => Next()).ToArray();
        _output = new float[Queries * Heads * HeadDim];
        _attention = new CausalAttention(Heads, KvHeads, HeadDim, Context, Queries);
        // The reference reads [position, head·dim] rows; the kernel reads its own [head, position, dim] cache.
        _keyCache = new float[_keys.Length];
        _valueCache = new float[_values.Length];
        _attention.Store(_keys, KvHeads * HeadDim, _values, KvHeads * HeadDim, _keyCache, _valueCache, 0, 0, Context);
    }

    [Benchmark(Baseline = true)]
    public void ScalarReference() =>
        NextToken.Kernels.ScalarReference.Attention(_queries, _keys, _values, Heads, KvHeads, HeadDim, Cached, Queries, _output);

    [Benchmark]
    public void Vectorized() =>
        _attention.Run(_queries, Heads * HeadDim, _keyCache, _valueCache, 0, Cached, Queries, _output, Threads);
}
