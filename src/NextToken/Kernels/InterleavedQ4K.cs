using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using NextToken.Tensors;

namespace NextToken.Kernels;

/// <summary>
/// Q4_K matrices repacked for prompts with quantized activations (<see cref="KQuantActivations"/>'
/// blocks of 256): eight rows interleaved so that one 256-bit register holds the same four stored
/// bytes of eight rows, one 32-bit lane per row. Four bytes hold values v…v+3 of a sub-block (low
/// nibbles) and v+32…v+35 of the next (high nibbles); each meets four activation bytes broadcast to
/// every lane, so the eight rows' integer dots per sub-block come out lane by lane with no
/// horizontal sum, and the rows' 6-bit scales multiply them lane by lane in the same instruction
/// that widens them (<c>vpmaddwd</c> by the scale pair). Tiles of eight rows × four inputs unpack each
/// register once for four inputs. Per sub-block, eight rows and one input: 8 <c>vpmaddubsw</c> +
/// 8 adds + 1 <c>vpmaddwd</c> + 1 add (AVX2), or 8 <c>vpdpbusd</c> + 1 <c>vpmulld</c> + 1 add
/// (AVX-VNNI), where the row-at-a-time kernel spends 2 <c>vpmaddubsw</c> + 2 <c>vpmaddwd</c> + 2 adds
/// per row and also unpacks and horizontally sums per row.
/// </summary>
/// <remarks>
/// Layout per group of eight rows and super-block (<see cref="SuperBytes"/> = 1,344 bytes, the
/// original 8 × 144 = 1,152): eight float32 d, eight float32 dmin; for each of the 8 sub-blocks the
/// eight rows' scales as bytes each twice (16 bytes: <c>vpmovzxbw</c> makes the 16-bit pairs
/// <c>vpmaddwd</c> takes), then the same for the minimums; then 4 × 8 registers: register (g, j)
/// holds for rows 0…7 in turn the row's nibble bytes 32g + 4j … 32g + 4j + 3 (values 64g + 4j… in
/// their low nibbles, sub-block 2g, and 64g + 32 + 4j… in the high, sub-block 2g + 1).
/// Integer sums are exactly the scalar reference's (<see cref="KQuantActivations.Reference"/>): a
/// row's sub-block dot is at most 32·15·127 in magnitude; the 16-bit pair sums of eight
/// <c>vpmaddubsw</c> at most 8·2·15·127 = 30,480, so they cannot saturate.
/// </remarks>
public sealed unsafe class InterleavedQ4K : IDisposable
{
    private const int Rows = 8, ScalesAt = 64, MinsAt = ScalesAt + 128, QuantsAt = MinsAt + 128;

    /// <summary>Bytes per group of eight rows and super-block.</summary>
    public const int SuperBytes = QuantsAt + 1024;

    private byte* _data;

    /// <summary>Set on a calling thread, its matmuls keep the row-by-row kernel for Q4_K prompts (tests and benchmarks compare the two).</summary>
    [ThreadStatic] internal static bool KeepRowKernel;

    internal InterleavedQ4K(in TensorData weight)
    {
        if (weight.Type != GgmlType.Q4_K || weight.Transposed || weight.RowCount < Rows || weight.RowLength % KQuantActivations.BlockSize != 0)
            throw new ArgumentException($"'{weight.Name}': only Q4_K matrices of at least {Rows} rows are interleaved, not {weight.Type} {weight.ShapeText}");
        Groups = weight.RowCount / Rows;
        Blocks = weight.RowLength / KQuantActivations.BlockSize;
        long bytes = (long)Groups * Blocks * SuperBytes;
        _data = (byte*)NativeMemory.AlignedAlloc((nuint)Math.Max(bytes, 64), 64);
        float* halves = HalfTable.Pointer;
        long rowBytes = weight.RowBytes;
        for (int g = 0; g < Groups; g++)
            for (int b = 0; b < Blocks; b++)
            {
                byte* target = _data + ((long)g * Blocks + b) * SuperBytes;
                for (int r = 0; r < Rows; r++)
                {
                    byte* block = weight.Data + (g * Rows + r) * rowBytes + b * 144;
                    ((float*)target)[r] = HalfTable.ToSingle(halves, ref *block);
                    ((float*)target)[Rows + r] = HalfTable.ToSingle(halves, ref block[2]);
                    var packed = new ReadOnlySpan<byte>(block + 4, 12);
                    for (int s = 0; s < 8; s++)
                    {
                        Quantized.ScaleMinK4(s, packed, out int sc, out int m);
                        target[ScalesAt + 16 * s + 2 * r] = target[ScalesAt + 16 * s + 2 * r + 1] = (byte)sc;
                        target[MinsAt + 16 * s + 2 * r] = target[MinsAt + 16 * s + 2 * r + 1] = (byte)m;
                    }
                    for (int k = 0; k < 32; k++) *(uint*)(target + QuantsAt + k * 32 + r * 4) = *(uint*)(block + 16 + 4 * k);
                }
            }
    }

    /// <summary>AVX-VNNI (<c>vpdpbusd</c>), or plain AVX2 with <c>vpmaddubsw</c> + <c>vpmaddwd</c>.</summary>
    public static bool IsSupported => AvxVnni.IsSupported || (Avx2.IsSupported && Fma.IsSupported);

    /// <summary>Whole groups of eight rows repacked; a matrix's last rows beyond them take the row-by-row kernel.</summary>
    public int Groups { get; }
    public int Blocks { get; }
    public long Bytes => (long)Groups * Blocks * SuperBytes;

    /// <summary>
    /// Row r's stored super-block b rebuilt from the repacked copy (d, dmin as f16, the 12 packed
    /// scale bytes, the 128 nibble bytes): proves the layout round-trips (tests).
    /// </summary>
    internal void Unpack(int row, int b, Span<byte> block)
    {
        byte* source = _data + ((long)(row / Rows) * Blocks + b) * SuperBytes;
        int r = row % Rows;
        MemoryMarshal.Write(block, BitConverter.HalfToUInt16Bits((Half)((float*)source)[r]));
        MemoryMarshal.Write(block[2..], BitConverter.HalfToUInt16Bits((Half)((float*)source)[Rows + r]));
        // The 6-bit packing of 8 scales and 8 minimums in 12 bytes (ggml's get_scale_min_k4 inverted).
        Span<byte> packed = block.Slice(4, 12);
        packed.Clear();
        for (int s = 0; s < 8; s++)
        {
            int sc = source[ScalesAt + 16 * s + 2 * r], m = source[MinsAt + 16 * s + 2 * r];
            if (s < 4)
            {
                packed[s] |= (byte)(sc & 63);
                packed[s + 4] |= (byte)(m & 63);
            }
            else
            {
                packed[s + 4] = (byte)((sc & 15) | (m & 15) << 4);
                packed[s - 4] |= (byte)((sc >> 4) << 6);
                packed[s] |= (byte)((m >> 4) << 6);
            }
        }
        for (int k = 0; k < 32; k++) MemoryMarshal.Write(block[(16 + 4 * k)..], *(uint*)(source + QuantsAt + k * 32 + r * 4));
    }

    /// <summary>
    /// Rows [8·groupStart, 8·groupEnd) for every input: y[t, row] = Σ_b dx_t,b · (d_row,b · Σ_j sc_j·(q·x)_j
    /// − dmin_row,b · Σ_j m_j·Σx_j), over the inputs' 8-bit blocks of 256 (quants [n, nIn], scales
    /// [n, nIn/256], sums of 16 [n, nIn/16]).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal void Multiply(sbyte* quants, float* scales, short* sums, int nBatch, float* y, int yStride, int groupStart, int groupEnd)
    {
        if (AvxVnni.IsSupported) Multiply<Vnni>(quants, scales, sums, nBatch, y, yStride, groupStart, groupEnd);
        else Multiply<Avx2Pairs>(quants, scales, sums, nBatch, y, yStride, groupStart, groupEnd);
    }

    /// <summary>As <see cref="Multiply"/> with the AVX2 kernel even where VNNI is there (tests and benchmarks).</summary>
    internal void MultiplyWithoutVnni(sbyte* quants, float* scales, short* sums, int nBatch, float* y, int yStride, int groupStart, int groupEnd)
    {
        if (!Avx2.IsSupported || !Fma.IsSupported) throw new PlatformNotSupportedException("the interleaved Q4_K kernel needs AVX2 and FMA");
        Multiply<Avx2Pairs>(quants, scales, sums, nBatch, y, yStride, groupStart, groupEnd);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void Multiply<TDot>(sbyte* quants, float* scales, short* sums, int nBatch, float* y, int yStride, int groupStart, int groupEnd) where TDot : struct, ISubBlock
    {
        int nIn = Blocks * KQuantActivations.BlockSize;
        for (int g = groupStart; g < groupEnd; g++)
        {
            byte* group = _data + (long)g * Blocks * SuperBytes;
            int t = 0;
            for (; t + 4 <= nBatch; t += 4)
                Tile4<TDot>(group, Blocks, quants + (long)t * nIn, nIn, scales + (long)t * Blocks, sums + (long)t * (nIn / 16), y + (long)t * yStride + g * Rows, yStride);
            for (; t < nBatch; t++)
                Tile1<TDot>(group, Blocks, quants + (long)t * nIn, scales + (long)t * Blocks, sums + (long)t * (nIn / 16), y + (long)t * yStride + g * Rows);
        }
    }

    /// <summary>Eight rows × four inputs (nIn apart): each register is loaded and split into nibbles once for the four.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Tile4<TDot>(byte* group, int blocks, sbyte* x, int nIn, float* scales, short* sums, float* y, int yStride) where TDot : struct, ISubBlock
    {
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        var low = Vector256.Create((byte)0x0F);
        int sumStride = nIn / 16;
        for (int b = 0; b < blocks; b++)
        {
            byte* block = group + (long)b * SuperBytes;
            sbyte* x0 = x + b * 256, x1 = x0 + nIn, x2 = x1 + nIn, x3 = x2 + nIn;
            Vector256<int> i0 = default, i1 = default, i2 = default, i3 = default;
            for (int g = 0; g < 4; g++)
            {
                Vector256<int> l0 = default, l1 = default, l2 = default, l3 = default, h0 = default, h1 = default, h2 = default, h3 = default;
                byte* q = block + QuantsAt + g * 256;
                int at = 64 * g;
                for (int j = 0; j < 8; j++, q += 32, at += 4)
                {
                    Vector256<byte> p = Vector256.Load(q);
                    Vector256<byte> lo = p & low, hi = Vector256.ShiftRightLogical(p.AsUInt16(), 4).AsByte() & low;
                    l0 = TDot.Add(l0, lo, Vector256.Create(*(int*)(x0 + at)).AsSByte());
                    h0 = TDot.Add(h0, hi, Vector256.Create(*(int*)(x0 + at + 32)).AsSByte());
                    l1 = TDot.Add(l1, lo, Vector256.Create(*(int*)(x1 + at)).AsSByte());
                    h1 = TDot.Add(h1, hi, Vector256.Create(*(int*)(x1 + at + 32)).AsSByte());
                    l2 = TDot.Add(l2, lo, Vector256.Create(*(int*)(x2 + at)).AsSByte());
                    h2 = TDot.Add(h2, hi, Vector256.Create(*(int*)(x2 + at + 32)).AsSByte());
                    l3 = TDot.Add(l3, lo, Vector256.Create(*(int*)(x3 + at)).AsSByte());
                    h3 = TDot.Add(h3, hi, Vector256.Create(*(int*)(x3 + at + 32)).AsSByte());
                }
                Vector256<short> sl = Pairs(block + ScalesAt + 32 * g), sh = Pairs(block + ScalesAt + 32 * g + 16);
                i0 = TDot.Scaled(h0, sh, TDot.Scaled(l0, sl, i0));
                i1 = TDot.Scaled(h1, sh, TDot.Scaled(l1, sl, i1));
                i2 = TDot.Scaled(h2, sh, TDot.Scaled(l2, sl, i2));
                i3 = TDot.Scaled(h3, sh, TDot.Scaled(l3, sl, i3));
            }
            short* s0 = sums + 16 * b, s1 = s0 + sumStride, s2 = s1 + sumStride, s3 = s2 + sumStride;
            Vector256<int> m0 = default, m1 = default, m2 = default, m3 = default;
            for (int j = 0; j < 8; j++)
            {
                // Σ m_j·Σx over sub-block j: the pair (m, m) per lane meets the two 16-sums of the sub-block.
                Vector256<short> mins = Pairs(block + MinsAt + 16 * j);
                m0 += Avx2.MultiplyAddAdjacent(mins, Vector256.Create(*(int*)(s0 + 2 * j)).AsInt16());
                m1 += Avx2.MultiplyAddAdjacent(mins, Vector256.Create(*(int*)(s1 + 2 * j)).AsInt16());
                m2 += Avx2.MultiplyAddAdjacent(mins, Vector256.Create(*(int*)(s2 + 2 * j)).AsInt16());
                m3 += Avx2.MultiplyAddAdjacent(mins, Vector256.Create(*(int*)(s3 + 2 * j)).AsInt16());
            }
            Vector256<float> d = Vector256.Load((float*)block), dmin = Vector256.Load((float*)block + Rows);
            a0 = Finish(d, dmin, scales[b], i0, m0, a0);
            a1 = Finish(d, dmin, scales[blocks + b], i1, m1, a1);
            a2 = Finish(d, dmin, scales[2 * blocks + b], i2, m2, a2);
            a3 = Finish(d, dmin, scales[3 * blocks + b], i3, m3, a3);
        }
        a0.Store(y); a1.Store(y + yStride); a2.Store(y + 2L * yStride); a3.Store(y + 3L * yStride);
    }

    /// <summary>Eight rows × one input (a batch's last inputs).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Tile1<TDot>(byte* group, int blocks, sbyte* x, float* scales, short* sums, float* y) where TDot : struct, ISubBlock
    {
        Vector256<float> a = default;
        var low = Vector256.Create((byte)0x0F);
        for (int b = 0; b < blocks; b++)
        {
            byte* block = group + (long)b * SuperBytes;
            sbyte* xb = x + b * 256;
            Vector256<int> i = default;
            for (int g = 0; g < 4; g++)
            {
                Vector256<int> l = default, h = default;
                byte* q = block + QuantsAt + g * 256;
                int at = 64 * g;
                for (int j = 0; j < 8; j++, q += 32, at += 4)
                {
                    Vector256<byte> p = Vector256.Load(q);
                    l = TDot.Add(l, p & low, Vector256.Create(*(int*)(xb + at)).AsSByte());
                    h = TDot.Add(h, Vector256.ShiftRightLogical(p.AsUInt16(), 4).AsByte() & low, Vector256.Create(*(int*)(xb + at + 32)).AsSByte());
                }
                i = TDot.Scaled(h, Pairs(block + ScalesAt + 32 * g + 16), TDot.Scaled(l, Pairs(block + ScalesAt + 32 * g), i));
            }
            Vector256<int> m = default;
            for (int j = 0; j < 8; j++)
                m += Avx2.MultiplyAddAdjacent(Pairs(block + MinsAt + 16 * j), Vector256.Create(*(int*)(sums + 16 * b + 2 * j)).AsInt16());
            a = Finish(Vector256.Load((float*)block), Vector256.Load((float*)block + Rows), scales[b], i, m, a);
        }
        a.Store(y);
    }

    /// <summary>16 bytes (each row's value twice) as the 16-bit pairs <c>vpmaddwd</c> takes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<short> Pairs(byte* at) => Avx2.ConvertToVector256Int16(at);

    /// <summary>
    /// total − (dmin·dx)·(minimum terms) + (d·dx)·(integer sums), lane by lane: the float steps of
    /// <see cref="KQuantActivations"/>' kernels, but each lane holds a row's whole integer sum.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Finish(Vector256<float> d, Vector256<float> dmin, float dx, Vector256<int> sums, Vector256<int> mins, Vector256<float> total)
    {
        var scale = Vector256.Create(dx);
        total = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(mins), -(dmin * scale), total);
        return Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(sums), d * scale, total);
    }

    /// <summary>One sub-block's products for eight rows (lanes), per instruction set so each tile is compiled for it.</summary>
    private interface ISubBlock
    {
        /// <summary>accumulator + the four byte products of each lane (in the form the set accumulates).</summary>
        static abstract Vector256<int> Add(Vector256<int> accumulator, Vector256<byte> weights, Vector256<sbyte> x);

        /// <summary>total + the accumulated dot of each lane times the lane's scale (16-bit pairs (sc, sc)).</summary>
        static abstract Vector256<int> Scaled(Vector256<int> accumulator, Vector256<short> scales, Vector256<int> total);
    }

    /// <summary>AVX2: <c>vpmaddubsw</c> pair sums kept in 16 bits; one <c>vpmaddwd</c> by (sc, sc) widens and scales.</summary>
    private readonly struct Avx2Pairs : ISubBlock
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<int> Add(Vector256<int> accumulator, Vector256<byte> weights, Vector256<sbyte> x) =>
            (accumulator.AsInt16() + Avx2.MultiplyAddAdjacent(weights, x)).AsInt32();

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<int> Scaled(Vector256<int> accumulator, Vector256<short> scales, Vector256<int> total) =>
            total + Avx2.MultiplyAddAdjacent(accumulator.AsInt16(), scales);
    }

    /// <summary>AVX-VNNI: <c>vpdpbusd</c> sums in 32 bits; <c>vpmulld</c> by the scale (the pair's low half).</summary>
    private readonly struct Vnni : ISubBlock
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<int> Add(Vector256<int> accumulator, Vector256<byte> weights, Vector256<sbyte> x) =>
            AvxVnni.MultiplyWideningAndAdd(accumulator, weights, x);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<int> Scaled(Vector256<int> accumulator, Vector256<short> scales, Vector256<int> total) =>
            total + Avx2.MultiplyLow(accumulator, scales.AsInt32() & Vector256.Create(0xFFFF));
    }

    public void Dispose()
    {
        if (_data != null) NativeMemory.AlignedFree(_data);
        _data = null;
    }
}
