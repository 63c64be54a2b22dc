using BenchmarkDotNet.Attributes;
using NextToken.Kernels;
using NextToken.Tensors;

namespace NextToken.Bench;

/// <summary>
/// <c>--q8-activations</c> through the repacked eight-row kernels (<see cref="InterleavedBlock32"/>) against the same matmul without a
/// cache (decode: the row kernels of <see cref="QuantizedActivations"/>; a batch of 16: the exact
/// float panels): a 2048 × 5632 matrix (TinyLlama-1.1B's FFN shape), one thread, activation quantization included. Stored bytes are
/// random with scales (and minimums) of a weight's size. DOTNET_EnableAVX512=0 DOTNET_EnableAVXVNNI=0 gives the plain AVX2 kernels.
/// <c>--alternate-interleaved [rounds]</c> times both in alternation in one process (minimum of each, in cycles) for a loaded machine.
/// </summary>
[MinColumn]
public unsafe class InterleavedBlock32Benchmarks
{
    private const int NIn = 2048, NOut = 5632;
    private byte[] _weights = [];
    private float[] _x = [], _y = [];
    private readonly InterleavedBlock32.Cache _cache = new();

    public static GgmlType[] Types { get; } = [GgmlType.Q4_0, GgmlType.Q4_1, GgmlType.Q5_0, GgmlType.Q5_1, GgmlType.Q8_0, GgmlType.IQ4_NL]; // a property: BenchmarkDotNet reads [ParamsSource] from properties and methods only

    [ParamsSource(nameof(Types))]
    public GgmlType Type { get; set; }

    [Params(1, 16)]
    public int Batch { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        if (!InterleavedBlock32.IsSupported) throw new PlatformNotSupportedException("no AVX2 on this CPU");
        var random = new Random(1);
        long rowBytes = GgmlTypeInfo.RowBytes(Type, NIn);
        int blockBytes = (int)(rowBytes / (NIn / 32));
        _weights = GC.AllocateArray<byte>((int)(rowBytes * NOut), pinned: true);
        random.NextBytes(_weights);
        for (int at = 0; at < _weights.Length; at += blockBytes)
        {
            BitConverter.TryWriteBytes(_weights.AsSpan(at), (Half)((random.NextDouble() * 2 - 1) * 0.01));
            if (Type is GgmlType.Q4_1 or GgmlType.Q5_1) BitConverter.TryWriteBytes(_weights.AsSpan(at + 2), (Half)((random.NextDouble() * 2 - 1) * 0.1));
        }
        _x = Enumerable.Range(0, NIn * Batch).Select(i => (float)Math.Sin(i)).ToArray();
        _y = new float[NOut * Batch];
        Repacked(); // the copy is made once per matrix, as a model's cache keeps it
    }

    [GlobalCleanup]
    public void Cleanup() => _cache.Dispose();

    private TensorData Weight(byte* data) => new("w", Type, [NIn, NOut], data, _weights.Length);

    [Benchmark(Baseline = true)]
    public void WithoutCache()
    {
        fixed (byte* data = _weights)
            MatMul.Forward(Weight(data), _x, Batch, _y, threads: 1, quantizeActivations: true);
    }

    [Benchmark]
    public void Repacked()
    {
        fixed (byte* data = _weights)
            MatMul.Forward(Weight(data), _x, Batch, _y, threads: 1, quantizeActivations: true, interleaved: _cache);
    }

    /// <summary>Each type and batch: the two timed in alternation, minimum of <paramref name="rounds"/>, ns and cycles per 32 values, row and position.</summary>
    public static void Alternate(int rounds)
    {
        Console.WriteLine($"{NOut} rows × {NIn}, one thread, min of {rounds}; ns (cycles) per 32 values, row and position");
        foreach (int batch in new[] { 1, 16 })
            foreach (GgmlType type in Types)
            {
                var bench = new InterleavedBlock32Benchmarks { Type = type, Batch = batch };
                bench.Setup();
                var (rows, repacked, gigahertz) = AlternatingClock.Time(bench.WithoutCache, bench.Repacked, rounds);
                double units = (double)NOut * NIn / 32 * batch;
                Console.WriteLine($"{type,-7} batch {batch,2}  without cache {rows * 1e3 / units,6:F3} ({rows * 1e3 * gigahertz / units,5:F2})  " +
                                  $"repacked {repacked * 1e3 / units,6:F3} ({repacked * 1e3 * gigahertz / units,5:F2})  repacked/without {repacked / rows:F3}  {gigahertz:F2} GHz");
                bench.Cleanup();
            }
    }
}
