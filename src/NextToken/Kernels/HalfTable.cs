using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace NextToken.Kernels;

/// <summary>
/// float16 → float32 for block scales by table lookup (256 KB, built on first use), as ggml's
/// <c>ggml_table_f32_f16</c>: .NET has no F16C intrinsic, and the software conversion of
/// <see cref="Half"/> costs more than the integer dot product of the block it scales.
/// </summary>
public static class HalfTable
{
    private static readonly float[] Values = Build();

    private static float[] Build()
    {
        var values = new float[65536];
        for (int bits = 0; bits < values.Length; bits++) values[bits] = (float)BitConverter.UInt16BitsToHalf((ushort)bits);
        return values;
    }

    /// <summary>The float16 stored (little-endian) at <paramref name="source"/>, as float32. Exact for every bit pattern.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float ToSingle(ref byte source) =>
        Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(Values), Unsafe.ReadUnaligned<ushort>(ref source));
}
