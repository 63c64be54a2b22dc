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
