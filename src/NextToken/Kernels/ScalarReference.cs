using System.Buffers.Binary;
using NextToken.Tensors;

namespace NextToken.Kernels;

/// <summary>Plain scalar references the vectorized kernels are tested against.</summary>
public static class ScalarReference
{
    /// <summary>
    /// Rows of 16-bit floats (float16, or bfloat16 when <paramref name="brain"/>) times x, each value
    /// converted on its own and the products summed in float64: the reference of the decode kernels in
    /// <see cref="HalfRows"/>. Rows are <paramref name="n"/> values, <paramref name="rowStride"/> apart.
    /// </summary>
    public static void HalfRowDots(ReadOnlySpan<ushort> rows, int rowStride, int rowCount, ReadOnlySpan<float> x, int n, Span<float> destination, bool brain = false)
    {
        for (int r = 0; r < rowCount; r++)
        {
            double sum = 0;
            for (int i = 0; i < n; i++)
            {
                ushort bits = rows[r * rowStride + i];
                double value = brain ? BitConverter.UInt32BitsToSingle((uint)bits << 16) : (double)BitConverter.UInt16BitsToHalf(bits);
                sum += value * x[i];
            }
            destination[r] = (float)sum;
        }
    }

    public static void LayerNorm(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, ReadOnlySpan<float> bias, float eps, Span<float> destination)
    {
        double mean = 0;
        foreach (float v in x) mean += v;
        mean /= x.Length;
        double variance = 0;
        foreach (float v in x) variance += (v - mean) * (v - mean);
        variance /= x.Length;
        double scale = 1 / Math.Sqrt(variance + eps);
        for (int i = 0; i < x.Length; i++) destination[i] = (float)((x[i] - mean) * scale * weight[i] + bias[i]);
    }

    public static void GeluTanh(ReadOnlySpan<float> x, Span<float> destination)
    {
        for (int i = 0; i < x.Length; i++)
        {
            double v = x[i];
            destination[i] = (float)(0.5 * v * (1 + Math.Tanh(Math.Sqrt(2 / Math.PI) * (v + 0.044715 * v * v * v))));
        }
    }

    /// <summary>
    /// Causal attention of queries at positions p0…p0+n−1, one (position, head) at a time in float64:
    /// queries [n, nHead·headDim], caches [nCtx, nKvHead·headDim], output [n, nHead·headDim].
    /// </summary>
    public static void Attention(ReadOnlySpan<float> queries, ReadOnlySpan<float> keyCache, ReadOnlySpan<float> valueCache,
                                 int nHead, int nKvHead, int headDim, int p0, int n, Span<float> output,
                                 double scale = 0, double softcap = 0, int window = 0)
    {
        if (scale == 0) scale = 1 / Math.Sqrt(headDim);
        int kvDim = nKvHead * headDim;
        for (int t = 0; t < n; t++)
            for (int h = 0; h < nHead; h++)
            {
                int keys = p0 + t + 1, kvHead = h / (nHead / nKvHead);
                var p = new double[keys];
                for (int j = 0; j < keys; j++)
                {
                    double dot = 0;
                    for (int i = 0; i < headDim; i++) dot += (double)queries[(t * nHead + h) * headDim + i] * keyCache[j * kvDim + kvHead * headDim + i];
                    p[j] = dot * scale;
                    if (softcap > 0) p[j] = softcap * Math.Tanh(p[j] / softcap);
                    // Outside the window (key older than `window` positions): masked, probability 0.
                    if (window > 0 && p0 + t - j >= window) p[j] = double.NegativeInfinity;
                }
                double max = p.Max(), sum = 0;
                for (int j = 0; j < keys; j++) sum += p[j] = Math.Exp(p[j] - max);
                for (int i = 0; i < headDim; i++)
                {
                    double value = 0;
                    for (int j = 0; j < keys; j++) value += p[j] / sum * valueCache[j * kvDim + kvHead * headDim + i];
                    output[(t * nHead + h) * headDim + i] = (float)value;
                }
            }
    }

    public static void Softmax(ReadOnlySpan<float> x, Span<float> destination)
    {
        double max = double.NegativeInfinity;
        foreach (float v in x) max = Math.Max(max, v);
        double sum = 0;
        foreach (float v in x) sum += Math.Exp(v - max);
        for (int i = 0; i < x.Length; i++) destination[i] = (float)(Math.Exp(x[i] - max) / sum);
    }

    public static void RmsNorm(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, float eps, Span<float> destination)
    {
        double sumOfSquares = 0;
        foreach (float v in x) sumOfSquares += (double)v * v;
        double scale = 1 / Math.Sqrt(sumOfSquares / x.Length + eps);
        for (int i = 0; i < x.Length; i++) destination[i] = (float)(x[i] * scale * weight[i]);
    }

    public static void Softcap(ReadOnlySpan<float> x, double cap, Span<float> destination)
    {
        for (int i = 0; i < x.Length; i++) destination[i] = (float)(cap * Math.Tanh(x[i] / cap));
    }

    public static void GeGluTanh(ReadOnlySpan<float> gate, ReadOnlySpan<float> up, Span<float> destination)
    {
        for (int i = 0; i < gate.Length; i++)
        {
            double g = gate[i];
            destination[i] = (float)(0.5 * g * (1 + Math.Tanh(Math.Sqrt(2 / Math.PI) * (g + 0.044715 * g * g * g))) * up[i]);
        }
    }

    public static void SwiGlu(ReadOnlySpan<float> gate, ReadOnlySpan<float> up, Span<float> destination)
    {
        for (int i = 0; i < gate.Length; i++) destination[i] = (float)(gate[i] / (1 + Math.Exp(-gate[i])) * up[i]);
    }

    /// <summary>Rotary embedding from the angle formula: pair i turns by position·base^(−2i/dims).</summary>
    public static void RopeAdjacentPairs(Span<float> x, int position, double freqBase, int ropeDims)
    {
        for (int i = 0; i < ropeDims / 2; i++)
        {
            double angle = position * Math.Pow(freqBase, -2.0 * i / ropeDims);
            double x0 = x[2 * i], x1 = x[2 * i + 1];
            x[2 * i] = (float)(x0 * Math.Cos(angle) - x1 * Math.Sin(angle));
            x[2 * i + 1] = (float)(x0 * Math.Sin(angle) + x1 * Math.Cos(angle));
        }
    }


    /// <summary>
    /// One value of a quantized block, computed on its own from ggml's format description (not
    /// a transcription of the block loops), as the reference the block kernels are tested against.
    /// </summary>
    public static float DequantizeElement(GgmlType type, ReadOnlySpan<byte> block, int i)
    {
        static float F16(ReadOnlySpan<byte> bytes) => (float)BinaryPrimitives.ReadHalfLittleEndian(bytes);
        switch (type)
        {
            case GgmlType.Q8_0:
                return F16(block) * (sbyte)block[2 + i];
            case GgmlType.Q4_0:
            {
                byte packed = block[2 + i % 16];
                int nibble = i < 16 ? packed & 0x0F : packed >> 4;
                return F16(block) * (nibble - 8);
            }
            case GgmlType.Q4_K:
            {
                int sub = i / 32;                       // 8 sub-blocks of 32
                int group = sub / 2, within = i % 32;   // each 32-byte group holds two sub-blocks
                byte packed = block[16 + group * 32 + within];
                int nibble = sub % 2 == 0 ? packed & 0x0F : packed >> 4;
                Quantized.ScaleMinK4(sub, block.Slice(4, 12), out int scale, out int min);
                return F16(block) * scale * nibble - F16(block[2..]) * min;
            }
            case GgmlType.Q6_K:
            {
                int half = i / 128, r = i % 128;        // two halves of 128 values
                int quarter = r / 32, l = r % 32;       // four runs of 32 within a half
                int lowByte = half * 64 + l + (quarter % 2 == 1 ? 32 : 0);
                int low = quarter < 2 ? block[lowByte] & 0x0F : block[lowByte] >> 4;
                int high = (block[128 + half * 32 + l] >> (2 * quarter)) & 3;
                int scaleIndex = half * 8 + l / 16 + 2 * quarter;
                float d = F16(block[208..]);
                return d * (sbyte)block[192 + scaleIndex] * ((low | (high << 4)) - 32);
            }
            case GgmlType.Q4_1:
            {
                byte packed = block[4 + i % 16];
                int nibble = i < 16 ? packed & 0x0F : packed >> 4;
                return F16(block) * nibble + F16(block[2..]);
            }
            case GgmlType.Q5_0:
            {
                // Bit i of the 32-bit word after d is value i's fifth bit.
                uint high = (BinaryPrimitives.ReadUInt32LittleEndian(block[2..]) >> i) & 1;
                byte packed = block[6 + i % 16];
                int nibble = i < 16 ? packed & 0x0F : packed >> 4;
                return F16(block) * ((nibble | (int)(high << 4)) - 16);
            }
            case GgmlType.Q5_1:
            {
                uint high = (BinaryPrimitives.ReadUInt32LittleEndian(block[4..]) >> i) & 1;
                byte packed = block[8 + i % 16];
                int nibble = i < 16 ? packed & 0x0F : packed >> 4;
                return F16(block) * (nibble | (int)(high << 4)) + F16(block[2..]);
            }
            case GgmlType.IQ4_NL:
            {
                byte packed = block[2 + i % 16];
                return F16(block) * Quantized.IQ4Values[i < 16 ? packed & 0x0F : packed >> 4];
            }
            case GgmlType.Q2_K:
            {
                // 16 scale bytes (low nibble scale, high nibble min), 64 bytes of 2-bit values, f16 d, f16 dmin.
                int half = i / 128, r = i % 128;          // two halves of 128 values, 32 bytes each
                int shift = 2 * (r / 32), l = r % 32;     // four 2-bit planes of 32 values per half
                int q = (block[16 + half * 32 + l] >> shift) & 3;
                byte scale = block[i / 16];               // one scale byte per 16 values, in order
                return F16(block[80..]) * (scale & 0x0F) * q - F16(block[82..]) * (scale >> 4);
            }
            case GgmlType.Q3_K:
            {
                // 32 bytes of high bits, 64 bytes of 2-bit values, 12 bytes of 16 6-bit scales, f16 d.
                int half = i / 128, r = i % 128;
                int plane = r / 32, l = r % 32;
                int low = (block[32 + half * 32 + l] >> (2 * plane)) & 3;
                int high = (block[l] >> (4 * half + plane)) & 1; // high bit clear: value − 4
                int s = i / 16;
                int scaleLow = s < 8 ? block[96 + s] & 0x0F : block[96 + s - 8] >> 4;
                int scaleHigh = (block[104 + s % 4] >> (2 * (s / 4))) & 3;
                return F16(block[108..]) * ((scaleLow | (scaleHigh << 4)) - 32) * (low - (high == 1 ? 0 : 4));
            }
            case GgmlType.Q5_K:
            {
                // f16 d, f16 dmin, 12 bytes of scales/mins as Q4_K, 32 bytes of fifth bits, 128 bytes of nibbles.
                int sub = i / 32, group = sub / 2, within = i % 32;
                byte packed = block[48 + group * 32 + within];
                int nibble = sub % 2 == 0 ? packed & 0x0F : packed >> 4;
                int high = (block[16 + within] >> sub) & 1;
                Quantized.ScaleMinK4(sub, block.Slice(4, 12), out int scale, out int min);
                return F16(block) * scale * (nibble + 16 * high) - F16(block[2..]) * min;
            }
            case GgmlType.IQ4_XS:
            {
                // f16 d, 16 bits of scale high pairs, 4 bytes of scale low nibbles, 128 bytes of nibbles (16 per 32 values).
                int sub = i / 32, within = i % 32;
                byte packed = block[8 + sub * 16 + within % 16];
                int nibble = within < 16 ? packed & 0x0F : packed >> 4;
                int scaleLow = (block[4 + sub / 2] >> (4 * (sub % 2))) & 0x0F;
                int scaleHigh = (BinaryPrimitives.ReadUInt16LittleEndian(block[2..]) >> (2 * sub)) & 3;
                return F16(block) * ((scaleLow | (scaleHigh << 4)) - 32) * Quantized.IQ4Values[nibble];
            }
            default:
                throw new NotSupportedException($"no scalar reference for {type}");
        }
    }
}

