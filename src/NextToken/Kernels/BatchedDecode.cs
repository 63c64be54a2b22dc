using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using NextToken.Tensors;

namespace NextToken.Kernels;

/// <summary>
/// Exact decode of several independent input rows at once (a server's streams): each group of
/// weight rows is unpacked or converted once and applied to every input, while each (row, input)
/// pair accumulates in exactly the order and lanes of the single-input decode kernel, so every
/// result is bit-identical to decoding that input alone. The single-input kernels, run once per
/// input, unpacked each weight block nBatch times: batched decode was compute-bound.
/// The kernels skip zeroing their stack buffers (<see cref="SkipLocalsInit"/>): each buffer is
/// written before it is read, and the accumulators in use are cleared explicitly.
/// </summary>
internal static unsafe class BatchedDecode
{
    /// <summary>Inputs per pass: their accumulators live on the stack (4 rows × 16 inputs × 64 bytes for Q8_0/Q4_0).</summary>
    public const int MaxInputs = 16;

    /// <summary>
    /// Whether <see cref="Rows"/> has a kernel for this type and row length at the chosen width.
    /// Q4_0 is left out while its single-input kernels are being rewritten (a batched form must
    /// follow their per-block math to stay bit-identical); the generic kernels take its format as they are.
    /// </summary>
    public static bool Handles(GgmlType type, int nIn, bool wide, bool narrow) =>
        (wide || narrow) && (type == GgmlType.Q8_0 && nIn % 32 == 0 || type == GgmlType.F32);

    /// <summary>
    /// Float32 rows, all of [rowStart, rowEnd): each (row, input) pair gets exactly
    /// <see cref="Dot.F32"/> (same accumulators, tails and reduction), computed two rows × two
    /// inputs at a time with AVX-512 (16 accumulators; each loaded vector used twice, where a lone
    /// dot loads two vectors per multiply-add) or two rows × one input with 256-bit vectors (16 registers);
    /// a lone input (a decode step) four rows at a time with AVX-512, three with 256-bit vectors, taken from that many stretches of
    /// the range (<see cref="RowStreams"/>). Each row prefetches its own data.
    /// </summary>
    /// <param name="narrowRows">3, or 2 for the kernel before issue #13 (benchmarks); <paramref name="narrowAhead"/> floats prefetched ahead.</param>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void F32Rows(float* w, int n, float* x, float* y, int nBatch, int nOut, int rowStart, int rowEnd, int narrowRows = 3, int narrowAhead = NarrowAheadFloats)
    {
        bool wide = Vector512.IsHardwareAccelerated && n >= 16, narrow = !wide && Vector256.IsHardwareAccelerated && n >= 8; // Dot.F32's choice
        int o = rowStart;
        float* pass = stackalloc float[4];
        if (wide && nBatch == 1) // a lone decode step: four rows per pass, x loaded once for them, from four stretches (RowStreams)
        {
            if (RowStreams.Stretch(rowEnd - o, 4) is int q and > 0)
            {
                for (int i = 0; i < q; i++)
                {
                    F32Tile4x1Wide(w + (long)(o + i) * n, (long)q * n, n, x, pass);
                    RowStreams.Scatter(pass, 4, y + o + i, q);
                }
                o += 4 * q;
            }
            for (; o + 4 <= rowEnd; o += 4)
                F32Tile4x1Wide(w + (long)o * n, n, n, x, y + o);
        }
        if (narrow && nBatch == 1 && narrowRows == 3) // a lone decode step with 256-bit vectors: 12 accumulators, three rows' streams
        {
            if (RowStreams.Stretch(rowEnd - o, 3) is int q and > 0)
            {
                for (int i = 0; i < q; i++)
                {
                    F32Tile3x1Narrow(w + (long)(o + i) * n, (long)q * n, n, x, pass, narrowAhead);
                    RowStreams.Scatter(pass, 3, y + o + i, q);
                }
                o += 3 * q;
            }
            for (; o + 3 <= rowEnd; o += 3)
                F32Tile3x1Narrow(w + (long)o * n, n, n, x, y + o, narrowAhead);
        }
        for (; o + 2 <= rowEnd && (wide || narrow); o += 2)
        {
            float* w0 = w + (long)o * n, w1 = w0 + n;
            int b = 0;
            if (wide)
                for (; b + 2 <= nBatch; b += 2)
                    F32Tile2x2Wide(w0, w1, x + (long)b * n, x + (long)(b + 1) * n, n, y + (long)b * nOut + o, y + (long)(b + 1) * nOut + o);
            for (; b < nBatch; b++)
            {
                float* yb = y + (long)b * nOut + o;
                if (wide) yb[0] = Dot.F32(new ReadOnlySpan<float>(w0, n), new ReadOnlySpan<float>(x + (long)b * n, n));
                else F32Tile2x1Narrow(w0, w1, x + (long)b * n, n, yb, narrowAhead);
                if (wide) yb[1] = Dot.F32(new ReadOnlySpan<float>(w1, n), new ReadOnlySpan<float>(x + (long)b * n, n));
            }
        }
        for (; o < rowEnd; o++)
            for (int b = 0; b < nBatch; b++)
                y[(long)b * nOut + o] = Dot.F32(new ReadOnlySpan<float>(w + (long)o * n, n), new ReadOnlySpan<float>(x + (long)b * n, n));
    }

    /// <summary>ya[0…1] = w0·xa, w1·xa and yb[0…1] = w0·xb, w1·xb, each as <see cref="Dot.F32"/> computes it with AVX-512.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void F32Tile2x2Wide(float* w0, float* w1, float* xa, float* xb, int n, float* ya, float* yb)
    {
        // p: w0·xa, q: w1·xa, r: w0·xb, s: w1·xb; accumulator k takes the k-th 16 of every 64, as Dot.F32's a0…a3.
        Vector512<float> p0 = default, p1 = default, p2 = default, p3 = default, q0 = default, q1 = default, q2 = default, q3 = default;
        Vector512<float> r0 = default, r1 = default, r2 = default, r3 = default, s0 = default, s1 = default, s2 = default, s3 = default;
        int i = 0;
        for (; i + 64 <= n; i += 64)
        {
            Step(i, ref p0, ref q0, ref r0, ref s0);
            Step(i + 16, ref p1, ref q1, ref r1, ref s1);
            Step(i + 32, ref p2, ref q2, ref r2, ref s2);
            Step(i + 48, ref p3, ref q3, ref r3, ref s3);
        }
        for (; i + 16 <= n; i += 16) Step(i, ref p0, ref q0, ref r0, ref s0);
        float sp = Vector512.Sum((p0 + p1) + (p2 + p3)), sq = Vector512.Sum((q0 + q1) + (q2 + q3));
        float sr = Vector512.Sum((r0 + r1) + (r2 + r3)), ss = Vector512.Sum((s0 + s1) + (s2 + s3));
        for (; i < n; i++)
        {
            sp = MathF.FusedMultiplyAdd(w0[i], xa[i], sp); sq = MathF.FusedMultiplyAdd(w1[i], xa[i], sq);
            sr = MathF.FusedMultiplyAdd(w0[i], xb[i], sr); ss = MathF.FusedMultiplyAdd(w1[i], xb[i], ss);
        }
        ya[0] = sp; ya[1] = sq; yb[0] = sr; yb[1] = ss;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        void Step(int at, ref Vector512<float> p, ref Vector512<float> q, ref Vector512<float> r, ref Vector512<float> s)
        {
            Vector512<float> u = Vector512.Load(w0 + at), v = Vector512.Load(w1 + at), a = Vector512.Load(xa + at), c = Vector512.Load(xb + at);
            p = Vector512.FusedMultiplyAdd(u, a, p); q = Vector512.FusedMultiplyAdd(v, a, q);
            r = Vector512.FusedMultiplyAdd(u, c, r); s = Vector512.FusedMultiplyAdd(v, c, s);
        }
    }

    /// <summary>
    /// How far ahead (in floats) each row prefetches its own data: 512 bytes, as <see cref="HalfRows"/> does. Float32
    /// rows are read from the memory map, where the hardware prefetcher stops at every 4 KB page (issue #13: GPT-2 F32
    /// decode read row by row without it was 0.92× llama.cpp with AVX-512).
    /// </summary>
    private const int AheadFloats = 128;

    /// <summary>
    /// The 256-bit kernels' distance: 1.5 KB per row. Issue #13 on a Zen 5 (one thread streaming GPT-2's and Llama 135M's
    /// float32 matrices from memory, min CPU time of 12): two rows 128 floats ahead read 20–21 GB/s, 512 ahead 23–24,
    /// three rows 256–384 ahead 24–28 — too few lines in flight to cover memory latency before.
    /// </summary>
    private const int NarrowAheadFloats = 384;

    /// <summary>The float offset (from each row's start) to prefetch at i: <see cref="AheadFloats"/> on, or past the row's end the same place <paramref name="following"/> on.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static long Ahead(int i, int n, long following) => i + AheadFloats < n ? i + AheadFloats : i + AheadFloats - n + following;

    /// <summary>y[0…3] = w_r·x for the four rows w0, w0 + s, …, each as <see cref="Dot.F32"/> computes it with AVX-512.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void F32Tile4x1Wide(float* w0, long s, int n, float* x, float* y)
    {
        float* w1 = w0 + s, w2 = w1 + s, w3 = w2 + s;
        long following = RowStreams.Following(s, n, 4);
        // Row r's accumulator k takes the k-th 16 of every 64, as Dot.F32's a0…a3.
        Vector512<float> p0 = default, p1 = default, p2 = default, p3 = default, q0 = default, q1 = default, q2 = default, q3 = default;
        Vector512<float> r0 = default, r1 = default, r2 = default, r3 = default, s0 = default, s1 = default, s2 = default, s3 = default;
        int i = 0;
        for (; i + 64 <= n; i += 64)
        {
            Step(i, ref p0, ref q0, ref r0, ref s0);
            Step(i + 16, ref p1, ref q1, ref r1, ref s1);
            Step(i + 32, ref p2, ref q2, ref r2, ref s2);
            Step(i + 48, ref p3, ref q3, ref r3, ref s3);
        }
        for (; i + 16 <= n; i += 16) Step(i, ref p0, ref q0, ref r0, ref s0);
        float sp = Vector512.Sum((p0 + p1) + (p2 + p3)), sq = Vector512.Sum((q0 + q1) + (q2 + q3));
        float sr = Vector512.Sum((r0 + r1) + (r2 + r3)), ss = Vector512.Sum((s0 + s1) + (s2 + s3));
        for (; i < n; i++)
        {
            sp = MathF.FusedMultiplyAdd(w0[i], x[i], sp); sq = MathF.FusedMultiplyAdd(w1[i], x[i], sq);
            sr = MathF.FusedMultiplyAdd(w2[i], x[i], sr); ss = MathF.FusedMultiplyAdd(w3[i], x[i], ss);
        }
        y[0] = sp; y[1] = sq; y[2] = sr; y[3] = ss;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        void Step(int at, ref Vector512<float> p, ref Vector512<float> q, ref Vector512<float> r, ref Vector512<float> s)
        {
            long ahead = Ahead(at, n, following); // a line of each row per 16 values
            RowStreams.Prefetch(w0 + ahead); RowStreams.Prefetch(w1 + ahead); RowStreams.Prefetch(w2 + ahead); RowStreams.Prefetch(w3 + ahead);
            Vector512<float> a = Vector512.Load(x + at);
            p = Vector512.FusedMultiplyAdd(Vector512.Load(w0 + at), a, p); q = Vector512.FusedMultiplyAdd(Vector512.Load(w1 + at), a, q);
            r = Vector512.FusedMultiplyAdd(Vector512.Load(w2 + at), a, r); s = Vector512.FusedMultiplyAdd(Vector512.Load(w3 + at), a, s);
        }
    }

    /// <summary>
    /// y[0…2] = w_r·x for the three rows w0, w0 + s, w0 + 2s, each as <see cref="Dot.F32"/> computes it with 256-bit vectors:
    /// 12 accumulators and x loaded once for three rows (four rows would need 16 accumulators, all of AVX2's registers).
    /// The F32 kernels prefetch into L2 on a Zen 4, into L1 elsewhere (<see cref="RowStreams.Prefetch"/>): there one thread
    /// read GPT-2's matrices at 13 GB/s prefetching into L1 and 21–24 into L2 (<c>--alternate-f32</c>, sixteenth session).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void F32Tile3x1Narrow(float* w0, long s, int n, float* x, float* y, int dist)
    {
        float* w1 = w0 + s, w2 = w1 + s;
        long following = RowStreams.Following(s, n, 3);
        Vector256<float> p0 = default, p1 = default, p2 = default, p3 = default, q0 = default, q1 = default, q2 = default, q3 = default;
        Vector256<float> r0 = default, r1 = default, r2 = default, r3 = default;
        int i = 0;
        for (; i + 32 <= n; i += 32)
        {
            long ahead = i + dist < n ? i + dist : i + dist - n + following; // the 128 bytes of each row dist on, or of the row it takes next
            RowStreams.Prefetch(w0 + ahead); RowStreams.Prefetch(w0 + ahead + 16); RowStreams.Prefetch(w1 + ahead); RowStreams.Prefetch(w1 + ahead + 16);
            RowStreams.Prefetch(w2 + ahead); RowStreams.Prefetch(w2 + ahead + 16);
            Step(i, ref p0, ref q0, ref r0);
            Step(i + 8, ref p1, ref q1, ref r1);
            Step(i + 16, ref p2, ref q2, ref r2);
            Step(i + 24, ref p3, ref q3, ref r3);
        }
        for (; i + 8 <= n; i += 8) Step(i, ref p0, ref q0, ref r0);
        float sp = Vector256.Sum((p0 + p1) + (p2 + p3)), sq = Vector256.Sum((q0 + q1) + (q2 + q3)), sr = Vector256.Sum((r0 + r1) + (r2 + r3));
        for (; i < n; i++)
        {
            sp = MathF.FusedMultiplyAdd(w0[i], x[i], sp); sq = MathF.FusedMultiplyAdd(w1[i], x[i], sq); sr = MathF.FusedMultiplyAdd(w2[i], x[i], sr);
        }
        y[0] = sp; y[1] = sq; y[2] = sr;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        void Step(int at, ref Vector256<float> p, ref Vector256<float> q, ref Vector256<float> r)
        {
            Vector256<float> a = Vector256.Load(x + at);
            p = Vector256.FusedMultiplyAdd(Vector256.Load(w0 + at), a, p); q = Vector256.FusedMultiplyAdd(Vector256.Load(w1 + at), a, q);
            r = Vector256.FusedMultiplyAdd(Vector256.Load(w2 + at), a, r);
        }
    }

    /// <summary>y[0…1] = w0·x, w1·x, each as <see cref="Dot.F32"/> computes it with 256-bit vectors.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void F32Tile2x1Narrow(float* w0, float* w1, float* x, int n, float* y, int dist)
    {
        Vector256<float> p0 = default, p1 = default, p2 = default, p3 = default, q0 = default, q1 = default, q2 = default, q3 = default;
        int i = 0;
        for (; i + 32 <= n; i += 32)
        {
            long ahead = i + dist < n ? i + dist : i + dist - n + 2L * n; // the 128 bytes of each row dist on
            RowStreams.Prefetch(w0 + ahead); RowStreams.Prefetch(w0 + ahead + 16); RowStreams.Prefetch(w1 + ahead); RowStreams.Prefetch(w1 + ahead + 16);
            Step(i, ref p0, ref q0);
            Step(i + 8, ref p1, ref q1);
            Step(i + 16, ref p2, ref q2);
            Step(i + 24, ref p3, ref q3);
        }
        for (; i + 8 <= n; i += 8) Step(i, ref p0, ref q0);
        float sp = Vector256.Sum((p0 + p1) + (p2 + p3)), sq = Vector256.Sum((q0 + q1) + (q2 + q3));
        for (; i < n; i++)
        {
            sp = MathF.FusedMultiplyAdd(w0[i], x[i], sp); sq = MathF.FusedMultiplyAdd(w1[i], x[i], sq);
        }
        y[0] = sp; y[1] = sq;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        void Step(int at, ref Vector256<float> p, ref Vector256<float> q)
        {
            Vector256<float> a = Vector256.Load(x + at);
            p = Vector256.FusedMultiplyAdd(Vector256.Load(w0 + at), a, p); q = Vector256.FusedMultiplyAdd(Vector256.Load(w1 + at), a, q);
        }
    }

    /// <summary>
    /// y[b, o] for every input b (x and y rows nIn and nOut floats apart) and o from
    /// <paramref name="rowStart"/>: every row for F32, whole groups of four rows for Q8_0; returns
    /// the first row not computed (the caller takes the last 1–3 rows one at a time, as a batch of one does).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static int Rows(in TensorData weight, bool wide, float* x, float* y, int nBatch, int rowStart, int rowEnd)
    {
        int nIn = weight.RowLength, nOut = weight.RowCount;
        long rowBytes = weight.RowBytes;
        if (weight.Type == GgmlType.F32)
        {
            F32Rows((float*)weight.Data, nIn, x, y, nBatch, nOut, rowStart, rowEnd);
            return rowEnd;
        }
        int o = rowStart;
        for (; o + 4 <= rowEnd; o += 4)
            Quantized.Dot4RowsBatch(weight.Type, wide, weight.Data + o * rowBytes, rowBytes, x, nIn, nBatch, y + o, nOut);
        return o;
    }
}

public static unsafe partial class Quantized
{
    /// <summary>
    /// <see cref="Dot4RowsWide"/> (<paramref name="wide"/>) or <see cref="Dot4RowsNarrow"/> for
    /// <paramref name="nBatch"/> inputs n floats apart: y[b·yStride + r] gets bit for bit what the
    /// single-input kernel gives input b, each block of the four rows unpacked once for all inputs.
    /// </summary>
    internal static void Dot4RowsBatch(GgmlType type, bool wide, byte* w, long rowBytes, float* x, int n, int nBatch, float* y, long yStride)
    {
        for (int start = 0; start < nBatch; start += BatchedDecode.MaxInputs)
        {
            int count = Math.Min(BatchedDecode.MaxInputs, nBatch - start);
            float* xs = x + (long)start * n, ys = y + start * yStride;
            switch (type, wide)
            {
                case (GgmlType.Q8_0, true): Dot4RowsWideBatch<Q8_0Floats>(w, rowBytes, xs, n, count, ys, yStride); break;
                case (GgmlType.Q8_0, false): Dot4RowsNarrowBatch<Q8_0Floats>(w, rowBytes, xs, n, count, ys, yStride); break;
                default: throw new NotSupportedException($"no batched decode kernel for {type}");
            }
        }
    }

    /// <summary>
    /// Per block: the four rows' 32 values (two vectors each) and scales stay in registers while
    /// every input's two x vectors and offset are loaded and its four accumulators (on the stack)
    /// updated by the chain of <see cref="BlockTimes{TFormat}(byte*, Vector512{float}, Vector512{float}, Vector512{float}, float*, Vector512{float})"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization), SkipLocalsInit]
    private static void Dot4RowsWideBatch<TFormat>(byte* w, long rowBytes, float* x, int n, int nBatch, float* y, long yStride) where TFormat : struct, IBlockFloats
    {
        float* halves = HalfTable.Pointer;
        int blocks = n / 32;
        int prefetchStride = 4 * TFormat.Bytes;
        byte* w1 = w + rowBytes, w2 = w + 2 * rowBytes, w3 = w + 3 * rowBytes, next = w + 4 * rowBytes;
        Vector512<float>* acc = stackalloc Vector512<float>[4 * BatchedDecode.MaxInputs];
        for (int i = 0; i < 4 * nBatch; i++) acc[i] = default;
        for (int b = 0; b < blocks; b++)
        {
            for (int line = 0; line < prefetchStride; line += 64) System.Runtime.Intrinsics.X86.Sse.Prefetch0(next + b * prefetchStride + line);
            int at = b * TFormat.Bytes;
            (Vector512<float> l0, Vector512<float> u0) = TFormat.StoredValues(w + at);
            (Vector512<float> l1, Vector512<float> u1) = TFormat.StoredValues(w1 + at);
            (Vector512<float> l2, Vector512<float> u2) = TFormat.StoredValues(w2 + at);
            (Vector512<float> l3, Vector512<float> u3) = TFormat.StoredValues(w3 + at);
            var d0 = Vector512.Create(HalfTable.ToSingle(halves, ref *(w + at)));
            var d1 = Vector512.Create(HalfTable.ToSingle(halves, ref *(w1 + at)));
            var d2 = Vector512.Create(HalfTable.ToSingle(halves, ref *(w2 + at)));
            var d3 = Vector512.Create(HalfTable.ToSingle(halves, ref *(w3 + at)));
            float* xb = x + b * 32;
            Vector512<float>* a = acc;
            for (int i = 0; i < nBatch; i++, xb += n, a += 4)
            {
                var x0 = Vector512.Load(xb);
                var x1 = Vector512.Load(xb + 16);
                Vector512<float> offset = TFormat.Offset(x0, x1);
                a[0] = BlockTimes(l0, u0, d0, x0, x1, offset, a[0]);
                a[1] = BlockTimes(l1, u1, d1, x0, x1, offset, a[1]);
                a[2] = BlockTimes(l2, u2, d2, x0, x1, offset, a[2]);
                a[3] = BlockTimes(l3, u3, d3, x0, x1, offset, a[3]);
            }
        }
        for (int i = 0; i < nBatch; i++)
        {
            float* yi = y + i * yStride;
            yi[0] = Vector512.Sum(acc[4 * i]); yi[1] = Vector512.Sum(acc[4 * i + 1]); yi[2] = Vector512.Sum(acc[4 * i + 2]); yi[3] = Vector512.Sum(acc[4 * i + 3]);
        }
    }

    /// <summary>
    /// The AVX2 form: a block's four rows × four 8-lane vectors and scales would not fit in 16
    /// registers, so they are unpacked once into a stack buffer that every input reads (as memory
    /// operands of its multiply-adds).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization), SkipLocalsInit]
    private static void Dot4RowsNarrowBatch<TFormat>(byte* w, long rowBytes, float* x, int n, int nBatch, float* y, long yStride) where TFormat : struct, IBlockFloats
    {
        float* halves = HalfTable.Pointer;
        int blocks = n / 32;
        int prefetchStride = 4 * TFormat.Bytes;
        byte* next = w + 4 * rowBytes;
        Vector256<float>* acc = stackalloc Vector256<float>[4 * BatchedDecode.MaxInputs];
        Vector256<float>* v = stackalloc Vector256<float>[4 * 5]; // per row: four value vectors, then the scale
        for (int i = 0; i < 4 * nBatch; i++) acc[i] = default;
        for (int b = 0; b < blocks; b++)
        {
            for (int line = 0; line < prefetchStride; line += 64) System.Runtime.Intrinsics.X86.Sse.Prefetch0(next + b * prefetchStride + line);
            int at = b * TFormat.Bytes;
            for (int r = 0; r < 4; r++)
            {
                byte* block = w + r * rowBytes + at;
                (v[5 * r], v[5 * r + 1], v[5 * r + 2], v[5 * r + 3]) = TFormat.StoredValues8(block);
                v[5 * r + 4] = Vector256.Create(HalfTable.ToSingle(halves, ref *block));
            }
            float* xb = x + b * 32;
            Vector256<float>* a = acc;
            for (int i = 0; i < nBatch; i++, xb += n, a += 4)
            {
                var x0 = Vector256.Load(xb);
                var x1 = Vector256.Load(xb + 8);
                var x2 = Vector256.Load(xb + 16);
                var x3 = Vector256.Load(xb + 24);
                Vector256<float> offset = TFormat.Offset((x0 + x1) + (x2 + x3));
                a[0] = BlockTimes(v, x0, x1, x2, x3, offset, a[0]);
                a[1] = BlockTimes(v + 5, x0, x1, x2, x3, offset, a[1]);
                a[2] = BlockTimes(v + 10, x0, x1, x2, x3, offset, a[2]);
                a[3] = BlockTimes(v + 15, x0, x1, x2, x3, offset, a[3]);
            }
        }
        for (int i = 0; i < nBatch; i++)
        {
            float* yi = y + i * yStride;
            yi[0] = Vector256.Sum(acc[4 * i]); yi[1] = Vector256.Sum(acc[4 * i + 1]); yi[2] = Vector256.Sum(acc[4 * i + 2]); yi[3] = Vector256.Sum(acc[4 * i + 3]);
        }
    }

    /// <summary>
    /// The chain of <see cref="BlockTimes{TFormat}(byte*, Vector512{float}, Vector512{float}, Vector512{float}, float*, Vector512{float})"/>
    /// on values already unpacked; the two must stay the same expression (the batched tests compare bit for bit).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> BlockTimes(Vector512<float> lower, Vector512<float> upper, Vector512<float> d, Vector512<float> x0, Vector512<float> x1,
                                              Vector512<float> offset, Vector512<float> total)
    {
        Vector512<float> sum = Vector512.FusedMultiplyAdd(upper, x1, Vector512.FusedMultiplyAdd(lower, x0, offset));
        return Vector512.FusedMultiplyAdd(sum, d, total);
    }

    /// <summary>The 8-lane chain of the AVX2 BlockTimes on a row's unpacked values v[0…3] and scale v[4].</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> BlockTimes(Vector256<float>* v, Vector256<float> x0, Vector256<float> x1, Vector256<float> x2, Vector256<float> x3,
                                              Vector256<float> offset, Vector256<float> total)
    {
        // One chain, as Quantized's four-row AVX2 kernel (Chain), so each input gets its bits.
        Vector256<float> sum = Vector256.FusedMultiplyAdd(v[0], x0, offset);
        sum = Vector256.FusedMultiplyAdd(v[1], x1, sum);
        sum = Vector256.FusedMultiplyAdd(v[2], x2, sum);
        sum = Vector256.FusedMultiplyAdd(v[3], x3, sum);
        return Vector256.FusedMultiplyAdd(sum, v[4], total);
    }
}

internal static unsafe partial class KQuantRows
{
    /// <summary>Whether <see cref="Dot4Batch"/> has a kernel for this type.</summary>
    public static bool HandlesBatch(GgmlType type) => type is GgmlType.Q4_K or GgmlType.Q6_K;

    /// <summary>
    /// <see cref="Dot4"/> for <paramref name="nBatch"/> inputs n floats apart (their sub-block sums
    /// <paramref name="perInput"/> apart): y[b·yStride + r] gets bit for bit what Dot4 gives input b.
    /// Each super-block's scales and values are unpacked once for the four rows into a stack buffer
    /// (4 KB), which every input then reads while its accumulators stay in registers for the block.
    /// </summary>
    public static void Dot4Batch(GgmlType type, bool wide, byte* w, long rowBytes, int rows, float* x, float* sums, int perInput, int n, int nBatch, float* y, long yStride)
    {
        if (rows is < 1 or > 4) throw new ArgumentOutOfRangeException(nameof(rows), rows, "1 to 4 rows");
        byte* w1 = rows > 1 ? w + rowBytes : w, w2 = rows > 2 ? w + 2 * rowBytes : w, w3 = rows > 3 ? w + 3 * rowBytes : w;
        int blocks = n / 256;
        for (int start = 0; start < nBatch; start += BatchedDecode.MaxInputs)
        {
            int count = Math.Min(BatchedDecode.MaxInputs, nBatch - start);
            float* xs = x + (long)start * n, ss = sums + (long)start * perInput, ys = y + start * yStride;
            switch (type)
            {
                case GgmlType.Q4_K when wide: Q4KWideBatch(w, w1, w2, w3, rows * rowBytes, xs, n, ss, perInput, blocks, count, ys, yStride, rows); break;
                case GgmlType.Q4_K: Q4KNarrowBatch(w, w1, w2, w3, rows * rowBytes, xs, n, ss, perInput, blocks, count, ys, yStride, rows); break;
                case GgmlType.Q6_K when wide: Q6KWideBatch(w, w1, w2, w3, rows * rowBytes, xs, n, ss, perInput, blocks, count, ys, yStride, rows); break;
                case GgmlType.Q6_K: Q6KNarrowBatch(w, w1, w2, w3, rows * rowBytes, xs, n, ss, perInput, blocks, count, ys, yStride, rows); break;
                default: throw new NotSupportedException($"no batched K-quant kernel for {type}");
            }
        }
    }

    /// <summary>Batched <see cref="Q4KWide"/>: per super-block the 4 rows × 4 groups × 4 value vectors (<see cref="Q4KValues"/>) once, then each input's chains.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization), SkipLocalsInit]
    private static void Q4KWideBatch(byte* w0, byte* w1, byte* w2, byte* w3, long groupBytes, float* x, int n, float* sums, int perInput, int blocks, int nBatch, float* y, long yStride, int rows)
    {
        float* halves = HalfTable.Pointer;
        float* s = stackalloc float[4 * 16];
        Vector512<float>* v = stackalloc Vector512<float>[4 * 16]; // row r, group g: v[16r + 4g …]
        Vector512<float>* acc = stackalloc Vector512<float>[4 * BatchedDecode.MaxInputs];
        Vector256<float>* offsets = stackalloc Vector256<float>[4 * BatchedDecode.MaxInputs];
        for (int i = 0; i < 4 * nBatch; i++) { acc[i] = default; offsets[i] = default; }
        byte** row = stackalloc byte*[4] { w0, w1, w2, w3 };
        byte* next = w0 + groupBytes;
        int stride = (int)(groupBytes / blocks);
        for (int b = 0; b < blocks; b++)
        {
            Prefetch(next + (long)b * stride, stride);
            int at = b * 144;
            for (int r = 0; r < 4; r++)
            {
                ChunkedQuant.ScalesK4(row[r] + at, halves, s + 16 * r, s + 16 * r + 8);
                for (int g = 0; g < 4; g++)
                    (v[16 * r + 4 * g], v[16 * r + 4 * g + 1], v[16 * r + 4 * g + 2], v[16 * r + 4 * g + 3]) = Q4KValues(row[r] + at + 16 + 32 * g);
            }
            for (int i = 0; i < nBatch; i++)
            {
                Vector256<float> xs = Vector256.Load(sums + (long)i * perInput + 8 * b);
                Vector256<float>* m = offsets + 4 * i;
                m[0] = Vector256.FusedMultiplyAdd(Vector256.Load(s + 8), xs, m[0]);
                m[1] = Vector256.FusedMultiplyAdd(Vector256.Load(s + 24), xs, m[1]);
                m[2] = Vector256.FusedMultiplyAdd(Vector256.Load(s + 40), xs, m[2]);
                m[3] = Vector256.FusedMultiplyAdd(Vector256.Load(s + 56), xs, m[3]);
                Vector512<float> a0 = acc[4 * i], a1 = acc[4 * i + 1], a2 = acc[4 * i + 2], a3 = acc[4 * i + 3];
                float* xb = x + (long)i * n + 256 * b;
                for (int g = 0; g < 4; g++)
                {
                    Vector512<float> x0 = Vector512.Load(xb + 64 * g), x1 = Vector512.Load(xb + 64 * g + 16);
                    Vector512<float> x2 = Vector512.Load(xb + 64 * g + 32), x3 = Vector512.Load(xb + 64 * g + 48);
                    Vector512<float>* vg = v + 4 * g;
                    a0 = Q4KGroup(vg[0], vg[1], vg[2], vg[3], x0, x1, x2, x3, s + 2 * g, a0);
                    a1 = Q4KGroup(vg[16], vg[17], vg[18], vg[19], x0, x1, x2, x3, s + 16 + 2 * g, a1);
                    a2 = Q4KGroup(vg[32], vg[33], vg[34], vg[35], x0, x1, x2, x3, s + 32 + 2 * g, a2);
                    a3 = Q4KGroup(vg[48], vg[49], vg[50], vg[51], x0, x1, x2, x3, s + 48 + 2 * g, a3);
                }
                acc[4 * i] = a0; acc[4 * i + 1] = a1; acc[4 * i + 2] = a2; acc[4 * i + 3] = a3;
            }
        }
        for (int i = 0; i < nBatch; i++)
            for (int r = 0; r < rows; r++) y[i * yStride + r] = Vector512.Sum(acc[4 * i + r]) + Vector256.Sum(offsets[4 * i + r]);
    }

    /// <summary>Batched <see cref="Q4KNarrow"/>: per super-block the 4 rows × 8 half groups × 4 value vectors once (4 KB), then each input's chains.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization), SkipLocalsInit]
    private static void Q4KNarrowBatch(byte* w0, byte* w1, byte* w2, byte* w3, long groupBytes, float* x, int n, float* sums, int perInput, int blocks, int nBatch, float* y, long yStride, int rows)
    {
        float* halves = HalfTable.Pointer;
        float* s = stackalloc float[4 * 16];
        Vector256<float>* v = stackalloc Vector256<float>[4 * 32]; // row r, half group h: v[32r + 4h …]
        Vector256<float>* acc = stackalloc Vector256<float>[4 * BatchedDecode.MaxInputs];
        for (int i = 0; i < 4 * nBatch; i++) acc[i] = default;
        byte** row = stackalloc byte*[4] { w0, w1, w2, w3 };
        byte* next = w0 + groupBytes;
        int stride = (int)(groupBytes / blocks);
        for (int b = 0; b < blocks; b++)
        {
            Prefetch(next + (long)b * stride, stride);
            int at = b * 144;
            for (int r = 0; r < 4; r++)
            {
                ChunkedQuant.ScalesK4(row[r] + at, halves, s + 16 * r, s + 16 * r + 8);
                for (int h = 0; h < 8; h++)
                    (v[32 * r + 4 * h], v[32 * r + 4 * h + 1], v[32 * r + 4 * h + 2], v[32 * r + 4 * h + 3]) = Q4KHalfValues(row[r] + at + 16 + 32 * (h >> 1) + 16 * (h & 1));
            }
            Q4KSixteenths(s); // as Q4KNarrow: the high nibbles come as 16·n
            for (int i = 0; i < nBatch; i++)
            {
                Vector256<float> xs = Vector256.Load(sums + (long)i * perInput + 8 * b);
                Vector256<float> a0 = Vector256.FusedMultiplyAdd(Vector256.Load(s + 8), xs, acc[4 * i]);
                Vector256<float> a1 = Vector256.FusedMultiplyAdd(Vector256.Load(s + 24), xs, acc[4 * i + 1]);
                Vector256<float> a2 = Vector256.FusedMultiplyAdd(Vector256.Load(s + 40), xs, acc[4 * i + 2]);
                Vector256<float> a3 = Vector256.FusedMultiplyAdd(Vector256.Load(s + 56), xs, acc[4 * i + 3]);
                float* xb = x + (long)i * n + 256 * b;
                for (int h = 0; h < 8; h++)
                {
                    int g = h >> 1, l = 16 * (h & 1);
                    Vector256<float> x0 = Vector256.Load(xb + 64 * g + l), x1 = Vector256.Load(xb + 64 * g + l + 8);
                    Vector256<float> x2 = Vector256.Load(xb + 64 * g + 32 + l), x3 = Vector256.Load(xb + 64 * g + 40 + l);
                    Vector256<float>* vh = v + 4 * h;
                    a0 = Q4KHalfGroup(vh[0], vh[1], vh[2], vh[3], x0, x1, x2, x3, s + 2 * g, a0);
                    a1 = Q4KHalfGroup(vh[32], vh[33], vh[34], vh[35], x0, x1, x2, x3, s + 16 + 2 * g, a1);
                    a2 = Q4KHalfGroup(vh[64], vh[65], vh[66], vh[67], x0, x1, x2, x3, s + 32 + 2 * g, a2);
                    a3 = Q4KHalfGroup(vh[96], vh[97], vh[98], vh[99], x0, x1, x2, x3, s + 48 + 2 * g, a3);
                }
                acc[4 * i] = a0; acc[4 * i + 1] = a1; acc[4 * i + 2] = a2; acc[4 * i + 3] = a3;
            }
        }
        for (int i = 0; i < nBatch; i++)
            for (int r = 0; r < rows; r++) y[i * yStride + r] = Vector256.Sum(acc[4 * i + r]);
    }

    /// <summary>
    /// Batched <see cref="Q6KWide"/>: per super-block each row's 16 scales d·sc (as <see cref="Q6KScales(byte*, float*, float*, Vector512{float}, Vector512{float})"/>
    /// stores them) and 4 steps × 4 value vectors (<see cref="Q6KValues"/>) once, then each input's chain.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization), SkipLocalsInit]
    private static void Q6KWideBatch(byte* w0, byte* w1, byte* w2, byte* w3, long groupBytes, float* x, int n, float* sums, int perInput, int blocks, int nBatch, float* y, long yStride, int rows)
    {
        float* halves = HalfTable.Pointer;
        float* s = stackalloc float[4 * 16];
        Vector512<float>* v = stackalloc Vector512<float>[4 * 16]; // row r, step t: v[16r + 4t …]
        Vector512<float>* acc = stackalloc Vector512<float>[4 * BatchedDecode.MaxInputs];
        for (int i = 0; i < 4 * nBatch; i++) acc[i] = default;
        byte** row = stackalloc byte*[4] { w0, w1, w2, w3 };
        byte* next = w0 + groupBytes;
        int stride = (int)(groupBytes / blocks);
        for (int b = 0; b < blocks; b++)
        {
            Prefetch(next + (long)b * stride, stride);
            int at = b * 210;
            for (int r = 0; r < 4; r++)
            {
                byte* block = row[r] + at;
                (Vector512.ConvertToSingle(Avx512F.ConvertToVector512Int32(Vector128.Load((sbyte*)block + 192))) * Vector512.Create(HalfTable.ToSingle(halves, ref block[208]))).Store(s + 16 * r);
                for (int t = 0; t < 4; t++)
                {
                    int h = t >> 1, l = 16 * (t & 1);
                    (v[16 * r + 4 * t], v[16 * r + 4 * t + 1], v[16 * r + 4 * t + 2], v[16 * r + 4 * t + 3]) = Q6KValues(block + 64 * h + l, block + 128 + 32 * h + l);
                }
            }
            for (int i = 0; i < nBatch; i++)
            {
                Vector512<float> xs = Vector512.Load(sums + (long)i * perInput + 16 * b) * Vector512.Create(-32f);
                Vector512<float> a0 = Vector512.FusedMultiplyAdd(Vector512.Load(s), xs, acc[4 * i]);
                Vector512<float> a1 = Vector512.FusedMultiplyAdd(Vector512.Load(s + 16), xs, acc[4 * i + 1]);
                Vector512<float> a2 = Vector512.FusedMultiplyAdd(Vector512.Load(s + 32), xs, acc[4 * i + 2]);
                Vector512<float> a3 = Vector512.FusedMultiplyAdd(Vector512.Load(s + 48), xs, acc[4 * i + 3]);
                float* xb = x + (long)i * n + 256 * b;
                for (int t = 0; t < 4; t++)
                {
                    int h = t >> 1, l = 16 * (t & 1), slot = 8 * h + (l >> 4);
                    float* xh = xb + 128 * h + l;
                    Vector512<float> x0 = Vector512.Load(xh), x1 = Vector512.Load(xh + 32), x2 = Vector512.Load(xh + 64), x3 = Vector512.Load(xh + 96);
                    Vector512<float>* vt = v + 4 * t;
                    a0 = Q6KStep(vt[0], vt[1], vt[2], vt[3], x0, x1, x2, x3, s + slot, a0);
                    a1 = Q6KStep(vt[16], vt[17], vt[18], vt[19], x0, x1, x2, x3, s + 16 + slot, a1);
                    a2 = Q6KStep(vt[32], vt[33], vt[34], vt[35], x0, x1, x2, x3, s + 32 + slot, a2);
                    a3 = Q6KStep(vt[48], vt[49], vt[50], vt[51], x0, x1, x2, x3, s + 48 + slot, a3);
                }
                acc[4 * i] = a0; acc[4 * i + 1] = a1; acc[4 * i + 2] = a2; acc[4 * i + 3] = a3;
            }
        }
        for (int i = 0; i < nBatch; i++)
            for (int r = 0; r < rows; r++) y[i * yStride + r] = Vector512.Sum(acc[4 * i + r]);
    }

    /// <summary>Batched <see cref="Q6KNarrow"/>: per super-block the scales and 4 rows × 8 steps × 4 value vectors once (4 KB), then each input's chain.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization), SkipLocalsInit]
    private static void Q6KNarrowBatch(byte* w0, byte* w1, byte* w2, byte* w3, long groupBytes, float* x, int n, float* sums, int perInput, int blocks, int nBatch, float* y, long yStride, int rows)
    {
        float* halves = HalfTable.Pointer;
        float* s = stackalloc float[4 * 16];
        Vector256<float>* v = stackalloc Vector256<float>[4 * 32]; // row r, step t: v[32r + 4t …]
        Vector256<float>* acc = stackalloc Vector256<float>[4 * BatchedDecode.MaxInputs];
        for (int i = 0; i < 4 * nBatch; i++) acc[i] = default;
        byte** row = stackalloc byte*[4] { w0, w1, w2, w3 };
        byte* next = w0 + groupBytes;
        int stride = (int)(groupBytes / blocks);
        for (int b = 0; b < blocks; b++)
        {
            Prefetch(next + (long)b * stride, stride);
            int at = b * 210;
            for (int r = 0; r < 4; r++)
            {
                byte* block = row[r] + at;
                var d = Vector256.Create(HalfTable.ToSingle(halves, ref block[208]));
                (Vector256.ConvertToSingle(Avx2.ConvertToVector256Int32((sbyte*)block + 192)) * d).Store(s + 16 * r);
                (Vector256.ConvertToSingle(Avx2.ConvertToVector256Int32((sbyte*)block + 200)) * d).Store(s + 16 * r + 8);
                for (int t = 0; t < 8; t++)
                {
                    int h = t >> 2, l = 8 * (t & 3);
                    (v[32 * r + 4 * t], v[32 * r + 4 * t + 1], v[32 * r + 4 * t + 2], v[32 * r + 4 * t + 3]) = Q6KValues8(block + 64 * h + l, block + 128 + 32 * h + l);
                }
            }
            for (int i = 0; i < nBatch; i++)
            {
                float* si = sums + (long)i * perInput + 16 * b;
                Vector256<float> xsLow = Vector256.Load(si) * Vector256.Create(-32f), xsHigh = Vector256.Load(si + 8) * Vector256.Create(-32f);
                Vector256<float> a0 = Vector256.FusedMultiplyAdd(Vector256.Load(s + 8), xsHigh, Vector256.FusedMultiplyAdd(Vector256.Load(s), xsLow, acc[4 * i]));
                Vector256<float> a1 = Vector256.FusedMultiplyAdd(Vector256.Load(s + 24), xsHigh, Vector256.FusedMultiplyAdd(Vector256.Load(s + 16), xsLow, acc[4 * i + 1]));
                Vector256<float> a2 = Vector256.FusedMultiplyAdd(Vector256.Load(s + 40), xsHigh, Vector256.FusedMultiplyAdd(Vector256.Load(s + 32), xsLow, acc[4 * i + 2]));
                Vector256<float> a3 = Vector256.FusedMultiplyAdd(Vector256.Load(s + 56), xsHigh, Vector256.FusedMultiplyAdd(Vector256.Load(s + 48), xsLow, acc[4 * i + 3]));
                float* xb = x + (long)i * n + 256 * b;
                for (int t = 0; t < 8; t++)
                {
                    int h = t >> 2, l = 8 * (t & 3), slot = 8 * h + (l >> 4);
                    float* xh = xb + 128 * h + l;
                    Vector256<float> x0 = Vector256.Load(xh), x1 = Vector256.Load(xh + 32), x2 = Vector256.Load(xh + 64), x3 = Vector256.Load(xh + 96);
                    Vector256<float>* vt = v + 4 * t;
                    a0 = Q6KStep(vt[0], vt[1], vt[2], vt[3], x0, x1, x2, x3, s + slot, a0);
                    a1 = Q6KStep(vt[32], vt[33], vt[34], vt[35], x0, x1, x2, x3, s + 16 + slot, a1);
                    a2 = Q6KStep(vt[64], vt[65], vt[66], vt[67], x0, x1, x2, x3, s + 32 + slot, a2);
                    a3 = Q6KStep(vt[96], vt[97], vt[98], vt[99], x0, x1, x2, x3, s + 48 + slot, a3);
                }
                acc[4 * i] = a0; acc[4 * i + 1] = a1; acc[4 * i + 2] = a2; acc[4 * i + 3] = a3;
            }
        }
        for (int i = 0; i < nBatch; i++)
            for (int r = 0; r < rows; r++) y[i * yStride + r] = Vector256.Sum(acc[4 * i + r]);
    }
}
