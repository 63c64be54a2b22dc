using BenchmarkDotNet.Attributes;
using NextToken.Kernels;

namespace NextToken.Bench;

/// <summary>
/// Decode attention of a model with one KV head (Gemma 3 1B's layer: 4 heads of 256 sharing it) after Depth cached
/// positions: the scalar reference as baseline; the grouped kernel on Threads threads with the keys split into parts the
/// threads share (SplitThreads = Threads, the default) or kept whole (SplitThreads = 1: one thread works, the other
/// waits). Run under DOTNET_EnableAVX512=0 for the AVX2 kernels.
/// </summary>
[MinColumn]
public class AttentionSplitBenchmarks
{
    private const int Heads = 4, KvHeads = 1, HeadDim = 256, Context = 4096 + 64;
    private float[] _queries = [], _keys = [], _values = [], _keyCache = [], _valueCache = [], _output = [];
    private CausalAttention _split = null!, _whole = null!;

    [Params(1024, 4096)]
    public int Depth { get; set; }

    [Params(2)]
    public int Threads { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var random = new Random(3);
        float Next() => (float)(random.NextDouble() * 2 - 1);
        _queries = Enumerable.Range(0, Heads * HeadDim).Select(_ => Next()).ToArray();
        _keys = Enumerable.Range(0, Context * KvHeads * HeadDim).Select(_ => Next()).ToArray();
        _values = Enumerable.Range(0, Context * KvHeads * HeadDim).Select(_ => Next()).ToArray();
        _output = new float[Heads * HeadDim];
        _split = new CausalAttention(Heads, KvHeads, HeadDim, Context, 1);
        _whole = new CausalAttention(Heads, KvHeads, HeadDim, Context, 1) { SplitThreads = 1 };
        _keyCache = new float[_keys.Length];
        _valueCache = new float[_values.Length];
        _split.Store(_keys, KvHeads * HeadDim, _values, KvHeads * HeadDim, _keyCache, _valueCache, 0, 0, Context);
    }

    [Benchmark(Baseline = true)]
    public void ScalarReference() =>
        NextToken.Kernels.ScalarReference.Attention(_queries, _keys, _values, Heads, KvHeads, HeadDim, Depth, 1, _output);

    [Benchmark]
    public void Whole() => _whole.Run(_queries, Heads * HeadDim, _keyCache, _valueCache, 0, Depth, 1, _output, Threads);

    [Benchmark]
    public void Split() => _split.Run(_queries, Heads * HeadDim, _keyCache, _valueCache, 0, Depth, 1, _output, Threads);
}
