using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using NextToken.Tensors;

namespace NextToken.Kernels;

/// <summary>
/// ggml's fast path for quantized weights: the activation row is itself quantized to 8-bit blocks
/// of 32 (one scale each) once per matmul, and each weight block meets it in an integer dot
/// product (unsigned×signed byte multiply-add, as <c>vpmaddubsw</c>). This is an approximation of
/// the exact product — the activation loses about 1/254 of each block's range — so it is opt-in.
/// </summary>
public static unsafe class QuantizedActivations
{
    public static bool IsSupported(GgmlType type) => Avx2.IsSupported && type is GgmlType.Q8_0 or GgmlType.Q4_0;

    /// <summary>x → 8-bit blocks: <paramref name="quants"/> [n] and <paramref name="scales"/> [n / 32].</summary>
    public static void Quantize(ReadOnlySpan<float> x, Span<sbyte> quants, Span<float> scales)
    {
        for (int b = 0; b < x.Length / 32; b++)
        {
            ReadOnlySpan<float> block = x.Slice(b * 32, 32);
            float amax = System.Numerics.Tensors.TensorPrimitives.MaxMagnitude(block);
            float d = Math.Abs(amax) / 127, id = d != 0 ? 1 / d : 0;
            scales[b] = d;
            for (int i = 0; i < 32; i++) quants[b * 32 + i] = (sbyte)MathF.Round(block[i] * id);
        }
    }

    /// <summary>Σ over blocks of d_w·d_x·(q_w · q_x) for one stored row against a quantized activation.</summary>
    public static float Dot(GgmlType type, ReadOnlySpan<byte> row, ReadOnlySpan<sbyte> quants, ReadOnlySpan<float> scales)
    {
        ref byte r = ref MemoryMarshal.GetReference(row);
        ref sbyte q = ref MemoryMarshal.GetReference(quants);
        Vector256<float> total = Vector256<float>.Zero;
        var ones = Vector256.Create((short)1);
        var low = Vector128.Create((byte)0x0F);
        var eight = Vector256.Create((sbyte)8);
        int blockBytes = type == GgmlType.Q8_0 ? 34 : 18;
        for (int b = 0; b < scales.Length; b++)
        {
            ref byte block = ref Unsafe.Add(ref r, b * blockBytes);
            float d = (float)Unsafe.ReadUnaligned<Half>(ref block) * scales[b];
            Vector256<sbyte> w;
            if (type == GgmlType.Q8_0)
            {
                w = Vector256.LoadUnsafe(ref Unsafe.As<byte, sbyte>(ref Unsafe.Add(ref block, 2)));
            }
            else
            {
                Vector128<byte> packed = Vector128.LoadUnsafe(ref Unsafe.Add(ref block, 2));
                w = Vector256.Create(packed & low, Vector128.ShiftRightLogical(packed, 4)).AsSByte() - eight;
            }
            Vector256<sbyte> x = Vector256.LoadUnsafe(ref q, (nuint)(b * 32));
            // |w| as unsigned times x carrying w's sign: the product of signs stays right.
            Vector256<short> pairs = Avx2.MultiplyAddAdjacent(Avx2.Abs(w), Avx2.Sign(x, w));
            Vector256<int> sums = Avx2.MultiplyAddAdjacent(pairs, ones);
            total = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(sums), Vector256.Create(d), total);
        }
        return Vector256.Sum(total);
    }
}
