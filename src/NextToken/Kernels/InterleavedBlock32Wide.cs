using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using NextToken.Tensors;

namespace NextToken.Kernels;

/// <summary>
/// The 512-bit form of the repacked block-32 kernels for AVX-512 (BW) machines: two neighbouring groups of eight rows
/// side by side in one register (the copy's layout unchanged: each half is loaded from its group), so one load, nibble
/// split, broadcast of four activation bytes and scale conversion serves sixteen rows. .NET exposes no 512-bit
/// <c>vpdpbusd</c> here (no AVX512-VNNI / AVX10 V512 API), so the products are <c>vpmaddubsw</c> (16-bit pair sums, added
/// in 16 bits while they cannot overflow) and one <c>vpmaddwd</c> by ones per block and position: for sixteen rows
/// 8 + 1 multiplies where the 256-bit VNNI kernel takes 16 <c>vpdpbusd</c>; tiles of eight positions (AVX-512's 32 registers)
/// share each unpacked block further. Prompts of Q4_0, Q4_1, Q5_0, Q5_1 (kernel alone, 2048 × 5632, one thread, 16 positions:
/// 0.6–0.75 of the 256-bit VNNI time, InterleavedBlock32WideBenchmarks). A matrix's odd last group (and a thread's) takes the
/// 256-bit kernel. Signed weights (IQ4_NL's grid −127…113, Q8_0) keep the 256-bit VNNI kernel: unsigned-offset they would
/// saturate <c>vpmaddubsw</c>'s 16-bit pairs (2·241·127 &gt; 32,767), and carrying w's sign onto x (a compare and a masked
/// negation per register and position, each pair then widened alone) measured 1.32× the 256-bit VNNI time.
/// </summary>
public sealed unsafe partial class InterleavedBlock32
{
    /// <summary>Whether <see cref="Multiply"/> takes the 512-bit kernels for this matrix's type.</summary>
    private bool Wide => Avx512BW.IsSupported && HasWide(Type);

    /// <summary>The stored types with a 512-bit kernel.</summary>
    internal static bool HasWide(GgmlType type) => type is GgmlType.Q4_0 or GgmlType.Q4_1 or GgmlType.Q5_0 or GgmlType.Q5_1;

    /// <summary>As <see cref="Multiply(sbyte*, float*, int*, int, float*, int, int, int)"/> with the 512-bit kernels (AVX-512 BW; for tests and benchmarks).</summary>
    internal void MultiplyWide(sbyte* quants, float* scales, int* sums, int nBatch, float* y, int yStride, int groupStart, int groupEnd)
    {
        if (Type == GgmlType.Q4_1) MultiplyWide<MinimumWide>(quants, scales, sums, nBatch, y, yStride, groupStart, groupEnd);
        else if (Type == GgmlType.Q5_0) MultiplyWide<FifthWide>(quants, scales, sums, nBatch, y, yStride, groupStart, groupEnd);
        else if (Type == GgmlType.Q5_1) MultiplyWide<FifthMinimumWide>(quants, scales, sums, nBatch, y, yStride, groupStart, groupEnd);
        else if (Type == GgmlType.Q4_0) MultiplyWide<NibblesWide>(quants, scales, sums, nBatch, y, yStride, groupStart, groupEnd);
        else throw new NotSupportedException($"no 512-bit kernel for {Type}");
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void MultiplyWide<TWide>(sbyte* quants, float* scales, int* sums, int nBatch, float* y, int yStride, int groupStart, int groupEnd) where TWide : struct, IWide
    {
        int nIn = Blocks * 32, perBlock = TWide.HasMinimum ? 32 : 16;
        long groupStride = (long)Blocks * _groupBytes;
        bool convert = nBatch >= 4 && Blocks * perBlock <= 16384;
        float* converted = stackalloc float[convert ? Blocks * perBlock : 1];
        int g = groupStart;
        for (; g + 2 <= groupEnd; g += 2)
        {
            byte* group = _data + g * groupStride;
            if (convert)
                for (int b = 0; b < Blocks; b++)
                {
                    byte* block = group + b * TWide.GroupBytes;
                    Scales16(block, block + groupStride).Store(converted + b * perBlock);
                    if (TWide.HasMinimum) Scales16(block + 16, block + groupStride + 16).Store(converted + b * perBlock + 16);
                }
            int t = 0;
            for (; t + 8 <= nBatch; t += 8)
                Tile8Wide<TWide>(group, groupStride, convert ? converted : null, Blocks, quants + (long)t * nIn, nIn, scales + (long)t * Blocks, sums + (long)t * Blocks, y + (long)t * yStride + g * Rows, yStride);
            for (; t + 4 <= nBatch; t += 4)
                Tile4Wide<TWide>(group, groupStride, convert ? converted : null, Blocks, quants + (long)t * nIn, nIn, scales + (long)t * Blocks, sums + (long)t * Blocks, y + (long)t * yStride + g * Rows, yStride);
            for (; t < nBatch; t++)
                Tile1Wide<TWide>(group, groupStride, Blocks, quants + (long)t * nIn, scales + (long)t * Blocks, sums + (long)t * Blocks, y + (long)t * yStride + g * Rows);
        }
        if (g < groupEnd)
        {
            if (AvxVnni.IsSupported) MultiplyVnni(quants, scales, sums, nBatch, y, yStride, g, groupEnd);
            else MultiplyWithoutVnni(quants, scales, sums, nBatch, y, yStride, g, groupEnd);
        }
    }

    /// <summary>Sixteen rows (the groups at <paramref name="group"/> and <paramref name="groupStride"/> bytes on) × four positions.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Tile4Wide<TWide>(byte* group, long groupStride, float* converted, int blocks, sbyte* x, int nIn, float* scales, int* sums, float* y, int yStride) where TWide : struct, IWide
    {
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
        int perBlock = TWide.HasMinimum ? 32 : 16;
        for (int b = 0; b < blocks; b++)
        {
            byte* block = group + b * TWide.GroupBytes;
            Vector512<float> d = converted != null ? Vector512.Load(converted + b * perBlock) : Scales16(block, block + groupStride);
            TWide.Unpack(block, block + groupStride, out var l0, out var l1, out var l2, out var l3, out var h0, out var h1, out var h2, out var h3);
            a0 = TWide.Position(l0, l1, l2, l3, h0, h1, h2, h3, (int*)(x + b * 32), sums[b], d * scales[b], a0);
            a1 = TWide.Position(l0, l1, l2, l3, h0, h1, h2, h3, (int*)(x + nIn + b * 32), sums[blocks + b], d * scales[blocks + b], a1);
            a2 = TWide.Position(l0, l1, l2, l3, h0, h1, h2, h3, (int*)(x + 2 * nIn + b * 32), sums[2 * blocks + b], d * scales[2 * blocks + b], a2);
            a3 = TWide.Position(l0, l1, l2, l3, h0, h1, h2, h3, (int*)(x + 3 * nIn + b * 32), sums[3 * blocks + b], d * scales[3 * blocks + b], a3);
            if (TWide.HasMinimum)
            {
                Vector512<float> m = converted != null ? Vector512.Load(converted + b * perBlock + 16) : Scales16(block + 16, block + groupStride + 16);
                a0 = Vector512.FusedMultiplyAdd(m, Vector512.Create(scales[b] * sums[b]), a0);
                a1 = Vector512.FusedMultiplyAdd(m, Vector512.Create(scales[blocks + b] * sums[blocks + b]), a1);
                a2 = Vector512.FusedMultiplyAdd(m, Vector512.Create(scales[2 * blocks + b] * sums[2 * blocks + b]), a2);
                a3 = Vector512.FusedMultiplyAdd(m, Vector512.Create(scales[3 * blocks + b] * sums[3 * blocks + b]), a3);
            }
        }
        a0.Store(y); a1.Store(y + yStride); a2.Store(y + 2L * yStride); a3.Store(y + 3L * yStride);
    }

    /// <summary>Sixteen rows × eight positions: the unpacked registers serve twice as many positions as <see cref="Tile4Wide"/>'s (AVX-512 has 32 registers).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Tile8Wide<TWide>(byte* group, long groupStride, float* converted, int blocks, sbyte* x, int nIn, float* scales, int* sums, float* y, int yStride) where TWide : struct, IWide
    {
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default, a4 = default, a5 = default, a6 = default, a7 = default;
        int perBlock = TWide.HasMinimum ? 32 : 16;
        for (int b = 0; b < blocks; b++)
        {
            byte* block = group + b * TWide.GroupBytes;
            Vector512<float> d = converted != null ? Vector512.Load(converted + b * perBlock) : Scales16(block, block + groupStride);
            TWide.Unpack(block, block + groupStride, out var l0, out var l1, out var l2, out var l3, out var h0, out var h1, out var h2, out var h3);
            sbyte* xb = x + b * 32;
            a0 = TWide.Position(l0, l1, l2, l3, h0, h1, h2, h3, (int*)xb, sums[b], d * scales[b], a0);
            a1 = TWide.Position(l0, l1, l2, l3, h0, h1, h2, h3, (int*)(xb + nIn), sums[blocks + b], d * scales[blocks + b], a1);
            a2 = TWide.Position(l0, l1, l2, l3, h0, h1, h2, h3, (int*)(xb + 2 * nIn), sums[2 * blocks + b], d * scales[2 * blocks + b], a2);
            a3 = TWide.Position(l0, l1, l2, l3, h0, h1, h2, h3, (int*)(xb + 3 * nIn), sums[3 * blocks + b], d * scales[3 * blocks + b], a3);
            a4 = TWide.Position(l0, l1, l2, l3, h0, h1, h2, h3, (int*)(xb + 4 * nIn), sums[4 * blocks + b], d * scales[4 * blocks + b], a4);
            a5 = TWide.Position(l0, l1, l2, l3, h0, h1, h2, h3, (int*)(xb + 5 * nIn), sums[5 * blocks + b], d * scales[5 * blocks + b], a5);
            a6 = TWide.Position(l0, l1, l2, l3, h0, h1, h2, h3, (int*)(xb + 6 * nIn), sums[6 * blocks + b], d * scales[6 * blocks + b], a6);
            a7 = TWide.Position(l0, l1, l2, l3, h0, h1, h2, h3, (int*)(xb + 7 * nIn), sums[7 * blocks + b], d * scales[7 * blocks + b], a7);
            if (TWide.HasMinimum)
            {
                Vector512<float> m = converted != null ? Vector512.Load(converted + b * perBlock + 16) : Scales16(block + 16, block + groupStride + 16);
                a0 = Vector512.FusedMultiplyAdd(m, Vector512.Create(scales[b] * sums[b]), a0);
                a1 = Vector512.FusedMultiplyAdd(m, Vector512.Create(scales[blocks + b] * sums[blocks + b]), a1);
                a2 = Vector512.FusedMultiplyAdd(m, Vector512.Create(scales[2 * blocks + b] * sums[2 * blocks + b]), a2);
                a3 = Vector512.FusedMultiplyAdd(m, Vector512.Create(scales[3 * blocks + b] * sums[3 * blocks + b]), a3);
                a4 = Vector512.FusedMultiplyAdd(m, Vector512.Create(scales[4 * blocks + b] * sums[4 * blocks + b]), a4);
                a5 = Vector512.FusedMultiplyAdd(m, Vector512.Create(scales[5 * blocks + b] * sums[5 * blocks + b]), a5);
                a6 = Vector512.FusedMultiplyAdd(m, Vector512.Create(scales[6 * blocks + b] * sums[6 * blocks + b]), a6);
                a7 = Vector512.FusedMultiplyAdd(m, Vector512.Create(scales[7 * blocks + b] * sums[7 * blocks + b]), a7);
            }
        }
        a0.Store(y); a1.Store(y + yStride); a2.Store(y + 2L * yStride); a3.Store(y + 3L * yStride);
        a4.Store(y + 4L * yStride); a5.Store(y + 5L * yStride); a6.Store(y + 6L * yStride); a7.Store(y + 7L * yStride);
    }

    /// <summary>Sixteen rows × one position (decode, and the batch's last positions).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Tile1Wide<TWide>(byte* group, long groupStride, int blocks, sbyte* x, float* scales, int* sums, float* y) where TWide : struct, IWide
    {
        Vector512<float> a = default;
        for (int b = 0; b < blocks; b++)
        {
            byte* block = group + b * TWide.GroupBytes;
            TWide.Unpack(block, block + groupStride, out var l0, out var l1, out var l2, out var l3, out var h0, out var h1, out var h2, out var h3);
            a = TWide.Position(l0, l1, l2, l3, h0, h1, h2, h3, (int*)(x + b * 32), sums[b], Scales16(block, block + groupStride) * scales[b], a);
            if (TWide.HasMinimum)
                a = Vector512.FusedMultiplyAdd(Scales16(block + 16, block + groupStride + 16), Vector512.Create(scales[b] * sums[b]), a);
        }
        a.Store(y);
    }

    /// <summary>One block of sixteen rows (two groups) against one position, 512 bits wide.</summary>
    private interface IWide
    {
        /// <summary>Bytes per group of eight rows and block, as <see cref="IPosition.GroupBytes"/>.</summary>
        static abstract int GroupBytes { get; }

        static virtual bool HasMinimum => false;

        /// <summary>The eight value groups' weights of the block of the two groups at <paramref name="q0"/> and <paramref name="q1"/> (rows 0…7, then 8…15).</summary>
        static abstract void Unpack(byte* q0, byte* q1, out Vector512<byte> l0, out Vector512<byte> l1, out Vector512<byte> l2, out Vector512<byte> l3,
                                    out Vector512<byte> h0, out Vector512<byte> h1, out Vector512<byte> h2, out Vector512<byte> h3);

        static abstract Vector512<float> Position(Vector512<byte> l0, Vector512<byte> l1, Vector512<byte> l2, Vector512<byte> l3,
                                                  Vector512<byte> h0, Vector512<byte> h1, Vector512<byte> h2, Vector512<byte> h3,
                                                  int* x, int sum, Vector512<float> scale, Vector512<float> accumulator);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<byte> Pair(byte* q0, byte* q1) => Avx512F.InsertVector256(Vector256.Load(q0).ToVector512Unsafe(), Vector256.Load(q1), 1); // one load and one vinserti64x4 (Vector512.Create takes two inserts)

    /// <summary>The sixteen rows' f16 scales (eight at <paramref name="halves0"/>, eight at <paramref name="halves1"/>) as floats, as <see cref="RowScales"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<float> Scales16(byte* halves0, byte* halves1)
    {
        Vector512<int> h = Avx512F.ConvertToVector512Int32(Avx2.InsertVector128(Vector128.Load((short*)halves0).ToVector256Unsafe(), Vector128.Load((short*)halves1), 1));
        return ((h << 13) & Vector512.Create(unchecked((int)0x8FFFE000))).AsSingle() * Vector512.Create(0x77800000).AsSingle();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void SplitNibblesWide(byte* q0, byte* q1, out Vector512<byte> l0, out Vector512<byte> l1, out Vector512<byte> l2, out Vector512<byte> l3,
                                    out Vector512<byte> h0, out Vector512<byte> h1, out Vector512<byte> h2, out Vector512<byte> h3)
    {
        var low = Vector512.Create((byte)0x0F);
        Vector512<byte> p0 = Pair(q0, q1), p1 = Pair(q0 + 32, q1 + 32), p2 = Pair(q0 + 64, q1 + 64), p3 = Pair(q0 + 96, q1 + 96);
        l0 = p0 & low; l1 = p1 & low; l2 = p2 & low; l3 = p3 & low;
        h0 = Vector512.ShiftRightLogical(p0.AsUInt16(), 4).AsByte() & low; h1 = Vector512.ShiftRightLogical(p1.AsUInt16(), 4).AsByte() & low;
        h2 = Vector512.ShiftRightLogical(p2.AsUInt16(), 4).AsByte() & low; h3 = Vector512.ShiftRightLogical(p3.AsUInt16(), 4).AsByte() & low;
    }

    /// <summary>The 5-bit quants of two groups, as <see cref="FifthBits"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void FifthBitsWide(byte* qs0, byte* qs1, byte* plane0, byte* plane1, out Vector512<byte> l0, out Vector512<byte> l1, out Vector512<byte> l2, out Vector512<byte> l3,
                                      out Vector512<byte> h0, out Vector512<byte> h1, out Vector512<byte> h2, out Vector512<byte> h3)
    {
        SplitNibblesWide(qs0, qs1, out l0, out l1, out l2, out l3, out h0, out h1, out h2, out h3);
        Vector512<ushort> bits = Pair(plane0, plane1).AsUInt16();
        var sixteen = Vector512.Create((byte)0x10);
        l0 |= (bits << 4).AsByte() & sixteen; l1 |= (bits << 3).AsByte() & sixteen; l2 |= (bits << 2).AsByte() & sixteen; l3 |= (bits << 1).AsByte() & sixteen;
        h0 |= bits.AsByte() & sixteen; h1 |= (bits >> 1).AsByte() & sixteen; h2 |= (bits >> 2).AsByte() & sixteen; h3 |= (bits >> 3).AsByte() & sixteen;
    }

    /// <summary>
    /// accumulator + scale · (Σ q·x + correction) for sixteen rows, 4-bit unsigned q: a <c>vpmaddubsw</c> pair is at most
    /// 2·15·128 = 3,840 in magnitude, so all eight registers' pairs add in 16 bits (≤ 30,720) before one <c>vpmaddwd</c> widens them.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> PositionWide(Vector512<byte> l0, Vector512<byte> l1, Vector512<byte> l2, Vector512<byte> l3,
                                                 Vector512<byte> h0, Vector512<byte> h1, Vector512<byte> h2, Vector512<byte> h3,
                                                 int* x, int correction, Vector512<float> scale, Vector512<float> accumulator)
    {
        Vector512<short> s = Avx512BW.MultiplyAddAdjacent(l0, Vector512.Create(x[0]).AsSByte()) + Avx512BW.MultiplyAddAdjacent(h0, Vector512.Create(x[4]).AsSByte());
        Vector512<short> t = Avx512BW.MultiplyAddAdjacent(l1, Vector512.Create(x[1]).AsSByte()) + Avx512BW.MultiplyAddAdjacent(h1, Vector512.Create(x[5]).AsSByte());
        s += Avx512BW.MultiplyAddAdjacent(l2, Vector512.Create(x[2]).AsSByte()) + Avx512BW.MultiplyAddAdjacent(h2, Vector512.Create(x[6]).AsSByte());
        t += Avx512BW.MultiplyAddAdjacent(l3, Vector512.Create(x[3]).AsSByte()) + Avx512BW.MultiplyAddAdjacent(h3, Vector512.Create(x[7]).AsSByte());
        Vector512<int> products = Avx512BW.MultiplyAddAdjacent(s + t, Vector512.Create((short)1)) + Vector512.Create(correction);
        return Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(products), scale, accumulator);
    }

    /// <summary>
    /// <see cref="PositionWide"/> for 5-bit q: a pair is at most 2·31·127 = 7,874 (x ≥ −127: the quantizer's range), so four
    /// registers' pairs add in 16 bits (≤ 31,496) and each half is widened.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> PositionWideFifth(Vector512<byte> l0, Vector512<byte> l1, Vector512<byte> l2, Vector512<byte> l3,
                                                      Vector512<byte> h0, Vector512<byte> h1, Vector512<byte> h2, Vector512<byte> h3,
                                                      int* x, int correction, Vector512<float> scale, Vector512<float> accumulator)
    {
        Vector512<short> s = Avx512BW.MultiplyAddAdjacent(l0, Vector512.Create(x[0]).AsSByte()) + Avx512BW.MultiplyAddAdjacent(h0, Vector512.Create(x[4]).AsSByte());
        Vector512<short> t = Avx512BW.MultiplyAddAdjacent(l1, Vector512.Create(x[1]).AsSByte()) + Avx512BW.MultiplyAddAdjacent(h1, Vector512.Create(x[5]).AsSByte());
        s += Avx512BW.MultiplyAddAdjacent(l2, Vector512.Create(x[2]).AsSByte()) + Avx512BW.MultiplyAddAdjacent(h2, Vector512.Create(x[6]).AsSByte());
        t += Avx512BW.MultiplyAddAdjacent(l3, Vector512.Create(x[3]).AsSByte()) + Avx512BW.MultiplyAddAdjacent(h3, Vector512.Create(x[7]).AsSByte());
        var ones = Vector512.Create((short)1);
        Vector512<int> products = Avx512BW.MultiplyAddAdjacent(s, ones) + Avx512BW.MultiplyAddAdjacent(t, ones) + Vector512.Create(correction);
        return Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(products), scale, accumulator);
    }

    /// <summary>Q4_0: Σ(n − 8)·x = Σn·x − 8·Σx.</summary>
    private readonly struct NibblesWide : IWide
    {
        public static int GroupBytes => 16 + 128;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Unpack(byte* q0, byte* q1, out Vector512<byte> l0, out Vector512<byte> l1, out Vector512<byte> l2, out Vector512<byte> l3,
                                  out Vector512<byte> h0, out Vector512<byte> h1, out Vector512<byte> h2, out Vector512<byte> h3) =>
            SplitNibblesWide(q0 + 16, q1 + 16, out l0, out l1, out l2, out l3, out h0, out h1, out h2, out h3);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> Position(Vector512<byte> l0, Vector512<byte> l1, Vector512<byte> l2, Vector512<byte> l3,
                                                Vector512<byte> h0, Vector512<byte> h1, Vector512<byte> h2, Vector512<byte> h3,
                                                int* x, int sum, Vector512<float> scale, Vector512<float> accumulator) =>
            PositionWide(l0, l1, l2, l3, h0, h1, h2, h3, x, -8 * sum, scale, accumulator);
    }

    /// <summary>Q4_1: the nibbles as they are; the minimum's share goes to the tile loop.</summary>
    private readonly struct MinimumWide : IWide
    {
        public static int GroupBytes => 160;

        public static bool HasMinimum => true;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Unpack(byte* q0, byte* q1, out Vector512<byte> l0, out Vector512<byte> l1, out Vector512<byte> l2, out Vector512<byte> l3,
                                  out Vector512<byte> h0, out Vector512<byte> h1, out Vector512<byte> h2, out Vector512<byte> h3) =>
            SplitNibblesWide(q0 + 32, q1 + 32, out l0, out l1, out l2, out l3, out h0, out h1, out h2, out h3);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> Position(Vector512<byte> l0, Vector512<byte> l1, Vector512<byte> l2, Vector512<byte> l3,
                                                Vector512<byte> h0, Vector512<byte> h1, Vector512<byte> h2, Vector512<byte> h3,
                                                int* x, int sum, Vector512<float> scale, Vector512<float> accumulator) =>
            PositionWide(l0, l1, l2, l3, h0, h1, h2, h3, x, 0, scale, accumulator);
    }

    /// <summary>Q5_0: q = nibble | fifth bit·16 (0…31), Σ(q − 16)·x = Σq·x − 16·Σx.</summary>
    private readonly struct FifthWide : IWide
    {
        public static int GroupBytes => 176;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Unpack(byte* q0, byte* q1, out Vector512<byte> l0, out Vector512<byte> l1, out Vector512<byte> l2, out Vector512<byte> l3,
                                  out Vector512<byte> h0, out Vector512<byte> h1, out Vector512<byte> h2, out Vector512<byte> h3) =>
            FifthBitsWide(q0 + 48, q1 + 48, q0 + 16, q1 + 16, out l0, out l1, out l2, out l3, out h0, out h1, out h2, out h3);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> Position(Vector512<byte> l0, Vector512<byte> l1, Vector512<byte> l2, Vector512<byte> l3,
                                                Vector512<byte> h0, Vector512<byte> h1, Vector512<byte> h2, Vector512<byte> h3,
                                                int* x, int sum, Vector512<float> scale, Vector512<float> accumulator) =>
            PositionWideFifth(l0, l1, l2, l3, h0, h1, h2, h3, x, -16 * sum, scale, accumulator);
    }

    /// <summary>Q5_1: the unsigned 5-bit q, the minimum as Q4_1's.</summary>
    private readonly struct FifthMinimumWide : IWide
    {
        public static int GroupBytes => 192;

        public static bool HasMinimum => true;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Unpack(byte* q0, byte* q1, out Vector512<byte> l0, out Vector512<byte> l1, out Vector512<byte> l2, out Vector512<byte> l3,
                                  out Vector512<byte> h0, out Vector512<byte> h1, out Vector512<byte> h2, out Vector512<byte> h3) =>
            FifthBitsWide(q0 + 64, q1 + 64, q0 + 32, q1 + 32, out l0, out l1, out l2, out l3, out h0, out h1, out h2, out h3);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> Position(Vector512<byte> l0, Vector512<byte> l1, Vector512<byte> l2, Vector512<byte> l3,
                                                Vector512<byte> h0, Vector512<byte> h1, Vector512<byte> h2, Vector512<byte> h3,
                                                int* x, int sum, Vector512<float> scale, Vector512<float> accumulator) =>
            PositionWideFifth(l0, l1, l2, l3, h0, h1, h2, h3, x, 0, scale, accumulator);
    }
}
