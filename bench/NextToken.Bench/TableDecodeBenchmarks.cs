using System.Diagnostics;
using BenchmarkDotNet.Attributes;
using NextToken.Gguf;
using NextToken.Kernels;
using NextToken.Tensors;

namespace NextToken.Bench;

/// <summary>
/// AVX-512 exact Q4_K decode: the 24-bit plane kernel (<see cref="KQuantPlanesWide"/>, "Planes", its split and sums per
/// pass included) against the permute-table kernel (<see cref="KQuantTablesWide"/>, "Tables", its Σx per 32 per pass
/// included), 256 rows × 2048 (295 KB) resident in L2, 8 passes per call. <c>--alternate-tables [rounds]</c> times them in
/// alternation (minimum of each, cycles per 256 values and row); <c>--alternate-tables-stream FILE [rounds]</c> reads
/// every Q4_K matrix of a mapped model from memory, one thread, by CPU time. Needs AVX-512 F and BW.
/// </summary>
[MinColumn]
public unsafe class TableDecodeBenchmarks
{
    private const int NIn = 2048, Rows = 256, Passes = 8;
    private byte[] _weights = [];
    private float[] _x = [], _arranged = [], _y = [], _sums = [], _planeScales = [];
    private sbyte[] _planes = [];
    private long _rowBytes;

    [GlobalSetup]
    public void Setup()
    {
        if (!KQuantTablesWide.IsSupported) throw new PlatformNotSupportedException("needs AVX-512 F and BW");
        _rowBytes = GgmlTypeInfo.RowBytes(GgmlType.Q4_K, NIn);
        long bytes = _rowBytes * Rows;
        _weights = GC.AllocateUninitializedArray<byte>((int)bytes, pinned: true);
        using GgufFile gguf = GgufFile.Open(Corpus.Shared("fixtures", "models", "quant", "llama-d256.q4_k.gguf"));
        TensorData source = gguf.GetTensor(gguf.Tensors.First(t => t.Type == GgmlType.Q4_K).Name);
        var stored = new ReadOnlySpan<byte>(source.Data, (int)source.ByteLength);
        for (long at = 0; at < bytes; at += stored.Length)
            stored[..(int)Math.Min(stored.Length, bytes - at)].CopyTo(_weights.AsSpan((int)at));
        _x = GC.AllocateArray<float>(NIn, pinned: true);
        for (int i = 0; i < NIn; i++) _x[i] = (float)Math.Sin(i);
        _arranged = GC.AllocateArray<float>(NIn, pinned: true);
        _y = new float[Rows];
        _sums = GC.AllocateArray<float>(NIn / 16, pinned: true);
        _planes = GC.AllocateArray<sbyte>(3 * NIn, pinned: true);
        _planeScales = GC.AllocateArray<float>(NIn / 256, pinned: true);
    }

    /// <summary>The 24-bit plane kernel as decode ran it (split and sub-block sums once per pass).</summary>
    [Benchmark(Baseline = true)]
    public void Planes()
    {
        fixed (byte* w = _weights)
        fixed (float* x = _x, y = _y, sums = _sums, planeScales = _planeScales)
        fixed (sbyte* planes = _planes)
            for (int pass = 0; pass < Passes; pass++)
            {
                KQuantPlanes.Split(x, NIn, planes, planeScales);
                KQuantPlanes.SubBlockSums(x, NIn, 32, sums);
                for (int o = 0; o < Rows; o += 4) KQuantPlanesWide.Dot4(GgmlType.Q4_K, w + o * _rowBytes, _rowBytes, 4, planes, planeScales, sums, NIn, y + o);
            }
    }

    /// <summary>The permute-table kernel (x arranged and Σx per 32 once per pass).</summary>
    [Benchmark]
    public void Tables()
    {
        fixed (byte* w = _weights)
        fixed (float* x = _x, arranged = _arranged, y = _y, sums = _sums)
            for (int pass = 0; pass < Passes; pass++)
            {
                KQuantTablesWide.Arrange(x, NIn, arranged);
                KQuantPlanes.SubBlockSums(x, NIn, 32, sums);
                for (int o = 0; o < Rows; o += 4) KQuantTablesWide.Dot4(GgmlType.Q4_K, w + o * _rowBytes, _rowBytes, 4, arranged, sums, NIn, y + o);
            }
    }

    public static void Alternate(int rounds)
    {
        var bench = new TableDecodeBenchmarks();
        bench.Setup();
        (double planes, double tables, double gigahertz) = AlternatingClock.Time(() => bench.Planes(), () => bench.Tables(), rounds);
        double units = (double)Passes * Rows * NIn / 256;
        Console.WriteLine($"Q4_K resident, min of {rounds}: planes {planes:F1} µs ({planes * 1e3 * gigahertz / units:F1} cycles per 256 values and row), " +
                          $"tables {tables:F1} µs ({tables * 1e3 * gigahertz / units:F1}), {gigahertz:F2} GHz, tables/planes {tables / planes:F3}");
    }

    /// <summary>Every Q4_K matrix of a model (up to ~600 MB) from memory, one thread, the two kernels in alternation, by CPU time.</summary>
    public static void AlternateStream(string model, int rounds)
    {
        using GgufFile gguf = GgufFile.Open(model);
        TensorData[] matrices = gguf.Tensors.Where(t => t.Type == GgmlType.Q4_K).Select(t => gguf.GetTensor(t.Name)).Where(t => t.RowLength % 256 == 0).ToArray();
        long bytes = 0;
        matrices = matrices.TakeWhile(m => (bytes += m.ByteLength) < 600_000_000).ToArray();
        bytes = matrices.Sum(m => m.ByteLength);
        long values = matrices.Sum(m => (long)m.RowLength * m.RowCount);
        int maxIn = matrices.Max(m => m.RowLength), maxOut = matrices.Max(m => m.RowCount);
        float[] x = new float[maxIn], arranged = new float[maxIn], y = new float[maxOut], sums = new float[maxIn / 16], scales = new float[maxIn / 256];
        sbyte[] planes = new sbyte[3 * maxIn];
        for (int i = 0; i < maxIn; i++) x[i] = MathF.Sin(i * 0.37f);
        double bestPlanes = double.MaxValue, bestTables = double.MaxValue;
        for (int round = -1; round < rounds; round++)
            foreach (bool tables in new[] { false, true })
            {
                TimeSpan cpu0 = Process.GetCurrentProcess().TotalProcessorTime;
                Run(matrices, tables, x, arranged, y, sums, scales, planes);
                double cpu = (Process.GetCurrentProcess().TotalProcessorTime - cpu0).TotalMilliseconds;
                if (round < 0) continue; // the first round pages the file in and compiles
                if (tables) bestTables = Math.Min(bestTables, cpu);
                else bestPlanes = Math.Min(bestPlanes, cpu);
            }
        Console.WriteLine($"Q4_K: {matrices.Length} matrices, {bytes / 1e6:F0} MB; min of {rounds} by CPU time: planes {bestPlanes:F1} ms ({bytes / bestPlanes / 1e6:F2} GB/s), " +
                          $"tables {bestTables:F1} ms ({bytes / bestTables / 1e6:F2} GB/s), tables/planes {bestTables / bestPlanes:F3}; ns per 256 values and row planes {bestPlanes * 1e6 / (values / 256.0):F2} tables {bestTables * 1e6 / (values / 256.0):F2}");
    }

    private static void Run(TensorData[] matrices, bool tables, float[] xs, float[] arrangedXs, float[] ys, float[] subSums, float[] planeScales, sbyte[] planeBytes)
    {
        fixed (float* x = xs, arranged = arrangedXs, y = ys, sums = subSums, scales = planeScales)
        fixed (sbyte* planes = planeBytes)
            foreach (TensorData m in matrices)
            {
                int n = m.RowLength, rows = m.RowCount;
                if (tables) KQuantTablesWide.Arrange(x, n, arranged);
                else KQuantPlanes.Split(x, n, planes, scales); // as decode prepared each input (MatMul.Run)
                KQuantPlanes.SubBlockSums(x, n, 32, sums);
                for (int o = 0; o < rows; o += 4)
                    if (tables) KQuantTablesWide.Dot4(GgmlType.Q4_K, m.Data + o * m.RowBytes, m.RowBytes, Math.Min(4, rows - o), arranged, sums, n, y + o);
                    else KQuantPlanesWide.Dot4(GgmlType.Q4_K, m.Data + o * m.RowBytes, m.RowBytes, Math.Min(4, rows - o), planes, scales, sums, n, y + o);
            }
    }
}
