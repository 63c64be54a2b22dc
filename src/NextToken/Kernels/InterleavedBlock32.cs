using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using NextToken.Tensors;

namespace NextToken.Kernels;

/// <summary>
/// Block-32 matrices (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL) repacked for quantized activations, as llama.cpp's CPU backend
/// repacks Q4_0 (<c>block_q4_0x8</c>): eight rows interleaved so that one 256-bit register holds the
/// same four values of eight rows. Each <c>vpdpbusd</c> then multiplies those 32 nibbles with one
/// broadcast group of four activation bytes and adds into eight int32 lanes — one per row — so a
/// block of eight rows against one position costs eight integer instructions, one conversion and
/// one FMA with the eight rows' scales (16 integer instructions with plain AVX2, no VNNI). IQ4_NL
/// keeps its nibbles and looks them up in its grid by <c>vpshufb</c> once per block of eight rows
/// (shared by the positions of a tile): as int8 the copy would be twice the stored bytes, and decode
/// reads every byte once per token. Q8_0 keeps its bytes, eight registers per block; Q4_1/Q5_1 add their
/// minimums' share per block, Q5_0/Q5_1 their fifth bits from a plane laid out like the registers (see the
/// constructor); every copy is as large as the stored matrix. Prompts and decode both take it: for decode the eight
/// rows' scales as one vector and one broadcast per four activation bytes replace the row kernels' per-row unpacking
/// and scale conversions (0.4–0.65 of their time with VNNI, 0.5–0.9 with plain AVX2: InterleavedBlock32Benchmarks). Approximate like every
/// quantized-activation path, so it runs only when activations are quantized (<c>--q8-activations</c>).
/// </summary>
/// <remarks>
/// Layout per group of eight rows and block of 32 values (Q4_0, IQ4_NL): the eight rows' f16 scales (as stored),
/// then four 32-byte registers; register j holds, for rows
/// 0…7 in turn, the row's stored bytes 4j…4j+3 — whose low nibbles are values 4j…4j+3 and high
/// nibbles values 16+4j…16+4j+3 of the block. The copy is made once per matrix and kept by the
/// <see cref="Cache"/> its model owns.
/// </remarks>
public sealed unsafe partial class InterleavedBlock32 : IDisposable
{
    private const int Rows = 8;
    private readonly int _groupBytes;
    private byte* _data;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // made once per matrix, all of it on the first token: no tier-0 code
    private InterleavedBlock32(in TensorData weight)
    {
        Type = weight.Type;
        Groups = weight.RowCount / Rows;
        Blocks = weight.RowLength / 32;
        // Q8_0: eight registers of bytes 4j…4j+3 of the eight rows' 32 quants (register j holds values 4j…4j+3, j < 4; register 4 + j values 16+4j…).
        // Q4_1, Q5_1: the minimums' halves after the scales'. Q5_0, Q5_1: 32 bytes of fifth bits before the registers, laid out
        // as the registers' bytes: bit i of byte 4r + k is the fifth bit of register i's byte k of row r (registers 0…3 the low
        // nibbles, 4…7 the high ones), so one shift and one mask give a register's 0x10s.
        bool q8 = Type == GgmlType.Q8_0, minimum = Type is GgmlType.Q4_1 or GgmlType.Q5_1, fifth = Type is GgmlType.Q5_0 or GgmlType.Q5_1;
        int blockBytes = Type switch { GgmlType.Q8_0 => 34, GgmlType.Q4_1 => 20, GgmlType.Q5_0 => 22, GgmlType.Q5_1 => 24, _ => 18 };
        int registers = q8 ? 8 : 4, storedQuantsAt = q8 ? 2 : blockBytes - 16, quantsAt = 16 + (minimum ? 16 : 0) + (fifth ? 32 : 0);
        _groupBytes = quantsAt + registers * 32;
        long bytes = (long)Groups * Blocks * _groupBytes;
        _data = (byte*)NativeMemory.AlignedAlloc((nuint)Math.Max(bytes, 64), 64);
        long rowBytes = weight.RowBytes;
        for (int g = 0; g < Groups; g++)
            for (int b = 0; b < Blocks; b++)
            {
                byte* target = _data + ((long)g * Blocks + b) * _groupBytes;
                for (int r = 0; r < Rows; r++)
                {
                    byte* block = weight.Data + (g * Rows + r) * rowBytes + b * blockBytes;
                    ((ushort*)target)[r] = *(ushort*)block;
                    if (minimum) ((ushort*)(target + 16))[r] = *(ushort*)(block + 2);
                    for (int j = 0; j < registers; j++) *(uint*)(target + quantsAt + j * 32 + r * 4) = *(uint*)(block + storedQuantsAt + 4 * j);
                    if (!fifth) continue;
                    uint high = *(uint*)(block + storedQuantsAt - 4), plane = 0;
                    for (int v = 0; v < 32; v++)
                        plane |= (high >> v & 1) << (8 * (v % 4) + (v < 16 ? v / 4 : 4 + (v - 16) / 4));
                    *(uint*)(target + quantsAt - 32 + r * 4) = plane;
                }
            }
    }

    /// <summary>AVX-VNNI (<c>vpdpbusd</c>), or plain AVX2 with <c>vpmaddubsw</c> + <c>vpmaddwd</c> (see <see cref="PositionAvx2"/>).</summary>
    public static bool IsSupported => AvxVnni.IsSupported || (Avx2.IsSupported && Fma.IsSupported);

    /// <summary>The stored types repacked here: the block-32 types with an f16 scale (IQ4_XS's scales are per 256, so it keeps its row kernel).</summary>
    public static bool Repacks(GgmlType type) => type is GgmlType.Q4_0 or GgmlType.IQ4_NL or GgmlType.Q8_0 or GgmlType.Q4_1 or GgmlType.Q5_0 or GgmlType.Q5_1;

    /// <summary>
    /// Whether prompts (batches of four or more) take the copy too: with VNNI every type; without it not Q8_0 and IQ4_NL, whose
    /// signed bytes cost |w| and x with w's sign per register and position, slower than the exact float panels at prompt sizes
    /// (GPT-2 Q8_0, 128 tokens, one thread: 2.63–2.82 ms CPU per token against 2.51–2.60; 1.1B IQ4_NL, 2 threads, AVX2:
    /// 74–75 tok/s against 82–87, where 256-bit VNNI gives 184 against 88).
    /// </summary>
    public static bool RepacksPrompts(GgmlType type) => Repacks(type) && (AvxVnni.IsSupported || type is not (GgmlType.Q8_0 or GgmlType.IQ4_NL));

    /// <summary>The stored type (<see cref="Repacks"/>).</summary>
    public GgmlType Type { get; }

    /// <summary>Whole groups of eight rows repacked; a matrix's last rows beyond them take the row-by-row path.</summary>
    public int Groups { get; }
    public int Blocks { get; }

    /// <summary>Bytes of the copy.</summary>
    public long Bytes => (long)Groups * Blocks * _groupBytes;

    /// <summary>
    /// Rows [8·groupStart, 8·groupEnd) for every position: y[t, row] = Σ_b d_row,b · d_t,b ·
    /// Σ w·x (+ m_row,b · d_t,b · Σx for Q4_1/Q5_1) over the positions' quantized activations (quants [n, nIn], scales and
    /// sums [n, nIn/32]), w as <see cref="QuantizedActivations.ReferenceBlockSum"/> takes it.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal void Multiply(sbyte* quants, float* scales, int* sums, int nBatch, float* y, int yStride, int groupStart, int groupEnd)
    {
        // Prompts only: decode (one to three positions) measured no faster at 512 bits (it streams the weights from memory) and
        // end to end it looked slower, so it keeps the 256-bit kernel.
        if (Wide && nBatch >= 4) MultiplyWide(quants, scales, sums, nBatch, y, yStride, groupStart, groupEnd);
        else if (!AvxVnni.IsSupported) MultiplyWithoutVnni(quants, scales, sums, nBatch, y, yStride, groupStart, groupEnd);
        else MultiplyVnni(quants, scales, sums, nBatch, y, yStride, groupStart, groupEnd);
    }

    /// <summary>As <see cref="Multiply(sbyte*, float*, int*, int, float*, int, int, int)"/> with the 256-bit AVX-VNNI kernel even where AVX-512 is there (for tests and benchmarks).</summary>
    internal void MultiplyVnni(sbyte* quants, float* scales, int* sums, int nBatch, float* y, int yStride, int groupStart, int groupEnd)
    {
        if (Type == GgmlType.Q8_0) Multiply<BytesVnni>(quants, scales, sums, nBatch, y, yStride, groupStart, groupEnd);
        else if (Type == GgmlType.IQ4_NL) Multiply<GridVnni>(quants, scales, sums, nBatch, y, yStride, groupStart, groupEnd);
        else if (Type == GgmlType.Q4_1) Multiply<MinimumVnni>(quants, scales, sums, nBatch, y, yStride, groupStart, groupEnd);
        else if (Type == GgmlType.Q5_0) Multiply<FifthVnni>(quants, scales, sums, nBatch, y, yStride, groupStart, groupEnd);
        else if (Type == GgmlType.Q5_1) Multiply<FifthMinimumVnni>(quants, scales, sums, nBatch, y, yStride, groupStart, groupEnd);
        else Multiply<Vnni>(quants, scales, sums, nBatch, y, yStride, groupStart, groupEnd);
    }

    /// <summary>As <see cref="Multiply(sbyte*, float*, int*, int, float*, int, int, int)"/> with the AVX2 kernel even where VNNI is there (for tests and benchmarks).</summary>
    internal void MultiplyWithoutVnni(sbyte* quants, float* scales, int* sums, int nBatch, float* y, int yStride, int groupStart, int groupEnd)
    {
        if (Type == GgmlType.Q8_0) Multiply<BytesAvx2>(quants, scales, sums, nBatch, y, yStride, groupStart, groupEnd);
        else if (Type == GgmlType.IQ4_NL) Multiply<GridAvx2>(quants, scales, sums, nBatch, y, yStride, groupStart, groupEnd);
        else if (Type == GgmlType.Q4_1) Multiply<MinimumAvx2>(quants, scales, sums, nBatch, y, yStride, groupStart, groupEnd);
        else if (Type == GgmlType.Q5_0) Multiply<FifthAvx2>(quants, scales, sums, nBatch, y, yStride, groupStart, groupEnd);
        else if (Type == GgmlType.Q5_1) Multiply<FifthMinimumAvx2>(quants, scales, sums, nBatch, y, yStride, groupStart, groupEnd);
        else Multiply<Avx2Pairs>(quants, scales, sums, nBatch, y, yStride, groupStart, groupEnd);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void Multiply<TDot>(sbyte* quants, float* scales, int* sums, int nBatch, float* y, int yStride, int groupStart, int groupEnd) where TDot : struct, IPosition
    {
        int nIn = Blocks * 32, perBlock = TDot.HasMinimum ? 16 : 8;
        // Prompts: each group's f16 scales (and minimums) converted once for all its tiles of four positions, not once per tile.
        bool convert = nBatch >= 4 && Blocks * perBlock <= 16384;
        float* converted = stackalloc float[convert ? Blocks * perBlock : 1];
        for (int g = groupStart; g < groupEnd; g++)
        {
            byte* group = _data + (long)g * Blocks * _groupBytes;
            if (convert)
                for (int b = 0; b < Blocks; b++)
                {
                    RowScales(group + b * TDot.GroupBytes).Store(converted + b * perBlock);
                    if (TDot.HasMinimum) RowScales(group + b * TDot.GroupBytes + 16).Store(converted + b * perBlock + 8);
                }
            int t = 0;
            for (; t + 4 <= nBatch; t += 4)
                Tile4<TDot>(group, convert ? converted : null, Blocks, quants + (long)t * nIn, nIn, scales + (long)t * Blocks, sums + (long)t * Blocks, y + (long)t * yStride + g * Rows, yStride);
            for (; t < nBatch; t++)
                Tile1<TDot>(group, Blocks, quants + (long)t * nIn, scales + (long)t * Blocks, sums + (long)t * Blocks, y + (long)t * yStride + g * Rows);
        }
    }

    /// <summary>
    /// Eight rows × four positions: the group's registers are unpacked once per block for the four. The scales (then
    /// minimums) from <paramref name="converted"/>, 8 (16) floats per block, or converted here where it is null.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Tile4<TDot>(byte* group, float* converted, int blocks, sbyte* x, int nIn, float* scales, int* sums, float* y, int yStride) where TDot : struct, IPosition
    {
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        int perBlock = TDot.HasMinimum ? 16 : 8;
        for (int b = 0; b < blocks; b++)
        {
            byte* block = group + b * TDot.GroupBytes;
            Vector256<float> d = converted != null ? Vector256.Load(converted + b * perBlock) : RowScales(block);
            TDot.Unpack(block, out var l0, out var l1, out var l2, out var l3, out var h0, out var h1, out var h2, out var h3);
            a0 = TDot.Position(l0, l1, l2, l3, h0, h1, h2, h3, (int*)(x + b * 32), sums[b], d * scales[b], a0);
            a1 = TDot.Position(l0, l1, l2, l3, h0, h1, h2, h3, (int*)(x + nIn + b * 32), sums[blocks + b], d * scales[blocks + b], a1);
            a2 = TDot.Position(l0, l1, l2, l3, h0, h1, h2, h3, (int*)(x + 2 * nIn + b * 32), sums[2 * blocks + b], d * scales[2 * blocks + b], a2);
            a3 = TDot.Position(l0, l1, l2, l3, h0, h1, h2, h3, (int*)(x + 3 * nIn + b * 32), sums[3 * blocks + b], d * scales[3 * blocks + b], a3);
            if (TDot.HasMinimum)
            {
                Vector256<float> m = converted != null ? Vector256.Load(converted + b * perBlock + 8) : RowScales(block + 16);
                a0 = Vector256.FusedMultiplyAdd(m, Vector256.Create(scales[b] * sums[b]), a0);
                a1 = Vector256.FusedMultiplyAdd(m, Vector256.Create(scales[blocks + b] * sums[blocks + b]), a1);
                a2 = Vector256.FusedMultiplyAdd(m, Vector256.Create(scales[2 * blocks + b] * sums[2 * blocks + b]), a2);
                a3 = Vector256.FusedMultiplyAdd(m, Vector256.Create(scales[3 * blocks + b] * sums[3 * blocks + b]), a3);
            }
        }
        a0.Store(y); a1.Store(y + yStride); a2.Store(y + 2L * yStride); a3.Store(y + 3L * yStride);
    }

    /// <summary>Eight rows × one position (decode, and the batch's last positions).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Tile1<TDot>(byte* group, int blocks, sbyte* x, float* scales, int* sums, float* y) where TDot : struct, IPosition
    {
        Vector256<float> a = default;
        for (int b = 0; b < blocks; b++)
        {
            byte* block = group + b * TDot.GroupBytes;
            TDot.Unpack(block, out var l0, out var l1, out var l2, out var l3, out var h0, out var h1, out var h2, out var h3);
            a = TDot.Position(l0, l1, l2, l3, h0, h1, h2, h3, (int*)(x + b * 32), sums[b], RowScales(block) * scales[b], a);
            if (TDot.HasMinimum) a = Vector256.FusedMultiplyAdd(RowScales(block + 16), Vector256.Create(scales[b] * sums[b]), a);
        }
        a.Store(y);
    }

    /// <summary>
    /// The eight rows' f16 scales as floats, exactly (.NET 10 exposes no <c>vcvtph2ps</c>): sign-extended to 32 bits and
    /// shifted by 13, a half's exponent and mantissa land in a float's with its sign bit on top (the three bits between
    /// masked off) — its value times 2^−112 for normal and subnormal halves alike, so one multiply by 2^112 finishes it.
    /// (Infinities and NaNs, never a block's scale, come out finite.)
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<float> RowScales(byte* halves)
    {
        Vector256<int> h = Avx2.ConvertToVector256Int32((short*)halves);
        return ((h << 13) & Vector256.Create(unchecked((int)0x8FFFE000))).AsSingle() * Vector256.Create(0x77800000).AsSingle();
    }

    /// <summary>One block of eight rows against one position; a struct per instruction set and weight type so each tile loop is compiled for it.</summary>
    private interface IPosition
    {
        /// <summary>Bytes per group of eight rows and block: the scales, then the registers.</summary>
        static abstract int GroupBytes { get; }

        /// <summary>Q4_1, Q5_1: the eight rows' f16 minimums follow the scales, their share m·d_x·Σq_x added per block.</summary>
        static virtual bool HasMinimum => false;

        /// <summary>The eight value groups' weights of the block at <paramref name="q"/> (for nibbles: the low ones of registers 0…3, then the high ones).</summary>
        static abstract void Unpack(byte* q, out Vector256<byte> l0, out Vector256<byte> l1, out Vector256<byte> l2, out Vector256<byte> l3,
                                    out Vector256<byte> h0, out Vector256<byte> h1, out Vector256<byte> h2, out Vector256<byte> h3);

        static abstract Vector256<float> Position(Vector256<byte> l0, Vector256<byte> l1, Vector256<byte> l2, Vector256<byte> l3,
                                                  Vector256<byte> h0, Vector256<byte> h1, Vector256<byte> h2, Vector256<byte> h3,
                                                  int* x, int sum, Vector256<float> scale, Vector256<float> accumulator);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Nibbles(byte* q, out Vector256<byte> l0, out Vector256<byte> l1, out Vector256<byte> l2, out Vector256<byte> l3,
                                out Vector256<byte> h0, out Vector256<byte> h1, out Vector256<byte> h2, out Vector256<byte> h3)
    {
        var low = Vector256.Create((byte)0x0F);
        Vector256<byte> p0 = Vector256.Load(q), p1 = Vector256.Load(q + 32), p2 = Vector256.Load(q + 64), p3 = Vector256.Load(q + 96);
        l0 = p0 & low; l1 = p1 & low; l2 = p2 & low; l3 = p3 & low;
        h0 = Vector256.ShiftRightLogical(p0.AsUInt16(), 4).AsByte() & low; h1 = Vector256.ShiftRightLogical(p1.AsUInt16(), 4).AsByte() & low;
        h2 = Vector256.ShiftRightLogical(p2.AsUInt16(), 4).AsByte() & low; h3 = Vector256.ShiftRightLogical(p3.AsUInt16(), 4).AsByte() & low;
    }

    /// <summary>The nibbles of IQ4_NL as <paramref name="grid"/>'s bytes (one <c>vpshufb</c> per register).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void GridValues(byte* q, Vector256<byte> grid, out Vector256<byte> l0, out Vector256<byte> l1, out Vector256<byte> l2, out Vector256<byte> l3,
                                   out Vector256<byte> h0, out Vector256<byte> h1, out Vector256<byte> h2, out Vector256<byte> h3)
    {
        Nibbles(q, out l0, out l1, out l2, out l3, out h0, out h1, out h2, out h3);
        l0 = Avx2.Shuffle(grid, l0); l1 = Avx2.Shuffle(grid, l1); l2 = Avx2.Shuffle(grid, l2); l3 = Avx2.Shuffle(grid, l3);
        h0 = Avx2.Shuffle(grid, h0); h1 = Avx2.Shuffle(grid, h1); h2 = Avx2.Shuffle(grid, h2); h3 = Avx2.Shuffle(grid, h3);
    }

    private readonly struct Vnni : IPosition
    {
        public static int GroupBytes => 16 + 128;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Unpack(byte* q, out Vector256<byte> l0, out Vector256<byte> l1, out Vector256<byte> l2, out Vector256<byte> l3,
                                  out Vector256<byte> h0, out Vector256<byte> h1, out Vector256<byte> h2, out Vector256<byte> h3) =>
            Nibbles(q + 16, out l0, out l1, out l2, out l3, out h0, out h1, out h2, out h3);

        // Σ(n − 8)·x = Σn·x − 8·Σx.
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<float> Position(Vector256<byte> l0, Vector256<byte> l1, Vector256<byte> l2, Vector256<byte> l3,
                                                Vector256<byte> h0, Vector256<byte> h1, Vector256<byte> h2, Vector256<byte> h3,
                                                int* x, int sum, Vector256<float> scale, Vector256<float> accumulator) =>
            PositionVnni(l0, l1, l2, l3, h0, h1, h2, h3, x, -8 * sum, scale, accumulator);
    }

    private readonly struct Avx2Pairs : IPosition
    {
        public static int GroupBytes => 16 + 128;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Unpack(byte* q, out Vector256<byte> l0, out Vector256<byte> l1, out Vector256<byte> l2, out Vector256<byte> l3,
                                  out Vector256<byte> h0, out Vector256<byte> h1, out Vector256<byte> h2, out Vector256<byte> h3) =>
            Nibbles(q + 16, out l0, out l1, out l2, out l3, out h0, out h1, out h2, out h3);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<float> Position(Vector256<byte> l0, Vector256<byte> l1, Vector256<byte> l2, Vector256<byte> l3,
                                                Vector256<byte> h0, Vector256<byte> h1, Vector256<byte> h2, Vector256<byte> h3,
                                                int* x, int sum, Vector256<float> scale, Vector256<float> accumulator) =>
            PositionAvx2(l0, l1, l2, l3, h0, h1, h2, h3, x, -8 * sum, scale, accumulator);
    }

    /// <summary>
    /// IQ4_NL with VNNI: the grid offset by +128 (1…241, unsigned) and 128·Σx taken back; <c>vpdpbusd</c>
    /// sums four products into 32 bits, so nothing saturates.
    /// </summary>
    private readonly struct GridVnni : IPosition
    {
        public static int GroupBytes => 16 + 128;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Unpack(byte* q, out Vector256<byte> l0, out Vector256<byte> l1, out Vector256<byte> l2, out Vector256<byte> l3,
                                  out Vector256<byte> h0, out Vector256<byte> h1, out Vector256<byte> h2, out Vector256<byte> h3) =>
            GridValues(q + 16, Vector256.Create((byte)1, 24, 45, 63, 79, 93, 106, 118, 129, 141, 153, 166, 181, 197, 217, 241,
                                           1, 24, 45, 63, 79, 93, 106, 118, 129, 141, 153, 166, 181, 197, 217, 241),
                       out l0, out l1, out l2, out l3, out h0, out h1, out h2, out h3);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<float> Position(Vector256<byte> l0, Vector256<byte> l1, Vector256<byte> l2, Vector256<byte> l3,
                                                Vector256<byte> h0, Vector256<byte> h1, Vector256<byte> h2, Vector256<byte> h3,
                                                int* x, int sum, Vector256<float> scale, Vector256<float> accumulator) =>
            PositionVnni(l0, l1, l2, l3, h0, h1, h2, h3, x, -128 * sum, scale, accumulator);
    }

    /// <summary>
    /// IQ4_NL with plain AVX2: <c>vpmaddubsw</c> would saturate on the offset grid (2·241·127 &gt; 32,767), so each register
    /// multiplies |grid| by x carrying the grid's sign (a pair at most 2·127·127 = 32,258) and is widened by <c>vpmaddwd</c> alone.
    /// </summary>
    private readonly struct GridAvx2 : IPosition
    {
        public static int GroupBytes => 16 + 128;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Unpack(byte* q, out Vector256<byte> l0, out Vector256<byte> l1, out Vector256<byte> l2, out Vector256<byte> l3,
                                  out Vector256<byte> h0, out Vector256<byte> h1, out Vector256<byte> h2, out Vector256<byte> h3) =>
            GridValues(q + 16, Vector256.Create((byte)0x81, 0x98, 0xAD, 0xBF, 0xCF, 0xDD, 0xEA, 0xF6, 1, 13, 25, 38, 53, 69, 89, 113,
                                           0x81, 0x98, 0xAD, 0xBF, 0xCF, 0xDD, 0xEA, 0xF6, 1, 13, 25, 38, 53, 69, 89, 113),
                       out l0, out l1, out l2, out l3, out h0, out h1, out h2, out h3);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<float> Position(Vector256<byte> l0, Vector256<byte> l1, Vector256<byte> l2, Vector256<byte> l3,
                                                Vector256<byte> h0, Vector256<byte> h1, Vector256<byte> h2, Vector256<byte> h3,
                                                int* x, int sum, Vector256<float> scale, Vector256<float> accumulator)
        {
            Vector256<int> s = Signed(l0, x[0]) + Signed(h0, x[4]), t = Signed(l1, x[1]) + Signed(h1, x[5]);
            s += Signed(l2, x[2]) + Signed(h2, x[6]);
            t += Signed(l3, x[3]) + Signed(h3, x[7]);
            return Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(s + t), scale, accumulator);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static Vector256<int> Signed(Vector256<byte> grid, int x4)
        {
            Vector256<sbyte> w = grid.AsSByte();
            Vector256<short> pairs = Avx2.MultiplyAddAdjacent(Avx2.Abs(w), Avx2.Sign(Vector256.Create(x4).AsSByte(), w));
            return Avx2.MultiplyAddAdjacent(pairs, Vector256.Create((short)1));
        }
    }

    /// <summary>Q8_0 with VNNI: each weight w as the unsigned w + 128 (one xor) and 128·Σx taken back, as the IQ4_NL grid.</summary>
    private readonly struct BytesVnni : IPosition
    {
        public static int GroupBytes => 16 + 256;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Unpack(byte* q, out Vector256<byte> l0, out Vector256<byte> l1, out Vector256<byte> l2, out Vector256<byte> l3,
                                  out Vector256<byte> h0, out Vector256<byte> h1, out Vector256<byte> h2, out Vector256<byte> h3)
        {
            q += 16;
            var offset = Vector256.Create((byte)0x80);
            l0 = Vector256.Load(q) ^ offset; l1 = Vector256.Load(q + 32) ^ offset; l2 = Vector256.Load(q + 64) ^ offset; l3 = Vector256.Load(q + 96) ^ offset;
            h0 = Vector256.Load(q + 128) ^ offset; h1 = Vector256.Load(q + 160) ^ offset; h2 = Vector256.Load(q + 192) ^ offset; h3 = Vector256.Load(q + 224) ^ offset;
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<float> Position(Vector256<byte> l0, Vector256<byte> l1, Vector256<byte> l2, Vector256<byte> l3,
                                                Vector256<byte> h0, Vector256<byte> h1, Vector256<byte> h2, Vector256<byte> h3,
                                                int* x, int sum, Vector256<float> scale, Vector256<float> accumulator) =>
            PositionVnni(l0, l1, l2, l3, h0, h1, h2, h3, x, -128 * sum, scale, accumulator);
    }

    /// <summary>Q8_0 with plain AVX2: the signed weights as IQ4_NL's signed grid values (|w| times x with w's sign).</summary>
    private readonly struct BytesAvx2 : IPosition
    {
        public static int GroupBytes => 16 + 256;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Unpack(byte* q, out Vector256<byte> l0, out Vector256<byte> l1, out Vector256<byte> l2, out Vector256<byte> l3,
                                  out Vector256<byte> h0, out Vector256<byte> h1, out Vector256<byte> h2, out Vector256<byte> h3)
        {
            q += 16;
            l0 = Vector256.Load(q); l1 = Vector256.Load(q + 32); l2 = Vector256.Load(q + 64); l3 = Vector256.Load(q + 96);
            h0 = Vector256.Load(q + 128); h1 = Vector256.Load(q + 160); h2 = Vector256.Load(q + 192); h3 = Vector256.Load(q + 224);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<float> Position(Vector256<byte> l0, Vector256<byte> l1, Vector256<byte> l2, Vector256<byte> l3,
                                                Vector256<byte> h0, Vector256<byte> h1, Vector256<byte> h2, Vector256<byte> h3,
                                                int* x, int sum, Vector256<float> scale, Vector256<float> accumulator) =>
            GridAvx2.Position(l0, l1, l2, l3, h0, h1, h2, h3, x, sum, scale, accumulator);
    }

    /// <summary>Q4_1 with VNNI: the unsigned nibbles as they are; the minimum's share goes to the tile loop.</summary>
    private readonly struct MinimumVnni : IPosition
    {
        public static int GroupBytes => 160;

        public static bool HasMinimum => true;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Unpack(byte* q, out Vector256<byte> l0, out Vector256<byte> l1, out Vector256<byte> l2, out Vector256<byte> l3,
                                  out Vector256<byte> h0, out Vector256<byte> h1, out Vector256<byte> h2, out Vector256<byte> h3) =>
            Nibbles(q + 32, out l0, out l1, out l2, out l3, out h0, out h1, out h2, out h3);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<float> Position(Vector256<byte> l0, Vector256<byte> l1, Vector256<byte> l2, Vector256<byte> l3,
                                                Vector256<byte> h0, Vector256<byte> h1, Vector256<byte> h2, Vector256<byte> h3,
                                                int* x, int sum, Vector256<float> scale, Vector256<float> accumulator) =>
            PositionVnni(l0, l1, l2, l3, h0, h1, h2, h3, x, 0, scale, accumulator);
    }

    /// <summary>Q4_1 without VNNI: as Q4_0's pairs (nibbles at most 15), no correction.</summary>
    private readonly struct MinimumAvx2 : IPosition
    {
        public static int GroupBytes => 160;

        public static bool HasMinimum => true;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Unpack(byte* q, out Vector256<byte> l0, out Vector256<byte> l1, out Vector256<byte> l2, out Vector256<byte> l3,
                                  out Vector256<byte> h0, out Vector256<byte> h1, out Vector256<byte> h2, out Vector256<byte> h3) =>
            Nibbles(q + 32, out l0, out l1, out l2, out l3, out h0, out h1, out h2, out h3);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<float> Position(Vector256<byte> l0, Vector256<byte> l1, Vector256<byte> l2, Vector256<byte> l3,
                                                Vector256<byte> h0, Vector256<byte> h1, Vector256<byte> h2, Vector256<byte> h3,
                                                int* x, int sum, Vector256<float> scale, Vector256<float> accumulator) =>
            PositionAvx2(l0, l1, l2, l3, h0, h1, h2, h3, x, 0, scale, accumulator);
    }

    /// <summary>Q5_0 with VNNI: q = nibble | fifth bit·16 (0…31), Σ(q − 16)·x = Σq·x − 16·Σx.</summary>
    private readonly struct FifthVnni : IPosition
    {
        public static int GroupBytes => 176;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Unpack(byte* q, out Vector256<byte> l0, out Vector256<byte> l1, out Vector256<byte> l2, out Vector256<byte> l3,
                                  out Vector256<byte> h0, out Vector256<byte> h1, out Vector256<byte> h2, out Vector256<byte> h3) =>
            FifthBits(q + 48, q + 16, out l0, out l1, out l2, out l3, out h0, out h1, out h2, out h3);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<float> Position(Vector256<byte> l0, Vector256<byte> l1, Vector256<byte> l2, Vector256<byte> l3,
                                                Vector256<byte> h0, Vector256<byte> h1, Vector256<byte> h2, Vector256<byte> h3,
                                                int* x, int sum, Vector256<float> scale, Vector256<float> accumulator) =>
            PositionVnni(l0, l1, l2, l3, h0, h1, h2, h3, x, -16 * sum, scale, accumulator);
    }

    /// <summary>Q5_0 without VNNI.</summary>
    private readonly struct FifthAvx2 : IPosition
    {
        public static int GroupBytes => 176;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Unpack(byte* q, out Vector256<byte> l0, out Vector256<byte> l1, out Vector256<byte> l2, out Vector256<byte> l3,
                                  out Vector256<byte> h0, out Vector256<byte> h1, out Vector256<byte> h2, out Vector256<byte> h3) =>
            FifthBits(q + 48, q + 16, out l0, out l1, out l2, out l3, out h0, out h1, out h2, out h3);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<float> Position(Vector256<byte> l0, Vector256<byte> l1, Vector256<byte> l2, Vector256<byte> l3,
                                                Vector256<byte> h0, Vector256<byte> h1, Vector256<byte> h2, Vector256<byte> h3,
                                                int* x, int sum, Vector256<float> scale, Vector256<float> accumulator) =>
            PositionAvx2Wide(l0, l1, l2, l3, h0, h1, h2, h3, x, -16 * sum, scale, accumulator);
    }

    /// <summary>Q5_1 with VNNI: the unsigned 5-bit q, the minimum as Q4_1's.</summary>
    private readonly struct FifthMinimumVnni : IPosition
    {
        public static int GroupBytes => 192;

        public static bool HasMinimum => true;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Unpack(byte* q, out Vector256<byte> l0, out Vector256<byte> l1, out Vector256<byte> l2, out Vector256<byte> l3,
                                  out Vector256<byte> h0, out Vector256<byte> h1, out Vector256<byte> h2, out Vector256<byte> h3) =>
            FifthBits(q + 64, q + 32, out l0, out l1, out l2, out l3, out h0, out h1, out h2, out h3);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<float> Position(Vector256<byte> l0, Vector256<byte> l1, Vector256<byte> l2, Vector256<byte> l3,
                                                Vector256<byte> h0, Vector256<byte> h1, Vector256<byte> h2, Vector256<byte> h3,
                                                int* x, int sum, Vector256<float> scale, Vector256<float> accumulator) =>
            PositionVnni(l0, l1, l2, l3, h0, h1, h2, h3, x, 0, scale, accumulator);
    }

    /// <summary>Q5_1 without VNNI.</summary>
    private readonly struct FifthMinimumAvx2 : IPosition
    {
        public static int GroupBytes => 192;

        public static bool HasMinimum => true;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Unpack(byte* q, out Vector256<byte> l0, out Vector256<byte> l1, out Vector256<byte> l2, out Vector256<byte> l3,
                                  out Vector256<byte> h0, out Vector256<byte> h1, out Vector256<byte> h2, out Vector256<byte> h3) =>
            FifthBits(q + 64, q + 32, out l0, out l1, out l2, out l3, out h0, out h1, out h2, out h3);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<float> Position(Vector256<byte> l0, Vector256<byte> l1, Vector256<byte> l2, Vector256<byte> l3,
                                                Vector256<byte> h0, Vector256<byte> h1, Vector256<byte> h2, Vector256<byte> h3,
                                                int* x, int sum, Vector256<float> scale, Vector256<float> accumulator) =>
            PositionAvx2Wide(l0, l1, l2, l3, h0, h1, h2, h3, x, 0, scale, accumulator);
    }

    /// <summary>The 5-bit quants: the nibbles at <paramref name="qs"/> with the fifth bits of <paramref name="plane"/> (see the constructor) as 16s.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void FifthBits(byte* qs, byte* plane, out Vector256<byte> l0, out Vector256<byte> l1, out Vector256<byte> l2, out Vector256<byte> l3,
                                  out Vector256<byte> h0, out Vector256<byte> h1, out Vector256<byte> h2, out Vector256<byte> h3)
    {
        Nibbles(qs, out l0, out l1, out l2, out l3, out h0, out h1, out h2, out h3);
        // Bit i of each byte to bit 4: the 16-bit shifts move bits within a byte only as far as the mask keeps.
        Vector256<ushort> bits = Vector256.Load((ushort*)plane);
        var sixteen = Vector256.Create((byte)0x10);
        l0 |= (bits << 4).AsByte() & sixteen; l1 |= (bits << 3).AsByte() & sixteen; l2 |= (bits << 2).AsByte() & sixteen; l3 |= (bits << 1).AsByte() & sixteen;
        h0 |= bits.AsByte() & sixteen; h1 |= (bits >> 1).AsByte() & sixteen; h2 |= (bits >> 2).AsByte() & sixteen; h3 |= (bits >> 3).AsByte() & sixteen;
    }

    /// <summary>
    /// <see cref="PositionAvx2"/> for 5-bit quants: a pair is at most 2·31·127 = 7,874, so only four registers' pairs add in 16 bits
    /// (≤ 31,496) before each half is widened.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> PositionAvx2Wide(Vector256<byte> l0, Vector256<byte> l1, Vector256<byte> l2, Vector256<byte> l3,
                                                     Vector256<byte> h0, Vector256<byte> h1, Vector256<byte> h2, Vector256<byte> h3,
                                                     int* x, int correction, Vector256<float> scale, Vector256<float> accumulator)
    {
        Vector256<short> s = Avx2.MultiplyAddAdjacent(l0, Vector256.Create(x[0]).AsSByte()) + Avx2.MultiplyAddAdjacent(h0, Vector256.Create(x[4]).AsSByte());
        Vector256<short> t = Avx2.MultiplyAddAdjacent(l1, Vector256.Create(x[1]).AsSByte()) + Avx2.MultiplyAddAdjacent(h1, Vector256.Create(x[5]).AsSByte());
        s += Avx2.MultiplyAddAdjacent(l2, Vector256.Create(x[2]).AsSByte()) + Avx2.MultiplyAddAdjacent(h2, Vector256.Create(x[6]).AsSByte());
        t += Avx2.MultiplyAddAdjacent(l3, Vector256.Create(x[3]).AsSByte()) + Avx2.MultiplyAddAdjacent(h3, Vector256.Create(x[7]).AsSByte());
        var ones = Vector256.Create((short)1);
        Vector256<int> products = Avx2.MultiplyAddAdjacent(s, ones) + Avx2.MultiplyAddAdjacent(t, ones) + Vector256.Create(correction);
        return Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(products), scale, accumulator);
    }

    /// <summary>
    /// Q4_0 without VNNI: each <c>vpmaddubsw</c> gives a row's two 16-bit sums of
    /// two nibble·x products, at most 2·15·128 = 3,840 in magnitude, so the eight registers' sums add
    /// in 16 bits without overflow (≤ 30,720) and one <c>vpmaddwd</c> by ones widens the pair per row:
    /// 8 + 7 + 1 integer operations per block and position where VNNI takes 8, still far fewer than
    /// the 32 FMAs of the float path.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> PositionAvx2(Vector256<byte> l0, Vector256<byte> l1, Vector256<byte> l2, Vector256<byte> l3,
                                                 Vector256<byte> h0, Vector256<byte> h1, Vector256<byte> h2, Vector256<byte> h3,
                                                 int* x, int correction, Vector256<float> scale, Vector256<float> accumulator)
    {
        Vector256<short> s = Avx2.MultiplyAddAdjacent(l0, Vector256.Create(x[0]).AsSByte()) + Avx2.MultiplyAddAdjacent(h0, Vector256.Create(x[4]).AsSByte());
        Vector256<short> t = Avx2.MultiplyAddAdjacent(l1, Vector256.Create(x[1]).AsSByte()) + Avx2.MultiplyAddAdjacent(h1, Vector256.Create(x[5]).AsSByte());
        s += Avx2.MultiplyAddAdjacent(l2, Vector256.Create(x[2]).AsSByte()) + Avx2.MultiplyAddAdjacent(h2, Vector256.Create(x[6]).AsSByte());
        t += Avx2.MultiplyAddAdjacent(l3, Vector256.Create(x[3]).AsSByte()) + Avx2.MultiplyAddAdjacent(h3, Vector256.Create(x[7]).AsSByte());
        Vector256<int> products = Avx2.MultiplyAddAdjacent(s + t, Vector256.Create((short)1)) + Vector256.Create(correction);
        return Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(products), scale, accumulator);
    }

    /// <summary>
    /// accumulator + scale · (Σ u·x + correction) for eight rows (lanes) and one block of one position:
    /// value groups 0…3 are the low nibbles of registers 0…3, groups 4…7 the high nibbles; each meets its
    /// four activation bytes broadcast to every lane. Two chains halve the dependency on vpdpbusd's latency.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> PositionVnni(Vector256<byte> l0, Vector256<byte> l1, Vector256<byte> l2, Vector256<byte> l3,
                                             Vector256<byte> h0, Vector256<byte> h1, Vector256<byte> h2, Vector256<byte> h3,
                                             int* x, int correction, Vector256<float> scale, Vector256<float> accumulator)
    {
        Vector256<int> s = AvxVnni.MultiplyWideningAndAdd(Vector256.Create(correction), l0, Vector256.Create(x[0]).AsSByte());
        Vector256<int> t = AvxVnni.MultiplyWideningAndAdd(Vector256<int>.Zero, h0, Vector256.Create(x[4]).AsSByte());
        s = AvxVnni.MultiplyWideningAndAdd(s, l1, Vector256.Create(x[1]).AsSByte());
        t = AvxVnni.MultiplyWideningAndAdd(t, h1, Vector256.Create(x[5]).AsSByte());
        s = AvxVnni.MultiplyWideningAndAdd(s, l2, Vector256.Create(x[2]).AsSByte());
        t = AvxVnni.MultiplyWideningAndAdd(t, h2, Vector256.Create(x[6]).AsSByte());
        s = AvxVnni.MultiplyWideningAndAdd(s, l3, Vector256.Create(x[3]).AsSByte());
        t = AvxVnni.MultiplyWideningAndAdd(t, h3, Vector256.Create(x[7]).AsSByte());
        return Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(s + t), scale, accumulator);
    }

    public void Dispose()
    {
        if (_data != null) NativeMemory.AlignedFree(_data);
        _data = null;
    }

    /// <summary>The repacked copies of one model's block-32 (and Q4_K: <see cref="InterleavedQ4K"/>) matrices, made on first use and freed with the model.</summary>
    public sealed class Cache : IDisposable
    {
        private readonly ConcurrentDictionary<nint, InterleavedBlock32> _matrices = new();
        private readonly ConcurrentDictionary<nint, InterleavedQ4K> _q4k = new();

        /// <summary>The Q4_K matrix in groups of eight interleaved rows (for prompts against 8-bit blocks of 256).</summary>
        public InterleavedQ4K Q4K(in TensorData weight)
        {
            if (_q4k.TryGetValue((nint)weight.Data, out InterleavedQ4K? found)) return found;
            var made = new InterleavedQ4K(weight);
            if (_q4k.TryAdd((nint)weight.Data, made)) return made;
            made.Dispose();
            return _q4k[(nint)weight.Data];
        }

        /// <summary>The Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 or IQ4_NL matrix in groups of eight interleaved rows.</summary>
        public InterleavedBlock32 For(in TensorData weight)
        {
            if (!Repacks(weight.Type) || weight.Transposed || weight.RowCount < Rows)
                throw new ArgumentException($"'{weight.Name}': only Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 and IQ4_NL matrices of at least {Rows} rows are interleaved, not {weight.Type} {weight.ShapeText}");
            if (_matrices.TryGetValue((nint)weight.Data, out InterleavedBlock32? found)) return found;
            var made = new InterleavedBlock32(weight);
            if (_matrices.TryAdd((nint)weight.Data, made)) return made;
            made.Dispose();
            return _matrices[(nint)weight.Data];
        }

        /// <summary>Bytes held by the repacked copies.</summary>
        public long Bytes => _matrices.Values.Sum(m => m.Bytes) + _q4k.Values.Sum(m => m.Bytes);

        public void Dispose()
        {
            foreach (InterleavedBlock32 matrix in _matrices.Values) matrix.Dispose();
            _matrices.Clear();
            foreach (InterleavedQ4K matrix in _q4k.Values) matrix.Dispose();
            _q4k.Clear();
        }
    }
}
