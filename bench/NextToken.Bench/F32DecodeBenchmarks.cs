using BenchmarkDotNet.Attributes;
using NextToken.Kernels;

namespace NextToken.Bench;

/// <summary>
/// A lone F32 decode step through <see cref="BatchedDecode.F32Rows"/> over a 50257 × 768 matrix (GPT-2's head, 154 MB: read from
/// memory, as decode reads it), one thread. With 256-bit vectors (DOTNET_EnableAVX512=0 DOTNET_EnableAVXVNNI=0) <c>Rows</c> 2 / 128 is
/// the kernel before issue #13 (two rows per pass, 512 B prefetched per row) and 3 / 384 the current one; with AVX-512 both run the
/// four-row kernel. <c>--alternate-f32 FILE</c> times the same variants over a model's matrices in alternation.
/// </summary>
public unsafe class F32DecodeBenchmarks
{
    private const int NIn = 768, NOut = 50257;
    private float[] _w = [], _x = [], _y = [];

    [Params("2:128", "3:384")]
    public string Rows { get; set; } = "3:384";

    [GlobalSetup]
    public void Setup()
    {
        var random = new Random(4);
        _w = new float[(long)NIn * NOut];
        for (long i = 0; i < _w.LongLength; i++) _w[i] = (float)(random.NextDouble() - 0.5);
        _x = Enumerable.Range(0, NIn).Select(i => MathF.Sin(i * 0.37f)).ToArray();
        _y = new float[NOut];
    }

    [Benchmark]
    public void Decode()
    {
        string[] parts = Rows.Split(':');
        fixed (float* w = _w, x = _x, y = _y)
            BatchedDecode.F32Rows(w, NIn, x, y, 1, NOut, 0, NOut, int.Parse(parts[0]), int.Parse(parts[1]));
    }
}
