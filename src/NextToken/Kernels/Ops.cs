using System.Runtime.CompilerServices;
using System.Numerics.Tensors;

namespace NextToken.Kernels;

/// <summary>Element-wise and normalization kernels (span-based, destination last).</summary>
public static class Ops
{
    /// <summary>LayerNorm over one row: (x − mean) / sqrt(var + eps) · weight + bias.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
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

    /// <summary>GPT-2's GELU, the tanh approximation: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))). May run in place.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void GeluTanh(ReadOnlySpan<float> x, Span<float> destination)
    {
        const float SqrtTwoOverPi = 0.7978845608028654f, Cubic = 0.044715f * SqrtTwoOverPi;
        const int Block = 256;
        Span<float> inner = stackalloc float[Block];
        for (int start = 0; start < x.Length; start += Block)
        {
            int n = Math.Min(Block, x.Length - start);
            ReadOnlySpan<float> xs = x.Slice(start, n);
            Span<float> t = inner[..n];
            TensorPrimitives.Multiply(xs, xs, t);                        // x²
            TensorPrimitives.Multiply(t, Cubic, t);
            TensorPrimitives.Add(t, SqrtTwoOverPi, t);                   // √(2/π)·(1 + 0.044715·x²)
            TensorPrimitives.Multiply(t, xs, t);                         // √(2/π)·(x + 0.044715·x³)
            TensorPrimitives.Tanh(t, t);
            TensorPrimitives.Add(t, 1f, t);
            TensorPrimitives.Multiply(t, xs, t);
            TensorPrimitives.Multiply(t, 0.5f, destination.Slice(start, n));
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

    /// <summary>RMSNorm over one row: x / sqrt(mean(x²) + eps) · weight.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void RmsNorm(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, float eps, Span<float> destination)
    {
        float scale = 1f / MathF.Sqrt(TensorPrimitives.SumOfSquares(x) / x.Length + eps);
        TensorPrimitives.Multiply(x, scale, destination);
        TensorPrimitives.Multiply(destination[..x.Length], weight, destination);
    }

    /// <summary>SwiGLU: silu(gate) · up, with silu(g) = g · sigmoid(g). May run in place on <paramref name="gate"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void SwiGlu(ReadOnlySpan<float> gate, ReadOnlySpan<float> up, Span<float> destination)
    {
        const int Block = 256;
        Span<float> sigmoid = stackalloc float[Block];
        for (int start = 0; start < gate.Length; start += Block)
        {
            int n = Math.Min(Block, gate.Length - start);
            Span<float> s = sigmoid[..n];
            TensorPrimitives.Sigmoid(gate.Slice(start, n), s);
            TensorPrimitives.Multiply(s, gate.Slice(start, n), s);
            TensorPrimitives.Multiply(s, up.Slice(start, n), destination.Slice(start, n));
        }
    }

    /// <summary>
    /// Rotary position embedding as GGUF Llama files expect it: adjacent pairs (x[2i], x[2i+1])
    /// rotate by angle position·θᵢ, with cos and sin of those angles given per pair.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void RopeAdjacentPairs(Span<float> x, ReadOnlySpan<float> cos, ReadOnlySpan<float> sin)
    {
        for (int i = 0; i < cos.Length; i++)
        {
            float x0 = x[2 * i], x1 = x[2 * i + 1];
            x[2 * i] = x0 * cos[i] - x1 * sin[i];
            x[2 * i + 1] = x0 * sin[i] + x1 * cos[i];
        }
    }

    /// <summary>
    /// Rotary position embedding as Hugging Face checkpoints expect it ("rotate half"): element i
    /// pairs with element i + dims/2.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void RopeHalves(Span<float> x, ReadOnlySpan<float> cos, ReadOnlySpan<float> sin)
    {
        int half = cos.Length;
        for (int i = 0; i < half; i++)
        {
            float x0 = x[i], x1 = x[i + half];
            x[i] = x0 * cos[i] - x1 * sin[i];
            x[i + half] = x0 * sin[i] + x1 * cos[i];
        }
    }
}
