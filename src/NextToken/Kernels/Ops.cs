using System.Numerics.Tensors;

namespace NextToken.Kernels;

/// <summary>Element-wise and normalization kernels (span-based, destination last).</summary>
public static class Ops
{
    /// <summary>LayerNorm over one row: (x − mean) / sqrt(var + eps) · weight + bias.</summary>
    public static void LayerNorm(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, ReadOnlySpan<float> bias, float eps, Span<float> destination)
    {
        int n = x.Length;
        float mean = TensorPrimitives.Sum(x) / n;
        TensorPrimitives.Subtract(x, mean, destination);
        float variance = TensorPrimitives.SumOfSquares(destination[..n]) / n;
        float scale = 1f / MathF.Sqrt(variance + eps);
        TensorPrimitives.Multiply(destination[..n], scale, destination);
        TensorPrimitives.FusedMultiplyAdd(destination[..n], weight, bias, destination);
    }

    /// <summary>GPT-2's GELU, the tanh approximation: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).</summary>
    public static void GeluTanh(ReadOnlySpan<float> x, Span<float> destination)
    {
        const float SqrtTwoOverPi = 0.7978845608028654f;
        for (int i = 0; i < x.Length; i++)
        {
            float v = x[i];
            destination[i] = 0.5f * v * (1f + MathF.Tanh(SqrtTwoOverPi * (v + 0.044715f * v * v * v)));
        }
    }

    /// <summary>log Σ exp(x), computed stably.</summary>
    public static float LogSumExp(ReadOnlySpan<float> x)
    {
        float max = TensorPrimitives.Max(x);
        double sum = 0;
        foreach (float v in x) sum += Math.Exp(v - max);
        return (float)(max + Math.Log(sum));
    }
}

/// <summary>Plain scalar references the vectorized kernels are tested against.</summary>
public static class ScalarReference
{
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

    public static void Softmax(ReadOnlySpan<float> x, Span<float> destination)
    {
        double max = double.NegativeInfinity;
        foreach (float v in x) max = Math.Max(max, v);
        double sum = 0;
        foreach (float v in x) sum += Math.Exp(v - max);
        for (int i = 0; i < x.Length; i++) destination[i] = (float)(Math.Exp(x[i] - max) / sum);
    }

    public static float Dot(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        double sum = 0;
        for (int i = 0; i < a.Length; i++) sum += (double)a[i] * b[i];
        return (float)sum;
    }
}
