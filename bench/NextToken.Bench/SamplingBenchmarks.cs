using BenchmarkDotNet.Attributes;
using NextToken.Sampling;

namespace NextToken.Bench;

/// <summary>
/// One sampling step over GPT-2's 50,257 logits, per preset, against the baseline of sorting the
/// whole vocabulary with a comparison (how top-k was done before the heap): the step runs once per
/// generated token, beside a forward pass of ~3 ms.
/// </summary>
[MemoryDiagnoser]
public class SamplingBenchmarks
{
    private const int VocabSize = 50_257;
    private float[] _peaked = [], _flat = [];
    private Candidate[] _scratch = [];
    private SamplerChain _default = null!, _plan = null!, _greedy = null!;

    [GlobalSetup]
    public void Setup()
    {
        var random = new Random(42);
        // Peaked: a long tail with a few hundred strong tokens, as a trained model's next-token logits.
        _peaked = Enumerable.Range(0, VocabSize).Select(_ => (float)(random.NextDouble() * 6 - 3 + (random.Next(200) == 0 ? 10 : 0))).ToArray();
        // Flat: a random-weight model's logits, where top-p must keep most of the vocabulary.
        _flat = Enumerable.Range(0, VocabSize).Select(_ => (float)(random.NextDouble() * 4)).ToArray();
        _scratch = new Candidate[VocabSize];
        _default = new SamplerChain(VocabSize, new SamplingOptions(), new Xoshiro256StarStar(1));
        _plan = new SamplerChain(VocabSize, SamplingOptions.Plan, new Xoshiro256StarStar(1));
        _greedy = new SamplerChain(VocabSize, SamplingOptions.Greedy, new Xoshiro256StarStar(1));
    }

    [Benchmark(Baseline = true)]
    public int ComparisonSortOfTheVocabulary()
    {
        for (int i = 0; i < VocabSize; i++) _scratch[i] = new Candidate { Id = i, Logit = _peaked[i] };
        _scratch.AsSpan().Sort(static (a, b) => b.Logit != a.Logit ? b.Logit.CompareTo(a.Logit) : a.Id.CompareTo(b.Id));
        return _scratch[0].Id;
    }

    [Benchmark]
    public int DefaultChainTopK40() => _default.Sample(_peaked);

    [Benchmark]
    public int PlanTopPPeaked() => _plan.Sample(_peaked);

    [Benchmark]
    public int PlanTopPFlat() => _plan.Sample(_flat);

    [Benchmark]
    public int Greedy() => _greedy.Sample(_peaked);
}
