using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using NextToken.Tensors;

namespace NextToken.Kernels;

/// <summary>
/// ggml's fast path for quantized weights: the activation row is itself quantized to 8-bit blocks
/// of 32 (one scale each) once per matmul, and each weight block meets it in an integer dot
/// product — <c>vpdpbusd</c> (AVX-VNNI) where the CPU has it, else <c>vpmaddubsw</c> + <c>vpmaddwd</c>.
/// This is an approximation of the exact product — the activation loses about 1/254 of each
/// block's range — so it is opt-in.
/// </summary>
/// <remarks>
/// The integer instructions multiply unsigned by signed bytes. Q4_0 nibbles are already unsigned
/// (0..15, stored value = nibble − 8), so Σ(n−8)·x is computed as Σn·x − 8·Σx with Σx of each
/// activation block known from quantizing it; Q8_0 weights are signed and use |w| · (x with w's sign).
/// </remarks>
public static unsafe class QuantizedActivations
{
    public static bool IsSupported(GgmlType type) => Avx2.IsSupported && type is GgmlType.Q8_0 or GgmlType.Q4_0;

    /// <summary>
    /// x → 8-bit blocks: <paramref name="quants"/> [n], <paramref name="scales"/> [n / 32] and
    /// <paramref name="sums"/> [n / 32], the sum of each block's quants.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Quantize(ReadOnlySpan<float> x, Span<sbyte> quants, Span<float> scales, Span<int> sums)
    {
        int blocks = x.Length / 32;
        if (quants.Length < blocks * 32 || scales.Length < blocks || sums.Length < blocks)
            throw new ArgumentException($"{blocks} blocks need {blocks * 32} quants and {blocks} scales and sums");
        for (int b = 0; b < blocks; b++)
        {
            ReadOnlySpan<float> block = x.Slice(b * 32, 32);
            float amax = System.Numerics.Tensors.TensorPrimitives.MaxMagnitude(block);
            // As ggml's block_q8_0: the quants use 127/max in float, the products the scale rounded to
            // float16 (the block stores it as half), so the logits match llama.cpp's, not just its error size.
            float max = Math.Abs(amax), id = max != 0 ? 127f / max : 0;
            scales[b] = (float)(Half)(max / 127);
            if (Vector256.IsHardwareAccelerated)
            {
                // Round half to even, as MathF.Round below; |x·id| ≤ 127 so the narrowing never saturates.
                var scale = Vector256.Create(id);
                Vector256<int> q0 = Vector256.ConvertToInt32(Vector256.Round(Vector256.Create(block[..8]) * scale));
                Vector256<int> q1 = Vector256.ConvertToInt32(Vector256.Round(Vector256.Create(block.Slice(8, 8)) * scale));
                Vector256<int> q2 = Vector256.ConvertToInt32(Vector256.Round(Vector256.Create(block.Slice(16, 8)) * scale));
                Vector256<int> q3 = Vector256.ConvertToInt32(Vector256.Round(Vector256.Create(block.Slice(24, 8)) * scale));
                sums[b] = Vector256.Sum(q0 + q1 + q2 + q3);
                // Narrow keeps element order across the two halves: (q0, q1) → 16 shorts, then 32 bytes.
                Vector256.Narrow(Vector256.Narrow(q0, q1), Vector256.Narrow(q2, q3)).CopyTo(quants.Slice(b * 32, 32));
                continue;
            }
            int sum = 0;
            for (int i = 0; i < 32; i++)
            {
                sbyte q = (sbyte)MathF.Round(block[i] * id);
                quants[b * 32 + i] = q;
                sum += q;
            }
            sums[b] = sum;
        }
    }

    /// <summary>Σ over blocks of d_w·d_x·(q_w · q_x) for one stored row against a quantized activation.</summary>
    public static float Dot(GgmlType type, ReadOnlySpan<byte> row, ReadOnlySpan<sbyte> quants, ReadOnlySpan<float> scales, ReadOnlySpan<int> sums)
    {
        if (type is not (GgmlType.Q8_0 or GgmlType.Q4_0))
            throw new NotSupportedException($"quantized activations meet Q8_0 or Q4_0 rows, not {type}");
        if (quants.Length % 32 != 0 || row.Length < RowBytes(type, quants.Length) || scales.Length < quants.Length / 32 || sums.Length < quants.Length / 32)
            throw new ArgumentException($"a {type} row of {quants.Length} values needs a multiple of 32 values, {RowBytes(type, quants.Length)} bytes and {quants.Length / 32} scales and sums");
        if (!Avx2.IsSupported) return PortableDot(type, row, quants, scales);
        fixed (byte* w = row)
        fixed (sbyte* q = quants)
        fixed (float* d = scales)
        fixed (int* s = sums)
            return Dot(type, w, q, d, s, quants.Length / 32);
    }

    /// <summary>The same integer products one at a time, for CPUs without AVX2.</summary>
    private static float PortableDot(GgmlType type, ReadOnlySpan<byte> row, ReadOnlySpan<sbyte> quants, ReadOnlySpan<float> scales)
    {
        int blockBytes = BlockBytes(type);
        float total = 0;
        for (int b = 0; b < quants.Length / 32; b++)
        {
            ReadOnlySpan<byte> block = row.Slice(b * blockBytes, blockBytes);
            int sum = 0;
            for (int i = 0; i < 32; i++)
            {
                int w = type == GgmlType.Q8_0 ? (sbyte)block[2 + i] : (i < 16 ? block[2 + i] & 0x0F : block[2 + i - 16] >> 4) - 8;
                sum += w * quants[b * 32 + i];
            }
            total += (float)BitConverter.UInt16BitsToHalf((ushort)(block[0] | block[1] << 8)) * scales[b] * sum;
        }
        return total;
    }

    /// <summary>
    /// Four consecutive stored rows (<paramref name="rowBytes"/> apart) against one quantized
    /// activation: each activation block is loaded once for the four rows, and the next four rows
    /// are prefetched while these compute (the hardware prefetcher stops at the 4 KB pages of the
    /// mapped file). Writes y[0..3].
    /// </summary>
    internal static void Dot4(GgmlType type, byte* w, long rowBytes, sbyte* quants, float* scales, int* sums, int blocks, float* y)
    {
        if (type == GgmlType.Q4_0) Dot4<Q4_0Format>(w, rowBytes, quants, scales, sums, blocks, y);
        else Dot4<Q8_0Format>(w, rowBytes, quants, scales, sums, blocks, y);
    }

    /// <summary>The Q4_0 four-row kernel as it was before the broadcasting unpack, kept as the benchmarks' baseline.</summary>
    internal static void Dot4Q4_0Previous(byte* w, long rowBytes, sbyte* quants, float* scales, int* sums, int blocks, float* y) =>
        Dot4<Q4_0FormatPrevious>(w, rowBytes, quants, scales, sums, blocks, y);

    /// <summary>One stored row against one quantized activation of <paramref name="blocks"/> blocks.</summary>
    internal static float Dot(GgmlType type, byte* row, sbyte* quants, float* scales, int* sums, int blocks) =>
        type == GgmlType.Q4_0 ? Dot<Q4_0Format>(row, quants, scales, sums, blocks) : Dot<Q8_0Format>(row, quants, scales, sums, blocks);

    internal static long RowBytes(GgmlType type, int n) => n / 32 * (long)BlockBytes(type);

    private static int BlockBytes(GgmlType type) => type == GgmlType.Q4_0 ? Q4_0Format.Bytes : Q8_0Format.Bytes;

    // The block formats as type arguments, so the JIT compiles one specialized loop per format.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Dot4<TFormat>(byte* w, long rowBytes, sbyte* quants, float* scales, int* sums, int blocks, float* y) where TFormat : struct, IBlockFormat
    {
        float* halves = HalfTable.Pointer;
        // Per block step, whole cache lines covering at least the next four rows' bytes (72 or 136):
        // rounding up runs the prefetches ahead of the rows they serve.
        const int Line = 64;
        int prefetchStride = (4 * TFormat.Bytes + Line - 1) & ~(Line - 1);
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        byte* w1 = w + rowBytes, w2 = w + 2 * rowBytes, w3 = w + 3 * rowBytes, next = w + 4 * rowBytes;
        for (int b = 0; b < blocks; b++)
        {
            for (int line = 0; line < prefetchStride; line += Line) Sse.Prefetch0(next + b * prefetchStride + line);
            Vector256<sbyte> x = Vector256.Load(quants + b * 32);
            int at = b * TFormat.Bytes, sum = sums[b];
            float dx = scales[b];
            a0 = TFormat.Multiply(w + at, x, sum, dx, halves, a0);
            a1 = TFormat.Multiply(w1 + at, x, sum, dx, halves, a1);
            a2 = TFormat.Multiply(w2 + at, x, sum, dx, halves, a2);
            a3 = TFormat.Multiply(w3 + at, x, sum, dx, halves, a3);
        }
        y[0] = Vector256.Sum(a0); y[1] = Vector256.Sum(a1); y[2] = Vector256.Sum(a2); y[3] = Vector256.Sum(a3);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float Dot<TFormat>(byte* row, sbyte* quants, float* scales, int* sums, int blocks) where TFormat : struct, IBlockFormat
    {
        float* halves = HalfTable.Pointer;
        Vector256<float> total = Vector256<float>.Zero;
        for (int b = 0; b < blocks; b++)
            total = TFormat.Multiply(row + b * TFormat.Bytes, Vector256.Load(quants + b * 32), sums[b], scales[b], halves, total);
        return Vector256.Sum(total);
    }

    /// <summary>A stored block format: its size, and one block against one activation block (quants, the sum of the quants, scale).</summary>
    private interface IBlockFormat
    {
        static abstract int Bytes { get; }
        static abstract Vector256<float> Multiply(byte* block, Vector256<sbyte> x, int sum, float dx, float* halves, Vector256<float> total);
    }

    private readonly struct Q4_0Format : IBlockFormat
    {
        public static int Bytes => 18;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<float> Multiply(byte* block, Vector256<sbyte> x, int sum, float dx, float* halves, Vector256<float> total) =>
            Q4_0Block(block, x, Vector256.CreateScalarUnsafe(-8 * sum), dx, halves, total);
    }

    private readonly struct Q4_0FormatPrevious : IBlockFormat
    {
        public static int Bytes => 18;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<float> Multiply(byte* block, Vector256<sbyte> x, int sum, float dx, float* halves, Vector256<float> total)
        {
            Vector128<byte> packed = Vector128.Load(block + 2);
            Vector256<byte> nibbles = Vector256.Create(packed & Vector128.Create((byte)0x0F), Vector128.ShiftRightLogical(packed, 4));
            Vector256<int> products = UnsignedTimesSigned(Vector256.CreateScalarUnsafe(-8 * sum), nibbles, x);
            return Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(products), Vector256.Create(HalfTable.ToSingle(halves, ref *block) * dx), total);
        }
    }

    private readonly struct Q8_0Format : IBlockFormat
    {
        public static int Bytes => 34;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<float> Multiply(byte* block, Vector256<sbyte> x, int sum, float dx, float* halves, Vector256<float> total) =>
            Q8_0Block(block, x, dx, halves, total);
    }

    /// <summary>total + d_w·d_x·(Σ nibble·x − 8·Σx) for one Q4_0 block (f16 d, 16 bytes of nibbles, low nibbles first).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<float> Q4_0Block(byte* block, Vector256<sbyte> x, Vector256<int> correction, float dx, float* halves, Vector256<float> total)
    {
        // The 16 stored bytes in both halves (a broadcasting load, no shuffle), shifted by 0 and 4
        // bits per half: low nibbles then high ones after one mask — 2 operations where splitting
        // the halves and joining them took 4 (one of them a cross-lane insert).
        Vector256<uint> both = Avx2.BroadcastVector128ToVector256((uint*)(block + 2));
        Vector256<byte> nibbles = Avx2.ShiftRightLogicalVariable(both, Vector256.Create(0u, 0, 0, 0, 4, 4, 4, 4)).AsByte() & Vector256.Create((byte)0x0F);
        Vector256<int> sums = UnsignedTimesSigned(correction, nibbles, x);
        return Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(sums), Vector256.Create(HalfTable.ToSingle(halves, ref *block) * dx), total);
    }

    /// <summary>total + d_w·d_x·Σ w·x for one Q8_0 block (f16 d, 32 signed bytes).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<float> Q8_0Block(byte* block, Vector256<sbyte> x, float dx, float* halves, Vector256<float> total)
    {
        Vector256<sbyte> w = Vector256.Load((sbyte*)(block + 2));
        // |w| as unsigned times x carrying w's sign: the product of signs stays right.
        Vector256<int> sums = UnsignedTimesSigned(Vector256<int>.Zero, Avx2.Abs(w), Avx2.Sign(x, w));
        return Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(sums), Vector256.Create(HalfTable.ToSingle(halves, ref *block) * dx), total);
    }

    /// <summary>accumulator + sums of each four adjacent u8·s8 products, in 8 int32 lanes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<int> UnsignedTimesSigned(Vector256<int> accumulator, Vector256<byte> u, Vector256<sbyte> s)
    {
        if (AvxVnni.IsSupported) return AvxVnni.MultiplyWideningAndAdd(accumulator, u, s);
        // vpmaddubsw saturates at ±32767: safe here because one factor is at most 15 or the pair
        // is |w|·x with |w|, |x| ≤ 127 (2·127·127 = 32258).
        Vector256<short> pairs = Avx2.MultiplyAddAdjacent(u, s);
        return accumulator + Avx2.MultiplyAddAdjacent(pairs, Vector256.Create((short)1));
    }
}
