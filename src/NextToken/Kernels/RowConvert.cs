using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using NextToken.Tensors;

namespace NextToken.Kernels;

/// <summary>Turns stored rows into float32 (for embedding lookups and small vectors).</summary>
public static class RowConvert
{
    public static bool IsSupported(GgmlType type) =>
        type is GgmlType.F32 or GgmlType.F16 or GgmlType.BF16 || Quantized.IsSupported(type);

    public static void ToSingle(GgmlType type, ReadOnlySpan<byte> source, Span<float> destination)
    {
        switch (type)
        {
            case GgmlType.F32:
                MemoryMarshal.Cast<byte, float>(source).CopyTo(destination);
                break;
            case GgmlType.F16:
                HalfRow(MemoryMarshal.Cast<byte, ushort>(source), destination);
                break;
            case GgmlType.BF16:
                BFloat16Row(MemoryMarshal.Cast<byte, ushort>(source), destination);
                break;
            case GgmlType.Q4_K when Vector512.IsHardwareAccelerated && Avx512F.IsSupported && destination.Length % Quantized.QK_K == 0:
                Q4KRow(source, destination);
                break;
            case GgmlType.Q4_K when Vector256.IsHardwareAccelerated && Avx2.IsSupported && destination.Length % Quantized.QK_K == 0:
                Q4KRowNarrow(source, destination);
                break;
            default:
                Quantized.DequantizeRow(type, source, destination);
                break;
        }
    }

    /// <summary>
    /// float16 bits → float32, 16 at a time in registers (the prompt path expands every weight row once
    /// per matmul): the fast conversion of <see cref="HalfRows.ToSingle"/>, or the general one below for
    /// a row holding an infinity or a NaN and for the last values.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void HalfRow(ReadOnlySpan<ushort> bits, Span<float> destination)
    {
        if (destination.Length < bits.Length) throw new ArgumentException($"{bits.Length} float16 values into {destination.Length} floats");
        int i;
        fixed (ushort* h = bits)
        fixed (float* d = destination)
            i = HalfRows.ToSingle(h, d, bits.Length);
        ref ushort source = ref MemoryMarshal.GetReference(bits);
        ref float target = ref MemoryMarshal.GetReference(destination);
        if (Vector512.IsHardwareAccelerated)
            for (; i + 16 <= bits.Length; i += 16)
                Dot.HalfToSingle(Vector512.WidenLower(Vector512.Create(Vector256.LoadUnsafe(ref source, (nuint)i), default))).StoreUnsafe(ref target, (nuint)i);
        else if (Vector256.IsHardwareAccelerated)
            for (; i + 8 <= bits.Length; i += 8)
                Dot.HalfToSingle(Vector256.WidenLower(Vector256.Create(Vector128.LoadUnsafe(ref source, (nuint)i), default))).StoreUnsafe(ref target, (nuint)i);
        for (; i < bits.Length; i++) destination[i] = (float)BitConverter.UInt16BitsToHalf(bits[i]);
    }

    /// <summary>
    /// Q4_K super-blocks → float32 with AVX-512 (the prompt path expands every weight row once per matmul; the general
    /// chunk kernel took ~0.12 ns a value, ~10% of a 1.1B prompt). Each sub-block's 16 possible values
    /// (d·scale)·n − dmin·min are computed once, rounded as the reference rounds them (a product, then a sum), and the
    /// nibbles look them up: <c>vpermps</c> reads only an index's low four bits, so a low nibble needs no mask and a
    /// high one a shift — per 64 values 2 widening loads, 2 shifts, 4 permutes, 4 stores.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static unsafe void Q4KRow(ReadOnlySpan<byte> source, Span<float> destination)
    {
        int blocks = Q4KBlocks(source, destination);
        float* s = stackalloc float[16];
        float* halves = HalfTable.Pointer;
        Vector512<float> levels = Vector512.Create(0f, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        fixed (byte* w = source)
        fixed (float* y = destination)
            for (int b = 0; b < blocks; b++)
            {
                byte* block = w + b * Q4KBlockBytes, q = block + 16;
                float* yb = y + b * Quantized.QK_K;
                ChunkedQuant.ScalesK4(block, halves, s, s + 8);
                // Group g holds sub-block 2g in its 32 bytes' low nibbles and 2g + 1 in their high nibbles.
                for (int g = 0; g < 4; g++, q += 32, yb += 64)
                {
                    Vector512<float> low = levels * Vector512.Create(s[2 * g]) + Vector512.Create(s[8 + 2 * g]);
                    Vector512<float> high = levels * Vector512.Create(s[2 * g + 1]) + Vector512.Create(s[9 + 2 * g]);
                    Vector512<int> a = Avx512F.ConvertToVector512Int32(Vector128.Load(q)), c = Avx512F.ConvertToVector512Int32(Vector128.Load(q + 16));
                    Avx512F.PermuteVar16x32(low, a).Store(yb);
                    Avx512F.PermuteVar16x32(low, c).Store(yb + 16);
                    Avx512F.PermuteVar16x32(high, Vector512.ShiftRightLogical(a, 4)).Store(yb + 32);
                    Avx512F.PermuteVar16x32(high, Vector512.ShiftRightLogical(c, 4)).Store(yb + 48);
                }
            }
    }

    private const int Q4KBlockBytes = 144;

    /// <summary>Super-blocks in a Q4_K row of <paramref name="destination"/>'s length, once the source is known to hold them.</summary>
    private static int Q4KBlocks(ReadOnlySpan<byte> source, Span<float> destination)
    {
        int blocks = destination.Length / Quantized.QK_K;
        if (source.Length < blocks * Q4KBlockBytes) throw new ArgumentException($"a Q4_K row of {destination.Length} values needs {blocks * Q4KBlockBytes} bytes, not {source.Length}");
        return blocks;
    }

    /// <summary>
    /// As <see cref="Q4KRow"/> with AVX2 (whose 256-bit <c>vpermps</c> reads three index bits, too few for a nibble):
    /// 8 bytes widened once give 8 values of each of the group's two sub-blocks (mask and shift), each converted and
    /// scaled by a product and a sum as the reference rounds — 11 operations per 16 values, where the general chunk
    /// kernel widened every byte twice (~0.3 ns a value, 13% of an AVX2 1.1B prompt).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static unsafe void Q4KRowNarrow(ReadOnlySpan<byte> source, Span<float> destination)
    {
        int blocks = Q4KBlocks(source, destination);
        float* s = stackalloc float[16];
        float* halves = HalfTable.Pointer;
        Vector256<int> mask = Vector256.Create(15);
        fixed (byte* w = source)
        fixed (float* y = destination)
            for (int b = 0; b < blocks; b++)
            {
                byte* block = w + b * Q4KBlockBytes, q = block + 16;
                float* yb = y + b * Quantized.QK_K;
                ChunkedQuant.ScalesK4(block, halves, s, s + 8);
                for (int g = 0; g < 4; g++, q += 32, yb += 64)
                {
                    Vector256<float> lowScale = Vector256.Create(s[2 * g]), lowOffset = Vector256.Create(s[8 + 2 * g]);
                    Vector256<float> highScale = Vector256.Create(s[2 * g + 1]), highOffset = Vector256.Create(s[9 + 2 * g]);
                    for (int p = 0; p < 4; p++)
                    {
                        Vector256<int> z = Avx2.ConvertToVector256Int32(q + 8 * p);
                        (Vector256.ConvertToSingle(z & mask) * lowScale + lowOffset).Store(yb + 8 * p);
                        (Vector256.ConvertToSingle(Vector256.ShiftRightLogical(z, 4)) * highScale + highOffset).Store(yb + 32 + 8 * p);
                    }
                }
            }
    }

    /// <summary>bfloat16 bits → float32: the stored 16 bits become the high half.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void BFloat16Row(ReadOnlySpan<ushort> bits, Span<float> destination)
    {
        int i = 0;
        ref ushort source = ref MemoryMarshal.GetReference(bits);
        ref float target = ref MemoryMarshal.GetReference(destination);
        if (Vector512.IsHardwareAccelerated)
            for (; i + 16 <= bits.Length; i += 16)
                Vector512.ShiftLeft(Vector512.WidenLower(Vector512.Create(Vector256.LoadUnsafe(ref source, (nuint)i), default)), 16).AsSingle().StoreUnsafe(ref target, (nuint)i);
        else if (Vector256.IsHardwareAccelerated) // without AVX-512 the prompt path would otherwise convert value by value
            for (; i + 8 <= bits.Length; i += 8)
                Vector256.ShiftLeft(Vector256.WidenLower(Vector256.Create(Vector128.LoadUnsafe(ref source, (nuint)i), default)), 16).AsSingle().StoreUnsafe(ref target, (nuint)i);
        for (; i < bits.Length; i++) destination[i] = Dot.BF16ToSingle(bits[i]);
    }

    /// <summary>Row <paramref name="row"/> of a tensor as float32.</summary>
    public static void Row(in TensorData tensor, int row, Span<float> destination) =>
        ToSingle(tensor.Type, tensor.Row(row), destination[..tensor.RowLength]);

    /// <summary>A whole (small) tensor copied into a new float32 array.</summary>
    public static float[] ToArray(in TensorData tensor)
    {
        var result = new float[tensor.ElementCount];
        for (int r = 0; r < tensor.RowCount; r++)
            Row(tensor, r, result.AsSpan(r * tensor.RowLength, tensor.RowLength));
        return result;
    }
}
