using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace NextToken.Kernels;

/// <summary>Dot products of one stored weight row with a float32 vector, per storage type.</summary>
public static class Dot
{
    public static float F32(ReadOnlySpan<float> row, ReadOnlySpan<float> x) => TensorPrimitives.Dot(row, x);

    /// <summary>Half-precision row: converted a block at a time on the stack, never as a whole matrix.</summary>
    public static float F16(ReadOnlySpan<Half> row, ReadOnlySpan<float> x)
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
