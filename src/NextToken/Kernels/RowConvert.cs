using System.Numerics.Tensors;
using System.Runtime.InteropServices;
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
                TensorPrimitives.ConvertToSingle(MemoryMarshal.Cast<byte, Half>(source), destination);
                break;
            case GgmlType.BF16:
                ReadOnlySpan<ushort> bits = MemoryMarshal.Cast<byte, ushort>(source);
                for (int i = 0; i < bits.Length; i++) destination[i] = Dot.BF16ToSingle(bits[i]);
                break;
            default:
                Quantized.DequantizeRow(type, source, destination);
                break;
        }
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
