using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using NextToken.Tensors;

namespace NextToken.Kernels;

/// <summary>
/// AVX-512 decode of the 4-bit and 5-bit types with a float scale per 32 values — IQ4_NL, IQ4_XS, Q5_0, Q4_1, Q5_1 —
/// four rows at a time in float (exact as the float kernels: each value is its stored integer or grid value times x,
/// summed in float32 and scaled per block).
/// </summary>
/// <remarks>
/// Why: the generic float kernel (<see cref="ChunkedQuant"/>) reads each 16 values as bytes widened to int32, shifted,
/// masked and converted (IQ4: permuted through the grid), and for IQ4_XS scales every 16 values with a fused
/// q·scale + offset from a table of 16 scales and 16 zero offsets. Here each 32 values of a row take one widening
/// (<c>vpmovzxbd</c>) and one shift for the high nibbles; the value is <c>vpermps</c> (16 entries: IQ4's grid, or 0–15
/// for Q4_1) or <c>vpermt2ps</c> (32 entries: −16…15 for Q5_0, 0…31 for Q5_1) of the widened bytes as they are, since
/// those permutes read only the index's low 4 or 5 bits: no mask, no conversion. Q5's fifth bit goes to bit 4 by one
/// rotate of the block's 32-bit word per 16 values and one bit-select (<c>vpternlogd</c>) beside the nibble. The block's
/// scale multiplies the 32 values' float sum once (IQ4_XS: its sub-block's d·(ls − 32), 8 per super-block made in
/// general-purpose registers by two <c>pdep</c>); Q4_1/Q5_1's minimum times Σx of the block (shared by the four rows).
/// Vector operations per 64 values and row (each row's own; x loads and Σx shared by four rows; d and m as embedded
/// broadcasts): IQ4_NL 14, IQ4_XS ~15.5 (its scales ~1.5), Q4_1 16, Q5_0 24, Q5_1 26, where the generic kernel took
/// 22–24, ~35, 26–28, 38–40, 38–40. The IQ4 kernels are bound by their two 512-bit permutes per 32 values and row (resident,
/// IQ4_NL ~20 cycles per 256 values and row, 16 of them permutes if Zen 5 issues one a cycle — inferred, not measured
/// alone). Per row two accumulator chains (blocks of 32: even/odd blocks; IQ4_XS: even/odd sub-blocks) and the minimum's
/// terms in a third: one chain took a multiply-add's latency per block and bound IQ4_XS (from memory 0.61 → 0.48× the
/// generic kernel's time) and Q4_1/Q5_1 (resident −5%, −7%).
/// Measured on this Zen 5 (EPYC, 2 vCPUs shared, load 8–13; Block32DecodeWideBenchmarks): every matrix of the type in the
/// 1.1B llama-quantize files from memory, one thread, min of 10 by CPU time, ns per 256 values and row, generic → this:
/// IQ4_XS 18.8 → 8.9 (later rounds 13.4 → 7.2), IQ4_NL 8.5 → 7.2, Q5_0 12.3 → 10.3, Q4_1 10.2 → 8.6, Q5_1 16.6 → 15.3;
/// resident in L2 (64 rows × 2048, min of 600 alternating), time ratio 0.63, 0.75, 0.81, 0.74, 0.85.
/// The 24-bit plane form (<see cref="KQuantPlanesWide"/>'s vpmaddubsw/vpmaddwd) was counted and not taken: with a float
/// scale per 32 values each block's three int32 sums must be converted and combined (6 operations per 32 and row, where
/// K-quants pay it once per 256), on top of 6 multiplies and ~4 unpacking operations per 64 — ~22 per 64 before IQ4's
/// signed grid values need their sign moved onto x (vpmaddubsw takes one unsigned operand; +128 would overflow its 16-bit
/// pairs), 3 more: above the float form's 14–16.
/// </remarks>
internal static unsafe class Block32DecodeWide
{
    public static bool IsSupported => Avx512F.IsSupported && Avx512BW.IsSupported && Vector512.IsHardwareAccelerated && Bmi2.X64.IsSupported;

    public static bool Handles(GgmlType type) => type is GgmlType.IQ4_NL or GgmlType.IQ4_XS or GgmlType.Q5_0 or GgmlType.Q4_1 or GgmlType.Q5_1;

    /// <summary>Values per stored block (a row's length must be a multiple).</summary>
    public static int BlockSize(GgmlType type) => type == GgmlType.IQ4_XS ? 256 : 32;

    /// <summary>
    /// y[0 … rows − 1] = rows w, w + rowBytes, … (n values each, a multiple of <see cref="BlockSize"/>) times x; rows is
    /// 1 to 4 (a missing row repeats row 0, its result not stored).
    /// </summary>
    public static void Dot4(GgmlType type, byte* w, long rowBytes, int rows, float* x, int n, float* y)
    {
        if (rows is < 1 or > 4) throw new ArgumentOutOfRangeException(nameof(rows), rows, "1 to 4 rows");
        if (!IsSupported) throw new PlatformNotSupportedException("the 512-bit block kernels need AVX-512 F and BW and BMI2");
        if (n <= 0 || n % BlockSize(type) != 0) throw new ArgumentException($"a {type} row holds whole blocks of {BlockSize(type)} values, not {n}", nameof(n));
        byte* w1 = rows > 1 ? w + rowBytes : w, w2 = rows > 2 ? w + 2 * rowBytes : w, w3 = rows > 3 ? w + 3 * rowBytes : w;
        byte* next = w + rows * rowBytes; // the next group's rows, prefetched as this one is read
        Vector128<float> result = type switch
        {
            GgmlType.IQ4_NL => Blocks<IQ4NL>(w, w1, w2, w3, next, x, n / 32),
            GgmlType.Q5_0 => Blocks<Q50>(w, w1, w2, w3, next, x, n / 32),
            GgmlType.Q4_1 => Blocks<Q41>(w, w1, w2, w3, next, x, n / 32),
            GgmlType.Q5_1 => Blocks<Q51>(w, w1, w2, w3, next, x, n / 32),
            GgmlType.IQ4_XS => IQ4XS(w, w1, w2, w3, next, x, n / 256),
            _ => throw new NotSupportedException($"no 512-bit block kernel for {type}"),
        };
        for (int r = 0; r < rows; r++) y[r] = result[r];
    }

    /// <summary>One row times x (the kernel with rows = 1), for the tests and benchmarks.</summary>
    public static float Dot(GgmlType type, byte* w, float* x, int n)
    {
        float y;
        Dot4(type, w, 0, 1, x, n, &y);
        return y;
    }

    /// <summary>
    /// The four rows' sums of their 16 lanes as one vector: halves added, then two rounds of vhaddps pair the rows' lanes
    /// (13 operations, where four Vector512.Sum took ~100 — a few % of a 2048-value group).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<float> Sums(Vector512<float> t0, Vector512<float> t1, Vector512<float> t2, Vector512<float> t3)
    {
        Vector256<float> a = t0.GetLower() + t0.GetUpper(), b = t1.GetLower() + t1.GetUpper();
        Vector256<float> c = t2.GetLower() + t2.GetUpper(), d = t3.GetLower() + t3.GetUpper();
        // [a0+a1, a2+a3, b0+b1, b2+b3 | a4+a5, …] then [Σa0–3, Σb0–3, Σc0–3, Σd0–3 | Σa4–7, …]
        Vector256<float> quarters = Avx.HorizontalAdd(Avx.HorizontalAdd(a, b), Avx.HorizontalAdd(c, d));
        return quarters.GetLower() + quarters.GetUpper();
    }

    /// <summary>IQ4's 16 grid values, as floats (index = nibble).</summary>
    private static Vector512<float> IQ4Grid() => Vector512.Create(-127f, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113);

    /// <summary>0 … 15.</summary>
    private static Vector512<float> Counting() => Vector512.Create(0f, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);

    // ---- blocks of 32 with one f16 scale (and Q4_1/Q5_1 one f16 minimum) ----

    /// <summary>A format of 32-value blocks: its size, whether it has a minimum, and its 32 values as two float vectors.</summary>
    private interface IBlock32
    {
        static abstract int Bytes { get; }
        static abstract bool HasMin { get; }

        /// <summary>Values 0–15 and 16–31 of the block (before the scale), from the permute tables lower and upper.</summary>
        static abstract (Vector512<float> Low, Vector512<float> High) Values(byte* block, Vector512<float> lower, Vector512<float> upper);

        static abstract Vector512<float> Lower();
        static abstract Vector512<float> Upper();
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static Vector128<float> Blocks<T>(byte* w0, byte* w1, byte* w2, byte* w3, byte* next, float* x, int blocks) where T : struct, IBlock32
    {
        float* halves = HalfTable.Pointer;
        Vector512<float> lower = T.Lower(), upper = T.Upper();
        // Per row: even blocks into t, odd into u, Q4_1/Q5_1's minimum terms into m — each chain one multiply-add per two
        // blocks (one chain per row took 4 cycles a block, 8 with the minimum, and bound the kernel).
        Vector512<float> t0 = default, t1 = default, t2 = default, t3 = default, u0 = default, u1 = default, u2 = default, u3 = default;
        Vector512<float> m0 = default, m1 = default, m2 = default, m3 = default;
        int stride = 4 * T.Bytes; // bytes of the next four rows per block step (rows are contiguous)
        int b = 0;
        for (; b + 2 <= blocks; b += 2)
        {
            // The hardware prefetcher stops at the 4 KB pages of the mapped file: 144–192 bytes of the next group per two blocks.
            byte* ahead = next + b * stride;
            Sse.Prefetch0(ahead);
            Sse.Prefetch0(ahead + 64);
            Sse.Prefetch0(ahead + 128);
            Sse.Prefetch0(ahead + 2 * stride - 1);
            int at = b * T.Bytes, odd = at + T.Bytes;
            Vector512<float> x0 = Vector512.Load(x + 32 * b), x1 = Vector512.Load(x + 32 * b + 16);
            Vector512<float> xSum = T.HasMin ? x0 + x1 : default;
            Block<T>(w0 + at, x0, x1, xSum, lower, upper, halves, ref t0, ref m0);
            Block<T>(w1 + at, x0, x1, xSum, lower, upper, halves, ref t1, ref m1);
            Block<T>(w2 + at, x0, x1, xSum, lower, upper, halves, ref t2, ref m2);
            Block<T>(w3 + at, x0, x1, xSum, lower, upper, halves, ref t3, ref m3);
            x0 = Vector512.Load(x + 32 * b + 32);
            x1 = Vector512.Load(x + 32 * b + 48);
            xSum = T.HasMin ? x0 + x1 : default;
            Block<T>(w0 + odd, x0, x1, xSum, lower, upper, halves, ref u0, ref m0);
            Block<T>(w1 + odd, x0, x1, xSum, lower, upper, halves, ref u1, ref m1);
            Block<T>(w2 + odd, x0, x1, xSum, lower, upper, halves, ref u2, ref m2);
            Block<T>(w3 + odd, x0, x1, xSum, lower, upper, halves, ref u3, ref m3);
        }
        if (b < blocks)
        {
            int at = b * T.Bytes;
            Vector512<float> x0 = Vector512.Load(x + 32 * b), x1 = Vector512.Load(x + 32 * b + 16);
            Vector512<float> xSum = T.HasMin ? x0 + x1 : default;
            Block<T>(w0 + at, x0, x1, xSum, lower, upper, halves, ref t0, ref m0);
            Block<T>(w1 + at, x0, x1, xSum, lower, upper, halves, ref t1, ref m1);
            Block<T>(w2 + at, x0, x1, xSum, lower, upper, halves, ref t2, ref m2);
            Block<T>(w3 + at, x0, x1, xSum, lower, upper, halves, ref t3, ref m3);
        }
        if (T.HasMin) { t0 += m0; t1 += m1; t2 += m2; t3 += m3; }
        return Sums(t0 + u0, t1 + u1, t2 + u2, t3 + u3);
    }

    /// <summary>total += d·Σ q·x; minimum += m·Σ x (Q4_1, Q5_1).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Block<T>(byte* block, Vector512<float> x0, Vector512<float> x1, Vector512<float> xSum, Vector512<float> lower, Vector512<float> upper,
                                 float* halves, ref Vector512<float> total, ref Vector512<float> minimum) where T : struct, IBlock32
    {
        (Vector512<float> low, Vector512<float> high) = T.Values(block, lower, upper);
        Vector512<float> qx = Vector512.FusedMultiplyAdd(high, x1, low * x0);
        total = Vector512.FusedMultiplyAdd(qx, Vector512.Create(HalfTable.ToSingle(halves, ref *block)), total);
        if (T.HasMin) minimum = Vector512.FusedMultiplyAdd(xSum, Vector512.Create(HalfTable.ToSingle(halves, ref block[2])), minimum);
    }

    /// <summary>16 nibble bytes at q widened to int32: lane j holds byte j (low nibble value j, high nibble value 16 + j).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<int> Widened(byte* q) => Avx512F.ConvertToVector512Int32(Vector128.Load(q));

    /// <summary>
    /// Q5's permute indices: bits 0–3 the nibble, bit 4 the fifth bit (bit j of the block's word for value j, rotated
    /// there); vpermt2ps ignores the bits above, so neither needs masking. Bit-select imm 0xE4: (C &amp; A) | (~C &amp; B).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static (Vector512<int>, Vector512<int>) FiveBit(byte* q, uint word)
    {
        Vector512<int> bytes = Widened(q);
        Vector512<uint> bits = Vector512.Create(word);
        Vector512<int> lowFifth = Avx512F.RotateRightVariable(bits, Vector512.Create(28u, 29, 30, 31, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)).AsInt32();
        Vector512<int> highFifth = Avx512F.RotateRightVariable(bits, Vector512.Create(12u, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27)).AsInt32();
        Vector512<int> nibble = Vector512.Create(15);
        return (Avx512F.TernaryLogic(bytes, lowFifth, nibble, 0xE4), Avx512F.TernaryLogic(Vector512.ShiftRightLogical(bytes, 4), highFifth, nibble, 0xE4));
    }

    /// <summary>f16 d, 16 nibble bytes; value = d·grid[nibble].</summary>
    private readonly struct IQ4NL : IBlock32
    {
        public static int Bytes => 18;
        public static bool HasMin => false;
        public static Vector512<float> Lower() => IQ4Grid();
        public static Vector512<float> Upper() => default;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static (Vector512<float>, Vector512<float>) Values(byte* block, Vector512<float> lower, Vector512<float> upper)
        {
            Vector512<int> bytes = Widened(block + 2); // vpermps reads the low 4 bits: the low nibble as it is
            return (Avx512F.PermuteVar16x32(lower, bytes), Avx512F.PermuteVar16x32(lower, Vector512.ShiftRightLogical(bytes, 4)));
        }
    }

    /// <summary>f16 d, f16 m, 16 nibble bytes; value = d·nibble + m.</summary>
    private readonly struct Q41 : IBlock32
    {
        public static int Bytes => 20;
        public static bool HasMin => true;
        public static Vector512<float> Lower() => Counting();
        public static Vector512<float> Upper() => default;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static (Vector512<float>, Vector512<float>) Values(byte* block, Vector512<float> lower, Vector512<float> upper)
        {
            Vector512<int> bytes = Widened(block + 4); // a permute of 0…15 in place of mask and conversion
            return (Avx512F.PermuteVar16x32(lower, bytes), Avx512F.PermuteVar16x32(lower, Vector512.ShiftRightLogical(bytes, 4)));
        }
    }

    /// <summary>f16 d, 32 fifth bits, 16 nibble bytes; value = d·((nibble | bit·16) − 16).</summary>
    private readonly struct Q50 : IBlock32
    {
        public static int Bytes => 22;
        public static bool HasMin => false;
        public static Vector512<float> Lower() => Counting() - Vector512.Create(16f);
        public static Vector512<float> Upper() => Counting();

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static (Vector512<float>, Vector512<float>) Values(byte* block, Vector512<float> lower, Vector512<float> upper)
        {
            (Vector512<int> low, Vector512<int> high) = FiveBit(block + 6, Unsafe.ReadUnaligned<uint>(block + 2));
            return (Avx512F.PermuteVar16x32x2(lower, low, upper), Avx512F.PermuteVar16x32x2(lower, high, upper));
        }
    }

    /// <summary>f16 d, f16 m, 32 fifth bits, 16 nibble bytes; value = d·(nibble | bit·16) + m.</summary>
    private readonly struct Q51 : IBlock32
    {
        public static int Bytes => 24;
        public static bool HasMin => true;
        public static Vector512<float> Lower() => Counting();
        public static Vector512<float> Upper() => Counting() + Vector512.Create(16f);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static (Vector512<float>, Vector512<float>) Values(byte* block, Vector512<float> lower, Vector512<float> upper)
        {
            (Vector512<int> low, Vector512<int> high) = FiveBit(block + 8, Unsafe.ReadUnaligned<uint>(block + 4));
            return (Avx512F.PermuteVar16x32x2(lower, low, upper), Avx512F.PermuteVar16x32x2(lower, high, upper));
        }
    }

    // ---- IQ4_XS: 256 values, f16 d, 8 6-bit sub-block scales (low nibbles at byte 4, high pairs at byte 2), 16 bytes per 32 at byte 8 ----

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static Vector128<float> IQ4XS(byte* w0, byte* w1, byte* w2, byte* w3, byte* next, float* x, int blocks)
    {
        const int Bytes = 136, Stride = 4 * Bytes;
        float* halves = HalfTable.Pointer;
        Vector512<float> grid = IQ4Grid();
        // Per row the block's 8 sub-block scales d·(ls − 32), one 32-byte row each.
        float* scales = stackalloc float[32];
        // Two chains per row (even and odd sub-blocks): 8 dependent multiply-adds per super-block would otherwise bind.
        Vector512<float> t0 = default, t1 = default, t2 = default, t3 = default, u0 = default, u1 = default, u2 = default, u3 = default;
        for (int b = 0; b < blocks; b++)
        {
            byte* ahead = next + b * Stride;
            int at = b * Bytes;
            byte* b0 = w0 + at, b1 = w1 + at, b2 = w2 + at, b3 = w3 + at;
            SubScales(b0, halves).Store(scales);
            SubScales(b1, halves).Store(scales + 8);
            SubScales(b2, halves).Store(scales + 16);
            SubScales(b3, halves).Store(scales + 24);
            float* xb = x + 256 * b;
            for (int j = 0; j < 8; j += 2)
            {
                Sse.Prefetch0(ahead + 64 * j); // 8 of the next group's 9 lines per step, one per sub-block
                Sse.Prefetch0(ahead + 64 * j + 64);
                Vector512<float> x0 = Vector512.Load(xb + 32 * j), x1 = Vector512.Load(xb + 32 * j + 16);
                int q = 8 + 16 * j;
                t0 = SubBlock(b0 + q, x0, x1, grid, scales + j, t0);
                t1 = SubBlock(b1 + q, x0, x1, grid, scales + 8 + j, t1);
                t2 = SubBlock(b2 + q, x0, x1, grid, scales + 16 + j, t2);
                t3 = SubBlock(b3 + q, x0, x1, grid, scales + 24 + j, t3);
                x0 = Vector512.Load(xb + 32 * j + 32);
                x1 = Vector512.Load(xb + 32 * j + 48);
                u0 = SubBlock(b0 + q + 16, x0, x1, grid, scales + j + 1, u0);
                u1 = SubBlock(b1 + q + 16, x0, x1, grid, scales + 9 + j, u1);
                u2 = SubBlock(b2 + q + 16, x0, x1, grid, scales + 17 + j, u2);
                u3 = SubBlock(b3 + q + 16, x0, x1, grid, scales + 25 + j, u3);
            }
            Sse.Prefetch0(ahead + Stride - 1);
        }
        return Sums(t0 + u0, t1 + u1, t2 + u2, t3 + u3);
    }

    /// <summary>
    /// The 8 scales d·(ls − 32) of a block: ls's low nibbles (a 32-bit word) and high pairs (a 16-bit word) deposited
    /// into the 8 bytes of one 64-bit word by pdep (nibble j to bits 8j…8j+3, pair j to 8j+4…8j+5), then widened.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> SubScales(byte* block, float* halves)
    {
        ulong ls = Bmi2.X64.ParallelBitDeposit(Unsafe.ReadUnaligned<uint>(block + 4), 0x0F0F0F0F0F0F0F0FUL) |
                   Bmi2.X64.ParallelBitDeposit(Unsafe.ReadUnaligned<ushort>(block + 2), 0x3030303030303030UL);
        Vector256<int> integers = Avx2.ConvertToVector256Int32(Vector128.CreateScalar(ls).AsByte()) - Vector256.Create(32);
        return Vector256.ConvertToSingle(integers) * Vector256.Create(HalfTable.ToSingle(halves, ref *block));
    }

    /// <summary>total + scale·Σ grid[q]·x over one sub-block of 32 (16 bytes at q: low nibbles values 0–15, high 16–31).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> SubBlock(byte* q, Vector512<float> x0, Vector512<float> x1, Vector512<float> grid, float* scale, Vector512<float> total)
    {
        Vector512<int> bytes = Widened(q);
        Vector512<float> qx = Vector512.FusedMultiplyAdd(Avx512F.PermuteVar16x32(grid, Vector512.ShiftRightLogical(bytes, 4)), x1, Avx512F.PermuteVar16x32(grid, bytes) * x0);
        return Vector512.FusedMultiplyAdd(qx, Vector512.Create(*scale), total);
    }
}
