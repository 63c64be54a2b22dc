using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using NextToken.Tensors;

namespace NextToken.Kernels;

/// <summary>
/// Row kernels for the K-quants (Q2_K … Q6_K), IQ4_XS and the 32-value types Q4_1, Q5_0, Q5_1,
/// IQ4_NL, read 16 values at a time. Every one of these formats stores each run of 16 values as
/// low bits in 16 consecutive bytes (at one shift), optionally high bits in 16 other bytes (or one
/// bit each of a 32-bit word), and one scale and offset per 16 or 32 values: value = q·scale + offset.
/// A format is therefore described by where chunk c's bytes lie (<see cref="IChunkFormat.Plan"/>)
/// and how its scales unpack, and one kernel per vector width serves all of them. The decode
/// kernels take four rows at a time: each 16 values of x are loaded once for the four rows, and
/// each row's scales are unpacked once per block into a small table.
/// </summary>
internal static unsafe class ChunkedQuant
{
    public static bool Handles(GgmlType type) => type is GgmlType.Q4_1 or GgmlType.Q5_0 or GgmlType.Q5_1 or GgmlType.IQ4_NL
        or GgmlType.Q2_K or GgmlType.Q3_K or GgmlType.Q4_K or GgmlType.Q5_K or GgmlType.Q6_K or GgmlType.IQ4_XS;

    /// <summary>16 values per vector (AVX-512).</summary>
    public static bool Wide => Vector512.IsHardwareAccelerated && Avx512F.IsSupported;

    /// <summary>8 values per vector (AVX2 and FMA; CPUs without AVX-512, or where .NET prefers 256-bit vectors).</summary>
    public static bool Narrow => !Wide && Vector256.IsHardwareAccelerated && Avx2.IsSupported && Fma.IsSupported;

    /// <summary>Most scale/offset slots of one block (16 sub-blocks of 16).</summary>
    private const int MaxSlots = 16;

    // ---- dispatch: one generic instantiation per format ----

    /// <summary>y[0..3] = rows w, w + rowBytes, … (n values each) times x; <paramref name="wide"/> picks the vector width.</summary>
    public static void Dot4(GgmlType type, bool wide, byte* w, long rowBytes, float* x, int n, float* y)
    {
        switch (type)
        {
            case GgmlType.Q4_1: Dot4<Q4_1>(wide, w, rowBytes, x, n, y); break;
            case GgmlType.Q5_0: Dot4<Q5_0>(wide, w, rowBytes, x, n, y); break;
            case GgmlType.Q5_1: Dot4<Q5_1>(wide, w, rowBytes, x, n, y); break;
            case GgmlType.IQ4_NL: Dot4<IQ4_NL>(wide, w, rowBytes, x, n, y); break;
            case GgmlType.Q2_K: Dot4<Q2_K>(wide, w, rowBytes, x, n, y); break;
            case GgmlType.Q3_K: Dot4<Q3_K>(wide, w, rowBytes, x, n, y); break;
            case GgmlType.Q4_K: Dot4<Q4_K>(wide, w, rowBytes, x, n, y); break;
            case GgmlType.Q5_K: Dot4<Q5_K>(wide, w, rowBytes, x, n, y); break;
            case GgmlType.Q6_K: Dot4<Q6_K>(wide, w, rowBytes, x, n, y); break;
            case GgmlType.IQ4_XS: Dot4<IQ4_XS>(wide, w, rowBytes, x, n, y); break;
            default: throw new NotSupportedException($"no chunked kernel for {type}");
        }
    }

    /// <summary>One row (n values) times x.</summary>
    public static float Dot(GgmlType type, bool wide, byte* w, float* x, int n) => type switch
    {
        GgmlType.Q4_1 => Dot<Q4_1>(wide, w, x, n),
        GgmlType.Q5_0 => Dot<Q5_0>(wide, w, x, n),
        GgmlType.Q5_1 => Dot<Q5_1>(wide, w, x, n),
        GgmlType.IQ4_NL => Dot<IQ4_NL>(wide, w, x, n),
        GgmlType.Q2_K => Dot<Q2_K>(wide, w, x, n),
        GgmlType.Q3_K => Dot<Q3_K>(wide, w, x, n),
        GgmlType.Q4_K => Dot<Q4_K>(wide, w, x, n),
        GgmlType.Q5_K => Dot<Q5_K>(wide, w, x, n),
        GgmlType.Q6_K => Dot<Q6_K>(wide, w, x, n),
        GgmlType.IQ4_XS => Dot<IQ4_XS>(wide, w, x, n),
        _ => throw new NotSupportedException($"no chunked kernel for {type}"),
    };

    /// <summary>A row of n values to float32, equal to <see cref="ScalarReference.DequantizeElement"/> value by value.</summary>
    public static void Dequantize(GgmlType type, bool wide, byte* w, float* y, int n)
    {
        switch (type)
        {
            case GgmlType.Q4_1: Dequantize<Q4_1>(wide, w, y, n); break;
            case GgmlType.Q5_0: Dequantize<Q5_0>(wide, w, y, n); break;
            case GgmlType.Q5_1: Dequantize<Q5_1>(wide, w, y, n); break;
            case GgmlType.IQ4_NL: Dequantize<IQ4_NL>(wide, w, y, n); break;
            case GgmlType.Q2_K: Dequantize<Q2_K>(wide, w, y, n); break;
            case GgmlType.Q3_K: Dequantize<Q3_K>(wide, w, y, n); break;
            case GgmlType.Q4_K: Dequantize<Q4_K>(wide, w, y, n); break;
            case GgmlType.Q5_K: Dequantize<Q5_K>(wide, w, y, n); break;
            case GgmlType.Q6_K: Dequantize<Q6_K>(wide, w, y, n); break;
            case GgmlType.IQ4_XS: Dequantize<IQ4_XS>(wide, w, y, n); break;
            default: throw new NotSupportedException($"no chunked kernel for {type}");
        }
    }

    private static void Dot4<T>(bool wide, byte* w, long rowBytes, float* x, int n, float* y) where T : struct, IChunkFormat
    {
        if (wide && T.BlockSize == 32) Dot4Wide32<T>(w, rowBytes, x, n / 32, y);
        else if (wide) Dot4Wide<T>(w, rowBytes, x, n / T.BlockSize, y);
        else if (T.BlockSize == 32) Dot4Narrow32<T>(w, rowBytes, x, n / 32, y);
        else Dot4Narrow<T>(w, rowBytes, x, n / T.BlockSize, y);
    }

    private static float Dot<T>(bool wide, byte* w, float* x, int n) where T : struct, IChunkFormat =>
        wide ? DotWide<T>(w, x, n / T.BlockSize) : DotNarrow<T>(w, x, n / T.BlockSize);

    private static void Dequantize<T>(bool wide, byte* w, float* y, int n) where T : struct, IChunkFormat
    {
        if (wide) DequantizeWide<T>(w, y, n / T.BlockSize);
        else DequantizeNarrow<T>(w, y, n / T.BlockSize);
    }

    // ---- AVX-512: 16 values per vector ----

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Dot4Wide<T>(byte* w, long rowBytes, float* x, int blocks, float* y) where T : struct, IChunkFormat
    {
        float* halves = HalfTable.Pointer;
        // Per row: MaxSlots scales, then MaxSlots offsets.
        float* s = stackalloc float[4 * 2 * MaxSlots];
        float* s0 = s, s1 = s + 2 * MaxSlots, s2 = s + 4 * MaxSlots, s3 = s + 6 * MaxSlots;
        Vector512<float> table = T.Table ? Table512() : default;
        int chunks = T.BlockSize / 16, prefetchStride = 4 * T.BlockBytes; // bytes of the next four rows per block step
        byte* w1 = w + rowBytes, w2 = w + 2 * rowBytes, w3 = w + 3 * rowBytes, next = w + 4 * rowBytes;
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
        for (int b = 0; b < blocks; b++)
        {
            // The hardware prefetcher stops at the 4 KB pages of the mapped file.
            for (int line = 0; line < prefetchStride; line += 64) Sse.Prefetch0(next + b * prefetchStride + line);
            int at = b * T.BlockBytes;
            T.Scales(w + at, halves, s0, s0 + MaxSlots);
            T.Scales(w1 + at, halves, s1, s1 + MaxSlots);
            T.Scales(w2 + at, halves, s2, s2 + MaxSlots);
            T.Scales(w3 + at, halves, s3, s3 + MaxSlots);
            float* xb = x + b * T.BlockSize;
            for (int c = 0; c < chunks; c++)
            {
                Vector512<float> xv = Vector512.Load(xb + 16 * c);
                int slot = c >> T.SlotShift;
                a0 = Vector512.FusedMultiplyAdd(Scaled(Values16<T>(w + at, c, table), s0, slot), xv, a0);
                a1 = Vector512.FusedMultiplyAdd(Scaled(Values16<T>(w1 + at, c, table), s1, slot), xv, a1);
                a2 = Vector512.FusedMultiplyAdd(Scaled(Values16<T>(w2 + at, c, table), s2, slot), xv, a2);
                a3 = Vector512.FusedMultiplyAdd(Scaled(Values16<T>(w3 + at, c, table), s3, slot), xv, a3);
            }
        }
        y[0] = Vector512.Sum(a0); y[1] = Vector512.Sum(a1); y[2] = Vector512.Sum(a2); y[3] = Vector512.Sum(a3);
    }

    /// <summary>
    /// The four-row kernel for blocks of 32 (one scale d and offset o each): Σ (q·d + o)·x is taken as
    /// d·Σ q·x + o·Σ x, with Σ x of each block's two vectors made once for the four rows, so a row's
    /// block costs two multiply-adds and no table of scales.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Dot4Wide32<T>(byte* w, long rowBytes, float* x, int blocks, float* y) where T : struct, IChunkFormat
    {
        float* halves = HalfTable.Pointer;
        Vector512<float> table = T.Table ? Table512() : default;
        int prefetchStride = 4 * T.BlockBytes;
        byte* w1 = w + rowBytes, w2 = w + 2 * rowBytes, w3 = w + 3 * rowBytes, next = w + 4 * rowBytes;
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
        for (int b = 0; b < blocks; b++)
        {
            for (int line = 0; line < prefetchStride; line += 64) Sse.Prefetch0(next + b * prefetchStride + line);
            int at = b * T.BlockBytes;
            Vector512<float> x0 = Vector512.Load(x + 32 * b), x1 = Vector512.Load(x + 32 * b + 16), xSum = x0 + x1;
            a0 = Block32<T>(w + at, x0, x1, xSum, halves, table, a0);
            a1 = Block32<T>(w1 + at, x0, x1, xSum, halves, table, a1);
            a2 = Block32<T>(w2 + at, x0, x1, xSum, halves, table, a2);
            a3 = Block32<T>(w3 + at, x0, x1, xSum, halves, table, a3);
        }
        y[0] = Vector512.Sum(a0); y[1] = Vector512.Sum(a1); y[2] = Vector512.Sum(a2); y[3] = Vector512.Sum(a3);
    }

    /// <summary>total + d·Σ q·x + o·Σ x for one block of 32.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Block32<T>(byte* block, Vector512<float> x0, Vector512<float> x1, Vector512<float> xSum, float* halves,
                                               Vector512<float> table, Vector512<float> total) where T : struct, IChunkFormat
    {
        (float d, float o) = T.ScaleOffset32(block, halves);
        Vector512<float> qx = Vector512.FusedMultiplyAdd(Values16<T>(block, 1, table), x1, Values16<T>(block, 0, table) * x0);
        total = Vector512.FusedMultiplyAdd(qx, Vector512.Create(d), total);
        return T.Table ? total : Vector512.FusedMultiplyAdd(xSum, Vector512.Create(o), total); // IQ4_NL has no offset
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float DotWide<T>(byte* w, float* x, int blocks) where T : struct, IChunkFormat
    {
        float* halves = HalfTable.Pointer;
        float* s = stackalloc float[2 * MaxSlots];
        Vector512<float> table = T.Table ? Table512() : default;
        int chunks = T.BlockSize / 16;
        Vector512<float> a0 = default, a1 = default; // two chains: FMA latency, not throughput, bounds one
        for (int b = 0; b < blocks; b++)
        {
            byte* block = w + b * T.BlockBytes;
            T.Scales(block, halves, s, s + MaxSlots);
            float* xb = x + b * T.BlockSize;
            for (int c = 0; c < chunks; c += 2)
            {
                a0 = Vector512.FusedMultiplyAdd(Scaled(Values16<T>(block, c, table), s, c >> T.SlotShift), Vector512.Load(xb + 16 * c), a0);
                a1 = Vector512.FusedMultiplyAdd(Scaled(Values16<T>(block, c + 1, table), s, (c + 1) >> T.SlotShift), Vector512.Load(xb + 16 * c + 16), a1);
            }
        }
        return Vector512.Sum(a0 + a1);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void DequantizeWide<T>(byte* w, float* y, int blocks) where T : struct, IChunkFormat
    {
        float* halves = HalfTable.Pointer;
        float* s = stackalloc float[2 * MaxSlots];
        Vector512<float> table = T.Table ? Table512() : default;
        int chunks = T.BlockSize / 16;
        for (int b = 0; b < blocks; b++)
        {
            byte* block = w + b * T.BlockBytes;
            T.Scales(block, halves, s, s + MaxSlots);
            for (int c = 0; c < chunks; c++)
                Exact<T>(Values16<T>(block, c, table), s, c >> T.SlotShift).Store(y + b * T.BlockSize + 16 * c);
        }
    }

    /// <summary>q·scale + offset in one rounding (for a dot product; <see cref="Exact"/> gives the values themselves).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Scaled(Vector512<float> q, float* s, int slot) =>
        Vector512.FusedMultiplyAdd(q, Vector512.Create(s[slot]), Vector512.Create(s[MaxSlots + slot]));

    /// <summary>
    /// The stored value as the reference computes it. Where the offset is a power-of-two multiple of
    /// the scale (−16·d, −32·s, −4·s, 0) one fused q·s + o is the reference's single rounding of
    /// s·(q − k); a minimum (Q4_1, Q5_1, Q2_K, Q4_K, Q5_K) is added after rounding q·s, as the reference does.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Exact<T>(Vector512<float> q, float* s, int slot) where T : struct, IChunkFormat =>
        T.HasMin ? q * Vector512.Create(s[slot]) + Vector512.Create(s[MaxSlots + slot])
                 : Vector512.FusedMultiplyAdd(q, Vector512.Create(s[slot]), Vector512.Create(s[MaxSlots + slot]));

    /// <summary>Chunk c's 16 integers (or IQ4 grid values) as floats.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Values16<T>(byte* block, int c, Vector512<float> table) where T : struct, IChunkFormat
    {
        (int low, int lowShift, int high, int highShift) = T.Plan(c);
        Vector512<int> q = Vector512.ShiftRightLogical(Avx512F.ConvertToVector512Int32(Vector128.Load(block + low)), lowShift) & Vector512.Create(T.LowMask);
        if (T.WordHigh)
        {
            // Bit j of a 32-bit word is value j's fifth bit: lane j rotates bit highShift + j to bit 4
            // (one rotate and one mask-and-or, where shifting down and back up took three operations).
            Vector512<uint> word = Vector512.Create(*(uint*)(block + high));
            Vector512<uint> counts = highShift == 0
                ? Vector512.Create(28u, 29, 30, 31, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)
                : Vector512.Create(12u, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27); // highShift is 0 or 16
            q = Avx512F.TernaryLogic(q, Avx512F.RotateRightVariable(word, counts).AsInt32(), Vector512.Create(16), 0xF8); // q | (rotated & 16)
        }
        else if (T.HighMask != 0)
            q |= (Vector512.ShiftRightLogical(Avx512F.ConvertToVector512Int32(Vector128.Load(block + high)), highShift) & Vector512.Create(T.HighMask)) << T.HighBit;
        return T.Table ? Avx512F.PermuteVar16x32(table, q) : Vector512.ConvertToSingle(q);
    }

    private static Vector512<float> Table512() => Vector512.Create(-127f, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113);

    // ---- AVX2: 8 values per vector; chunk c's halves are c8 = 2c and 2c + 1 ----

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Dot4Narrow<T>(byte* w, long rowBytes, float* x, int blocks, float* y) where T : struct, IChunkFormat
    {
        float* halves = HalfTable.Pointer;
        float* s = stackalloc float[4 * 2 * MaxSlots];
        float* s0 = s, s1 = s + 2 * MaxSlots, s2 = s + 4 * MaxSlots, s3 = s + 6 * MaxSlots;
        (Vector256<float> tableLow, Vector256<float> tableHigh) = T.Table ? Table256() : default;
        int halfChunks = T.BlockSize / 8, prefetchStride = 4 * T.BlockBytes;
        byte* w1 = w + rowBytes, w2 = w + 2 * rowBytes, w3 = w + 3 * rowBytes, next = w + 4 * rowBytes;
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        for (int b = 0; b < blocks; b++)
        {
            for (int line = 0; line < prefetchStride; line += 64) Sse.Prefetch0(next + b * prefetchStride + line);
            int at = b * T.BlockBytes;
            T.Scales(w + at, halves, s0, s0 + MaxSlots);
            T.Scales(w1 + at, halves, s1, s1 + MaxSlots);
            T.Scales(w2 + at, halves, s2, s2 + MaxSlots);
            T.Scales(w3 + at, halves, s3, s3 + MaxSlots);
            float* xb = x + b * T.BlockSize;
            for (int c8 = 0; c8 < halfChunks; c8++)
            {
                Vector256<float> xv = Vector256.Load(xb + 8 * c8);
                int slot = c8 >> (T.SlotShift + 1);
                a0 = Vector256.FusedMultiplyAdd(Scaled(Values8<T>(w + at, c8, tableLow, tableHigh), s0, slot), xv, a0);
                a1 = Vector256.FusedMultiplyAdd(Scaled(Values8<T>(w1 + at, c8, tableLow, tableHigh), s1, slot), xv, a1);
                a2 = Vector256.FusedMultiplyAdd(Scaled(Values8<T>(w2 + at, c8, tableLow, tableHigh), s2, slot), xv, a2);
                a3 = Vector256.FusedMultiplyAdd(Scaled(Values8<T>(w3 + at, c8, tableLow, tableHigh), s3, slot), xv, a3);
            }
        }
        y[0] = Vector256.Sum(a0); y[1] = Vector256.Sum(a1); y[2] = Vector256.Sum(a2); y[3] = Vector256.Sum(a3);
    }

    /// <summary>The AVX2 form of <see cref="Dot4Wide32{T}"/>: a block's 32 values as four 8-lane vectors.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Dot4Narrow32<T>(byte* w, long rowBytes, float* x, int blocks, float* y) where T : struct, IChunkFormat
    {
        float* halves = HalfTable.Pointer;
        (Vector256<float> tableLow, Vector256<float> tableHigh) = T.Table ? Table256() : default;
        int prefetchStride = 4 * T.BlockBytes;
        byte* w1 = w + rowBytes, w2 = w + 2 * rowBytes, w3 = w + 3 * rowBytes, next = w + 4 * rowBytes;
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        for (int b = 0; b < blocks; b++)
        {
            for (int line = 0; line < prefetchStride; line += 64) Sse.Prefetch0(next + b * prefetchStride + line);
            int at = b * T.BlockBytes;
            float* xb = x + 32 * b;
            Vector256<float> x0 = Vector256.Load(xb), x1 = Vector256.Load(xb + 8), x2 = Vector256.Load(xb + 16), x3 = Vector256.Load(xb + 24);
            Vector256<float> xSum = (x0 + x1) + (x2 + x3);
            a0 = Block32<T>(w + at, x0, x1, x2, x3, xSum, halves, tableLow, tableHigh, a0);
            a1 = Block32<T>(w1 + at, x0, x1, x2, x3, xSum, halves, tableLow, tableHigh, a1);
            a2 = Block32<T>(w2 + at, x0, x1, x2, x3, xSum, halves, tableLow, tableHigh, a2);
            a3 = Block32<T>(w3 + at, x0, x1, x2, x3, xSum, halves, tableLow, tableHigh, a3);
        }
        y[0] = Vector256.Sum(a0); y[1] = Vector256.Sum(a1); y[2] = Vector256.Sum(a2); y[3] = Vector256.Sum(a3);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Block32<T>(byte* block, Vector256<float> x0, Vector256<float> x1, Vector256<float> x2, Vector256<float> x3, Vector256<float> xSum,
                                               float* halves, Vector256<float> tableLow, Vector256<float> tableHigh, Vector256<float> total) where T : struct, IChunkFormat
    {
        (float d, float o) = T.ScaleOffset32(block, halves);
        Vector256<float> even = Vector256.FusedMultiplyAdd(Values8<T>(block, 2, tableLow, tableHigh), x2, Values8<T>(block, 0, tableLow, tableHigh) * x0);
        Vector256<float> odd = Vector256.FusedMultiplyAdd(Values8<T>(block, 3, tableLow, tableHigh), x3, Values8<T>(block, 1, tableLow, tableHigh) * x1);
        total = Vector256.FusedMultiplyAdd(even + odd, Vector256.Create(d), total);
        return T.Table ? total : Vector256.FusedMultiplyAdd(xSum, Vector256.Create(o), total);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float DotNarrow<T>(byte* w, float* x, int blocks) where T : struct, IChunkFormat
    {
        float* halves = HalfTable.Pointer;
        float* s = stackalloc float[2 * MaxSlots];
        (Vector256<float> tableLow, Vector256<float> tableHigh) = T.Table ? Table256() : default;
        int halfChunks = T.BlockSize / 8;
        Vector256<float> a0 = default, a1 = default;
        for (int b = 0; b < blocks; b++)
        {
            byte* block = w + b * T.BlockBytes;
            T.Scales(block, halves, s, s + MaxSlots);
            float* xb = x + b * T.BlockSize;
            for (int c8 = 0; c8 < halfChunks; c8 += 2)
            {
                int slot = c8 >> (T.SlotShift + 1); // c8 and c8 + 1 are the two halves of one chunk
                a0 = Vector256.FusedMultiplyAdd(Scaled(Values8<T>(block, c8, tableLow, tableHigh), s, slot), Vector256.Load(xb + 8 * c8), a0);
                a1 = Vector256.FusedMultiplyAdd(Scaled(Values8<T>(block, c8 + 1, tableLow, tableHigh), s, slot), Vector256.Load(xb + 8 * c8 + 8), a1);
            }
        }
        return Vector256.Sum(a0 + a1);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void DequantizeNarrow<T>(byte* w, float* y, int blocks) where T : struct, IChunkFormat
    {
        float* halves = HalfTable.Pointer;
        float* s = stackalloc float[2 * MaxSlots];
        (Vector256<float> tableLow, Vector256<float> tableHigh) = T.Table ? Table256() : default;
        int halfChunks = T.BlockSize / 8;
        for (int b = 0; b < blocks; b++)
        {
            byte* block = w + b * T.BlockBytes;
            T.Scales(block, halves, s, s + MaxSlots);
            for (int c8 = 0; c8 < halfChunks; c8++)
            {
                Vector256<float> q = Values8<T>(block, c8, tableLow, tableHigh);
                int slot = c8 >> (T.SlotShift + 1);
                Vector256<float> value = T.HasMin ? q * Vector256.Create(s[slot]) + Vector256.Create(s[MaxSlots + slot])
                                                  : Vector256.FusedMultiplyAdd(q, Vector256.Create(s[slot]), Vector256.Create(s[MaxSlots + slot]));
                value.Store(y + b * T.BlockSize + 8 * c8);
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Scaled(Vector256<float> q, float* s, int slot) =>
        Vector256.FusedMultiplyAdd(q, Vector256.Create(s[slot]), Vector256.Create(s[MaxSlots + slot]));

    /// <summary>Values 8·(c8 % 2) … +7 of chunk c8 / 2, as floats.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Values8<T>(byte* block, int c8, Vector256<float> tableLow, Vector256<float> tableHigh) where T : struct, IChunkFormat
    {
        (int low, int lowShift, int high, int highShift) = T.Plan(c8 >> 1);
        int half = (c8 & 1) * 8;
        Vector256<int> q = Vector256.ShiftRightLogical(Avx2.ConvertToVector256Int32(block + low + half), lowShift) & Vector256.Create(T.LowMask);
        if (T.WordHigh)
        {
            Vector256<uint> word = Vector256.Create(*(uint*)(block + high) >> (highShift + half));
            q |= (Avx2.ShiftRightLogicalVariable(word, Vector256.Create(0u, 1, 2, 3, 4, 5, 6, 7)).AsInt32() & Vector256<int>.One) << 4;
        }
        else if (T.HighMask != 0)
            q |= (Vector256.ShiftRightLogical(Avx2.ConvertToVector256Int32(block + high + half), highShift) & Vector256.Create(T.HighMask)) << T.HighBit;
        if (!T.Table) return Vector256.ConvertToSingle(q);
        // 16 grid values from two 8-entry permutes, chosen by bit 3 of the index (moved to the sign bit).
        return Avx.BlendVariable(Avx2.PermuteVar8x32(tableLow, q), Avx2.PermuteVar8x32(tableHigh, q), (q << 28).AsSingle());
    }

    private static (Vector256<float>, Vector256<float>) Table256() =>
        (Vector256.Create(-127f, -104, -83, -65, -49, -35, -22, -10), Vector256.Create(1f, 13, 25, 38, 53, 69, 89, 113));

    // ---- the formats ----

    /// <summary>How one weight format is read 16 values (a chunk) at a time; a struct per format so each kernel is compiled for it.</summary>
    private interface IChunkFormat
    {
        static abstract int BlockSize { get; }
        static abstract int BlockBytes { get; }

        /// <summary>Chunk c uses scale slot c &gt;&gt; SlotShift (0: a scale per 16 values; 1: per 32).</summary>
        static abstract int SlotShift { get; }

        /// <summary>Offsets are minimums (added after rounding q·scale) rather than multiples of the scale.</summary>
        static abstract bool HasMin { get; }

        static abstract int LowMask { get; }

        /// <summary>Mask of the high bits taken from a second run of bytes (0: none), and where they go.</summary>
        static abstract int HighMask { get; }
        static abstract int HighBit { get; }

        /// <summary>The fifth bits are one 32-bit word, bit j for value j (Q5_0, Q5_1).</summary>
        static abstract bool WordHigh { get; }

        /// <summary>q indexes the IQ4 grid.</summary>
        static abstract bool Table { get; }

        /// <summary>
        /// Chunk c: byte offset and shift of its low bits, and of its high bits (or, with
        /// <see cref="WordHigh"/>, the word's offset and the shift bringing value 16·c to bit 0).
        /// </summary>
        static abstract (int Low, int LowShift, int High, int HighShift) Plan(int c);

        /// <summary>A block of 32's scale and offset (other sizes: unused).</summary>
        static abstract (float Scale, float Offset) ScaleOffset32(byte* block, float* halves);

        /// <summary>Each slot's scale and offset of one block: value = q·scale + offset (AVX2 instructions: only the vector kernels call it).</summary>
        static abstract void Scales(byte* block, float* halves, float* scale, float* offset);
    }

    private readonly struct Q4_1 : IChunkFormat
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static (float, float) ScaleOffset32(byte* block, float* halves) => (HalfTable.ToSingle(halves, ref *block), HalfTable.ToSingle(halves, ref block[2]));

        public static int BlockSize => 32;
        public static int BlockBytes => 20;
        public static int SlotShift => 1;
        public static bool HasMin => true;
        public static int LowMask => 15;
        public static int HighMask => 0;
        public static int HighBit => 0;
        public static bool WordHigh => false;
        public static bool Table => false;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static (int, int, int, int) Plan(int c) => (4, 4 * c, 0, 0);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Scales(byte* block, float* halves, float* scale, float* offset)
        {
            scale[0] = HalfTable.ToSingle(halves, ref *block);
            offset[0] = HalfTable.ToSingle(halves, ref block[2]);
        }
    }

    private readonly struct Q5_0 : IChunkFormat
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static (float, float) ScaleOffset32(byte* block, float* halves) => (HalfTable.ToSingle(halves, ref *block), -16 * HalfTable.ToSingle(halves, ref *block));

        public static int BlockSize => 32;
        public static int BlockBytes => 22;
        public static int SlotShift => 1;
        public static bool HasMin => false;
        public static int LowMask => 15;
        public static int HighMask => 1;
        public static int HighBit => 4;
        public static bool WordHigh => true;
        public static bool Table => false;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static (int, int, int, int) Plan(int c) => (6, 4 * c, 2, 16 * c);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Scales(byte* block, float* halves, float* scale, float* offset)
        {
            float d = HalfTable.ToSingle(halves, ref *block);
            scale[0] = d;
            offset[0] = -16 * d;
        }
    }

    private readonly struct Q5_1 : IChunkFormat
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static (float, float) ScaleOffset32(byte* block, float* halves) => (HalfTable.ToSingle(halves, ref *block), HalfTable.ToSingle(halves, ref block[2]));

        public static int BlockSize => 32;
        public static int BlockBytes => 24;
        public static int SlotShift => 1;
        public static bool HasMin => true;
        public static int LowMask => 15;
        public static int HighMask => 1;
        public static int HighBit => 4;
        public static bool WordHigh => true;
        public static bool Table => false;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static (int, int, int, int) Plan(int c) => (8, 4 * c, 4, 16 * c);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Scales(byte* block, float* halves, float* scale, float* offset)
        {
            scale[0] = HalfTable.ToSingle(halves, ref *block);
            offset[0] = HalfTable.ToSingle(halves, ref block[2]);
        }
    }

    private readonly struct IQ4_NL : IChunkFormat
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static (float, float) ScaleOffset32(byte* block, float* halves) => (HalfTable.ToSingle(halves, ref *block), 0);

        public static int BlockSize => 32;
        public static int BlockBytes => 18;
        public static int SlotShift => 1;
        public static bool HasMin => false;
        public static int LowMask => 15;
        public static int HighMask => 0;
        public static int HighBit => 0;
        public static bool WordHigh => false;
        public static bool Table => true;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static (int, int, int, int) Plan(int c) => (2, 4 * c, 0, 0);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Scales(byte* block, float* halves, float* scale, float* offset)
        {
            scale[0] = HalfTable.ToSingle(halves, ref *block);
            offset[0] = 0;
        }
    }

    /// <summary>Chunk c: half c / 8 (32 bytes each), bit plane (c % 8) / 2, bytes 16·(c % 2) on; scale byte c.</summary>
    internal readonly struct Q2_K : IChunkFormat
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static (float, float) ScaleOffset32(byte* block, float* halves) => default;

        public static int BlockSize => 256;
        public static int BlockBytes => 84;
        public static int SlotShift => 0;
        public static bool HasMin => true;
        public static int LowMask => 3;
        public static int HighMask => 0;
        public static int HighBit => 0;
        public static bool WordHigh => false;
        public static bool Table => false;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static (int, int, int, int) Plan(int c) => (16 + (c >> 3) * 32 + (c & 1) * 16, 2 * ((c & 7) >> 1), 0, 0);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Scales(byte* block, float* halves, float* scale, float* offset)
        {
            var d = Vector256.Create(HalfTable.ToSingle(halves, ref block[80]));
            var dmin = Vector256.Create(HalfTable.ToSingle(halves, ref block[82]));
            for (int k = 0; k < 16; k += 8)
            {
                Vector256<int> packed = Avx2.ConvertToVector256Int32(block + k);
                (Vector256.ConvertToSingle(packed & Vector256.Create(0x0F)) * d).Store(scale + k);
                (-(Vector256.ConvertToSingle(Vector256.ShiftRightLogical(packed, 4)) * dmin)).Store(offset + k);
            }
        }
    }

    /// <summary>Q2_K's layout for the low bits at byte 32; the high bit of chunk c is bit 4·(c / 8) + (c % 8) / 2 of bytes 16·(c % 2) on.</summary>
    internal readonly struct Q3_K : IChunkFormat
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static (float, float) ScaleOffset32(byte* block, float* halves) => default;

        public static int BlockSize => 256;
        public static int BlockBytes => 110;
        public static int SlotShift => 0;
        public static bool HasMin => false;
        public static int LowMask => 3;
        public static int HighMask => 1;
        public static int HighBit => 2;
        public static bool WordHigh => false;
        public static bool Table => false;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static (int, int, int, int) Plan(int c) =>
            (32 + (c >> 3) * 32 + (c & 1) * 16, 2 * ((c & 7) >> 1), (c & 1) * 16, 4 * (c >> 3) + ((c & 7) >> 1));

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Scales(byte* block, float* halves, float* scale, float* offset)
        {
            // Scale k: low nibble of byte k (k < 8) or k − 8 (high nibble), high pair at bit 8·(k % 4) + 2·(k / 4) of bytes 8–11.
            var d = Vector256.Create(HalfTable.ToSingle(halves, ref block[108]));
            Vector256<int> low = Avx2.ConvertToVector256Int32(block + 96);
            Vector256<uint> high = Vector256.Create(*(uint*)(block + 104));
            Vector256<int> first = (low & Vector256.Create(0x0F)) | ((Avx2.ShiftRightLogicalVariable(high, Vector256.Create(0u, 8, 16, 24, 2, 10, 18, 26)).AsInt32() & Vector256.Create(3)) << 4);
            Vector256<int> second = Vector256.ShiftRightLogical(low, 4) | ((Avx2.ShiftRightLogicalVariable(high, Vector256.Create(4u, 12, 20, 28, 6, 14, 22, 30)).AsInt32() & Vector256.Create(3)) << 4);
            Vector256<float> s0 = Vector256.ConvertToSingle(first - Vector256.Create(32)) * d, s1 = Vector256.ConvertToSingle(second - Vector256.Create(32)) * d;
            s0.Store(scale);
            s1.Store(scale + 8);
            (s0 * Vector256.Create(-4f)).Store(offset); // value = s·((low | high bit·4) − 4)
            (s1 * Vector256.Create(-4f)).Store(offset + 8);
        }
    }

    /// <summary>Chunk c: sub-block c / 2, nibbles of bytes 16 + 32·(c / 4) + 16·(c % 2) on, high nibble for odd sub-blocks.</summary>
    private readonly struct Q4_K : IChunkFormat
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static (float, float) ScaleOffset32(byte* block, float* halves) => default;

        public static int BlockSize => 256;
        public static int BlockBytes => 144;
        public static int SlotShift => 1;
        public static bool HasMin => true;
        public static int LowMask => 15;
        public static int HighMask => 0;
        public static int HighBit => 0;
        public static bool WordHigh => false;
        public static bool Table => false;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static (int, int, int, int) Plan(int c) => (16 + (c >> 2) * 32 + (c & 1) * 16, 4 * ((c >> 1) & 1), 0, 0);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Scales(byte* block, float* halves, float* scale, float* offset) => ScalesK4(block, halves, scale, offset);
    }

    /// <summary>Q4_K's nibbles at byte 48; the fifth bit of sub-block j is bit j of bytes 16 + 16·(c % 2) on.</summary>
    private readonly struct Q5_K : IChunkFormat
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static (float, float) ScaleOffset32(byte* block, float* halves) => default;

        public static int BlockSize => 256;
        public static int BlockBytes => 176;
        public static int SlotShift => 1;
        public static bool HasMin => true;
        public static int LowMask => 15;
        public static int HighMask => 1;
        public static int HighBit => 4;
        public static bool WordHigh => false;
        public static bool Table => false;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static (int, int, int, int) Plan(int c) => (48 + (c >> 2) * 32 + (c & 1) * 16, 4 * ((c >> 1) & 1), 16 + (c & 1) * 16, c >> 1);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Scales(byte* block, float* halves, float* scale, float* offset) => ScalesK4(block, halves, scale, offset);
    }

    /// <summary>Q4_K and Q5_K: f16 d and dmin, then 8 6-bit scales and minimums in 12 bytes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void ScalesK4(byte* block, float* halves, float* scale, float* offset)
    {
        (Vector256<int> scales, Vector256<int> mins) = ScalesK4Integers(block);
        (Vector256.ConvertToSingle(scales) * Vector256.Create(HalfTable.ToSingle(halves, ref *block))).Store(scale);
        (-(Vector256.ConvertToSingle(mins) * Vector256.Create(HalfTable.ToSingle(halves, ref block[2])))).Store(offset);
    }

    /// <summary>
    /// Q4_K and Q5_K: the 8 6-bit scales and the 8 minimums as integers (also used by <see cref="KQuantActivations"/> and
    /// <see cref="KQuantPlanes"/>), unpacked in general-purpose registers — three 32-bit words, 4 bytes at a time — so the
    /// vector ports, which bound the decode kernels, spend 4 operations per super-block on them (2 moves, 2 widenings)
    /// instead of ~18 (issue #13). Bytes q0–q3 (a), q4–q7 (b), q8–q11 (c): scales 0–3 = a &amp; 63, minimums 0–3 = b &amp; 63;
    /// scales 4–7 = low nibbles of c with a's top two bits above, minimums 4–7 = c's high nibbles with b's top bits.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static (Vector256<int> Scales, Vector256<int> Mins) ScalesK4Integers(byte* block)
    {
        uint a = Unsafe.ReadUnaligned<uint>(block + 4), b = Unsafe.ReadUnaligned<uint>(block + 8), c = Unsafe.ReadUnaligned<uint>(block + 12);
        ulong scales = (a & 0x3F3F3F3Fu) | (ulong)((c & 0x0F0F0F0Fu) | (a >> 2 & 0x30303030u)) << 32;
        ulong mins = (b & 0x3F3F3F3Fu) | (ulong)((c >> 4 & 0x0F0F0F0Fu) | (b >> 2 & 0x30303030u)) << 32;
        return (Avx2.ConvertToVector256Int32(Vector128.CreateScalar(scales).AsByte()), Avx2.ConvertToVector256Int32(Vector128.CreateScalar(mins).AsByte()));
    }

    /// <summary>Chunk c: half c / 8; low nibbles of bytes 64·half + 32·(c / 2 % 2) + 16·(c % 2), high nibble from c % 8 ≥ 4; bit pair (c % 8) / 2 of bytes 128 + 32·half + 16·(c % 2); scale c.</summary>
    private readonly struct Q6_K : IChunkFormat
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static (float, float) ScaleOffset32(byte* block, float* halves) => default;

        public static int BlockSize => 256;
        public static int BlockBytes => 210;
        public static int SlotShift => 0;
        public static bool HasMin => false;
        public static int LowMask => 15;
        public static int HighMask => 3;
        public static int HighBit => 4;
        public static bool WordHigh => false;
        public static bool Table => false;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static (int, int, int, int) Plan(int c)
        {
            int half = c >> 3, quarter = (c & 7) >> 1, part = c & 1;
            return (half * 64 + (quarter & 1) * 32 + part * 16, 4 * (quarter >> 1), 128 + half * 32 + part * 16, 2 * quarter);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Scales(byte* block, float* halves, float* scale, float* offset)
        {
            var d = Vector256.Create(HalfTable.ToSingle(halves, ref block[208]));
            for (int k = 0; k < 16; k += 8)
            {
                Vector256<float> s = Vector256.ConvertToSingle(Avx2.ConvertToVector256Int32((sbyte*)block + 192 + k)) * d;
                s.Store(scale + k);
                (s * Vector256.Create(-32f)).Store(offset + k);
            }
        }
    }

    /// <summary>Chunk c: sub-block c / 2's 16 bytes at 8 + 16·(c / 2), low nibbles for even c.</summary>
    private readonly struct IQ4_XS : IChunkFormat
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static (float, float) ScaleOffset32(byte* block, float* halves) => default;

        public static int BlockSize => 256;
        public static int BlockBytes => 136;
        public static int SlotShift => 1;
        public static bool HasMin => false;
        public static int LowMask => 15;
        public static int HighMask => 0;
        public static int HighBit => 0;
        public static bool WordHigh => false;
        public static bool Table => true;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static (int, int, int, int) Plan(int c) => (8 + (c >> 1) * 16, 4 * (c & 1), 0, 0);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Scales(byte* block, float* halves, float* scale, float* offset)
        {
            // Scale j: nibble j of the 32-bit word at byte 4, bit pair j of the 16-bit word at byte 2.
            Vector256<uint> low = Avx2.ShiftRightLogicalVariable(Vector256.Create(*(uint*)(block + 4)), Vector256.Create(0u, 4, 8, 12, 16, 20, 24, 28)) & Vector256.Create(0x0Fu);
            Vector256<uint> high = Avx2.ShiftRightLogicalVariable(Vector256.Create((uint)*(ushort*)(block + 2)), Vector256.Create(0u, 2, 4, 6, 8, 10, 12, 14)) & Vector256.Create(3u);
            Vector256<int> ls = (low | (high << 4)).AsInt32() - Vector256.Create(32);
            (Vector256.ConvertToSingle(ls) * Vector256.Create(HalfTable.ToSingle(halves, ref *block))).Store(scale);
            Vector256<float>.Zero.Store(offset);
        }
    }
}
