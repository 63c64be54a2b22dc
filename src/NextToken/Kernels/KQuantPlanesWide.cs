using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using NextToken.Tensors;

namespace NextToken.Kernels;

/// <summary>
/// The 512-bit form of <see cref="KQuantPlanes"/>: exact Q2_K/Q3_K/Q4_K/Q5_K/Q6_K decode against the same split input (a
/// power-of-two scale and three signed-byte planes per 256 values, <see cref="KQuantPlanes.Split"/>), for AVX-512
/// machines, where the float kernels (<see cref="KQuantRows"/>, 78–110 vector operations per row and 256 values)
/// bound decode.
/// </summary>
/// <remarks>
/// Why: on AMD Zen 5 the 512-bit <c>vpmaddubsw</c> and <c>vpmaddwd</c> issue two per cycle (measured: 12 independent
/// chains, 0.14 ns each, as the 512-bit FMA), so 64 values and a row cost 3 + 3 multiplies, 3 adds and ~4 unpacking
/// operations, against the float kernels' 78–110 operations per 256. One 512-bit register holds a whole group of 64
/// values: Q4_K/Q5_K's 32 nibble bytes in both halves (<c>vshufi64x2</c>) shifted by 0 or 4 per 64-bit lane
/// (<c>vpsrlvq</c>) give the low nibbles (sub-block 2g) then the high ones (2g + 1), in the planes' order; Q6_K's two
/// adjacent 32-byte runs of low nibbles are one load. Each sub-block scale is placed under its values by one
/// <c>vpermd</c> of the block's scales held as pairs of equal 16-bit halves. Four rows go together: AVX-512's 32
/// registers hold each group's three plane vectors once for the four rows beside their 12 accumulators (row by row,
/// reading the planes as memory operands, measured 3–15% slower resident). .NET 10 exposes no 512-bit <c>vpdpbusd</c>
/// this CPU runs (<c>Avx10v1.V512</c> and <c>AvxVnniInt8.V512</c> are not reported; <c>AvxVnni</c> is 256-bit only).
/// Measured on a Zen 5 (EPYC, AVX-512, load 10–15; WidePlaneDecodeBenchmarks): resident in L2, cycles per 256 values
/// and row, float → planes (the split per 64 rows included, ~4 of them): Q4_K 28.6 → 30.0, Q5_K 41.9 → 33.3, Q6_K 40.2
/// → 32.9; from memory, one thread, CPU time (1.1B/3B files): Q4_K 0.87–0.90×, Q6_K 0.75–0.80×, Q5_K 0.71× the time.
/// Q2_K, Q3_K (resident, load ~12): 35.6 → 26.0, 48.2 → 33.3; from memory (1.1B Q2_K and Q3_K_M files) 0.73×, 0.79–0.83×.
/// Still ~2× the multiplies' bound (12 cycles per 256 and row): the unpacking, scale placement and the per-block
/// combination (15 operations) share the vector ports.
/// Q4_K/Q5_K since (issue #13, eleventh session): the A/B chunk arrangement (16-bit sums, see the Q4_K section), row by row with the
/// 12 arranged plane registers held, and the four rows' scales and minimums unpacked together in vector registers. JIT
/// output per loop pass (4 rows, one super-block each), Q4_K: 478 → 355 instructions (vector 332 → 303, general-purpose
/// 146 → 52), integer multiplies 96 → 72; Q5_K stack references 49 → 18. Resident 0.94–0.99× the time (Q5_K 0.97–0.99×);
/// from memory, one thread, CPU time, min of 4–8, old and new alternating in one process, load 8–19: 1.1B Q4_K
/// 0.88–1.00× (0.98–1.00× when the machine gave 17 GB/s, 0.88–0.93× at 12–13), 3B Q4_K_M's Q4_K 0.88–1.00× (twice
/// 1.09–1.23× at load ~11), 1.1B Q5_K_M's Q5_K 0.90–0.99×: fewer instructions help most when memory is slow to answer.
/// The same row-by-row order for Q6_K/Q2_K/Q3_K lost (1.04–1.17× resident, 1.07–1.18× from memory), as did prefetching
/// a fixed 1–2 KB ahead in each row instead of the next four rows' block (1.05–1.18×) and prefetching into L2 (±5%).
/// Integer ranges: each int32 lane covers 16 values of a super-block: |sum| ≤ 16·q·128·|sc| — Q4_K ≈ 1.9·10⁶,
/// Q5_K ≈ 4.0·10⁶, Q6_K 16·63·128·128 ≈ 1.65·10⁷, Q2_K 16·3·128·15 ≈ 9.2·10⁴, Q3_K 16·7·128·32 ≈ 4.6·10⁵ — all below 2²⁴, so converted to float exactly; pairs in
/// vpmaddubsw stay ≤ 2·63·128 (no saturation). The combination per super-block (float, ×2¹⁶, ×2⁸, ×s, ×d) and the
/// offsets o·Σx follow <see cref="KQuantPlanes"/>.
/// </remarks>
internal static unsafe class KQuantPlanesWide
{
    private const int BlockSize = KQuantPlanes.BlockSize, BlockBytes = KQuantPlanes.BlockBytes;

    public static bool IsSupported => Avx512BW.IsSupported && Avx512F.IsSupported && Vector512.IsHardwareAccelerated && KQuantPlanes.IsSupported;

    /// <summary>
    /// 64 values of a plane in their natural order: <see cref="KQuantPlanes.Split"/> stores each 64 as 8-byte pieces in the
    /// 256-bit kernel's order (<see cref="KQuantPlanes.Position"/>: pieces 0,4,2,6,1,5,3,7, a bit reversal, so the same
    /// <c>vpermq</c> undoes it); one permute per plane register, shared by the four rows.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<sbyte> Plane(sbyte* p) =>
        Avx512F.PermuteVar8x64(Vector512.Load((long*)p), Vector512.Create(0L, 4, 2, 6, 1, 5, 3, 7)).AsSByte();

    /// <summary>One stored row against one split input (as <see cref="KQuantPlanes.Dot"/>): the 512-bit kernel, or the scalar reference without AVX-512.</summary>
    public static float Dot(GgmlType type, ReadOnlySpan<byte> row, ReadOnlySpan<sbyte> planes, ReadOnlySpan<float> scales, ReadOnlySpan<float> sums, int n)
    {
        if (!IsSupported || !KQuantPlanes.Handles(type)) return (float)KQuantPlanes.Reference(type, row, planes, scales, sums, n, out _); // checks the arguments
        int width = KQuantRows.SumWidth(type);
        long need = n / BlockSize * (long)KQuantPlanes.WeightBlockBytes(type);
        if (n <= 0 || n % BlockSize != 0 || row.Length < need || planes.Length < 3L * n || scales.Length < n / BlockSize || sums.Length < n / width)
            KQuantPlanes.Reference(type, row, planes, scales, sums, n, out _); // throws the specific error
        float y;
        fixed (byte* w = row)
        fixed (sbyte* p = planes)
        fixed (float* s = scales, xs = sums)
            Dot4(type, w, 0, 1, p, s, xs, n, &y);
        return y;
    }

    /// <summary>The kernel's own integer sums of one super-block against one block of planes (each plane's lanes added), for the tests.</summary>
    internal static (long P0, long P1, long P2) BlockSums(GgmlType type, byte* block, sbyte* xb)
    {
        if (!IsSupported) throw new PlatformNotSupportedException("the 512-bit plane kernels need AVX-512 F and BW");
        Vector512<int> i0, i1, i2;
        switch (type)
        {
            case GgmlType.Q4_K: (i0, i1, i2) = Q45KSums<NoFifthBit>(block, xb); break;
            case GgmlType.Q5_K: (i0, i1, i2) = Q45KSums<FifthBit>(block, xb); break;
            case GgmlType.Q6_K: (i0, i1, i2, _) = Q6KSums(block, xb); break;
            case GgmlType.Q2_K: (i0, i1, i2) = Q23KSums<TwoBits>(block, xb); break;
            case GgmlType.Q3_K: (i0, i1, i2) = Q23KSums<ThirdBit>(block, xb); break;
            default: throw new NotSupportedException($"no 24-bit activation kernel for {type}");
        }
        return (Sum(i0), Sum(i1), Sum(i2));

        static long Sum(Vector512<int> v)
        {
            long total = 0;
            for (int i = 0; i < 16; i++) total += v[i];
            return total;
        }
    }

    /// <summary>
    /// y[0 … rows − 1] = rows w, w + rowBytes, … (n values each, n a multiple of 256) times the split input, as
    /// <see cref="KQuantPlanes.Dot4"/>; rows is 1 to 4. AVX-512 F and BW.
    /// </summary>
    public static void Dot4(GgmlType type, byte* w, long rowBytes, int rows, sbyte* planes, float* scales, float* sums, int n, float* y)
    {
        if (rows is < 1 or > 4) throw new ArgumentOutOfRangeException(nameof(rows), rows, "1 to 4 rows");
        if (!IsSupported) throw new PlatformNotSupportedException("the 512-bit plane kernels need AVX-512 F and BW");
        int blocks = n / BlockSize;
        // Four rows together: each group of 64 planes' values is loaded once into registers for the four (AVX-512 has 32,
        // enough for 12 accumulators, 3 planes and the rows' scales); a missing row repeats row 0, its result not stored.
        byte* w1 = rows > 1 ? w + rowBytes : w, w2 = rows > 2 ? w + 2 * rowBytes : w, w3 = rows > 3 ? w + 3 * rowBytes : w;
        long ahead = rows * rowBytes;
        Vector128<float> result = type switch
        {
            GgmlType.Q4_K => Q45K<NoFifthBit>(w, w1, w2, w3, ahead, planes, scales, sums, blocks),
            GgmlType.Q5_K => Q45K<FifthBit>(w, w1, w2, w3, ahead, planes, scales, sums, blocks),
            GgmlType.Q6_K => Q6K(w, w1, w2, w3, ahead, planes, scales, sums, blocks),
            GgmlType.Q2_K => Q23K<TwoBits>(w, w1, w2, w3, ahead, planes, scales, sums, blocks),
            GgmlType.Q3_K => Q23K<ThirdBit>(w, w1, w2, w3, ahead, planes, scales, sums, blocks),
            _ => throw new NotSupportedException($"no 24-bit activation kernel for {type}"),
        };
        for (int r = 0; r < rows; r++) y[r] = result[r];
    }

    /// <summary>The four rows' sums of their 16-lane totals, as one vector.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<float> Sums(Vector512<float> t0, Vector512<float> t1, Vector512<float> t2, Vector512<float> t3) =>
        Vector128.Create(Vector512.Sum(t0), Vector512.Sum(t1), Vector512.Sum(t2), Vector512.Sum(t3));

    /// <summary>Prefetches a block of a later row (the hardware prefetcher stops at the 4 KB pages of the mapped file).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Prefetch(byte* at, int bytes)
    {
        Sse.Prefetch0(at);
        Sse.Prefetch0(at + 64);
        if (bytes > 128) Sse.Prefetch0(at + 128);
        if (bytes > 192) Sse.Prefetch0(at + 192);
    }

    /// <summary>total + d·s·(P0·2¹⁶ + P1·2⁸ + P2), lane by lane (s before d: d·s alone could fall below float's normal range).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Combine(Vector512<int> i0, Vector512<int> i1, Vector512<int> i2, float s, float d, Vector512<float> total)
    {
        Vector512<float> t = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(i1), Vector512.Create(256f), Vector512.ConvertToSingle(i2));
        t = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(i0), Vector512.Create(65536f), t);
        return Vector512.FusedMultiplyAdd(t * Vector512.Create(s), Vector512.Create(d), total);
    }

    /// <summary>i += ((q·x pairs)·sc pairs) for the three planes' 64 values.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Planes(Vector512<byte> q, Vector512<sbyte> x0, Vector512<sbyte> x1, Vector512<sbyte> x2, Vector512<short> sc, ref Vector512<int> i0, ref Vector512<int> i1, ref Vector512<int> i2)
    {
        i0 += Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(q, x0), sc);
        i1 += Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(q, x1), sc);
        i2 += Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(q, x2), sc);
    }

    /// <summary>
    /// 32 bytes at p in both halves of a register. Not <c>Avx512F.BroadcastVector256ToVector512</c>: the .NET 10 JIT encodes
    /// its memory operand's 8-bit displacement scaled for 16 bytes where the hardware scales by 32 (shown as "xmmword ptr"
    /// in the disassembly), so [block + 0x80] read block + 0x100 once inlined (found by this class's tests).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<ulong> Both(byte* p)
    {
        Vector256<ulong> half = Vector256.Load((ulong*)p);
        // One vshufi64x2 (128-bit lanes 0, 1, 0, 1); Vector512.Create(half, half) went through the stack, InsertVector256 took two inserts.
        Vector512<ulong> wide = half.ToVector512Unsafe();
        return Avx512F.Shuffle4x128(wide, wide, 0x44);
    }

    // ---- Q4_K (144 B) and Q5_K (176 B): the 128 nibble bytes as 8 chunks of 16 (chunk 2g + h: bytes 16h … 16h + 15 of
    // group g, whose low nibbles are values 64g + 16h + l of sub-block 2g and high nibbles 64g + 32 + 16h + l of 2g + 1).
    // One vshufi64x2 of the two 64-byte loads gives chunks 0, 2, 4, 6 (A), another 1, 3, 5, 7 (B): A's and B's low nibbles
    // then hold sub-blocks 0, 2, 4, 6 in their 128-bit lanes, their high nibbles 1, 3, 5, 7, so A's and B's vpmaddubsw
    // sums share one scale layout and add in 16 bits (Q5_K's worst 2·2·31·128 = 15,872) before one vpmaddwd per plane:
    // 6 integer multiplies per 64 values and row instead of 6 per 64 plus 3 adds, 8 unpacking operations per 256 instead
    // of 12, 2 scale placements instead of 4. The planes are brought to the same four arrangements once for the four rows
    // (8 permutes per plane and super-block, against 4 for the natural order).

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static Vector128<float> Q45K<TFifth>(byte* w0, byte* w1, byte* w2, byte* w3, long ahead, sbyte* planes, float* scales, float* sums, int blocks)
        where TFifth : struct, IFifthBit
    {
        int blockBytes = TFifth.Nibbles + 128; // 144 or 176, a constant
        float* halves = HalfTable.Pointer;
        Vector512<float> t0 = default, t1 = default, t2 = default, t3 = default;
        for (int b = 0; b < blocks; b++)
        {
            long at = (long)b * blockBytes;
            byte* b0 = w0 + at, b1 = w1 + at, b2 = w2 + at, b3 = w3 + at;
            Prefetch(b0 + ahead, blockBytes);
            Prefetch(b1 + ahead, blockBytes);
            Prefetch(b2 + ahead, blockBytes);
            Prefetch(b3 + ahead, blockBytes);
            sbyte* xb = planes + BlockBytes * b;
            (Vector512<sbyte> a0, Vector512<sbyte> c0, Vector512<sbyte> e0, Vector512<sbyte> g0) = Q45KPlane(xb);
            (Vector512<sbyte> a1, Vector512<sbyte> c1, Vector512<sbyte> e1, Vector512<sbyte> g1) = Q45KPlane(xb + BlockSize);
            (Vector512<sbyte> a2, Vector512<sbyte> c2, Vector512<sbyte> e2, Vector512<sbyte> g2) = Q45KPlane(xb + 2 * BlockSize);
            Vector512<float> xs = Vector256.Load(sums + 8 * b).ToVector512(); // upper half zero, as the minimums' lanes 8–15
            float s = scales[b];
            (Vector512<short> w01, Vector512<short> w23) = Q45KScales4(b0, b1, b2, b3);
            // Row by row: the 12 plane registers stay, each row's three sums are combined at once (no accumulators live across rows).
            t0 = Q45KRow<TFifth>(b0, halves, w01, 0, a0, c0, e0, g0, a1, c1, e1, g1, a2, c2, e2, g2, xs, s, t0);
            t1 = Q45KRow<TFifth>(b1, halves, w01, 1, a0, c0, e0, g0, a1, c1, e1, g1, a2, c2, e2, g2, xs, s, t1);
            t2 = Q45KRow<TFifth>(b2, halves, w23, 2, a0, c0, e0, g0, a1, c1, e1, g1, a2, c2, e2, g2, xs, s, t2);
            t3 = Q45KRow<TFifth>(b3, halves, w23, 3, a0, c0, e0, g0, a1, c1, e1, g1, a2, c2, e2, g2, xs, s, t3);
        }
        return Sums(t0, t1, t2, t3);
    }

    /// <summary>
    /// Four rows' 8 scales and 8 minimums (Q4_K/Q5_K), unpacked together in one register (row r's 16 bytes in 128-bit lane r:
    /// scales 0–7, then minimums 0–7) and widened to 16-bit words (rows 0, 1 | rows 2, 3): 4 loads, 9 vector operations for
    /// the four, against ~22 general-purpose and 6 vector operations per row (<c>ChunkedQuant.ScalesK4Integers</c>). Bytes
    /// q0–q11 at 4–15: scale j &lt; 4 = q[j] &amp; 63, minimum j &lt; 4 = q[j + 4] &amp; 63; scale j ≥ 4 = (q[j + 4] &amp; 15) | (q[j − 4] &gt;&gt; 6) &lt;&lt; 4,
    /// minimum j ≥ 4 = q[j + 4] &gt;&gt; 4 | (q[j] &gt;&gt; 6) &lt;&lt; 4: one vpshufb places each output's low source, another its top-bits source
    /// (16-bit shifts: bits crossing from the neighbouring byte fall outside the masks).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static (Vector512<short> Rows01, Vector512<short> Rows23) Q45KScales4(byte* b0, byte* b1, byte* b2, byte* b3)
    {
        Vector512<byte> x = Q45KScaleBytes4(b0, b1, b2, b3);
        return (Avx512BW.ConvertToVector512Int16(x.GetLower()), Avx512BW.ConvertToVector512Int16(x.GetUpper()));
    }

    /// <summary><see cref="Q45KScales4"/> before the widening: row r's 8 scales then 8 minimums as bytes in 128-bit lane r.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<byte> Q45KScaleBytes4(byte* b0, byte* b1, byte* b2, byte* b3)
    {
        Vector512<byte> raw = Vector128.Load(b0).ToVector256Unsafe().ToVector512Unsafe();
        raw = Avx512F.InsertVector128(raw, Vector128.Load(b1), 1);
        raw = Avx512F.InsertVector128(raw, Vector128.Load(b2), 2);
        raw = Avx512F.InsertVector128(raw, Vector128.Load(b3), 3);
        Vector512<byte> low = Avx512BW.Shuffle(raw, Vector512.Create((byte)4, 5, 6, 7, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15, 4, 5, 6, 7, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15, 4, 5, 6, 7, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15, 4, 5, 6, 7, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15));
        Vector512<byte> top = Avx512BW.Shuffle(raw, Vector512.Create((byte)128, 128, 128, 128, 4, 5, 6, 7, 128, 128, 128, 128, 8, 9, 10, 11, 128, 128, 128, 128, 4, 5, 6, 7, 128, 128, 128, 128, 8, 9, 10, 11, 128, 128, 128, 128, 4, 5, 6, 7, 128, 128, 128, 128, 8, 9, 10, 11, 128, 128, 128, 128, 4, 5, 6, 7, 128, 128, 128, 128, 8, 9, 10, 11)); // 0x80: zero
        Vector512<byte> x = Avx512F.TernaryLogic(Vector512.ShiftRightLogical(low.AsUInt16(), 4).AsByte(), Vector512.Create((byte)0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 15, 15, 15, 15, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 15, 15, 15, 15, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 15, 15, 15, 15, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 15, 15, 15, 15), low & Vector512.Create((byte)63, 63, 63, 63, 15, 15, 15, 15, 63, 63, 63, 63, 0, 0, 0, 0, 63, 63, 63, 63, 15, 15, 15, 15, 63, 63, 63, 63, 0, 0, 0, 0, 63, 63, 63, 63, 15, 15, 15, 15, 63, 63, 63, 63, 0, 0, 0, 0, 63, 63, 63, 63, 15, 15, 15, 15, 63, 63, 63, 63, 0, 0, 0, 0), 0xEA); // (a & b) | c
        return Avx512F.TernaryLogic(Vector512.ShiftRightLogical(top.AsUInt16(), 2).AsByte(), Vector512.Create((byte)0x30), x, 0xEA);
    }

    /// <summary>Row r's scales for sub-blocks 2k (even) or 2k + 1 (odd) under 128-bit lane k, as pairs of equal 16-bit halves (one vpermw each).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static (Vector512<short> Even, Vector512<short> Odd) Q45KRowScales(Vector512<short> words, int r)
    {
        short o = (short)(16 * (r & 1));
        Vector512<short> even = Vector512.Create(o, o, o, o, o, o, o, o, (short)(o + 2), (short)(o + 2), (short)(o + 2), (short)(o + 2), (short)(o + 2), (short)(o + 2), (short)(o + 2), (short)(o + 2),
                                                 (short)(o + 4), (short)(o + 4), (short)(o + 4), (short)(o + 4), (short)(o + 4), (short)(o + 4), (short)(o + 4), (short)(o + 4),
                                                 (short)(o + 6), (short)(o + 6), (short)(o + 6), (short)(o + 6), (short)(o + 6), (short)(o + 6), (short)(o + 6), (short)(o + 6));
        short p = (short)(o + 1); // written out: even + 1 was computed at run time
        Vector512<short> odd = Vector512.Create(p, p, p, p, p, p, p, p, (short)(p + 2), (short)(p + 2), (short)(p + 2), (short)(p + 2), (short)(p + 2), (short)(p + 2), (short)(p + 2), (short)(p + 2),
                                                (short)(p + 4), (short)(p + 4), (short)(p + 4), (short)(p + 4), (short)(p + 4), (short)(p + 4), (short)(p + 4), (short)(p + 4),
                                                (short)(p + 6), (short)(p + 6), (short)(p + 6), (short)(p + 6), (short)(p + 6), (short)(p + 6), (short)(p + 6), (short)(p + 6));
        return (Avx512BW.PermuteVar32x16(words, even), Avx512BW.PermuteVar32x16(words, odd));
    }

    /// <summary>Row r's 8 minimums as int32 lanes 0–7 (lanes 8–15 zero): one vpermt2w against zero.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<int> Q45KRowMins(Vector512<short> words, int r)
    {
        short o = (short)(16 * (r & 1) + 8);
        Vector512<short> index = Vector512.Create(o, 32, (short)(o + 1), 32, (short)(o + 2), 32, (short)(o + 3), 32, (short)(o + 4), 32, (short)(o + 5), 32, (short)(o + 6), 32, (short)(o + 7), 32,
                                                  32, 32, 32, 32, 32, 32, 32, 32, 32, 32, 32, 32, 32, 32, 32, 32);
        return Avx512BW.PermuteVar32x16x2(words, index, Vector512<short>.Zero).AsInt32();
    }

    /// <summary>
    /// A plane's 256 values (stored as 8-byte pieces 0,4,2,6,1,5,3,7 per 64, <see cref="KQuantPlanes.Position"/>) in the
    /// arrangement of A's low (values 64k + 0 … 15 in 128-bit lane k), B's low (64k + 16 …), A's high (64k + 32 …) and
    /// B's high nibbles (64k + 48 …): 4 two-source qword permutes (each pairing two groups' pieces) and 4 vshufi64x2.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static (Vector512<sbyte>, Vector512<sbyte>, Vector512<sbyte>, Vector512<sbyte>) Q45KPlane(sbyte* p)
    {
        Vector512<long> r0 = Vector512.Load((long*)p), r1 = Vector512.Load((long*)(p + 64)), r2 = Vector512.Load((long*)(p + 128)), r3 = Vector512.Load((long*)(p + 192));
        // Natural pieces 0,1 | 2,3 of two groups (stored at 0,4 | 2,6; the second group's at 8 + …), then pieces 4,5 | 6,7 (1,5 | 3,7).
        Vector512<long> low = Vector512.Create(0L, 4, 8, 12, 2, 6, 10, 14), high = Vector512.Create(1L, 5, 9, 13, 3, 7, 11, 15);
        Vector512<long> l01 = Avx512F.PermuteVar8x64x2(r0, low, r1), l23 = Avx512F.PermuteVar8x64x2(r2, low, r3);
        Vector512<long> h01 = Avx512F.PermuteVar8x64x2(r0, high, r1), h23 = Avx512F.PermuteVar8x64x2(r2, high, r3);
        return (Avx512F.Shuffle4x128(l01, l23, 0x44).AsSByte(), Avx512F.Shuffle4x128(l01, l23, 0xEE).AsSByte(),
                Avx512F.Shuffle4x128(h01, h23, 0x44).AsSByte(), Avx512F.Shuffle4x128(h01, h23, 0xEE).AsSByte());
    }

    /// <summary>total + one row's super-block against the arranged planes (x: A low, B low, A high, B high; plane 0, 1, 2), its offsets −dmin·m·Σx included.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Q45KRow<TFifth>(byte* block, float* halves, Vector512<short> words, int r,
                                                    Vector512<sbyte> a0, Vector512<sbyte> c0, Vector512<sbyte> e0, Vector512<sbyte> g0,
                                                    Vector512<sbyte> a1, Vector512<sbyte> c1, Vector512<sbyte> e1, Vector512<sbyte> g1,
                                                    Vector512<sbyte> a2, Vector512<sbyte> c2, Vector512<sbyte> e2, Vector512<sbyte> g2,
                                                    Vector512<float> xs, float s, Vector512<float> total)
        where TFifth : struct, IFifthBit
    {
        (Vector512<short> even, Vector512<short> odd) = Q45KRowScales(words, r);
        (Vector512<int> i0, Vector512<int> i1, Vector512<int> i2) = Q45KBlock<TFifth>(block, even, odd, a0, c0, e0, g0, a1, c1, e1, g1, a2, c2, e2, g2);
        float d = HalfTable.ToSingle(halves, ref *block), dmin = HalfTable.ToSingle(halves, ref block[2]);
        total = Avx512F.FusedMultiplyAddNegated(Vector512.ConvertToSingle(Q45KRowMins(words, r)) * Vector512.Create(dmin), xs, total); // total − m·dmin·Σx
        return Combine(i0, i1, i2, s, d, total);
    }

    /// <summary>One row's super-block: the three planes' integer sums (each lane 16 values: two of A's or B's 128-bit lanes, 8 each).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static (Vector512<int>, Vector512<int>, Vector512<int>) Q45KBlock<TFifth>(byte* block, Vector512<short> even, Vector512<short> odd,
                                                    Vector512<sbyte> a0, Vector512<sbyte> c0, Vector512<sbyte> e0, Vector512<sbyte> g0,
                                                    Vector512<sbyte> a1, Vector512<sbyte> c1, Vector512<sbyte> e1, Vector512<sbyte> g1,
                                                    Vector512<sbyte> a2, Vector512<sbyte> c2, Vector512<sbyte> e2, Vector512<sbyte> g2)
        where TFifth : struct, IFifthBit
    {
        Vector512<ulong> lo = Vector512.Load((ulong*)(block + TFifth.Nibbles)), hi = Vector512.Load((ulong*)(block + TFifth.Nibbles + 64));
        Vector512<byte> a = Avx512F.Shuffle4x128(lo, hi, 0x88).AsByte(), c = Avx512F.Shuffle4x128(lo, hi, 0xDD).AsByte(); // chunks 0,2,4,6 | 1,3,5,7
        Vector512<byte> mask = Vector512.Create((byte)0x0F);
        Vector512<byte> qa = a & mask, qc = c & mask;
        Vector512<byte> qe = Vector512.ShiftRightLogical(a.AsUInt64(), 4).AsByte() & mask, qg = Vector512.ShiftRightLogical(c.AsUInt64(), 4).AsByte() & mask;
        if (TFifth.Nibbles == 48)
        {
            // qh byte l, bit k: value l of sub-block k. Bytes 0–15 (A) or 16–31 (B) in every 128-bit lane; lane k takes bit 2k
            // (low nibbles) or 2k + 1 (high), rotated to bit 4 of the same byte (by 4 − 2k or 3 − 2k: less than 8 places).
            Vector512<ulong> h0 = Avx512F.BroadcastVector128ToVector512((int*)(block + 16)).AsUInt64(), h1 = Avx512F.BroadcastVector128ToVector512((int*)(block + 32)).AsUInt64();
            Vector512<ulong> even5 = Vector512.Create(4UL, 4, 2, 2, 0, 0, 62, 62), odd5 = Vector512.Create(3UL, 3, 1, 1, 63, 63, 61, 61);
            Vector512<byte> bit = Vector512.Create((byte)0x10);
            qa |= Avx512F.RotateLeftVariable(h0, even5).AsByte() & bit;
            qc |= Avx512F.RotateLeftVariable(h1, even5).AsByte() & bit;
            qe |= Avx512F.RotateLeftVariable(h0, odd5).AsByte() & bit;
            qg |= Avx512F.RotateLeftVariable(h1, odd5).AsByte() & bit;
        }
        Vector512<int> i0 = Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(qa, a0) + Avx512BW.MultiplyAddAdjacent(qc, c0), even)
                          + Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(qe, e0) + Avx512BW.MultiplyAddAdjacent(qg, g0), odd);
        Vector512<int> i1 = Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(qa, a1) + Avx512BW.MultiplyAddAdjacent(qc, c1), even)
                          + Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(qe, e1) + Avx512BW.MultiplyAddAdjacent(qg, g1), odd);
        Vector512<int> i2 = Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(qa, a2) + Avx512BW.MultiplyAddAdjacent(qc, c2), even)
                          + Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(qe, e2) + Avx512BW.MultiplyAddAdjacent(qg, g2), odd);
        return (i0, i1, i2);
    }

    /// <summary>The three planes' integer sums of one super-block (16 lanes each): one row, for the tests.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static (Vector512<int>, Vector512<int>, Vector512<int>) Q45KSums<TFifth>(byte* block, sbyte* xb)
        where TFifth : struct, IFifthBit
    {
        (Vector512<sbyte> a0, Vector512<sbyte> c0, Vector512<sbyte> e0, Vector512<sbyte> g0) = Q45KPlane(xb);
        (Vector512<sbyte> a1, Vector512<sbyte> c1, Vector512<sbyte> e1, Vector512<sbyte> g1) = Q45KPlane(xb + BlockSize);
        (Vector512<sbyte> a2, Vector512<sbyte> c2, Vector512<sbyte> e2, Vector512<sbyte> g2) = Q45KPlane(xb + 2 * BlockSize);
        (Vector512<short> words, _) = Q45KScales4(block, block, block, block);
        (Vector512<short> even, Vector512<short> odd) = Q45KRowScales(words, 0);
        return Q45KBlock<TFifth>(block, even, odd, a0, c0, e0, g0, a1, c1, e1, g1, a2, c2, e2, g2);
    }

    // ---- Q6_K (210 B): half h (0, 1): the 64 bytes ql[64h …] (A then C) give values 128h + 0 … 63 from their low
    // nibbles with qh[32h …] bit pairs 0–1 (A) and 2–3 (C), and 128h + 64 … 127 from their high nibbles with bit pairs
    // 4–5 and 6–7; each 128-bit lane of 64 values is one sub-block of 16.

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static Vector128<float> Q6K(byte* w0, byte* w1, byte* w2, byte* w3, long ahead, sbyte* planes, float* scales, float* sums, int blocks)
    {
        float* halves = HalfTable.Pointer;
        Vector512<float> t0 = default, t1 = default, t2 = default, t3 = default;
        for (int b = 0; b < blocks; b++)
        {
            long at = (long)b * 210;
            byte* b0 = w0 + at, b1 = w1 + at, b2 = w2 + at, b3 = w3 + at;
            Prefetch(b0 + ahead, 210);
            Prefetch(b1 + ahead, 210);
            Prefetch(b2 + ahead, 210);
            Prefetch(b3 + ahead, 210);
            sbyte* xb = planes + BlockBytes * b;
            (Vector512<int> s0, Vector512<int> p0) = Q6KScales(b0);
            (Vector512<int> s1, Vector512<int> p1) = Q6KScales(b1);
            (Vector512<int> s2, Vector512<int> p2) = Q6KScales(b2);
            (Vector512<int> s3, Vector512<int> p3) = Q6KScales(b3);
            Vector512<int> a0 = default, a1 = default, a2 = default, c0 = default, c1 = default, c2 = default;
            Vector512<int> e0 = default, e1 = default, e2 = default, g0 = default, g1 = default, g2 = default;
            Q6KHalf4(b0, b1, b2, b3, p0, p1, p2, p3, xb, 0, ref a0, ref a1, ref a2, ref c0, ref c1, ref c2, ref e0, ref e1, ref e2, ref g0, ref g1, ref g2);
            Q6KHalf4(b0, b1, b2, b3, p0, p1, p2, p3, xb, 1, ref a0, ref a1, ref a2, ref c0, ref c1, ref c2, ref e0, ref e1, ref e2, ref g0, ref g1, ref g2);
            // The −32 offsets: d·sc per sub-block against −32·Σx.
            Vector512<float> xs = Vector512.Load(sums + 16 * b) * Vector512.Create(-32f);
            float s = scales[b];
            t0 = Q6KCombine(b0, halves, a0, a1, a2, s0, xs, s, t0);
            t1 = Q6KCombine(b1, halves, c0, c1, c2, s1, xs, s, t1);
            t2 = Q6KCombine(b2, halves, e0, e1, e2, s2, xs, s, t2);
            t3 = Q6KCombine(b3, halves, g0, g1, g2, s3, xs, s, t3);
        }
        return Sums(t0, t1, t2, t3);
    }

    /// <summary>Half h of four rows' blocks, the planes loaded once for the four (written out twice, so h is a constant).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Q6KHalf4(byte* b0, byte* b1, byte* b2, byte* b3, Vector512<int> p0, Vector512<int> p1, Vector512<int> p2, Vector512<int> p3, sbyte* xb, int h,
                                 ref Vector512<int> a0, ref Vector512<int> a1, ref Vector512<int> a2, ref Vector512<int> c0, ref Vector512<int> c1, ref Vector512<int> c2,
                                 ref Vector512<int> e0, ref Vector512<int> e1, ref Vector512<int> e2, ref Vector512<int> g0, ref Vector512<int> g1, ref Vector512<int> g2)
    {
        sbyte* x = xb + 128 * h;
        Vector512<sbyte> x0 = Plane(x), x1 = Plane(x + BlockSize), x2 = Plane(x + 2 * BlockSize);
        Vector512<sbyte> y0 = Plane(x + 64), y1 = Plane(x + BlockSize + 64), y2 = Plane(x + 2 * BlockSize + 64);
        Q6KHalf(b0, p0, h, x0, x1, x2, y0, y1, y2, ref a0, ref a1, ref a2);
        Q6KHalf(b1, p1, h, x0, x1, x2, y0, y1, y2, ref c0, ref c1, ref c2);
        Q6KHalf(b2, p2, h, x0, x1, x2, y0, y1, y2, ref e0, ref e1, ref e2);
        Q6KHalf(b3, p3, h, x0, x1, x2, y0, y1, y2, ref g0, ref g1, ref g2);
    }

    /// <summary>A block's 16 signed scales as int32 and as pairs of equal 16-bit halves.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static (Vector512<int>, Vector512<int>) Q6KScales(byte* block)
    {
        Vector512<int> sc = Avx512F.ConvertToVector512Int32(Vector128.Load((sbyte*)block + 192));
        return (sc, Avx512F.TernaryLogic(sc, Vector512.Create(0xFFFF), Vector512.ShiftLeft(sc, 16), 0xEA)); // (sc & 0xFFFF) | sc << 16
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Q6KCombine(byte* block, float* halves, Vector512<int> i0, Vector512<int> i1, Vector512<int> i2, Vector512<int> sc, Vector512<float> xs, float s, Vector512<float> total)
    {
        float d = HalfTable.ToSingle(halves, ref block[208]);
        total = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(sc) * Vector512.Create(d), xs, total);
        return Combine(i0, i1, i2, s, d, total);
    }

    /// <summary>The three planes' integer sums of one super-block (16 lanes each) and its 16 scales as int32: one row, for the tests.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static (Vector512<int>, Vector512<int>, Vector512<int>, Vector512<int>) Q6KSums(byte* block, sbyte* xb)
    {
        (Vector512<int> sc, Vector512<int> pairs) = Q6KScales(block);
        Vector512<int> i0 = default, i1 = default, i2 = default;
        Q6KHalf(block, pairs, 0, Plane(xb), Plane(xb + BlockSize), Plane(xb + 2 * BlockSize),
                Plane(xb + 64), Plane(xb + BlockSize + 64), Plane(xb + 2 * BlockSize + 64), ref i0, ref i1, ref i2);
        Q6KHalf(block, pairs, 1, Plane(xb + 128), Plane(xb + BlockSize + 128), Plane(xb + 2 * BlockSize + 128),
                Plane(xb + 192), Plane(xb + BlockSize + 192), Plane(xb + 2 * BlockSize + 192), ref i0, ref i1, ref i2);
        return (i0, i1, i2, sc);
    }

    /// <summary>Half h of a row's super-block against the planes' values 128h … 128h + 63 (x) and 128h + 64 … 128h + 127 (y).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Q6KHalf(byte* block, Vector512<int> pairs, int h, Vector512<sbyte> x0, Vector512<sbyte> x1, Vector512<sbyte> x2,
                                Vector512<sbyte> y0, Vector512<sbyte> y1, Vector512<sbyte> y2, ref Vector512<int> i0, ref Vector512<int> i1, ref Vector512<int> i2)
    {
        Vector512<byte> ac = Vector512.Load(block + 64 * h), low = Vector512.Create((byte)0x0F), top = Vector512.Create((byte)0x30);
        Vector512<ulong> bits = Both(block + 128 + 32 * h);
        // 64-bit shifts: bits crossing from the neighbouring byte fall outside the 0x30 mask.
        Vector512<byte> first = Avx512F.ShiftLeftLogicalVariable(bits, Vector512.Create(4UL, 4, 4, 4, 2, 2, 2, 2)).AsByte() & top;
        Vector512<byte> second = Avx512F.ShiftRightLogicalVariable(bits, Vector512.Create(0UL, 0, 0, 0, 2, 2, 2, 2)).AsByte() & top;
        Vector512<byte> q0 = Avx512F.TernaryLogic(ac, low, first, 0xEA); // (a & b) | c
        Vector512<byte> q1 = Avx512F.TernaryLogic(Vector512.ShiftRightLogical(ac.AsUInt64(), 4).AsByte(), low, second, 0xEA);
        int j = 8 * h; // sub-blocks 8h … 8h + 3, then 8h + 4 … 8h + 7
        Planes(q0, x0, x1, x2, Avx512F.PermuteVar16x32(pairs, Vector512.Create(j, j, j, j, j + 1, j + 1, j + 1, j + 1, j + 2, j + 2, j + 2, j + 2, j + 3, j + 3, j + 3, j + 3)).AsInt16(), ref i0, ref i1, ref i2);
        Planes(q1, y0, y1, y2, Avx512F.PermuteVar16x32(pairs, Vector512.Create(j + 4, j + 4, j + 4, j + 4, j + 5, j + 5, j + 5, j + 5, j + 6, j + 6, j + 6, j + 6, j + 7, j + 7, j + 7, j + 7)).AsInt16(), ref i0, ref i1, ref i2);
    }
    // ---- Q2_K (84 B) and Q3_K (110 B), laid out as in KQuantPlanes: half h's 32 quant bytes broadcast and shifted by
    // 0 | 2 (values 128h … 128h + 63) or 4 | 6 (128h + 64 …) per 64-bit lane give one register in the planes' order, each
    // 128-bit lane one sub-block of 16, as Q6_K's.

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static Vector128<float> Q23K<T>(byte* w0, byte* w1, byte* w2, byte* w3, long ahead, sbyte* planes, float* scales, float* sums, int blocks) where T : struct
    {
        bool third = typeof(T) == typeof(ThirdBit);
        int bytes = third ? 110 : 84;
        float* halves = HalfTable.Pointer;
        Vector512<float> t0 = default, t1 = default, t2 = default, t3 = default;
        for (int b = 0; b < blocks; b++)
        {
            long at = (long)b * bytes;
            byte* b0 = w0 + at, b1 = w1 + at, b2 = w2 + at, b3 = w3 + at;
            Prefetch(b0 + ahead, bytes);
            Prefetch(b1 + ahead, bytes);
            Prefetch(b2 + ahead, bytes);
            Prefetch(b3 + ahead, bytes);
            sbyte* xb = planes + BlockBytes * b;
            (Vector512<int> p0, Vector512<int> o0) = Q23KScales<T>(b0);
            (Vector512<int> p1, Vector512<int> o1) = Q23KScales<T>(b1);
            (Vector512<int> p2, Vector512<int> o2) = Q23KScales<T>(b2);
            (Vector512<int> p3, Vector512<int> o3) = Q23KScales<T>(b3);
            Vector512<int> a0 = default, a1 = default, a2 = default, c0 = default, c1 = default, c2 = default;
            Vector512<int> e0 = default, e1 = default, e2 = default, g0 = default, g1 = default, g2 = default;
            Q23KHalf4<T>(b0, b1, b2, b3, p0, p1, p2, p3, xb, 0, ref a0, ref a1, ref a2, ref c0, ref c1, ref c2, ref e0, ref e1, ref e2, ref g0, ref g1, ref g2);
            Q23KHalf4<T>(b0, b1, b2, b3, p0, p1, p2, p3, xb, 1, ref a0, ref a1, ref a2, ref c0, ref c1, ref c2, ref e0, ref e1, ref e2, ref g0, ref g1, ref g2);
            Vector512<float> xs = Vector512.Load(sums + 16 * b);
            float s = scales[b];
            t0 = Q23KCombine<T>(b0, halves, a0, a1, a2, o0, xs, s, t0);
            t1 = Q23KCombine<T>(b1, halves, c0, c1, c2, o1, xs, s, t1);
            t2 = Q23KCombine<T>(b2, halves, e0, e1, e2, o2, xs, s, t2);
            t3 = Q23KCombine<T>(b3, halves, g0, g1, g2, o3, xs, s, t3);
        }
        return Sums(t0, t1, t2, t3);
    }

    /// <summary>Half h of four rows' blocks, the planes loaded once for the four.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Q23KHalf4<T>(byte* b0, byte* b1, byte* b2, byte* b3, Vector512<int> p0, Vector512<int> p1, Vector512<int> p2, Vector512<int> p3, sbyte* xb, int h,
                                     ref Vector512<int> a0, ref Vector512<int> a1, ref Vector512<int> a2, ref Vector512<int> c0, ref Vector512<int> c1, ref Vector512<int> c2,
                                     ref Vector512<int> e0, ref Vector512<int> e1, ref Vector512<int> e2, ref Vector512<int> g0, ref Vector512<int> g1, ref Vector512<int> g2) where T : struct
    {
        sbyte* x = xb + 128 * h;
        Vector512<sbyte> x0 = Plane(x), x1 = Plane(x + BlockSize), x2 = Plane(x + 2 * BlockSize);
        Vector512<sbyte> y0 = Plane(x + 64), y1 = Plane(x + BlockSize + 64), y2 = Plane(x + 2 * BlockSize + 64);
        Q23KHalf<T>(b0, p0, h, x0, x1, x2, y0, y1, y2, ref a0, ref a1, ref a2);
        Q23KHalf<T>(b1, p1, h, x0, x1, x2, y0, y1, y2, ref c0, ref c1, ref c2);
        Q23KHalf<T>(b2, p2, h, x0, x1, x2, y0, y1, y2, ref e0, ref e1, ref e2);
        Q23KHalf<T>(b3, p3, h, x0, x1, x2, y0, y1, y2, ref g0, ref g1, ref g2);
    }

    /// <summary>
    /// A block's 16 scales as pairs of equal 16-bit halves, and the integer factor of each sub-block's offset: Q2_K its
    /// minimum m (the offset −dmin·m), Q3_K its scale sc − 32 (the offset −4·d·(sc − 32)).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static (Vector512<int>, Vector512<int>) Q23KScales<T>(byte* block) where T : struct
    {
        Vector512<int> sc, offset;
        if (typeof(T) == typeof(ThirdBit))
            offset = sc = Avx512F.ConvertToVector512Int32(KQuantPlanes.Q3KScales(block));
        else
        {
            Vector512<int> both = Avx512F.ConvertToVector512Int32(Vector128.Load(block));
            sc = both & Vector512.Create(0x0F);
            offset = Vector512.ShiftRightLogical(both, 4);
        }
        return (Avx512F.TernaryLogic(sc, Vector512.Create(0xFFFF), Vector512.ShiftLeft(sc, 16), 0xEA), offset); // (sc & 0xFFFF) | sc << 16
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Q23KCombine<T>(byte* block, float* halves, Vector512<int> i0, Vector512<int> i1, Vector512<int> i2, Vector512<int> offset, Vector512<float> xs, float s, Vector512<float> total)
        where T : struct
    {
        float d, o;
        if (typeof(T) == typeof(ThirdBit)) { d = HalfTable.ToSingle(halves, ref block[108]); o = -4 * d; }
        else { d = HalfTable.ToSingle(halves, ref block[80]); o = -HalfTable.ToSingle(halves, ref block[82]); }
        total = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(offset) * Vector512.Create(o), xs, total);
        return Combine(i0, i1, i2, s, d, total);
    }

    /// <summary>The three planes' integer sums of one Q2_K/Q3_K super-block (16 lanes each): one row, for the tests.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static (Vector512<int>, Vector512<int>, Vector512<int>) Q23KSums<T>(byte* block, sbyte* xb) where T : struct
    {
        (Vector512<int> pairs, _) = Q23KScales<T>(block);
        Vector512<int> i0 = default, i1 = default, i2 = default;
        Q23KHalf<T>(block, pairs, 0, Plane(xb), Plane(xb + BlockSize), Plane(xb + 2 * BlockSize),
                    Plane(xb + 64), Plane(xb + BlockSize + 64), Plane(xb + 2 * BlockSize + 64), ref i0, ref i1, ref i2);
        Q23KHalf<T>(block, pairs, 1, Plane(xb + 128), Plane(xb + BlockSize + 128), Plane(xb + 2 * BlockSize + 128),
                    Plane(xb + 192), Plane(xb + BlockSize + 192), Plane(xb + 2 * BlockSize + 192), ref i0, ref i1, ref i2);
        return (i0, i1, i2);
    }

    /// <summary>Half h of a row's super-block against the planes' values 128h … 128h + 63 (x) and 128h + 64 … 128h + 127 (y).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Q23KHalf<T>(byte* block, Vector512<int> pairs, int h, Vector512<sbyte> x0, Vector512<sbyte> x1, Vector512<sbyte> x2,
                                    Vector512<sbyte> y0, Vector512<sbyte> y1, Vector512<sbyte> y2, ref Vector512<int> i0, ref Vector512<int> i1, ref Vector512<int> i2) where T : struct
    {
        bool third = typeof(T) == typeof(ThirdBit);
        Vector512<ulong> q = Both(block + (third ? 32 : 16) + 32 * h);
        Vector512<byte> three = Vector512.Create((byte)3);
        // 64-bit shifts: bits crossing from the neighbouring byte fall outside the mask. Values 128h + l | 128h + 32 + l, then 128h + 64 + l | 128h + 96 + l.
        Vector512<byte> q0 = Avx512F.ShiftRightLogicalVariable(q, Vector512.Create(0UL, 0, 0, 0, 2, 2, 2, 2)).AsByte();
        Vector512<byte> q1 = Avx512F.ShiftRightLogicalVariable(q, Vector512.Create(4UL, 4, 4, 4, 6, 6, 6, 6)).AsByte();
        if (third)
        {
            // Bit 4h + j of each hmask byte rotated to bit 2 of the same byte (by 2 − 4h − j, less than 8 places either way).
            Vector512<ulong> hm = Both(block);
            ulong r0 = (ulong)(2 - 4 * h) & 63, r1 = (ulong)(1 - 4 * h) & 63, r2 = (ulong)(0 - 4 * h) & 63, r3 = (ulong)(-1 - 4 * h) & 63;
            Vector512<byte> four = Vector512.Create((byte)4);
            q0 = Avx512F.TernaryLogic(q0, three, Avx512F.RotateLeftVariable(hm, Vector512.Create(r0, r0, r0, r0, r1, r1, r1, r1)).AsByte() & four, 0xEA); // (a & b) | c
            q1 = Avx512F.TernaryLogic(q1, three, Avx512F.RotateLeftVariable(hm, Vector512.Create(r2, r2, r2, r2, r3, r3, r3, r3)).AsByte() & four, 0xEA);
        }
        else
        {
            q0 &= three;
            q1 &= three;
        }
        int j = 8 * h; // sub-blocks 8h … 8h + 3, then 8h + 4 … 8h + 7
        Planes(q0, x0, x1, x2, Avx512F.PermuteVar16x32(pairs, Vector512.Create(j, j, j, j, j + 1, j + 1, j + 1, j + 1, j + 2, j + 2, j + 2, j + 2, j + 3, j + 3, j + 3, j + 3)).AsInt16(), ref i0, ref i1, ref i2);
        Planes(q1, y0, y1, y2, Avx512F.PermuteVar16x32(pairs, Vector512.Create(j + 4, j + 4, j + 4, j + 4, j + 5, j + 5, j + 5, j + 5, j + 6, j + 6, j + 6, j + 6, j + 7, j + 7, j + 7, j + 7)).AsInt16(), ref i0, ref i1, ref i2);
    }
}
