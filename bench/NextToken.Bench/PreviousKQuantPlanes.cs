using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using NextToken.Tensors;

using NextToken.Kernels;

namespace NextToken.Bench;

// The plane kernels as they were before issue #13's ninth session (planes in the values' order, a vpmaddwd per register of
// quants, scales through a stack copy), kept so --alternate-resident and --alternate-stream time the old and new kernels
// in one process. Not used by the engine.

/// <summary>
/// Exact-by-default AVX2 decode for Q4_K, Q5_K and Q6_K through 24-bit fixed-point activations. Per
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
/// the row's integer sub-block scale and adds pairs into 32-bit lanes: per 32 values and row three of
/// each plus three adds, 6 operations on ports 0/1 and the unpacking. Each lane of a plane's int32 sum
/// covers 32 values of a super-block: |sum| ≤ 32·q·128·|sc| — Q4_K 32·15·128·63 ≈ 3.9·10⁶, Q5_K
/// 32·31·128·63 ≈ 8.0·10⁶ (both below 2²⁴: converted to float exactly), Q6_K 32·63·128·128 ≈ 3.3·10⁷
/// (below 2³¹). Per super-block and row the planes' sums are converted and combined in float
/// (×2¹⁶, ×2⁸, ×1, ×s, ×d); the offsets (Q4_K/Q5_K −dmin·m, Q6_K's −32) are o·Σx with the float Σx of
/// each sub-block (<see cref="KQuantRows.SubBlockSums"/>), as in the float kernels.
/// </remarks>
internal static unsafe class PreviousKQuantPlanes
{
    public const int BlockSize = 256;

    /// <summary>Bytes of planes per block of 256 values: three planes of 256 signed bytes.</summary>
    public const int BlockBytes = 3 * BlockSize;

    // The largest |v| = |x|/s allowed: p0 stays within ±127 with p1·2⁸ + p2 in [−32,896, 32,639].
    private const int Range = 127 << 16;

    public static bool Handles(GgmlType type) => type is GgmlType.Q4_K or GgmlType.Q5_K or GgmlType.Q6_K;

    /// <summary>
    /// The types whose decode takes this kernel (MatMul, AVX2 without AVX-512). Q5_K and Q6_K gain most (their float kernels
    /// pay 2–4 more operations per 8 values for their extra bits); for Q4_K, where the 256-bit integer multiplies issue
    /// once per cycle (this Xeon: 1.2 cycles per vpmaddwd against 0.5 per FMA), its six multiplies per 32 values tie the
    /// float kernel's 8.3 cycles with the rows resident in L2, yet 1.1B Q4_K decode from memory ran 18.8/21.3 tok/s against
    /// 15.3/17.3 (two alternating rounds, load ~2; Q4_K_M 20.5/18.1 against 15.2/16.2): the integer kernel leaves the
    /// ports free for the loads sooner. Under heavy load (9–12) it measured 17–19% slower once.
    /// </summary>
    public static bool Decodes(GgmlType type) => type is GgmlType.Q4_K or GgmlType.Q5_K or GgmlType.Q6_K;

    public static bool IsSupported => Avx2.IsSupported && Fma.IsSupported;

    /// <summary>The stored block size of a handled type.</summary>
    public static int WeightBlockBytes(GgmlType type) => type switch
    {
        GgmlType.Q4_K => 144,
        GgmlType.Q5_K => 176,
        GgmlType.Q6_K => 210,
        _ => throw new NotSupportedException($"no 24-bit activation kernel for {type}"),
    };

    /// <summary>
    /// The block's power-of-two scale: s = 2^e, the smallest with max|x|/s ≤ <see cref="Range"/> (so s ≤ 2·max|x|/Range,
    /// and s/2 ≤ max|x|/(127·2¹⁶) ≈ 1.2·10⁻⁷·max|x|), but at least 2⁻¹⁴⁹, float's smallest subnormal (of which every
    /// float is a whole multiple: such blocks are held exactly). x·(1/s) is taken as x·inv1·inv2, both powers of two
    /// (1/s alone can pass float's range), so it is exact. A block holding an infinity or NaN gets s = NaN and zero
    /// planes, so its dot is NaN as the float kernel's.
    /// </summary>
    private static void BlockScale(float amax, out float scale, out float inv1, out float inv2)
    {
        inv2 = 1;
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
            BlockScale(Math.Abs(TensorPrimitives.MaxMagnitude(new ReadOnlySpan<float>(xb, BlockSize))), out scales[b], out float inv1, out float inv2);
            Vector256<float> inv = Vector256.Create(inv1), more = Vector256.Create(inv2);
            if (float.IsNaN(scales[b]))
            {
                new Span<sbyte>(pb, BlockBytes).Clear();
                continue;
            }
            for (int k = 0; k < BlockSize; k += 32)
            {
                // vcvtps2dq rounds half to even, as MathF.Round in the reference; x·(1/s) is exact (powers of two).
                (Vector256<int> a0, Vector256<int> a1, Vector256<int> a2) = Digits(Avx.ConvertToVector256Int32(Vector256.Load(xb + k) * inv * more));
                (Vector256<int> b0, Vector256<int> b1, Vector256<int> b2) = Digits(Avx.ConvertToVector256Int32(Vector256.Load(xb + k + 8) * inv * more));
                (Vector256<int> c0, Vector256<int> c1, Vector256<int> c2) = Digits(Avx.ConvertToVector256Int32(Vector256.Load(xb + k + 16) * inv * more));
                (Vector256<int> d0, Vector256<int> d1, Vector256<int> d2) = Digits(Avx.ConvertToVector256Int32(Vector256.Load(xb + k + 24) * inv * more));
                Vector256.Narrow(Vector256.Narrow(a0, b0), Vector256.Narrow(c0, d0)).Store(pb + k);
                Vector256.Narrow(Vector256.Narrow(a1, b1), Vector256.Narrow(c1, d1)).Store(pb + BlockSize + k);
                Vector256.Narrow(Vector256.Narrow(a2, b2), Vector256.Narrow(c2, d2)).Store(pb + 2 * BlockSize + k);
            }
        }
    }

    /// <summary>v = p0·2¹⁶ + p1·2⁸ + p2, balanced digits (the ranges of <see cref="Range"/>), eight lanes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static (Vector256<int>, Vector256<int>, Vector256<int>) Digits(Vector256<int> v)
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
                int p0 = (v + 32_896) >> 16, r = v - (p0 << 16), p1 = (r + 128) >> 8;
                pb[i] = (sbyte)p0;
                pb[BlockSize + i] = (sbyte)p1;
                pb[2 * BlockSize + i] = (sbyte)(r - (p1 << 8));
            }
        }
    }

    private static void CheckSplit(int n, int planes, int scales)
    {
        if (n % BlockSize != 0 || planes < 3 * n || scales < n / BlockSize)
            throw new ArgumentException($"splitting {n} values into 24-bit planes needs a multiple of {BlockSize} values, {3L * n} plane bytes (got {planes}) and {n / BlockSize} scales (got {scales})");
    }

    /// <summary>One stored row against one split input (sums: <see cref="KQuantRows.SubBlockSums"/> at <see cref="KQuantRows.SumWidth"/>): the AVX2 kernel, or <see cref="Reference"/> without it.</summary>
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
        if (!Handles(type)) throw new NotSupportedException($"24-bit activation planes meet Q4_K, Q5_K or Q6_K rows, not {type}");
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
                for (int i = 0; i < BlockSize; i++) sum += (long)sc[i / width] * q[i] * x[i];
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
            case GgmlType.Q4_K: { int* s = stackalloc int[8]; (i0, i1, i2, _) = Q45KSums<NoFifthBit>(block, xb, s); break; }
            case GgmlType.Q5_K: { int* s = stackalloc int[8]; (i0, i1, i2, _) = Q45KSums<FifthBit>(block, xb, s); break; }
            case GgmlType.Q6_K: { short* s = stackalloc short[16]; (i0, i1, i2) = Q6KSums(block, xb, s); break; }
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
    /// <see cref="KQuantRows.SubBlockSums"/> at <see cref="KQuantRows.SumWidth"/>); rows is 1 to 4. AVX2 and FMA.
    /// </summary>
    public static void Dot4(GgmlType type, byte* w, long rowBytes, int rows, sbyte* planes, float* scales, float* sums, int n, float* y)
    {
        if (rows is < 1 or > 4) throw new ArgumentOutOfRangeException(nameof(rows), rows, "1 to 4 rows");
        if (!IsSupported) throw new PlatformNotSupportedException("the 24-bit activation kernels need AVX2 and FMA");
        int blocks = n / BlockSize;
        // Row by row: the planes (768 bytes a block) stay in L1 and are read as memory operands, so nothing is gained
        // by holding them in registers for four rows, and one row's loop keeps its accumulators and constants in the
        // 16 registers (four rows inlined together spilled). Each row prefetches the row `rows` after it.
        long ahead = rows * rowBytes;
        for (int r = 0; r < rows; r++)
        {
            byte* row = w + r * rowBytes;
            y[r] = type switch
            {
                GgmlType.Q4_K => Q45K<NoFifthBit>(row, ahead, planes, scales, sums, blocks),
                GgmlType.Q5_K => Q45K<FifthBit>(row, ahead, planes, scales, sums, blocks),
                GgmlType.Q6_K => Q6K(row, ahead, planes, scales, sums, blocks),
                _ => throw new NotSupportedException($"no 24-bit activation kernel for {type}"),
            };
        }
    }

    /// <summary>Prefetches a block of a later row (the hardware prefetcher stops at the 4 KB pages of the mapped file).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Prefetch(byte* at, int bytes)
    {
        // Written out: bytes is a constant after inlining (144, 176, 210), so no loop and no branch remain.
        Sse.Prefetch0(at);
        Sse.Prefetch0(at + 64);
        Sse.Prefetch0(at + 128);
        if (bytes > 192) Sse.Prefetch0(at + 192);
    }

    /// <summary>total + d·s·(P0·2¹⁶ + P1·2⁸ + P2), lane by lane (s before d: d·s alone could fall below float's normal range).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Combine(Vector256<int> i0, Vector256<int> i1, Vector256<int> i2, Vector256<float> s, float d, Vector256<float> total)
    {
        Vector256<float> t = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(i1), Vector256.Create(256f), Vector256.ConvertToSingle(i2));
        t = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(i0), Vector256.Create(65536f), t);
        return Vector256.FusedMultiplyAdd(t * s, Vector256.Create(d), total);
    }

    // ---- Q4_K (144 B) and Q5_K (176 B): f16 d, dmin, 12 bytes of 6-bit scales and minimums; group g (0–3) of
    // 32 nibble bytes holds values 64g + l (low nibbles, sub-block 2g) and 64g + 32 + l (high, sub-block 2g + 1).

    /// <summary>One row (blocks super-blocks at w) against the split input; prefetches the same block `ahead` bytes on.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float Q45K<TFifth>(byte* w, long ahead, sbyte* planes, float* scales, float* sums, int blocks)
        where TFifth : struct, IFifthBit
    {
        int blockBytes = TFifth.Nibbles + 128; // 144 or 176, a constant
        float* halves = HalfTable.Pointer;
        int* s = stackalloc int[8]; // the 8 scales, each as a pair of equal 16-bit halves
        Vector256<float> total = default;
        for (int b = 0; b < blocks; b++)
        {
            byte* block = w + b * blockBytes;
            Prefetch(block + ahead, blockBytes);
            total = Q45KRow<TFifth>(block, halves, planes + BlockBytes * b, s, Vector256.Load(sums + 8 * b), Vector256.Create(scales[b]), total);
        }
        return Vector256.Sum(total);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Q45KRow<TFifth>(byte* block, float* halves, sbyte* xb, int* s, Vector256<float> xs, Vector256<float> scale, Vector256<float> total)
        where TFifth : struct, IFifthBit
    {
        (Vector256<int> i0, Vector256<int> i1, Vector256<int> i2, Vector256<int> mins) = Q45KSums<TFifth>(block, xb, s);
        float d = HalfTable.ToSingle(halves, ref *block), dmin = HalfTable.ToSingle(halves, ref block[2]);
        total = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(mins) * Vector256.Create(-dmin), xs, total);
        return Combine(i0, i1, i2, scale, d, total);
    }

    /// <summary>The three planes' integer sums of one super-block (8 lanes each) and its 8 minimums.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static (Vector256<int>, Vector256<int>, Vector256<int>, Vector256<int>) Q45KSums<TFifth>(byte* block, sbyte* xb, int* s)
        where TFifth : struct, IFifthBit
    {
        (Vector256<int> scales, Vector256<int> mins) = ChunkedQuant.ScalesK4Integers(block);
        (scales | Vector256.ShiftLeft(scales, 16)).Store(s);
        Vector256<int> i0 = default, i1 = default, i2 = default;
        // The groups written out, so Q5_K's bit shifts are constants.
        Q45KGroup<TFifth>(block, xb, s, 0, ref i0, ref i1, ref i2);
        Q45KGroup<TFifth>(block, xb, s, 1, ref i0, ref i1, ref i2);
        Q45KGroup<TFifth>(block, xb, s, 2, ref i0, ref i1, ref i2);
        Q45KGroup<TFifth>(block, xb, s, 3, ref i0, ref i1, ref i2);
        return (i0, i1, i2, mins);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Q45KGroup<TFifth>(byte* block, sbyte* xb, int* s, int g, ref Vector256<int> i0, ref Vector256<int> i1, ref Vector256<int> i2)
        where TFifth : struct, IFifthBit
    {
        Vector256<byte> packed = Vector256.Load(block + TFifth.Nibbles + 32 * g), mask = Vector256.Create((byte)0x0F);
        Vector256<byte> low = TFifth.Low(block, g, packed & mask);
        Vector256<byte> high = TFifth.High(block, g, Vector256.ShiftRightLogical(packed.AsUInt16(), 4).AsByte() & mask);
        Vector256<short> sl = Avx2.BroadcastScalarToVector256(s + 2 * g).AsInt16(), sh = Avx2.BroadcastScalarToVector256(s + 2 * g + 1).AsInt16();
        sbyte* x = xb + 64 * g;
        i0 += Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(low, Vector256.Load(x)), sl) + Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(high, Vector256.Load(x + 32)), sh);
        i1 += Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(low, Vector256.Load(x + BlockSize)), sl) + Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(high, Vector256.Load(x + BlockSize + 32)), sh);
        i2 += Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(low, Vector256.Load(x + 2 * BlockSize)), sl) + Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(high, Vector256.Load(x + 2 * BlockSize + 32)), sh);
    }

    // ---- Q6_K (210 B): 128 bytes of low nibbles, 64 of high bit pairs, 16 signed scales, f16 d. Half h (0, 1):
    // bytes A = ql[64h …], C = ql[64h + 32 …], H = qh[32h …] give values 128h + (0, 32, 64, 96) + l from
    // A's low nibbles, C's low, A's high, C's high with H's bit pairs 0–3: each 32 values are two sub-blocks.

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float Q6K(byte* w, long ahead, sbyte* planes, float* scales, float* sums, int blocks)
    {
        float* halves = HalfTable.Pointer;
        short* s = stackalloc short[16]; // the 16 scales, even sub-blocks in the low 128 bits, odd ones in the high
        Vector256<float> total = default;
        for (int b = 0; b < blocks; b++)
        {
            byte* block = w + b * 210;
            Prefetch(block + ahead, 210);
            Vector256<float> xsLow = Vector256.Load(sums + 16 * b) * Vector256.Create(-32f), xsHigh = Vector256.Load(sums + 16 * b + 8) * Vector256.Create(-32f);
            total = Q6KRow(block, halves, planes + BlockBytes * b, s, xsLow, xsHigh, Vector256.Create(scales[b]), total);
        }
        return Vector256.Sum(total);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Q6KRow(byte* block, float* halves, sbyte* xb, short* s, Vector256<float> xsLow, Vector256<float> xsHigh, Vector256<float> scale, Vector256<float> total)
    {
        (Vector256<int> i0, Vector256<int> i1, Vector256<int> i2) = Q6KSums(block, xb, s);
        float d = HalfTable.ToSingle(halves, ref block[208]);
        var vd = Vector256.Create(d);
        // The −32 offsets: d·sc per sub-block against −32·Σx.
        Vector256<float> low = Vector256.ConvertToSingle(Avx2.ConvertToVector256Int32((sbyte*)block + 192)) * vd;
        Vector256<float> high = Vector256.ConvertToSingle(Avx2.ConvertToVector256Int32((sbyte*)block + 200)) * vd;
        total = Vector256.FusedMultiplyAdd(high, xsHigh, Vector256.FusedMultiplyAdd(low, xsLow, total));
        return Combine(i0, i1, i2, scale, d, total);
    }

    /// <summary>The three planes' integer sums of one super-block (8 lanes each); stores the scales at s.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static (Vector256<int>, Vector256<int>, Vector256<int>) Q6KSums(byte* block, sbyte* xb, short* s)
    {
        Vector128<sbyte> sc = Vector128.Load((sbyte*)block + 192);
        Avx2.ConvertToVector256Int16(Ssse3.Shuffle(sc, Vector128.Create((sbyte)0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15))).Store(s);
        Vector256<int> i0 = default, i1 = default, i2 = default;
        Q6KHalf(block, xb, s, 0, ref i0, ref i1, ref i2);
        Q6KHalf(block, xb, s, 1, ref i0, ref i1, ref i2);
        return (i0, i1, i2);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Q6KHalf(byte* block, sbyte* xb, short* s, int h, ref Vector256<int> i0, ref Vector256<int> i1, ref Vector256<int> i2)
    {
        Vector256<byte> a = Vector256.Load(block + 64 * h), c = Vector256.Load(block + 64 * h + 32);
        Vector256<ushort> bits = Vector256.Load((ushort*)(block + 128 + 32 * h));
        Vector256<byte> low = Vector256.Create((byte)0x0F), top = Vector256.Create((byte)0x30);
        Vector256<byte> all = Vector256.Load((byte*)s);
        sbyte* x = xb + 128 * h;
        // 16-bit shifts: bits crossing from the neighbouring byte fall outside the masks.
        Q6KPlanes((a & low) | (Vector256.ShiftLeft(bits, 4).AsByte() & top), x, Avx2.Shuffle(all, PairShuffle(4 * h)).AsInt16(), ref i0, ref i1, ref i2);
        Q6KPlanes((c & low) | (Vector256.ShiftLeft(bits, 2).AsByte() & top), x + 32, Avx2.Shuffle(all, PairShuffle(4 * h + 1)).AsInt16(), ref i0, ref i1, ref i2);
        Q6KPlanes((Vector256.ShiftRightLogical(a.AsUInt16(), 4).AsByte() & low) | (bits.AsByte() & top), x + 64, Avx2.Shuffle(all, PairShuffle(4 * h + 2)).AsInt16(), ref i0, ref i1, ref i2);
        Q6KPlanes((Vector256.ShiftRightLogical(c.AsUInt16(), 4).AsByte() & low) | (Vector256.ShiftRightLogical(bits, 2).AsByte() & top), x + 96, Avx2.Shuffle(all, PairShuffle(4 * h + 3)).AsInt16(), ref i0, ref i1, ref i2);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Q6KPlanes(Vector256<byte> q, sbyte* x, Vector256<short> scale, ref Vector256<int> i0, ref Vector256<int> i1, ref Vector256<int> i2)
    {
        i0 += Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(q, Vector256.Load(x)), scale);
        i1 += Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(q, Vector256.Load(x + BlockSize)), scale);
        i2 += Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(q, Vector256.Load(x + 2 * BlockSize)), scale);
    }

    /// <summary>Bytes selecting 16-bit lane p in both 128-bit halves: sub-block 2p's scale in the low half, 2p + 1's in the high.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<byte> PairShuffle(int p) => Vector256.Create((ushort)(2 * p | (2 * p + 1) << 8)).AsByte();
}
