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
/// The other block-32 types as ggml decodes them: Q5_0 likewise with q = nibble | fifth bit·16 (Σq·x − 16·Σx);
/// Q4_1 and Q5_1 multiply their unsigned q and add m·d_x·Σq_x (ggml's q8_1 activation carries that sum);
/// IQ4_NL and IQ4_XS look their grid up by vpshufb (IQ4_XS on the 32-value sub-blocks of its super-blocks,
/// each with its 6-bit scale). The integer sums equal the scalar reference's exactly: nothing saturates
/// (the bounds are at <see cref="UnsignedTimesSigned"/> and <see cref="IQ4Products"/>).
/// </remarks>
public static unsafe class QuantizedActivations
{
    /// <summary>The weight types with integer kernels here (all need AVX2; AVX-VNNI is used where present).</summary>
    public static bool IsSupported(GgmlType type) => Avx2.IsSupported && Handles(type);

    private static bool Handles(GgmlType type) =>
        type is GgmlType.Q8_0 or GgmlType.Q4_0 or GgmlType.Q4_1 or GgmlType.Q5_0 or GgmlType.Q5_1 or GgmlType.IQ4_NL or GgmlType.IQ4_XS;

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

    /// <summary>Σ over blocks of d_w·d_x·(q_w · q_x) (+ m_w·d_x·Σq_x for Q4_1/Q5_1) for one stored row against a quantized activation.</summary>
    public static float Dot(GgmlType type, ReadOnlySpan<byte> row, ReadOnlySpan<sbyte> quants, ReadOnlySpan<float> scales, ReadOnlySpan<int> sums)
    {
        if (!Handles(type))
            throw new NotSupportedException($"quantized activations meet Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL or IQ4_XS rows, not {type}");
        int block = type == GgmlType.IQ4_XS ? 256 : 32;
        if (quants.Length % block != 0 || row.Length < RowBytes(type, quants.Length) || scales.Length < quants.Length / 32 || sums.Length < quants.Length / 32)
            throw new ArgumentException($"a {type} row of {quants.Length} values needs a multiple of {block} values, {RowBytes(type, quants.Length)} bytes and {quants.Length / 32} scales and sums");
        if (!Avx2.IsSupported) return ReferenceDot(type, row, quants, scales, sums);
        fixed (byte* w = row)
        fixed (sbyte* q = quants)
        fixed (float* d = scales)
        fixed (int* s = sums)
            return Dot(type, w, q, d, s, quants.Length / 32);
    }

    /// <summary>
    /// The scalar reference (and the path of CPUs without AVX2): per block of 32 the integer sum of
    /// <see cref="ReferenceBlockSum"/>, times d_w·d_x (IQ4_XS: d·(scale − 32)·d_x), plus m_w·(d_x·Σq_x) for the types with a minimum.
    /// </summary>
    internal static float ReferenceDot(GgmlType type, ReadOnlySpan<byte> row, ReadOnlySpan<sbyte> quants, ReadOnlySpan<float> scales, ReadOnlySpan<int> sums)
    {
        float total = 0;
        for (int b = 0; b < quants.Length / 32; b++)
        {
            int sum = ReferenceBlockSum(type, row, b, quants);
            var (d, m) = ReferenceScales(type, row, b);
            total += d * scales[b] * sum + m * (scales[b] * sums[b]);
        }
        return total;
    }

    /// <summary>Σ w·q_x over activation block <paramref name="b"/> with the weights as ggml's integer quants (Q4_0 n − 8, Q5_0 q − 16, Q4_1/Q5_1 q unsigned, IQ4 the grid values).</summary>
    internal static int ReferenceBlockSum(GgmlType type, ReadOnlySpan<byte> row, int b, ReadOnlySpan<sbyte> quants)
    {
        int sum = 0;
        for (int i = 0; i < 32; i++) sum += ReferenceWeight(type, row, b, i) * quants[b * 32 + i];
        return sum;
    }

    private static int ReferenceWeight(GgmlType type, ReadOnlySpan<byte> row, int b, int i)
    {
        if (type == GgmlType.IQ4_XS)
        {
            ReadOnlySpan<byte> qs = row.Slice(b / 8 * 136 + 8 + b % 8 * 16, 16);
            return Quantized.IQ4Values[i < 16 ? qs[i] & 0x0F : qs[i - 16] >> 4];
        }
        ReadOnlySpan<byte> block = row.Slice(b * BlockBytes(type), BlockBytes(type));
        if (type == GgmlType.Q8_0) return (sbyte)block[2 + i];
        int at = type switch { GgmlType.Q4_1 => 4, GgmlType.Q5_0 => 6, GgmlType.Q5_1 => 8, _ => 2 };
        int nibble = i < 16 ? block[at + i] & 0x0F : block[at + i - 16] >> 4;
        int fifth = type is GgmlType.Q5_0 or GgmlType.Q5_1 ? (int)(BitConverter.ToUInt32(block[(at - 4)..]) >> i & 1) << 4 : 0;
        return type switch
        {
            GgmlType.Q4_0 => nibble - 8,
            GgmlType.Q5_0 => (nibble | fifth) - 16,
            GgmlType.Q4_1 or GgmlType.Q5_1 => nibble | fifth,
            _ => Quantized.IQ4Values[nibble],
        };
    }

    /// <summary>The weight scale of block <paramref name="b"/> (IQ4_XS: d·(scale − 32) of the sub-block) and its minimum (0 without).</summary>
    private static (float D, float M) ReferenceScales(GgmlType type, ReadOnlySpan<byte> row, int b)
    {
        static float Half(ReadOnlySpan<byte> at) => (float)BitConverter.UInt16BitsToHalf((ushort)(at[0] | at[1] << 8));
        if (type == GgmlType.IQ4_XS)
        {
            ReadOnlySpan<byte> super = row.Slice(b / 8 * 136, 136);
            int sub = b % 8, high = super[2] | super[3] << 8;
            int ls = ((super[4 + sub / 2] >> (4 * (sub % 2))) & 0x0F) | (((high >> (2 * sub)) & 3) << 4);
            return (Half(super) * (ls - 32), 0);
        }
        ReadOnlySpan<byte> block = row[(b * BlockBytes(type))..];
        return (Half(block), type is GgmlType.Q4_1 or GgmlType.Q5_1 ? Half(block[2..]) : 0);
    }

    /// <summary>
    /// Four consecutive stored rows (<paramref name="rowBytes"/> apart) against one quantized
    /// activation: each activation block is loaded once for the four rows, and the next four rows
    /// are prefetched while these compute (the hardware prefetcher stops at the 4 KB pages of the
    /// mapped file). Writes y[0..3].
    /// </summary>
    internal static void Dot4(GgmlType type, byte* w, long rowBytes, sbyte* quants, float* scales, int* sums, int blocks, float* y)
    {
        switch (type)
        {
            case GgmlType.Q4_0: Dot4<Q4_0Format>(w, rowBytes, quants, scales, sums, blocks, y); break;
            case GgmlType.Q8_0: Dot4<Q8_0Format>(w, rowBytes, quants, scales, sums, blocks, y); break;
            case GgmlType.Q4_1: Dot4<Q4_1Format>(w, rowBytes, quants, scales, sums, blocks, y); break;
            case GgmlType.Q5_0: Dot4<Q5_0Format>(w, rowBytes, quants, scales, sums, blocks, y); break;
            case GgmlType.Q5_1: Dot4<Q5_1Format>(w, rowBytes, quants, scales, sums, blocks, y); break;
            case GgmlType.IQ4_NL: Dot4<IQ4_NLFormat>(w, rowBytes, quants, scales, sums, blocks, y); break;
            case GgmlType.IQ4_XS: Dot4IQ4_XS(w, rowBytes, quants, scales, sums, blocks, y); break;
            default: throw new NotSupportedException($"no integer kernel for {type}");
        }
    }

    /// <summary>The Q4_0 four-row kernel as it was before the broadcasting unpack, kept as the benchmarks' baseline.</summary>
    internal static void Dot4Q4_0Previous(byte* w, long rowBytes, sbyte* quants, float* scales, int* sums, int blocks, float* y) =>
        Dot4<Q4_0FormatPrevious>(w, rowBytes, quants, scales, sums, blocks, y);

    /// <summary>One stored row against one quantized activation of <paramref name="blocks"/> blocks.</summary>
    internal static float Dot(GgmlType type, byte* row, sbyte* quants, float* scales, int* sums, int blocks) => type switch
    {
        GgmlType.Q4_0 => Dot<Q4_0Format>(row, quants, scales, sums, blocks),
        GgmlType.Q8_0 => Dot<Q8_0Format>(row, quants, scales, sums, blocks),
        GgmlType.Q4_1 => Dot<Q4_1Format>(row, quants, scales, sums, blocks),
        GgmlType.Q5_0 => Dot<Q5_0Format>(row, quants, scales, sums, blocks),
        GgmlType.Q5_1 => Dot<Q5_1Format>(row, quants, scales, sums, blocks),
        GgmlType.IQ4_NL => Dot<IQ4_NLFormat>(row, quants, scales, sums, blocks),
        GgmlType.IQ4_XS => DotIQ4_XS(row, quants, scales, sums, blocks),
        _ => throw new NotSupportedException($"no integer kernel for {type}"),
    };

    /// <summary>The kernels' integer sum for activation block <paramref name="b"/> (corrections included): the tests hold it to <see cref="ReferenceBlockSum"/>.</summary>
    internal static int KernelBlockSum(GgmlType type, byte* row, int b, sbyte* quants, int sum) => type switch
    {
        GgmlType.Q4_0 => Vector256.Sum(Q4_0Format.Products(row, b, Vector256.Load(quants + b * 32), sum)),
        GgmlType.Q8_0 => Vector256.Sum(Q8_0Format.Products(row, b, Vector256.Load(quants + b * 32), sum)),
        GgmlType.Q4_1 => Vector256.Sum(Q4_1Format.Products(row, b, Vector256.Load(quants + b * 32), sum)),
        GgmlType.Q5_0 => Vector256.Sum(Q5_0Format.Products(row, b, Vector256.Load(quants + b * 32), sum)),
        GgmlType.Q5_1 => Vector256.Sum(Q5_1Format.Products(row, b, Vector256.Load(quants + b * 32), sum)),
        GgmlType.IQ4_NL => Vector256.Sum(IQ4_NLFormat.Products(row, b, Vector256.Load(quants + b * 32), sum)),
        GgmlType.IQ4_XS => Vector256.Sum(IQ4_XSProducts(row, b, Vector256.Load(quants + b * 32), sum)),
        _ => throw new NotSupportedException($"no integer kernel for {type}"),
    };

    internal static long RowBytes(GgmlType type, int n) => n / (type == GgmlType.IQ4_XS ? 256 : 32) * (long)BlockBytes(type);

    private static int BlockBytes(GgmlType type) => type switch
    {
        GgmlType.Q8_0 => Q8_0Format.Bytes,
        GgmlType.Q4_1 => Q4_1Format.Bytes,
        GgmlType.Q5_0 => Q5_0Format.Bytes,
        GgmlType.Q5_1 => Q5_1Format.Bytes,
        GgmlType.IQ4_XS => 136,
        _ => Q4_0Format.Bytes, // Q4_0, IQ4_NL
    };

    // The block formats as type arguments, so the JIT compiles one specialized loop per format.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Dot4<TFormat>(byte* w, long rowBytes, sbyte* quants, float* scales, int* sums, int blocks, float* y) where TFormat : struct, IBlockFormat
    {
        float* halves = HalfTable.Pointer;
        // Per block step, whole cache lines covering at least the next four rows' bytes (72 to 136):
        // rounding up runs the prefetches ahead of the rows they serve.
        const int Line = 64;
        int prefetchStride = (4 * TFormat.Bytes + Line - 1) & ~(Line - 1);
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        float m0 = 0, m1 = 0, m2 = 0, m3 = 0;
        byte* w1 = w + rowBytes, w2 = w + 2 * rowBytes, w3 = w + 3 * rowBytes, next = w + 4 * rowBytes;
        for (int b = 0; b < blocks; b++)
        {
            for (int line = 0; line < prefetchStride; line += Line) Sse.Prefetch0(next + b * prefetchStride + line);
            Vector256<sbyte> x = Vector256.Load(quants + b * 32);
            int sum = sums[b];
            float dx = scales[b];
            a0 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(TFormat.Products(w, b, x, sum)), Vector256.Create(TFormat.Scale(w, b, halves) * dx), a0);
            a1 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(TFormat.Products(w1, b, x, sum)), Vector256.Create(TFormat.Scale(w1, b, halves) * dx), a1);
            a2 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(TFormat.Products(w2, b, x, sum)), Vector256.Create(TFormat.Scale(w2, b, halves) * dx), a2);
            a3 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(TFormat.Products(w3, b, x, sum)), Vector256.Create(TFormat.Scale(w3, b, halves) * dx), a3);
            if (TFormat.HasMinimum)
            {
                // The minimum's share m·Σx = m·d_x·Σq_x, one scalar per block and row (ggml's q8_1 carries d_x·Σq_x in the block).
                float sx = dx * sum;
                m0 += TFormat.Minimum(w, b, halves) * sx;
                m1 += TFormat.Minimum(w1, b, halves) * sx;
                m2 += TFormat.Minimum(w2, b, halves) * sx;
                m3 += TFormat.Minimum(w3, b, halves) * sx;
            }
        }
        y[0] = Vector256.Sum(a0) + m0; y[1] = Vector256.Sum(a1) + m1; y[2] = Vector256.Sum(a2) + m2; y[3] = Vector256.Sum(a3) + m3;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float Dot<TFormat>(byte* row, sbyte* quants, float* scales, int* sums, int blocks) where TFormat : struct, IBlockFormat
    {
        float* halves = HalfTable.Pointer;
        Vector256<float> total = Vector256<float>.Zero;
        float minimums = 0;
        for (int b = 0; b < blocks; b++)
        {
            total = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(TFormat.Products(row, b, Vector256.Load(quants + b * 32), sums[b])),
                                               Vector256.Create(TFormat.Scale(row, b, halves) * scales[b]), total);
            if (TFormat.HasMinimum) minimums += TFormat.Minimum(row, b, halves) * (scales[b] * sums[b]);
        }
        return Vector256.Sum(total) + minimums;
    }

    /// <summary>
    /// A stored block format: the bytes per 32 values, and for activation block b (quants x, Σx = sum)
    /// the integer products in 8 lanes (corrections for unsigned storage included), the weight scale, and the minimum if it has one.
    /// </summary>
    private interface IBlockFormat
    {
        static abstract int Bytes { get; }
        static abstract bool HasMinimum { get; }
        static abstract Vector256<int> Products(byte* row, int b, Vector256<sbyte> x, int sum);
        static abstract float Scale(byte* row, int b, float* halves);
        static abstract float Minimum(byte* row, int b, float* halves);
    }

    private readonly struct Q4_0Format : IBlockFormat
    {
        public static int Bytes => 18;
        public static bool HasMinimum => false;

        // Σ(n − 8)·x = Σn·x − 8·Σx.
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<int> Products(byte* row, int b, Vector256<sbyte> x, int sum) =>
            UnsignedTimesSigned(Vector256.CreateScalarUnsafe(-8 * sum), Nibbles(row + b * Bytes + 2), x);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static float Scale(byte* row, int b, float* halves) => HalfTable.ToSingle(halves, ref row[b * Bytes]);

        public static float Minimum(byte* row, int b, float* halves) => 0;
    }

    private readonly struct Q4_0FormatPrevious : IBlockFormat
    {
        public static int Bytes => 18;
        public static bool HasMinimum => false;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<int> Products(byte* row, int b, Vector256<sbyte> x, int sum)
        {
            Vector128<byte> packed = Vector128.Load(row + b * Bytes + 2);
            Vector256<byte> nibbles = Vector256.Create(packed & Vector128.Create((byte)0x0F), Vector128.ShiftRightLogical(packed, 4));
            return UnsignedTimesSigned(Vector256.CreateScalarUnsafe(-8 * sum), nibbles, x);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static float Scale(byte* row, int b, float* halves) => HalfTable.ToSingle(halves, ref row[b * Bytes]);

        public static float Minimum(byte* row, int b, float* halves) => 0;
    }

    private readonly struct Q8_0Format : IBlockFormat
    {
        public static int Bytes => 34;
        public static bool HasMinimum => false;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<int> Products(byte* row, int b, Vector256<sbyte> x, int sum)
        {
            Vector256<sbyte> w = Vector256.Load((sbyte*)(row + b * Bytes + 2));
            // |w| as unsigned times x carrying w's sign: the product of signs stays right.
            return UnsignedTimesSigned(Vector256<int>.Zero, Avx2.Abs(w), Avx2.Sign(x, w));
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static float Scale(byte* row, int b, float* halves) => HalfTable.ToSingle(halves, ref row[b * Bytes]);

        public static float Minimum(byte* row, int b, float* halves) => 0;
    }

    /// <summary>Q4_1: f16 d, f16 m, 16 bytes of nibbles; the nibbles are unsigned, the minimum goes to the scalar term.</summary>
    private readonly struct Q4_1Format : IBlockFormat
    {
        public static int Bytes => 20;
        public static bool HasMinimum => true;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<int> Products(byte* row, int b, Vector256<sbyte> x, int sum) =>
            UnsignedTimesSigned(Vector256<int>.Zero, Nibbles(row + b * Bytes + 4), x);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static float Scale(byte* row, int b, float* halves) => HalfTable.ToSingle(halves, ref row[b * Bytes]);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static float Minimum(byte* row, int b, float* halves) => HalfTable.ToSingle(halves, ref row[b * Bytes + 2]);
    }

    /// <summary>Q5_0: f16 d, 32 fifth bits, 16 bytes of nibbles; q = nibble | bit·16 is unsigned (0..31), so Σ(q − 16)·x = Σq·x − 16·Σx.</summary>
    private readonly struct Q5_0Format : IBlockFormat
    {
        public static int Bytes => 22;
        public static bool HasMinimum => false;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<int> Products(byte* row, int b, Vector256<sbyte> x, int sum)
        {
            byte* block = row + b * Bytes;
            return UnsignedTimesSigned(Vector256.CreateScalarUnsafe(-16 * sum), Nibbles(block + 6) | FifthBits(block + 2), x);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static float Scale(byte* row, int b, float* halves) => HalfTable.ToSingle(halves, ref row[b * Bytes]);

        public static float Minimum(byte* row, int b, float* halves) => 0;
    }

    /// <summary>Q5_1: f16 d, f16 m, 32 fifth bits, 16 bytes of nibbles; q unsigned as Q5_0's, the minimum as Q4_1's.</summary>
    private readonly struct Q5_1Format : IBlockFormat
    {
        public static int Bytes => 24;
        public static bool HasMinimum => true;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<int> Products(byte* row, int b, Vector256<sbyte> x, int sum)
        {
            byte* block = row + b * Bytes;
            return UnsignedTimesSigned(Vector256<int>.Zero, Nibbles(block + 8) | FifthBits(block + 4), x);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static float Scale(byte* row, int b, float* halves) => HalfTable.ToSingle(halves, ref row[b * Bytes]);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static float Minimum(byte* row, int b, float* halves) => HalfTable.ToSingle(halves, ref row[b * Bytes + 2]);
    }

    /// <summary>IQ4_NL: f16 d, 16 bytes of nibbles indexing the 16-value grid.</summary>
    private readonly struct IQ4_NLFormat : IBlockFormat
    {
        public static int Bytes => 18;
        public static bool HasMinimum => false;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<int> Products(byte* row, int b, Vector256<sbyte> x, int sum) => IQ4Products(row + b * Bytes + 2, x, sum);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static float Scale(byte* row, int b, float* halves) => HalfTable.ToSingle(halves, ref row[b * Bytes]);

        public static float Minimum(byte* row, int b, float* halves) => 0;
    }

    /// <summary>
    /// IQ4_XS (super-blocks of 256, 136 bytes: f16 d, 16 bits of scale high pairs, 4 bytes of scale low nibbles, 128 bytes
    /// of nibbles): the products of activation block b, sub-block b % 8 of its super-block, nibbles as IQ4_NL's.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> IQ4_XSProducts(byte* row, int b, Vector256<sbyte> x, int sum) =>
        IQ4Products(row + (b >> 3) * 136 + 8 + (b & 7) * 16, x, sum);

    /// <summary>
    /// The 8 sub-block scales of an IQ4_XS super-block times the activation scales of its 8 blocks, d·(scale − 32)·d_x in
    /// 8 lanes: the 6-bit scales unpacked together by variable shifts (one scalar extraction per sub-block cost twice the kernel).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> IQ4_XSScales(byte* super, Vector256<float> dx, float* halves)
    {
        Vector256<uint> low = Avx2.ShiftRightLogicalVariable(Vector256.Create(*(uint*)(super + 4)), Vector256.Create(0u, 4, 8, 12, 16, 20, 24, 28)) & Vector256.Create(0x0Fu);
        Vector256<uint> high = Avx2.ShiftRightLogicalVariable(Vector256.Create((uint)*(ushort*)(super + 2)), Vector256.Create(0u, 2, 4, 6, 8, 10, 12, 14)) & Vector256.Create(3u);
        Vector256<int> scale = (low | (high << 4)).AsInt32() - Vector256.Create(32);
        return Vector256.ConvertToSingle(scale) * (dx * HalfTable.ToSingle(halves, ref *super));
    }

    /// <summary>IQ4_XS's four-row kernel: per super-block the four rows' 8 scales as vectors, each sub-block's lane broadcast by vpermps.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Dot4IQ4_XS(byte* w, long rowBytes, sbyte* quants, float* scales, int* sums, int blocks, float* y)
    {
        float* halves = HalfTable.Pointer;
        const int Line = 64, Prefetch = (4 * 136 + Line - 1) & ~(Line - 1);
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        byte* w1 = w + rowBytes, w2 = w + 2 * rowBytes, w3 = w + 3 * rowBytes, next = w + 4 * rowBytes;
        for (int s = 0; s < blocks / 8; s++)
        {
            for (int line = 0; line < Prefetch; line += Line) Sse.Prefetch0(next + s * Prefetch + line);
            Vector256<float> dx = Vector256.Load(scales + s * 8);
            long at = s * 136L;
            Vector256<float> s0 = IQ4_XSScales(w + at, dx, halves), s1 = IQ4_XSScales(w1 + at, dx, halves);
            Vector256<float> s2 = IQ4_XSScales(w2 + at, dx, halves), s3 = IQ4_XSScales(w3 + at, dx, halves);
            for (int j = 0; j < 8; j++)
            {
                int b = s * 8 + j, sum = sums[b];
                Vector256<sbyte> x = Vector256.Load(quants + b * 32);
                Vector256<int> lane = Vector256.Create(j);
                long qs = at + 8 + j * 16;
                a0 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(IQ4Products(w + qs, x, sum)), Avx2.PermuteVar8x32(s0, lane), a0);
                a1 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(IQ4Products(w1 + qs, x, sum)), Avx2.PermuteVar8x32(s1, lane), a1);
                a2 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(IQ4Products(w2 + qs, x, sum)), Avx2.PermuteVar8x32(s2, lane), a2);
                a3 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(IQ4Products(w3 + qs, x, sum)), Avx2.PermuteVar8x32(s3, lane), a3);
            }
        }
        y[0] = Vector256.Sum(a0); y[1] = Vector256.Sum(a1); y[2] = Vector256.Sum(a2); y[3] = Vector256.Sum(a3);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float DotIQ4_XS(byte* row, sbyte* quants, float* scales, int* sums, int blocks)
    {
        float* halves = HalfTable.Pointer;
        Vector256<float> total = default;
        for (int s = 0; s < blocks / 8; s++)
        {
            Vector256<float> scale = IQ4_XSScales(row + s * 136L, Vector256.Load(scales + s * 8), halves);
            for (int j = 0; j < 8; j++)
            {
                int b = s * 8 + j;
                total = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(IQ4_XSProducts(row, b, Vector256.Load(quants + b * 32), sums[b])),
                                                   Avx2.PermuteVar8x32(scale, Vector256.Create(j)), total);
            }
        }
        return Vector256.Sum(total);
    }

    /// <summary>
    /// The grid values of 32 IQ4 nibbles times x. With AVX-VNNI the grid is looked up offset by +128 (1..241, unsigned) and
    /// 128·Σx subtracted (vpdpbusd sums four products into 32 bits: nothing saturates); vpmaddubsw would saturate on those
    /// (2·241·127 > 32767), so plain AVX2 takes |grid| times x with the grid's sign (at most 2·127·127 = 32258 per pair).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> IQ4Products(byte* qs, Vector256<sbyte> x, int sum)
    {
        Vector256<byte> nibbles = Nibbles(qs);
        if (AvxVnni.IsSupported)
        {
            Vector256<byte> offsetGrid = Vector256.Create((byte)1, 24, 45, 63, 79, 93, 106, 118, 129, 141, 153, 166, 181, 197, 217, 241,
                                                          1, 24, 45, 63, 79, 93, 106, 118, 129, 141, 153, 166, 181, 197, 217, 241);
            return AvxVnni.MultiplyWideningAndAdd(Vector256.CreateScalarUnsafe(-128 * sum), Avx2.Shuffle(offsetGrid, nibbles), x);
        }
        Vector256<sbyte> grid = Vector256.Create((sbyte)-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113,
                                                 -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113);
        Vector256<sbyte> w = Avx2.Shuffle(grid, nibbles.AsSByte());
        return UnsignedTimesSigned(Vector256<int>.Zero, Avx2.Abs(w), Avx2.Sign(x, w));
    }

    /// <summary>The 32 nibbles of 16 bytes, low nibbles first, one per byte.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<byte> Nibbles(byte* qs)
    {
        // The 16 stored bytes in both halves (a broadcasting load, no shuffle), shifted by 0 and 4
        // bits per half: low nibbles then high ones after one mask — 2 operations where splitting
        // the halves and joining them took 4 (one of them a cross-lane insert).
        Vector256<uint> both = Avx2.BroadcastVector128ToVector256((uint*)qs);
        return Avx2.ShiftRightLogicalVariable(both, Vector256.Create(0u, 0, 0, 0, 4, 4, 4, 4)).AsByte() & Vector256.Create((byte)0x0F);
    }

    /// <summary>Bit j of the 32-bit word at <paramref name="qh"/> as 16 in byte j (else 0): byte j/8 of the word to byte j by vpshufb, then its bit j % 8 tested.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<byte> FifthBits(byte* qh)
    {
        Vector256<byte> word = Vector256.Create(*(uint*)qh).AsByte();
        Vector256<byte> spread = Avx2.Shuffle(word, Vector256.Create((byte)0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
                                                                      2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3));
        Vector256<byte> bit = Vector256.Create(0x8040201008040201ul).AsByte();
        return Vector256.Equals(spread & bit, bit) & Vector256.Create((byte)0x10);
    }

    /// <summary>accumulator + sums of each four adjacent u8·s8 products, in 8 int32 lanes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<int> UnsignedTimesSigned(Vector256<int> accumulator, Vector256<byte> u, Vector256<sbyte> s)
    {
        if (AvxVnni.IsSupported) return AvxVnni.MultiplyWideningAndAdd(accumulator, u, s);
        // vpmaddubsw saturates at ±32767: safe here because the unsigned factor is at most 31
        // (2·31·127 = 7874) or the pair is |w|·x with |w|, |x| ≤ 127 (2·127·127 = 32258).
        Vector256<short> pairs = Avx2.MultiplyAddAdjacent(u, s);
        return accumulator + Avx2.MultiplyAddAdjacent(pairs, Vector256.Create((short)1));
    }
}
