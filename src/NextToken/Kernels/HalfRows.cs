using System.Runtime.InteropServices;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace NextToken.Kernels;

/// <summary>
/// Decode kernels for float16 weights: 8 or 4 consecutive rows times one float32 vector, x loaded
/// once per group, each row read once and prefetched a few lines ahead (the hardware prefetcher stops
/// at the 4 KB pages of the mapped file). Exact: every product and sum is the float32 one.
/// </summary>
/// <remarks>
/// <para>.NET 10 does not expose <c>vcvtph2ps</c> (F16C or AVX-512 FP16; checked by reflection: no
/// method takes Half or 16-bit lanes and returns float lanes), so the conversion is done with
/// integer operations. A finite half h, sign-extended to 32 bits and shifted left by 13, holds its
/// sign in bit 31 (and copies of it in bits 28–30, cleared by one AND) and its exponent and
/// mantissa where float32 keeps them: read as a float32 it is h·2⁻¹¹² exactly (subnormals
/// included). The 2¹¹² goes onto x instead (x·2¹¹² is exact), so the FMA's exact product is h·x and
/// a value costs a widening load, a shift, an AND and the FMA: four operations where the general
/// conversion takes seven.</para>
/// <para>Infinities and NaNs (never in real weights) would convert wrongly, so the kernels keep the
/// maximum of the raw halves shifted left by one (the sign dropped; ≥ 0xF800 exactly when the
/// exponent is all ones) as they go, and a group where that fired, or whose result is not finite
/// (x·2¹¹² overflows when |x| ≥ 2¹⁶), is computed again by <see cref="Dot.F16"/>, the general
/// conversion. The check replaces a separate pass over the rows.</para>
/// </remarks>
internal static unsafe class HalfRows
{
    /// <summary>AVX-512 kernels (<see cref="Eight"/> and <see cref="Four"/> with wide = true) can run.</summary>
    public static bool Wide => Vector512.IsHardwareAccelerated && Avx512F.IsSupported && Avx512BW.IsSupported;

    /// <summary>AVX2 + FMA kernels can run.</summary>
    public static bool Narrow => Vector256.IsHardwareAccelerated && Avx2.IsSupported && Fma.IsSupported;

    /// <summary>The row lengths the kernels take.</summary>
    public static bool Handles(int n) => n % 16 == 0 && n > 0;

    /// <summary>2¹¹², as float32 bits: the rebias from half's exponent (bias 15) to single's (bias 127).</summary>
    private const int Rebias = 0x77800000;

    /// <summary>Keeps sign, exponent and mantissa of a half shifted into float32 position; clears the sign's copies in bits 28–30.</summary>
    private const int KeepBits = unchecked((int)0x8FFFE000);

    /// <summary>(h &lt;&lt; 1) as 16 bits at or above this: exponent all ones (infinity or NaN).</summary>
    private const ushort NonFinite = 0xF800;

    /// <summary>
    /// How far ahead (in values) each row prefetches its own data: 512 bytes, eight lines per row. Prefetching
    /// the whole next group instead (8 rows: 32 KB ahead for TinyLlama's 4 KB rows) evicted lines from L1 before
    /// they were read; one thread read 7.7 GB/s that way and 11.6 this way (2048 and 5632 values per row). On a Zen 4 the lines
    /// go to L2 (<see cref="RowStreams.Prefetch"/>, <see cref="CpuInfo.PrefetchesToL2"/>): there a stream prefetched into L1 is
    /// held to ~13 GB/s per thread by L1's few outstanding misses, into L2 21–24 (F32 rows, <c>--alternate-f32</c>); in
    /// alternating runs, generation of GPT-2 F16 went from 70 to 97–101 tok/s, 1.1B F16 from 12 to 12.6–13.3 (sixteenth
    /// session). A Zen 5 streams faster into L1 (twentieth session: <see cref="CpuInfo.PrefetchesToL2"/>).
    /// </summary>
    private const int AheadValues = 256;

    /// <summary>
    /// The prefetch distance of a batched kernel that streams <paramref name="rows"/> rows where the lone kernels stream eight:
    /// as many bytes in flight (4 KB). At <see cref="AheadValues"/> a 64 MB matrix read from memory was no faster, or slower,
    /// batched than per input (Zen 5, one thread: float16 AVX2 two inputs 1.15x the per-input time, AVX-512 four 0.90x;
    /// bfloat16 AVX2 0.94–1.02x); at this distance 0.80x, 0.55x and 0.83–0.92x (<c>bench --f16-batch</c>, <c>--bf16-batch</c>;
    /// cache-resident shapes unchanged).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int BatchAhead(int rows) => 8 / rows * AheadValues;

    /// <summary>
    /// The offset (in values, from each row's start) to prefetch at step i: <paramref name="distance"/> on in the
    /// same row, or past the row's end the same place in the row its accumulators take next (<see cref="RowStreams.Following"/>).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static long Ahead(int i, int n, long following, int distance = AheadValues) => i + distance < n ? i + distance : i + distance - n + following;

    /// <summary>
    /// Rows w, w + stride, …, w + 7·stride times x (n values, n a multiple of 16) into y[0..7]. <paramref name="finite"/>: the
    /// caller knows the rows hold no infinity or NaN (<see cref="TensorData.HalvesAllFinite"/>), so the kernel skips its check.
    /// </summary>
    public static void Eight(bool wide, ushort* w, long rowStride, float* x, int n, float* y, bool finite)
    {
        if (wide && finite) EightWide<Unchecked>(w, rowStride, x, n, y);
        else if (wide) EightWide<Checked>(w, rowStride, x, n, y);
        else if (finite) EightNarrow<Unchecked>(w, rowStride, x, n, y);
        else EightNarrow<Checked>(w, rowStride, x, n, y);
    }

    /// <summary>Rows w, w + stride, …, w + 7·stride times x into y[0..7], checking each value.</summary>
    public static void Eight(bool wide, ushort* w, long rowStride, float* x, int n, float* y) => Eight(wide, w, rowStride, x, n, y, finite: false);

    /// <summary>Rows w … w + 3·stride times x (n a multiple of 16) into y[0..3]; <paramref name="finite"/> as for <see cref="Eight(bool, ushort*, long, float*, int, float*, bool)"/>.</summary>
    public static void Four(bool wide, ushort* w, long rowStride, float* x, int n, float* y, bool finite)
    {
        if (wide && finite) FourWide<Unchecked>(w, rowStride, x, n, y);
        else if (wide) FourWide<Checked>(w, rowStride, x, n, y);
        else if (finite) FourNarrow<Unchecked>(w, rowStride, x, n, y);
        else FourNarrow<Checked>(w, rowStride, x, n, y);
    }

    /// <summary>Rows w … w + 3·stride times x into y[0..3], checking each value.</summary>
    public static void Four(bool wide, ushort* w, long rowStride, float* x, int n, float* y) => Four(wide, w, rowStride, x, n, y, finite: false);

    /// <summary>
    /// Whether a float16 kernel checks its rows for infinities and NaNs as it reads them (a max and an add per 16 or 32 values
    /// and row, 2 of the 512-bit kernel's 10 operations per 32 values: on a Zen 4, one thread, alternating, 1.1B F16 decode
    /// 6.1–6.9 tok/s checked, 7.4–7.5 unchecked with AVX-512; 5.7–6.1 and 6.7–7.2 with AVX2). A type argument, so
    /// each form is compiled on its own with no branch in the loop.
    /// </summary>
    private interface IRowCheck
    {
        static abstract bool Checks { get; }
    }

    private readonly struct Checked : IRowCheck
    {
        public static bool Checks => true;
    }

    private readonly struct Unchecked : IRowCheck
    {
        public static bool Checks => false;
    }

    /// <summary>
    /// float16 → float32 for whole vectors of a row (the prompt path expands weight rows tile by tile):
    /// the conversion of the decode kernels with the 2¹¹² applied by one multiply, five operations per
    /// 16 (AVX-512) or 8 values with the check. Returns how many leading values it wrote (a multiple of
    /// the width), or 0 when the row holds an infinity or a NaN; the caller converts the rest.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static int ToSingle(ushort* h, float* destination, int n)
    {
        int i = 0;
        if (Wide)
        {
            Vector512<float> scale = Vector512.Create(Rebias).AsSingle();
            Vector256<ushort> check = default;
            for (; i + 16 <= n; i += 16)
            {
                (Wide16(h + i) * scale).Store(destination + i);
                check = Vector256.Max(check, Shifted16(h + i));
            }
            return Vector256.GreaterThanOrEqualAny(check, Vector256.Create(NonFinite)) ? 0 : i;
        }
        if (Narrow)
        {
            Vector256<float> scale = Vector256.Create(Rebias).AsSingle();
            Vector256<ushort> check = default;
            for (; i + 16 <= n; i += 16)
            {
                (Narrow8(h + i) * scale).Store(destination + i);
                (Narrow8(h + i + 8) * scale).Store(destination + i + 8);
                check = Vector256.Max(check, Shifted16(h + i));
            }
            return Vector256.GreaterThanOrEqualAny(check, Vector256.Create(NonFinite)) ? 0 : i;
        }
        return 0;
    }

    /// <summary>
    /// The rows of a group the fast conversion cannot be trusted with (see remarks) again with the
    /// general one: decided row by row, so a row's result never depends on which rows share its group.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void General(ushort* w, long rowStride, float* x, int n, float* y, int rows)
    {
        for (int r = 0; r < rows; r++)
        {
            var row = new ReadOnlySpan<ushort>(w + r * rowStride, n);
            if (float.IsFinite(y[r]) && !HasInfinityOrNaN(row)) continue;
            y[r] = Dot.F16(MemoryMarshal.Cast<ushort, Half>(row), new ReadOnlySpan<float>(x, n));
        }
    }

    private static bool HasInfinityOrNaN(ReadOnlySpan<ushort> halves)
    {
        foreach (ushort h in halves)
            if ((h & 0x7C00) == 0x7C00) return true;
        return false;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool AllFinite(float* y, int count)
    {
        bool finite = true;
        for (int r = 0; r < count; r++) finite &= float.IsFinite(y[r]);
        return finite;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Wide16(ushort* h) =>
        (Avx512F.ShiftLeftLogical(Avx512F.ConvertToVector512Int32(Vector256.Load((short*)h)), 13) & Vector512.Create(KeepBits)).AsSingle();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<ushort> Shifted32(ushort* h)
    {
        Vector512<ushort> raw = Vector512.Load(h);
        return raw + raw;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Narrow8(ushort* h) =>
        (Avx2.ShiftLeftLogical(Avx2.ConvertToVector256Int32((short*)h), 13) & Vector256.Create(KeepBits)).AsSingle();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<ushort> Shifted16(ushort* h)
    {
        Vector256<ushort> raw = Vector256.Load(h);
        return raw + raw;
    }

    /// <summary>
    /// AVX-512, 8 rows: per 32 values, two x vectors scaled once, and per row two widening loads,
    /// two shifts, two ANDs, two FMAs (two accumulators per row) and, in the checked form, the check (an add and a max on
    /// the raw 32 halves).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void EightWide<TCheck>(ushort* w0, long s, float* x, int n, float* y) where TCheck : struct, IRowCheck
    {
        ushort* w1 = w0 + s, w2 = w1 + s, w3 = w2 + s, w4 = w3 + s, w5 = w4 + s, w6 = w5 + s, w7 = w6 + s;
        Vector512<float> scale = Vector512.Create(Rebias).AsSingle();
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default, a4 = default, a5 = default, a6 = default, a7 = default;
        Vector512<float> b0 = default, b1 = default, b2 = default, b3 = default, b4 = default, b5 = default, b6 = default, b7 = default;
        Vector512<ushort> check = default;
        int i = 0;
        for (; i + 32 <= n; i += 32)
        {
            long ahead = Ahead(i, n, RowStreams.Following(s, n, 8)); // a line of each row per step
            RowStreams.Prefetch(w0 + ahead); RowStreams.Prefetch(w1 + ahead); RowStreams.Prefetch(w2 + ahead); RowStreams.Prefetch(w3 + ahead); RowStreams.Prefetch(w4 + ahead); RowStreams.Prefetch(w5 + ahead); RowStreams.Prefetch(w6 + ahead); RowStreams.Prefetch(w7 + ahead);
            Vector512<float> x0 = Vector512.Load(x + i) * scale, x1 = Vector512.Load(x + i + 16) * scale;
            a0 = Vector512.FusedMultiplyAdd(Wide16(w0 + i), x0, a0); b0 = Vector512.FusedMultiplyAdd(Wide16(w0 + i + 16), x1, b0);
            a1 = Vector512.FusedMultiplyAdd(Wide16(w1 + i), x0, a1); b1 = Vector512.FusedMultiplyAdd(Wide16(w1 + i + 16), x1, b1);
            a2 = Vector512.FusedMultiplyAdd(Wide16(w2 + i), x0, a2); b2 = Vector512.FusedMultiplyAdd(Wide16(w2 + i + 16), x1, b2);
            a3 = Vector512.FusedMultiplyAdd(Wide16(w3 + i), x0, a3); b3 = Vector512.FusedMultiplyAdd(Wide16(w3 + i + 16), x1, b3);
            a4 = Vector512.FusedMultiplyAdd(Wide16(w4 + i), x0, a4); b4 = Vector512.FusedMultiplyAdd(Wide16(w4 + i + 16), x1, b4);
            a5 = Vector512.FusedMultiplyAdd(Wide16(w5 + i), x0, a5); b5 = Vector512.FusedMultiplyAdd(Wide16(w5 + i + 16), x1, b5);
            a6 = Vector512.FusedMultiplyAdd(Wide16(w6 + i), x0, a6); b6 = Vector512.FusedMultiplyAdd(Wide16(w6 + i + 16), x1, b6);
            a7 = Vector512.FusedMultiplyAdd(Wide16(w7 + i), x0, a7); b7 = Vector512.FusedMultiplyAdd(Wide16(w7 + i + 16), x1, b7);
            if (TCheck.Checks) check = Vector512.Max(Vector512.Max(Vector512.Max(check, Shifted32(w0 + i)), Vector512.Max(Shifted32(w1 + i), Shifted32(w2 + i))),
                                  Vector512.Max(Vector512.Max(Shifted32(w3 + i), Shifted32(w4 + i)), Vector512.Max(Vector512.Max(Shifted32(w5 + i), Shifted32(w6 + i)), Shifted32(w7 + i))));
        }
        bool special = TCheck.Checks && Vector512.GreaterThanOrEqualAny(check, Vector512.Create(NonFinite));
        if (i < n)
        {
            // The last 16 values of a row whose length is an odd multiple of 16.
            Vector512<float> x0 = Vector512.Load(x + i) * scale;
            a0 = Vector512.FusedMultiplyAdd(Wide16(w0 + i), x0, a0); a1 = Vector512.FusedMultiplyAdd(Wide16(w1 + i), x0, a1);
            a2 = Vector512.FusedMultiplyAdd(Wide16(w2 + i), x0, a2); a3 = Vector512.FusedMultiplyAdd(Wide16(w3 + i), x0, a3);
            a4 = Vector512.FusedMultiplyAdd(Wide16(w4 + i), x0, a4); a5 = Vector512.FusedMultiplyAdd(Wide16(w5 + i), x0, a5);
            a6 = Vector512.FusedMultiplyAdd(Wide16(w6 + i), x0, a6); a7 = Vector512.FusedMultiplyAdd(Wide16(w7 + i), x0, a7);
            if (TCheck.Checks)
            {
                Vector256<ushort> tail = Vector256.Max(Vector256.Max(Vector256.Max(Shifted16(w0 + i), Shifted16(w1 + i)), Vector256.Max(Shifted16(w2 + i), Shifted16(w3 + i))),
                                                       Vector256.Max(Vector256.Max(Shifted16(w4 + i), Shifted16(w5 + i)), Vector256.Max(Shifted16(w6 + i), Shifted16(w7 + i))));
                special |= Vector256.GreaterThanOrEqualAny(tail, Vector256.Create(NonFinite));
            }
        }
        y[0] = Vector512.Sum(a0 + b0); y[1] = Vector512.Sum(a1 + b1); y[2] = Vector512.Sum(a2 + b2); y[3] = Vector512.Sum(a3 + b3);
        y[4] = Vector512.Sum(a4 + b4); y[5] = Vector512.Sum(a5 + b5); y[6] = Vector512.Sum(a6 + b6); y[7] = Vector512.Sum(a7 + b7);
        if (special || !AllFinite(y, 8)) General(w0, s, x, n, y, 8);
    }

    /// <summary>AVX-512, 4 rows: <see cref="EightWide{TCheck}"/> for the last rows of a range.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void FourWide<TCheck>(ushort* w0, long s, float* x, int n, float* y) where TCheck : struct, IRowCheck
    {
        ushort* w1 = w0 + s, w2 = w1 + s, w3 = w2 + s;
        Vector512<float> scale = Vector512.Create(Rebias).AsSingle();
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default, b0 = default, b1 = default, b2 = default, b3 = default;
        Vector512<ushort> check = default;
        int i = 0;
        for (; i + 32 <= n; i += 32)
        {
            long ahead = Ahead(i, n, RowStreams.Following(s, n, 4));
            RowStreams.Prefetch(w0 + ahead); RowStreams.Prefetch(w1 + ahead); RowStreams.Prefetch(w2 + ahead); RowStreams.Prefetch(w3 + ahead);
            Vector512<float> x0 = Vector512.Load(x + i) * scale, x1 = Vector512.Load(x + i + 16) * scale;
            a0 = Vector512.FusedMultiplyAdd(Wide16(w0 + i), x0, a0); b0 = Vector512.FusedMultiplyAdd(Wide16(w0 + i + 16), x1, b0);
            a1 = Vector512.FusedMultiplyAdd(Wide16(w1 + i), x0, a1); b1 = Vector512.FusedMultiplyAdd(Wide16(w1 + i + 16), x1, b1);
            a2 = Vector512.FusedMultiplyAdd(Wide16(w2 + i), x0, a2); b2 = Vector512.FusedMultiplyAdd(Wide16(w2 + i + 16), x1, b2);
            a3 = Vector512.FusedMultiplyAdd(Wide16(w3 + i), x0, a3); b3 = Vector512.FusedMultiplyAdd(Wide16(w3 + i + 16), x1, b3);
            if (TCheck.Checks) check = Vector512.Max(Vector512.Max(check, Shifted32(w0 + i)), Vector512.Max(Vector512.Max(Shifted32(w1 + i), Shifted32(w2 + i)), Shifted32(w3 + i)));
        }
        bool special = TCheck.Checks && Vector512.GreaterThanOrEqualAny(check, Vector512.Create(NonFinite));
        if (i < n)
        {
            Vector512<float> x0 = Vector512.Load(x + i) * scale;
            a0 = Vector512.FusedMultiplyAdd(Wide16(w0 + i), x0, a0); a1 = Vector512.FusedMultiplyAdd(Wide16(w1 + i), x0, a1);
            a2 = Vector512.FusedMultiplyAdd(Wide16(w2 + i), x0, a2); a3 = Vector512.FusedMultiplyAdd(Wide16(w3 + i), x0, a3);
            if (TCheck.Checks)
            {
                Vector256<ushort> tail = Vector256.Max(Vector256.Max(Shifted16(w0 + i), Shifted16(w1 + i)), Vector256.Max(Shifted16(w2 + i), Shifted16(w3 + i)));
                special |= Vector256.GreaterThanOrEqualAny(tail, Vector256.Create(NonFinite));
            }
        }
        y[0] = Vector512.Sum(a0 + b0); y[1] = Vector512.Sum(a1 + b1); y[2] = Vector512.Sum(a2 + b2); y[3] = Vector512.Sum(a3 + b3);
        if (special || !AllFinite(y, 4)) General(w0, s, x, n, y, 4);
    }

    /// <summary>
    /// AVX2, 8 rows: per 16 values, two x vectors scaled once, and per row two sign-extending loads,
    /// two shifts, two ANDs, two FMAs (one accumulator per row: 16 registers) and, in the checked form, the check on the raw 16 halves.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void EightNarrow<TCheck>(ushort* w0, long s, float* x, int n, float* y) where TCheck : struct, IRowCheck
    {
        ushort* w1 = w0 + s, w2 = w1 + s, w3 = w2 + s, w4 = w3 + s, w5 = w4 + s, w6 = w5 + s, w7 = w6 + s;
        Vector256<float> scale = Vector256.Create(Rebias).AsSingle();
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default, a4 = default, a5 = default, a6 = default, a7 = default;
        Vector256<ushort> check = default;
        for (int i = 0; i < n; i += 16)
        {
            // Half a line of each row per step: four rows' lines on even steps, the other four's on odd ones.
            long ahead = Ahead(i, n, RowStreams.Following(s, n, 8));
            if ((i & 16) == 0) { RowStreams.Prefetch(w0 + ahead); RowStreams.Prefetch(w1 + ahead); RowStreams.Prefetch(w2 + ahead); RowStreams.Prefetch(w3 + ahead); }
            else { RowStreams.Prefetch(w4 + ahead); RowStreams.Prefetch(w5 + ahead); RowStreams.Prefetch(w6 + ahead); RowStreams.Prefetch(w7 + ahead); }
            Vector256<float> x0 = Vector256.Load(x + i) * scale, x1 = Vector256.Load(x + i + 8) * scale;
            a0 = Vector256.FusedMultiplyAdd(Narrow8(w0 + i + 8), x1, Vector256.FusedMultiplyAdd(Narrow8(w0 + i), x0, a0));
            a1 = Vector256.FusedMultiplyAdd(Narrow8(w1 + i + 8), x1, Vector256.FusedMultiplyAdd(Narrow8(w1 + i), x0, a1));
            a2 = Vector256.FusedMultiplyAdd(Narrow8(w2 + i + 8), x1, Vector256.FusedMultiplyAdd(Narrow8(w2 + i), x0, a2));
            a3 = Vector256.FusedMultiplyAdd(Narrow8(w3 + i + 8), x1, Vector256.FusedMultiplyAdd(Narrow8(w3 + i), x0, a3));
            a4 = Vector256.FusedMultiplyAdd(Narrow8(w4 + i + 8), x1, Vector256.FusedMultiplyAdd(Narrow8(w4 + i), x0, a4));
            a5 = Vector256.FusedMultiplyAdd(Narrow8(w5 + i + 8), x1, Vector256.FusedMultiplyAdd(Narrow8(w5 + i), x0, a5));
            a6 = Vector256.FusedMultiplyAdd(Narrow8(w6 + i + 8), x1, Vector256.FusedMultiplyAdd(Narrow8(w6 + i), x0, a6));
            a7 = Vector256.FusedMultiplyAdd(Narrow8(w7 + i + 8), x1, Vector256.FusedMultiplyAdd(Narrow8(w7 + i), x0, a7));
            if (TCheck.Checks) check = Vector256.Max(Vector256.Max(Vector256.Max(check, Shifted16(w0 + i)), Vector256.Max(Shifted16(w1 + i), Shifted16(w2 + i))),
                                  Vector256.Max(Vector256.Max(Shifted16(w3 + i), Shifted16(w4 + i)), Vector256.Max(Vector256.Max(Shifted16(w5 + i), Shifted16(w6 + i)), Shifted16(w7 + i))));
        }
        y[0] = Vector256.Sum(a0); y[1] = Vector256.Sum(a1); y[2] = Vector256.Sum(a2); y[3] = Vector256.Sum(a3);
        y[4] = Vector256.Sum(a4); y[5] = Vector256.Sum(a5); y[6] = Vector256.Sum(a6); y[7] = Vector256.Sum(a7);
        if (TCheck.Checks && Vector256.GreaterThanOrEqualAny(check, Vector256.Create(NonFinite)) || !AllFinite(y, 8)) General(w0, s, x, n, y, 8);
    }

    /// <summary>
    /// AVX2, 4 rows: <see cref="EightNarrow{TCheck}"/>'s single chain per row, so a row gets the same bits
    /// whichever group it falls in (row ranges split differently with the batch size, and a
    /// server's streams must each get what they would get alone).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void FourNarrow<TCheck>(ushort* w0, long s, float* x, int n, float* y) where TCheck : struct, IRowCheck
    {
        ushort* w1 = w0 + s, w2 = w1 + s, w3 = w2 + s;
        Vector256<float> scale = Vector256.Create(Rebias).AsSingle();
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        Vector256<ushort> check = default;
        for (int i = 0; i < n; i += 16)
        {
            long ahead = Ahead(i, n, RowStreams.Following(s, n, 4));
            if ((i & 16) == 0) { RowStreams.Prefetch(w0 + ahead); RowStreams.Prefetch(w1 + ahead); }
            else { RowStreams.Prefetch(w2 + ahead); RowStreams.Prefetch(w3 + ahead); }
            Vector256<float> x0 = Vector256.Load(x + i) * scale, x1 = Vector256.Load(x + i + 8) * scale;
            a0 = Vector256.FusedMultiplyAdd(Narrow8(w0 + i + 8), x1, Vector256.FusedMultiplyAdd(Narrow8(w0 + i), x0, a0));
            a1 = Vector256.FusedMultiplyAdd(Narrow8(w1 + i + 8), x1, Vector256.FusedMultiplyAdd(Narrow8(w1 + i), x0, a1));
            a2 = Vector256.FusedMultiplyAdd(Narrow8(w2 + i + 8), x1, Vector256.FusedMultiplyAdd(Narrow8(w2 + i), x0, a2));
            a3 = Vector256.FusedMultiplyAdd(Narrow8(w3 + i + 8), x1, Vector256.FusedMultiplyAdd(Narrow8(w3 + i), x0, a3));
            if (TCheck.Checks) check = Vector256.Max(Vector256.Max(check, Shifted16(w0 + i)), Vector256.Max(Vector256.Max(Shifted16(w1 + i), Shifted16(w2 + i)), Shifted16(w3 + i)));
        }
        y[0] = Vector256.Sum(a0); y[1] = Vector256.Sum(a1); y[2] = Vector256.Sum(a2); y[3] = Vector256.Sum(a3);
        if (TCheck.Checks && Vector256.GreaterThanOrEqualAny(check, Vector256.Create(NonFinite)) || !AllFinite(y, 4)) General(w0, s, x, n, y, 4);
    }

    /// <summary>
    /// Rows w … w + (rows − 1)·stride (rows a multiple of four, as the lone kernels' groups) times each of <paramref name="nBatch"/> inputs x + b·n into
    /// y + b·yStride: several contexts decoded together (a server's streams). Each row is converted once for
    /// a few inputs (four with AVX-512, two with AVX2) instead of once per input, and every (row, input)
    /// gets exactly the bits <see cref="Eight"/> and <see cref="Four"/> give it: the same accumulators,
    /// order, tail, reduction and general-conversion redo. Inputs left over run the lone kernels. <paramref name="finite"/>
    /// as for <see cref="Eight(bool, ushort*, long, float*, int, float*, bool)"/>: the rows hold no infinity or NaN, so no check.
    /// </summary>
    public static void Batch(bool wide, ushort* w, long rowStride, int rows, float* x, int n, int nBatch, float* y, long yStride, bool finite)
    {
        if (wide && finite) Batch<Unchecked>(true, w, rowStride, rows, x, n, nBatch, y, yStride);
        else if (wide) Batch<Checked>(true, w, rowStride, rows, x, n, nBatch, y, yStride);
        else if (finite) Batch<Unchecked>(false, w, rowStride, rows, x, n, nBatch, y, yStride);
        else Batch<Checked>(false, w, rowStride, rows, x, n, nBatch, y, yStride);
    }

    /// <summary><see cref="Batch(bool, ushort*, long, int, float*, int, int, float*, long, bool)"/>, checking each value.</summary>
    public static void Batch(bool wide, ushort* w, long rowStride, int rows, float* x, int n, int nBatch, float* y, long yStride) =>
        Batch(wide, w, rowStride, rows, x, n, nBatch, y, yStride, finite: false);

    private static void Batch<TCheck>(bool wide, ushort* w, long rowStride, int rows, float* x, int n, int nBatch, float* y, long yStride) where TCheck : struct, IRowCheck
    {
        if (rows % 4 != 0) throw new ArgumentException($"HalfRows.Batch takes whole groups of four rows, not {rows}", nameof(rows));
        int group = wide ? 4 : 2, grouped = nBatch - nBatch % group;
        // Rows outermost, eight (then a last four) at a time: a group's rows come from memory once and stay in L1 for
        // every input (inputs outermost read a matrix larger than the caches once per group of inputs: 1.4–1.6× the time).
        for (int r = 0; r < rows; r += 8)
        {
            int count = Math.Min(8, rows - r);
            ushort* wr = w + r * rowStride;
            for (int b = 0; b < grouped; b += group)
                for (int p = 0; p < count; p += 2)
                    if (wide) PairFourWide<TCheck>(wr + p * rowStride, rowStride, x + (long)b * n, n, y + b * yStride + r + p, yStride);
                    else PairTwoNarrow<TCheck>(wr + p * rowStride, rowStride, x + (long)b * n, n, y + b * yStride + r + p, yStride);
            for (int b = grouped; b < nBatch; b++)
                if (count == 8) Eight(wide, wr, rowStride, x + (long)b * n, n, y + b * yStride + r, !TCheck.Checks);
                else Four(wide, wr, rowStride, x + (long)b * n, n, y + b * yStride + r, !TCheck.Checks);
        }
    }

    /// <summary>
    /// AVX-512, 2 rows × 4 inputs: per 32 values four conversions (and, in the checked form, the check) for the two rows, two scaled
    /// x vectors per input, 16 FMAs into 16 accumulators (each (row, input) its two of <see cref="EightWide{TCheck}"/>).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void PairFourWide<TCheck>(ushort* w0, long s, float* x, int n, float* y, long yStride) where TCheck : struct, IRowCheck
    {
        ushort* w1 = w0 + s;
        float* x1p = x + n, x2p = x1p + n, x3p = x2p + n;
        Vector512<float> scale = Vector512.Create(Rebias).AsSingle();
        Vector512<float> a00 = default, a01 = default, a02 = default, a03 = default, a10 = default, a11 = default, a12 = default, a13 = default; // a[row][input]: values i … i + 15
        Vector512<float> b00 = default, b01 = default, b02 = default, b03 = default, b10 = default, b11 = default, b12 = default, b13 = default; // values i + 16 … i + 31
        Vector512<ushort> check = default;
        int i = 0;
        for (; i + 32 <= n; i += 32)
        {
            long ahead = Ahead(i, n, RowStreams.Following(s, n, 2), BatchAhead(2));
            RowStreams.Prefetch(w0 + ahead); RowStreams.Prefetch(w1 + ahead);
            Vector512<float> u0 = Wide16(w0 + i), u1 = Wide16(w0 + i + 16), v0 = Wide16(w1 + i), v1 = Wide16(w1 + i + 16);
            if (TCheck.Checks) check = Vector512.Max(check, Vector512.Max(Shifted32(w0 + i), Shifted32(w1 + i)));
            Vector512<float> xa = Vector512.Load(x + i) * scale, xb = Vector512.Load(x + i + 16) * scale;
            a00 = Vector512.FusedMultiplyAdd(u0, xa, a00); b00 = Vector512.FusedMultiplyAdd(u1, xb, b00);
            a10 = Vector512.FusedMultiplyAdd(v0, xa, a10); b10 = Vector512.FusedMultiplyAdd(v1, xb, b10);
            xa = Vector512.Load(x1p + i) * scale; xb = Vector512.Load(x1p + i + 16) * scale;
            a01 = Vector512.FusedMultiplyAdd(u0, xa, a01); b01 = Vector512.FusedMultiplyAdd(u1, xb, b01);
            a11 = Vector512.FusedMultiplyAdd(v0, xa, a11); b11 = Vector512.FusedMultiplyAdd(v1, xb, b11);
            xa = Vector512.Load(x2p + i) * scale; xb = Vector512.Load(x2p + i + 16) * scale;
            a02 = Vector512.FusedMultiplyAdd(u0, xa, a02); b02 = Vector512.FusedMultiplyAdd(u1, xb, b02);
            a12 = Vector512.FusedMultiplyAdd(v0, xa, a12); b12 = Vector512.FusedMultiplyAdd(v1, xb, b12);
            xa = Vector512.Load(x3p + i) * scale; xb = Vector512.Load(x3p + i + 16) * scale;
            a03 = Vector512.FusedMultiplyAdd(u0, xa, a03); b03 = Vector512.FusedMultiplyAdd(u1, xb, b03);
            a13 = Vector512.FusedMultiplyAdd(v0, xa, a13); b13 = Vector512.FusedMultiplyAdd(v1, xb, b13);
        }
        bool special = TCheck.Checks && Vector512.GreaterThanOrEqualAny(check, Vector512.Create(NonFinite));
        if (i < n)
        {
            Vector512<float> u0 = Wide16(w0 + i), v0 = Wide16(w1 + i);
            Vector512<float> xa = Vector512.Load(x + i) * scale;
            a00 = Vector512.FusedMultiplyAdd(u0, xa, a00); a10 = Vector512.FusedMultiplyAdd(v0, xa, a10);
            xa = Vector512.Load(x1p + i) * scale;
            a01 = Vector512.FusedMultiplyAdd(u0, xa, a01); a11 = Vector512.FusedMultiplyAdd(v0, xa, a11);
            xa = Vector512.Load(x2p + i) * scale;
            a02 = Vector512.FusedMultiplyAdd(u0, xa, a02); a12 = Vector512.FusedMultiplyAdd(v0, xa, a12);
            xa = Vector512.Load(x3p + i) * scale;
            a03 = Vector512.FusedMultiplyAdd(u0, xa, a03); a13 = Vector512.FusedMultiplyAdd(v0, xa, a13);
            if (TCheck.Checks) special |= Vector256.GreaterThanOrEqualAny(Vector256.Max(Shifted16(w0 + i), Shifted16(w1 + i)), Vector256.Create(NonFinite));
        }
        float* y1 = y + yStride, y2 = y1 + yStride, y3 = y2 + yStride;
        y[0] = Vector512.Sum(a00 + b00); y[1] = Vector512.Sum(a10 + b10);
        y1[0] = Vector512.Sum(a01 + b01); y1[1] = Vector512.Sum(a11 + b11);
        y2[0] = Vector512.Sum(a02 + b02); y2[1] = Vector512.Sum(a12 + b12);
        y3[0] = Vector512.Sum(a03 + b03); y3[1] = Vector512.Sum(a13 + b13);
        if (special || !AllFinite(y, 2)) General(w0, s, x, n, y, 2);
        if (special || !AllFinite(y1, 2)) General(w0, s, x1p, n, y1, 2);
        if (special || !AllFinite(y2, 2)) General(w0, s, x2p, n, y2, 2);
        if (special || !AllFinite(y3, 2)) General(w0, s, x3p, n, y3, 2);
    }

    /// <summary>AVX2, 2 rows × 2 inputs: per 16 values four conversions (and, checked, the check) for the two rows, each (row, input) <see cref="EightNarrow{TCheck}"/>'s one chain.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void PairTwoNarrow<TCheck>(ushort* w0, long s, float* x, int n, float* y, long yStride) where TCheck : struct, IRowCheck
    {
        ushort* w1 = w0 + s;
        float* x1p = x + n;
        Vector256<float> scale = Vector256.Create(Rebias).AsSingle();
        Vector256<float> a00 = default, a01 = default, a10 = default, a11 = default; // a[row][input]
        Vector256<ushort> check = default;
        for (int i = 0; i < n; i += 16)
        {
            long ahead = Ahead(i, n, RowStreams.Following(s, n, 2), BatchAhead(2));
            RowStreams.Prefetch(((i & 16) == 0 ? w0 : w1) + ahead);
            Vector256<float> u0 = Narrow8(w0 + i), u1 = Narrow8(w0 + i + 8), v0 = Narrow8(w1 + i), v1 = Narrow8(w1 + i + 8);
            if (TCheck.Checks) check = Vector256.Max(check, Vector256.Max(Shifted16(w0 + i), Shifted16(w1 + i)));
            Vector256<float> xa = Vector256.Load(x + i) * scale, xb = Vector256.Load(x + i + 8) * scale;
            a00 = Vector256.FusedMultiplyAdd(u1, xb, Vector256.FusedMultiplyAdd(u0, xa, a00));
            a10 = Vector256.FusedMultiplyAdd(v1, xb, Vector256.FusedMultiplyAdd(v0, xa, a10));
            xa = Vector256.Load(x1p + i) * scale; xb = Vector256.Load(x1p + i + 8) * scale;
            a01 = Vector256.FusedMultiplyAdd(u1, xb, Vector256.FusedMultiplyAdd(u0, xa, a01));
            a11 = Vector256.FusedMultiplyAdd(v1, xb, Vector256.FusedMultiplyAdd(v0, xa, a11));
        }
        bool special = TCheck.Checks && Vector256.GreaterThanOrEqualAny(check, Vector256.Create(NonFinite));
        float* y1 = y + yStride;
        y[0] = Vector256.Sum(a00); y[1] = Vector256.Sum(a10);
        y1[0] = Vector256.Sum(a01); y1[1] = Vector256.Sum(a11);
        if (special || !AllFinite(y, 2)) General(w0, s, x, n, y, 2);
        if (special || !AllFinite(y1, 2)) General(w0, s, x1p, n, y1, 2);
    }

    /// <summary>bfloat16 rows w … w + 7·stride times x (n a multiple of 16) into y[0..7]. Exact; infinities and NaNs need nothing special.</summary>
    public static void BrainEight(bool wide, ushort* w, long rowStride, float* x, int n, float* y)
    {
        if (wide) BrainEightWide(w, rowStride, x, n, y);
        else BrainEightNarrow(w, rowStride, x, n, y);
    }

    /// <summary>bfloat16 rows w … w + 3·stride times x (n a multiple of 16) into y[0..3].</summary>
    public static void BrainFour(bool wide, ushort* w, long rowStride, float* x, int n, float* y)
    {
        if (wide) BrainFourWide(w, rowStride, x, n, y);
        else BrainFourNarrow(w, rowStride, x, n, y);
    }

    // bfloat16 is the high half of a float32, so a 32-bit lane holding two of them gives both with one
    // operation each: the high one by clearing the low 16 bits, the low one by shifting it up. The
    // lanes then hold the values at even and odd positions, so x is split the same way, once per
    // group: two operations per value pair instead of a widening load and a shift per value.

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Low(Vector512<uint> pairs) => Vector512.ShiftLeft(pairs, 16).AsSingle();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> High(Vector512<uint> pairs) => (pairs & Vector512.Create(0xFFFF0000u)).AsSingle();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Low(Vector256<uint> pairs) => Vector256.ShiftLeft(pairs, 16).AsSingle();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> High(Vector256<uint> pairs) => (pairs & Vector256.Create(0xFFFF0000u)).AsSingle();

    /// <summary>x[0..32) as its values at even and at odd positions.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static (Vector512<float> Even, Vector512<float> Odd) Split(float* x)
    {
        Vector512<float> a = Vector512.Load(x), b = Vector512.Load(x + 16);
        return (Avx512F.PermuteVar16x32x2(a, Vector512.Create(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30), b),
                Avx512F.PermuteVar16x32x2(a, Vector512.Create(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31), b));
    }

    /// <summary>x[0..16) as its values at even and at odd positions (shuffles within 128-bit lanes, then the middle quarters swapped).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static (Vector256<float> Even, Vector256<float> Odd) Split8(float* x)
    {
        Vector256<float> a = Vector256.Load(x), b = Vector256.Load(x + 8);
        return (Avx2.Permute4x64(Avx.Shuffle(a, b, 0x88).AsDouble(), 0xD8).AsSingle(),
                Avx2.Permute4x64(Avx.Shuffle(a, b, 0xDD).AsDouble(), 0xD8).AsSingle());
    }

    /// <summary>16 bfloat16 values widened in order (the last 16 of a row whose length is an odd multiple of 16).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> BrainWide16(ushort* h) => Vector512.ShiftLeft(Avx512F.ConvertToVector512UInt32(Vector256.Load(h)), 16).AsSingle();

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void BrainEightWide(ushort* w0, long s, float* x, int n, float* y)
    {
        ushort* w1 = w0 + s, w2 = w1 + s, w3 = w2 + s, w4 = w3 + s, w5 = w4 + s, w6 = w5 + s, w7 = w6 + s;
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default, a4 = default, a5 = default, a6 = default, a7 = default;
        int i = 0;
        for (; i + 32 <= n; i += 32)
        {
            long ahead = Ahead(i, n, RowStreams.Following(s, n, 8)); // a line of each row per step
            RowStreams.Prefetch(w0 + ahead); RowStreams.Prefetch(w1 + ahead); RowStreams.Prefetch(w2 + ahead); RowStreams.Prefetch(w3 + ahead); RowStreams.Prefetch(w4 + ahead); RowStreams.Prefetch(w5 + ahead); RowStreams.Prefetch(w6 + ahead); RowStreams.Prefetch(w7 + ahead);
            (Vector512<float> even, Vector512<float> odd) = Split(x + i);
            Vector512<uint> v = Vector512.Load(w0 + i).AsUInt32(); a0 = Vector512.FusedMultiplyAdd(High(v), odd, Vector512.FusedMultiplyAdd(Low(v), even, a0));
            v = Vector512.Load(w1 + i).AsUInt32(); a1 = Vector512.FusedMultiplyAdd(High(v), odd, Vector512.FusedMultiplyAdd(Low(v), even, a1));
            v = Vector512.Load(w2 + i).AsUInt32(); a2 = Vector512.FusedMultiplyAdd(High(v), odd, Vector512.FusedMultiplyAdd(Low(v), even, a2));
            v = Vector512.Load(w3 + i).AsUInt32(); a3 = Vector512.FusedMultiplyAdd(High(v), odd, Vector512.FusedMultiplyAdd(Low(v), even, a3));
            v = Vector512.Load(w4 + i).AsUInt32(); a4 = Vector512.FusedMultiplyAdd(High(v), odd, Vector512.FusedMultiplyAdd(Low(v), even, a4));
            v = Vector512.Load(w5 + i).AsUInt32(); a5 = Vector512.FusedMultiplyAdd(High(v), odd, Vector512.FusedMultiplyAdd(Low(v), even, a5));
            v = Vector512.Load(w6 + i).AsUInt32(); a6 = Vector512.FusedMultiplyAdd(High(v), odd, Vector512.FusedMultiplyAdd(Low(v), even, a6));
            v = Vector512.Load(w7 + i).AsUInt32(); a7 = Vector512.FusedMultiplyAdd(High(v), odd, Vector512.FusedMultiplyAdd(Low(v), even, a7));
        }
        if (i < n)
        {
            Vector512<float> x0 = Vector512.Load(x + i);
            a0 = Vector512.FusedMultiplyAdd(BrainWide16(w0 + i), x0, a0); a1 = Vector512.FusedMultiplyAdd(BrainWide16(w1 + i), x0, a1);
            a2 = Vector512.FusedMultiplyAdd(BrainWide16(w2 + i), x0, a2); a3 = Vector512.FusedMultiplyAdd(BrainWide16(w3 + i), x0, a3);
            a4 = Vector512.FusedMultiplyAdd(BrainWide16(w4 + i), x0, a4); a5 = Vector512.FusedMultiplyAdd(BrainWide16(w5 + i), x0, a5);
            a6 = Vector512.FusedMultiplyAdd(BrainWide16(w6 + i), x0, a6); a7 = Vector512.FusedMultiplyAdd(BrainWide16(w7 + i), x0, a7);
        }
        y[0] = Vector512.Sum(a0); y[1] = Vector512.Sum(a1); y[2] = Vector512.Sum(a2); y[3] = Vector512.Sum(a3);
        y[4] = Vector512.Sum(a4); y[5] = Vector512.Sum(a5); y[6] = Vector512.Sum(a6); y[7] = Vector512.Sum(a7);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void BrainFourWide(ushort* w0, long s, float* x, int n, float* y)
    {
        ushort* w1 = w0 + s, w2 = w1 + s, w3 = w2 + s;
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default; // one chain per row, as BrainEightWide: the same bits in either group
        int i = 0;
        for (; i + 32 <= n; i += 32)
        {
            long ahead = Ahead(i, n, RowStreams.Following(s, n, 4));
            RowStreams.Prefetch(w0 + ahead); RowStreams.Prefetch(w1 + ahead); RowStreams.Prefetch(w2 + ahead); RowStreams.Prefetch(w3 + ahead);
            (Vector512<float> even, Vector512<float> odd) = Split(x + i);
            Vector512<uint> v = Vector512.Load(w0 + i).AsUInt32(); a0 = Vector512.FusedMultiplyAdd(High(v), odd, Vector512.FusedMultiplyAdd(Low(v), even, a0));
            v = Vector512.Load(w1 + i).AsUInt32(); a1 = Vector512.FusedMultiplyAdd(High(v), odd, Vector512.FusedMultiplyAdd(Low(v), even, a1));
            v = Vector512.Load(w2 + i).AsUInt32(); a2 = Vector512.FusedMultiplyAdd(High(v), odd, Vector512.FusedMultiplyAdd(Low(v), even, a2));
            v = Vector512.Load(w3 + i).AsUInt32(); a3 = Vector512.FusedMultiplyAdd(High(v), odd, Vector512.FusedMultiplyAdd(Low(v), even, a3));
        }
        if (i < n)
        {
            Vector512<float> x0 = Vector512.Load(x + i);
            a0 = Vector512.FusedMultiplyAdd(BrainWide16(w0 + i), x0, a0); a1 = Vector512.FusedMultiplyAdd(BrainWide16(w1 + i), x0, a1);
            a2 = Vector512.FusedMultiplyAdd(BrainWide16(w2 + i), x0, a2); a3 = Vector512.FusedMultiplyAdd(BrainWide16(w3 + i), x0, a3);
        }
        y[0] = Vector512.Sum(a0); y[1] = Vector512.Sum(a1); y[2] = Vector512.Sum(a2); y[3] = Vector512.Sum(a3);
    }

    /// <summary>
    /// bfloat16 rows w … w + (rows − 1)·stride (rows a multiple of four) times each of <paramref name="nBatch"/> inputs
    /// x + b·n into y + b·yStride (a server's streams, speculative checks): each row's pairs are loaded and split once
    /// for two inputs instead of once per input (AVX-512 eight rows per pass, AVX2 four), and each input's even/odd
    /// split is made once per call instead of once per group of rows. Rows are the outer loop, so a group's rows come
    /// from memory once and stay in L1 for every input. Every (row, input) gets exactly the bits <see cref="BrainEight"/>
    /// and <see cref="BrainFour"/> give it (one chain per row, the same FMAs in the same order, the same tail and sum);
    /// an odd input left over runs those lone kernels.
    /// </summary>
    public static void BrainBatch(bool wide, ushort* w, long rowStride, int rows, float* x, int n, int nBatch, float* y, long yStride)
    {
        if (rows % 4 != 0) throw new ArgumentException($"HalfRows.BrainBatch takes whole groups of four rows, not {rows}", nameof(rows));
        int paired = nBatch & ~1;
        float[] buffer = _split is { } kept && kept.Length >= paired * n ? kept : _split = new float[Math.Max(paired, 1) * n];
        fixed (float* split = buffer)
        {
            for (int b = 0; b < paired; b++) SplitInput(wide, x + (long)b * n, n, split + (long)b * n);
            int r = 0;
            for (; r + 8 <= rows; r += 8)
            {
                ushort* wr = w + r * rowStride;
                for (int b = 0; b < paired; b += 2)
                    if (wide) BrainEightTwoWide(wr, rowStride, split + (long)b * n, n, y + b * yStride + r, yStride);
                    else
                    {
                        BrainFourTwoNarrow(wr, rowStride, split + (long)b * n, n, y + b * yStride + r, yStride);
                        BrainFourTwoNarrow(wr + 4 * rowStride, rowStride, split + (long)b * n, n, y + b * yStride + r + 4, yStride);
                    }
                for (int b = paired; b < nBatch; b++) BrainEight(wide, wr, rowStride, x + (long)b * n, n, y + b * yStride + r);
            }
            if (r < rows)
            {
                ushort* wr = w + r * rowStride;
                int b = 0;
                if (!wide)
                    for (; b < paired; b += 2) BrainFourTwoNarrow(wr, rowStride, split + (long)b * n, n, y + b * yStride + r, yStride);
                for (; b < nBatch; b++) BrainFour(wide, wr, rowStride, x + (long)b * n, n, y + b * yStride + r);
            }
        }
    }

    [ThreadStatic] private static float[]? _split;

    /// <summary>
    /// x as the lone kernels split it, stored: AVX-512 each 32 values as their 16 at even positions then the 16 at odd
    /// ones (a last 16 as they are), AVX2 each 16 as 8 even then 8 odd.
    /// </summary>
    private static void SplitInput(bool wide, float* x, int n, float* split)
    {
        int i = 0;
        if (wide)
        {
            for (; i + 32 <= n; i += 32)
            {
                (Vector512<float> even, Vector512<float> odd) = Split(x + i);
                even.Store(split + i);
                odd.Store(split + i + 16);
            }
            if (i < n) Vector512.Load(x + i).Store(split + i);
        }
        else
            for (; i < n; i += 16)
            {
                (Vector256<float> even, Vector256<float> odd) = Split8(x + i);
                even.Store(split + i);
                odd.Store(split + i + 8);
            }
    }

    /// <summary>AVX-512, 8 rows × 2 inputs (x split by <see cref="SplitInput"/>, inputs n apart): 16 chains, each <see cref="BrainEightWide"/>'s for its (row, input).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void BrainEightTwoWide(ushort* w0, long s, float* x, int n, float* y, long yStride)
    {
        ushort* w1 = w0 + s, w2 = w1 + s, w3 = w2 + s, w4 = w3 + s, w5 = w4 + s, w6 = w5 + s, w7 = w6 + s;
        float* x1 = x + n;
        Vector512<float> a00 = default, a10 = default, a20 = default, a30 = default, a40 = default, a50 = default, a60 = default, a70 = default; // a[row][input]
        Vector512<float> a01 = default, a11 = default, a21 = default, a31 = default, a41 = default, a51 = default, a61 = default, a71 = default;
        int i = 0;
        for (; i + 32 <= n; i += 32)
        {
            long ahead = Ahead(i, n, RowStreams.Following(s, n, 8));
            RowStreams.Prefetch(w0 + ahead); RowStreams.Prefetch(w1 + ahead); RowStreams.Prefetch(w2 + ahead); RowStreams.Prefetch(w3 + ahead); RowStreams.Prefetch(w4 + ahead); RowStreams.Prefetch(w5 + ahead); RowStreams.Prefetch(w6 + ahead); RowStreams.Prefetch(w7 + ahead);
            Vector512<float> e0 = Vector512.Load(x + i), o0 = Vector512.Load(x + i + 16), e1 = Vector512.Load(x1 + i), o1 = Vector512.Load(x1 + i + 16);
            Vector512<uint> v; Vector512<float> l, h;
            v = Vector512.Load(w0 + i).AsUInt32(); l = Low(v); h = High(v);
            a00 = Vector512.FusedMultiplyAdd(h, o0, Vector512.FusedMultiplyAdd(l, e0, a00)); a01 = Vector512.FusedMultiplyAdd(h, o1, Vector512.FusedMultiplyAdd(l, e1, a01));
            v = Vector512.Load(w1 + i).AsUInt32(); l = Low(v); h = High(v);
            a10 = Vector512.FusedMultiplyAdd(h, o0, Vector512.FusedMultiplyAdd(l, e0, a10)); a11 = Vector512.FusedMultiplyAdd(h, o1, Vector512.FusedMultiplyAdd(l, e1, a11));
            v = Vector512.Load(w2 + i).AsUInt32(); l = Low(v); h = High(v);
            a20 = Vector512.FusedMultiplyAdd(h, o0, Vector512.FusedMultiplyAdd(l, e0, a20)); a21 = Vector512.FusedMultiplyAdd(h, o1, Vector512.FusedMultiplyAdd(l, e1, a21));
            v = Vector512.Load(w3 + i).AsUInt32(); l = Low(v); h = High(v);
            a30 = Vector512.FusedMultiplyAdd(h, o0, Vector512.FusedMultiplyAdd(l, e0, a30)); a31 = Vector512.FusedMultiplyAdd(h, o1, Vector512.FusedMultiplyAdd(l, e1, a31));
            v = Vector512.Load(w4 + i).AsUInt32(); l = Low(v); h = High(v);
            a40 = Vector512.FusedMultiplyAdd(h, o0, Vector512.FusedMultiplyAdd(l, e0, a40)); a41 = Vector512.FusedMultiplyAdd(h, o1, Vector512.FusedMultiplyAdd(l, e1, a41));
            v = Vector512.Load(w5 + i).AsUInt32(); l = Low(v); h = High(v);
            a50 = Vector512.FusedMultiplyAdd(h, o0, Vector512.FusedMultiplyAdd(l, e0, a50)); a51 = Vector512.FusedMultiplyAdd(h, o1, Vector512.FusedMultiplyAdd(l, e1, a51));
            v = Vector512.Load(w6 + i).AsUInt32(); l = Low(v); h = High(v);
            a60 = Vector512.FusedMultiplyAdd(h, o0, Vector512.FusedMultiplyAdd(l, e0, a60)); a61 = Vector512.FusedMultiplyAdd(h, o1, Vector512.FusedMultiplyAdd(l, e1, a61));
            v = Vector512.Load(w7 + i).AsUInt32(); l = Low(v); h = High(v);
            a70 = Vector512.FusedMultiplyAdd(h, o0, Vector512.FusedMultiplyAdd(l, e0, a70)); a71 = Vector512.FusedMultiplyAdd(h, o1, Vector512.FusedMultiplyAdd(l, e1, a71));
        }
        if (i < n)
        {
            // The last 16 values in order (SplitInput left them so), as the lone kernels take them.
            Vector512<float> xa = Vector512.Load(x + i), xb = Vector512.Load(x1 + i), u;
            u = BrainWide16(w0 + i); a00 = Vector512.FusedMultiplyAdd(u, xa, a00); a01 = Vector512.FusedMultiplyAdd(u, xb, a01);
            u = BrainWide16(w1 + i); a10 = Vector512.FusedMultiplyAdd(u, xa, a10); a11 = Vector512.FusedMultiplyAdd(u, xb, a11);
            u = BrainWide16(w2 + i); a20 = Vector512.FusedMultiplyAdd(u, xa, a20); a21 = Vector512.FusedMultiplyAdd(u, xb, a21);
            u = BrainWide16(w3 + i); a30 = Vector512.FusedMultiplyAdd(u, xa, a30); a31 = Vector512.FusedMultiplyAdd(u, xb, a31);
            u = BrainWide16(w4 + i); a40 = Vector512.FusedMultiplyAdd(u, xa, a40); a41 = Vector512.FusedMultiplyAdd(u, xb, a41);
            u = BrainWide16(w5 + i); a50 = Vector512.FusedMultiplyAdd(u, xa, a50); a51 = Vector512.FusedMultiplyAdd(u, xb, a51);
            u = BrainWide16(w6 + i); a60 = Vector512.FusedMultiplyAdd(u, xa, a60); a61 = Vector512.FusedMultiplyAdd(u, xb, a61);
            u = BrainWide16(w7 + i); a70 = Vector512.FusedMultiplyAdd(u, xa, a70); a71 = Vector512.FusedMultiplyAdd(u, xb, a71);
        }
        float* y1 = y + yStride;
        y[0] = Vector512.Sum(a00); y[1] = Vector512.Sum(a10); y[2] = Vector512.Sum(a20); y[3] = Vector512.Sum(a30); y[4] = Vector512.Sum(a40); y[5] = Vector512.Sum(a50); y[6] = Vector512.Sum(a60); y[7] = Vector512.Sum(a70);
        y1[0] = Vector512.Sum(a01); y1[1] = Vector512.Sum(a11); y1[2] = Vector512.Sum(a21); y1[3] = Vector512.Sum(a31); y1[4] = Vector512.Sum(a41); y1[5] = Vector512.Sum(a51); y1[6] = Vector512.Sum(a61); y1[7] = Vector512.Sum(a71);
    }

    /// <summary>AVX2, 4 rows × 2 inputs (x split by <see cref="SplitInput"/>): 8 chains, each <see cref="BrainEightNarrow"/>'s for its (row, input).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void BrainFourTwoNarrow(ushort* w0, long s, float* x, int n, float* y, long yStride)
    {
        ushort* w1 = w0 + s, w2 = w1 + s, w3 = w2 + s;
        float* x1 = x + n;
        Vector256<float> a00 = default, a01 = default, a10 = default, a11 = default, a20 = default, a21 = default, a30 = default, a31 = default; // a[row][input]
        for (int i = 0; i < n; i += 16)
        {
            long ahead = Ahead(i, n, RowStreams.Following(s, n, 4), BatchAhead(4));
            if ((i & 16) == 0) { RowStreams.Prefetch(w0 + ahead); RowStreams.Prefetch(w1 + ahead); }
            else { RowStreams.Prefetch(w2 + ahead); RowStreams.Prefetch(w3 + ahead); }
            Vector256<float> e0 = Vector256.Load(x + i), o0 = Vector256.Load(x + i + 8), e1 = Vector256.Load(x1 + i), o1 = Vector256.Load(x1 + i + 8);
            Vector256<uint> v = Vector256.Load(w0 + i).AsUInt32();
            Vector256<float> l = Low(v), h = High(v);
            a00 = Vector256.FusedMultiplyAdd(h, o0, Vector256.FusedMultiplyAdd(l, e0, a00)); a01 = Vector256.FusedMultiplyAdd(h, o1, Vector256.FusedMultiplyAdd(l, e1, a01));
            v = Vector256.Load(w1 + i).AsUInt32(); l = Low(v); h = High(v);
            a10 = Vector256.FusedMultiplyAdd(h, o0, Vector256.FusedMultiplyAdd(l, e0, a10)); a11 = Vector256.FusedMultiplyAdd(h, o1, Vector256.FusedMultiplyAdd(l, e1, a11));
            v = Vector256.Load(w2 + i).AsUInt32(); l = Low(v); h = High(v);
            a20 = Vector256.FusedMultiplyAdd(h, o0, Vector256.FusedMultiplyAdd(l, e0, a20)); a21 = Vector256.FusedMultiplyAdd(h, o1, Vector256.FusedMultiplyAdd(l, e1, a21));
            v = Vector256.Load(w3 + i).AsUInt32(); l = Low(v); h = High(v);
            a30 = Vector256.FusedMultiplyAdd(h, o0, Vector256.FusedMultiplyAdd(l, e0, a30)); a31 = Vector256.FusedMultiplyAdd(h, o1, Vector256.FusedMultiplyAdd(l, e1, a31));
        }
        float* y1 = y + yStride;
        y[0] = Vector256.Sum(a00); y[1] = Vector256.Sum(a10); y[2] = Vector256.Sum(a20); y[3] = Vector256.Sum(a30);
        y1[0] = Vector256.Sum(a01); y1[1] = Vector256.Sum(a11); y1[2] = Vector256.Sum(a21); y1[3] = Vector256.Sum(a31);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void BrainEightNarrow(ushort* w0, long s, float* x, int n, float* y)
    {
        ushort* w1 = w0 + s, w2 = w1 + s, w3 = w2 + s, w4 = w3 + s, w5 = w4 + s, w6 = w5 + s, w7 = w6 + s;
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default, a4 = default, a5 = default, a6 = default, a7 = default;
        for (int i = 0; i < n; i += 16)
        {
            long ahead = Ahead(i, n, RowStreams.Following(s, n, 8));
            if ((i & 16) == 0) { RowStreams.Prefetch(w0 + ahead); RowStreams.Prefetch(w1 + ahead); RowStreams.Prefetch(w2 + ahead); RowStreams.Prefetch(w3 + ahead); }
            else { RowStreams.Prefetch(w4 + ahead); RowStreams.Prefetch(w5 + ahead); RowStreams.Prefetch(w6 + ahead); RowStreams.Prefetch(w7 + ahead); }
            (Vector256<float> even, Vector256<float> odd) = Split8(x + i);
            Vector256<uint> v = Vector256.Load(w0 + i).AsUInt32(); a0 = Vector256.FusedMultiplyAdd(High(v), odd, Vector256.FusedMultiplyAdd(Low(v), even, a0));
            v = Vector256.Load(w1 + i).AsUInt32(); a1 = Vector256.FusedMultiplyAdd(High(v), odd, Vector256.FusedMultiplyAdd(Low(v), even, a1));
            v = Vector256.Load(w2 + i).AsUInt32(); a2 = Vector256.FusedMultiplyAdd(High(v), odd, Vector256.FusedMultiplyAdd(Low(v), even, a2));
            v = Vector256.Load(w3 + i).AsUInt32(); a3 = Vector256.FusedMultiplyAdd(High(v), odd, Vector256.FusedMultiplyAdd(Low(v), even, a3));
            v = Vector256.Load(w4 + i).AsUInt32(); a4 = Vector256.FusedMultiplyAdd(High(v), odd, Vector256.FusedMultiplyAdd(Low(v), even, a4));
            v = Vector256.Load(w5 + i).AsUInt32(); a5 = Vector256.FusedMultiplyAdd(High(v), odd, Vector256.FusedMultiplyAdd(Low(v), even, a5));
            v = Vector256.Load(w6 + i).AsUInt32(); a6 = Vector256.FusedMultiplyAdd(High(v), odd, Vector256.FusedMultiplyAdd(Low(v), even, a6));
            v = Vector256.Load(w7 + i).AsUInt32(); a7 = Vector256.FusedMultiplyAdd(High(v), odd, Vector256.FusedMultiplyAdd(Low(v), even, a7));
        }
        y[0] = Vector256.Sum(a0); y[1] = Vector256.Sum(a1); y[2] = Vector256.Sum(a2); y[3] = Vector256.Sum(a3);
        y[4] = Vector256.Sum(a4); y[5] = Vector256.Sum(a5); y[6] = Vector256.Sum(a6); y[7] = Vector256.Sum(a7);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void BrainFourNarrow(ushort* w0, long s, float* x, int n, float* y)
    {
        ushort* w1 = w0 + s, w2 = w1 + s, w3 = w2 + s;
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default; // one chain per row, as BrainEightNarrow
        for (int i = 0; i < n; i += 16)
        {
            long ahead = Ahead(i, n, RowStreams.Following(s, n, 4));
            if ((i & 16) == 0) { RowStreams.Prefetch(w0 + ahead); RowStreams.Prefetch(w1 + ahead); }
            else { RowStreams.Prefetch(w2 + ahead); RowStreams.Prefetch(w3 + ahead); }
            (Vector256<float> even, Vector256<float> odd) = Split8(x + i);
            Vector256<uint> v = Vector256.Load(w0 + i).AsUInt32(); a0 = Vector256.FusedMultiplyAdd(High(v), odd, Vector256.FusedMultiplyAdd(Low(v), even, a0));
            v = Vector256.Load(w1 + i).AsUInt32(); a1 = Vector256.FusedMultiplyAdd(High(v), odd, Vector256.FusedMultiplyAdd(Low(v), even, a1));
            v = Vector256.Load(w2 + i).AsUInt32(); a2 = Vector256.FusedMultiplyAdd(High(v), odd, Vector256.FusedMultiplyAdd(Low(v), even, a2));
            v = Vector256.Load(w3 + i).AsUInt32(); a3 = Vector256.FusedMultiplyAdd(High(v), odd, Vector256.FusedMultiplyAdd(Low(v), even, a3));
        }
        y[0] = Vector256.Sum(a0); y[1] = Vector256.Sum(a1); y[2] = Vector256.Sum(a2); y[3] = Vector256.Sum(a3);
    }
}
