using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using NextToken.Tensors;

namespace NextToken.Kernels;

/// <summary>
/// <c>--q8-activations</c> for the K-quants (Q2_K … Q6_K): the activation row is quantized
/// once per matmul to 8-bit blocks of 256 — one float scale per block and the sum of each 16
/// quants, llama.cpp's Q8_K — and each weight super-block meets it in integer arithmetic.
/// </summary>
/// <remarks>
/// Why blocks of 256 and not the 32-blocks of <see cref="QuantizedActivations"/>: with one activation
/// scale per super-block, the weights' integer sub-block scales multiply the integer dot products
/// inside the integer accumulator (<c>vpmaddubsw</c> gives 16-bit pair sums, <c>vpmaddwd</c> or
/// AVX-VNNI's <c>vpdpwssd</c> multiplies them by the 16-bit scale and adds in 32 bits), so a row
/// needs one float conversion and multiply-add per 256 values instead of one per 32. The minimum
/// (Q2_K, Q4_K, Q5_K) or offset (Q3_K's −4, Q6_K's −32) terms come from the 16-sums in one <c>vpmaddwd</c>
/// per super-block. Accuracy is llama.cpp's for the same method. Weights stay unsigned (Q6_K's q is 0–63,
/// Q3_K's 0–7 with the high bit as bit 2, the offsets moved into the sums), so <c>vpmaddubsw</c> cannot
/// saturate: 2·63·127 &lt; 32767. Q2_K and Q3_K sub-blocks are 16 values, so each 32-byte register of
/// quants meets two scales, one per 128-bit half, as Q6_K's do. Integer
/// sums per row and super-block stay below 2³¹ (Q6_K's worst: 16 · 16 · 63 · 127 · 128 ≈ 2.6·10⁸).
/// </remarks>
public static unsafe class KQuantActivations
{
    public const int BlockSize = 256;

    public static bool IsSupported(GgmlType type) => Avx2.IsSupported && IsKQuant(type);

    private static bool IsKQuant(GgmlType type) => type is GgmlType.Q2_K or GgmlType.Q3_K or GgmlType.Q4_K or GgmlType.Q5_K or GgmlType.Q6_K;

    /// <summary>
    /// x → 8-bit blocks of 256: <paramref name="quants"/> [n], <paramref name="scales"/> [n / 256] and
    /// <paramref name="sums"/> [n / 16], the sum of each 16 consecutive quants.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Quantize(ReadOnlySpan<float> x, Span<sbyte> quants, Span<float> scales, Span<short> sums)
    {
        if (x.Length % BlockSize != 0 || quants.Length < x.Length || scales.Length < x.Length / BlockSize || sums.Length < x.Length / 16)
            throw new ArgumentException($"{x.Length} values need a multiple of {BlockSize}, {x.Length} quants, {x.Length / BlockSize} scales and {x.Length / 16} sums");
        for (int b = 0; b < x.Length / BlockSize; b++)
        {
            ReadOnlySpan<float> block = x.Slice(b * BlockSize, BlockSize);
            float amax = System.Numerics.Tensors.TensorPrimitives.MaxMagnitude(block);
            float d = Math.Abs(amax) / 127, id = d != 0 ? 1 / d : 0;
            scales[b] = d;
            Span<sbyte> q = quants.Slice(b * BlockSize, BlockSize);
            if (Vector256.IsHardwareAccelerated)
            {
                var scale = Vector256.Create(id);
                for (int k = 0; k < BlockSize; k += 32)
                {
                    // Round half to even, as MathF.Round below; |x·id| ≤ 127 so the narrowing never saturates.
                    Vector256<int> q0 = Vector256.ConvertToInt32(Vector256.Round(Vector256.Create(block.Slice(k, 8)) * scale));
                    Vector256<int> q1 = Vector256.ConvertToInt32(Vector256.Round(Vector256.Create(block.Slice(k + 8, 8)) * scale));
                    Vector256<int> q2 = Vector256.ConvertToInt32(Vector256.Round(Vector256.Create(block.Slice(k + 16, 8)) * scale));
                    Vector256<int> q3 = Vector256.ConvertToInt32(Vector256.Round(Vector256.Create(block.Slice(k + 24, 8)) * scale));
                    sums[(b * BlockSize + k) / 16] = (short)Vector256.Sum(q0 + q1);
                    sums[(b * BlockSize + k) / 16 + 1] = (short)Vector256.Sum(q2 + q3);
                    Vector256.Narrow(Vector256.Narrow(q0, q1), Vector256.Narrow(q2, q3)).CopyTo(q.Slice(k, 32));
                }
                continue;
            }
            for (int k = 0; k < BlockSize; k += 16)
            {
                int sum = 0;
                for (int i = k; i < k + 16; i++)
                {
                    q[i] = (sbyte)MathF.Round(block[i] * id);
                    sum += q[i];
                }
                sums[(b * BlockSize + k) / 16] = (short)sum;
            }
        }
    }

    /// <summary>One stored row against one quantized activation: the kernel (AVX-VNNI where the CPU has it), or the scalar reference without AVX2.</summary>
    public static float Dot(GgmlType type, ReadOnlySpan<byte> row, ReadOnlySpan<sbyte> quants, ReadOnlySpan<float> scales, ReadOnlySpan<short> sums)
    {
        Check(type, row, quants, scales, sums);
        if (!Avx2.IsSupported) return Reference(type, row, quants, scales, sums, out _);
        float y;
        fixed (byte* w = row)
        fixed (sbyte* q = quants)
        fixed (float* d = scales)
        fixed (short* s = sums)
            Dot4(type, DecodeForm, w, 0, 1, q, d, s, quants.Length / BlockSize, &y);
        return y;
    }

    private static void Check(GgmlType type, ReadOnlySpan<byte> row, ReadOnlySpan<sbyte> quants, ReadOnlySpan<float> scales, ReadOnlySpan<short> sums)
    {
        if (!IsKQuant(type))
            throw new NotSupportedException($"8-bit activation blocks of 256 meet Q2_K, Q3_K, Q4_K, Q5_K or Q6_K rows, not {type}");
        int n = quants.Length;
        if (n % BlockSize != 0 || row.Length < n / BlockSize * (long)BlockBytes(type) || scales.Length < n / BlockSize || sums.Length < n / 16)
            throw new ArgumentException($"a {type} row of {n} values needs a multiple of {BlockSize} values, {n / BlockSize * (long)BlockBytes(type)} bytes, {n / BlockSize} scales and {n / 16} sums");
    }

    internal static int BlockBytes(GgmlType type) => type switch { GgmlType.Q2_K => 84, GgmlType.Q3_K => 110, GgmlType.Q4_K => 144, GgmlType.Q5_K => 176, _ => 210 };

    /// <summary>
    /// The portable scalar reference: per super-block the integer sum the kernels form,
    /// Σ sc_j·(q_j · x_j) with q unsigned, and the integer offset term (Σ m_j·Σx_j for Q2_K, Q4_K and Q5_K,
    /// which the kernels subtract scaled by dmin; for Q3_K −4·Σ sc_k·Σx_k and Q6_K −32·Σ sc_k·Σx_k are already in the sum);
    /// <paramref name="integers"/> returns each super-block's (sum, offset) pair for tests.
    /// </summary>
    public static float Reference(GgmlType type, ReadOnlySpan<byte> row, ReadOnlySpan<sbyte> quants, ReadOnlySpan<float> scales, ReadOnlySpan<short> sums, out (int Sum, int Offset)[] integers)
    {
        Check(type, row, quants, scales, sums);
        int blocks = quants.Length / BlockSize, bytes = BlockBytes(type);
        integers = new (int, int)[blocks];
        Span<int> q = stackalloc int[BlockSize], q3Scales = stackalloc int[16];
        float total = 0;
        for (int b = 0; b < blocks; b++)
        {
            ReadOnlySpan<byte> block = row.Slice(b * bytes, bytes);
            ReadOnlySpan<sbyte> x = quants.Slice(b * BlockSize, BlockSize);
            ReadOnlySpan<short> s16 = sums.Slice(b * 16, 16);
            int sum = 0, offset = 0;
            if (type is GgmlType.Q2_K or GgmlType.Q3_K)
            {
                // Sub-block k = 8·half + 2·plane + part: bits 2·plane of bytes 16·part … of the half's 32 quant bytes.
                if (type == GgmlType.Q3_K) Quantized.ScalesQ3_K(block.Slice(96, 12), q3Scales);
                int quantsAt = type == GgmlType.Q2_K ? 16 : 32;
                for (int k = 0; k < 16; k++)
                {
                    int half = k / 8, plane = k % 8 / 2, part = k % 2, dot = 0;
                    for (int l = 0; l < 16; l++)
                    {
                        int v = block[quantsAt + 32 * half + 16 * part + l] >> 2 * plane & 3;
                        if (type == GgmlType.Q3_K) v |= (block[16 * part + l] >> 4 * half + plane & 1) << 2;
                        dot += v * x[16 * k + l];
                    }
                    if (type == GgmlType.Q2_K)
                    {
                        sum += (block[k] & 15) * dot;
                        offset += (block[k] >> 4) * s16[k];
                    }
                    else sum += q3Scales[k] * (dot - 4 * s16[k]);
                }
                total += type == GgmlType.Q2_K ? Half(block, 80) * scales[b] * sum - Half(block, 82) * scales[b] * offset : Half(block, 108) * scales[b] * sum;
            }
            else if (type == GgmlType.Q6_K)
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
                for (int k = 0; k < 16; k++)
                {
                    int dot = 0;
                    for (int i = 16 * k; i < 16 * k + 16; i++) dot += q[i] * x[i];
                    sum += (sbyte)block[192 + k] * (dot - 32 * s16[k]);
                }
                total += Half(block, 208) * scales[b] * sum;
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
                for (int j = 0; j < 8; j++)
                {
                    Quantized.ScaleMinK4(j, block.Slice(4, 12), out int sc, out int m);
                    int dot = 0;
                    for (int i = 32 * j; i < 32 * j + 32; i++) dot += q[i] * x[i];
                    sum += sc * dot;
                    offset += m * (s16[2 * j] + s16[2 * j + 1]);
                }
                total += Half(block, 0) * scales[b] * sum - Half(block, 2) * scales[b] * offset;
            }
            integers[b] = (sum, offset);
        }
        return total;
    }

    private static float Half(ReadOnlySpan<byte> block, int at) => (float)BitConverter.UInt16BitsToHalf(MemoryMarshal.Read<ushort>(block[at..]));

    /// <summary>The decode kernel form this CPU takes: 512-bit where AVX-512 BW is on, else AVX-VNNI's <c>vpdpwssd</c>, else AVX2.</summary>
    internal static KQuantForm DecodeForm => Avx512BW.IsSupported ? KQuantForm.Wide : AvxVnni.IsSupported ? KQuantForm.Vnni : KQuantForm.Avx2;

    /// <summary>
    /// y[0 … rows − 1] = rows w, w + rowBytes, … (blocks super-blocks each) against one quantized
    /// activation; rows is 1 to 4. <paramref name="form"/>: <see cref="KQuantForm.Vnni"/> takes <c>vpdpwssd</c> (needs AVX-VNNI),
    /// <see cref="KQuantForm.Avx2"/> <c>vpmaddwd</c> + add, <see cref="KQuantForm.Wide"/> the 512-bit Q2_K, Q3_K, Q4_K and Q6_K kernels
    /// (needs AVX-512 BW; Q5_K takes the AVX-VNNI or AVX2 form there: its 512-bit form, the fifth bits shifted in per half,
    /// was faster resident but slower from memory, one thread: 28 against 32 cycles per super-block and row, 32 against 27).
    /// All forms give bit-identical results: the same integer in each of 8 lanes, the same float steps.
    /// </summary>
    internal static void Dot4(GgmlType type, KQuantForm form, byte* w, long rowBytes, int rows, sbyte* quants, float* scales, short* sums, int blocks, float* y)
    {
        if (rows is < 1 or > 4) throw new ArgumentOutOfRangeException(nameof(rows), rows, "1 to 4 rows");
        if (form == KQuantForm.Vnni && !AvxVnni.IsSupported) throw new PlatformNotSupportedException("the AVX-VNNI kernel needs AVX-VNNI");
        if (form == KQuantForm.Wide && !Avx512BW.IsSupported) throw new PlatformNotSupportedException("the 512-bit kernel needs AVX-512 BW");
        bool vnni = form == KQuantForm.Vnni || (form == KQuantForm.Wide && AvxVnni.IsSupported);
        // One row at a time: the rows are consecutive, so the group streams in order and the hardware prefetcher keeps up
        // (software prefetch ahead measured slower). Four rows interleaved sharing each x load need more than AVX2's 16
        // registers, and the JIT's spills cost more than the shared loads save: Q6_K, one thread, 37–50 cycles per
        // super-block and row before, 23–28 after.
        for (int r = 0; r < rows; r++)
        {
            byte* row = w + r * rowBytes;
            y[r] = type switch
            {
                GgmlType.Q2_K when form == KQuantForm.Wide => Q23KRowWide<Q2KWide>(row, quants, scales, sums, blocks),
                GgmlType.Q2_K when vnni => Q2KRow<Vnni>(row, quants, scales, sums, blocks),
                GgmlType.Q2_K => Q2KRow<MaddAdd>(row, quants, scales, sums, blocks),
                GgmlType.Q3_K when form == KQuantForm.Wide => Q23KRowWide<Q3KWide>(row, quants, scales, sums, blocks),
                GgmlType.Q3_K when vnni => Q3KRow<Vnni>(row, quants, scales, sums, blocks),
                GgmlType.Q3_K => Q3KRow<MaddAdd>(row, quants, scales, sums, blocks),
                GgmlType.Q4_K when form == KQuantForm.Wide => Q4KRowWide(row, quants, scales, sums, blocks),
                GgmlType.Q4_K when vnni => Q45KRow<Vnni, NoFifthBit>(row, 144, quants, scales, sums, blocks),
                GgmlType.Q4_K => Q45KRow<MaddAdd, NoFifthBit>(row, 144, quants, scales, sums, blocks),
                GgmlType.Q5_K when vnni => Q45KRow<Vnni, FifthBit>(row, 176, quants, scales, sums, blocks),
                GgmlType.Q5_K => Q45KRow<MaddAdd, FifthBit>(row, 176, quants, scales, sums, blocks),
                GgmlType.Q6_K when form == KQuantForm.Wide => Q6KRowWide(row, quants, scales, sums, blocks),
                GgmlType.Q6_K when vnni => Q6KRow<Vnni>(row, quants, scales, sums, blocks),
                GgmlType.Q6_K => Q6KRow<MaddAdd>(row, quants, scales, sums, blocks),
                _ => throw new NotSupportedException($"no 8-bit activation kernel for {type}"),
            };
        }
    }

    /// <summary>
    /// Output rows [rowStart, rowEnd) of a K-quant matrix for every quantized input. A prompt takes
    /// blocks of rows that fit in L2 (up to 64 rows, about 256 KB) against the inputs four at a time
    /// (their 8-bit rows, 4·n bytes, stay in L1 while the block's rows pass): each row's scales and
    /// unpacked quants are made once for four inputs (<see cref="Row4Inputs"/>), and the inputs are
    /// read once per block, not once per four rows (a 128-token prompt against 5632-wide rows would
    /// otherwise stream 720 KB of activations per four rows). The last inputs of a batch and decode
    /// take <see cref="Dot4"/>, four rows at a time.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void Rows(in TensorData weight, sbyte* quants, float* scales, short* sums, float* y, int nBatch, int rowStart, int rowEnd)
    {
        int nIn = weight.RowLength, nOut = weight.RowCount, blocks = nIn / BlockSize;
        long rowBytes = weight.RowBytes;
        bool vnni = AvxVnni.IsSupported;
        KQuantForm form = DecodeForm;
        int blockRows = (int)Math.Clamp((256 << 10) / rowBytes, 4, 64) & ~3;
        int grouped = nBatch & ~3;
        for (int o = rowStart; o < rowEnd; o += blockRows)
        {
            int end = Math.Min(rowEnd, o + blockRows);
            for (int b = 0; b < grouped; b += 4)
                for (int r = o; r < end; r++)
                    Row4Inputs(weight.Type, vnni, weight.Data + r * rowBytes, quants + (long)b * nIn, scales + (long)b * blocks, sums + (long)b * (nIn / 16), nIn, blocks, y + (long)b * nOut + r, nOut);
        }
        if (grouped == nBatch) return;
        for (int o = rowStart; o < rowEnd; o += 4)
        {
            int rows = Math.Min(4, rowEnd - o);
            for (int b = grouped; b < nBatch; b++)
                Dot4(weight.Type, form, weight.Data + o * rowBytes, rowBytes, rows, quants + (long)b * nIn, scales + (long)b * blocks, sums + (long)b * (nIn / 16), blocks, y + (long)b * nOut + o);
        }
    }

    /// <summary>
    /// One stored row against four quantized inputs (n values apart; their scales blocks apart, sums
    /// n / 16 apart): y[0], y[yStride], y[2·yStride], y[3·yStride]. Each input's result is bit-identical
    /// to <see cref="Dot4"/>'s (the same integer sums and float steps in the same order).
    /// </summary>
    internal static void Row4Inputs(GgmlType type, bool vnni, byte* w, sbyte* quants, float* scales, short* sums, int n, int blocks, float* y, int yStride)
    {
        if (vnni && !AvxVnni.IsSupported) throw new PlatformNotSupportedException("the AVX-VNNI kernel needs AVX-VNNI");
        switch (type)
        {
            case GgmlType.Q4_K when vnni: Q45KInputs<Vnni, NoFifthBit>(w, 144, quants, scales, sums, n, blocks, y, yStride); break;
            case GgmlType.Q4_K: Q45KInputs<MaddAdd, NoFifthBit>(w, 144, quants, scales, sums, n, blocks, y, yStride); break;
            case GgmlType.Q5_K when vnni: Q45KInputs<Vnni, FifthBit>(w, 176, quants, scales, sums, n, blocks, y, yStride); break;
            case GgmlType.Q5_K: Q45KInputs<MaddAdd, FifthBit>(w, 176, quants, scales, sums, n, blocks, y, yStride); break;
            case GgmlType.Q6_K when vnni: Q6KInputs<Vnni>(w, quants, scales, sums, n, blocks, y, yStride); break;
            case GgmlType.Q6_K: Q6KInputs<MaddAdd>(w, quants, scales, sums, n, blocks, y, yStride); break;
            case GgmlType.Q2_K when vnni: Q2KInputs<Vnni>(w, quants, scales, sums, n, blocks, y, yStride); break;
            case GgmlType.Q2_K: Q2KInputs<MaddAdd>(w, quants, scales, sums, n, blocks, y, yStride); break;
            case GgmlType.Q3_K when vnni: Q3KInputs<Vnni>(w, quants, scales, sums, n, blocks, y, yStride); break;
            case GgmlType.Q3_K: Q3KInputs<MaddAdd>(w, quants, scales, sums, n, blocks, y, yStride); break;
            default: throw new NotSupportedException($"no 8-bit activation kernel for {type}");
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Q45KInputs<TAdd, TFifth>(byte* w, int blockBytes, sbyte* quants, float* scales, short* sums, int n, int blocks, float* y, int yStride)
        where TAdd : struct, IScaledAdd where TFifth : struct, IFifthBit
    {
        float* halves = HalfTable.Pointer;
        int* s = stackalloc int[8];
        int sumStride = n / 16;
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        for (int b = 0; b < blocks; b++)
        {
            byte* block = w + b * blockBytes;
            Vector256<short> mins = ScalesMins(block, s);
            Vector256<int> i0 = default, i1 = default, i2 = default, i3 = default;
            sbyte* xb = quants + BlockSize * b;
            for (int g = 0; g < 4; g++)
            {
                // The group's values and scales once for the four inputs.
                Vector256<byte> packed = Vector256.Load(block + TFifth.Nibbles + 32 * g), mask = Vector256.Create((byte)0x0F);
                Vector256<byte> low = TFifth.Low(block, g, packed & mask);
                Vector256<byte> high = TFifth.High(block, g, Vector256.ShiftRightLogical(packed.AsUInt16(), 4).AsByte() & mask);
                Vector256<short> sl = Avx2.BroadcastScalarToVector256(s + 2 * g).AsInt16(), sh = Avx2.BroadcastScalarToVector256(s + 2 * g + 1).AsInt16();
                i0 = Q45KInput<TAdd>(low, high, xb + 64 * g, sl, sh, i0);
                i1 = Q45KInput<TAdd>(low, high, xb + n + 64 * g, sl, sh, i1);
                i2 = Q45KInput<TAdd>(low, high, xb + 2 * n + 64 * g, sl, sh, i2);
                i3 = Q45KInput<TAdd>(low, high, xb + 3 * n + 64 * g, sl, sh, i3);
            }
            short* xs = sums + 16 * b;
            a0 = Finish(block, halves, scales[b], i0, Avx2.MultiplyAddAdjacent(Vector256.Load(xs), mins), a0);
            a1 = Finish(block, halves, scales[blocks + b], i1, Avx2.MultiplyAddAdjacent(Vector256.Load(xs + sumStride), mins), a1);
            a2 = Finish(block, halves, scales[2 * blocks + b], i2, Avx2.MultiplyAddAdjacent(Vector256.Load(xs + 2 * sumStride), mins), a2);
            a3 = Finish(block, halves, scales[3 * blocks + b], i3, Avx2.MultiplyAddAdjacent(Vector256.Load(xs + 3 * sumStride), mins), a3);
        }
        y[0] = Vector256.Sum(a0); y[yStride] = Vector256.Sum(a1); y[2 * yStride] = Vector256.Sum(a2); y[3 * yStride] = Vector256.Sum(a3);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> Q45KInput<TAdd>(Vector256<byte> low, Vector256<byte> high, sbyte* x, Vector256<short> sl, Vector256<short> sh, Vector256<int> total)
        where TAdd : struct, IScaledAdd
    {
        total = TAdd.Add(total, Avx2.MultiplyAddAdjacent(low, Vector256.Load(x)), sl);
        return TAdd.Add(total, Avx2.MultiplyAddAdjacent(high, Vector256.Load(x + 32)), sh);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Q6KInputs<TAdd>(byte* w, sbyte* quants, float* scales, short* sums, int n, int blocks, float* y, int yStride)
        where TAdd : struct, IScaledAdd
    {
        float* halves = HalfTable.Pointer;
        short* s = stackalloc short[16];
        int sumStride = n / 16;
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        for (int b = 0; b < blocks; b++)
        {
            byte* block = w + b * 210;
            short* xs = sums + 16 * b;
            Vector256<int> i0 = Q6KScales(block, Vector256.Load(xs), s), i1 = Q6KScales(block, Vector256.Load(xs + sumStride), s);
            Vector256<int> i2 = Q6KScales(block, Vector256.Load(xs + 2 * sumStride), s), i3 = Q6KScales(block, Vector256.Load(xs + 3 * sumStride), s);
            sbyte* xb = quants + BlockSize * b;
            Q6KInputsHalf<TAdd>(block, xb, n, s, 0, ref i0, ref i1, ref i2, ref i3);
            Q6KInputsHalf<TAdd>(block, xb, n, s, 1, ref i0, ref i1, ref i2, ref i3);
            float d = HalfTable.ToSingle(halves, ref block[208]);
            a0 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(i0), Vector256.Create(d * scales[b]), a0);
            a1 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(i1), Vector256.Create(d * scales[blocks + b]), a1);
            a2 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(i2), Vector256.Create(d * scales[2 * blocks + b]), a2);
            a3 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(i3), Vector256.Create(d * scales[3 * blocks + b]), a3);
        }
        y[0] = Vector256.Sum(a0); y[yStride] = Vector256.Sum(a1); y[2 * yStride] = Vector256.Sum(a2); y[3 * yStride] = Vector256.Sum(a3);
    }

    /// <summary>Half h of one Q6_K super-block against four inputs: each 32 values unpacked and their scales shuffled once for the four.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Q6KInputsHalf<TAdd>(byte* block, sbyte* xb, int n, short* s, int h, ref Vector256<int> i0, ref Vector256<int> i1, ref Vector256<int> i2, ref Vector256<int> i3)
        where TAdd : struct, IScaledAdd
    {
        Vector256<byte> a = Vector256.Load(block + 64 * h), c = Vector256.Load(block + 64 * h + 32);
        Vector256<ushort> bits = Vector256.Load((ushort*)(block + 128 + 32 * h));
        Vector256<byte> low = Vector256.Create((byte)0x0F), top = Vector256.Create((byte)0x30);
        Vector256<byte> all = Vector256.Load((byte*)s);
        sbyte* x = xb + 128 * h;
        Vector256<byte> q = (a & low) | (Vector256.ShiftLeft(bits, 4).AsByte() & top);
        Q6KInputs4<TAdd>(q, x, n, Avx2.Shuffle(all, PairShuffle(4 * h)).AsInt16(), ref i0, ref i1, ref i2, ref i3);
        q = (c & low) | (Vector256.ShiftLeft(bits, 2).AsByte() & top);
        Q6KInputs4<TAdd>(q, x + 32, n, Avx2.Shuffle(all, PairShuffle(4 * h + 1)).AsInt16(), ref i0, ref i1, ref i2, ref i3);
        q = (Vector256.ShiftRightLogical(a.AsUInt16(), 4).AsByte() & low) | (bits.AsByte() & top);
        Q6KInputs4<TAdd>(q, x + 64, n, Avx2.Shuffle(all, PairShuffle(4 * h + 2)).AsInt16(), ref i0, ref i1, ref i2, ref i3);
        q = (Vector256.ShiftRightLogical(c.AsUInt16(), 4).AsByte() & low) | (Vector256.ShiftRightLogical(bits, 2).AsByte() & top);
        Q6KInputs4<TAdd>(q, x + 96, n, Avx2.Shuffle(all, PairShuffle(4 * h + 3)).AsInt16(), ref i0, ref i1, ref i2, ref i3);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Q6KInputs4<TAdd>(Vector256<byte> q, sbyte* x, int n, Vector256<short> scale, ref Vector256<int> i0, ref Vector256<int> i1, ref Vector256<int> i2, ref Vector256<int> i3)
        where TAdd : struct, IScaledAdd
    {
        i0 = TAdd.Add(i0, Avx2.MultiplyAddAdjacent(q, Vector256.Load(x)), scale);
        i1 = TAdd.Add(i1, Avx2.MultiplyAddAdjacent(q, Vector256.Load(x + n)), scale);
        i2 = TAdd.Add(i2, Avx2.MultiplyAddAdjacent(q, Vector256.Load(x + 2 * n)), scale);
        i3 = TAdd.Add(i3, Avx2.MultiplyAddAdjacent(q, Vector256.Load(x + 3 * n)), scale);
    }

    /// <summary>Q2_K against four inputs: each plane unpacked and its scales shuffled once for the four (the float steps of <see cref="Q2KRow"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Q2KInputs<TAdd>(byte* w, sbyte* quants, float* scales, short* sums, int n, int blocks, float* y, int yStride)
        where TAdd : struct, IScaledAdd
    {
        float* halves = HalfTable.Pointer;
        int sumStride = n / 16;
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        for (int b = 0; b < blocks; b++)
        {
            byte* block = w + b * 84;
            Vector128<byte> packed = Vector128.Load(block), nibble = Vector128.Create((byte)0x0F);
            Vector256<byte> pairs = Avx2.ConvertToVector256Int16(Ssse3.Shuffle(packed & nibble, EvenOdd)).AsByte();
            Vector256<int> i0 = default, i1 = default, i2 = default, i3 = default;
            sbyte* xb = quants + BlockSize * b;
            Vector256<byte> lowTwoBits = Vector256.Create((byte)3);
            for (int h = 0; h < 2; h++)
            {
                Vector256<ushort> q = Vector256.Load((ushort*)(block + 16 + 32 * h));
                sbyte* x = xb + 128 * h;
                Q6KInputs4<TAdd>(q.AsByte() & lowTwoBits, x, n, Avx2.Shuffle(pairs, PairShuffle(4 * h)).AsInt16(), ref i0, ref i1, ref i2, ref i3);
                Q6KInputs4<TAdd>(Vector256.ShiftRightLogical(q, 2).AsByte() & lowTwoBits, x + 32, n, Avx2.Shuffle(pairs, PairShuffle(4 * h + 1)).AsInt16(), ref i0, ref i1, ref i2, ref i3);
                Q6KInputs4<TAdd>(Vector256.ShiftRightLogical(q, 4).AsByte() & lowTwoBits, x + 64, n, Avx2.Shuffle(pairs, PairShuffle(4 * h + 2)).AsInt16(), ref i0, ref i1, ref i2, ref i3);
                Q6KInputs4<TAdd>(Vector256.ShiftRightLogical(q, 6).AsByte() & lowTwoBits, x + 96, n, Avx2.Shuffle(pairs, PairShuffle(4 * h + 3)).AsInt16(), ref i0, ref i1, ref i2, ref i3);
            }
            Vector256<short> mins = Avx2.ConvertToVector256Int16(Vector128.ShiftRightLogical(packed.AsUInt16(), 4).AsByte() & nibble);
            float d = HalfTable.ToSingle(halves, ref block[80]), dmin = HalfTable.ToSingle(halves, ref block[82]);
            short* xs = sums + 16 * b;
            a0 = Q2KFinish(i0, Avx2.MultiplyAddAdjacent(mins, Vector256.Load(xs)), d * scales[b], dmin * scales[b], a0);
            a1 = Q2KFinish(i1, Avx2.MultiplyAddAdjacent(mins, Vector256.Load(xs + sumStride)), d * scales[blocks + b], dmin * scales[blocks + b], a1);
            a2 = Q2KFinish(i2, Avx2.MultiplyAddAdjacent(mins, Vector256.Load(xs + 2 * sumStride)), d * scales[2 * blocks + b], dmin * scales[2 * blocks + b], a2);
            a3 = Q2KFinish(i3, Avx2.MultiplyAddAdjacent(mins, Vector256.Load(xs + 3 * sumStride)), d * scales[3 * blocks + b], dmin * scales[3 * blocks + b], a3);
        }
        y[0] = Vector256.Sum(a0); y[yStride] = Vector256.Sum(a1); y[2 * yStride] = Vector256.Sum(a2); y[3 * yStride] = Vector256.Sum(a3);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Q2KFinish(Vector256<int> sum, Vector256<int> offset, float d, float dmin, Vector256<float> acc) =>
        Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(sum), Vector256.Create(d), Fma.MultiplyAddNegated(Vector256.ConvertToSingle(offset), Vector256.Create(dmin), acc));

    /// <summary>Q3_K against four inputs, as <see cref="Q2KInputs"/> (the float steps of <see cref="Q3KRow"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Q3KInputs<TAdd>(byte* w, sbyte* quants, float* scales, short* sums, int n, int blocks, float* y, int yStride)
        where TAdd : struct, IScaledAdd
    {
        float* halves = HalfTable.Pointer;
        int sumStride = n / 16;
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        for (int b = 0; b < blocks; b++)
        {
            byte* block = w + b * 110;
            Vector128<sbyte> sc = Q3KScales(block);
            Vector256<short> sc16 = Avx2.ConvertToVector256Int16(sc);
            short* xs = sums + 16 * b;
            // −4·Σ sc_k·Σx_k, the offset the unsigned quants leave out.
            Vector256<int> i0 = -Vector256.ShiftLeft(Avx2.MultiplyAddAdjacent(sc16, Vector256.Load(xs)), 2);
            Vector256<int> i1 = -Vector256.ShiftLeft(Avx2.MultiplyAddAdjacent(sc16, Vector256.Load(xs + sumStride)), 2);
            Vector256<int> i2 = -Vector256.ShiftLeft(Avx2.MultiplyAddAdjacent(sc16, Vector256.Load(xs + 2 * sumStride)), 2);
            Vector256<int> i3 = -Vector256.ShiftLeft(Avx2.MultiplyAddAdjacent(sc16, Vector256.Load(xs + 3 * sumStride)), 2);
            Vector256<byte> pairs = Avx2.ConvertToVector256Int16(Ssse3.Shuffle(sc, EvenOdd.AsSByte())).AsByte();
            Vector256<ushort> high = Vector256.Load((ushort*)block);
            Vector256<byte> lowTwoBits = Vector256.Create((byte)3), bit = Vector256.Create((byte)4);
            sbyte* x = quants + BlockSize * b;
            // The planes as Q3KHalf0 and Q3KHalf1 make them: high bit 4h + p to bit 2 (16-bit shifts; crossing bits fall outside the masks).
            Vector256<ushort> q = Vector256.Load((ushort*)(block + 32));
            Q6KInputs4<TAdd>((q.AsByte() & lowTwoBits) | (Vector256.ShiftLeft(high, 2).AsByte() & bit), x, n, Avx2.Shuffle(pairs, PairShuffle(0)).AsInt16(), ref i0, ref i1, ref i2, ref i3);
            Q6KInputs4<TAdd>((Vector256.ShiftRightLogical(q, 2).AsByte() & lowTwoBits) | (Vector256.ShiftLeft(high, 1).AsByte() & bit), x + 32, n, Avx2.Shuffle(pairs, PairShuffle(1)).AsInt16(), ref i0, ref i1, ref i2, ref i3);
            Q6KInputs4<TAdd>((Vector256.ShiftRightLogical(q, 4).AsByte() & lowTwoBits) | (high.AsByte() & bit), x + 64, n, Avx2.Shuffle(pairs, PairShuffle(2)).AsInt16(), ref i0, ref i1, ref i2, ref i3);
            Q6KInputs4<TAdd>((Vector256.ShiftRightLogical(q, 6).AsByte() & lowTwoBits) | (Vector256.ShiftRightLogical(high, 1).AsByte() & bit), x + 96, n, Avx2.Shuffle(pairs, PairShuffle(3)).AsInt16(), ref i0, ref i1, ref i2, ref i3);
            q = Vector256.Load((ushort*)(block + 64));
            Q6KInputs4<TAdd>((q.AsByte() & lowTwoBits) | (Vector256.ShiftRightLogical(high, 2).AsByte() & bit), x + 128, n, Avx2.Shuffle(pairs, PairShuffle(4)).AsInt16(), ref i0, ref i1, ref i2, ref i3);
            Q6KInputs4<TAdd>((Vector256.ShiftRightLogical(q, 2).AsByte() & lowTwoBits) | (Vector256.ShiftRightLogical(high, 3).AsByte() & bit), x + 160, n, Avx2.Shuffle(pairs, PairShuffle(5)).AsInt16(), ref i0, ref i1, ref i2, ref i3);
            Q6KInputs4<TAdd>((Vector256.ShiftRightLogical(q, 4).AsByte() & lowTwoBits) | (Vector256.ShiftRightLogical(high, 4).AsByte() & bit), x + 192, n, Avx2.Shuffle(pairs, PairShuffle(6)).AsInt16(), ref i0, ref i1, ref i2, ref i3);
            Q6KInputs4<TAdd>((Vector256.ShiftRightLogical(q, 6).AsByte() & lowTwoBits) | (Vector256.ShiftRightLogical(high, 5).AsByte() & bit), x + 224, n, Avx2.Shuffle(pairs, PairShuffle(7)).AsInt16(), ref i0, ref i1, ref i2, ref i3);
            float d = HalfTable.ToSingle(halves, ref block[108]);
            a0 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(i0), Vector256.Create(d * scales[b]), a0);
            a1 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(i1), Vector256.Create(d * scales[blocks + b]), a1);
            a2 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(i2), Vector256.Create(d * scales[2 * blocks + b]), a2);
            a3 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(i3), Vector256.Create(d * scales[3 * blocks + b]), a3);
        }
        y[0] = Vector256.Sum(a0); y[yStride] = Vector256.Sum(a1); y[2 * yStride] = Vector256.Sum(a2); y[3 * yStride] = Vector256.Sum(a3);
    }

    /// <summary>accumulator + pairs · scales, 16-bit products summed in pairs into 32-bit lanes.</summary>
    private interface IScaledAdd
    {
        static abstract Vector256<int> Add(Vector256<int> accumulator, Vector256<short> pairs, Vector256<short> scales);
    }

    private readonly struct MaddAdd : IScaledAdd
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<int> Add(Vector256<int> accumulator, Vector256<short> pairs, Vector256<short> scales) =>
            accumulator + Avx2.MultiplyAddAdjacent(pairs, scales);
    }

    private readonly struct Vnni : IScaledAdd
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<int> Add(Vector256<int> accumulator, Vector256<short> pairs, Vector256<short> scales) =>
            AvxVnni.MultiplyWideningAndAdd(accumulator, pairs, scales);
    }

    // ---- Q4_K (144 B) and Q5_K (176 B): f16 d, dmin, 12 bytes of 6-bit scales and minimums; group g (0–3) of
    // 32 nibble bytes holds values 64g + l (low nibbles, sub-block 2g) and 64g + 32 + l (high, sub-block 2g + 1).

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float Q45KRow<TAdd, TFifth>(byte* w, int blockBytes, sbyte* quants, float* scales, short* sums, int blocks)
        where TAdd : struct, IScaledAdd where TFifth : struct, IFifthBit
    {
        float* halves = HalfTable.Pointer;
        int* s = stackalloc int[8]; // the 8 scales, each as a pair of equal 16-bit halves, broadcast from memory (a load, no vector ALU operation)
        Vector256<float> acc = default;
        // Pointers stepped per super-block: fewer instructions than indexing, which bound this loop as much as its vector operations.
        byte* block = w;
        sbyte* x = quants;
        for (float* end = scales + blocks; scales < end; scales++, block += blockBytes, x += BlockSize, sums += 16)
        {
            // Σ m_j·(Σx over sub-block j) in 8 lanes: the minimum pairs meet the 16-sums pairwise.
            Vector256<int> mins = Avx2.MultiplyAddAdjacent(Vector256.Load(sums), ScalesMins(block, s));
            Vector256<int> sum = Q45KGroup<TAdd, TFifth>(block, x, s, 0, default);
            sum = Q45KGroup<TAdd, TFifth>(block, x, s, 1, sum);
            sum = Q45KGroup<TAdd, TFifth>(block, x, s, 2, sum);
            sum = Q45KGroup<TAdd, TFifth>(block, x, s, 3, sum);
            acc = Finish(block, halves, *scales, sum, mins, acc);
        }
        return Vector256.Sum(acc);
    }

    /// <summary>Group g (values 64g … 64g + 63, sub-blocks 2g and 2g + 1) of one super-block.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> Q45KGroup<TAdd, TFifth>(byte* block, sbyte* x, int* s, int g, Vector256<int> total)
        where TAdd : struct, IScaledAdd where TFifth : struct, IFifthBit
    {
        Vector256<byte> packed = Vector256.Load(block + TFifth.Nibbles + 32 * g), mask = Vector256.Create((byte)0x0F);
        Vector256<byte> low = TFifth.Low(block, g, packed & mask);
        Vector256<byte> high = TFifth.High(block, g, Vector256.ShiftRightLogical(packed.AsUInt16(), 4).AsByte() & mask);
        total = TAdd.Add(total, Avx2.MultiplyAddAdjacent(low, Vector256.Load(x + 64 * g)), Avx2.BroadcastScalarToVector256(s + 2 * g).AsInt16());
        return TAdd.Add(total, Avx2.MultiplyAddAdjacent(high, Vector256.Load(x + 64 * g + 32)), Avx2.BroadcastScalarToVector256(s + 2 * g + 1).AsInt16());
    }

    /// <summary>Stores the block's 8 scales as 16-bit pairs at s and returns its 8 minimums as 16-bit pairs.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<short> ScalesMins(byte* block, int* s)
    {
        (Vector256<int> scales, Vector256<int> mins) = ChunkedQuant.ScalesK4Integers(block);
        (scales | Vector256.ShiftLeft(scales, 16)).Store(s);
        return (mins | Vector256.ShiftLeft(mins, 16)).AsInt16();
    }

    /// <summary>total + d·dx·(integer sums) − dmin·dx·(integer minimum terms), lane by lane.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Finish(byte* block, float* halves, float dx, Vector256<int> sums, Vector256<int> mins, Vector256<float> total)
    {
        float d = HalfTable.ToSingle(halves, ref *block) * dx, dmin = HalfTable.ToSingle(halves, ref block[2]) * dx;
        total = Fma.MultiplyAddNegated(Vector256.ConvertToSingle(mins), Vector256.Create(dmin), total);
        return Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(sums), Vector256.Create(d), total);
    }

    // ---- Q6_K (210 B): 128 bytes of low nibbles, 64 of high bit pairs, 16 signed scales, f16 d. Half h (0, 1):
    // bytes A = ql[64h …], C = ql[64h + 32 …], H = qh[32h …] give values 128h + (0, 32, 64, 96) + l from
    // A's low nibbles, C's low, A's high, C's high with H's bit pairs 0–3: each 32 values are two sub-blocks.

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float Q6KRow<TAdd>(byte* w, sbyte* quants, float* scales, short* sums, int blocks)
        where TAdd : struct, IScaledAdd
    {
        float* halves = HalfTable.Pointer;
        Vector256<float> acc = default;
        byte* block = w;
        sbyte* x = quants;
        for (float* end = scales + blocks; scales < end; scales++, block += 210, x += BlockSize, sums += 16)
        {
            Vector128<sbyte> sc = Vector128.Load((sbyte*)block + 192);
            // Even sub-blocks' scales in the low 128 bits, odd ones in the high (a 32-value product's halves).
            Vector256<byte> pairs = Avx2.ConvertToVector256Int16(Ssse3.Shuffle(sc, Vector128.Create((sbyte)0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15))).AsByte();
            Vector256<int> sum = Q6KHalf<TAdd>(block, block + 128, x, pairs, 0, default);
            sum = Q6KHalf<TAdd>(block + 64, block + 160, x + 128, pairs, 4, sum);
            // −32·Σ sc_k·Σx_k, the offset the unsigned quants leave out.
            sum -= Vector256.ShiftLeft(Avx2.MultiplyAddAdjacent(Avx2.ConvertToVector256Int16(sc), Vector256.Load(sums)), 5);
            acc = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(sum), Vector256.Create(HalfTable.ToSingle(halves, ref block[208]) * *scales), acc);
        }
        return Vector256.Sum(acc);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> Q6KHalf<TAdd>(byte* ql, byte* qh, sbyte* x, Vector256<byte> pairs, int pair, Vector256<int> total)
        where TAdd : struct, IScaledAdd
    {
        Vector256<byte> a = Vector256.Load(ql), c = Vector256.Load(ql + 32);
        Vector256<ushort> h = Vector256.Load((ushort*)qh);
        Vector256<byte> low = Vector256.Create((byte)0x0F), top = Vector256.Create((byte)0x30);
        // 16-bit shifts: bits crossing from the neighbouring byte fall outside the masks.
        Vector256<byte> q0 = (a & low) | (Vector256.ShiftLeft(h, 4).AsByte() & top);
        total = TAdd.Add(total, Avx2.MultiplyAddAdjacent(q0, Vector256.Load(x)), Avx2.Shuffle(pairs, PairShuffle(pair)).AsInt16());
        Vector256<byte> q1 = (c & low) | (Vector256.ShiftLeft(h, 2).AsByte() & top);
        total = TAdd.Add(total, Avx2.MultiplyAddAdjacent(q1, Vector256.Load(x + 32)), Avx2.Shuffle(pairs, PairShuffle(pair + 1)).AsInt16());
        Vector256<byte> q2 = (Vector256.ShiftRightLogical(a.AsUInt16(), 4).AsByte() & low) | (h.AsByte() & top);
        total = TAdd.Add(total, Avx2.MultiplyAddAdjacent(q2, Vector256.Load(x + 64)), Avx2.Shuffle(pairs, PairShuffle(pair + 2)).AsInt16());
        Vector256<byte> q3 = (Vector256.ShiftRightLogical(c.AsUInt16(), 4).AsByte() & low) | (Vector256.ShiftRightLogical(h, 2).AsByte() & top);
        return TAdd.Add(total, Avx2.MultiplyAddAdjacent(q3, Vector256.Load(x + 96)), Avx2.Shuffle(pairs, PairShuffle(pair + 3)).AsInt16());
    }

    /// <summary>Stores the 16 scales (even sub-blocks, then odd) at s and returns the start of the sum: −32·Σ sc_k·Σx_k in 8 lanes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> Q6KScales(byte* block, Vector256<short> xs, short* s)
    {
        Vector128<sbyte> sc = Vector128.Load((sbyte*)block + 192);
        Avx2.ConvertToVector256Int16(Ssse3.Shuffle(sc, Vector128.Create((sbyte)0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15))).Store(s);
        return -Vector256.ShiftLeft(Avx2.MultiplyAddAdjacent(Avx2.ConvertToVector256Int16(sc), xs), 5);
    }

    // ---- Q2_K (84 B): 16 bytes of 4-bit scale (low) and minimum (high), 64 quant bytes, f16 d and dmin. Q3_K (110 B):
    // 32 bytes of high bits, 64 quant bytes, 12 bytes of 6-bit scales, f16 d. Half h's 32 quant bytes hold values
    // 128h + 32p + l in bits 2p, 2p + 1 of byte l (plane p, 0–3); Q3_K's high bit of that value is bit 4h + p of byte l.
    // Bytes 0–15 of a plane are sub-block 8h + 2p, bytes 16–31 sub-block 8h + 2p + 1: the scales go in pairs as Q6_K's.

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float Q2KRow<TAdd>(byte* w, sbyte* quants, float* scales, short* sums, int blocks)
        where TAdd : struct, IScaledAdd
    {
        float* halves = HalfTable.Pointer;
        Vector256<float> acc = default;
        byte* block = w;
        sbyte* x = quants;
        for (float* end = scales + blocks; scales < end; scales++, block += 84, x += BlockSize, sums += 16)
        {
            Vector128<byte> packed = Vector128.Load(block), nibble = Vector128.Create((byte)0x0F);
            Vector256<byte> pairs = Avx2.ConvertToVector256Int16(Ssse3.Shuffle(packed & nibble, EvenOdd)).AsByte();
            // Σ m_k·Σx_k: the minimums meet the 16-sums pairwise.
            Vector256<short> mins = Avx2.ConvertToVector256Int16(Vector128.ShiftRightLogical(packed.AsUInt16(), 4).AsByte() & nibble);
            Vector256<int> offset = Avx2.MultiplyAddAdjacent(mins, Vector256.Load(sums));
            Vector256<int> sum = Q2KHalf<TAdd>(Vector256.Load(block + 16), x, pairs, 0, default);
            sum = Q2KHalf<TAdd>(Vector256.Load(block + 48), x + 128, pairs, 4, sum);
            float d = HalfTable.ToSingle(halves, ref block[80]) * *scales, dmin = HalfTable.ToSingle(halves, ref block[82]) * *scales;
            acc = Fma.MultiplyAddNegated(Vector256.ConvertToSingle(offset), Vector256.Create(dmin), acc);
            acc = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(sum), Vector256.Create(d), acc);
        }
        return Vector256.Sum(acc);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> Q2KHalf<TAdd>(Vector256<byte> q, sbyte* x, Vector256<byte> pairs, int pair, Vector256<int> total)
        where TAdd : struct, IScaledAdd
    {
        Vector256<byte> lowTwoBits = Vector256.Create((byte)3);
        // 16-bit shifts: bits crossing from the neighbouring byte fall outside the mask.
        total = TAdd.Add(total, Avx2.MultiplyAddAdjacent(q & lowTwoBits, Vector256.Load(x)), Avx2.Shuffle(pairs, PairShuffle(pair)).AsInt16());
        total = TAdd.Add(total, Avx2.MultiplyAddAdjacent(Vector256.ShiftRightLogical(q.AsUInt16(), 2).AsByte() & lowTwoBits, Vector256.Load(x + 32)), Avx2.Shuffle(pairs, PairShuffle(pair + 1)).AsInt16());
        total = TAdd.Add(total, Avx2.MultiplyAddAdjacent(Vector256.ShiftRightLogical(q.AsUInt16(), 4).AsByte() & lowTwoBits, Vector256.Load(x + 64)), Avx2.Shuffle(pairs, PairShuffle(pair + 2)).AsInt16());
        return TAdd.Add(total, Avx2.MultiplyAddAdjacent(Vector256.ShiftRightLogical(q.AsUInt16(), 6).AsByte() & lowTwoBits, Vector256.Load(x + 96)), Avx2.Shuffle(pairs, PairShuffle(pair + 3)).AsInt16());
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float Q3KRow<TAdd>(byte* w, sbyte* quants, float* scales, short* sums, int blocks)
        where TAdd : struct, IScaledAdd
    {
        float* halves = HalfTable.Pointer;
        Vector256<float> acc = default;
        byte* block = w;
        sbyte* x = quants;
        for (float* end = scales + blocks; scales < end; scales++, block += 110, x += BlockSize, sums += 16)
        {
            Vector128<sbyte> sc = Q3KScales(block);
            Vector256<byte> pairs = Avx2.ConvertToVector256Int16(Ssse3.Shuffle(sc, EvenOdd.AsSByte())).AsByte();
            Vector256<ushort> high = Vector256.Load((ushort*)block);
            Vector256<int> sum = Q3KHalf0<TAdd>(Vector256.Load(block + 32), high, x, pairs);
            sum = Q3KHalf1<TAdd>(Vector256.Load(block + 64), high, x + 128, pairs, sum);
            // −4·Σ sc_k·Σx_k, the offset the unsigned quants leave out.
            sum -= Vector256.ShiftLeft(Avx2.MultiplyAddAdjacent(Avx2.ConvertToVector256Int16(sc), Vector256.Load(sums)), 2);
            acc = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(sum), Vector256.Create(HalfTable.ToSingle(halves, ref block[108]) * *scales), acc);
        }
        return Vector256.Sum(acc);
    }

    /// <summary>Half 0: plane p's high bit is bit p, moved to bit 2 (16-bit shifts; bits crossing from the neighbouring byte fall outside the masks).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> Q3KHalf0<TAdd>(Vector256<byte> q, Vector256<ushort> h, sbyte* x, Vector256<byte> pairs)
        where TAdd : struct, IScaledAdd
    {
        Vector256<byte> lowTwoBits = Vector256.Create((byte)3), bit = Vector256.Create((byte)4);
        Vector256<ushort> q16 = q.AsUInt16();
        Vector256<int> total = TAdd.Add(default, Avx2.MultiplyAddAdjacent((q & lowTwoBits) | (Vector256.ShiftLeft(h, 2).AsByte() & bit), Vector256.Load(x)), Avx2.Shuffle(pairs, PairShuffle(0)).AsInt16());
        total = TAdd.Add(total, Avx2.MultiplyAddAdjacent((Vector256.ShiftRightLogical(q16, 2).AsByte() & lowTwoBits) | (Vector256.ShiftLeft(h, 1).AsByte() & bit), Vector256.Load(x + 32)), Avx2.Shuffle(pairs, PairShuffle(1)).AsInt16());
        total = TAdd.Add(total, Avx2.MultiplyAddAdjacent((Vector256.ShiftRightLogical(q16, 4).AsByte() & lowTwoBits) | (h.AsByte() & bit), Vector256.Load(x + 64)), Avx2.Shuffle(pairs, PairShuffle(2)).AsInt16());
        return TAdd.Add(total, Avx2.MultiplyAddAdjacent((Vector256.ShiftRightLogical(q16, 6).AsByte() & lowTwoBits) | (Vector256.ShiftRightLogical(h, 1).AsByte() & bit), Vector256.Load(x + 96)), Avx2.Shuffle(pairs, PairShuffle(3)).AsInt16());
    }

    /// <summary>Half 1: plane p's high bit is bit 4 + p.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> Q3KHalf1<TAdd>(Vector256<byte> q, Vector256<ushort> h, sbyte* x, Vector256<byte> pairs, Vector256<int> total)
        where TAdd : struct, IScaledAdd
    {
        Vector256<byte> lowTwoBits = Vector256.Create((byte)3), bit = Vector256.Create((byte)4);
        Vector256<ushort> q16 = q.AsUInt16();
        total = TAdd.Add(total, Avx2.MultiplyAddAdjacent((q & lowTwoBits) | (Vector256.ShiftRightLogical(h, 2).AsByte() & bit), Vector256.Load(x)), Avx2.Shuffle(pairs, PairShuffle(4)).AsInt16());
        total = TAdd.Add(total, Avx2.MultiplyAddAdjacent((Vector256.ShiftRightLogical(q16, 2).AsByte() & lowTwoBits) | (Vector256.ShiftRightLogical(h, 3).AsByte() & bit), Vector256.Load(x + 32)), Avx2.Shuffle(pairs, PairShuffle(5)).AsInt16());
        total = TAdd.Add(total, Avx2.MultiplyAddAdjacent((Vector256.ShiftRightLogical(q16, 4).AsByte() & lowTwoBits) | (Vector256.ShiftRightLogical(h, 4).AsByte() & bit), Vector256.Load(x + 64)), Avx2.Shuffle(pairs, PairShuffle(6)).AsInt16());
        return TAdd.Add(total, Avx2.MultiplyAddAdjacent((Vector256.ShiftRightLogical(q16, 6).AsByte() & lowTwoBits) | (Vector256.ShiftRightLogical(h, 5).AsByte() & bit), Vector256.Load(x + 96)), Avx2.Shuffle(pairs, PairShuffle(7)).AsInt16());
    }

    /// <summary>
    /// Q3_K's 16 scales minus 32, in order: low nibbles from bytes 96–103 (scales 0–7 low, 8–15 high), bit pairs from
    /// bytes 104–107 (pair g of byte i is scale 4g + i). Scalar 64-bit steps: two words of 8 scales each.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<sbyte> Q3KScales(byte* block)
    {
        const ulong nibbles = 0x0F0F0F0F0F0F0F0F, pairs = 0x0303030303030303;
        ulong low = Unsafe.ReadUnaligned<ulong>(block + 96), bits = Unsafe.ReadUnaligned<uint>(block + 104);
        // Pairs 0 and 1 of byte i to bytes i and 4 + i (pairs 2 and 3 likewise after a shift by 4).
        ulong first = (bits | bits << 30) & pairs, second = (bits >> 4 | bits << 26) & pairs;
        return Vector128.Create((low & nibbles) | first << 4, (low >> 4 & nibbles) | second << 4).AsSByte() - Vector128.Create((sbyte)32);
    }

    /// <summary>Even bytes then odd: sub-block 2j's scale to lane j, 2j + 1's to lane 8 + j.</summary>
    private static Vector128<byte> EvenOdd => Vector128.Create((byte)0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);

    // ---- 512-bit forms (AVX-512 BW, no 512-bit VNNI in .NET 10: vpmaddubsw + vpmaddwd, each two per cycle on Zen 5): one
    // register takes 64 contiguous activation bytes — two 32-value products — where the 256-bit forms take 32. Each
    // super-block's 16 lanes fold into the 256-bit forms' 8 (lane i + lane i + 8 is the integer the 256-bit kernels hold
    // in lane i), so the float steps and the results are theirs bit for bit. Constants (shift counts, permutations) are
    // made once per row outside the loop: built inside, the JIT re-inserted their halves every super-block.

    /// <summary>
    /// Q4_K, 512 bits: group g's 32 nibble bytes are broadcast to both halves, the upper half shifted right by 4, so one
    /// register holds sub-block 2g (low nibbles) then 2g + 1 (high nibbles), in the order of the activation's values
    /// 64g … 64g + 63; the two sub-blocks' scales come from one <c>vpermd</c> of the 8 scale pairs.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float Q4KRowWide(byte* w, sbyte* quants, float* scales, short* sums, int blocks)
    {
        float* halves = HalfTable.Pointer;
        Vector256<float> acc = default;
        Vector512<byte> mask = Vector512.Create((byte)0x0F);
        Vector512<ushort> shift = Vector512.Create(Vector256<ushort>.Zero, Vector256.Create((ushort)4));
        Vector512<int> pick0 = Vector512.Create(Vector256.Create(0), Vector256.Create(1)), pick1 = Vector512.Create(Vector256.Create(2), Vector256.Create(3));
        Vector512<int> pick2 = Vector512.Create(Vector256.Create(4), Vector256.Create(5)), pick3 = Vector512.Create(Vector256.Create(6), Vector256.Create(7));
        byte* block = w;
        sbyte* x = quants;
        for (float* end = scales + blocks; scales < end; scales++, block += 144, x += BlockSize, sums += 16)
        {
            (Vector256<int> sc, Vector256<int> m) = ChunkedQuant.ScalesK4Integers(block);
            Vector256<int> mins = Avx2.MultiplyAddAdjacent(Vector256.Load(sums), (m | Vector256.ShiftLeft(m, 16)).AsInt16());
            // Each scale as a pair of equal 16-bit halves, the 8 pairs in the low 256 bits (the permutations read no further).
            Vector512<int> pairs = (sc | Vector256.ShiftLeft(sc, 16)).ToVector512Unsafe();
            Vector512<int> sum = Q4KGroupWide(block + 16, x, pairs, pick0, shift, mask) + Q4KGroupWide(block + 48, x + 64, pairs, pick1, shift, mask);
            sum += Q4KGroupWide(block + 80, x + 128, pairs, pick2, shift, mask) + Q4KGroupWide(block + 112, x + 192, pairs, pick3, shift, mask);
            acc = Finish(block, halves, *scales, sum.GetLower() + sum.GetUpper(), mins, acc);
        }
        return Vector256.Sum(acc);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<int> Q4KGroupWide(byte* nibbles, sbyte* x, Vector512<int> pairs, Vector512<int> pick, Vector512<ushort> shift, Vector512<byte> mask)
    {
        Vector512<ushort> packed = Both(nibbles);
        Vector512<byte> q = Avx512BW.ShiftRightLogicalVariable(packed, shift).AsByte() & mask;
        return Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(q, Vector512.Load(x)), Avx512F.PermuteVar16x32(pairs, pick).AsInt16());
    }

    /// <summary>
    /// Q6_K, 512 bits: half h's 64 low-nibble bytes (A then C) load as one register, so its low nibbles are values
    /// 128h + 0 … 63 and its high nibbles 128h + 64 … 127, each in the activation's order; the 32 high-bit bytes are
    /// broadcast to both halves and shifted per half. The four 16-value sub-blocks of a register take their scales from
    /// one <c>vpermw</c> of the 16 (a 128-bit quarter each).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float Q6KRowWide(byte* w, sbyte* quants, float* scales, short* sums, int blocks)
    {
        float* halves = HalfTable.Pointer;
        Vector256<float> acc = default;
        Vector512<byte> low = Vector512.Create((byte)0x0F), top = Vector512.Create((byte)0x30);
        // Bit pair 0 (1) of each high-bit byte to bits 4–5 for values 0–31 (32–63) of the half; pair 2 (3) for 64–95 (96–127).
        Vector512<ushort> up = Vector512.Create(Vector256.Create((ushort)4), Vector256.Create((ushort)2));
        Vector512<ushort> down = Vector512.Create(Vector256<ushort>.Zero, Vector256.Create((ushort)2));
        Vector512<short> pick0 = Quarters(0), pick1 = Quarters(4), pick2 = Quarters(8), pick3 = Quarters(12);
        byte* block = w;
        sbyte* x = quants;
        for (float* end = scales + blocks; scales < end; scales++, block += 210, x += BlockSize, sums += 16)
        {
            Vector256<short> sc = Avx2.ConvertToVector256Int16((sbyte*)block + 192);
            Vector512<short> all = sc.ToVector512Unsafe();
            Vector512<int> sum = Q6KHalfWide(block, block + 128, x, all, pick0, pick1, up, down, low, top);
            sum += Q6KHalfWide(block + 64, block + 160, x + 128, all, pick2, pick3, up, down, low, top);
            // −32·Σ sc_k·Σx_k, the offset the unsigned quants leave out.
            Vector256<int> total = sum.GetLower() + sum.GetUpper() - Vector256.ShiftLeft(Avx2.MultiplyAddAdjacent(sc, Vector256.Load(sums)), 5);
            acc = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(total), Vector256.Create(HalfTable.ToSingle(halves, ref block[208]) * *scales), acc);
        }
        return Vector256.Sum(acc);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<int> Q6KHalfWide(byte* ql, byte* qh, sbyte* x, Vector512<short> all, Vector512<short> pickLow, Vector512<short> pickHigh,
                                              Vector512<ushort> up, Vector512<ushort> down, Vector512<byte> low, Vector512<byte> top)
    {
        Vector512<byte> ac = Vector512.Load(ql);
        Vector512<ushort> h = Both(qh);
        // 16-bit shifts: bits crossing from the neighbouring byte fall outside the masks.
        Vector512<byte> q01 = (ac & low) | (Avx512BW.ShiftLeftLogicalVariable(h, up).AsByte() & top);
        Vector512<byte> q23 = (Vector512.ShiftRightLogical(ac.AsUInt16(), 4).AsByte() & low) | (Avx512BW.ShiftRightLogicalVariable(h, down).AsByte() & top);
        Vector512<int> sum = Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(q01, Vector512.Load(x)), Avx512BW.PermuteVar32x16(all, pickLow));
        return sum + Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(q23, Vector512.Load(x + 64)), Avx512BW.PermuteVar32x16(all, pickHigh));
    }

    /// <summary>
    /// Q2_K and Q3_K, 512 bits: a half's 32 quant bytes are broadcast to both halves and shifted per half, so one register
    /// holds planes p and p + 1 (values 128h + 32p … + 63, in the activation's order) and meets 64 contiguous activation
    /// bytes; its four 16-value sub-blocks take their scales from one <c>vpermw</c> of the 16, as Q6_K's do.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float Q23KRowWide<T>(byte* w, sbyte* quants, float* scales, short* sums, int blocks) where T : struct, ISmallKWide
    {
        float* halves = HalfTable.Pointer;
        Vector256<float> acc = default;
        Vector512<byte> lowTwoBits = Vector512.Create((byte)3), bit = Vector512.Create((byte)4);
        Vector512<ushort> planes01 = Vector512.Create(Vector256<ushort>.Zero, Vector256.Create((ushort)2));
        Vector512<ushort> planes23 = Vector512.Create(Vector256.Create((ushort)4), Vector256.Create((ushort)6));
        // Q3_K's high bit 4h + p to bit 2: half 0 planes 0, 1 shift left by 2, 1; planes 2, 3 right by 0, 1; half 1 right by 2, 3 and 4, 5.
        Vector512<ushort> left01 = Vector512.Create(Vector256.Create((ushort)2), Vector256.Create((ushort)1));
        Vector512<ushort> right23 = Vector512.Create(Vector256<ushort>.Zero, Vector256.Create((ushort)1));
        Vector512<ushort> right45 = Vector512.Create(Vector256.Create((ushort)2), Vector256.Create((ushort)3));
        Vector512<ushort> right67 = Vector512.Create(Vector256.Create((ushort)4), Vector256.Create((ushort)5));
        Vector512<short> pick0 = Quarters(0), pick1 = Quarters(4), pick2 = Quarters(8), pick3 = Quarters(12);
        byte* block = w;
        sbyte* x = quants;
        for (float* end = scales + blocks; scales < end; scales++, block += T.Bytes, x += BlockSize, sums += 16)
        {
            Vector256<short> sc = T.Scales(block, sums, out Vector256<int> offset);
            Vector512<short> all = sc.ToVector512Unsafe();
            Vector512<ushort> q0 = Both(block + T.Quants), q1 = Both(block + T.Quants + 32);
            Vector512<byte> v0 = Avx512BW.ShiftRightLogicalVariable(q0, planes01).AsByte() & lowTwoBits, v1 = Avx512BW.ShiftRightLogicalVariable(q0, planes23).AsByte() & lowTwoBits;
            Vector512<byte> v2 = Avx512BW.ShiftRightLogicalVariable(q1, planes01).AsByte() & lowTwoBits, v3 = Avx512BW.ShiftRightLogicalVariable(q1, planes23).AsByte() & lowTwoBits;
            if (T.HighBit)
            {
                // 16-bit shifts: bits crossing from the neighbouring byte fall outside the mask.
                Vector512<ushort> h = Both(block);
                v0 |= Avx512BW.ShiftLeftLogicalVariable(h, left01).AsByte() & bit;
                v1 |= Avx512BW.ShiftRightLogicalVariable(h, right23).AsByte() & bit;
                v2 |= Avx512BW.ShiftRightLogicalVariable(h, right45).AsByte() & bit;
                v3 |= Avx512BW.ShiftRightLogicalVariable(h, right67).AsByte() & bit;
            }
            Vector512<int> sum = Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(v0, Vector512.Load(x)), Avx512BW.PermuteVar32x16(all, pick0)) +
                                 Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(v1, Vector512.Load(x + 64)), Avx512BW.PermuteVar32x16(all, pick1));
            sum += Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(v2, Vector512.Load(x + 128)), Avx512BW.PermuteVar32x16(all, pick2)) +
                   Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(v3, Vector512.Load(x + 192)), Avx512BW.PermuteVar32x16(all, pick3));
            acc = T.Finish(block, halves, *scales, sum.GetLower() + sum.GetUpper(), offset, acc);
        }
        return Vector256.Sum(acc);
    }

    /// <summary>What <see cref="Q23KRowWide"/> needs of Q2_K or Q3_K: sizes, the 16 scales in order, the offset and the float steps of the 256-bit form.</summary>
    private interface ISmallKWide
    {
        static abstract int Bytes { get; }
        static abstract int Quants { get; }
        static abstract bool HighBit { get; }
        static abstract Vector256<short> Scales(byte* block, short* sums, out Vector256<int> offset);
        static abstract Vector256<float> Finish(byte* block, float* halves, float dx, Vector256<int> sum, Vector256<int> offset, Vector256<float> acc);
    }

    private readonly struct Q2KWide : ISmallKWide
    {
        public static int Bytes => 84;
        public static int Quants => 16;
        public static bool HighBit => false;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<short> Scales(byte* block, short* sums, out Vector256<int> offset)
        {
            Vector128<byte> packed = Vector128.Load(block), nibble = Vector128.Create((byte)0x0F);
            Vector256<short> mins = Avx2.ConvertToVector256Int16(Vector128.ShiftRightLogical(packed.AsUInt16(), 4).AsByte() & nibble);
            offset = Avx2.MultiplyAddAdjacent(mins, Vector256.Load(sums));
            return Avx2.ConvertToVector256Int16(packed & nibble);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<float> Finish(byte* block, float* halves, float dx, Vector256<int> sum, Vector256<int> offset, Vector256<float> acc)
        {
            float d = HalfTable.ToSingle(halves, ref block[80]) * dx, dmin = HalfTable.ToSingle(halves, ref block[82]) * dx;
            acc = Fma.MultiplyAddNegated(Vector256.ConvertToSingle(offset), Vector256.Create(dmin), acc);
            return Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(sum), Vector256.Create(d), acc);
        }
    }

    private readonly struct Q3KWide : ISmallKWide
    {
        public static int Bytes => 110;
        public static int Quants => 32;
        public static bool HighBit => true;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<short> Scales(byte* block, short* sums, out Vector256<int> offset)
        {
            Vector256<short> sc = Avx2.ConvertToVector256Int16(Q3KScales(block));
            // −4·Σ sc_k·Σx_k, the offset the unsigned quants leave out.
            offset = -Vector256.ShiftLeft(Avx2.MultiplyAddAdjacent(sc, Vector256.Load(sums)), 2);
            return sc;
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<float> Finish(byte* block, float* halves, float dx, Vector256<int> sum, Vector256<int> offset, Vector256<float> acc) =>
            Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(sum + offset), Vector256.Create(HalfTable.ToSingle(halves, ref block[108]) * dx), acc);
    }

    /// <summary>
    /// The 32 bytes at p in both halves of a register: a plain 256-bit load and one <c>vshufi64x2</c>. A broadcast from memory
    /// (<c>vbroadcasti32x8</c>) measured slower from memory on Zen 5 (Q4_K, one thread, 27–30 cycles per super-block and row
    /// against 22–24 for the 256-bit kernel; this form 22–31 against 24–36 in the same rounds), and
    /// <c>Avx512F.BroadcastVector256ToVector512</c> (<c>vbroadcasti64x4</c>) is miscompiled by .NET 10.0 with a nonzero
    /// displacement (compressed as if the load were 16 bytes: it reads the wrong address).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<ushort> Both(byte* p)
    {
        Vector512<ulong> v = Vector256.Load((ulong*)p).ToVector512Unsafe();
        return Avx512F.Shuffle4x128(v, v, 0x44).AsUInt16();
    }

    /// <summary>16-bit lane k + j in every lane of 128-bit quarter j: sub-block k + j's scale for its 16 products.</summary>
    private static Vector512<short> Quarters(int k) =>
        Vector512.Create(Vector256.Create(Vector128.Create((short)k), Vector128.Create((short)(k + 1))), Vector256.Create(Vector128.Create((short)(k + 2)), Vector128.Create((short)(k + 3))));

    /// <summary>Bytes selecting 16-bit lane p in both 128-bit halves: sub-block 2p's scale in the low half, 2p + 1's in the high.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<byte> PairShuffle(int p) => Vector256.Create((ushort)(2 * p | (2 * p + 1) << 8)).AsByte();
}

/// <summary>The instruction form of the <see cref="KQuantActivations"/> decode kernels (tests and benchmarks pick each).</summary>
public enum KQuantForm
{
    /// <summary>256-bit <c>vpmaddubsw</c> + <c>vpmaddwd</c> + add.</summary>
    Avx2,
    /// <summary>256-bit <c>vpmaddubsw</c> + AVX-VNNI <c>vpdpwssd</c>.</summary>
    Vnni,
    /// <summary>512-bit <c>vpmaddubsw</c> + <c>vpmaddwd</c> for Q2_K, Q3_K, Q4_K and Q6_K (AVX-512 BW); Q5_K as <see cref="Vnni"/> where there, else <see cref="Avx2"/>.</summary>
    Wide,
}
