using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace NextToken.Kernels;

/// <summary>Dot products of one stored weight row with a float32 vector, per storage type.</summary>
public static class Dot
{
    /// <remarks>
    /// Written out rather than TensorPrimitives.Dot, whose summation order depends on where the
    /// spans sit in memory: a context decoded beside others (its input row at another offset of
    /// the batch) must get the very same sums as alone. Unaligned loads, a fixed order.
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float F32(ReadOnlySpan<float> row, ReadOnlySpan<float> x)
    {
        if (row.Length != x.Length) throw new ArgumentException("row and vector lengths differ");
        ref float r = ref MemoryMarshal.GetReference(row);
        ref float v = ref MemoryMarshal.GetReference(x);
        int i = 0, n = row.Length;
        float sum = 0;
        if (Vector512.IsHardwareAccelerated && n >= 16)
        {
            Vector512<float> a0 = Vector512<float>.Zero, a1 = Vector512<float>.Zero, a2 = Vector512<float>.Zero, a3 = Vector512<float>.Zero;
            for (; i + 64 <= n; i += 64)
            {
                a0 = Vector512.FusedMultiplyAdd(Vector512.LoadUnsafe(ref r, (nuint)i), Vector512.LoadUnsafe(ref v, (nuint)i), a0);
                a1 = Vector512.FusedMultiplyAdd(Vector512.LoadUnsafe(ref r, (nuint)(i + 16)), Vector512.LoadUnsafe(ref v, (nuint)(i + 16)), a1);
                a2 = Vector512.FusedMultiplyAdd(Vector512.LoadUnsafe(ref r, (nuint)(i + 32)), Vector512.LoadUnsafe(ref v, (nuint)(i + 32)), a2);
                a3 = Vector512.FusedMultiplyAdd(Vector512.LoadUnsafe(ref r, (nuint)(i + 48)), Vector512.LoadUnsafe(ref v, (nuint)(i + 48)), a3);
            }
            for (; i + 16 <= n; i += 16)
                a0 = Vector512.FusedMultiplyAdd(Vector512.LoadUnsafe(ref r, (nuint)i), Vector512.LoadUnsafe(ref v, (nuint)i), a0);
            sum = Vector512.Sum((a0 + a1) + (a2 + a3));
        }
        else if (Vector256.IsHardwareAccelerated && n >= 8)
        {
            Vector256<float> a0 = Vector256<float>.Zero, a1 = Vector256<float>.Zero, a2 = Vector256<float>.Zero, a3 = Vector256<float>.Zero;
            for (; i + 32 <= n; i += 32)
            {
                a0 = Vector256.FusedMultiplyAdd(Vector256.LoadUnsafe(ref r, (nuint)i), Vector256.LoadUnsafe(ref v, (nuint)i), a0);
                a1 = Vector256.FusedMultiplyAdd(Vector256.LoadUnsafe(ref r, (nuint)(i + 8)), Vector256.LoadUnsafe(ref v, (nuint)(i + 8)), a1);
                a2 = Vector256.FusedMultiplyAdd(Vector256.LoadUnsafe(ref r, (nuint)(i + 16)), Vector256.LoadUnsafe(ref v, (nuint)(i + 16)), a2);
                a3 = Vector256.FusedMultiplyAdd(Vector256.LoadUnsafe(ref r, (nuint)(i + 24)), Vector256.LoadUnsafe(ref v, (nuint)(i + 24)), a3);
            }
            for (; i + 8 <= n; i += 8)
                a0 = Vector256.FusedMultiplyAdd(Vector256.LoadUnsafe(ref r, (nuint)i), Vector256.LoadUnsafe(ref v, (nuint)i), a0);
            sum = Vector256.Sum((a0 + a1) + (a2 + a3));
        }
        for (; i < n; i++) sum = MathF.FusedMultiplyAdd(Unsafe.Add(ref r, i), Unsafe.Add(ref v, i), sum);
        return sum;
    }

    /// <summary>
    /// Half-precision row: each 16 (or 8) values are widened to float32 in registers and multiplied
    /// straight away; nothing is written back to memory.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float F16(ReadOnlySpan<Half> row, ReadOnlySpan<float> x)
    {
        if (row.Length != x.Length) throw new ArgumentException("row and vector lengths differ");
        ref ushort r = ref Unsafe.As<Half, ushort>(ref MemoryMarshal.GetReference(row));
        ref float v = ref MemoryMarshal.GetReference(x);
        int i = 0;
        float sum = 0;
        if (Vector512.IsHardwareAccelerated && row.Length >= 32)
        {
            Vector512<float> acc0 = Vector512<float>.Zero, acc1 = Vector512<float>.Zero;
            for (; i + 32 <= row.Length; i += 32)
            {
                (Vector512<uint> lo, Vector512<uint> hi) = Vector512.Widen(Vector512.LoadUnsafe(ref r, (nuint)i));
                acc0 = Vector512.FusedMultiplyAdd(HalfToSingle(lo), Vector512.LoadUnsafe(ref v, (nuint)i), acc0);
                acc1 = Vector512.FusedMultiplyAdd(HalfToSingle(hi), Vector512.LoadUnsafe(ref v, (nuint)(i + 16)), acc1);
            }
            sum = Vector512.Sum(acc0 + acc1);
        }
        else if (Vector256.IsHardwareAccelerated && row.Length >= 16)
        {
            Vector256<float> acc = Vector256<float>.Zero;
            for (; i + 16 <= row.Length; i += 16)
            {
                (Vector256<uint> lo, Vector256<uint> hi) = Vector256.Widen(Vector256.LoadUnsafe(ref r, (nuint)i));
                acc = Vector256.FusedMultiplyAdd(HalfToSingle(lo), Vector256.LoadUnsafe(ref v, (nuint)i), acc);
                acc = Vector256.FusedMultiplyAdd(HalfToSingle(hi), Vector256.LoadUnsafe(ref v, (nuint)(i + 8)), acc);
            }
            sum = Vector256.Sum(acc);
        }
        for (; i < row.Length; i++) sum += (float)row[i] * x[i];
        return sum;
    }

    /// <summary>
    /// Four consecutive float16 rows (<paramref name="rowStride"/> halves apart) times x, with AVX-512,
    /// for decode: x is loaded once for the four rows and the next four rows are prefetched (the
    /// hardware prefetcher stops at the 4 KB pages of the mapped file). Rows without infinities or
    /// NaNs — every real weight row — convert in five operations per 16 values (see
    /// <see cref="FiniteHalfToSingle"/>); a row group holding one takes the general conversion.
    /// n a multiple of 32. Writes y[0..3].
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static unsafe void F16FourRows(ushort* w, long rowStride, float* x, int n, float* y)
    {
        ushort* w1 = w + rowStride, w2 = w1 + rowStride, w3 = w2 + rowStride;
        if (HasInfinityOrNaN(w, n) || HasInfinityOrNaN(w1, n) || HasInfinityOrNaN(w2, n) || HasInfinityOrNaN(w3, n))
        {
            for (int r = 0; r < 4; r++) y[r] = F16(new ReadOnlySpan<Half>(w + r * rowStride, n), new ReadOnlySpan<float>(x, n));
            return;
        }
        byte* next = (byte*)(w + 4 * rowStride);
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
        for (int i = 0; i < n; i += 16)
        {
            // 4 rows × 32 bytes per step: two lines of the next four rows.
            System.Runtime.Intrinsics.X86.Sse.Prefetch0(next + 8 * i);
            System.Runtime.Intrinsics.X86.Sse.Prefetch0(next + 8 * i + 64);
            Vector512<float> xi = Vector512.Load(x + i);
            a0 = Vector512.FusedMultiplyAdd(FiniteHalfToSingle(Vector256.Load((short*)w + i)), xi, a0);
            a1 = Vector512.FusedMultiplyAdd(FiniteHalfToSingle(Vector256.Load((short*)w1 + i)), xi, a1);
            a2 = Vector512.FusedMultiplyAdd(FiniteHalfToSingle(Vector256.Load((short*)w2 + i)), xi, a2);
            a3 = Vector512.FusedMultiplyAdd(FiniteHalfToSingle(Vector256.Load((short*)w3 + i)), xi, a3);
        }
        y[0] = Vector512.Sum(a0); y[1] = Vector512.Sum(a1); y[2] = Vector512.Sum(a2); y[3] = Vector512.Sum(a3);
    }

    /// <summary>
    /// <see cref="F16FourRows"/> with AVX2 (CPUs without AVX-512, or where .NET prefers 256-bit
    /// vectors): 8 values per step, each one sign-extending load. n a multiple of 32.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static unsafe void F16FourRowsNarrow(ushort* w, long rowStride, float* x, int n, float* y)
    {
        ushort* w1 = w + rowStride, w2 = w1 + rowStride, w3 = w2 + rowStride;
        if (HasInfinityOrNaNNarrow(w, n) || HasInfinityOrNaNNarrow(w1, n) || HasInfinityOrNaNNarrow(w2, n) || HasInfinityOrNaNNarrow(w3, n))
        {
            for (int r = 0; r < 4; r++) y[r] = F16(new ReadOnlySpan<Half>(w + r * rowStride, n), new ReadOnlySpan<float>(x, n));
            return;
        }
        byte* next = (byte*)(w + 4 * rowStride);
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        for (int i = 0; i < n; i += 8)
        {
            System.Runtime.Intrinsics.X86.Sse.Prefetch0(next + 8 * i); // 4 rows × 16 bytes per step: one line of the next four rows
            Vector256<float> xi = Vector256.Load(x + i);
            a0 = Vector256.FusedMultiplyAdd(FiniteHalfToSingle(System.Runtime.Intrinsics.X86.Avx2.ConvertToVector256Int32((short*)w + i)), xi, a0);
            a1 = Vector256.FusedMultiplyAdd(FiniteHalfToSingle(System.Runtime.Intrinsics.X86.Avx2.ConvertToVector256Int32((short*)w1 + i)), xi, a1);
            a2 = Vector256.FusedMultiplyAdd(FiniteHalfToSingle(System.Runtime.Intrinsics.X86.Avx2.ConvertToVector256Int32((short*)w2 + i)), xi, a2);
            a3 = Vector256.FusedMultiplyAdd(FiniteHalfToSingle(System.Runtime.Intrinsics.X86.Avx2.ConvertToVector256Int32((short*)w3 + i)), xi, a3);
        }
        y[0] = Vector256.Sum(a0); y[1] = Vector256.Sum(a1); y[2] = Vector256.Sum(a2); y[3] = Vector256.Sum(a3);
    }

    /// <summary>Whether any of n float16 values has the all-ones exponent, 16 at a time.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe bool HasInfinityOrNaNNarrow(ushort* h, int n)
    {
        var exponent = Vector256.Create((ushort)0x7C00);
        Vector256<ushort> any = Vector256<ushort>.Zero;
        for (int i = 0; i < n; i += 16) any |= Vector256.Equals(Vector256.Load(h + i) & exponent, exponent);
        return any != Vector256<ushort>.Zero;
    }

    /// <summary>Whether any of n float16 values has the all-ones exponent (infinity or NaN); 32 at a time.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe bool HasInfinityOrNaN(ushort* h, int n)
    {
        var exponent = Vector512.Create((ushort)0x7C00);
        Vector512<ushort> any = Vector512<ushort>.Zero;
        for (int i = 0; i < n; i += 32) any |= Vector512.Equals(Vector512.Load(h + i) & exponent, exponent);
        return any != Vector512<ushort>.Zero;
    }

    /// <summary>
    /// float16 → float32 for finite values: sign-extended to 32 bits, the sign is already bit 31;
    /// exponent and mantissa move into place and one multiply by 2^112 rebiases them (subnormals
    /// included, exactly).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<float> FiniteHalfToSingle(Vector256<short> h)
    {
        Vector512<int> wide = Vector512.WidenLower(Vector512.Create(h, default)); // sign-extends
        Vector512<int> magnitude = Vector512.ShiftLeft(wide, 13) & Vector512.Create(0x0FFFE000);
        Vector512<float> value = magnitude.AsSingle() * Vector512.Create(0x77800000).AsSingle();
        return (value.AsInt32() | (wide & Vector512.Create(int.MinValue))).AsSingle();
    }

    /// <summary><see cref="FiniteHalfToSingle(Vector256{short})"/> for 8 values already sign-extended to 32 bits.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<float> FiniteHalfToSingle(Vector256<int> wide)
    {
        Vector256<int> magnitude = Vector256.ShiftLeft(wide, 13) & Vector256.Create(0x0FFFE000);
        Vector256<float> value = magnitude.AsSingle() * Vector256.Create(0x77800000).AsSingle();
        return (value.AsInt32() | (wide & Vector256.Create(int.MinValue))).AsSingle();
    }

    // IEEE half → single: move exponent and mantissa into place and rescale by 2^112 (bits
    // 0x77800000) with one multiply, which also handles subnormals exactly; infinities and NaNs get
    // the full exponent.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<float> HalfToSingle(Vector512<uint> h)
    {
        Vector512<uint> magnitude = Vector512.ShiftLeft(h & Vector512.Create(0x7FFFu), 13);
        Vector512<uint> value = (magnitude.AsSingle() * Vector512.Create(0x77800000u).AsSingle()).AsUInt32();
        Vector512<uint> special = Vector512.Equals(h & Vector512.Create(0x7C00u), Vector512.Create(0x7C00u));
        value = Vector512.ConditionalSelect(special, magnitude | Vector512.Create(0x7F800000u), value);
        return (value | Vector512.ShiftLeft(h & Vector512.Create(0x8000u), 16)).AsSingle();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<float> HalfToSingle(Vector256<uint> h)
    {
        Vector256<uint> magnitude = Vector256.ShiftLeft(h & Vector256.Create(0x7FFFu), 13);
        Vector256<uint> value = (magnitude.AsSingle() * Vector256.Create(0x77800000u).AsSingle()).AsUInt32();
        Vector256<uint> special = Vector256.Equals(h & Vector256.Create(0x7C00u), Vector256.Create(0x7C00u));
        value = Vector256.ConditionalSelect(special, magnitude | Vector256.Create(0x7F800000u), value);
        return (value | Vector256.ShiftLeft(h & Vector256.Create(0x8000u), 16)).AsSingle();
    }

    /// <summary>The previous two-pass form (convert a block on the stack, then dot), kept as a second reference.</summary>
    internal static float F16TwoPass(ReadOnlySpan<Half> row, ReadOnlySpan<float> x)
    {
        const int Block = 256;
        Span<float> buffer = stackalloc float[Block];
        float sum = 0;
        for (int i = 0; i < row.Length; i += Block)
        {
            int n = Math.Min(Block, row.Length - i);
            TensorPrimitives.ConvertToSingle(row.Slice(i, n), buffer[..n]);
            sum += TensorPrimitives.Dot(buffer[..n], x.Slice(i, n));
        }
        return sum;
    }

    /// <summary>bfloat16 row: each value is the high half of a float32, widened in registers.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float BF16(ReadOnlySpan<ushort> row, ReadOnlySpan<float> x)
    {
        if (row.Length != x.Length) throw new ArgumentException("row and vector lengths differ");
        int i = 0;
        float sum = 0;
        if (Vector256.IsHardwareAccelerated && row.Length >= 16)
        {
            var acc = Vector256<float>.Zero;
            ref ushort r = ref MemoryMarshal.GetReference(row);
            ref float v = ref MemoryMarshal.GetReference(x);
            for (; i + 16 <= row.Length; i += 16)
            {
                Vector256<ushort> raw = Vector256.LoadUnsafe(ref r, (nuint)i);
                (Vector256<uint> lo, Vector256<uint> hi) = Vector256.Widen(raw);
                acc += Vector256.ShiftLeft(lo, 16).AsSingle() * Vector256.LoadUnsafe(ref v, (nuint)i);
                acc += Vector256.ShiftLeft(hi, 16).AsSingle() * Vector256.LoadUnsafe(ref v, (nuint)(i + 8));
            }
            sum = Vector256.Sum(acc);
        }
        for (; i < row.Length; i++) sum += BF16ToSingle(row[i]) * x[i];
        return sum;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float BF16ToSingle(ushort bits) => BitConverter.UInt32BitsToSingle((uint)bits << 16);
}
