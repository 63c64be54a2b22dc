using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
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
