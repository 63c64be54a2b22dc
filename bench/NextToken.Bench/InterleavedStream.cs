using System.Diagnostics;
using System.Runtime.InteropServices;
using NextToken.Gguf;
using NextToken.Kernels;
using NextToken.Tensors;

namespace NextToken.Bench;

/// <summary>
/// <c>--ilv-stream FILE [rounds] [threads]</c>: decode's exact kernels reading every matrix of one type from memory, as stored
/// (four rows at a stride of a row) against a copy with each group of four rows interleaved block by block (row r's block b
/// at group + (4b + r)·blockBytes: one sequential stream per thread), each from the file's mapping or an anonymous copy with
/// 4 KB pages or transparent huge pages. Rows split across threads as decode splits them (WorkerPool, 8 chunks per thread).
/// Variants in rotating order each round; minimum wall time and summed thread CPU time of the chunks of each.
/// </summary>
internal static unsafe class InterleavedStream
{
    [DllImport("libc", SetLastError = true)] private static extern nint mmap(nint addr, nuint length, int prot, int flags, int fd, nint offset);
    [DllImport("libc", SetLastError = true)] private static extern int munmap(nint addr, nuint length);
    [DllImport("libc", SetLastError = true)] private static extern int madvise(nint addr, nuint length, int advice);
    [DllImport("libc")] private static extern int clock_gettime(int clock, long* timespec);
    private const int MadvHugePage = 14, MadvNoHugePage = 15;

    /// <summary>This thread's CPU time in ns (CLOCK_THREAD_CPUTIME_ID): the kernels' own time, without the pool's polling.</summary>
    private static long ThreadNs()
    {
        long* ts = stackalloc long[2];
        clock_gettime(3, ts);
        return ts[0] * 1_000_000_000 + ts[1];
    }

    /// <summary>ILV_AHEAD: the interleaved copies' prefetch distance in bytes (default one group of four rows on, as the stored rows).</summary>
    private static readonly long s_ilvAhead = long.TryParse(Environment.GetEnvironmentVariable("ILV_AHEAD"), out long a) ? a : -1;

    private sealed class Layout
    {
        public required string Name;
        public required bool Interleaved;
        public required byte*[] Bases; // per matrix
        public int ChunksPerThread = 8;
        public nint Region;
        public nuint Length;
    }

    public static void Run(string model, int rounds, int threads, string kernel)
    {
        using GgufFile gguf = GgufFile.Open(model);
        GgmlType type = kernel == "q4_0" ? GgmlType.Q4_0 : GgmlType.Q4_K;
        int unit = kernel == "q4_0" ? 32 : 256;
        TensorData[] matrices = gguf.Tensors.Where(t => t.Type == type).Select(t => gguf.GetTensor(t.Name)).Where(t => t.RowLength % unit == 0 && !t.Transposed).ToArray();
        long bytes = 0;
        matrices = matrices.TakeWhile(m => (bytes += m.ByteLength) < 700_000_000).ToArray();
        bytes = matrices.Sum(m => m.ByteLength);
        int blockBytes = (int)GgmlTypeInfo.RowBytes(type, unit);
        Console.WriteLine($"{kernel}: {matrices.Length} {type} matrices, {bytes / 1e6:F0} MB, {threads} thread(s), load {File.ReadAllText("/proc/loadavg").Split(' ')[0]}");

        var layouts = new List<Layout> { new() { Name = "map rows", Interleaved = false, Bases = Pointers(matrices) } };
        foreach (bool huge in new[] { false, true })
            foreach (bool ilv in new[] { false, true })
                layouts.Add(Copy(matrices, bytes, blockBytes, huge, ilv));
        // ILV_CHUNKS=a,b,…: the stored rows again with a, b, … chunks per thread (decode takes 8 per thread over a call's matrices).
        foreach (string c in (Environment.GetEnvironmentVariable("ILV_CHUNKS") ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries))
            layouts.Add(new() { Name = $"map rows /{c}", Interleaved = false, Bases = layouts[0].Bases, ChunksPerThread = int.Parse(c) });
        foreach (Layout l in layouts.Skip(1).Where(l => l.Region != 0)) Console.WriteLine($"  {l.Name}: {HugeKb(l)} kB in huge pages");

        int maxIn = matrices.Max(m => m.RowLength), maxOut = matrices.Max(m => m.RowCount);
        var work = new Work(kernel, type, blockBytes, maxIn, maxOut);
        var bestWall = new double[layouts.Count];
        var bestCpu = new double[layouts.Count];
        Array.Fill(bestWall, double.MaxValue);
        Array.Fill(bestCpu, double.MaxValue);
        float[][] reference = matrices.Select(m => new float[m.RowCount]).ToArray();
        for (int round = -1; round < rounds; round++)
            for (int k = 0; k < layouts.Count; k++)
            {
                int v = (k + Math.Max(0, round)) % layouts.Count; // rotating order: no variant always follows the same one
                Layout l = layouts[v];
                var clock = Stopwatch.StartNew();
                work.KernelNs = 0;
                for (int i = 0; i < matrices.Length; i++) work.Matrix(matrices[i], l.Bases[i], l.Interleaved, threads, l.ChunksPerThread);
                double cpu = work.KernelNs / 1e6, wall = clock.Elapsed.TotalMilliseconds;
                if (round < 0)
                {
                    // First round: pages the mapping in, compiles; every layout must give the same bits as the stored rows.
                    for (int i = 0; i < matrices.Length; i++)
                    {
                        work.Matrix(matrices[i], l.Bases[i], l.Interleaved, 1, 1);
                        if (v == 0) work.Y.AsSpan(0, matrices[i].RowCount).CopyTo(reference[i]);
                        else if (!work.Y.AsSpan(0, matrices[i].RowCount).SequenceEqual(reference[i])) throw new InvalidOperationException($"{l.Name}: {matrices[i].Name} differs");
                    }
                    continue;
                }
                bestWall[v] = Math.Min(bestWall[v], wall);
                bestCpu[v] = Math.Min(bestCpu[v], cpu);
            }
        Console.WriteLine($"  min of {rounds} rounds, load now {File.ReadAllText("/proc/loadavg").Split(' ')[0]}");
        for (int v = 0; v < layouts.Count; v++)
            Console.WriteLine($"  {layouts[v].Name,-16} wall {bestWall[v],7:F2} ms {bytes / bestWall[v] / 1e6,6:F1} GB/s ({bestWall[0] / bestWall[v]:F3}×)   cpu {bestCpu[v],7:F2} ms {bytes / bestCpu[v] / 1e6,6:F1} GB/s-cpu ({bestCpu[0] / bestCpu[v]:F3}×)");
        foreach (Layout l in layouts.Where(l => l.Region != 0)) munmap(l.Region, l.Length);
    }

    private static byte*[] Pointers(TensorData[] matrices)
    {
        var p = new byte*[matrices.Length];
        for (int i = 0; i < p.Length; i++) p[i] = matrices[i].Data;
        return p;
    }

    private static long HugeKb(Layout l)
    {
        // AnonHugePages of the mapping that holds the copy.
        string start = l.Region.ToString("x");
        bool inside = false;
        foreach (string line in File.ReadLines("/proc/self/smaps"))
        {
            if (char.IsAsciiHexDigit(line[0]) && line.Contains('-')) inside = line.StartsWith(start + "-", StringComparison.Ordinal) || line.TrimStart('0').StartsWith(start.TrimStart('0') + "-", StringComparison.Ordinal);
            else if (inside && line.StartsWith("AnonHugePages:", StringComparison.Ordinal)) return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]);
        }
        return -1;
    }

    private static Layout Copy(TensorData[] matrices, long bytes, int blockBytes, bool huge, bool interleaved)
    {
        const long Huge = 2 << 20;
        nuint length = (nuint)((bytes + matrices.Length * 4096L + Huge - 1) / Huge * Huge + Huge);
        nint raw = mmap(0, length, 3, 0x22, -1, 0); // PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS
        if (raw == -1) throw new InvalidOperationException($"mmap failed: {Marshal.GetLastPInvokeError()}");
        byte* region = (byte*)((raw + Huge - 1) & ~(Huge - 1));
        if (madvise((nint)region, length - (nuint)Huge, huge ? MadvHugePage : MadvNoHugePage) != 0) throw new InvalidOperationException($"madvise failed: {Marshal.GetLastPInvokeError()}");
        var bases = new byte*[matrices.Length];
        byte* at = region;
        for (int i = 0; i < matrices.Length; i++)
        {
            TensorData m = matrices[i];
            bases[i] = at;
            long rowBytes = m.RowBytes;
            int blocks = (int)(rowBytes / blockBytes), groups = interleaved ? m.RowCount / 4 : 0;
            for (int g = 0; g < groups; g++)
                for (int b = 0; b < blocks; b++)
                    for (int r = 0; r < 4; r++)
                        Buffer.MemoryCopy(m.Data + (4L * g + r) * rowBytes + (long)b * blockBytes, at + 4L * g * rowBytes + (4L * b + r) * blockBytes, blockBytes, blockBytes);
            long plain = 4L * groups * rowBytes;
            Buffer.MemoryCopy(m.Data + plain, at + plain, m.ByteLength - plain, m.ByteLength - plain);
            at += (m.ByteLength + 4095) & ~4095L;
        }
        return new Layout { Name = (interleaved ? "ilv " : "rows ") + (huge ? "huge" : "4k"), Interleaved = interleaved, Bases = bases, Region = raw, Length = length };
    }

    /// <summary>One matrix's rows split into chunks of whole groups of four across the pool, as MatMul splits decode.</summary>
    private sealed class Work : IParallelWork
    {
        private readonly string _kernel;
        private readonly GgmlType _type;
        private readonly int _blockBytes;
        private readonly sbyte[] _planes;
        private readonly float[] _scales, _sums, _x, _placed;
        public readonly float[] Y;
        public long KernelNs;
        private int _n, _rows, _chunks, _splitFor = -1;
        private byte* _base;
        private bool _interleaved;

        public Work(string kernel, GgmlType type, int blockBytes, int maxIn, int maxOut)
        {
            (_kernel, _type, _blockBytes) = (kernel, type, blockBytes);
            _x = GC.AllocateArray<float>(maxIn, pinned: true);
            for (int i = 0; i < maxIn; i++) _x[i] = MathF.Sin(i * 0.37f);
            _planes = GC.AllocateArray<sbyte>(3 * maxIn, pinned: true);
            _scales = GC.AllocateArray<float>(maxIn / 256 + 1, pinned: true);
            _sums = GC.AllocateArray<float>(maxIn / 16, pinned: true);
            _placed = GC.AllocateArray<float>(maxIn / 32 * Quantized.Q4_0PreparedFloats + 1, pinned: true);
            Y = GC.AllocateArray<float>(maxOut, pinned: true);
        }

        public void Matrix(in TensorData m, byte* data, bool interleaved, int threads, int chunksPerThread)
        {
            _n = m.RowLength;
            _rows = m.RowCount;
            _base = data;
            _interleaved = interleaved;
            if (_splitFor != _n)
            {
                // The input prepared once per length (decode prepares it once per call: the same for every layout).
                fixed (float* x = _x, scales = _scales, sums = _sums, placed = _placed)
                fixed (sbyte* planes = _planes)
                {
                    if (_kernel == "q4_0") Quantized.PrepareQ4_0(x, _n, placed);
                    else
                    {
                        KQuantPlanes.Split(x, _n, planes, scales);
                        KQuantPlanes.SubBlockSums(x, _n, KQuantRows.SumWidth(_type), sums);
                    }
                }
                _splitFor = _n;
            }
            int groups = (_rows + 3) / 4;
            _chunks = Math.Clamp(chunksPerThread * threads, 1, groups);
            if (threads <= 1) Execute(0, 1);
            else WorkerPool.Shared.Run(this, _chunks, threads);
        }

        public void Execute(int chunk) => Execute(chunk, _chunks);

        private void Execute(int chunk, int chunks)
        {
            int groups = (_rows + 3) / 4;
            int start = (int)((long)groups * chunk / chunks) * 4, end = Math.Min(_rows, (int)((long)groups * (chunk + 1) / chunks) * 4);
            long rowBytes = GgmlTypeInfo.RowBytes(_type, _n);
            long t0 = ThreadNs();
            fixed (float* y = Y, scales = _scales, sums = _sums, placed = _placed)
            fixed (sbyte* planes = _planes)
                for (int o = start; o < end; o += 4)
                {
                    int rows = Math.Min(4, end - o);
                    byte* w = _base + o * rowBytes;
                    bool ilv = _interleaved && rows == 4;
                    long r = ilv ? _blockBytes : rowBytes, step = ilv ? 4 * _blockBytes : _blockBytes;
                    long ahead = ilv && s_ilvAhead >= 0 ? s_ilvAhead : rows * rowBytes;
                    if (_kernel == "wide") KQuantPlanesWide.Dot4(_type, w, r, step, ahead, rows, planes, scales, sums, _n, y + o);
                    else if (_kernel == "planes") KQuantPlanes.Dot4(_type, w, r, step, ahead, rows, planes, scales, sums, _n, y + o);
                    else if (_kernel == "q4_0" && rows == 4) Quantized.Dot4RowsNarrowQ4_0Placed(w, r, step, 4 * rowBytes, placed, _n, y + o);
                    else throw new NotSupportedException(_kernel);
                }
            Interlocked.Add(ref KernelNs, ThreadNs() - t0);
        }
    }
}
