using System.Buffers.Binary;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using NextToken.Tensors;

namespace NextToken.Kernels;

/// <summary>
/// ggml's block-quantized formats (ggml-quants.c). Each row is a run of blocks; a block stores a
/// float16 scale (and for K-quants, per-sub-block scales and minimums) and packed integers.
/// <see cref="DequantizeRow"/> expands a row; <see cref="DotRow"/> multiplies a stored row with a
/// float32 vector one block at a time, so no matrix is ever expanded in memory.
/// </summary>
public static unsafe partial class Quantized
{
    public const int QK8_0 = 32, QK4_0 = 32, QK_K = 256;

    public static bool IsSupported(GgmlType type) => type is GgmlType.Q8_0 or GgmlType.Q4_0 or GgmlType.Q4_1 or GgmlType.Q5_0 or GgmlType.Q5_1
        or GgmlType.Q2_K or GgmlType.Q3_K or GgmlType.Q4_K or GgmlType.Q5_K or GgmlType.Q6_K or GgmlType.IQ4_NL or GgmlType.IQ4_XS;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void DequantizeRow(GgmlType type, ReadOnlySpan<byte> row, Span<float> destination)
    {
        GgmlTypeInfo.TryGetLayout(type, out int blockSize, out int blockBytes);
        int blocks = destination.Length / blockSize;
        if (ChunkedQuant.Handles(type) && (ChunkedQuant.Wide || ChunkedQuant.Narrow))
        {
            if (row.Length < blocks * blockBytes) throw new ArgumentException($"a {type} row of {blocks * blockSize} values needs {blocks * blockBytes} bytes, not {row.Length}");
            fixed (byte* w = row)
            fixed (float* y = destination)
                ChunkedQuant.Dequantize(type, ChunkedQuant.Wide, w, y, blocks * blockSize);
            return;
        }
        if (type is GgmlType.Q8_0 or GgmlType.Q4_0 && Vector512.IsHardwareAccelerated && System.Runtime.Intrinsics.X86.Avx512F.IsSupported)
        {
            if (row.Length < blocks * blockBytes) throw new ArgumentException($"a {type} row of {blocks * blockSize} values needs {blocks * blockBytes} bytes, not {row.Length}");
            fixed (byte* w = row)
            fixed (float* y = destination)
                DequantizeRowWide(type, w, blocks, y);
            return;
        }
        if (type is GgmlType.Q8_0 or GgmlType.Q4_0 && Vector256.IsHardwareAccelerated && System.Runtime.Intrinsics.X86.Avx2.IsSupported && System.Runtime.Intrinsics.X86.Fma.IsSupported)
        {
            if (row.Length < blocks * blockBytes) throw new ArgumentException($"a {type} row of {blocks * blockSize} values needs {blocks * blockBytes} bytes, not {row.Length}");
            fixed (byte* w = row)
            fixed (float* y = destination)
                DequantizeRowNarrow(type, w, blocks, y);
            return;
        }
        for (int b = 0; b < blocks; b++)
            DequantizeBlock(type, row.Slice(b * blockBytes, blockBytes), destination.Slice(b * blockSize, blockSize));
    }

    /// <summary>
    /// Q8_0/Q4_0 blocks → float32 with AVX2 (the prompt path expands every weight row once per tile;
    /// element by element this cost as much as the tile's FMAs on CPUs without AVX-512).
    /// </summary>
    internal static void DequantizeRowNarrow(GgmlType type, byte* w, int blocks, float* y)
    {
        if (type == GgmlType.Q8_0) DequantizeRowNarrow<Q8_0Floats>(w, blocks, y);
        else DequantizeRowNarrow<Q4_0Floats>(w, blocks, y);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void DequantizeRowNarrow<TFormat>(byte* w, int blocks, float* y) where TFormat : struct, IBlockFloats
    {
        float* halves = HalfTable.Pointer;
        for (int b = 0; b < blocks; b++)
        {
            byte* block = w + b * TFormat.Bytes;
            (Vector256<float> v0, Vector256<float> v1, Vector256<float> v2, Vector256<float> v3) = TFormat.StoredValues8(block);
            var d = Vector256.Create(HalfTable.ToSingle(halves, ref *block));
            Vector256<float> shift = TFormat.ScaledOffset(d); // d·(n − 8) = d·n − 8d, rounded once as the reference's product
            float* yb = y + b * 32;
            Vector256.FusedMultiplyAdd(v0, d, shift).Store(yb);
            Vector256.FusedMultiplyAdd(v1, d, shift).Store(yb + 8);
            Vector256.FusedMultiplyAdd(v2, d, shift).Store(yb + 16);
            Vector256.FusedMultiplyAdd(v3, d, shift).Store(yb + 24);
        }
    }

    public static float DotRow(GgmlType type, ReadOnlySpan<byte> row, ReadOnlySpan<float> x)
    {
        if (!GgmlTypeInfo.TryGetLayout(type, out int blockSize, out int blockBytes) || !IsSupported(type))
            throw new NotSupportedException($"{type} rows cannot be multiplied yet; supported: {SupportedNames}");
        if (x.Length % blockSize != 0 || row.Length < x.Length / blockSize * blockBytes)
            throw new ArgumentException($"a {type} row of {x.Length} values needs a multiple of {blockSize} values and {x.Length / blockSize * blockBytes} bytes, not {row.Length}");
        if (ChunkedQuant.Handles(type) && (ChunkedQuant.Wide || ChunkedQuant.Narrow))
            fixed (byte* w = row)
            fixed (float* v = x)
                return ChunkedQuant.Dot(type, ChunkedQuant.Wide, w, v, x.Length);
        if (Vector512.IsHardwareAccelerated && System.Runtime.Intrinsics.X86.Avx512F.IsSupported && type is GgmlType.Q8_0 or GgmlType.Q4_0)
            return DotRowWide(type, row, x);
        if (type is GgmlType.Q8_0 or GgmlType.Q4_0 && Vector256.IsHardwareAccelerated && System.Runtime.Intrinsics.X86.Avx2.IsSupported)
            return DotRowNarrow(type, row, x);
        Span<float> buffer = stackalloc float[QK_K];
        Span<float> values = buffer[..blockSize];
        int blocks = x.Length / blockSize;
        float sum = 0;
        for (int b = 0; b < blocks; b++)
        {
            ReadOnlySpan<byte> block = row.Slice(b * blockBytes, blockBytes);
            ReadOnlySpan<float> xb = x.Slice(b * blockSize, blockSize);
            if (type == GgmlType.Q8_0)
            {
                sum += Half2Float(block) * DotQ8(block[2..], xb);
                continue;
            }
            DequantizeBlock(type, block, values);
            sum += TensorPrimitives.Dot(values, xb);
        }
        return sum;
    }

    /// <summary>The Q8_0/Q4_0 row dot with AVX2: each block's 32 values as four 8-lane float vectors.</summary>
    internal static float DotRowNarrow(GgmlType type, ReadOnlySpan<byte> row, ReadOnlySpan<float> x)
    {
        fixed (byte* w = row)
        fixed (float* v = x)
            return type == GgmlType.Q8_0 ? DotRowNarrow<Q8_0Floats>(w, v, x.Length / 32) : DotRowNarrow<Q4_0Floats>(w, v, x.Length / 32);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float DotRowNarrow<TFormat>(byte* w, float* x, int blocks) where TFormat : struct, IBlockFloats
    {
        float* halves = HalfTable.Pointer;
        Vector256<float> total = Vector256<float>.Zero;
        for (int b = 0; b < blocks; b++)
        {
            float* xb = x + b * 32;
            var x0 = Vector256.Load(xb);
            var x1 = Vector256.Load(xb + 8);
            var x2 = Vector256.Load(xb + 16);
            var x3 = Vector256.Load(xb + 24);
            total = BlockTimes<TFormat>(w + b * TFormat.Bytes, x0, x1, x2, x3, TFormat.Offset(x0 + x1 + x2 + x3), halves, total);
        }
        return Vector256.Sum(total);
    }

    /// <summary>The Q8_0/Q4_0 row dot with AVX-512: each block's 32 values widened to two 16-lane float vectors.</summary>
    internal static float DotRowWide(GgmlType type, ReadOnlySpan<byte> row, ReadOnlySpan<float> x)
    {
        fixed (byte* w = row)
        fixed (float* v = x)
            return type == GgmlType.Q8_0 ? DotRowWide<Q8_0Floats>(w, v, x.Length / 32) : DotRowWide<Q4_0Floats>(w, v, x.Length / 32);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float DotRowWide<TFormat>(byte* w, float* x, int blocks) where TFormat : struct, IBlockFloats
    {
        float* halves = HalfTable.Pointer;
        Vector512<float> total = Vector512<float>.Zero;
        for (int b = 0; b < blocks; b++)
        {
            var x0 = Vector512.Load(x + b * 32);
            var x1 = Vector512.Load(x + b * 32 + 16);
            total = BlockTimes<TFormat>(w + b * TFormat.Bytes, x0, x1, TFormat.Offset(x0, x1), halves, total);
        }
        return Vector512.Sum(total);
    }

    /// <summary>
    /// Four consecutive stored Q8_0 or Q4_0 rows (<paramref name="rowBytes"/> apart) times x, exact,
    /// with AVX-512: x's two vectors per block (and Q4_0's offset term) are made once for the four
    /// rows, and the next four rows are prefetched (the hardware prefetcher stops at the 4 KB pages of
    /// the mapped file).
    /// </summary>
    internal static unsafe void Dot4RowsWide(GgmlType type, byte* w, long rowBytes, float* x, int n, float* y)
    {
        if (type == GgmlType.Q8_0) Dot4RowsWide<Q8_0Floats>(w, rowBytes, x, n / 32, y);
        else Dot4RowsQ4_0Wide(w, rowBytes, x, n / 32, y);
    }

    /// <summary>The previous Q4_0 four-row AVX-512 kernel (nibbles converted to float, then scaled per block), kept as the benchmarks' baseline.</summary>
    internal static unsafe void Dot4RowsWidePrevious(GgmlType type, byte* w, long rowBytes, float* x, int n, float* y)
    {
        if (type == GgmlType.Q8_0) Dot4RowsWide<Q8_0Floats>(w, rowBytes, x, n / 32, y);
        else Dot4RowsWide<Q4_0Floats>(w, rowBytes, x, n / 32, y);
    }

    /// <summary>
    /// Q4_0 × x for four rows with AVX-512, by table: <c>vpermps</c> reads only the low four bits of
    /// each 32-bit index, so the stored bytes widened to lanes (one <c>vpmovzxbd</c>) index a
    /// 16-entry table of d·(n − 8) directly for the low nibbles, and after one shift for the high
    /// ones. Per block and row: 1 multiply (the table by d), 1 widening load, 1 shift, 2 permutes,
    /// 2 FMAs — 7 operations where conversion took 8 and a per-block offset; no conversion and no
    /// scale step, and each product is the reference's dequantized value times x (d·(n − 8) rounded
    /// once, as <see cref="DequantizeBlock"/>). Two accumulators per row (low and high halves).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void Dot4RowsQ4_0Wide(byte* w, long rowBytes, float* x, int blocks, float* y)
    {
        float* halves = HalfTable.Pointer;
        var centred = Vector512.Create(-8f, -7f, -6f, -5f, -4f, -3f, -2f, -1f, 0f, 1f, 2f, 3f, 4f, 5f, 6f, 7f);
        const int PrefetchStride = 4 * 18; // bytes of the next four rows per block step
        byte* w1 = w + rowBytes, w2 = w + 2 * rowBytes, w3 = w + 3 * rowBytes, next = w + 4 * rowBytes;
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default, b0 = default, b1 = default, b2 = default, b3 = default;
        for (int b = 0; b < blocks; b++)
        {
            System.Runtime.Intrinsics.X86.Sse.Prefetch0(next + b * PrefetchStride);
            System.Runtime.Intrinsics.X86.Sse.Prefetch0(next + b * PrefetchStride + 64);
            var x0 = Vector512.Load(x + b * 32);
            var x1 = Vector512.Load(x + b * 32 + 16);
            int at = b * 18;
            Q4_0ByTable(w + at, x0, x1, centred, halves, ref a0, ref b0);
            Q4_0ByTable(w1 + at, x0, x1, centred, halves, ref a1, ref b1);
            Q4_0ByTable(w2 + at, x0, x1, centred, halves, ref a2, ref b2);
            Q4_0ByTable(w3 + at, x0, x1, centred, halves, ref a3, ref b3);
        }
        y[0] = Vector512.Sum(a0 + b0); y[1] = Vector512.Sum(a1 + b1); y[2] = Vector512.Sum(a2 + b2); y[3] = Vector512.Sum(a3 + b3);
    }

    /// <summary>low += values 0…15 of one Q4_0 block times x0, high += values 16…31 times x1, each value d·(n − 8) looked up.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void Q4_0ByTable(byte* block, Vector512<float> x0, Vector512<float> x1, Vector512<float> centred, float* halves,
                                          ref Vector512<float> low, ref Vector512<float> high)
    {
        Vector512<float> values = centred * Vector512.Create(HalfTable.ToSingle(halves, ref *block));
        Vector512<int> bytes = System.Runtime.Intrinsics.X86.Avx512F.ConvertToVector512Int32(Vector128.Load(block + 2));
        low = Vector512.FusedMultiplyAdd(System.Runtime.Intrinsics.X86.Avx512F.PermuteVar16x32(values, bytes), x0, low);
        high = Vector512.FusedMultiplyAdd(System.Runtime.Intrinsics.X86.Avx512F.PermuteVar16x32(values, Vector512.ShiftRightLogical(bytes, 4)), x1, high);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void Dot4RowsWide<TFormat>(byte* w, long rowBytes, float* x, int blocks, float* y) where TFormat : struct, IBlockFloats
    {
        float* halves = HalfTable.Pointer;
        int prefetchStride = 4 * TFormat.Bytes; // bytes of the next four rows per block step
        byte* w1 = w + rowBytes, w2 = w + 2 * rowBytes, w3 = w + 3 * rowBytes, next = w + 4 * rowBytes;
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
        for (int b = 0; b < blocks; b++)
        {
            for (int line = 0; line < prefetchStride; line += 64) System.Runtime.Intrinsics.X86.Sse.Prefetch0(next + b * prefetchStride + line);
            var x0 = Vector512.Load(x + b * 32);
            var x1 = Vector512.Load(x + b * 32 + 16);
            Vector512<float> offset = TFormat.Offset(x0, x1);
            int at = b * TFormat.Bytes;
            a0 = BlockTimes<TFormat>(w + at, x0, x1, offset, halves, a0);
            a1 = BlockTimes<TFormat>(w1 + at, x0, x1, offset, halves, a1);
            a2 = BlockTimes<TFormat>(w2 + at, x0, x1, offset, halves, a2);
            a3 = BlockTimes<TFormat>(w3 + at, x0, x1, offset, halves, a3);
        }
        y[0] = Vector512.Sum(a0); y[1] = Vector512.Sum(a1); y[2] = Vector512.Sum(a2); y[3] = Vector512.Sum(a3);
    }

    /// <summary>
    /// The four-row Q8_0/Q4_0 decode kernel with AVX2 (CPUs without AVX-512, or where .NET prefers
    /// 256-bit vectors): a block's 32 values as four 8-lane vectors, each one widening load.
    /// </summary>
    internal static unsafe void Dot4RowsNarrow(GgmlType type, byte* w, long rowBytes, float* x, int n, float* y)
    {
        if (type == GgmlType.Q8_0) Dot4RowsChained<Q8_0Floats, NoOffsets>(w, rowBytes, x, null, n / 32, y);
        else Dot4RowsChained<Q4_0Floats, NoOffsets>(w, rowBytes, x, null, n / 32, y);
    }

    /// <summary>
    /// As <see cref="Dot4RowsNarrow(GgmlType, byte*, long, float*, int, float*)"/> for Q4_0 with x's
    /// offset term made beforehand (<see cref="Q4_0Offsets"/>: 8 floats per block, once per matrix
    /// call), so the loop loads it instead of making it once per four rows (4 operations on the FMA ports).
    /// </summary>
    internal static unsafe void Dot4RowsNarrowQ4_0(byte* w, long rowBytes, float* x, float* offsets, int n, float* y) =>
        Dot4RowsChained<Q4_0Floats, GivenOffsets>(w, rowBytes, x, offsets, n / 32, y);

    /// <summary>offsets[8b … 8b + 7] = −8 · (x's four 8-lane vectors of block b, added lane by lane): Q4_0's re-centring term per block (AVX2).</summary>
    internal static unsafe void Q4_0Offsets(float* x, int n, float* offsets)
    {
        var minusEight = Vector256.Create(-8f);
        for (int b = 0; b < n / 32; b++)
        {
            float* xb = x + b * 32;
            (((Vector256.Load(xb) + Vector256.Load(xb + 8)) + (Vector256.Load(xb + 16) + Vector256.Load(xb + 24))) * minusEight).Store(offsets + b * 8);
        }
    }

    /// <summary>Floats per 32-value block of <see cref="PrepareQ4_0"/>'s output: four 8-lane vectors of scaled x, then the offset term.</summary>
    internal const int Q4_0PreparedFloats = 40;

    /// <summary>
    /// x for <see cref="Dot4RowsNarrowQ4_0Placed"/>, once per matrix call: per block, vector k lane i
    /// (0–3) holds x[4i + k]·2⁻⁸ᵏ and lane 4 + i holds x[16 + 4i + k]·2⁻⁽⁸ᵏ⁺⁴⁾ — the value whose nibble
    /// sits at bit 8k (low nibble of byte 4i + k) or 8k + 4 (its high nibble) of dword i of the block's
    /// 16 bytes — then −8 · Σ x over each lane, except the top nibbles' (k = 3, lanes 4–7), which the
    /// kernel re-centres itself. Scaling by a power of two is exact while the result stays normal, so
    /// returns false (leaving prepared unusable) if some nonzero |x| is below 2⁻⁹⁸; the caller then
    /// takes <see cref="Dot4RowsNarrowQ4_0"/>.
    /// </summary>
    internal static unsafe bool PrepareQ4_0(float* x, int n, float* prepared)
    {
        Vector256<float> s0 = Scales(0), s1 = Scales(8), s2 = Scales(16), s3 = Scales(24);
        Vector256<float> lowHalf = Vector256.Create(-1, -1, -1, -1, 0, 0, 0, 0).AsSingle();
        Vector256<uint> magnitude = Vector256.Create(0x7FFFFFFFu), smallest = Vector256<uint>.AllBitsSet; // least (|x| bits − 1): zero wraps to the top
        for (int b = 0; b < n / 32; b++)
        {
            float* xb = x + 32 * b, p = prepared + Q4_0PreparedFloats * b;
            Vector256<float> v0 = Vector256.Load(xb), v1 = Vector256.Load(xb + 8), v2 = Vector256.Load(xb + 16), v3 = Vector256.Load(xb + 24);
            smallest = Avx2.Min(smallest, Avx2.Min(Avx2.Min((v0.AsUInt32() & magnitude) - Vector256<uint>.One, (v1.AsUInt32() & magnitude) - Vector256<uint>.One),
                                                   Avx2.Min((v2.AsUInt32() & magnitude) - Vector256<uint>.One, (v3.AsUInt32() & magnitude) - Vector256<uint>.One)));
            (Vector256<float> p0, Vector256<float> p1, Vector256<float> p2, Vector256<float> p3) = Block32Decode.Lanes(v0, v1, v2, v3);
            (p0 * s0).Store(p);
            (p1 * s1).Store(p + 8);
            (p2 * s2).Store(p + 16);
            (p3 * s3).Store(p + 24);
            (((p0 + p1) + (p2 + (p3 & lowHalf))) * Vector256.Create(-8f)).Store(p + 32);
        }
        // 2^-98 is 0x0E800000: x·2^-28 stays a normal float.
        return !Vector256.LessThanAny(smallest, Vector256.Create(0x0E800000u - 1));
    }

    /// <summary>2^−bit in the low half, 2^−(bit + 4) in the high half: the scales of <see cref="PrepareQ4_0"/>'s vector bit / 8.</summary>
    private static Vector256<float> Scales(int bit)
    {
        float low = MathF.ScaleB(1f, -bit), high = MathF.ScaleB(1f, -bit - 4);
        return Vector256.Create(low, low, low, low, high, high, high, high);
    }

    /// <summary>
    /// Q4_0 × x for four rows with AVX2, x from <see cref="PrepareQ4_0"/>. A block's 16 bytes are
    /// loaded into both 128-bit halves (<c>vbroadcasti128</c>: a load, no vector operation), and an
    /// AND with a per-half mask leaves in dword i the nibble at bit 8k (low half) or 8k + 4 (high
    /// half): n·2^bit, converted exactly and met by x scaled by 2^−bit, so the product is n·x and
    /// neither a widening load nor a shift is needed. The top nibble (bit 28) would read as negative,
    /// so its sign bit is flipped: (n − 8)·2²⁸, already centred. Per block and row: 4 ANDs, 1 XOR,
    /// 4 conversions, 5 FMAs — 9 operations on the FMA ports and 5 on any vector port (14 on three
    /// ports: 4.67 cycles), where <see cref="Dot4RowsChained{TFormat, TOffsets}"/> takes 11 on the
    /// FMA ports (2 shifts more) and 2 widening loads (5.5 cycles).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static unsafe void Dot4RowsNarrowQ4_0Placed(byte* w, long rowBytes, float* prepared, int n, float* y)
    {
        float* halves = HalfTable.Pointer;
        const int prefetchStride = 4 * 18; // the next four rows' bytes per block step: two lines
        byte* w1 = w + rowBytes, w2 = w + 2 * rowBytes, w3 = w + 3 * rowBytes, next = w + 4 * rowBytes;
        Vector256<int> m0 = Vector256.Create(0xF, 0xF, 0xF, 0xF, 0xF0, 0xF0, 0xF0, 0xF0);
        Vector256<int> m1 = Vector256.Create(0xF00, 0xF00, 0xF00, 0xF00, 0xF000, 0xF000, 0xF000, 0xF000);
        Vector256<int> m2 = Vector256.Create(0xF0000, 0xF0000, 0xF0000, 0xF0000, 0xF00000, 0xF00000, 0xF00000, 0xF00000);
        Vector256<int> m3 = Vector256.Create(0xF000000, 0xF000000, 0xF000000, 0xF000000, unchecked((int)0xF0000000), unchecked((int)0xF0000000), unchecked((int)0xF0000000), unchecked((int)0xF0000000));
        Vector256<int> sign = Vector256.Create(0, 0, 0, 0, int.MinValue, int.MinValue, int.MinValue, int.MinValue);
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        // Pointers stepped once per block (not b times a size per access): the scalar work shares ports 0, 1 and 5 with the vectors.
        float* p = prepared, end = prepared + Q4_0PreparedFloats * (n / 32);
        for (; p < end; p += Q4_0PreparedFloats, w += 18, w1 += 18, w2 += 18, w3 += 18, next += prefetchStride)
        {
            System.Runtime.Intrinsics.X86.Sse.Prefetch0(next);
            System.Runtime.Intrinsics.X86.Sse.Prefetch0(next + 64);
            var x0 = Vector256.Load(p);
            var x1 = Vector256.Load(p + 8);
            var x2 = Vector256.Load(p + 16);
            var x3 = Vector256.Load(p + 24);
            var offset = Vector256.Load(p + 32);
            a0 = Placed(w, x0, x1, x2, x3, offset, m0, m1, m2, m3, sign, halves, a0);
            a1 = Placed(w1, x0, x1, x2, x3, offset, m0, m1, m2, m3, sign, halves, a1);
            a2 = Placed(w2, x0, x1, x2, x3, offset, m0, m1, m2, m3, sign, halves, a2);
            a3 = Placed(w3, x0, x1, x2, x3, offset, m0, m1, m2, m3, sign, halves, a3);
        }
        y[0] = Vector256.Sum(a0); y[1] = Vector256.Sum(a1); y[2] = Vector256.Sum(a2); y[3] = Vector256.Sum(a3);
    }

    /// <summary>total + d · (offset + Σ placed nibbles · scaled x) for one Q4_0 block, in one chain.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe Vector256<float> Placed(byte* block, Vector256<float> x0, Vector256<float> x1, Vector256<float> x2, Vector256<float> x3, Vector256<float> offset,
                                                  Vector256<int> m0, Vector256<int> m1, Vector256<int> m2, Vector256<int> m3, Vector256<int> sign, float* halves, Vector256<float> total)
    {
        Vector256<int> bytes = System.Runtime.Intrinsics.X86.Avx2.BroadcastVector128ToVector256((int*)(block + 2));
        Vector256<float> sum = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(bytes & m0), x0, offset);
        sum = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(bytes & m1), x1, sum);
        sum = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(bytes & m2), x2, sum);
        sum = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle((bytes & m3) ^ sign), x3, sum);
        return Vector256.FusedMultiplyAdd(sum, Vector256.Create(HalfTable.ToSingle(halves, ref *block)), total);
    }

    /// <summary>The previous Q8_0/Q4_0 four-row AVX2 kernel (two chains per block joined by an add), kept as the benchmarks' baseline.</summary>
    internal static unsafe void Dot4RowsNarrowPrevious(GgmlType type, byte* w, long rowBytes, float* x, int n, float* y)
    {
        if (type == GgmlType.Q8_0) Dot4RowsNarrow<Q8_0Floats>(w, rowBytes, x, n / 32, y);
        else Dot4RowsNarrow<Q4_0Floats>(w, rowBytes, x, n / 32, y);
    }

    /// <summary>
    /// Q4_0 or Q8_0 × x for four rows with AVX2. Without AVX-512 the FMA ports also convert and
    /// shift, so they bound the loop: per block and row, Q4_0 takes 2 widening loads (other port),
    /// 2 ANDs, 2 shifts, 4 conversions, 4 FMAs in one chain from the shared offset −8·Σx and 1 FMA
    /// by the scale — 11 operations on the two FMA ports; Q8_0 4 widening loads, 4 conversions and
    /// 5 FMAs — 9 (the previous kernel's two chains cost one add more). A 256-bit <c>vpermps</c>
    /// reads only three index bits, so the AVX-512 table trick does not carry over. Four rows keep
    /// four chains in flight, which covers the chain's latency.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void Dot4RowsChained<TFormat, TOffsets>(byte* w, long rowBytes, float* x, float* offsets, int blocks, float* y)
        where TFormat : struct, IBlockFloats where TOffsets : struct, IOffsets
    {
        float* halves = HalfTable.Pointer;
        int prefetchStride = 4 * TFormat.Bytes;
        byte* w1 = w + rowBytes, w2 = w + 2 * rowBytes, w3 = w + 3 * rowBytes, next = w + 4 * rowBytes;
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        // Pointers stepped once per block (not b times a size per access): the scalar work shares ports 0, 1 and 5 with the vectors.
        for (float* xb = x, end = x + 32 * blocks; xb < end; xb += 32, w += TFormat.Bytes, w1 += TFormat.Bytes, w2 += TFormat.Bytes, w3 += TFormat.Bytes, next += prefetchStride)
        {
            for (int line = 0; line < prefetchStride; line += 64) System.Runtime.Intrinsics.X86.Sse.Prefetch0(next + line);
            var x0 = Vector256.Load(xb);
            var x1 = Vector256.Load(xb + 8);
            var x2 = Vector256.Load(xb + 16);
            var x3 = Vector256.Load(xb + 24);
            Vector256<float> offset = TOffsets.Given ? Vector256.Load(offsets) : TFormat.Offset((x0 + x1) + (x2 + x3));
            if (TOffsets.Given) offsets += 8;
            a0 = Chain<TFormat>(w, x0, x1, x2, x3, offset, halves, a0);
            a1 = Chain<TFormat>(w1, x0, x1, x2, x3, offset, halves, a1);
            a2 = Chain<TFormat>(w2, x0, x1, x2, x3, offset, halves, a2);
            a3 = Chain<TFormat>(w3, x0, x1, x2, x3, offset, halves, a3);
        }
        y[0] = Vector256.Sum(a0); y[1] = Vector256.Sum(a1); y[2] = Vector256.Sum(a2); y[3] = Vector256.Sum(a3);
    }

    /// <summary>Whether a kernel loads the per-block offset term made beforehand or makes it; a struct each, so the choice is compiled away.</summary>
    private interface IOffsets
    {
        static abstract bool Given { get; }
    }

    private readonly struct GivenOffsets : IOffsets
    {
        public static bool Given => true;
    }

    private readonly struct NoOffsets : IOffsets
    {
        public static bool Given => false;
    }

    /// <summary>total + d · (offset + Σ q·x) for one Q4_0 or Q8_0 block, the four products in one chain.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe Vector256<float> Chain<TFormat>(byte* block, Vector256<float> x0, Vector256<float> x1, Vector256<float> x2, Vector256<float> x3,
                                                          Vector256<float> offset, float* halves, Vector256<float> total) where TFormat : struct, IBlockFloats
    {
        (Vector256<float> v0, Vector256<float> v1, Vector256<float> v2, Vector256<float> v3) = TFormat.StoredValues8(block);
        Vector256<float> sum = Vector256.FusedMultiplyAdd(v0, x0, offset);
        sum = Vector256.FusedMultiplyAdd(v1, x1, sum);
        sum = Vector256.FusedMultiplyAdd(v2, x2, sum);
        sum = Vector256.FusedMultiplyAdd(v3, x3, sum);
        return Vector256.FusedMultiplyAdd(sum, Vector256.Create(HalfTable.ToSingle(halves, ref *block)), total);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void Dot4RowsNarrow<TFormat>(byte* w, long rowBytes, float* x, int blocks, float* y) where TFormat : struct, IBlockFloats
    {
        float* halves = HalfTable.Pointer;
        int prefetchStride = 4 * TFormat.Bytes;
        byte* w1 = w + rowBytes, w2 = w + 2 * rowBytes, w3 = w + 3 * rowBytes, next = w + 4 * rowBytes;
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        for (int b = 0; b < blocks; b++)
        {
            for (int line = 0; line < prefetchStride; line += 64) System.Runtime.Intrinsics.X86.Sse.Prefetch0(next + b * prefetchStride + line);
            float* xb = x + b * 32;
            var x0 = Vector256.Load(xb);
            var x1 = Vector256.Load(xb + 8);
            var x2 = Vector256.Load(xb + 16);
            var x3 = Vector256.Load(xb + 24);
            Vector256<float> offset = TFormat.Offset(x0 + x1 + x2 + x3);
            int at = b * TFormat.Bytes;
            a0 = BlockTimes<TFormat>(w + at, x0, x1, x2, x3, offset, halves, a0);
            a1 = BlockTimes<TFormat>(w1 + at, x0, x1, x2, x3, offset, halves, a1);
            a2 = BlockTimes<TFormat>(w2 + at, x0, x1, x2, x3, offset, halves, a2);
            a3 = BlockTimes<TFormat>(w3 + at, x0, x1, x2, x3, offset, halves, a3);
        }
        y[0] = Vector256.Sum(a0); y[1] = Vector256.Sum(a1); y[2] = Vector256.Sum(a2); y[3] = Vector256.Sum(a3);
    }

    /// <summary>total + d · (offset + Σ q[i]·x[i]) for one block against x's 32 values in four 8-lane vectors.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe Vector256<float> BlockTimes<TFormat>(byte* block, Vector256<float> x0, Vector256<float> x1, Vector256<float> x2, Vector256<float> x3,
                                                               Vector256<float> offset, float* halves, Vector256<float> total) where TFormat : struct, IBlockFloats
    {
        (Vector256<float> v0, Vector256<float> v1, Vector256<float> v2, Vector256<float> v3) = TFormat.StoredValues8(block);
        Vector256<float> even = Vector256.FusedMultiplyAdd(v2, x2, Vector256.FusedMultiplyAdd(v0, x0, offset));
        Vector256<float> odd = Vector256.FusedMultiplyAdd(v3, x3, v1 * x1); // two chains: FMA latency, not throughput, bounds one
        return Vector256.FusedMultiplyAdd(even + odd, Vector256.Create(HalfTable.ToSingle(halves, ref *block)), total);
    }

    /// <summary>total + d · (offset + Σ q[i]·x[i]) for one Q8_0 or Q4_0 block against x's 32 values in two vectors.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe Vector512<float> BlockTimes<TFormat>(byte* block, Vector512<float> x0, Vector512<float> x1, Vector512<float> offset, float* halves, Vector512<float> total)
        where TFormat : struct, IBlockFloats
    {
        (Vector512<float> lower, Vector512<float> upper) = TFormat.StoredValues(block);
        Vector512<float> sum = Vector512.FusedMultiplyAdd(upper, x1, Vector512.FusedMultiplyAdd(lower, x0, offset));
        return Vector512.FusedMultiplyAdd(sum, Vector512.Create(HalfTable.ToSingle(halves, ref *block)), total);
    }

    /// <summary>Q8_0/Q4_0 blocks → float32 with AVX-512: the block's 32 values widened, converted and scaled in registers.</summary>
    private static void DequantizeRowWide(GgmlType type, byte* w, int blocks, float* y)
    {
        if (type == GgmlType.Q8_0) DequantizeRowWide<Q8_0Floats>(w, blocks, y);
        else DequantizeRowWide<Q4_0Floats>(w, blocks, y);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void DequantizeRowWide<TFormat>(byte* w, int blocks, float* y) where TFormat : struct, IBlockFloats
    {
        float* halves = HalfTable.Pointer;
        for (int b = 0; b < blocks; b++)
        {
            byte* block = w + b * TFormat.Bytes;
            (Vector512<float> lower, Vector512<float> upper) = TFormat.StoredValues(block);
            var d = Vector512.Create(HalfTable.ToSingle(halves, ref *block));
            Vector512<float> shift = TFormat.ScaledOffset(d); // d·(n − 8) = d·n − 8d, rounded once as the reference's product
            Vector512.FusedMultiplyAdd(lower, d, shift).Store(y + b * 32);
            Vector512.FusedMultiplyAdd(upper, d, shift).Store(y + b * 32 + 16);
        }
    }

    /// <summary>How the float kernels read one block format; a struct per format so each loop is compiled for it.</summary>
    private interface IBlockFloats
    {
        static abstract int Bytes { get; }

        /// <summary>A block's 32 stored integers as floats in order, 16 per vector, each half one widening load (AVX-512).</summary>
        static abstract (Vector512<float> Lower, Vector512<float> Upper) StoredValues(byte* block);

        /// <summary>The same in four 8-lane vectors (AVX2).</summary>
        static abstract (Vector256<float>, Vector256<float>, Vector256<float>, Vector256<float>) StoredValues8(byte* block);

        /// <summary>The 8-lane offset term from the lane sums of x's four vectors.</summary>
        static abstract Vector256<float> Offset(Vector256<float> xSum);

        /// <summary>
        /// The term that re-centres the stored integers in a dot with x, shared by every row: lanes
        /// summing to −zero·Σ x, as Σ (n − zero)·x = Σ n·x − zero·Σ x.
        /// </summary>
        static abstract Vector512<float> Offset(Vector512<float> x0, Vector512<float> x1);

        /// <summary>−zero·d, added to d·n to dequantize.</summary>
        static abstract Vector512<float> ScaledOffset(Vector512<float> d);

        /// <summary>The same in 8 lanes (AVX2).</summary>
        static abstract Vector256<float> ScaledOffset(Vector256<float> d);
    }

    /// <summary>
    /// Q4_0: nibbles as stored (0…15; low nibbles are values 0…15, high nibbles 16…31) with zero point 8.
    /// Each stored byte widened to a 32-bit lane (vpmovzxbd) gives the low nibble by a mask and the high
    /// one by a shift, so no shuffle splits a 256-bit register: 9 operations per block and row where
    /// re-centring bytes first took 15 (four-row decode 1.3–1.45× faster on one thread).
    /// </summary>
    private readonly struct Q4_0Floats : IBlockFloats
    {
        public static int Bytes => 18;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static (Vector512<float> Lower, Vector512<float> Upper) StoredValues(byte* block)
        {
            Vector512<int> bytes = System.Runtime.Intrinsics.X86.Avx512F.ConvertToVector512Int32(Vector128.Load(block + 2));
            return (Vector512.ConvertToSingle(bytes & Vector512.Create(0x0F)), Vector512.ConvertToSingle(Vector512.ShiftRightLogical(bytes, 4)));
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> Offset(Vector512<float> x0, Vector512<float> x1) => (x0 + x1) * Vector512.Create(-8f);

        /// <summary>Bytes 0…7 hold values 0…7 (low nibbles) and 16…23 (high); bytes 8…15 values 8…15 and 24…31.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static (Vector256<float>, Vector256<float>, Vector256<float>, Vector256<float>) StoredValues8(byte* block)
        {
            Vector256<int> first = System.Runtime.Intrinsics.X86.Avx2.ConvertToVector256Int32(block + 2);
            Vector256<int> second = System.Runtime.Intrinsics.X86.Avx2.ConvertToVector256Int32(block + 10);
            var low = Vector256.Create(0x0F);
            return (Vector256.ConvertToSingle(first & low), Vector256.ConvertToSingle(second & low),
                    Vector256.ConvertToSingle(Vector256.ShiftRightLogical(first, 4)), Vector256.ConvertToSingle(Vector256.ShiftRightLogical(second, 4)));
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<float> Offset(Vector256<float> xSum) => xSum * Vector256.Create(-8f);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> ScaledOffset(Vector512<float> d) => d * Vector512.Create(-8f);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<float> ScaledOffset(Vector256<float> d) => d * Vector256.Create(-8f);
    }

    /// <summary>Q8_0: 32 signed bytes, two sign-extending loads (vpmovsxbd).</summary>
    private readonly struct Q8_0Floats : IBlockFloats
    {
        public static int Bytes => 34;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static (Vector512<float> Lower, Vector512<float> Upper) StoredValues(byte* block) =>
            (Vector512.ConvertToSingle(System.Runtime.Intrinsics.X86.Avx512F.ConvertToVector512Int32(Vector128.Load((sbyte*)block + 2))),
             Vector512.ConvertToSingle(System.Runtime.Intrinsics.X86.Avx512F.ConvertToVector512Int32(Vector128.Load((sbyte*)block + 18))));

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> Offset(Vector512<float> x0, Vector512<float> x1) => Vector512<float>.Zero;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static (Vector256<float>, Vector256<float>, Vector256<float>, Vector256<float>) StoredValues8(byte* block) =>
            (Vector256.ConvertToSingle(System.Runtime.Intrinsics.X86.Avx2.ConvertToVector256Int32((sbyte*)block + 2)),
             Vector256.ConvertToSingle(System.Runtime.Intrinsics.X86.Avx2.ConvertToVector256Int32((sbyte*)block + 10)),
             Vector256.ConvertToSingle(System.Runtime.Intrinsics.X86.Avx2.ConvertToVector256Int32((sbyte*)block + 18)),
             Vector256.ConvertToSingle(System.Runtime.Intrinsics.X86.Avx2.ConvertToVector256Int32((sbyte*)block + 26)));

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<float> Offset(Vector256<float> xSum) => Vector256<float>.Zero;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> ScaledOffset(Vector512<float> d) => Vector512<float>.Zero;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<float> ScaledOffset(Vector256<float> d) => Vector256<float>.Zero;
    }

    public static void DequantizeBlock(GgmlType type, ReadOnlySpan<byte> block, Span<float> y)
    {
        switch (type)
        {
            case GgmlType.Q8_0: DequantizeQ8_0(block, y); break;
            case GgmlType.Q4_0: DequantizeQ4_0(block, y); break;
            case GgmlType.Q4_K: DequantizeQ4_K(block, y); break;
            case GgmlType.Q6_K: DequantizeQ6_K(block, y); break;
            case GgmlType.Q4_1: DequantizeQ4_1(block, y); break;
            case GgmlType.Q5_0: DequantizeQ5_0(block, y); break;
            case GgmlType.Q5_1: DequantizeQ5_1(block, y); break;
            case GgmlType.IQ4_NL: DequantizeIQ4_NL(block, y); break;
            case GgmlType.Q2_K: DequantizeQ2_K(block, y); break;
            case GgmlType.Q3_K: DequantizeQ3_K(block, y); break;
            case GgmlType.Q5_K: DequantizeQ5_K(block, y); break;
            case GgmlType.IQ4_XS: DequantizeIQ4_XS(block, y); break;
            default: throw new NotSupportedException($"{type} blocks cannot be dequantized yet; supported: {SupportedNames}");
        }
    }

    /// <summary>The quantized types this engine computes with, for messages.</summary>
    public const string SupportedNames = "Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS";

    /// <summary>IQ4_NL and IQ4_XS: the 16 values a nibble stands for (ggml's <c>kvalues_iq4nl</c>, a non-uniform grid).</summary>
    public static ReadOnlySpan<sbyte> IQ4Values => [-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113];

    /// <summary>Q4_1: f16 scale d, f16 minimum m, 16 bytes of nibbles (low nibbles first); value = d·nibble + m.</summary>
    private static void DequantizeQ4_1(ReadOnlySpan<byte> block, Span<float> y)
    {
        float d = Half2Float(block), m = Half2Float(block[2..]);
        ReadOnlySpan<byte> qs = block.Slice(4, 16);
        for (int j = 0; j < 16; j++)
        {
            y[j] = d * (qs[j] & 0x0F) + m;
            y[j + 16] = d * (qs[j] >> 4) + m;
        }
    }

    /// <summary>Q5_0: f16 d, a 32-bit word of fifth bits (bit j for value j), 16 bytes of nibbles; value = d·(q − 16).</summary>
    private static void DequantizeQ5_0(ReadOnlySpan<byte> block, Span<float> y)
    {
        float d = Half2Float(block);
        uint qh = BinaryPrimitives.ReadUInt32LittleEndian(block[2..]);
        ReadOnlySpan<byte> qs = block.Slice(6, 16);
        for (int j = 0; j < 16; j++)
        {
            y[j] = d * ((qs[j] & 0x0F | (int)((qh >> j) & 1) << 4) - 16);
            y[j + 16] = d * ((qs[j] >> 4 | (int)((qh >> (j + 16)) & 1) << 4) - 16);
        }
    }

    /// <summary>Q5_1: f16 d, f16 m, the fifth bits as Q5_0, 16 bytes of nibbles; value = d·q + m.</summary>
    private static void DequantizeQ5_1(ReadOnlySpan<byte> block, Span<float> y)
    {
        float d = Half2Float(block), m = Half2Float(block[2..]);
        uint qh = BinaryPrimitives.ReadUInt32LittleEndian(block[4..]);
        ReadOnlySpan<byte> qs = block.Slice(8, 16);
        for (int j = 0; j < 16; j++)
        {
            y[j] = d * (qs[j] & 0x0F | (int)((qh >> j) & 1) << 4) + m;
            y[j + 16] = d * (qs[j] >> 4 | (int)((qh >> (j + 16)) & 1) << 4) + m;
        }
    }

    /// <summary>IQ4_NL: f16 d, 16 bytes of nibbles, each an index into <see cref="IQ4Values"/>; value = d·IQ4Values[nibble].</summary>
    private static void DequantizeIQ4_NL(ReadOnlySpan<byte> block, Span<float> y)
    {
        float d = Half2Float(block);
        ReadOnlySpan<byte> qs = block.Slice(2, 16);
        for (int j = 0; j < 16; j++)
        {
            y[j] = d * IQ4Values[qs[j] & 0x0F];
            y[j + 16] = d * IQ4Values[qs[j] >> 4];
        }
    }

    /// <summary>
    /// Q2_K: super-block of 256 as 16 sub-blocks of 16. 16 bytes of 4-bit scale (low) and min (high),
    /// 64 bytes of 2-bit values (each half of 128 values: four bit planes over 32 bytes), f16 d and dmin;
    /// value = d·scale·q − dmin·min.
    /// </summary>
    private static void DequantizeQ2_K(ReadOnlySpan<byte> block, Span<float> y)
    {
        float d = Half2Float(block[80..]), dmin = Half2Float(block[82..]);
        for (int half = 0; half < 2; half++)
        {
            ReadOnlySpan<byte> q = block.Slice(16 + half * 32, 32);
            for (int plane = 0; plane < 4; plane++)
                for (int part = 0; part < 2; part++)
                {
                    byte scale = block[half * 8 + plane * 2 + part];
                    float dl = d * (scale & 0x0F), ml = dmin * (scale >> 4);
                    Span<float> yp = y.Slice(half * 128 + plane * 32 + part * 16, 16);
                    for (int l = 0; l < 16; l++) yp[l] = dl * ((q[part * 16 + l] >> (2 * plane)) & 3) - ml;
                }
        }
    }

    /// <summary>
    /// Q3_K: super-block of 256 as 16 sub-blocks of 16. 32 bytes of high bits (bit 4·half + plane of byte l),
    /// 64 bytes of 2-bit values laid out as Q2_K's, 16 6-bit scales packed in 12 bytes, f16 d;
    /// value = d·(scale − 32)·(q − (high bit ? 0 : 4)).
    /// </summary>
    private static void DequantizeQ3_K(ReadOnlySpan<byte> block, Span<float> y)
    {
        float d = Half2Float(block[108..]);
        Span<int> scales = stackalloc int[16];
        ScalesQ3_K(block.Slice(96, 12), scales);
        ReadOnlySpan<byte> hmask = block[..32];
        for (int half = 0; half < 2; half++)
        {
            ReadOnlySpan<byte> q = block.Slice(32 + half * 32, 32);
            for (int plane = 0; plane < 4; plane++)
            {
                int bit = 4 * half + plane;
                for (int part = 0; part < 2; part++)
                {
                    float dl = d * scales[half * 8 + plane * 2 + part];
                    Span<float> yp = y.Slice(half * 128 + plane * 32 + part * 16, 16);
                    for (int l = 0; l < 16; l++)
                    {
                        int k = part * 16 + l;
                        yp[l] = dl * (((q[k] >> (2 * plane)) & 3) - (((hmask[k] >> bit) & 1) != 0 ? 0 : 4));
                    }
                }
            }
        }
    }

    /// <summary>The 16 scales of a Q3_K super-block minus 32: low nibbles in bytes 0–7, high bit pairs in bytes 8–11.</summary>
    public static void ScalesQ3_K(ReadOnlySpan<byte> packed, Span<int> scales)
    {
        for (int s = 0; s < 16; s++)
        {
            int low = s < 8 ? packed[s] & 0x0F : packed[s - 8] >> 4;
            int high = (packed[8 + s % 4] >> (2 * (s / 4))) & 3;
            scales[s] = (low | high << 4) - 32;
        }
    }

    /// <summary>
    /// Q5_K: super-block of 256 as 8 sub-blocks of 32. f16 d and dmin, 12 bytes of 6-bit scales and minimums
    /// (as Q4_K), 32 bytes of fifth bits (bit j of byte l for sub-block j), 128 bytes of nibbles as Q4_K;
    /// value = d·scale·q − dmin·min.
    /// </summary>
    private static void DequantizeQ5_K(ReadOnlySpan<byte> block, Span<float> y)
    {
        float d = Half2Float(block), dmin = Half2Float(block[2..]);
        ReadOnlySpan<byte> scales = block.Slice(4, 12);
        ReadOnlySpan<byte> qh = block.Slice(16, 32);
        ReadOnlySpan<byte> q = block.Slice(48, 128);
        for (int group = 0; group < 4; group++)
        {
            ScaleMinK4(2 * group, scales, out int sc1, out int m1);
            ScaleMinK4(2 * group + 1, scales, out int sc2, out int m2);
            float d1 = d * sc1, min1 = dmin * m1, d2 = d * sc2, min2 = dmin * m2;
            ReadOnlySpan<byte> qg = q.Slice(group * 32, 32);
            Span<float> yg = y.Slice(group * 64, 64);
            for (int l = 0; l < 32; l++)
            {
                yg[l] = d1 * ((qg[l] & 0x0F) + 16 * ((qh[l] >> (2 * group)) & 1)) - min1;
                yg[l + 32] = d2 * ((qg[l] >> 4) + 16 * ((qh[l] >> (2 * group + 1)) & 1)) - min2;
            }
        }
    }

    /// <summary>
    /// IQ4_XS: super-block of 256 as 8 sub-blocks of 32. f16 d, 6-bit scales (high pairs in a 16-bit word,
    /// low nibbles in 4 bytes), 128 bytes of nibbles (16 per sub-block, as IQ4_NL); value = d·(scale − 32)·IQ4Values[nibble].
    /// </summary>
    private static void DequantizeIQ4_XS(ReadOnlySpan<byte> block, Span<float> y)
    {
        float d = Half2Float(block);
        int scalesHigh = BinaryPrimitives.ReadUInt16LittleEndian(block[2..]);
        for (int sub = 0; sub < 8; sub++)
        {
            int ls = ((block[4 + sub / 2] >> (4 * (sub % 2))) & 0x0F) | (((scalesHigh >> (2 * sub)) & 3) << 4);
            float dl = d * (ls - 32);
            ReadOnlySpan<byte> qs = block.Slice(8 + sub * 16, 16);
            Span<float> ys = y.Slice(sub * 32, 32);
            for (int j = 0; j < 16; j++)
            {
                ys[j] = dl * IQ4Values[qs[j] & 0x0F];
                ys[j + 16] = dl * IQ4Values[qs[j] >> 4];
            }
        }
    }

    /// <summary>Q8_0: f16 scale d, then 32 signed bytes q; value = d·q.</summary>
    private static void DequantizeQ8_0(ReadOnlySpan<byte> block, Span<float> y)
    {
        float d = Half2Float(block);
        ReadOnlySpan<sbyte> q = MemoryMarshal.Cast<byte, sbyte>(block.Slice(2, QK8_0));
        for (int i = 0; i < QK8_0; i++) y[i] = d * q[i];
    }

    /// <summary>Σ q[i]·x[i] for 32 signed bytes, widened to float in registers.</summary>
    private static float DotQ8(ReadOnlySpan<byte> quants, ReadOnlySpan<float> x)
    {
        if (Vector256.IsHardwareAccelerated)
        {
            Vector256<sbyte> q = Vector256.Create(MemoryMarshal.Cast<byte, sbyte>(quants[..32]));
            (Vector256<short> lo, Vector256<short> hi) = Vector256.Widen(q);
            (Vector256<int> a, Vector256<int> b) = Vector256.Widen(lo);
            (Vector256<int> c, Vector256<int> d) = Vector256.Widen(hi);
            Vector256<float> acc = Vector256.ConvertToSingle(a) * Vector256.Create(x[..8]);
            acc += Vector256.ConvertToSingle(b) * Vector256.Create(x.Slice(8, 8));
            acc += Vector256.ConvertToSingle(c) * Vector256.Create(x.Slice(16, 8));
            acc += Vector256.ConvertToSingle(d) * Vector256.Create(x.Slice(24, 8));
            return Vector256.Sum(acc);
        }
        float sum = 0;
        for (int i = 0; i < 32; i++) sum += (sbyte)quants[i] * x[i];
        return sum;
    }

    /// <summary>Q4_0: f16 scale d, then 16 bytes holding 32 nibbles (low nibbles first); value = d·(nibble − 8).</summary>
    private static void DequantizeQ4_0(ReadOnlySpan<byte> block, Span<float> y)
    {
        float d = Half2Float(block);
        ReadOnlySpan<byte> qs = block.Slice(2, 16);
        for (int j = 0; j < 16; j++)
        {
            y[j] = d * ((qs[j] & 0x0F) - 8);
            y[j + 16] = d * ((qs[j] >> 4) - 8);
        }
    }

    /// <summary>
    /// Q4_K: super-block of 256 as 8 sub-blocks of 32. f16 d and dmin, 12 bytes of 6-bit scales
    /// and minimums, 128 bytes of nibbles; value = d·scale·nibble − dmin·min.
    /// </summary>
    private static void DequantizeQ4_K(ReadOnlySpan<byte> block, Span<float> y)
    {
        float d = Half2Float(block), dmin = Half2Float(block[2..]);
        ReadOnlySpan<byte> scales = block.Slice(4, 12);
        ReadOnlySpan<byte> q = block.Slice(16, 128);
        for (int group = 0; group < 4; group++)
        {
            ScaleMinK4(2 * group, scales, out int sc1, out int m1);
            ScaleMinK4(2 * group + 1, scales, out int sc2, out int m2);
            float d1 = d * sc1, min1 = dmin * m1, d2 = d * sc2, min2 = dmin * m2;
            ReadOnlySpan<byte> qg = q.Slice(group * 32, 32);
            Span<float> yg = y.Slice(group * 64, 64);
            for (int l = 0; l < 32; l++)
            {
                yg[l] = d1 * (qg[l] & 0x0F) - min1;
                yg[l + 32] = d2 * (qg[l] >> 4) - min2;
            }
        }
    }

    /// <summary>The 6-bit scale and minimum of sub-block j of a Q4_K (or Q5_K) super-block.</summary>
    public static void ScaleMinK4(int j, ReadOnlySpan<byte> q, out int scale, out int min)
    {
        if (j < 4)
        {
            scale = q[j] & 63;
            min = q[j + 4] & 63;
        }
        else
        {
            scale = (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4);
            min = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
        }
    }

    /// <summary>
    /// Q6_K: super-block of 256 as 16 sub-blocks of 16. 128 bytes of low nibbles, 64 bytes of
    /// high 2-bit pairs, 16 signed 8-bit scales, f16 d; value = d·scale·(q − 32).
    /// </summary>
    private static void DequantizeQ6_K(ReadOnlySpan<byte> block, Span<float> y)
    {
        ReadOnlySpan<byte> ql = block[..128];
        ReadOnlySpan<byte> qh = block.Slice(128, 64);
        ReadOnlySpan<sbyte> sc = MemoryMarshal.Cast<byte, sbyte>(block.Slice(192, 16));
        float d = Half2Float(block[208..]);
        for (int half = 0; half < 2; half++)
        {
            ReadOnlySpan<byte> l6 = ql.Slice(half * 64, 64);
            ReadOnlySpan<byte> h2 = qh.Slice(half * 32, 32);
            ReadOnlySpan<sbyte> s = sc.Slice(half * 8, 8);
            Span<float> yh = y.Slice(half * 128, 128);
            for (int l = 0; l < 32; l++)
            {
                int isub = l / 16;
                int q1 = ((l6[l] & 0x0F) | (((h2[l] >> 0) & 3) << 4)) - 32;
                int q2 = ((l6[l + 32] & 0x0F) | (((h2[l] >> 2) & 3) << 4)) - 32;
                int q3 = ((l6[l] >> 4) | (((h2[l] >> 4) & 3) << 4)) - 32;
                int q4 = ((l6[l + 32] >> 4) | (((h2[l] >> 6) & 3) << 4)) - 32;
                yh[l] = d * s[isub] * q1;
                yh[l + 32] = d * s[isub + 2] * q2;
                yh[l + 64] = d * s[isub + 4] * q3;
                yh[l + 96] = d * s[isub + 6] * q4;
            }
        }
    }

    private static float Half2Float(ReadOnlySpan<byte> bytes) => (float)BinaryPrimitives.ReadHalfLittleEndian(bytes);
}
