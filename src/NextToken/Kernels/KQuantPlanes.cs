using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using NextToken.Tensors;

namespace NextToken.Kernels;

/// <summary>
/// Exact-by-default AVX2 decode for Q2_K, Q3_K, Q4_K, Q5_K and Q6_K through 24-bit fixed-point activations. Per
/// block of 256 values x is held as x ≈ s·(p0·2¹⁶ + p1·2⁸ + p2) with s a power of two and three
/// planes of balanced signed bytes (p0 in ±127, p1 and p2 in −128…127), split once per matmul call
/// (<see cref="Split"/>): |x − s·v| ≤ s/2 ≤ max|x|/(127·2¹⁶) ≈ 1.2·10⁻⁷·max|x| of the block, the order of
/// float32's own rounding of the block's largest term.
/// </summary>
/// <remarks>
/// Why: without AVX-512 the float kernels (<see cref="KQuantRows"/>) are bound by the two FMA ports — each
/// value is unpacked, converted and multiplied-added (8.3, 13.4, 15.9 cycles per 32 values and row for
/// Q4_K, Q6_K, Q5_K). Here the quants stay unsigned bytes and meet each plane in <c>vpmaddubsw</c>
/// (32 products per op; pairs ≤ 2·63·128 = 16,128, no saturation), then <c>vpmaddwd</c> multiplies by
/// the row's integer sub-block scale and adds pairs into 32-bit lanes: per 64 values and row six
/// vpmaddubsw, three vpmaddwd (two registers' pair sums added in 16 bits first), three 16-bit and three 32-bit adds,
/// and the unpacking (a floor of 2.25 cycles per 32 values at two multiplies a cycle). Each lane of a plane's int32 sum
/// covers 32 values of a super-block: |sum| ≤ 32·q·128·|sc| — Q4_K 32·15·128·63 ≈ 3.9·10⁶, Q5_K
/// 32·31·128·63 ≈ 8.0·10⁶ (both below 2²⁴: converted to float exactly), Q6_K 32·63·128·128 ≈ 3.3·10⁷
/// (below 2³¹); Q2_K 32·3·128·15 ≈ 1.8·10⁵ and Q3_K 32·7·128·32 ≈ 9.2·10⁵ (q unsigned, 0–3 and 0–7; Q3_K's
/// scales sc − 32 signed in −32…31, which vpmaddwd takes as they are; pairs ≤ 2·7·128 = 1,792, two added ≤ 3,584).
/// Per super-block and row the planes' sums are converted and combined in float (×2¹⁶, ×2⁸, ×1, ×s, ×d) — Q2_K–Q5_K
/// add P1·2⁸ + P2 in int32 first (<see cref="Combine12"/>; Q6_K's would pass 2³¹); the
/// offsets (Q2_K/Q4_K/Q5_K −dmin·m, Q6_K's −32·d·sc, Q3_K's −4·d·(sc − 32): q − 4 with q = low2 + 4·high) are
/// o·Σx with the float Σx of each sub-block (<see cref="SubBlockSums"/>, made with the split), as in the float kernels.
/// </remarks>
internal static unsafe class KQuantPlanes
{
    public const int BlockSize = 256;

    /// <summary>Bytes of planes per block of 256 values: three planes of 256 signed bytes.</summary>
    public const int BlockBytes = 3 * BlockSize;

    // The largest |v| = |x|/s allowed: p0 stays within ±127 with p1·2⁸ + p2 in [−32,896, 32,639].
    private const int Range = 127 << 16;

    public static bool Handles(GgmlType type) => type is GgmlType.Q4_K or GgmlType.Q5_K or GgmlType.Q6_K or GgmlType.Q2_K or GgmlType.Q3_K;

    /// <summary>
    /// The types whose decode takes the plane kernels (MatMul: this one with AVX2, <see cref="KQuantPlanesWide"/> with AVX-512). Q5_K and Q6_K gain most (their float kernels
    /// pay 2–4 more operations per 8 values for their extra bits); for Q4_K, where the 256-bit integer multiplies issue
    /// once per cycle (this Xeon: 1.2 cycles per vpmaddwd against 0.5 per FMA), its six multiplies per 32 values tie the
    /// float kernel's 8.3 cycles with the rows resident in L2, yet 1.1B Q4_K decode from memory ran 18.8/21.3 tok/s against
    /// 15.3/17.3 (two alternating rounds, load ~2; Q4_K_M 20.5/18.1 against 15.2/16.2): the integer kernel leaves the
    /// ports free for the loads sooner. Under heavy load (9–12) it measured 17–19% slower once. Q2_K and Q3_K (their 512-bit float
    /// kernels ~85 and ~129 vector operations per 256 values and row) from memory, one thread, CPU time, min of 8 at load ~12 on a Zen 5 (1.1B Q2_K and
    /// Q3_K_M files; <c>--alternate-stream</c>, <c>--alternate-wide-stream</c>): AVX2 0.61× and 0.44× the float kernels' time,
    /// AVX-512 (<see cref="KQuantPlanesWide"/>) 0.73× and 0.79–0.83×.
    /// </summary>
    public static bool Decodes(GgmlType type) => Handles(type);

    public static bool IsSupported => Avx2.IsSupported && Fma.IsSupported;

    /// <summary>The stored block size of a handled type.</summary>
    public static int WeightBlockBytes(GgmlType type) => type switch
    {
        GgmlType.Q4_K => 144,
        GgmlType.Q5_K => 176,
        GgmlType.Q6_K => 210,
        GgmlType.Q2_K => 84,
        GgmlType.Q3_K => 110,
        _ => throw new NotSupportedException($"no 24-bit activation kernel for {type}"),
    };

    /// <summary>
    /// The block's power-of-two scale: s = 2^e, the smallest with max|x|/s ≤ <see cref="Range"/> (so s ≤ 2·max|x|/Range,
    /// and s/2 ≤ max|x|/(127·2¹⁶) ≈ 1.2·10⁻⁷·max|x|), but at least 2⁻¹⁴⁹, float's smallest subnormal (of which every
    /// float is a whole multiple: such blocks are held exactly). x·(1/s) is taken as x·inv1·inv2, both powers of two
    /// (1/s alone can pass float's range), so it is exact. A block holding an infinity or NaN gets s = NaN and zero
    /// planes, so its dot is NaN as the float kernel's.
    /// </summary>
    /// <remarks>
    /// A normal max|x| takes its exponent from the bits (e = its exponent − 22, one more when the significand passes
    /// 127/64 = 1.984375, as the division would say), and the powers of two are built as bits: the block-32 split
    /// (<see cref="Block32Planes"/>) calls this once per 32 values, where <see cref="MathF.ScaleB"/> three times took ~a
    /// third of its time. The same results as the general form below, which subnormal maxima still take (tested).
    /// </remarks>
    internal static void BlockScale(float amax, out float scale, out float inv1, out float inv2)
    {
        inv2 = 1;
        int bits = BitConverter.SingleToInt32Bits(amax), biased = bits >> 23;
        if (biased is > 0 and < 255) // normal (amax ≥ 0, so no sign bit): e from −148 to 106
        {
            int exponent = biased - 149 + ((bits & 0x7FFFFF) > 0x7E0000 ? 1 : 0);
            scale = BitConverter.Int32BitsToSingle(exponent >= -126 ? (exponent + 127) << 23 : 1 << (exponent + 149));
            int inverse = Math.Min(-exponent, 127);
            inv1 = BitConverter.Int32BitsToSingle((inverse + 127) << 23);
            inv2 = BitConverter.Int32BitsToSingle((-exponent - inverse + 127) << 23);
            return;
        }
        if (!float.IsFinite(amax)) { scale = float.NaN; inv1 = 0; return; }
        if (amax == 0) { scale = 1; inv1 = 0; return; }
        int e = MathF.ILogB(amax) - 22; // amax / 2^e in [2²², 2²³)
        if (MathF.ScaleB(amax, -e) > Range) e++;
        e = Math.Max(e, -149);
        scale = MathF.ScaleB(1f, e);
        inv1 = MathF.ScaleB(1f, Math.Min(-e, 127));
        inv2 = MathF.ScaleB(1f, -e - Math.Min(-e, 127));
    }

    /// <summary>
    /// x (n values, a multiple of 256) → <paramref name="planes"/> (3n bytes: per block of 256 the planes p0, p1, p2
    /// of 256 bytes each) and <paramref name="scales"/> (n / 256). With AVX2 vectorized, else <see cref="SplitReference"/>;
    /// both give the same bytes (tested).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Split(float* x, int n, sbyte* planes, float* scales)
    {
        if (!Avx2.IsSupported)
        {
            SplitReference(new ReadOnlySpan<float>(x, n), new Span<sbyte>(planes, 3 * n), new Span<float>(scales, n / BlockSize));
            return;
        }
        for (int b = 0; b < n / BlockSize; b++)
        {
            float* xb = x + BlockSize * b;
            sbyte* pb = planes + BlockBytes * b;
            BlockScale(MaxMagnitude(xb), out scales[b], out float inv1, out float inv2);
            Vector256<float> inv = Vector256.Create(inv1), more = Vector256.Create(inv2);
            if (float.IsNaN(scales[b]))
            {
                new Span<sbyte>(pb, BlockBytes).Clear();
                continue;
            }
            for (int k = 0; k < BlockSize; k += 64)
            {
                // vcvtps2dq rounds half to even, as MathF.Round in the reference; x·(1/s) is exact (powers of two).
                (Vector256<sbyte> a0, Vector256<sbyte> a1, Vector256<sbyte> a2) = Digits32(xb + k, inv, more);
                (Vector256<sbyte> b0, Vector256<sbyte> b1, Vector256<sbyte> b2) = Digits32(xb + k + 32, inv, more);
                // The kernels' order (Position): 8-byte pieces of values k…k+31 and k+32…k+63 interleaved, as vpunpck[lh]qdq interleaves the quants.
                Place(a0, b0, pb + k);
                Place(a1, b1, pb + BlockSize + k);
                Place(a2, b2, pb + 2 * BlockSize + k);
            }
        }
    }

    /// <summary>The three digit planes of 32 values at x (scaled by 1/s = inv·more, one factor at a time: 1/s alone can pass float's range), in the values' order.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static (Vector256<sbyte>, Vector256<sbyte>, Vector256<sbyte>) Digits32(float* x, Vector256<float> inv, Vector256<float> more)
    {
        (Vector256<int> a0, Vector256<int> a1, Vector256<int> a2) = Digits(Avx.ConvertToVector256Int32(Vector256.Load(x) * inv * more));
        (Vector256<int> b0, Vector256<int> b1, Vector256<int> b2) = Digits(Avx.ConvertToVector256Int32(Vector256.Load(x + 8) * inv * more));
        (Vector256<int> c0, Vector256<int> c1, Vector256<int> c2) = Digits(Avx.ConvertToVector256Int32(Vector256.Load(x + 16) * inv * more));
        (Vector256<int> d0, Vector256<int> d1, Vector256<int> d2) = Digits(Avx.ConvertToVector256Int32(Vector256.Load(x + 24) * inv * more));
        return (Pack(a0, b0, c0, d0), Pack(a1, b1, c1, d1), Pack(a2, b2, c2, d2));
    }

    /// <summary>
    /// 32 digits (four vectors of 8, each in −128…127) as bytes in order: the saturating packs are exact on them (3 operations where
    /// Vector256.Narrow's truncation took ~12) and interleave the 128-bit lanes, which one vpermd undoes.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<sbyte> Pack(Vector256<int> a, Vector256<int> b, Vector256<int> c, Vector256<int> d) =>
        Avx2.PermuteVar8x32(Avx2.PackSignedSaturate(Avx2.PackSignedSaturate(a, b), Avx2.PackSignedSaturate(c, d)).AsInt32(), Vector256.Create(0, 4, 1, 5, 2, 6, 3, 7)).AsSByte();

    /// <summary>Values v…v+31 (low) and v+32…v+63 (high) stored as the kernels read them: unpacklo and unpackhi of their 64-bit pieces.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Place(Vector256<sbyte> low, Vector256<sbyte> high, sbyte* at)
    {
        Avx2.UnpackLow(low.AsUInt64(), high.AsUInt64()).AsSByte().Store(at);
        Avx2.UnpackHigh(low.AsUInt64(), high.AsUInt64()).AsSByte().Store(at + 32);
    }

    /// <summary>
    /// Where value i (0–255) of a block lies in each of its planes: in each run of 64 values the 8-value pieces are stored
    /// in the order 0, 4, 2, 6, 1, 5, 3, 7 (piece q at 8·reverse₃(q)), so that one 32-byte load meets a register made by
    /// vpunpcklqdq of two registers of quants 32 values apart, and the next load the vpunpckhqdq (see the kernels).
    /// </summary>
    public static int Position(int i)
    {
        int q = i >> 3 & 7;
        return (i & ~63) | ((q & 1) << 2 | (q & 2) | q >> 2) << 3 | (i & 7);
    }

    /// <summary>
    /// max|x| of a block of 256, or a non-finite value if it holds an infinity or NaN: the largest of the magnitudes' bit patterns
    /// as integers (their order is the floats' order; infinities and NaNs are above every finite value) — the bits of
    /// <see cref="TensorPrimitives.MaxMagnitude(ReadOnlySpan{float})"/>'s |result| on finite blocks, at a fraction of its time per call.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float MaxMagnitude(float* x)
    {
        Vector256<int> magnitude = Vector256.Create(int.MaxValue), m0 = Vector256<int>.Zero, m1 = m0, m2 = m0, m3 = m0;
        for (int i = 0; i < BlockSize; i += 32)
        {
            m0 = Avx2.Max(m0, Vector256.Load((int*)(x + i)) & magnitude);
            m1 = Avx2.Max(m1, Vector256.Load((int*)(x + i + 8)) & magnitude);
            m2 = Avx2.Max(m2, Vector256.Load((int*)(x + i + 16)) & magnitude);
            m3 = Avx2.Max(m3, Vector256.Load((int*)(x + i + 24)) & magnitude);
        }
        Vector256<int> m = Avx2.Max(Avx2.Max(m0, m1), Avx2.Max(m2, m3));
        Vector128<int> h = Sse41.Max(m.GetLower(), m.GetUpper());
        h = Sse41.Max(h, Sse2.Shuffle(h, 0b_01_00_11_10));
        h = Sse41.Max(h, Sse2.Shuffle(h, 0b_10_11_00_01));
        return BitConverter.Int32BitsToSingle(h.ToScalar());
    }

    /// <summary>v = p0·2¹⁶ + p1·2⁸ + p2, balanced digits (the ranges of <see cref="Range"/>), eight lanes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static (Vector256<int>, Vector256<int>, Vector256<int>) Digits(Vector256<int> v)
    {
        Vector256<int> p0 = Vector256.ShiftRightArithmetic(v + Vector256.Create(32_896), 16);
        Vector256<int> r = v - Vector256.ShiftLeft(p0, 16);
        Vector256<int> p1 = Vector256.ShiftRightArithmetic(r + Vector256.Create(128), 8);
        return (p0, p1, r - Vector256.ShiftLeft(p1, 8));
    }

    /// <summary>The portable scalar form of <see cref="Split"/>.</summary>
    public static void SplitReference(ReadOnlySpan<float> x, Span<sbyte> planes, Span<float> scales)
    {
        CheckSplit(x.Length, planes.Length, scales.Length);
        for (int b = 0; b < x.Length / BlockSize; b++)
        {
            ReadOnlySpan<float> block = x.Slice(b * BlockSize, BlockSize);
            float amax = 0;
            bool finite = true;
            foreach (float v in block)
            {
                finite &= float.IsFinite(v);
                amax = Math.Max(amax, Math.Abs(v));
            }
            BlockScale(finite ? amax : float.NaN, out scales[b], out float inv1, out float inv2);
            Span<sbyte> pb = planes.Slice(b * BlockBytes, BlockBytes);
            if (float.IsNaN(scales[b]))
            {
                pb.Clear();
                continue;
            }
            for (int i = 0; i < BlockSize; i++)
            {
                int v = (int)MathF.Round(block[i] * inv1 * inv2);
                int p0 = (v + 32_896) >> 16, r = v - (p0 << 16), p1 = (r + 128) >> 8, at = Position(i);
                pb[at] = (sbyte)p0;
                pb[BlockSize + at] = (sbyte)p1;
                pb[2 * BlockSize + at] = (sbyte)(r - (p1 << 8));
            }
        }
    }

    /// <summary>
    /// sums[k] = Σ x[width·k …] for width 16 (Q6_K) or 32 (Q4_K, Q5_K): the offsets' Σx, once per matmul call with the split
    /// (a call per sub-block took ~0.8 ns per value, ~27% of a 64-row resident pass). A fixed order, the same bits as
    /// <see cref="SubBlockSumsReference"/>: per 16 values a_j = x_j + x_{8+j}, ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7));
    /// width 32 adds two of those.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void SubBlockSums(float* x, int n, int width, float* sums)
    {
        if (width is not (16 or 32) || n % 128 != 0) throw new ArgumentException($"sub-block sums of width 16 or 32 over a multiple of 128 values, not {width} over {n}");
        if (!Avx2.IsSupported)
        {
            SubBlockSumsReference(new ReadOnlySpan<float>(x, n), width, new Span<float>(sums, n / width));
            return;
        }
        for (int i = 0; i < n; i += 128, x += 128)
        {
            // Eight sums of 16 at once: adjacent pairs (vhaddps within each 128-bit lane), then the lanes' halves added.
            Vector256<float> h01 = Avx.HorizontalAdd(Vector256.Load(x) + Vector256.Load(x + 8), Vector256.Load(x + 16) + Vector256.Load(x + 24));
            Vector256<float> h23 = Avx.HorizontalAdd(Vector256.Load(x + 32) + Vector256.Load(x + 40), Vector256.Load(x + 48) + Vector256.Load(x + 56));
            Vector256<float> h45 = Avx.HorizontalAdd(Vector256.Load(x + 64) + Vector256.Load(x + 72), Vector256.Load(x + 80) + Vector256.Load(x + 88));
            Vector256<float> h67 = Avx.HorizontalAdd(Vector256.Load(x + 96) + Vector256.Load(x + 104), Vector256.Load(x + 112) + Vector256.Load(x + 120));
            Vector256<float> low = Avx.HorizontalAdd(h01, h23), high = Avx.HorizontalAdd(h45, h67);
            Vector256<float> s16 = Avx.Permute2x128(low, high, 0x20) + Avx.Permute2x128(low, high, 0x31);
            if (width == 16)
                s16.Store(sums + i / 16);
            else
                Sse3.HorizontalAdd(s16.GetLower(), s16.GetUpper()).Store(sums + i / 32);
        }
    }

    /// <summary>The scalar form of <see cref="SubBlockSums"/>, bit for bit.</summary>
    public static void SubBlockSumsReference(ReadOnlySpan<float> x, int width, Span<float> sums)
    {
        if (width is not (16 or 32) || x.Length % 128 != 0 || sums.Length < x.Length / width)
            throw new ArgumentException($"sub-block sums of width 16 or 32 over a multiple of 128 values, not {width} over {x.Length} into {sums.Length}");
        Span<float> a = stackalloc float[8];
        for (int k = 0; k < x.Length / width; k++)
        {
            float total = 0;
            for (int half = 0; half < width / 16; half++)
            {
                ReadOnlySpan<float> v = x.Slice(width * k + 16 * half, 16);
                for (int j = 0; j < 8; j++) a[j] = v[j] + v[8 + j];
                float sum = ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
                total = half == 0 ? sum : total + sum;
            }
            sums[k] = total;
        }
    }

    private static void CheckSplit(int n, int planes, int scales)
    {
        if (n % BlockSize != 0 || planes < 3 * n || scales < n / BlockSize)
            throw new ArgumentException($"splitting {n} values into 24-bit planes needs a multiple of {BlockSize} values, {3L * n} plane bytes (got {planes}) and {n / BlockSize} scales (got {scales})");
    }

    /// <summary>One stored row against one split input (sums: <see cref="SubBlockSums"/> at <see cref="KQuantRows.SumWidth"/>): the AVX2 kernel, or <see cref="Reference"/> without it.</summary>
    public static float Dot(GgmlType type, ReadOnlySpan<byte> row, ReadOnlySpan<sbyte> planes, ReadOnlySpan<float> scales, ReadOnlySpan<float> sums, int n)
    {
        Check(type, row.Length, planes.Length, scales.Length, sums.Length, n);
        if (!IsSupported) return (float)Reference(type, row, planes, scales, sums, n, out _);
        float y;
        fixed (byte* w = row)
        fixed (sbyte* p = planes)
        fixed (float* s = scales, xs = sums)
            Dot4(type, w, 0, 1, p, s, xs, n, &y);
        return y;
    }

    private static void Check(GgmlType type, long rowBytes, int planes, int scales, int sums, int n)
    {
        if (!Handles(type)) throw new NotSupportedException($"24-bit activation planes meet Q2_K, Q3_K, Q4_K, Q5_K or Q6_K rows, not {type}");
        int width = KQuantRows.SumWidth(type);
        long need = n / BlockSize * (long)WeightBlockBytes(type);
        if (n <= 0 || n % BlockSize != 0 || rowBytes < need || planes < 3L * n || scales < n / BlockSize || sums < n / width)
            throw new ArgumentException($"a {type} row of {n} values needs a positive multiple of {BlockSize} values, {need} row bytes (got {rowBytes}), {3L * n} plane bytes (got {planes}), {n / BlockSize} scales (got {scales}) and {n / width} sub-block sums (got {sums})");
    }

    /// <summary>
    /// The scalar reference: per super-block and plane the exact integer Σ_j sc_j·Σ q·p over its sub-blocks
    /// (q unsigned: Q6_K's −32 is in the offsets), returned in <paramref name="integers"/> [block, plane], and the
    /// dot in float64: Σ d·s·(P0·2¹⁶ + P1·2⁸ + P2) + the offsets o·Σx.
    /// </summary>
    public static double Reference(GgmlType type, ReadOnlySpan<byte> row, ReadOnlySpan<sbyte> planes, ReadOnlySpan<float> scales, ReadOnlySpan<float> sums, int n, out long[,] integers)
    {
        Check(type, row.Length, planes.Length, scales.Length, sums.Length, n);
        int blocks = n / BlockSize, bytes = WeightBlockBytes(type);
        integers = new long[blocks, 3];
        Span<int> q = stackalloc int[BlockSize];
        Span<int> sc = stackalloc int[16];
        double total = 0;
        for (int b = 0; b < blocks; b++)
        {
            ReadOnlySpan<byte> block = row.Slice(b * bytes, bytes);
            double offsets = 0, d;
            int width;
            if (type == GgmlType.Q6_K)
            {
                for (int h = 0; h < 2; h++)
                    for (int l = 0; l < 32; l++)
                    {
                        byte a = block[64 * h + l], c = block[64 * h + 32 + l], hi = block[128 + 32 * h + l];
                        q[128 * h + l] = (a & 15) | (hi & 3) << 4;
                        q[128 * h + 32 + l] = (c & 15) | (hi >> 2 & 3) << 4;
                        q[128 * h + 64 + l] = (a >> 4) | (hi >> 4 & 3) << 4;
                        q[128 * h + 96 + l] = (c >> 4) | (hi >> 6) << 4;
                    }
                d = Half(block, 208);
                width = 16;
                for (int k = 0; k < 16; k++)
                {
                    sc[k] = (sbyte)block[192 + k];
                    offsets += -32.0 * d * sc[k] * sums[16 * b + k];
                }
            }
            else if (type is GgmlType.Q2_K or GgmlType.Q3_K)
            {
                // Value 128h + 32j + l: bits 2j, 2j + 1 of byte l of half h's 32 quant bytes; Q3_K's third bit is bit 4h + j of hmask[l].
                bool third = type == GgmlType.Q3_K;
                for (int h = 0; h < 2; h++)
                    for (int j = 0; j < 4; j++)
                        for (int l = 0; l < 32; l++)
                            q[128 * h + 32 * j + l] = (block[(third ? 32 : 16) + 32 * h + l] >> 2 * j & 3) | (third ? (block[l] >> 4 * h + j & 1) << 2 : 0);
                width = 16;
                if (third)
                {
                    d = Half(block, 108);
                    Quantized.ScalesQ3_K(block.Slice(96, 12), sc); // sc − 32
                    for (int k = 0; k < 16; k++) offsets += -4.0 * d * sc[k] * sums[16 * b + k];
                }
                else
                {
                    d = Half(block, 80);
                    double dmin = Half(block, 82);
                    for (int k = 0; k < 16; k++)
                    {
                        sc[k] = block[k] & 15;
                        offsets -= dmin * (block[k] >> 4) * sums[16 * b + k];
                    }
                }
            }
            else
            {
                for (int g = 0; g < 4; g++)
                    for (int l = 0; l < 32; l++)
                    {
                        int packed = block[(type == GgmlType.Q5_K ? 48 : 16) + 32 * g + l];
                        int fifth = type == GgmlType.Q5_K ? block[16 + l] : 0;
                        q[64 * g + l] = (packed & 15) | (fifth >> 2 * g & 1) << 4;
                        q[64 * g + 32 + l] = (packed >> 4) | (fifth >> 2 * g + 1 & 1) << 4;
                    }
                d = Half(block, 0);
                double dmin = Half(block, 2);
                width = 32;
                for (int j = 0; j < 8; j++)
                {
                    Quantized.ScaleMinK4(j, block.Slice(4, 12), out int s, out int m);
                    sc[j] = s;
                    offsets -= dmin * m * sums[8 * b + j];
                }
            }
            for (int p = 0; p < 3; p++)
            {
                ReadOnlySpan<sbyte> x = planes.Slice(b * BlockBytes + p * BlockSize, BlockSize);
                long sum = 0;
                for (int i = 0; i < BlockSize; i++) sum += (long)sc[i / width] * q[i] * x[Position(i)];
                integers[b, p] = sum;
            }
            total += d * scales[b] * (integers[b, 0] * 65536.0 + integers[b, 1] * 256.0 + integers[b, 2]) + offsets;
        }
        return total;
    }

    private static float Half(ReadOnlySpan<byte> block, int at) => (float)BitConverter.UInt16BitsToHalf(MemoryMarshal.Read<ushort>(block[at..]));

    /// <summary>The kernel's own integer sums of one super-block against one block of planes (each plane's lanes added), for the tests.</summary>
    internal static (long P0, long P1, long P2) BlockSums(GgmlType type, byte* block, sbyte* xb)
    {
        if (!IsSupported) throw new PlatformNotSupportedException("the 24-bit activation kernels need AVX2 and FMA");
        Vector256<int> i0, i1, i2;
        switch (type)
        {
            case GgmlType.Q4_K: (i0, i1, i2, _) = Q45KSums<NoFifthBit>(block, xb); break;
            case GgmlType.Q5_K: (i0, i1, i2, _) = Q45KSums<FifthBit>(block, xb); break;
            case GgmlType.Q6_K: (i0, i1, i2) = Q6KSums(block, xb); break;
            case GgmlType.Q2_K: (i0, i1, i2, _) = Q23KSums<TwoBits>(block, xb); break;
            case GgmlType.Q3_K: (i0, i1, i2, _) = Q23KSums<ThirdBit>(block, xb); break;
            default: throw new NotSupportedException($"no 24-bit activation kernel for {type}");
        }
        return (Sum(i0), Sum(i1), Sum(i2));

        static long Sum(Vector256<int> v)
        {
            long total = 0;
            for (int i = 0; i < 8; i++) total += v[i];
            return total;
        }
    }

    /// <summary>
    /// y[0 … rows − 1] = rows w, w + rowBytes, … (n values each, n a multiple of 256) times the split input
    /// (<paramref name="planes"/>, <paramref name="scales"/> from <see cref="Split"/>; <paramref name="sums"/> from
    /// <see cref="SubBlockSums"/> at <see cref="KQuantRows.SumWidth"/>); rows is 1 to 4. AVX2 and FMA.
    /// </summary>
    public static void Dot4(GgmlType type, byte* w, long rowBytes, int rows, sbyte* planes, float* scales, float* sums, int n, float* y)
    {
        if (rows is < 1 or > 4) throw new ArgumentOutOfRangeException(nameof(rows), rows, "1 to 4 rows");
        if (!IsSupported) throw new PlatformNotSupportedException("the 24-bit activation kernels need AVX2 and FMA");
        int blocks = n / BlockSize;
        // Row by row: the planes (768 bytes a block) stay in L1 and are read as memory operands, so nothing is gained
        // by holding them in registers for four rows, and one row's loop keeps its accumulators and constants in the
        // 16 registers (four rows inlined together spilled). Each row prefetches the row `rows` after it. The type is
        // chosen once per call, not per row: a switch inside the row loop kept its state on the stack around each row.
        switch (type)
        {
            case GgmlType.Q4_K: Rows<Q4KRow>(w, rowBytes, rows, planes, scales, sums, blocks, y); break;
            case GgmlType.Q5_K: Rows<Q5KRow>(w, rowBytes, rows, planes, scales, sums, blocks, y); break;
            case GgmlType.Q6_K: Rows<Q6KRowKernel>(w, rowBytes, rows, planes, scales, sums, blocks, y); break;
            case GgmlType.Q2_K: Rows<Q2KRow>(w, rowBytes, rows, planes, scales, sums, blocks, y); break;
            case GgmlType.Q3_K: Rows<Q3KRow>(w, rowBytes, rows, planes, scales, sums, blocks, y); break;
            default: throw new NotSupportedException($"no 24-bit activation kernel for {type}");
        }
    }

    /// <summary>One row kernel per type, so <see cref="Rows"/> is specialized and calls it directly.</summary>
    private interface IRowKernel
    {
        static abstract float Row(byte* w, long ahead, sbyte* planes, float* scales, float* sums, int blocks);
    }

    private readonly struct Q4KRow : IRowKernel
    {
        public static float Row(byte* w, long ahead, sbyte* planes, float* scales, float* sums, int blocks) => Q45K<NoFifthBit>(w, ahead, planes, scales, sums, blocks);
    }

    private readonly struct Q5KRow : IRowKernel
    {
        public static float Row(byte* w, long ahead, sbyte* planes, float* scales, float* sums, int blocks) => Q45K<FifthBit>(w, ahead, planes, scales, sums, blocks);
    }

    private readonly struct Q6KRowKernel : IRowKernel
    {
        public static float Row(byte* w, long ahead, sbyte* planes, float* scales, float* sums, int blocks) => Q6K(w, ahead, planes, scales, sums, blocks);
    }

    private readonly struct Q2KRow : IRowKernel
    {
        public static float Row(byte* w, long ahead, sbyte* planes, float* scales, float* sums, int blocks) => Q23K<TwoBits>(w, ahead, planes, scales, sums, blocks);
    }

    private readonly struct Q3KRow : IRowKernel
    {
        public static float Row(byte* w, long ahead, sbyte* planes, float* scales, float* sums, int blocks) => Q23K<ThirdBit>(w, ahead, planes, scales, sums, blocks);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // compiled once, fully: tiered code with its profile laid the Q3_K loop out 5–30% slower
    private static void Rows<T>(byte* w, long rowBytes, int rows, sbyte* planes, float* scales, float* sums, int blocks, float* y) where T : struct, IRowKernel
    {
        long ahead = rows * rowBytes;
        for (int r = 0; r < rows; r++) y[r] = T.Row(w + r * rowBytes, ahead, planes, scales, sums, blocks);
    }

    /// <summary>Prefetches a block of a later row (the hardware prefetcher stops at the 4 KB pages of the mapped file).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Prefetch(byte* at, int bytes)
    {
        // Written out: bytes is a constant after inlining (84, 110, 144, 176, 210), so no loop and no branch remain.
        Sse.Prefetch0(at);
        Sse.Prefetch0(at + 64);
        if (bytes > 128) Sse.Prefetch0(at + 128);
        if (bytes > 192) Sse.Prefetch0(at + 192);
    }

    /// <summary>total + d·s·(P0·2¹⁶ + P1·2⁸ + P2), lane by lane (s before d: d·s alone could fall below float's normal range).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Combine(Vector256<int> i0, Vector256<int> i1, Vector256<int> i2, Vector256<float> s, Vector256<float> d, Vector256<float> total)
    {
        Vector256<float> t = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(i1), Vector256.Create(256f), Vector256.ConvertToSingle(i2));
        t = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(i0), Vector256.Create(65536f), t);
        return Vector256.FusedMultiplyAdd(t * s, d, total);
    }

    // ---- Q4_K (144 B) and Q5_K (176 B): f16 d, dmin, 12 bytes of 6-bit scales and minimums; group g (0–3) of
    // 32 nibble bytes holds values 64g + l (low nibbles, sub-block 2g) and 64g + 32 + l (high, sub-block 2g + 1).

    /// <summary>One row (blocks super-blocks at w) against the split input; prefetches the same block `ahead` bytes on.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization | MethodImplOptions.NoInlining)] // its own method: inlined into Rows, the row loop's values spilled a vector per block
    private static float Q45K<TFifth>(byte* w, long ahead, sbyte* planes, float* scales, float* sums, int blocks)
        where TFifth : struct, IFifthBit
    {
        int blockBytes = TFifth.Nibbles + 128; // 144 or 176, a constant
        float* halves = HalfTable.Pointer;
        Vector256<float> total = default;
        // Pointers stepped, not indexed: fewer general-purpose registers live (the scales' unpacking needs them), no spills.
        for (byte* block = w, end = w + (long)blocks * blockBytes; block < end; block += blockBytes, planes += BlockBytes, sums += 8, scales++)
        {
            Prefetch(block + ahead, blockBytes);
            total = Q45KRow<TFifth>(block, halves, planes, Vector256.Load(sums), Vector256.Create(*scales), total);
        }
        return Vector256.Sum(total);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Q45KRow<TFifth>(byte* block, float* halves, sbyte* xb, Vector256<float> xs, Vector256<float> scale, Vector256<float> total)
        where TFifth : struct, IFifthBit
    {
        (Vector256<int> i0, Vector256<int> i1, Vector256<int> i2, Vector256<int> mins) = Q45KSums<TFifth>(block, xb);
        // d and dmin broadcast straight from the table (a load each, no move through xmm); −dmin·m·Σx as one negated multiply-add.
        Vector256<float> d = Vector256.Create(halves[*(ushort*)block]), dmin = Vector256.Create(halves[*(ushort*)(block + 2)]);
        total = Fma.MultiplyAddNegated(Vector256.ConvertToSingle(mins) * dmin, xs, total);
        return Combine12(i0, Vector256.ShiftLeft(i1, 8) + i2, scale, d, total);
    }

    /// <summary>
    /// <see cref="Combine"/> with P1·2⁸ + P2 added in int32 (where it fits: Q4_K ≤ 2⁸·3.9·10⁶ + 3.9·10⁶ ≈ 1.0·10⁹, Q5_K
    /// 257·7,999,488 ≈ 2.06·10⁹ &lt; 2³¹, Q2_K and Q3_K far below): converting the exact sum rounds once, as the float
    /// multiply-add of the two exact conversions did, so the bits are the same, with two integer operations where a
    /// conversion and a multiply-add took the float ports.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Combine12(Vector256<int> i0, Vector256<int> i12, Vector256<float> s, Vector256<float> d, Vector256<float> total)
    {
        Vector256<float> t = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(i0), Vector256.Create(65536f), Vector256.ConvertToSingle(i12));
        return Vector256.FusedMultiplyAdd(t * s, d, total);
    }

    /// <summary>The three planes' integer sums of one super-block (8 lanes each) and its 8 minimums.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static (Vector256<int>, Vector256<int>, Vector256<int>, Vector256<int>) Q45KSums<TFifth>(byte* block, sbyte* xb)
        where TFifth : struct, IFifthBit
    {
        // The 6-bit scales and minimums unpacked in general-purpose registers (as ChunkedQuant.ScalesK4Integers): the scales'
        // 8 bytes go to both lanes of one register, from which each group's vpshufb makes its 16-bit scales (2 operations and
        // 4 shuffles a super-block, where widening, pairing the halves and 4 vpermd took 8).
        uint a = Unsafe.ReadUnaligned<uint>(block + 4), b = Unsafe.ReadUnaligned<uint>(block + 8), c = Unsafe.ReadUnaligned<uint>(block + 12);
        ulong scaleBytes = (a & 0x3F3F3F3Fu) | (ulong)((c & 0x0F0F0F0Fu) | (a >> 2 & 0x30303030u)) << 32;
        ulong minBytes = (b & 0x3F3F3F3Fu) | (ulong)((c >> 4 & 0x0F0F0F0Fu) | (b >> 2 & 0x30303030u)) << 32;
        Vector256<int> mins = Avx2.ConvertToVector256Int32(Vector128.CreateScalar(minBytes).AsByte());
        Vector256<byte> pairs = Vector256.Create(scaleBytes).AsByte();
        Vector256<int> i0 = default, i1 = default, i2 = default;
        // The groups written out, so Q5_K's bit shifts are constants.
        Q45KGroup<TFifth>(block, xb, pairs, 0, ref i0, ref i1, ref i2);
        Q45KGroup<TFifth>(block, xb, pairs, 1, ref i0, ref i1, ref i2);
        Q45KGroup<TFifth>(block, xb, pairs, 2, ref i0, ref i1, ref i2);
        Q45KGroup<TFifth>(block, xb, pairs, 3, ref i0, ref i1, ref i2);
        return (i0, i1, i2, mins);
    }

    /// <summary>
    /// Group g: values 64g + l (low nibbles, sub-block 2g) and 64g + 32 + l (high, 2g + 1), interleaved in 8-byte pieces
    /// (<see cref="Position"/>) so both registers hold the two sub-blocks at the same places: their vpmaddubsw pair sums
    /// (|·| ≤ 2·31·128 each, Q5_K) add in 16 bits, and one vpmaddwd per plane applies the scales — per 64 values 6
    /// byte multiplies and 3 word multiplies, where a vpmaddwd per register took 6.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Q45KGroup<TFifth>(byte* block, sbyte* xb, Vector256<byte> pairs, int g, ref Vector256<int> i0, ref Vector256<int> i1, ref Vector256<int> i2)
        where TFifth : struct, IFifthBit
    {
        Vector256<byte> packed = Vector256.Load(block + TFifth.Nibbles + 32 * g), mask = Vector256.Create((byte)0x0F);
        Vector256<ulong> low = TFifth.Low(block, g, packed & mask).AsUInt64();
        Vector256<ulong> high = TFifth.High(block, g, Vector256.ShiftRightLogical(packed.AsUInt16(), 4).AsByte() & mask).AsUInt64();
        Vector256<byte> first = Avx2.UnpackLow(low, high).AsByte(), second = Avx2.UnpackHigh(low, high).AsByte();
        // 64-bit pieces: sub-blocks 2g, 2g + 1, 2g, 2g + 1; each scale byte into the low byte of its 16-bit words (0x80: a zero high byte).
        ushort s0 = (ushort)(0x8000 | 2 * g), s1 = (ushort)(0x8000 | 2 * g + 1);
        Vector256<short> scale = Avx2.Shuffle(pairs, Vector256.Create(s0, s0, s0, s0, s1, s1, s1, s1, s0, s0, s0, s0, s1, s1, s1, s1).AsByte()).AsInt16();
        Planes(first, second, xb + 64 * g, scale, ref i0, ref i1, ref i2);
    }

    /// <summary>Two registers of quants (sharing their scales' layout) against their 64 bytes of each plane at x.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Planes(Vector256<byte> first, Vector256<byte> second, sbyte* x, Vector256<short> scale, ref Vector256<int> i0, ref Vector256<int> i1, ref Vector256<int> i2)
    {
        i0 += Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(first, Vector256.Load(x)) + Avx2.MultiplyAddAdjacent(second, Vector256.Load(x + 32)), scale);
        i1 += Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(first, Vector256.Load(x + BlockSize)) + Avx2.MultiplyAddAdjacent(second, Vector256.Load(x + BlockSize + 32)), scale);
        i2 += Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(first, Vector256.Load(x + 2 * BlockSize)) + Avx2.MultiplyAddAdjacent(second, Vector256.Load(x + 2 * BlockSize + 32)), scale);
    }

    // ---- Q6_K (210 B): 128 bytes of low nibbles, 64 of high bit pairs, 16 signed scales, f16 d. Half h (0, 1):
    // bytes A = ql[64h …], C = ql[64h + 32 …], H = qh[32h …] give values 128h + (0, 32, 64, 96) + l from
    // A's low nibbles, C's low, A's high, C's high with H's bit pairs 0–3: each 32 values are two sub-blocks.

    [MethodImpl(MethodImplOptions.AggressiveOptimization | MethodImplOptions.NoInlining)] // its own method: inlined into Rows, the row loop's values spilled a vector per block
    private static float Q6K(byte* w, long ahead, sbyte* planes, float* scales, float* sums, int blocks)
    {
        float* halves = HalfTable.Pointer;
        Vector256<float> total = default;
        for (byte* block = w, end = w + (long)blocks * 210; block < end; block += 210, planes += BlockBytes, sums += 16, scales++)
        {
            Prefetch(block + ahead, 210);
            total = Q6KRow(block, halves, planes, sums, Vector256.Create(*scales), total);
        }
        return Vector256.Sum(total);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Q6KRow(byte* block, float* halves, sbyte* xb, float* xs, Vector256<float> scale, Vector256<float> total)
    {
        (Vector256<int> i0, Vector256<int> i1, Vector256<int> i2) = Q6KSums(block, xb);
        Vector256<float> vd = Vector256.Create(halves[*(ushort*)(block + 208)]), offset = vd * Vector256.Create(-32f);
        // The −32 offsets: −32·d·sc per sub-block against Σx (the −32 with d, one multiply where two scaled the sums: a power
        // of two, so the products are the same bits), Σx read by the multiply-adds (held across the block they were spilled).
        Vector256<float> low = Vector256.ConvertToSingle(Avx2.ConvertToVector256Int32((sbyte*)block + 192)) * offset;
        Vector256<float> high = Vector256.ConvertToSingle(Avx2.ConvertToVector256Int32((sbyte*)block + 200)) * offset;
        total = Vector256.FusedMultiplyAdd(high, Vector256.Load(xs + 8), Vector256.FusedMultiplyAdd(low, Vector256.Load(xs), total));
        return Combine(i0, i1, i2, scale, vd, total);
    }

    /// <summary>The three planes' integer sums of one super-block (8 lanes each).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static (Vector256<int>, Vector256<int>, Vector256<int>) Q6KSums(byte* block, sbyte* xb)
    {
        Vector256<short> sc = Avx2.ConvertToVector256Int16((sbyte*)block + 192); // sub-blocks 0–7 in the low lane, 8–15 in the high
        Vector256<int> i0 = default, i1 = default, i2 = default;
        Q6KHalf(block, xb, Avx2.Permute2x128(sc, sc, 0x00), 0, ref i0, ref i1, ref i2);
        Q6KHalf(block, xb, Avx2.Permute2x128(sc, sc, 0x11), 1, ref i0, ref i1, ref i2);
        return (i0, i1, i2);
    }

    /// <summary>Half h; <paramref name="sc"/> holds its sub-blocks 8h … 8h + 7 in both lanes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Q6KHalf(byte* block, sbyte* xb, Vector256<short> sc, int h, ref Vector256<int> i0, ref Vector256<int> i1, ref Vector256<int> i2)
    {
        Vector256<byte> a = Vector256.Load(block + 64 * h), c = Vector256.Load(block + 64 * h + 32);
        Vector256<ushort> bits = Vector256.Load((ushort*)(block + 128 + 32 * h));
        Vector256<byte> low = Vector256.Create((byte)0x0F), top = Vector256.Create((byte)0x30);
        // 16-bit shifts: bits crossing from the neighbouring byte fall outside the masks. Values 128h + l and 128h + 32 + l
        // (sub-blocks 8h … 8h + 3), then 128h + 64 + l and 128h + 96 + l (8h + 4 … 8h + 7), paired as in Q4_K (Position):
        // pieces of sub-blocks m, m + 2 | m + 1, m + 3 in both registers, their pair sums (|·| ≤ 2·63·128 = 16,128 each) added in 16 bits.
        Vector256<byte> la = (a & low) | (Vector256.ShiftLeft(bits, 4).AsByte() & top), lc = (c & low) | (Vector256.ShiftLeft(bits, 2).AsByte() & top);
        Planes(Avx2.UnpackLow(la.AsUInt64(), lc.AsUInt64()).AsByte(), Avx2.UnpackHigh(la.AsUInt64(), lc.AsUInt64()).AsByte(), xb + 128 * h,
               Avx2.Shuffle(sc.AsByte(), QuarterShuffle(0)).AsInt16(), ref i0, ref i1, ref i2);
        Vector256<byte> ha = (Vector256.ShiftRightLogical(a.AsUInt16(), 4).AsByte() & low) | (bits.AsByte() & top);
        Vector256<byte> hc = (Vector256.ShiftRightLogical(c.AsUInt16(), 4).AsByte() & low) | (Vector256.ShiftRightLogical(bits, 2).AsByte() & top);
        Planes(Avx2.UnpackLow(ha.AsUInt64(), hc.AsUInt64()).AsByte(), Avx2.UnpackHigh(ha.AsUInt64(), hc.AsUInt64()).AsByte(), xb + 128 * h + 64,
               Avx2.Shuffle(sc.AsByte(), QuarterShuffle(4)).AsInt16(), ref i0, ref i1, ref i2);
    }

    /// <summary>Bytes selecting, of the 8 16-bit scales in each lane, m and m + 2 (four lanes each) in the low lane and m + 1, m + 3 in the high.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<byte> QuarterShuffle(int m)
    {
        ushort s0 = (ushort)(2 * m | (2 * m + 1) << 8), s1 = (ushort)(s0 + 0x0202), s2 = (ushort)(s0 + 0x0404), s3 = (ushort)(s0 + 0x0606);
        return Vector256.Create(Vector128.Create(s0, s0, s0, s0, s2, s2, s2, s2), Vector128.Create(s1, s1, s1, s1, s3, s3, s3, s3)).AsByte();
    }

    // ---- Q2_K (84 B: 16 bytes of 4-bit scales (low) and minimums (high), 64 bytes of 2-bit quants, f16 d, dmin) and
    // Q3_K (110 B: 32 bytes of third bits, 64 bytes of 2-bit quants, 12 bytes of 6-bit scales, f16 d). Half h (0, 1):
    // the 32 quant bytes Q = qs[32h …] give values 128h + 32j + l as bits 2j, 2j + 1 of Q[l] (Q3_K: and bit 4h + j of
    // hmask[l] as q's bit 2, so q = low2 + 4·high in 0…7 and the value d·(sc − 32)·(q − 4)). Sub-blocks of 16 laid
    // out as Q6_K's, so the same pairing (Position) and scale shuffles serve.

    [MethodImpl(MethodImplOptions.AggressiveOptimization | MethodImplOptions.NoInlining)] // its own method: inlined into Rows, the row loop's values spilled a vector per block
    private static float Q23K<T>(byte* w, long ahead, sbyte* planes, float* scales, float* sums, int blocks) where T : struct
    {
        bool third = typeof(T) == typeof(ThirdBit);
        int bytes = third ? 110 : 84;
        float* halves = HalfTable.Pointer;
        Vector256<float> total = default;
        for (byte* block = w, end = w + (long)blocks * bytes; block < end; block += bytes, planes += BlockBytes, sums += 16, scales++)
        {
            Prefetch(block + ahead, bytes);
            (Vector256<int> i0, Vector256<int> i1, Vector256<int> i2, Vector256<short> sc) = Q23KSums<T>(block, planes);
            // The offsets per sub-block of 16 against its Σx: Q2_K −dmin·m, Q3_K −4·d·(sc − 32).
            if (third)
            {
                // Scalar d and the float combination kept: the Q2_K path's direct broadcasts and integer P1·2⁸ + P2 measured 4% slower here.
                float d = HalfTable.ToSingle(halves, ref block[108]);
                Vector256<float> low = Vector256.ConvertToSingle(Avx2.ConvertToVector256Int32(sc.GetLower()));
                Vector256<float> high = Vector256.ConvertToSingle(Avx2.ConvertToVector256Int32(sc.GetUpper()));
                Vector256<float> offsets = Vector256.FusedMultiplyAdd(low, Vector256.Load(sums), high * Vector256.Load(sums + 8));
                total = Vector256.FusedMultiplyAdd(offsets, Vector256.Create(-4 * d), total);
                total = Combine(i0, i1, i2, Vector256.Create(*scales), Vector256.Create(d), total);
            }
            else
            {
                Vector256<float> d = Vector256.Create(halves[*(ushort*)(block + 80)]);
                Vector256<float> low = Vector256.ConvertToSingle(Vector256.ShiftRightLogical(Avx2.ConvertToVector256Int32(block), 4));
                Vector256<float> high = Vector256.ConvertToSingle(Vector256.ShiftRightLogical(Avx2.ConvertToVector256Int32(block + 8), 4));
                Vector256<float> offsets = Vector256.FusedMultiplyAdd(low, Vector256.Load(sums), high * Vector256.Load(sums + 8));
                total = Fma.MultiplyAddNegated(offsets, Vector256.Create(halves[*(ushort*)(block + 82)]), total);
                total = Combine12(i0, Vector256.ShiftLeft(i1, 8) + i2, Vector256.Create(*scales), d, total);
            }
        }
        return Vector256.Sum(total);
    }

    /// <summary>The three planes' integer sums of one Q2_K/Q3_K super-block (8 lanes each) and its 16 scales (sub-blocks 0–7 in the low lane, 8–15 in the high).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static (Vector256<int>, Vector256<int>, Vector256<int>, Vector256<short>) Q23KSums<T>(byte* block, sbyte* xb) where T : struct
    {
        Vector256<short> sc = typeof(T) == typeof(ThirdBit) ? Avx2.ConvertToVector256Int16(Q3KScales(block)) : Avx2.ConvertToVector256Int16(Vector128.Load(block) & Vector128.Create((byte)0x0F));
        Vector256<int> i0 = default, i1 = default, i2 = default;
        Q23KHalf<T>(block, xb, Avx2.Permute2x128(sc, sc, 0x00), 0, ref i0, ref i1, ref i2);
        Q23KHalf<T>(block, xb, Avx2.Permute2x128(sc, sc, 0x11), 1, ref i0, ref i1, ref i2);
        return (i0, i1, i2, sc);
    }

    /// <summary>
    /// Q3_K's 16 scales minus 32 (−32…31) from their 12 bytes at 96: low nibbles of bytes 0–7 (sub-blocks 0–7) and their high
    /// nibbles (8–15), bits 4–5 from byte 8 + j % 4 at bit 2·(j / 4). Unpacked in general-purpose registers, 4 bytes at a time
    /// (as <see cref="ChunkedQuant.ScalesK4Integers"/>): the vector ports bound the kernels, and the vector form took ~11 of their
    /// operations per super-block and row, this one 3 (two moves, a subtraction).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector128<sbyte> Q3KScales(byte* block)
    {
        uint a = Unsafe.ReadUnaligned<uint>(block + 96), b = Unsafe.ReadUnaligned<uint>(block + 100), c = Unsafe.ReadUnaligned<uint>(block + 104);
        const uint low = 0x0F0F0F0Fu, top = 0x30303030u;
        ulong first = ((a & low) | (c << 4 & top)) | (ulong)((b & low) | (c << 2 & top)) << 32;
        ulong second = ((a >> 4 & low) | (c & top)) | (ulong)((b >> 4 & low) | (c >> 2 & top)) << 32;
        return (Vector128.Create(first, second).AsByte() - Vector128.Create((byte)32)).AsSByte();
    }

    /// <summary>Half h; <paramref name="sc"/> holds its sub-blocks 8h … 8h + 7 in both lanes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Q23KHalf<T>(byte* block, sbyte* xb, Vector256<short> sc, int h, ref Vector256<int> i0, ref Vector256<int> i1, ref Vector256<int> i2) where T : struct
    {
        bool third = typeof(T) == typeof(ThirdBit);
        Vector256<ushort> q = Vector256.Load((ushort*)(block + (third ? 32 : 16) + 32 * h));
        Vector256<byte> three = Vector256.Create((byte)3);
        // 16-bit shifts: bits crossing from the neighbouring byte fall outside the masks.
        Vector256<byte> q0 = q.AsByte() & three, q1 = Vector256.ShiftRightLogical(q, 2).AsByte() & three;
        Vector256<byte> q2 = Vector256.ShiftRightLogical(q, 4).AsByte() & three, q3 = Vector256.ShiftRightLogical(q, 6).AsByte() & three;
        if (third)
        {
            Vector256<ushort> hm = Vector256.Load((ushort*)block);
            q0 |= ThirdBitOf(hm, 4 * h);
            q1 |= ThirdBitOf(hm, 4 * h + 1);
            q2 |= ThirdBitOf(hm, 4 * h + 2);
            q3 |= ThirdBitOf(hm, 4 * h + 3);
        }
        // Pieces of sub-blocks m, m + 2 | m + 1, m + 3 in both registers (as Q6_K); pairs ≤ 2·7·128 = 1,792, two added in 16 bits.
        Planes(Avx2.UnpackLow(q0.AsUInt64(), q1.AsUInt64()).AsByte(), Avx2.UnpackHigh(q0.AsUInt64(), q1.AsUInt64()).AsByte(), xb + 128 * h,
               Avx2.Shuffle(sc.AsByte(), QuarterShuffle(0)).AsInt16(), ref i0, ref i1, ref i2);
        Planes(Avx2.UnpackLow(q2.AsUInt64(), q3.AsUInt64()).AsByte(), Avx2.UnpackHigh(q2.AsUInt64(), q3.AsUInt64()).AsByte(), xb + 128 * h + 64,
               Avx2.Shuffle(sc.AsByte(), QuarterShuffle(4)).AsInt16(), ref i0, ref i1, ref i2);
    }

    /// <summary>Bit <paramref name="bit"/> (a constant, 0–7) of each hmask byte moved to bit 2.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<byte> ThirdBitOf(Vector256<ushort> hm, int bit) =>
        (bit >= 2 ? Vector256.ShiftRightLogical(hm, bit - 2) : Vector256.ShiftLeft(hm, 2 - bit)).AsByte() & Vector256.Create((byte)4);
}

/// <summary>Type markers of the Q2_K/Q3_K plane kernels: Q2_K's 2-bit quants, Q3_K's with a third bit from hmask.</summary>
internal readonly struct TwoBits;

/// <inheritdoc cref="TwoBits"/>
internal readonly struct ThirdBit;
