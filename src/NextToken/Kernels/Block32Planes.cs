using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using NextToken.Tensors;

namespace NextToken.Kernels;

/// <summary>
/// Exact AVX2 decode of Q4_1, Q5_0 and Q5_1 through 24-bit activations, four rows at a time: per block of 32 values x is
/// held as x ≈ s·(p0·2¹⁶ + p1·2⁸ + p2) with s a power of two and three planes of balanced signed bytes (the split of
/// <see cref="KQuantPlanes"/>, per 32 values instead of 256: |x − s·v| ≤ s/2 ≈ 1.2·10⁻⁷·max|x| of the 32), made once
/// per matmul call (<see cref="Prepare"/>).
/// </summary>
/// <remarks>
/// Why: the placed-byte float kernels (<see cref="Block32Decode"/>) convert and multiply-add every value — Q4_1 16, Q5_x
/// 21–22 vector operations per 32 values and row, 9–10 of them conversions and FMAs. Here a block's 32 unsigned quants
/// (q or q | h·16, value v in byte v, made as there) meet each plane in one <c>vpmaddubsw</c> (pairs ≤ 2·31·128 = 7,936:
/// no saturation), <c>vpmaddwd</c> adds the pairs into 32-bit lanes of 4 values (the top plane's ×2⁸ taken in that same
/// multiply), one shift and two adds make Σ q·v per lane (|Σ| ≤ 4·31·(127·2¹⁶ + 32,639) ≈ 1.04·10⁹ &lt; 2³¹), Q5_0's −16
/// is the integer 16·Σv per lane made with the split, and one conversion and one FMA by d·s (a power of two times d:
/// exact) add the block to the row's float total; Q4_1/Q5_1 add m·Σx from the float sums of each lane, as the float
/// kernel. Per block and row: Q4_1 15 vector operations (2 nibble, 3 + 3 multiplies, 3 adds and a shift, a conversion,
/// a multiply by s and 2 FMAs), Q5_x 5 more for the fifth bit; 6 of them integer multiplies.
/// Zen 5, AVX2 emulated, one thread, resident (64 rows × 2048, min of 2000), ns per 32 values and row, placed-byte float
/// kernel → this: the kernels alone (copies in alternation) Q4_1 1.54 → 1.28, Q5_0 2.05 → 1.84, Q5_1 2.18 → 1.85; with
/// each one's preparation per pass of the 64 rows (<c>bench -- --alternate-block32</c>) 1.55 → 1.51, 2.23 → 2.07, 2.25 →
/// 2.08; every matrix of the 1.1B files from the mapping 0.84, 0.83, 0.85× the time.
/// Q4_0 lost the same way (1.20 → 1.27: its float kernel needs no nibble shifts, 14 operations), and IQ4's grid
/// (−127 … 113) with 8-bit planes would saturate <c>vpmaddubsw</c>'s 16-bit pairs, so those keep their float kernels.
/// Per-256 scales (K-quant's split; the per-block multiply by s moved out of the loop) were 2% faster and 2.5 times less
/// exact on inputs with outliers (1.9·10⁻⁷ of Σ|w·x| against 7.7·10⁻⁸): not taken.
/// An input holding an infinity or NaN is refused (<see cref="Prepare"/> returns false) and the caller keeps the float
/// kernel, whose non-finite results it gives; every finite input is taken (subnormals exactly: s is at least 2⁻¹⁴⁹).
/// </remarks>
internal static unsafe class Block32Planes
{
    /// <summary>
    /// Bytes of <see cref="Prepare"/>'s output per 32 values: the planes p0, p1, p2 (32 signed bytes each, value i at byte
    /// i), 16·Σv over each lane's 4 values (8 int32, Q5_0's offset), Σx over each lane's 4 values (8 floats, the minimum's
    /// term), s (8 copies, a memory operand of one multiply).
    /// </summary>
    public const int PreparedBytes = 192;

    private const int OffsetsAt = 96, SumsAt = 128, ScaleAt = 160;

    public static bool Decodes(GgmlType type) => type is GgmlType.Q4_1 or GgmlType.Q5_0 or GgmlType.Q5_1;

    public static bool IsSupported => Avx2.IsSupported && Fma.IsSupported;

    /// <summary>
    /// x (n values, a multiple of 32) split for <see cref="Dot4"/> into <paramref name="prepared"/> (n / 32 ·
    /// <see cref="PreparedBytes"/> bytes). False, leaving prepared unusable, if some x is infinite or NaN. The same bytes as
    /// <see cref="PrepareReference"/> (tested).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static bool Prepare(float* x, int n, byte* prepared)
    {
        if (!IsSupported) throw new PlatformNotSupportedException("the block-32 plane kernels need AVX2 and FMA");
        if (n % 32 != 0) throw new ArgumentException($"splitting x into blocks of 32 needs a multiple of 32 values, not {n}");
        Vector256<int> magnitude = Vector256.Create(int.MaxValue);
        for (int b = 0; b < n / 32; b++)
        {
            float* xb = x + 32 * b;
            byte* p = prepared + PreparedBytes * b;
            Vector256<float> v0 = Vector256.Load(xb), v1 = Vector256.Load(xb + 8), v2 = Vector256.Load(xb + 16), v3 = Vector256.Load(xb + 24);
            // max|x| from the magnitudes' bits (ordered as the floats; infinity and NaN above every finite value).
            Vector256<int> m = Avx2.Max(Avx2.Max(v0.AsInt32() & magnitude, v1.AsInt32() & magnitude), Avx2.Max(v2.AsInt32() & magnitude, v3.AsInt32() & magnitude));
            Vector128<int> h = Sse41.Max(m.GetLower(), m.GetUpper());
            h = Sse41.Max(h, Sse2.Shuffle(h, 0b_01_00_11_10));
            float amax = BitConverter.Int32BitsToSingle(Sse41.Max(h, Sse2.Shuffle(h, 0b_10_11_00_01)).ToScalar());
            if (!float.IsFinite(amax)) return false;
            KQuantPlanes.BlockScale(amax, out float scale, out float inv1, out float inv2);
            Vector256<float> inv = Vector256.Create(inv1), more = Vector256.Create(inv2);
            // Everything in lane order (lane k: values 4k … 4k + 3): the sums come out per lane, and the packing puts the digits
            // back in value order.
            (Vector256<float> j0, Vector256<float> j1, Vector256<float> j2, Vector256<float> j3) = Block32Decode.Lanes(v0, v1, v2, v3);
            ((j0 + j1) + (j2 + j3)).Store((float*)(p + SumsAt));
            // vcvtps2dq rounds half to even, as MathF.Round in the reference; x·inv1·inv2 is exact (powers of two).
            Vector256<int> i0 = Avx.ConvertToVector256Int32(j0 * inv * more), i1 = Avx.ConvertToVector256Int32(j1 * inv * more);
            Vector256<int> i2 = Avx.ConvertToVector256Int32(j2 * inv * more), i3 = Avx.ConvertToVector256Int32(j3 * inv * more);
            Vector256.ShiftLeft((i0 + i1) + (i2 + i3), 4).Store((int*)(p + OffsetsAt));
            (Vector256<int> a0, Vector256<int> a1, Vector256<int> a2) = KQuantPlanes.Digits(i0);
            (Vector256<int> b0, Vector256<int> b1, Vector256<int> b2) = KQuantPlanes.Digits(i1);
            (Vector256<int> c0, Vector256<int> c1, Vector256<int> c2) = KQuantPlanes.Digits(i2);
            (Vector256<int> d0, Vector256<int> d1, Vector256<int> d2) = KQuantPlanes.Digits(i3);
            PackLanes(a0, b0, c0, d0).Store((sbyte*)p);
            PackLanes(a1, b1, c1, d1).Store((sbyte*)p + 32);
            PackLanes(a2, b2, c2, d2).Store((sbyte*)p + 64);
            Vector256.Create(scale).Store((float*)(p + ScaleAt));
        }
        return true;
    }

    /// <summary>
    /// Digits in lane order (vector j lane k: value 4k + j; each in −128 … 127) as 32 bytes in value order. The saturating packs
    /// (exact on them) leave each 128-bit half holding its four lanes of all four vectors, byte 4j + k value 4k + j: one
    /// <c>vpshufb</c> transposes that 4 × 4 in each half.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<sbyte> PackLanes(Vector256<int> a, Vector256<int> b, Vector256<int> c, Vector256<int> d) =>
        Avx2.Shuffle(Avx2.PackSignedSaturate(Avx2.PackSignedSaturate(a, b), Avx2.PackSignedSaturate(c, d)).AsByte(),
                     Vector256.Create((byte)0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15, 0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15)).AsSByte();

    /// <summary>The portable scalar form of <see cref="Prepare"/>, for the tests.</summary>
    public static bool PrepareReference(ReadOnlySpan<float> x, Span<byte> prepared)
    {
        if (x.Length % 32 != 0 || prepared.Length < x.Length / 32 * PreparedBytes)
            throw new ArgumentException($"{x.Length} values need a multiple of 32 and {x.Length / 32 * PreparedBytes} prepared bytes, not {prepared.Length}");
        Span<int> offsets = stackalloc int[8];
        for (int b = 0; b < x.Length / 32; b++)
        {
            ReadOnlySpan<float> block = x.Slice(32 * b, 32);
            Span<byte> p = prepared.Slice(PreparedBytes * b, PreparedBytes);
            float amax = 0;
            foreach (float v in block)
            {
                if (!float.IsFinite(v)) return false;
                amax = Math.Max(amax, Math.Abs(v));
            }
            KQuantPlanes.BlockScale(amax, out float scale, out float inv1, out float inv2);
            offsets.Clear();
            for (int i = 0; i < 32; i++)
            {
                int v = (int)MathF.Round(block[i] * inv1 * inv2);
                int p0 = (v + 32_896) >> 16, r = v - (p0 << 16), p1 = (r + 128) >> 8;
                p[i] = (byte)(sbyte)p0;
                p[32 + i] = (byte)(sbyte)p1;
                p[64 + i] = (byte)(sbyte)(r - (p1 << 8));
                offsets[i / 4] += 16 * v;
            }
            for (int k = 0; k < 8; k++)
            {
                BitConverter.TryWriteBytes(p.Slice(OffsetsAt + 4 * k), offsets[k]);
                BitConverter.TryWriteBytes(p.Slice(SumsAt + 4 * k), (block[4 * k] + block[4 * k + 1]) + (block[4 * k + 2] + block[4 * k + 3]));
                BitConverter.TryWriteBytes(p.Slice(ScaleAt + 4 * k), scale);
            }
        }
        return true;
    }

    /// <summary>
    /// y[0..3] = rows w, w + rowBytes, w + 2·rowBytes, w + 3·rowBytes (n values each) times x as <see cref="Prepare"/> split it.
    /// </summary>
    public static void Dot4(GgmlType type, byte* w, long rowBytes, byte* prepared, int n, float* y)
    {
        if (!IsSupported) throw new PlatformNotSupportedException("the block-32 plane kernels need AVX2 and FMA");
        if (n <= 0 || n % 32 != 0) throw new ArgumentException($"a {type} row holds whole blocks of 32 values, not {n}", nameof(n));
        switch (type)
        {
            case GgmlType.Q4_1: Dot4<Q4_1>(w, rowBytes, prepared, n / 32, y); break;
            case GgmlType.Q5_0: Dot4<Q5_0>(w, rowBytes, prepared, n / 32, y); break;
            case GgmlType.Q5_1: Dot4<Q5_1>(w, rowBytes, prepared, n / 32, y); break;
            default: throw new NotSupportedException($"no block-32 plane kernel for {type}");
        }
    }

    /// <summary>
    /// Four rows: pointers step once per block, and each step prefetches the same share of the next four rows (the hardware
    /// prefetcher stops at the mapping's 4 KB pages).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Dot4<T>(byte* w, long rowBytes, byte* prepared, int blocks, float* y) where T : struct, IFormat
    {
        float* halves = HalfTable.Pointer;
        int prefetchStride = 4 * T.Bytes;
        byte* w1 = w + rowBytes, w2 = w + 2 * rowBytes, w3 = w + 3 * rowBytes, next = w + 4 * rowBytes;
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        for (byte* p = prepared, end = prepared + PreparedBytes * blocks; p < end; p += PreparedBytes, w += T.Bytes, w1 += T.Bytes, w2 += T.Bytes, w3 += T.Bytes, next += prefetchStride)
        {
            Sse.Prefetch0(next);
            Sse.Prefetch0(next + 64);
            Vector256<float> s = Vector256.Load((float*)(p + ScaleAt));
            a0 = Row<T>(w, p, s, halves, a0);
            a1 = Row<T>(w1, p, s, halves, a1);
            a2 = Row<T>(w2, p, s, halves, a2);
            a3 = Row<T>(w3, p, s, halves, a3);
        }
        y[0] = Vector256.Sum(a0); y[1] = Vector256.Sum(a1); y[2] = Vector256.Sum(a2); y[3] = Vector256.Sum(a3);
    }

    /// <summary>total + d·s·Σ(q (− 16))·v per lane (+ m·Σx): one block of one row.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Row<T>(byte* block, byte* p, Vector256<float> s, float* halves, Vector256<float> total) where T : struct, IFormat
    {
        Vector256<byte> q = T.Values(block);
        Vector256<short> m0 = Avx2.MultiplyAddAdjacent(q, Vector256.Load((sbyte*)p));
        Vector256<short> m1 = Avx2.MultiplyAddAdjacent(q, Vector256.Load((sbyte*)p + 32));
        Vector256<short> m2 = Avx2.MultiplyAddAdjacent(q, Vector256.Load((sbyte*)p + 64));
        Vector256<int> high = Avx2.MultiplyAddAdjacent(m0, Vector256.Create((short)256)) + Avx2.MultiplyAddAdjacent(m1, Vector256.Create((short)1));
        Vector256<int> sum = Avx2.ShiftLeftLogical(high, 8) + Avx2.MultiplyAddAdjacent(m2, Vector256.Create((short)1));
        if (T.HasOffset) sum -= Vector256.Load((int*)(p + OffsetsAt));
        total = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(sum), Vector256.Create(HalfTable.ToSingle(halves, ref *block)) * s, total);
        return T.HasMin ? Vector256.FusedMultiplyAdd(Vector256.Load((float*)(p + SumsAt)), Vector256.Create(HalfTable.ToSingle(halves, ref block[2])), total) : total;
    }

    // ---- the formats: a struct each, so each kernel is compiled for its own ----

    private interface IFormat
    {
        static abstract int Bytes { get; }
        /// <summary>Value = d·q + m (the minimum at byte 2), added as m·Σx.</summary>
        static abstract bool HasMin { get; }
        /// <summary>Value = d·(q − 16): the integer 16·Σv subtracted per lane.</summary>
        static abstract bool HasOffset { get; }
        /// <summary>The block's 32 unsigned quants, value v in byte v.</summary>
        static abstract Vector256<byte> Values(byte* block);
    }

    private struct Q4_1 : IFormat
    {
        public static int Bytes => 20;
        public static bool HasMin => true;
        public static bool HasOffset => false;
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<byte> Values(byte* block) => Block32Decode.Nibbles(block + 4);
    }

    private struct Q5_0 : IFormat
    {
        public static int Bytes => 22;
        public static bool HasMin => false;
        public static bool HasOffset => true;
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<byte> Values(byte* block) => Block32Decode.Nibbles(block + 6) | Block32Decode.FifthBits(block + 2);
    }

    private struct Q5_1 : IFormat
    {
        public static int Bytes => 24;
        public static bool HasMin => true;
        public static bool HasOffset => false;
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<byte> Values(byte* block) => Block32Decode.Nibbles(block + 8) | Block32Decode.FifthBits(block + 4);
    }
}
