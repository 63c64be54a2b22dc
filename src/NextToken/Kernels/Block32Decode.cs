using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using NextToken.Tensors;

namespace NextToken.Kernels;

/// <summary>
/// Exact AVX2 decode of the 32-value block types Q4_1, Q5_0, Q5_1, IQ4_NL and of IQ4_XS (IQ4_NL values in 256-value
/// super-blocks), four rows at a time, with x placed once per matmul call (<see cref="Prepare"/>) so each block's
/// quants are used where they lie in a register instead of being widened eight at a time.
/// </summary>
/// <remarks>
/// A block's 32 integer values (q, q | h·16, or an IQ4 grid value + 128) are first made as 32 bytes in one register,
/// value v in byte v: its 16 stored bytes loaded into both 128-bit halves (<c>vbroadcasti128</c>: a load), the high
/// half's dwords shifted right by 4 (<c>vpsrlvd</c>) and masked to nibbles; Q5's fifth bits spread to bit 4 of their
/// bytes (the 32-bit word broadcast, one <c>vpshufb</c> giving byte v the word's byte v/8, a bit mask, a compare, an
/// AND, an OR); IQ4's grid looked up by one <c>vpshufb</c>. Then byte j of each dword is ANDed in place: u·2^(8j),
/// converted exactly and multiplied by x·2^(−8j) (placed so dword i of the low half holds value 4i + j and of the high
/// half 16 + 4i + j), so each product is u·x rounded once, as the float kernel's. Per block and row: 2 nibble ops,
/// 4 ANDs, 4 conversions, 4 multiply(-add)s, 1 FMA by d (Q4_1/Q5_1 one more by the minimum against Σx) — Q4_1 15–16
/// vector operations, 9–10 of them conversions and FMAs; Q5_0/Q5_1 5 more for the fifth bit; IQ4 1 shuffle more, and
/// its top byte (grid + 128 up to 241, which masked in place would read as negative) is shifted down instead of masked
/// and meets x unscaled (x·2⁻²⁴·2²⁴, exact, once per block). The float kernel
/// (<see cref="ChunkedQuant"/>) took 4 widening loads, 2–4 shifts, 4 ANDs, 4 conversions and 6–7 FMAs per block and
/// row, and Q5's fifth bit 5 operations per 8 values. Offsets (Q5_0's −16, IQ4's −128 for all four bytes)
/// are o·Σx per lane, made once per block for the four rows.
/// Scaling x by 2^−24 is exact while the result stays normal: <see cref="Prepare"/> returns false if a nonzero |x|
/// is below 2⁻¹⁰² or an x is infinite or NaN, and the caller then keeps the float kernel (which also gives the
/// non-finite results of such inputs exactly as before).
/// Zen 5, AVX2 emulated, one thread (<c>bench -- --alternate-block32</c>): resident (64 rows × 2048, min of 2000), cycles
/// per 32 values and row, float kernel → this: Q4_1 7.2 → 5.8, Q5_0 13.6 → 7.8, Q5_1 13.5 → 8.4, IQ4_NL 10.5 → 6.4,
/// IQ4_XS 13.2 → 6.7 (the bound by 4 vector pipes: 4, 5, 5.25, 4.4, 4.6); every matrix of the 1.1B files from the mapping,
/// min CPU time of 6: 0.52, 0.54, 0.50, 0.31, 0.52× the time. Lost: row by row with x as memory operands (1.04–1.7× the
/// time: the offsets and constants are made per row), two rows per pass (1.1×), the minimum's term off the accumulator's
/// chain (no change). Eleventh session: IQ4's top byte shifted down instead of masked and sign-flipped; resident, best of
/// 5 alternating processes (min of 1500 each, load 7–9), ns per 32 values and row IQ4_NL 1.715 → 1.642, IQ4_XS 1.804 →
/// 1.770 (a first form, sharing Dot4Block32: 6.47 → 5.98 and 6.98 → 6.41 cycles); every IQ4 matrix of the 1.1B files from
/// the mapping (min CPU of 10, best of 4 alternating processes, load 3–11) 58.4 → 57.5 and 67.0 → 63.7 ms.
/// IQ4_NL has its own loop (<see cref="Dot4IQ4_NL"/>): sharing <see cref="Dot4Block32{T}"/> changed the JIT's register
/// allocation of Q5_0 there (2 spills more per block), so Q4_1/Q5_0/Q5_1 keep their code instruction for instruction.
/// Measured on this Zen 5 (AVX2):
/// conversions and shifts share two pipes (together 2 per cycle), FMAs and shuffles two others, so a shift for the
/// Q4_1/Q5 top byte (in place of its AND) lost (1.16× Q4_1); also lost or no change: x and the constants as memory
/// operands of each row (1.3–1.9×: per-row loads cost more than the spills they remove), x alone so (1.01×, 4 spills
/// fewer), two blocks per iteration (0.99–1.1×), two rows interleaved statement by statement (0.97–1.03×), the four
/// products summed as a tree (1.03–1.08×), one row per pass (1.02–1.25×).
/// Errors (<c>Block32DecodeTests</c>): 1–6·10⁻⁸ of Σ|w·x| on random blocks (float kernel 0.7–3.6·10⁻⁸),
/// ≤ 1.2·10⁻⁷ on the fixtures' tensors with inputs spread over three decades.
/// </remarks>
internal static unsafe class Block32Decode
{
    /// <summary>Floats per 32 values of <see cref="Prepare"/>'s output: four 8-lane vectors of placed x, then Σx per lane.</summary>
    public const int PreparedFloats = 40;

    public static bool Decodes(GgmlType type) => type is GgmlType.Q4_1 or GgmlType.Q5_0 or GgmlType.Q5_1 or GgmlType.IQ4_NL or GgmlType.IQ4_XS;

    public static bool IsSupported => Avx2.IsSupported && Fma.IsSupported;

    /// <summary>The stored block size of a handled type (IQ4_XS: per 256 values).</summary>
    public static int BlockBytes(GgmlType type) => type switch
    {
        GgmlType.Q4_1 => 20,
        GgmlType.Q5_0 => 22,
        GgmlType.Q5_1 => 24,
        GgmlType.IQ4_NL => 18,
        GgmlType.IQ4_XS => 136,
        _ => throw new NotSupportedException($"no placed-byte kernel for {type}"),
    };

    /// <summary>
    /// x (n values, a multiple of 32) placed for <see cref="Dot4"/>: per block, vector j lane i (0–3) holds x[4i + j]·2^(−8j)
    /// and lane 4 + i holds x[16 + 4i + j]·2^(−8j) (the value in byte j of dword i of each half), then the lanes' sums
    /// x[4i] + … + x[4i + 3] unscaled. False (prepared unusable) if some x is not finite or a nonzero |x| is below 2⁻¹⁰²
    /// (x·2⁻²⁴ would leave float's normal range); the caller then takes the float kernel.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static bool Prepare(float* x, int n, float* prepared)
    {
        if (!IsSupported) throw new PlatformNotSupportedException("the placed-byte kernels need AVX2 and FMA");
        if (n % 32 != 0) throw new ArgumentException($"placing x for 32-value blocks needs a multiple of 32 values, not {n}");
        Vector256<float> s1 = Vector256.Create(1f / 256), s2 = Vector256.Create(1f / 65536), s3 = Vector256.Create(1f / 16777216);
        Vector256<int> magnitude = Vector256.Create(int.MaxValue), largest = Vector256<int>.Zero;
        Vector256<uint> smallest = Vector256<uint>.AllBitsSet; // least (|x| bits − 1): zero wraps to the top
        for (int b = 0; b < n / 32; b++)
        {
            float* xb = x + 32 * b, p = prepared + PreparedFloats * b;
            Vector256<float> v0 = Vector256.Load(xb), v1 = Vector256.Load(xb + 8), v2 = Vector256.Load(xb + 16), v3 = Vector256.Load(xb + 24);
            Vector256<int> a0 = v0.AsInt32() & magnitude, a1 = v1.AsInt32() & magnitude, a2 = v2.AsInt32() & magnitude, a3 = v3.AsInt32() & magnitude;
            largest = Avx2.Max(largest, Avx2.Max(Avx2.Max(a0, a1), Avx2.Max(a2, a3)));
            smallest = Avx2.Min(smallest, Avx2.Min(Avx2.Min(a0.AsUInt32() - Vector256<uint>.One, a1.AsUInt32() - Vector256<uint>.One),
                                                   Avx2.Min(a2.AsUInt32() - Vector256<uint>.One, a3.AsUInt32() - Vector256<uint>.One)));
            (Vector256<float> p0, Vector256<float> p1, Vector256<float> p2, Vector256<float> p3) = Lanes(v0, v1, v2, v3);
            p0.Store(p);
            (p1 * s1).Store(p + 8);
            (p2 * s2).Store(p + 16);
            (p3 * s3).Store(p + 24);
            ((p0 + p1) + (p2 + p3)).Store(p + 32);
        }
        // 2^-102 is 0x0C800000: x·2^-24 stays a normal float. 0x7F800000 and above: infinity or NaN.
        return !Vector256.LessThanAny(smallest, Vector256.Create(0x0C800000u - 1)) && !Vector256.GreaterThanOrEqualAny(largest, Vector256.Create(0x7F800000));
    }

    /// <summary>
    /// The 32 values of v0 … v3 (x[0..31]) as four vectors j = 0 … 3 whose lane k holds x[4k + j]: lane k of a 32-bit
    /// sum over 4 consecutive bytes (<c>vpmaddwd</c> after <c>vpmaddubsw</c>), or dword k of a block's 32 bytes. A 4 × 4
    /// transpose in each 128-bit half (rows x[4i … 4i + 3] in the low half, x[16 + 4i …] in the high half).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static (Vector256<float>, Vector256<float>, Vector256<float>, Vector256<float>) Lanes(Vector256<float> v0, Vector256<float> v1, Vector256<float> v2, Vector256<float> v3)
    {
        Vector256<float> r0 = Avx.Permute2x128(v0, v2, 0x20), r1 = Avx.Permute2x128(v0, v2, 0x31);
        Vector256<float> r2 = Avx.Permute2x128(v1, v3, 0x20), r3 = Avx.Permute2x128(v1, v3, 0x31);
        Vector256<float> t0 = Avx.UnpackLow(r0, r1), t1 = Avx.UnpackHigh(r0, r1), t2 = Avx.UnpackLow(r2, r3), t3 = Avx.UnpackHigh(r2, r3);
        return (Avx.Shuffle(t0, t2, 0x44), Avx.Shuffle(t0, t2, 0xEE), Avx.Shuffle(t1, t3, 0x44), Avx.Shuffle(t1, t3, 0xEE));
    }

    /// <summary>
    /// y[0..3] = rows w, w + rowBytes, w + 2·rowBytes, w + 3·rowBytes (n values each) times x as <see cref="Prepare"/> placed it.
    /// AVX2 and FMA.
    /// </summary>
    public static void Dot4(GgmlType type, byte* w, long rowBytes, float* prepared, int n, float* y)
    {
        if (!IsSupported) throw new PlatformNotSupportedException("the placed-byte kernels need AVX2 and FMA");
        int values = type == GgmlType.IQ4_XS ? 256 : 32;
        if (n <= 0 || n % values != 0) throw new ArgumentException($"a {type} row holds whole blocks of {values} values, not {n}", nameof(n));
        switch (type)
        {
            case GgmlType.Q4_1: Dot4Block32<Q4_1>(w, rowBytes, prepared, n / 32, y); break;
            case GgmlType.Q5_0: Dot4Block32<Q5_0>(w, rowBytes, prepared, n / 32, y); break;
            case GgmlType.Q5_1: Dot4Block32<Q5_1>(w, rowBytes, prepared, n / 32, y); break;
            case GgmlType.IQ4_NL: Dot4IQ4_NL(w, rowBytes, prepared, n / 32, y); break;
            case GgmlType.IQ4_XS: Dot4IQ4_XS(w, rowBytes, prepared, n / 256, y); break;
            default: throw new NotSupportedException($"no placed-byte kernel for {type}");
        }
    }

    /// <summary>
    /// Four rows of 32-value blocks. Pointers step once per block (the scalar address work shares ports with the vectors);
    /// each step prefetches the same share of the next four rows (the hardware prefetcher stops at the mapping's 4 KB pages).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Dot4Block32<T>(byte* w, long rowBytes, float* prepared, int blocks, float* y) where T : struct, IFormat
    {
        float* halves = HalfTable.Pointer;
        int prefetchStride = 4 * T.Bytes;
        byte* w1 = w + rowBytes, w2 = w + 2 * rowBytes, w3 = w + 3 * rowBytes, next = w + 4 * rowBytes;
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        for (float* p = prepared, end = prepared + PreparedFloats * blocks; p < end; p += PreparedFloats, w += T.Bytes, w1 += T.Bytes, w2 += T.Bytes, w3 += T.Bytes, next += prefetchStride)
        {
            Sse.Prefetch0(next);
            Sse.Prefetch0(next + 64);
            Vector256<float> xs = Vector256.Load(p + 32);
            // The offset term every row's chain starts from (0 for the formats with a minimum, added after the scale instead).
            Vector256<float> offset = T.Offset(xs, p);
            a0 = Row<T>(w, p, xs, offset, halves, a0);
            a1 = Row<T>(w1, p, xs, offset, halves, a1);
            a2 = Row<T>(w2, p, xs, offset, halves, a2);
            a3 = Row<T>(w3, p, xs, offset, halves, a3);
        }
        y[0] = Vector256.Sum(a0); y[1] = Vector256.Sum(a1); y[2] = Vector256.Sum(a2); y[3] = Vector256.Sum(a3);
    }

    /// <summary>IQ4_NL's four rows: as <see cref="Dot4Block32{T}"/>, the top byte through <see cref="PlacedIQ4"/> (its own loop, so the other formats' code stays as it was).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Dot4IQ4_NL(byte* w, long rowBytes, float* prepared, int blocks, float* y)
    {
        float* halves = HalfTable.Pointer;
        const int PrefetchStride = 4 * 18;
        byte* w1 = w + rowBytes, w2 = w + 2 * rowBytes, w3 = w + 3 * rowBytes, next = w + 4 * rowBytes;
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        for (float* p = prepared, end = prepared + PreparedFloats * blocks; p < end; p += PreparedFloats, w += 18, w1 += 18, w2 += 18, w3 += 18, next += PrefetchStride)
        {
            Sse.Prefetch0(next);
            Sse.Prefetch0(next + 64);
            Vector256<float> offset = IQ4Offset(Vector256.Load(p + 32)), top = TopX(p);
            a0 = Vector256.FusedMultiplyAdd(PlacedIQ4(IQ4(w + 2), p, top, offset), Vector256.Create(HalfTable.ToSingle(halves, ref *w)), a0);
            a1 = Vector256.FusedMultiplyAdd(PlacedIQ4(IQ4(w1 + 2), p, top, offset), Vector256.Create(HalfTable.ToSingle(halves, ref *w1)), a1);
            a2 = Vector256.FusedMultiplyAdd(PlacedIQ4(IQ4(w2 + 2), p, top, offset), Vector256.Create(HalfTable.ToSingle(halves, ref *w2)), a2);
            a3 = Vector256.FusedMultiplyAdd(PlacedIQ4(IQ4(w3 + 2), p, top, offset), Vector256.Create(HalfTable.ToSingle(halves, ref *w3)), a3);
        }
        y[0] = Vector256.Sum(a0); y[1] = Vector256.Sum(a1); y[2] = Vector256.Sum(a2); y[3] = Vector256.Sum(a3);
    }

    /// <summary>total + one block of one row: d·(offset + Σ u·x) (+ m·Σx).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Row<T>(byte* block, float* p, Vector256<float> xs, Vector256<float> offset, float* halves, Vector256<float> total) where T : struct, IFormat
    {
        Vector256<float> sum = Placed<T>(T.Values(block), p, offset);
        total = Vector256.FusedMultiplyAdd(sum, Vector256.Create(HalfTable.ToSingle(halves, ref *block)), total);
        return T.HasMin ? Vector256.FusedMultiplyAdd(xs, Vector256.Create(HalfTable.ToSingle(halves, ref block[2])), total) : total;
    }

    /// <summary>
    /// offset + Σ_j (byte j of each dword, in place: u·2^(8j)) · x·2^(−8j), one chain. The top byte reads as a signed
    /// 32-bit lane: Q4_1's and Q5's values stay below 128 (IQ4's, up to 241, take <see cref="PlacedIQ4"/>).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Placed<T>(Vector256<byte> values, float* p, Vector256<float> offset) where T : struct, IFormat
    {
        Vector256<int> v = values.AsInt32();
        Vector256<float> sum = T.StartsAtZero
            ? Vector256.ConvertToSingle(v & Vector256.Create(0xFF)) * Vector256.Load(p)
            : Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(v & Vector256.Create(0xFF)), Vector256.Load(p), offset);
        sum = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(v & Vector256.Create(0xFF00)), Vector256.Load(p + 8), sum);
        sum = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(v & Vector256.Create(0xFF0000)), Vector256.Load(p + 16), sum);
        Vector256<int> top = v & Vector256.Create(unchecked((int)0xFF000000));
        return Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(top), Vector256.Load(p + 24), sum);
    }

    /// <summary>
    /// As <see cref="Placed{T}"/> for IQ4 (grid value + 128, 1 … 241): the top byte, which masked in place would read as
    /// negative, is shifted down instead (<c>vpsrld</c>, where a mask and a sign flip took two operations) and meets x
    /// unscaled (<paramref name="top"/>, <see cref="TopX"/>); the offset covers all four bytes.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> PlacedIQ4(Vector256<byte> values, float* p, Vector256<float> top, Vector256<float> offset)
    {
        Vector256<int> v = values.AsInt32();
        Vector256<float> sum = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(v & Vector256.Create(0xFF)), Vector256.Load(p), offset);
        sum = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(v & Vector256.Create(0xFF00)), Vector256.Load(p + 8), sum);
        sum = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(v & Vector256.Create(0xFF0000)), Vector256.Load(p + 16), sum);
        return Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(Avx2.ShiftRightLogical(v, 24)), top, sum);
    }

    /// <summary>The top byte's x unscaled again (placed ·2⁻²⁴, times 2²⁴: exact), once per block for the four rows.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> TopX(float* p) => Vector256.Load(p + 24) * Vector256.Create(16777216f);

    /// <summary>IQ4's offset: all four bytes read as grid value + 128, so −128·Σx (a power of two, exact).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> IQ4Offset(Vector256<float> xs) => xs * Vector256.Create(-128f);

    /// <summary>A block's 16 nibble bytes as 32 bytes, value v in byte v: low nibbles in the low half, high nibbles in the high half.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<byte> Nibbles(byte* qs) =>
        Avx2.ShiftRightLogicalVariable(Avx2.BroadcastVector128ToVector256((uint*)qs), Vector256.Create(0u, 0, 0, 0, 4, 4, 4, 4)).AsByte() & Vector256.Create((byte)0x0F);

    /// <summary>16 in byte v where bit v of the 32-bit word at qh is set, else 0.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<byte> FifthBits(byte* qh)
    {
        // Byte v takes the word's byte v / 8 (the dword is in every 32-bit lane, so bytes 0–3 of each half hold it).
        Vector256<byte> spread = Avx2.Shuffle(Vector256.Create(*(uint*)qh).AsByte(),
                                              Vector256.Create((byte)0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3));
        Vector256<byte> bit = Vector256.Create(0x8040201008040201ul).AsByte();
        return Vector256.Equals(spread & bit, bit) & Vector256.Create((byte)0x10);
    }

    /// <summary>The IQ4 grid + 128 (1 … 241), for <c>vpshufb</c> in each half.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<byte> Grid() =>
        Vector256.Create((byte)1, 24, 45, 63, 79, 93, 106, 118, 129, 141, 153, 166, 181, 197, 217, 241, 1, 24, 45, 63, 79, 93, 106, 118, 129, 141, 153, 166, 181, 197, 217, 241);

    // ---- IQ4_XS (136 B per 256 values): f16 d, 16 bits of the scales' high pairs, 4 bytes of their low nibbles, 128
    // bytes of nibbles (16 per 32 values, laid out as IQ4_NL's). Sub-block j's scale: d·(ls_j − 32), as the reference.

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Dot4IQ4_XS(byte* w, long rowBytes, float* prepared, int superBlocks, float* y)
    {
        float* halves = HalfTable.Pointer;
        float* scales = stackalloc float[32]; // 8 sub-block scales per row
        const int PrefetchStride = 4 * 136 / 8; // the next four rows' share per sub-block step
        byte* w1 = w + rowBytes, w2 = w + 2 * rowBytes, w3 = w + 3 * rowBytes, next = w + 4 * rowBytes;
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        float* p = prepared;
        for (int s = 0; s < superBlocks; s++, w += 136, w1 += 136, w2 += 136, w3 += 136)
        {
            SubBlockScales(w, halves, scales);
            SubBlockScales(w1, halves, scales + 8);
            SubBlockScales(w2, halves, scales + 16);
            SubBlockScales(w3, halves, scales + 24);
            for (int j = 0; j < 8; j++, p += PreparedFloats, next += PrefetchStride)
            {
                Sse.Prefetch0(next);
                Sse.Prefetch0(next + 64);
                Vector256<float> offset = IQ4Offset(Vector256.Load(p + 32)), top = TopX(p);
                int at = 8 + 16 * j;
                a0 = Vector256.FusedMultiplyAdd(PlacedIQ4(IQ4(w + at), p, top, offset), Vector256.Create(scales[j]), a0);
                a1 = Vector256.FusedMultiplyAdd(PlacedIQ4(IQ4(w1 + at), p, top, offset), Vector256.Create(scales[8 + j]), a1);
                a2 = Vector256.FusedMultiplyAdd(PlacedIQ4(IQ4(w2 + at), p, top, offset), Vector256.Create(scales[16 + j]), a2);
                a3 = Vector256.FusedMultiplyAdd(PlacedIQ4(IQ4(w3 + at), p, top, offset), Vector256.Create(scales[24 + j]), a3);
            }
        }
        y[0] = Vector256.Sum(a0); y[1] = Vector256.Sum(a1); y[2] = Vector256.Sum(a2); y[3] = Vector256.Sum(a3);
    }

    /// <summary>A super-block's 8 scales d·(ls − 32), each ls = 4 low bits | 2 high bits · 16, unpacked in one register.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void SubBlockScales(byte* block, float* halves, float* scales)
    {
        Vector256<uint> low = Avx2.ShiftRightLogicalVariable(Vector256.Create(*(uint*)(block + 4)), Vector256.Create(0u, 4, 8, 12, 16, 20, 24, 28)) & Vector256.Create(15u);
        Vector256<uint> high = Avx2.ShiftRightLogicalVariable(Vector256.Create((uint)*(ushort*)(block + 2) << 4), Vector256.Create(0u, 2, 4, 6, 8, 10, 12, 14)) & Vector256.Create(0x30u);
        (Vector256.ConvertToSingle((low | high).AsInt32() - Vector256.Create(32)) * Vector256.Create(HalfTable.ToSingle(halves, ref *block))).Store(scales);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<byte> IQ4(byte* qs) => Avx2.Shuffle(Grid(), Nibbles(qs));

    // ---- the formats: a struct each, so each kernel is compiled for its own ----

    private interface IFormat
    {
        static abstract int Bytes { get; }
        /// <summary>Value = d·u + m (the minimum at byte 2), added as m·Σx.</summary>
        static abstract bool HasMin { get; }
        /// <summary>No offset term: the chain starts with a multiply.</summary>
        static abstract bool StartsAtZero { get; }
        /// <summary>The block's 32 values u, value v in byte v.</summary>
        static abstract Vector256<byte> Values(byte* block);
        /// <summary>The chain's start from the lanes' Σx (and the placed x at p).</summary>
        static abstract Vector256<float> Offset(Vector256<float> xs, float* p);
    }

    private struct Q4_1 : IFormat
    {
        public static int Bytes => 20;
        public static bool HasMin => true;
        public static bool StartsAtZero => true;
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<byte> Values(byte* block) => Nibbles(block + 4);
        public static Vector256<float> Offset(Vector256<float> xs, float* p) => default;
    }

    private struct Q5_0 : IFormat
    {
        public static int Bytes => 22;
        public static bool HasMin => false;
        public static bool StartsAtZero => false;
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<byte> Values(byte* block) => Nibbles(block + 6) | FifthBits(block + 2);
        // (q − 16)·x = q·x − 16·x: a multiply by a power of two, exact.
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<float> Offset(Vector256<float> xs, float* p) => xs * Vector256.Create(-16f);
    }

    private struct Q5_1 : IFormat
    {
        public static int Bytes => 24;
        public static bool HasMin => true;
        public static bool StartsAtZero => true;
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<byte> Values(byte* block) => Nibbles(block + 8) | FifthBits(block + 4);
        public static Vector256<float> Offset(Vector256<float> xs, float* p) => default;
    }
}
