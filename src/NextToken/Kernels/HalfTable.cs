using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace NextToken.Kernels;

/// <summary>
/// float16 → float32 for block scales by table lookup (256 KB, built on first use), as ggml's
/// <c>ggml_table_f32_f16</c>: .NET has no F16C intrinsic, and the software conversion of
/// <see cref="Half"/> costs more than the integer dot product of the block it scales. Kernels read
/// <see cref="Pointer"/> once into a local, so their loops carry no static-field access.
/// </summary>
public static unsafe class HalfTable
{
    private static readonly float[] Values = Build();

    /// <summary>The 65,536 conversions, indexed by bit pattern; the array is pinned for the life of the process.</summary>
    public static float* Pointer { get; } = (float*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(Values));

    private static float[] Build()
    {
        float[] values = GC.AllocateArray<float>(65536, pinned: true);
        for (int bits = 0; bits < values.Length; bits++) values[bits] = (float)BitConverter.UInt16BitsToHalf((ushort)bits);
        return values;
    }

    /// <summary>The float16 stored (little-endian) at <paramref name="source"/>, as float32. Exact for every bit pattern.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float ToSingle(float* table, ref byte source) => table[Unsafe.ReadUnaligned<ushort>(ref source)];
}
