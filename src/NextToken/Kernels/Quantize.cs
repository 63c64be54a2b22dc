using System.Buffers.Binary;

namespace NextToken.Kernels;

/// <summary>float32 → ggml blocks, as ggml's reference quantizers do it (used to write synthetic models).</summary>
public static class Quantize
{
    public static byte[] Blocks(Tensors.GgmlType type, ReadOnlySpan<float> values)
    {
        if (values.Length % 32 != 0) throw new ArgumentException("quantization needs whole blocks of 32");
        int blocks = values.Length / 32;
        switch (type)
        {
            case Tensors.GgmlType.Q8_0:
            {
                var output = new byte[blocks * 34];
                for (int b = 0; b < blocks; b++)
                {
                    ReadOnlySpan<float> x = values.Slice(b * 32, 32);
                    float amax = 0;
                    foreach (float v in x) amax = Math.Max(amax, Math.Abs(v));
                    float d = amax / 127, id = d != 0 ? 1 / d : 0;
                    Span<byte> block = output.AsSpan(b * 34, 34);
                    BinaryPrimitives.WriteHalfLittleEndian(block, (Half)d);
                    for (int i = 0; i < 32; i++) block[2 + i] = (byte)(sbyte)MathF.Round(x[i] * id);
                }
                return output;
            }
            case Tensors.GgmlType.Q4_0:
            {
                var output = new byte[blocks * 18];
                for (int b = 0; b < blocks; b++)
                {
                    ReadOnlySpan<float> x = values.Slice(b * 32, 32);
                    float max = 0;
                    foreach (float v in x) if (Math.Abs(v) > Math.Abs(max)) max = v;
                    float d = max / -8, id = d != 0 ? 1 / d : 0;
                    Span<byte> block = output.AsSpan(b * 18, 18);
                    BinaryPrimitives.WriteHalfLittleEndian(block, (Half)d);
                    for (int j = 0; j < 16; j++)
                    {
                        int lo = Math.Min(15, (int)(x[j] * id + 8.5f)), hi = Math.Min(15, (int)(x[j + 16] * id + 8.5f));
                        block[2 + j] = (byte)(lo | (hi << 4));
                    }
                }
                return output;
            }
            default:
                throw new NotSupportedException($"no quantizer for {type}");
        }
    }
}
