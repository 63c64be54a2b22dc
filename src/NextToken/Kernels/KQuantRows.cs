using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using NextToken.Tensors;

namespace NextToken.Kernels;

/// <summary>
/// Decode (batch of one) kernels for the K-quants (Q4_K_M is Q4_K + Q6_K; Q5_K_M adds Q5_K; Q3_K),
/// up to four rows at a time, exact float32. A sub-block's value is q·s + o with one s and o per 16
/// or 32 values, so its share of the dot is s·Σ q·x + o·Σ x: the Σ x of every sub-block is made once
/// per matrix call (<see cref="SubBlockSums"/>), a row's offsets then cost one vector multiply-add
/// per super-block, and each value costs only its unpacking, one conversion and one multiply-add;
/// x is loaded once for the rows, each row's scales unpacked once per super-block.
/// Vector operations per row and 256 values (AVX-512; scales included): Q4_K 78 (per 64 values two
/// widening loads, two masks/shifts, four conversions, six multiply-adds), Q5_K 110 (plus two
/// widening loads, four rotations and four ternary-logic merges of the fifth bits per 64), Q6_K 109
/// (per 64: three widening loads, eleven bit operations, four conversions, eight multiply(-add)s),
/// Q3_K 129 (per 64: two widening loads, 14 bit operations, four conversions, eight multiply(-add)s),
/// Q2_K about 85 (per 64: one widening load, five shifts/masks, four conversions, eight multiply(-add)s).
/// The generic chunked kernel (<see cref="ChunkedQuant"/>) took 6–11 per 16 values plus scalar
/// addressing. The next rows are prefetched, as in <see cref="Quantized.Dot4RowsWide"/>.
/// </summary>
internal static unsafe partial class KQuantRows
{
    public static bool Handles(GgmlType type) => type is GgmlType.Q4_K or GgmlType.Q6_K or GgmlType.Q5_K or GgmlType.Q3_K or GgmlType.Q2_K;

    /// <summary>How many values each Σ x of <see cref="SubBlockSums"/> covers for this type (its offsets' granularity).</summary>
    public static int SumWidth(GgmlType type) => type is GgmlType.Q6_K or GgmlType.Q3_K or GgmlType.Q2_K ? 16 : 32;

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
            case GgmlType.Q4_K: Q4KNarrow<InPlace>(w, w1, w2, w3, rows * rowBytes, x, sums, blocks, result); break;
            case GgmlType.Q6_K when wide: Q6KWide(w, w1, w2, w3, rows * rowBytes, x, sums, blocks, result); break;
            case GgmlType.Q6_K: Q6KNarrow(w, w1, w2, w3, rows * rowBytes, x, sums, blocks, result); break;
            case GgmlType.Q5_K when wide: Q5KWide(w, w1, w2, w3, rows * rowBytes, x, sums, blocks, result); break;
            case GgmlType.Q5_K: Q5KNarrow(w, w1, w2, w3, rows * rowBytes, x, sums, blocks, result); break;
            case GgmlType.Q3_K when wide: Q3KWide(w, w1, w2, w3, rows * rowBytes, x, sums, blocks, result); break;
            case GgmlType.Q3_K: Q3KNarrow(w, w1, w2, w3, rows * rowBytes, x, sums, blocks, result); break;
            case GgmlType.Q2_K when wide: Q2KWide(w, w1, w2, w3, rows * rowBytes, x, sums, blocks, result); break;
            case GgmlType.Q2_K: Q2KNarrow(w, w1, w2, w3, rows * rowBytes, x, sums, blocks, result); break;
            default: throw new NotSupportedException($"no K-quant row kernel for {type}");
        }
        for (int r = 0; r < rows; r++) y[r] = result[r];
    }

    /// <summary>
    /// <see cref="Dot4"/>'s AVX2 Q4_K kernel as it was before its high nibbles were masked in place
    /// (<see cref="InPlace"/>), four rows: the benchmarks' baseline, and the tests' check that the results did not move.
    /// (Q6_K's upper values masked in place as well measured 2–30% slower: its four masks no longer fit the
    /// registers beside x and the accumulators, and it is bound by all its vector operations, 30 per 32 values
    /// on three ports, of which that form saved one.)
    /// </summary>
    internal static void Dot4NarrowShifted(GgmlType type, byte* w, long rowBytes, float* x, float* sums, int n, float* y)
    {
        var result = stackalloc float[4];
        if (type == GgmlType.Q4_K) Q4KNarrow<Shifted>(w, w + rowBytes, w + 2 * rowBytes, w + 3 * rowBytes, 4 * rowBytes, x, sums, n / 256, result);
        else throw new NotSupportedException($"no previous AVX2 kernel kept for {type}");
        for (int r = 0; r < 4; r++) y[r] = result[r];
    }

    /// <summary>
    /// Whether the AVX2 Q4_K kernel shifts its high nibbles down, as before, or masks them
    /// where they are: a value 16·n, converted exactly, whose product with x is 16 times n·x exactly, so every
    /// partial sum is 16 times the shifted kernel's and the sub-block's scale, taken as d·sc/16 (exact: a power
    /// of two on a normal float), gives the same bits — unless a partial sum passes 2¹²⁴. An AND can run on
    /// any of the three vector ports, a shift only on the two that also convert and multiply-add.
    /// A struct each, so the choice is compiled away.
    /// </summary>
    private interface IHighBits
    {
        static abstract bool ShiftsDown { get; }
    }

    private readonly struct Shifted : IHighBits
    {
        public static bool ShiftsDown => true;
    }

    private readonly struct InPlace : IHighBits
    {
        public static bool ShiftsDown => false;
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
        (Vector512<float> v0, Vector512<float> v1, Vector512<float> v2, Vector512<float> v3) = Q4KValues(q);
        return Q4KGroup(v0, v1, v2, v3, x0, x1, x2, x3, scale, total);
    }

    /// <summary>A 32-byte group's nibbles as floats: low nibbles of bytes 0–15 and 16–31, then their high nibbles.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static (Vector512<float>, Vector512<float>, Vector512<float>, Vector512<float>) Q4KValues(byte* q)
    {
        Vector512<int> p0 = Avx512F.ConvertToVector512Int32(Vector128.Load(q)), p1 = Avx512F.ConvertToVector512Int32(Vector128.Load(q + 16));
        Vector512<int> mask = Vector512.Create(15);
        return (Vector512.ConvertToSingle(p0 & mask), Vector512.ConvertToSingle(p1 & mask),
                Vector512.ConvertToSingle(Vector512.ShiftRightLogical(p0, 4)), Vector512.ConvertToSingle(Vector512.ShiftRightLogical(p1, 4)));
    }

    /// <summary><see cref="Q4KGroup(byte*, Vector512{float}, Vector512{float}, Vector512{float}, Vector512{float}, float*, Vector512{float})"/> on values from <see cref="Q4KValues"/> (shared by the batched kernel).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Q4KGroup(Vector512<float> v0, Vector512<float> v1, Vector512<float> v2, Vector512<float> v3,
                                             Vector512<float> x0, Vector512<float> x1, Vector512<float> x2, Vector512<float> x3, float* scale, Vector512<float> total)
    {
        Vector512<float> low = Vector512.FusedMultiplyAdd(v1, x1, v0 * x0);
        Vector512<float> high = Vector512.FusedMultiplyAdd(v3, x3, v2 * x2);
        return Vector512.FusedMultiplyAdd(high, Vector512.Create(scale[1]), Vector512.FusedMultiplyAdd(low, Vector512.Create(scale[0]), total));
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Q4KNarrow<THigh>(byte* w0, byte* w1, byte* w2, byte* w3, long groupBytes, float* x, float* sums, int blocks, float* y) where THigh : struct, IHighBits
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
            if (!THigh.ShiftsDown) Q4KSixteenths(s);
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
                a0 = Q4KHalfGroup<THigh>(w0 + q, x0, x1, x2, x3, s + 2 * g, a0);
                a1 = Q4KHalfGroup<THigh>(w1 + q, x0, x1, x2, x3, s + 16 + 2 * g, a1);
                a2 = Q4KHalfGroup<THigh>(w2 + q, x0, x1, x2, x3, s + 32 + 2 * g, a2);
                a3 = Q4KHalfGroup<THigh>(w3 + q, x0, x1, x2, x3, s + 48 + 2 * g, a3);
            }
        }
        y[0] = Vector256.Sum(a0); y[1] = Vector256.Sum(a1); y[2] = Vector256.Sum(a2); y[3] = Vector256.Sum(a3);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Q4KHalfGroup<THigh>(byte* q, Vector256<float> x0, Vector256<float> x1, Vector256<float> x2, Vector256<float> x3, float* scale, Vector256<float> total)
        where THigh : struct, IHighBits
    {
        (Vector256<float> v0, Vector256<float> v1, Vector256<float> v2, Vector256<float> v3) = THigh.ShiftsDown ? Q4KHalfValuesShifted(q) : Q4KHalfValues(q);
        return Q4KHalfGroup(v0, v1, v2, v3, x0, x1, x2, x3, scale, total);
    }

    /// <summary>
    /// 16 bytes' nibbles as floats: low nibbles of bytes 0–7 and 8–15, then their high nibbles as 16·n
    /// (masked in place, no shift: <see cref="IHighBits"/>; the scales from <see cref="Q4KSixteenths"/>).
    /// Per 32 values 2 widening loads, 4 ANDs, 4 conversions and 6 multiply(-add)s: 10 operations on the
    /// FMA ports where the shifted form takes 12.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static (Vector256<float>, Vector256<float>, Vector256<float>, Vector256<float>) Q4KHalfValues(byte* q)
    {
        Vector256<int> p0 = Avx2.ConvertToVector256Int32(q), p1 = Avx2.ConvertToVector256Int32(q + 8);
        Vector256<int> low = Vector256.Create(0x0F), high = Vector256.Create(0xF0);
        return (Vector256.ConvertToSingle(p0 & low), Vector256.ConvertToSingle(p1 & low), Vector256.ConvertToSingle(p0 & high), Vector256.ConvertToSingle(p1 & high));
    }

    /// <summary>The previous <see cref="Q4KHalfValues"/>: high nibbles shifted down (n, with unscaled scales).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static (Vector256<float>, Vector256<float>, Vector256<float>, Vector256<float>) Q4KHalfValuesShifted(byte* q)
    {
        Vector256<int> p0 = Avx2.ConvertToVector256Int32(q), p1 = Avx2.ConvertToVector256Int32(q + 8);
        Vector256<int> mask = Vector256.Create(15);
        return (Vector256.ConvertToSingle(p0 & mask), Vector256.ConvertToSingle(p1 & mask),
                Vector256.ConvertToSingle(Vector256.ShiftRightLogical(p0, 4)), Vector256.ConvertToSingle(Vector256.ShiftRightLogical(p1, 4)));
    }

    /// <summary>The high-nibble sub-blocks' scales (odd of the 8 at s, row by row 16 floats apart) divided by 16, for <see cref="Q4KHalfValues"/>' 16·n.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Q4KSixteenths(float* s)
    {
        var sixteenths = Vector256.Create(1f, 1f / 16, 1f, 1f / 16, 1f, 1f / 16, 1f, 1f / 16);
        for (int r = 0; r < 4; r++) (Vector256.Load(s + 16 * r) * sixteenths).Store(s + 16 * r);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Q4KHalfGroup(Vector256<float> v0, Vector256<float> v1, Vector256<float> v2, Vector256<float> v3,
                                                 Vector256<float> x0, Vector256<float> x1, Vector256<float> x2, Vector256<float> x3, float* scale, Vector256<float> total)
    {
        Vector256<float> low = Vector256.FusedMultiplyAdd(v1, x1, v0 * x0);
        Vector256<float> high = Vector256.FusedMultiplyAdd(v3, x3, v2 * x2);
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
        (Vector512<float> v0, Vector512<float> v1, Vector512<float> v2, Vector512<float> v3) = Q6KValues(ql, qh);
        return Q6KStep(v0, v1, v2, v3, x0, x1, x2, x3, s, total);
    }

    /// <summary>The four sub-blocks' 6-bit values of <see cref="Q6KStep(byte*, byte*, Vector512{float}, Vector512{float}, Vector512{float}, Vector512{float}, float*, Vector512{float})"/> as floats.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static (Vector512<float>, Vector512<float>, Vector512<float>, Vector512<float>) Q6KValues(byte* ql, byte* qh)
    {
        Vector512<int> a = Avx512F.ConvertToVector512Int32(Vector128.Load(ql)), c = Avx512F.ConvertToVector512Int32(Vector128.Load(ql + 32));
        Vector512<int> h = Avx512F.ConvertToVector512Int32(Vector128.Load(qh));
        Vector512<int> low = Vector512.Create(15), top = Vector512.Create(0x30);
        // TernaryLogic 0xD8 = top ? h : a, bitwise: bits 4–5 from the pair, the rest from the nibble (zero above it).
        Vector512<int> q0 = Avx512F.TernaryLogic(a & low, Vector512.ShiftLeft(h, 4), top, 0xD8);
        Vector512<int> q1 = Avx512F.TernaryLogic(c & low, Vector512.ShiftLeft(h, 2), top, 0xD8);
        Vector512<int> q2 = Avx512F.TernaryLogic(Vector512.ShiftRightLogical(a, 4), h, top, 0xD8);
        Vector512<int> q3 = Avx512F.TernaryLogic(Vector512.ShiftRightLogical(c, 4), Vector512.ShiftRightLogical(h, 2), top, 0xD8);
        return (Vector512.ConvertToSingle(q0), Vector512.ConvertToSingle(q1), Vector512.ConvertToSingle(q2), Vector512.ConvertToSingle(q3));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Q6KStep(Vector512<float> v0, Vector512<float> v1, Vector512<float> v2, Vector512<float> v3,
                                            Vector512<float> x0, Vector512<float> x1, Vector512<float> x2, Vector512<float> x3, float* s, Vector512<float> total)
    {
        total = Vector512.FusedMultiplyAdd(v0 * x0, Vector512.Create(s[0]), total);
        total = Vector512.FusedMultiplyAdd(v1 * x1, Vector512.Create(s[2]), total);
        total = Vector512.FusedMultiplyAdd(v2 * x2, Vector512.Create(s[4]), total);
        return Vector512.FusedMultiplyAdd(v3 * x3, Vector512.Create(s[6]), total);
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
        (Vector256<float> v0, Vector256<float> v1, Vector256<float> v2, Vector256<float> v3) = Q6KValues8(ql, qh);
        return Q6KStep(v0, v1, v2, v3, x0, x1, x2, x3, s, total);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static (Vector256<float>, Vector256<float>, Vector256<float>, Vector256<float>) Q6KValues8(byte* ql, byte* qh)
    {
        Vector256<int> a = Avx2.ConvertToVector256Int32(ql), c = Avx2.ConvertToVector256Int32(ql + 32), h = Avx2.ConvertToVector256Int32(qh);
        Vector256<int> low = Vector256.Create(15), top = Vector256.Create(0x30);
        Vector256<int> q0 = (a & low) | (Vector256.ShiftLeft(h, 4) & top);
        Vector256<int> q1 = (c & low) | (Vector256.ShiftLeft(h, 2) & top);
        Vector256<int> q2 = Vector256.ShiftRightLogical(a, 4) | (h & top);
        Vector256<int> q3 = Vector256.ShiftRightLogical(c, 4) | (Vector256.ShiftRightLogical(h, 2) & top);
        return (Vector256.ConvertToSingle(q0), Vector256.ConvertToSingle(q1), Vector256.ConvertToSingle(q2), Vector256.ConvertToSingle(q3));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Q6KStep(Vector256<float> v0, Vector256<float> v1, Vector256<float> v2, Vector256<float> v3,
                                            Vector256<float> x0, Vector256<float> x1, Vector256<float> x2, Vector256<float> x3, float* s, Vector256<float> total)
    {
        total = Vector256.FusedMultiplyAdd(v0 * x0, Vector256.Create(s[0]), total);
        total = Vector256.FusedMultiplyAdd(v1 * x1, Vector256.Create(s[2]), total);
        total = Vector256.FusedMultiplyAdd(v2 * x2, Vector256.Create(s[4]), total);
        return Vector256.FusedMultiplyAdd(v3 * x3, Vector256.Create(s[6]), total);
    }

    // ---- Q5_K: 176-byte super-blocks; Q4_K's d, dmin and scales, 32 bytes of fifth bits at 16, nibbles at 48 as Q4_K's.
    // Bit 2g of qh[l] is the fifth bit of value 64g + l (low nibble), bit 2g + 1 that of 64g + 32 + l (high nibble).

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Q5KWide(byte* w0, byte* w1, byte* w2, byte* w3, long groupBytes, float* x, float* sums, int blocks, float* y)
    {
        float* halves = HalfTable.Pointer;
        float* s = stackalloc float[4 * 16];
        byte* next = w0 + groupBytes;
        int stride = (int)(groupBytes / blocks);
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
        Vector256<float> m0 = default, m1 = default, m2 = default, m3 = default;
        for (int b = 0; b < blocks; b++)
        {
            Prefetch(next + (long)b * stride, stride);
            int at = b * 176;
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
                // Rotations bringing bit 2g (low nibbles) and 2g + 1 (high) of a qh byte to bit 4, shared by the rows.
                Vector512<uint> low = Vector512.Create((uint)((4 - 2 * g) & 31)), high = Vector512.Create((uint)((3 - 2 * g) & 31));
                int q = at + 48 + 32 * g, qh = at + 16;
                a0 = Q5KGroup(w0 + q, w0 + qh, x0, x1, x2, x3, low, high, s + 2 * g, a0);
                a1 = Q5KGroup(w1 + q, w1 + qh, x0, x1, x2, x3, low, high, s + 16 + 2 * g, a1);
                a2 = Q5KGroup(w2 + q, w2 + qh, x0, x1, x2, x3, low, high, s + 32 + 2 * g, a2);
                a3 = Q5KGroup(w3 + q, w3 + qh, x0, x1, x2, x3, low, high, s + 48 + 2 * g, a3);
            }
        }
        y[0] = Vector512.Sum(a0) + Vector256.Sum(m0); y[1] = Vector512.Sum(a1) + Vector256.Sum(m1);
        y[2] = Vector512.Sum(a2) + Vector256.Sum(m2); y[3] = Vector512.Sum(a3) + Vector256.Sum(m3);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Q5KGroup(byte* q, byte* qh, Vector512<float> x0, Vector512<float> x1, Vector512<float> x2, Vector512<float> x3,
                                             Vector512<uint> lowTurn, Vector512<uint> highTurn, float* scale, Vector512<float> total)
    {
        Vector512<int> p0 = Avx512F.ConvertToVector512Int32(Vector128.Load(q)), p1 = Avx512F.ConvertToVector512Int32(Vector128.Load(q + 16));
        Vector512<uint> h0 = Avx512F.ConvertToVector512UInt32(Vector128.Load(qh)), h1 = Avx512F.ConvertToVector512UInt32(Vector128.Load(qh + 16));
        Vector512<int> mask = Vector512.Create(15), fifth = Vector512.Create(16);
        // TernaryLogic 0xD8 = fifth ? rotated : nibble, bitwise (the nibble is zero above bit 3).
        Vector512<int> l0 = Avx512F.TernaryLogic(p0 & mask, Avx512F.RotateLeftVariable(h0, lowTurn).AsInt32(), fifth, 0xD8);
        Vector512<int> l1 = Avx512F.TernaryLogic(p1 & mask, Avx512F.RotateLeftVariable(h1, lowTurn).AsInt32(), fifth, 0xD8);
        Vector512<int> u0 = Avx512F.TernaryLogic(Vector512.ShiftRightLogical(p0, 4), Avx512F.RotateLeftVariable(h0, highTurn).AsInt32(), fifth, 0xD8);
        Vector512<int> u1 = Avx512F.TernaryLogic(Vector512.ShiftRightLogical(p1, 4), Avx512F.RotateLeftVariable(h1, highTurn).AsInt32(), fifth, 0xD8);
        Vector512<float> low = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(l1), x1, Vector512.ConvertToSingle(l0) * x0);
        Vector512<float> high = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(u1), x3, Vector512.ConvertToSingle(u0) * x2);
        return Vector512.FusedMultiplyAdd(high, Vector512.Create(scale[1]), Vector512.FusedMultiplyAdd(low, Vector512.Create(scale[0]), total));
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Q5KNarrow(byte* w0, byte* w1, byte* w2, byte* w3, long groupBytes, float* x, float* sums, int blocks, float* y)
    {
        float* halves = HalfTable.Pointer;
        float* s = stackalloc float[4 * 16];
        byte* next = w0 + groupBytes;
        int stride = (int)(groupBytes / blocks);
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        for (int b = 0; b < blocks; b++)
        {
            Prefetch(next + (long)b * stride, stride);
            int at = b * 176;
            ChunkedQuant.ScalesK4(w0 + at, halves, s, s + 8);
            ChunkedQuant.ScalesK4(w1 + at, halves, s + 16, s + 24);
            ChunkedQuant.ScalesK4(w2 + at, halves, s + 32, s + 40);
            ChunkedQuant.ScalesK4(w3 + at, halves, s + 48, s + 56);
            Vector256<float> xs = Vector256.Load(sums + 8 * b);
            a0 = Vector256.FusedMultiplyAdd(Vector256.Load(s + 8), xs, a0);
            a1 = Vector256.FusedMultiplyAdd(Vector256.Load(s + 24), xs, a1);
            a2 = Vector256.FusedMultiplyAdd(Vector256.Load(s + 40), xs, a2);
            a3 = Vector256.FusedMultiplyAdd(Vector256.Load(s + 56), xs, a3);
            float* xb = x + 256 * b;
            for (int h = 0; h < 8; h++)
            {
                int g = h >> 1, l = 16 * (h & 1);
                Vector256<float> x0 = Vector256.Load(xb + 64 * g + l), x1 = Vector256.Load(xb + 64 * g + l + 8);
                Vector256<float> x2 = Vector256.Load(xb + 64 * g + 32 + l), x3 = Vector256.Load(xb + 64 * g + 40 + l);
                int q = at + 48 + 32 * g + l, qh = at + 16 + l;
                a0 = Q5KHalfGroup(w0 + q, w0 + qh, 2 * g, x0, x1, x2, x3, s + 2 * g, a0);
                a1 = Q5KHalfGroup(w1 + q, w1 + qh, 2 * g, x0, x1, x2, x3, s + 16 + 2 * g, a1);
                a2 = Q5KHalfGroup(w2 + q, w2 + qh, 2 * g, x0, x1, x2, x3, s + 32 + 2 * g, a2);
                a3 = Q5KHalfGroup(w3 + q, w3 + qh, 2 * g, x0, x1, x2, x3, s + 48 + 2 * g, a3);
            }
        }
        y[0] = Vector256.Sum(a0); y[1] = Vector256.Sum(a1); y[2] = Vector256.Sum(a2); y[3] = Vector256.Sum(a3);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Q5KHalfGroup(byte* q, byte* qh, int bit, Vector256<float> x0, Vector256<float> x1, Vector256<float> x2, Vector256<float> x3, float* scale, Vector256<float> total)
    {
        Vector256<int> p0 = Avx2.ConvertToVector256Int32(q), p1 = Avx2.ConvertToVector256Int32(q + 8);
        // qh byte << 4, then >> bit puts bit `bit` at bit 4 (and >> bit + 1 the next one).
        Vector256<int> h0 = Vector256.ShiftLeft(Avx2.ConvertToVector256Int32(qh), 4), h1 = Vector256.ShiftLeft(Avx2.ConvertToVector256Int32(qh + 8), 4);
        Vector256<int> mask = Vector256.Create(15), fifth = Vector256.Create(16);
        Vector256<int> l0 = (p0 & mask) | (Vector256.ShiftRightLogical(h0, bit) & fifth), l1 = (p1 & mask) | (Vector256.ShiftRightLogical(h1, bit) & fifth);
        Vector256<int> u0 = Vector256.ShiftRightLogical(p0, 4) | (Vector256.ShiftRightLogical(h0, bit + 1) & fifth);
        Vector256<int> u1 = Vector256.ShiftRightLogical(p1, 4) | (Vector256.ShiftRightLogical(h1, bit + 1) & fifth);
        Vector256<float> low = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(l1), x1, Vector256.ConvertToSingle(l0) * x0);
        Vector256<float> high = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(u1), x3, Vector256.ConvertToSingle(u0) * x2);
        return Vector256.FusedMultiplyAdd(high, Vector256.Create(scale[1]), Vector256.FusedMultiplyAdd(low, Vector256.Create(scale[0]), total));
    }

    // ---- Q3_K: 110-byte super-blocks; 32 bytes of high bits, 64 of 2-bit values at 32, 12 bytes of 6-bit scales at 96, f16 d at 108.
    // Half hh, plane p, part t, l (0–15): value 128hh + 32p + 16t + l is bits 2p of qs[32hh + 16t + l] plus 4·bit (4hh + p) of
    // hmask[16t + l], minus 4; sub-block 8hh + 2p + t. A row's −4s offsets add −4·Σ (d·sc)·Σ x, one multiply-add.

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Q3KWide(byte* w0, byte* w1, byte* w2, byte* w3, long groupBytes, float* x, float* sums, int blocks, float* y)
    {
        float* halves = HalfTable.Pointer;
        float* s = stackalloc float[4 * 16 + 16]; // per row: 16 scales d·(sc − 32); then the offsets Scales also writes
        float* unused = s + 64;
        byte* next = w0 + groupBytes;
        int stride = (int)(groupBytes / blocks);
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
        for (int b = 0; b < blocks; b++)
        {
            Prefetch(next + (long)b * stride, stride);
            int at = b * 110;
            ChunkedQuant.Q3_K.Scales(w0 + at, halves, s, unused);
            ChunkedQuant.Q3_K.Scales(w1 + at, halves, s + 16, unused);
            ChunkedQuant.Q3_K.Scales(w2 + at, halves, s + 32, unused);
            ChunkedQuant.Q3_K.Scales(w3 + at, halves, s + 48, unused);
            Vector512<float> xs = Vector512.Load(sums + 16 * b) * Vector512.Create(-4f);
            a0 = Vector512.FusedMultiplyAdd(Vector512.Load(s), xs, a0);
            a1 = Vector512.FusedMultiplyAdd(Vector512.Load(s + 16), xs, a1);
            a2 = Vector512.FusedMultiplyAdd(Vector512.Load(s + 32), xs, a2);
            a3 = Vector512.FusedMultiplyAdd(Vector512.Load(s + 48), xs, a3);
            float* xb = x + 256 * b;
            for (int step = 0; step < 4; step++)
            {
                int hh = step >> 1, t = step & 1;
                float* xh = xb + 128 * hh + 16 * t;
                Vector512<float> x0 = Vector512.Load(xh), x1 = Vector512.Load(xh + 32), x2 = Vector512.Load(xh + 64), x3 = Vector512.Load(xh + 96);
                // Rotation bringing bit 4hh + p of a high-bit byte to bit 2, for p = 0 (the others follow by one less each).
                Vector512<uint> turn = Vector512.Create((uint)((2 - 4 * hh) & 31));
                int qs = at + 32 + 32 * hh + 16 * t, hm = at + 16 * t, slot = 8 * hh + t;
                a0 = Q3KStep(w0 + qs, w0 + hm, x0, x1, x2, x3, turn, s + slot, a0);
                a1 = Q3KStep(w1 + qs, w1 + hm, x0, x1, x2, x3, turn, s + 16 + slot, a1);
                a2 = Q3KStep(w2 + qs, w2 + hm, x0, x1, x2, x3, turn, s + 32 + slot, a2);
                a3 = Q3KStep(w3 + qs, w3 + hm, x0, x1, x2, x3, turn, s + 48 + slot, a3);
            }
        }
        y[0] = Vector512.Sum(a0); y[1] = Vector512.Sum(a1); y[2] = Vector512.Sum(a2); y[3] = Vector512.Sum(a3);
    }

    /// <summary>16 bytes of 2-bit values and their 16 high-bit bytes: the four planes' sub-blocks (scales s[0], s[2], s[4], s[6]).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Q3KStep(byte* qs, byte* hm, Vector512<float> x0, Vector512<float> x1, Vector512<float> x2, Vector512<float> x3,
                                            Vector512<uint> turn, float* s, Vector512<float> total)
    {
        Vector512<int> a = Avx512F.ConvertToVector512Int32(Vector128.Load(qs));
        Vector512<uint> h = Avx512F.ConvertToVector512UInt32(Vector128.Load(hm));
        Vector512<int> two = Vector512.Create(3), third = Vector512.Create(4);
        // TernaryLogic 0xD8 = third ? high bit : 2-bit value, bitwise (the value is zero above bit 1).
        Vector512<int> q0 = Avx512F.TernaryLogic(a & two, Avx512F.RotateLeftVariable(h, turn).AsInt32(), third, 0xD8);
        Vector512<int> q1 = Avx512F.TernaryLogic(Vector512.ShiftRightLogical(a, 2) & two, Avx512F.RotateLeftVariable(h, turn - Vector512<uint>.One & Vector512.Create(31u)).AsInt32(), third, 0xD8);
        Vector512<int> q2 = Avx512F.TernaryLogic(Vector512.ShiftRightLogical(a, 4) & two, Avx512F.RotateLeftVariable(h, turn - Vector512.Create(2u) & Vector512.Create(31u)).AsInt32(), third, 0xD8);
        Vector512<int> q3 = Avx512F.TernaryLogic(Vector512.ShiftRightLogical(a, 6), Avx512F.RotateLeftVariable(h, turn - Vector512.Create(3u) & Vector512.Create(31u)).AsInt32(), third, 0xD8);
        total = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(q0) * x0, Vector512.Create(s[0]), total);
        total = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(q1) * x1, Vector512.Create(s[2]), total);
        total = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(q2) * x2, Vector512.Create(s[4]), total);
        return Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(q3) * x3, Vector512.Create(s[6]), total);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Q3KNarrow(byte* w0, byte* w1, byte* w2, byte* w3, long groupBytes, float* x, float* sums, int blocks, float* y)
    {
        float* halves = HalfTable.Pointer;
        float* s = stackalloc float[4 * 16 + 16];
        float* unused = s + 64;
        byte* next = w0 + groupBytes;
        int stride = (int)(groupBytes / blocks);
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        for (int b = 0; b < blocks; b++)
        {
            Prefetch(next + (long)b * stride, stride);
            int at = b * 110;
            ChunkedQuant.Q3_K.Scales(w0 + at, halves, s, unused);
            ChunkedQuant.Q3_K.Scales(w1 + at, halves, s + 16, unused);
            ChunkedQuant.Q3_K.Scales(w2 + at, halves, s + 32, unused);
            ChunkedQuant.Q3_K.Scales(w3 + at, halves, s + 48, unused);
            Vector256<float> xsLow = Vector256.Load(sums + 16 * b) * Vector256.Create(-4f), xsHigh = Vector256.Load(sums + 16 * b + 8) * Vector256.Create(-4f);
            a0 = Vector256.FusedMultiplyAdd(Vector256.Load(s + 8), xsHigh, Vector256.FusedMultiplyAdd(Vector256.Load(s), xsLow, a0));
            a1 = Vector256.FusedMultiplyAdd(Vector256.Load(s + 24), xsHigh, Vector256.FusedMultiplyAdd(Vector256.Load(s + 16), xsLow, a1));
            a2 = Vector256.FusedMultiplyAdd(Vector256.Load(s + 40), xsHigh, Vector256.FusedMultiplyAdd(Vector256.Load(s + 32), xsLow, a2));
            a3 = Vector256.FusedMultiplyAdd(Vector256.Load(s + 56), xsHigh, Vector256.FusedMultiplyAdd(Vector256.Load(s + 48), xsLow, a3));
            float* xb = x + 256 * b;
            for (int step = 0; step < 8; step++)
            {
                int hh = step >> 2, l = 8 * (step & 3); // l: 0–31 within the half's 32 bytes
                float* xh = xb + 128 * hh + l;
                Vector256<float> x0 = Vector256.Load(xh), x1 = Vector256.Load(xh + 32), x2 = Vector256.Load(xh + 64), x3 = Vector256.Load(xh + 96);
                int qs = at + 32 + 32 * hh + l, hm = at + l, slot = 8 * hh + (l >> 4);
                a0 = Q3KStep(w0 + qs, w0 + hm, 4 * hh, x0, x1, x2, x3, s + slot, a0);
                a1 = Q3KStep(w1 + qs, w1 + hm, 4 * hh, x0, x1, x2, x3, s + 16 + slot, a1);
                a2 = Q3KStep(w2 + qs, w2 + hm, 4 * hh, x0, x1, x2, x3, s + 32 + slot, a2);
                a3 = Q3KStep(w3 + qs, w3 + hm, 4 * hh, x0, x1, x2, x3, s + 48 + slot, a3);
            }
        }
        y[0] = Vector256.Sum(a0); y[1] = Vector256.Sum(a1); y[2] = Vector256.Sum(a2); y[3] = Vector256.Sum(a3);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Q3KStep(byte* qs, byte* hm, int bit, Vector256<float> x0, Vector256<float> x1, Vector256<float> x2, Vector256<float> x3, float* s, Vector256<float> total)
    {
        Vector256<int> a = Avx2.ConvertToVector256Int32(qs);
        // high-bit byte << 2, then >> bit + p puts bit `bit + p` at bit 2.
        Vector256<int> h = Vector256.ShiftLeft(Avx2.ConvertToVector256Int32(hm), 2);
        Vector256<int> two = Vector256.Create(3), third = Vector256.Create(4);
        Vector256<int> q0 = (a & two) | (Vector256.ShiftRightLogical(h, bit) & third);
        Vector256<int> q1 = (Vector256.ShiftRightLogical(a, 2) & two) | (Vector256.ShiftRightLogical(h, bit + 1) & third);
        Vector256<int> q2 = (Vector256.ShiftRightLogical(a, 4) & two) | (Vector256.ShiftRightLogical(h, bit + 2) & third);
        Vector256<int> q3 = Vector256.ShiftRightLogical(a, 6) | (Vector256.ShiftRightLogical(h, bit + 3) & third);
        total = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(q0) * x0, Vector256.Create(s[0]), total);
        total = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(q1) * x1, Vector256.Create(s[2]), total);
        total = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(q2) * x2, Vector256.Create(s[4]), total);
        return Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(q3) * x3, Vector256.Create(s[6]), total);
    }

    // ---- Q2_K: 84-byte super-blocks; 16 scale bytes (low nibble scale, high nibble minimum), 64 bytes of 2-bit values
    // at 16 laid out as Q3_K's, f16 d at 80 and dmin at 82; value = d·sc·q − dmin·m, one sc and m per 16 values.

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Q2KWide(byte* w0, byte* w1, byte* w2, byte* w3, long groupBytes, float* x, float* sums, int blocks, float* y)
    {
        float* halves = HalfTable.Pointer;
        float* s = stackalloc float[4 * 32]; // per row: 16 scales d·sc, then 16 offsets −dmin·m
        byte* next = w0 + groupBytes;
        int stride = (int)(groupBytes / blocks);
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
        for (int b = 0; b < blocks; b++)
        {
            Prefetch(next + (long)b * stride, stride);
            int at = b * 84;
            ChunkedQuant.Q2_K.Scales(w0 + at, halves, s, s + 16);
            ChunkedQuant.Q2_K.Scales(w1 + at, halves, s + 32, s + 48);
            ChunkedQuant.Q2_K.Scales(w2 + at, halves, s + 64, s + 80);
            ChunkedQuant.Q2_K.Scales(w3 + at, halves, s + 96, s + 112);
            Vector512<float> xs = Vector512.Load(sums + 16 * b);
            a0 = Vector512.FusedMultiplyAdd(Vector512.Load(s + 16), xs, a0);
            a1 = Vector512.FusedMultiplyAdd(Vector512.Load(s + 48), xs, a1);
            a2 = Vector512.FusedMultiplyAdd(Vector512.Load(s + 80), xs, a2);
            a3 = Vector512.FusedMultiplyAdd(Vector512.Load(s + 112), xs, a3);
            float* xb = x + 256 * b;
            for (int step = 0; step < 4; step++)
            {
                int hh = step >> 1, t = step & 1;
                float* xh = xb + 128 * hh + 16 * t;
                Vector512<float> x0 = Vector512.Load(xh), x1 = Vector512.Load(xh + 32), x2 = Vector512.Load(xh + 64), x3 = Vector512.Load(xh + 96);
                int qs = at + 16 + 32 * hh + 16 * t, slot = 8 * hh + t;
                a0 = Q2KStep(w0 + qs, x0, x1, x2, x3, s + slot, a0);
                a1 = Q2KStep(w1 + qs, x0, x1, x2, x3, s + 32 + slot, a1);
                a2 = Q2KStep(w2 + qs, x0, x1, x2, x3, s + 64 + slot, a2);
                a3 = Q2KStep(w3 + qs, x0, x1, x2, x3, s + 96 + slot, a3);
            }
        }
        y[0] = Vector512.Sum(a0); y[1] = Vector512.Sum(a1); y[2] = Vector512.Sum(a2); y[3] = Vector512.Sum(a3);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Q2KStep(byte* qs, Vector512<float> x0, Vector512<float> x1, Vector512<float> x2, Vector512<float> x3, float* s, Vector512<float> total)
    {
        Vector512<int> a = Avx512F.ConvertToVector512Int32(Vector128.Load(qs)), two = Vector512.Create(3);
        total = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(a & two) * x0, Vector512.Create(s[0]), total);
        total = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(Vector512.ShiftRightLogical(a, 2) & two) * x1, Vector512.Create(s[2]), total);
        total = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(Vector512.ShiftRightLogical(a, 4) & two) * x2, Vector512.Create(s[4]), total);
        return Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(Vector512.ShiftRightLogical(a, 6)) * x3, Vector512.Create(s[6]), total);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Q2KNarrow(byte* w0, byte* w1, byte* w2, byte* w3, long groupBytes, float* x, float* sums, int blocks, float* y)
    {
        float* halves = HalfTable.Pointer;
        float* s = stackalloc float[4 * 32];
        byte* next = w0 + groupBytes;
        int stride = (int)(groupBytes / blocks);
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        for (int b = 0; b < blocks; b++)
        {
            Prefetch(next + (long)b * stride, stride);
            int at = b * 84;
            ChunkedQuant.Q2_K.Scales(w0 + at, halves, s, s + 16);
            ChunkedQuant.Q2_K.Scales(w1 + at, halves, s + 32, s + 48);
            ChunkedQuant.Q2_K.Scales(w2 + at, halves, s + 64, s + 80);
            ChunkedQuant.Q2_K.Scales(w3 + at, halves, s + 96, s + 112);
            Vector256<float> xsLow = Vector256.Load(sums + 16 * b), xsHigh = Vector256.Load(sums + 16 * b + 8);
            a0 = Vector256.FusedMultiplyAdd(Vector256.Load(s + 24), xsHigh, Vector256.FusedMultiplyAdd(Vector256.Load(s + 16), xsLow, a0));
            a1 = Vector256.FusedMultiplyAdd(Vector256.Load(s + 56), xsHigh, Vector256.FusedMultiplyAdd(Vector256.Load(s + 48), xsLow, a1));
            a2 = Vector256.FusedMultiplyAdd(Vector256.Load(s + 88), xsHigh, Vector256.FusedMultiplyAdd(Vector256.Load(s + 80), xsLow, a2));
            a3 = Vector256.FusedMultiplyAdd(Vector256.Load(s + 120), xsHigh, Vector256.FusedMultiplyAdd(Vector256.Load(s + 112), xsLow, a3));
            float* xb = x + 256 * b;
            for (int step = 0; step < 8; step++)
            {
                int hh = step >> 2, l = 8 * (step & 3);
                float* xh = xb + 128 * hh + l;
                Vector256<float> x0 = Vector256.Load(xh), x1 = Vector256.Load(xh + 32), x2 = Vector256.Load(xh + 64), x3 = Vector256.Load(xh + 96);
                int qs = at + 16 + 32 * hh + l, slot = 8 * hh + (l >> 4);
                a0 = Q2KStep(w0 + qs, x0, x1, x2, x3, s + slot, a0);
                a1 = Q2KStep(w1 + qs, x0, x1, x2, x3, s + 32 + slot, a1);
                a2 = Q2KStep(w2 + qs, x0, x1, x2, x3, s + 64 + slot, a2);
                a3 = Q2KStep(w3 + qs, x0, x1, x2, x3, s + 96 + slot, a3);
            }
        }
        y[0] = Vector256.Sum(a0); y[1] = Vector256.Sum(a1); y[2] = Vector256.Sum(a2); y[3] = Vector256.Sum(a3);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Q2KStep(byte* qs, Vector256<float> x0, Vector256<float> x1, Vector256<float> x2, Vector256<float> x3, float* s, Vector256<float> total)
    {
        Vector256<int> a = Avx2.ConvertToVector256Int32(qs), two = Vector256.Create(3);
        total = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(a & two) * x0, Vector256.Create(s[0]), total);
        total = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(Vector256.ShiftRightLogical(a, 2) & two) * x1, Vector256.Create(s[2]), total);
        total = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(Vector256.ShiftRightLogical(a, 4) & two) * x2, Vector256.Create(s[4]), total);
        return Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(Vector256.ShiftRightLogical(a, 6)) * x3, Vector256.Create(s[6]), total);
    }
}
