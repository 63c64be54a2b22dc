using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using NextToken.Tensors;

namespace NextToken.Kernels;

/// <summary>
/// Exact AVX-512 Q4_K decode against float x through permute tables: each sub-block's 16 possible weights d·sc·q
/// (q = 0 … 15) are one register, and <c>vpermps</c> picks each value's weight by the low 4 bits of its widened nibble
/// byte (it ignores the rest, so no mask and no integer-to-float conversion; high nibbles take one shift first). Each
/// product w·x is then one multiply-add into the row's sum, the minimums' −dmin·m·Σx once per super-block (Σx of each
/// 32 made once per call, <see cref="KQuantPlanes.SubBlockSums"/>).
/// </summary>
/// <remarks>
/// Why: the float kernel (<see cref="KQuantRows"/>, 78 vector operations per row and 256 values plus ~22
/// general-purpose ones for the scales) and the 24-bit planes (<see cref="KQuantPlanesWide"/>, 6 integer multiplies per
/// 64 values plus unpacking, scale placement and a 15-operation combination per super-block) keep the vector ports
/// busy for ~30 cycles per 256 values and row. Here per 64 values and row: one vpmovzxwd of x's arranged order
/// (<see cref="Arrange"/>), 3 shifts, 4 permutes, 4 multiply-adds and 2 table multiplies; per super-block and row ~8 more
/// for the scales (unpacked for four rows together in vector registers, a block ahead so the tables' broadcast loads
/// never wait on the store just made: reading them right after it cost ~15% resident).
/// Measured on a Zen 5 (EPYC, AVX-512; TableDecodeBenchmarks, load 5–14): JIT output per loop pass (4 rows, one
/// super-block) ~446 instructions, ~297 vector (planes 355, 303): the permutes and widening loads share the shuffle
/// pipes, so resident in L2 it is 1.17× the plane kernel's time (34 against 29 cycles per 256 values and row); from
/// memory, one thread, CPU time, min of 6, alternating in one process (all Q4_K matrices of the 1.1B/3B files): 0.91–0.95×
/// at load 5–10 (seven of seven runs), 0.84–1.09× at load 12–14 (median 0.99). Both read the mapped rows close to
/// what a bare read of the same four-rows-in-step pattern gets (17–20 GB/s one thread on 2048-value rows, 23–26 reading
/// linearly): the access pattern, not the arithmetic, bounds both. Lost: one row at a time, reading linearly (1.3–1.4×:
/// one stream's prefetches keep too few lines in flight), prefetching the next four rows whole at the call's start
/// (1.15–1.3×, though a bare read gains 15% from it), the high nibbles through conversions instead of permutes (resident
/// 1.06× the planes, from memory 1.02–1.13×), the group loop written out (no change from memory).
/// Exactness: d (f16, 11 bits) · sc (6 bits) · q (4 bits) fits float's 24 bits, so every table entry is the exact weight
/// and each product is rounded once, in its multiply-add (the float kernel rounded q·x, Σ per 32 values, then its scaling);
/// measured against float64 1.3·10⁻⁶ of Σ|w·x| at most on real rows (float kernel 0.9–2.4·10⁻⁶).
/// </remarks>
internal static unsafe class KQuantTablesWide
{
    public static bool IsSupported => Avx512BW.IsSupported && Avx512F.IsSupported && Vector512.IsHardwareAccelerated;

    public static bool Handles(GgmlType type) => type == GgmlType.Q4_K;

    /// <summary>
    /// One stored Q4_K row against x (n values in their natural order, n a multiple of 256), with Σx per 32 from
    /// <see cref="KQuantPlanes.SubBlockSums"/>: x arranged here (allocates; decode arranges once per call, <see cref="Dot4"/>).
    /// </summary>
    public static float Dot(GgmlType type, ReadOnlySpan<byte> row, ReadOnlySpan<float> x, ReadOnlySpan<float> sums, int n)
    {
        if (!Handles(type)) throw new NotSupportedException($"no permute-table kernel for {type}");
        if (!IsSupported) throw new PlatformNotSupportedException("the permute-table kernel needs AVX-512 F and BW");
        if (n <= 0 || n % 256 != 0) throw new ArgumentException($"n must be a positive multiple of 256 (got {n})", nameof(n));
        if (row.Length < n / 256 * 144L) throw new ArgumentException($"a Q4_K row of {n} values needs {n / 256 * 144} row bytes (got {row.Length})", nameof(row));
        if (x.Length < n) throw new ArgumentException($"x needs {n} values (got {x.Length})", nameof(x));
        if (sums.Length < n / 32) throw new ArgumentException($"x needs {n / 32} sub-block sums (got {sums.Length})", nameof(sums));
        float y;
        var arranged = new float[n];
        fixed (byte* w = row)
        fixed (float* xp = x, ap = arranged, xs = sums)
        {
            Arrange(xp, n, ap);
            Dot4(type, w, 0, 1, ap, xs, n, &y);
        }
        return y;
    }

    /// <summary>
    /// y[0 … rows − 1] = rows w, w + rowBytes, … (n values each, n a multiple of 256) times x, given as <see cref="Arrange"/>
    /// makes it, with its sums of 32 (<see cref="KQuantPlanes.SubBlockSums"/>); rows is 1 to 4. AVX-512 F and BW.
    /// </summary>
    public static void Dot4(GgmlType type, byte* w, long rowBytes, int rows, float* x, float* sums, int n, float* y)
    {
        if (rows is < 1 or > 4) throw new ArgumentOutOfRangeException(nameof(rows), rows, "1 to 4 rows");
        if (!IsSupported) throw new PlatformNotSupportedException("the permute-table kernel needs AVX-512 F and BW");
        if (!Handles(type)) throw new NotSupportedException($"no permute-table kernel for {type}");
        if (n <= 0 || n % 256 != 0) throw new ArgumentException($"n must be a positive multiple of 256 (got {n})", nameof(n));
        // A missing row repeats row 0, its result not stored: the loop has no branch per row.
        byte* w1 = rows > 1 ? w + rowBytes : w, w2 = rows > 2 ? w + 2 * rowBytes : w, w3 = rows > 3 ? w + 3 * rowBytes : w;
        Vector128<float> result = Q4K(w, w1, w2, w3, rows * rowBytes, x, sums, n / 256);
        for (int r = 0; r < rows; r++) y[r] = result[r];
    }

    /// <summary>
    /// x (n values, a multiple of 32) arranged for the kernel: each 32 as its 16 even-indexed values, then its 16 odd
    /// ones (a widened 16-bit word holds the nibbles of bytes 2i and 2i + 1, so one vpmovzxwd and shifts by 0, 8, 4, 12
    /// give the even and odd values' indices of a sub-block). Made once per input, shared by all rows. A 32 holding an
    /// infinity or NaN becomes all NaN, so every row's dot is NaN, as the plane kernels' (an infinity alone could meet
    /// the minimum's opposite infinity, or not).
    /// </summary>
    public static void Arrange(float* x, int n, float* arranged)
    {
        if (n % 32 != 0) throw new ArgumentException($"n must be a multiple of 32 (got {n})", nameof(n));
        if (!IsSupported)
        {
            ArrangeReference(new ReadOnlySpan<float>(x, n), new Span<float>(arranged, n));
            return;
        }
        Vector512<int> even = Vector512.Create(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30), odd = even + Vector512<int>.One;
        for (int i = 0; i < n; i += 32)
        {
            Vector512<float> first = Vector512.Load(x + i), second = Vector512.Load(x + i + 16);
            if (!Vector512.EqualsAll((first - first) + (second - second), Vector512<float>.Zero)) // v − v is NaN for an infinity or NaN
                first = second = Vector512.Create(float.NaN);
            Avx512F.PermuteVar16x32x2(first, even, second).Store(arranged + i);
            Avx512F.PermuteVar16x32x2(first, odd, second).Store(arranged + i + 16);
        }
    }

    /// <summary>The scalar form of <see cref="Arrange"/>, value for value.</summary>
    public static void ArrangeReference(ReadOnlySpan<float> x, Span<float> arranged)
    {
        if (x.Length % 32 != 0 || arranged.Length < x.Length) throw new ArgumentException($"a multiple of 32 values into as many, not {x.Length} into {arranged.Length}");
        for (int k = 0; k < x.Length; k += 32)
        {
            bool finite = true;
            for (int i = k; i < k + 32; i++) finite &= float.IsFinite(x[i]);
            for (int i = 0; i < 32; i++) arranged[k + i % 2 * 16 + i / 2] = finite ? x[k + i] : float.NaN;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static Vector128<float> Q4K(byte* w0, byte* w1, byte* w2, byte* w3, long ahead, float* x, float* sums, int blocks)
    {
        float* halves = HalfTable.Pointer;
        // Two sets of the four rows' d·sc (16 floats a row, lanes 8–15 unused): a block's are stored while the one before
        // is multiplied, so the tables' broadcast loads never wait for a store just made (a narrow load inside a wide store).
        float* s = stackalloc float[2 * 64];
        // Two sums per row (even and odd values) keep two multiply-add chains per row in flight.
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default, c0 = default, c1 = default, c2 = default, c3 = default;
        Scales4(w0, w1, w2, w3, halves, sums, s, ref a0, ref a1, ref a2, ref a3);
        for (int b = 0; b < blocks; b++)
        {
            long at = (long)b * 144;
            byte* b0 = w0 + at, b1 = w1 + at, b2 = w2 + at, b3 = w3 + at;
            Prefetch(b0 + ahead);
            Prefetch(b1 + ahead);
            Prefetch(b2 + ahead);
            Prefetch(b3 + ahead);
            float* sb = s + 64 * (b & 1);
            if (b + 1 < blocks)
                Scales4(b0 + 144, b1 + 144, b2 + 144, b3 + 144, halves, sums + 8 * (b + 1), s + 64 * (~b & 1), ref a0, ref a1, ref a2, ref a3);
            float* xb = x + 256 * b;
            for (int g = 0; g < 4; g++)
            {
                Vector512<float> x0 = Vector512.Load(xb + 64 * g), x1 = Vector512.Load(xb + 64 * g + 16);
                Vector512<float> x2 = Vector512.Load(xb + 64 * g + 32), x3 = Vector512.Load(xb + 64 * g + 48);
                int q = 16 + 32 * g;
                Group(b0 + q, sb + 2 * g, x0, x1, x2, x3, ref a0, ref c0);
                Group(b1 + q, sb + 16 + 2 * g, x0, x1, x2, x3, ref a1, ref c1);
                Group(b2 + q, sb + 32 + 2 * g, x0, x1, x2, x3, ref a2, ref c2);
                Group(b3 + q, sb + 48 + 2 * g, x0, x1, x2, x3, ref a3, ref c3);
            }
        }
        return Vector128.Create(Vector512.Sum(a0 + c0), Vector512.Sum(a1 + c1), Vector512.Sum(a2 + c2), Vector512.Sum(a3 + c3));
    }

    /// <summary>Four rows' blocks: each row's d·sc stored at s + 16r, and its minimums' −dmin·m·Σx added to its sum (sums: the block's 8 Σx).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Scales4(byte* b0, byte* b1, byte* b2, byte* b3, float* halves, float* sums, float* s,
                                ref Vector512<float> a0, ref Vector512<float> a1, ref Vector512<float> a2, ref Vector512<float> a3)
    {
        Vector512<byte> packed = KQuantPlanesWide.Q45KScaleBytes4(b0, b1, b2, b3);
        // Σx of the 8 sub-blocks under the minimums' lanes 8–15 (lanes 0–7, under the scales, zero).
        Vector512<float> xs = Avx512F.InsertVector256(Vector512<float>.Zero, Vector256.Load(sums), 1);
        a0 = Scales(b0, halves, Avx512F.ExtractVector128(packed, 0), xs, s, a0);
        a1 = Scales(b1, halves, Avx512F.ExtractVector128(packed, 1), xs, s + 16, a1);
        a2 = Scales(b2, halves, Avx512F.ExtractVector128(packed, 2), xs, s + 32, a2);
        a3 = Scales(b3, halves, Avx512F.ExtractVector128(packed, 3), xs, s + 48, a3);
    }

    /// <summary>Prefetches a block of a later row (the hardware prefetcher stops at the 4 KB pages of the mapped file).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Prefetch(byte* at)
    {
        Sse.Prefetch0(at);
        Sse.Prefetch0(at + 64);
        Sse.Prefetch0(at + 128);
    }

    /// <summary>
    /// One row's scales: d·sc of its 8 sub-blocks stored at s (exact, 11 × 6 bits), and total − dmin·m·Σx of its 8
    /// minimums. bytes: the row's 8 scales then 8 minimums (<see cref="KQuantPlanesWide.Q45KScaleBytes4"/>).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Scales(byte* block, float* halves, Vector128<byte> bytes, Vector512<float> xs, float* s, Vector512<float> total)
    {
        Vector512<float> f = Vector512.ConvertToSingle(Avx512F.ConvertToVector512Int32(bytes));
        (f * Vector512.Create(HalfTable.ToSingle(halves, ref *block))).Store(s);
        return Avx512F.FusedMultiplyAddNegated(f * Vector512.Create(HalfTable.ToSingle(halves, ref block[2])), xs, total);
    }

    /// <summary>
    /// A row's 32-byte group of nibbles (sub-blocks 2g, 2g + 1, their d·sc at scale) against the arranged x0–x3 (2g's even
    /// and odd values, then 2g + 1's): a += even values' products, c += odd ones'.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Group(byte* q, float* scale, Vector512<float> x0, Vector512<float> x1, Vector512<float> x2, Vector512<float> x3,
                              ref Vector512<float> a, ref Vector512<float> c)
    {
        Vector512<float> steps = Vector512.Create(0f, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        Vector512<float> low = steps * Vector512.Create(scale[0]), high = steps * Vector512.Create(scale[1]);
        // Word i: byte 2i (nibbles at bits 0 and 4), byte 2i + 1 (bits 8 and 12); vpermps reads bits 0–3 of each lane.
        Vector512<uint> words = Avx512F.ConvertToVector512UInt32(Vector256.Load((ushort*)q));
        a = Vector512.FusedMultiplyAdd(Avx512F.PermuteVar16x32(low, words.AsInt32()), x0, a);
        c = Vector512.FusedMultiplyAdd(Avx512F.PermuteVar16x32(low, Vector512.ShiftRightLogical(words, 8).AsInt32()), x1, c);
        a = Vector512.FusedMultiplyAdd(Avx512F.PermuteVar16x32(high, Vector512.ShiftRightLogical(words, 4).AsInt32()), x2, a);
        c = Vector512.FusedMultiplyAdd(Avx512F.PermuteVar16x32(high, Vector512.ShiftRightLogical(words, 12).AsInt32()), x3, c);
    }
}
