using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using NextToken.Tensors;

namespace NextToken.Kernels;

/// <summary>
/// Decode (batch of one) kernels for the K-quants of the common mixes (Q4_K_M is Q4_K + Q6_K), up
/// to four rows at a time, exact float32. A sub-block's value is q·s + o with one s and o per 16 or
/// 32 values, so its share of the dot is s·Σ q·x + o·Σ x: the Σ x of every sub-block is made once
/// per matrix call (<see cref="SubBlockSums"/>), a row's offsets then cost one vector multiply-add per
/// super-block, and each value costs only its unpacking, one conversion and one multiply-add.
/// Per row and 256 values (AVX-512): Q4_K 78 vector operations (64 for the values: per 64 values
/// two widening loads, two masks/shifts, four conversions, four multiply-adds, two scale
/// multiply-adds; 14 for the scales); Q6_K 109 (per 64 values three widening loads, eleven bit
/// operations, four conversions, eight multiply(-add)s; 5 for the scales). The generic chunked
/// kernel (<see cref="ChunkedQuant"/>) took 6 and 11 operations per 16 values plus its scalar
/// addressing. The next rows are prefetched, as in <see cref="Quantized.Dot4RowsWide"/>.
/// </summary>
internal static unsafe class KQuantRows
{
    public static bool Handles(GgmlType type) => type is GgmlType.Q4_K or GgmlType.Q6_K;

    /// <summary>How many values each Σ x of <see cref="SubBlockSums"/> covers for this type (its offsets' granularity).</summary>
    public static int SumWidth(GgmlType type) => type == GgmlType.Q6_K ? 16 : 32;

    /// <summary>sums[k] = Σ x[width·k … width·k + width − 1] for the n values of x.</summary>
    public static void SubBlockSums(float* x, int n, int width, float* sums)
    {
        for (int i = 0, k = 0; i < n; i += width, k++) sums[k] = TensorPrimitives.Sum(new ReadOnlySpan<float>(x + i, width));
    }

    /// <summary>
    /// y[0 … rows − 1] = rows w, w + rowBytes, … (n values each, n a multiple of 256) times x, with
    /// <paramref name="sums"/> from <see cref="SubBlockSums"/> at <see cref="SumWidth"/>; rows is 1 to 4.
    /// <paramref name="wide"/> picks AVX-512 (else AVX2 and FMA).
    /// </summary>
    public static void Dot4(GgmlType type, bool wide, byte* w, long rowBytes, int rows, float* x, float* sums, int n, float* y)
    {
        if (rows is < 1 or > 4) throw new ArgumentOutOfRangeException(nameof(rows), rows, "1 to 4 rows");
        // A missing row repeats row 0 (its result is not stored), so the loop has no branch per row.
        byte* w1 = rows > 1 ? w + rowBytes : w, w2 = rows > 2 ? w + 2 * rowBytes : w, w3 = rows > 3 ? w + 3 * rowBytes : w;
        var result = stackalloc float[4];
        int blocks = n / 256;
        switch (type)
        {
            case GgmlType.Q4_K when wide: Q4KWide(w, w1, w2, w3, rows * rowBytes, x, sums, blocks, result); break;
            case GgmlType.Q4_K: Q4KNarrow(w, w1, w2, w3, rows * rowBytes, x, sums, blocks, result); break;
            case GgmlType.Q6_K when wide: Q6KWide(w, w1, w2, w3, rows * rowBytes, x, sums, blocks, result); break;
            case GgmlType.Q6_K: Q6KNarrow(w, w1, w2, w3, rows * rowBytes, x, sums, blocks, result); break;
            default: throw new NotSupportedException($"no K-quant row kernel for {type}");
        }
        for (int r = 0; r < rows; r++) y[r] = result[r];
    }

    /// <summary>Prefetches the bytes of the rows after this group (they follow it contiguously) one block step ahead.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Prefetch(byte* next, int stride)
    {
        // The hardware prefetcher stops at the 4 KB pages of the mapped file.
        for (int line = 0; line < stride; line += 64) Sse.Prefetch0(next + line);
    }

    // ---- Q4_K: 144-byte super-blocks; f16 d, dmin, 12 bytes of 6-bit scales and mins, 128 bytes of nibbles.
    // Group g (0–3) is 32 bytes: low nibbles are values 64g + l, high nibbles 64g + 32 + l (sub-blocks 2g, 2g + 1).

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Q4KWide(byte* w0, byte* w1, byte* w2, byte* w3, long groupBytes, float* x, float* sums, int blocks, float* y)
    {
        float* halves = HalfTable.Pointer;
        float* s = stackalloc float[4 * 16]; // per row: 8 scales d·sc, then 8 offsets −dmin·m
        byte* next = w0 + groupBytes;
        int stride = (int)(groupBytes / blocks); // the following rows' bytes per block step
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
        Vector256<float> m0 = default, m1 = default, m2 = default, m3 = default; // the offsets' share (8 sub-blocks)
        for (int b = 0; b < blocks; b++)
        {
            Prefetch(next + (long)b * stride, stride);
            int at = b * 144;
            ChunkedQuant.ScalesK4(w0 + at, halves, s, s + 8);
            ChunkedQuant.ScalesK4(w1 + at, halves, s + 16, s + 24);
            ChunkedQuant.ScalesK4(w2 + at, halves, s + 32, s + 40);
            ChunkedQuant.ScalesK4(w3 + at, halves, s + 48, s + 56);
            Vector256<float> xs = Vector256.Load(sums + 8 * b);
            m0 = Vector256.FusedMultiplyAdd(Vector256.Load(s + 8), xs, m0);
            m1 = Vector256.FusedMultiplyAdd(Vector256.Load(s + 24), xs, m1);
            m2 = Vector256.FusedMultiplyAdd(Vector256.Load(s + 40), xs, m2);
            m3 = Vector256.FusedMultiplyAdd(Vector256.Load(s + 56), xs, m3);
            float* xb = x + 256 * b;
            for (int g = 0; g < 4; g++)
            {
                Vector512<float> x0 = Vector512.Load(xb + 64 * g), x1 = Vector512.Load(xb + 64 * g + 16);
                Vector512<float> x2 = Vector512.Load(xb + 64 * g + 32), x3 = Vector512.Load(xb + 64 * g + 48);
                int q = at + 16 + 32 * g;
                a0 = Q4KGroup(w0 + q, x0, x1, x2, x3, s + 2 * g, a0);
                a1 = Q4KGroup(w1 + q, x0, x1, x2, x3, s + 16 + 2 * g, a1);
                a2 = Q4KGroup(w2 + q, x0, x1, x2, x3, s + 32 + 2 * g, a2);
                a3 = Q4KGroup(w3 + q, x0, x1, x2, x3, s + 48 + 2 * g, a3);
            }
        }
        y[0] = Vector512.Sum(a0) + Vector256.Sum(m0); y[1] = Vector512.Sum(a1) + Vector256.Sum(m1);
        y[2] = Vector512.Sum(a2) + Vector256.Sum(m2); y[3] = Vector512.Sum(a3) + Vector256.Sum(m3);
    }

    /// <summary>total + scale[0]·Σ low nibbles·(x0, x1) + scale[1]·Σ high nibbles·(x2, x3) for one 32-byte group.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Q4KGroup(byte* q, Vector512<float> x0, Vector512<float> x1, Vector512<float> x2, Vector512<float> x3, float* scale, Vector512<float> total)
    {
        Vector512<int> p0 = Avx512F.ConvertToVector512Int32(Vector128.Load(q)), p1 = Avx512F.ConvertToVector512Int32(Vector128.Load(q + 16));
        Vector512<int> mask = Vector512.Create(15);
        Vector512<float> low = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(p1 & mask), x1, Vector512.ConvertToSingle(p0 & mask) * x0);
        Vector512<float> high = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(Vector512.ShiftRightLogical(p1, 4)), x3,
                                                           Vector512.ConvertToSingle(Vector512.ShiftRightLogical(p0, 4)) * x2);
        return Vector512.FusedMultiplyAdd(high, Vector512.Create(scale[1]), Vector512.FusedMultiplyAdd(low, Vector512.Create(scale[0]), total));
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Q4KNarrow(byte* w0, byte* w1, byte* w2, byte* w3, long groupBytes, float* x, float* sums, int blocks, float* y)
    {
        float* halves = HalfTable.Pointer;
        float* s = stackalloc float[4 * 16];
        byte* next = w0 + groupBytes;
        int stride = (int)(groupBytes / blocks);
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        for (int b = 0; b < blocks; b++)
        {
            Prefetch(next + (long)b * stride, stride);
            int at = b * 144;
            ChunkedQuant.ScalesK4(w0 + at, halves, s, s + 8);
            ChunkedQuant.ScalesK4(w1 + at, halves, s + 16, s + 24);
            ChunkedQuant.ScalesK4(w2 + at, halves, s + 32, s + 40);
            ChunkedQuant.ScalesK4(w3 + at, halves, s + 48, s + 56);
            Vector256<float> xs = Vector256.Load(sums + 8 * b);
            a0 = Vector256.FusedMultiplyAdd(Vector256.Load(s + 8), xs, a0); // the 8 offsets' share fits the accumulator's lanes
            a1 = Vector256.FusedMultiplyAdd(Vector256.Load(s + 24), xs, a1);
            a2 = Vector256.FusedMultiplyAdd(Vector256.Load(s + 40), xs, a2);
            a3 = Vector256.FusedMultiplyAdd(Vector256.Load(s + 56), xs, a3);
            float* xb = x + 256 * b;
            // Half a group at a time (16 bytes: 16 low and 16 high nibbles), so x takes 4 of the 16 registers.
            for (int h = 0; h < 8; h++)
            {
                int g = h >> 1, l = 16 * (h & 1);
                Vector256<float> x0 = Vector256.Load(xb + 64 * g + l), x1 = Vector256.Load(xb + 64 * g + l + 8);
                Vector256<float> x2 = Vector256.Load(xb + 64 * g + 32 + l), x3 = Vector256.Load(xb + 64 * g + 40 + l);
                int q = at + 16 + 32 * g + l;
                a0 = Q4KHalfGroup(w0 + q, x0, x1, x2, x3, s + 2 * g, a0);
                a1 = Q4KHalfGroup(w1 + q, x0, x1, x2, x3, s + 16 + 2 * g, a1);
                a2 = Q4KHalfGroup(w2 + q, x0, x1, x2, x3, s + 32 + 2 * g, a2);
                a3 = Q4KHalfGroup(w3 + q, x0, x1, x2, x3, s + 48 + 2 * g, a3);
            }
        }
        y[0] = Vector256.Sum(a0); y[1] = Vector256.Sum(a1); y[2] = Vector256.Sum(a2); y[3] = Vector256.Sum(a3);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Q4KHalfGroup(byte* q, Vector256<float> x0, Vector256<float> x1, Vector256<float> x2, Vector256<float> x3, float* scale, Vector256<float> total)
    {
        Vector256<int> p0 = Avx2.ConvertToVector256Int32(q), p1 = Avx2.ConvertToVector256Int32(q + 8);
        Vector256<int> mask = Vector256.Create(15);
        Vector256<float> low = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(p1 & mask), x1, Vector256.ConvertToSingle(p0 & mask) * x0);
        Vector256<float> high = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(Vector256.ShiftRightLogical(p1, 4)), x3,
                                                           Vector256.ConvertToSingle(Vector256.ShiftRightLogical(p0, 4)) * x2);
        return Vector256.FusedMultiplyAdd(high, Vector256.Create(scale[1]), Vector256.FusedMultiplyAdd(low, Vector256.Create(scale[0]), total));
    }

    // ---- Q6_K: 210-byte super-blocks; 128 bytes of low nibbles, 64 of high bit pairs, 16 signed scales, f16 d.
    // Half h (0, 1), byte l (0–31): ql[64h + l] holds values 128h + l (low nibble) and 128h + 64 + l (high),
    // ql[64h + 32 + l] values 128h + 32 + l and 128h + 96 + l, and qh[32h + l] their top two bits (pairs 0–3).
    // value = d·sc·(q − 32): a row's offsets add −32·Σ (d·sc)·Σ x over its 16 sub-blocks, one multiply-add.

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Q6KWide(byte* w0, byte* w1, byte* w2, byte* w3, long groupBytes, float* x, float* sums, int blocks, float* y)
    {
        float* halves = HalfTable.Pointer;
        float* s = stackalloc float[4 * 16]; // per row: 16 scales d·sc
        byte* next = w0 + groupBytes;
        int stride = (int)(groupBytes / blocks);
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
        for (int b = 0; b < blocks; b++)
        {
            Prefetch(next + (long)b * stride, stride);
            int at = b * 210;
            Vector512<float> xs = Vector512.Load(sums + 16 * b) * Vector512.Create(-32f);
            a0 = Q6KScales(w0 + at, halves, s, xs, a0);
            a1 = Q6KScales(w1 + at, halves, s + 16, xs, a1);
            a2 = Q6KScales(w2 + at, halves, s + 32, xs, a2);
            a3 = Q6KScales(w3 + at, halves, s + 48, xs, a3);
            float* xb = x + 256 * b;
            for (int step = 0; step < 4; step++)
            {
                int h = step >> 1, l = 16 * (step & 1);
                float* xh = xb + 128 * h + l;
                Vector512<float> x0 = Vector512.Load(xh), x1 = Vector512.Load(xh + 32), x2 = Vector512.Load(xh + 64), x3 = Vector512.Load(xh + 96);
                int ql = at + 64 * h + l, qh = at + 128 + 32 * h + l, slot = 8 * h + (l >> 4);
                a0 = Q6KStep(w0 + ql, w0 + qh, x0, x1, x2, x3, s + slot, a0);
                a1 = Q6KStep(w1 + ql, w1 + qh, x0, x1, x2, x3, s + 16 + slot, a1);
                a2 = Q6KStep(w2 + ql, w2 + qh, x0, x1, x2, x3, s + 32 + slot, a2);
                a3 = Q6KStep(w3 + ql, w3 + qh, x0, x1, x2, x3, s + 48 + slot, a3);
            }
        }
        y[0] = Vector512.Sum(a0); y[1] = Vector512.Sum(a1); y[2] = Vector512.Sum(a2); y[3] = Vector512.Sum(a3);
    }

    /// <summary>Stores the block's 16 scales d·sc at s and returns total + their offsets' share (xs: −32·Σ x per sub-block).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Q6KScales(byte* block, float* halves, float* s, Vector512<float> xs, Vector512<float> total)
    {
        Vector512<float> scales = Vector512.ConvertToSingle(Avx512F.ConvertToVector512Int32(Vector128.Load((sbyte*)block + 192)))
                                  * Vector512.Create(HalfTable.ToSingle(halves, ref block[208]));
        scales.Store(s);
        return Vector512.FusedMultiplyAdd(scales, xs, total);
    }

    /// <summary>16 bytes of low nibbles at ql and ql + 32 and their 16 bytes of bit pairs at qh: four sub-blocks of 16 (scales s[0], s[2], s[4], s[6]).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Q6KStep(byte* ql, byte* qh, Vector512<float> x0, Vector512<float> x1, Vector512<float> x2, Vector512<float> x3, float* s, Vector512<float> total)
    {
        Vector512<int> a = Avx512F.ConvertToVector512Int32(Vector128.Load(ql)), c = Avx512F.ConvertToVector512Int32(Vector128.Load(ql + 32));
        Vector512<int> h = Avx512F.ConvertToVector512Int32(Vector128.Load(qh));
        Vector512<int> low = Vector512.Create(15), top = Vector512.Create(0x30);
        // TernaryLogic 0xD8 = top ? h : a, bitwise: bits 4–5 from the pair, the rest from the nibble (zero above it).
        Vector512<int> q0 = Avx512F.TernaryLogic(a & low, Vector512.ShiftLeft(h, 4), top, 0xD8);
        Vector512<int> q1 = Avx512F.TernaryLogic(c & low, Vector512.ShiftLeft(h, 2), top, 0xD8);
        Vector512<int> q2 = Avx512F.TernaryLogic(Vector512.ShiftRightLogical(a, 4), h, top, 0xD8);
        Vector512<int> q3 = Avx512F.TernaryLogic(Vector512.ShiftRightLogical(c, 4), Vector512.ShiftRightLogical(h, 2), top, 0xD8);
        total = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(q0) * x0, Vector512.Create(s[0]), total);
        total = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(q1) * x1, Vector512.Create(s[2]), total);
        total = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(q2) * x2, Vector512.Create(s[4]), total);
        return Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(q3) * x3, Vector512.Create(s[6]), total);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Q6KNarrow(byte* w0, byte* w1, byte* w2, byte* w3, long groupBytes, float* x, float* sums, int blocks, float* y)
    {
        float* halves = HalfTable.Pointer;
        float* s = stackalloc float[4 * 16];
        byte* next = w0 + groupBytes;
        int stride = (int)(groupBytes / blocks);
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        for (int b = 0; b < blocks; b++)
        {
            Prefetch(next + (long)b * stride, stride);
            int at = b * 210;
            Vector256<float> xsLow = Vector256.Load(sums + 16 * b) * Vector256.Create(-32f), xsHigh = Vector256.Load(sums + 16 * b + 8) * Vector256.Create(-32f);
            a0 = Q6KScales(w0 + at, halves, s, xsLow, xsHigh, a0);
            a1 = Q6KScales(w1 + at, halves, s + 16, xsLow, xsHigh, a1);
            a2 = Q6KScales(w2 + at, halves, s + 32, xsLow, xsHigh, a2);
            a3 = Q6KScales(w3 + at, halves, s + 48, xsLow, xsHigh, a3);
            float* xb = x + 256 * b;
            for (int step = 0; step < 8; step++)
            {
                int h = step >> 2, l = 8 * (step & 3);
                float* xh = xb + 128 * h + l;
                Vector256<float> x0 = Vector256.Load(xh), x1 = Vector256.Load(xh + 32), x2 = Vector256.Load(xh + 64), x3 = Vector256.Load(xh + 96);
                int ql = at + 64 * h + l, qh = at + 128 + 32 * h + l, slot = 8 * h + (l >> 4);
                a0 = Q6KStep(w0 + ql, w0 + qh, x0, x1, x2, x3, s + slot, a0);
                a1 = Q6KStep(w1 + ql, w1 + qh, x0, x1, x2, x3, s + 16 + slot, a1);
                a2 = Q6KStep(w2 + ql, w2 + qh, x0, x1, x2, x3, s + 32 + slot, a2);
                a3 = Q6KStep(w3 + ql, w3 + qh, x0, x1, x2, x3, s + 48 + slot, a3);
            }
        }
        y[0] = Vector256.Sum(a0); y[1] = Vector256.Sum(a1); y[2] = Vector256.Sum(a2); y[3] = Vector256.Sum(a3);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Q6KScales(byte* block, float* halves, float* s, Vector256<float> xsLow, Vector256<float> xsHigh, Vector256<float> total)
    {
        var d = Vector256.Create(HalfTable.ToSingle(halves, ref block[208]));
        Vector256<float> low = Vector256.ConvertToSingle(Avx2.ConvertToVector256Int32((sbyte*)block + 192)) * d;
        Vector256<float> high = Vector256.ConvertToSingle(Avx2.ConvertToVector256Int32((sbyte*)block + 200)) * d;
        low.Store(s);
        high.Store(s + 8);
        return Vector256.FusedMultiplyAdd(high, xsHigh, Vector256.FusedMultiplyAdd(low, xsLow, total));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Q6KStep(byte* ql, byte* qh, Vector256<float> x0, Vector256<float> x1, Vector256<float> x2, Vector256<float> x3, float* s, Vector256<float> total)
    {
        Vector256<int> a = Avx2.ConvertToVector256Int32(ql), c = Avx2.ConvertToVector256Int32(ql + 32), h = Avx2.ConvertToVector256Int32(qh);
        Vector256<int> low = Vector256.Create(15), top = Vector256.Create(0x30);
        Vector256<int> q0 = (a & low) | (Vector256.ShiftLeft(h, 4) & top);
        Vector256<int> q1 = (c & low) | (Vector256.ShiftLeft(h, 2) & top);
        Vector256<int> q2 = Vector256.ShiftRightLogical(a, 4) | (h & top);
        Vector256<int> q3 = Vector256.ShiftRightLogical(c, 4) | (Vector256.ShiftRightLogical(h, 2) & top);
        total = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(q0) * x0, Vector256.Create(s[0]), total);
        total = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(q1) * x1, Vector256.Create(s[2]), total);
        total = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(q2) * x2, Vector256.Create(s[4]), total);
        return Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(q3) * x3, Vector256.Create(s[6]), total);
    }
}
