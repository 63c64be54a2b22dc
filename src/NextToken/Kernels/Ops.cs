using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

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

    /// <summary>
    /// GPT-2's GELU, the tanh approximation: 0.5·x·(1 + tanh(u)) with u = √(2/π)·(x + 0.044715·x³),
    /// computed as the identical x / (1 + e^(−2u)) — one exponential per value, 16 values per step. May run in place.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void GeluTanh(ReadOnlySpan<float> x, Span<float> destination)
    {
        const float TwoSqrtTwoOverPi = 2 * 0.7978845608028654f, Cubic = 0.044715f;
        if (destination.Length < x.Length) throw new ArgumentException("destination is shorter than x");
        ref float source = ref MemoryMarshal.GetReference(x);
        ref float target = ref MemoryMarshal.GetReference(destination);
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
            for (; i + 16 <= x.Length; i += 16)
            {
                Vector512<float> v = Vector512.LoadUnsafe(ref source, (nuint)i);
                Vector512<float> twoU = Vector512.Create(TwoSqrtTwoOverPi) * Vector512.FusedMultiplyAdd(Vector512.Create(Cubic) * v, v * v, v);
                (v / (Vector512<float>.One + Vector512.Exp(-twoU))).StoreUnsafe(ref target, (nuint)i);
            }
        else if (Vector256.IsHardwareAccelerated)
            for (; i + 8 <= x.Length; i += 8)
            {
                Vector256<float> v = Vector256.LoadUnsafe(ref source, (nuint)i);
                Vector256<float> twoU = Vector256.Create(TwoSqrtTwoOverPi) * Vector256.FusedMultiplyAdd(Vector256.Create(Cubic) * v, v * v, v);
                (v / (Vector256<float>.One + Vector256.Exp(-twoU))).StoreUnsafe(ref target, (nuint)i);
            }
        for (; i < x.Length; i++)
        {
            float v = x[i];
            destination[i] = v / (1 + MathF.Exp(-TwoSqrtTwoOverPi * (v + Cubic * v * v * v)));
        }
    }

    /// <summary>log Σ exp(x), computed stably: float32 exponentials in vectors, summed in float64.</summary>
    public static float LogSumExp(ReadOnlySpan<float> x)
    {
        float max = TensorPrimitives.Max(x);
        float[] buffer = System.Buffers.ArrayPool<float>.Shared.Rent(x.Length);
        try
        {
            Span<float> shifted = buffer.AsSpan(0, x.Length);
            TensorPrimitives.Subtract(x, max, shifted);
            TensorPrimitives.Exp(shifted, shifted);
            return (float)(max + Math.Log(SumInDouble(shifted)));
        }
        finally
        {
            System.Buffers.ArrayPool<float>.Shared.Return(buffer);
        }
    }

    /// <summary>Σ x accumulated in float64, eight values per vector step (for long rows of small terms, such as exponentials over a vocabulary).</summary>
    public static double SumInDouble(ReadOnlySpan<float> x)
    {
        int i = 0;
        double sum = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            ref float source = ref MemoryMarshal.GetReference(x);
            Vector256<double> sums = Vector256<double>.Zero;
            for (; i + 8 <= x.Length; i += 8)
            {
                (Vector256<double> low, Vector256<double> high) = Vector256.Widen(Vector256.LoadUnsafe(ref source, (nuint)i));
                sums += low + high;
            }
            sum = Vector256.Sum(sums);
        }
        for (; i < x.Length; i++) sum += x[i];
        return sum;
    }

    /// <summary>RMSNorm over one row: x / sqrt(mean(x²) + eps) · weight.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void RmsNorm(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, float eps, Span<float> destination)
    {
        float scale = 1f / MathF.Sqrt(TensorPrimitives.SumOfSquares(x) / x.Length + eps);
        TensorPrimitives.Multiply(x, scale, destination);
        TensorPrimitives.Multiply(destination[..x.Length], weight, destination);
    }

    /// <summary>
    /// RMSNorm of each head of a row in place: <paramref name="x"/> holds heads × weight.Length
    /// values, each head normalized on its own with the shared weight (Qwen3's and Gemma 3's q/k norms).
    /// </summary>
    public static void RmsNormHeads(Span<float> x, ReadOnlySpan<float> weight, float eps)
    {
        int hd = weight.Length;
        if (hd == 0 || x.Length % hd != 0) throw new ArgumentException($"RmsNormHeads: a row of {x.Length} is not whole heads of {hd}");
        for (int h = 0; h < x.Length; h += hd)
        {
            Span<float> head = x.Slice(h, hd);
            RmsNorm(head, weight, eps, head);
        }
    }

    /// <summary>Softcap: cap · tanh(x / cap), squashing values into (−cap, cap) (Gemma 2's attention scores and logits). May run in place.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Softcap(ReadOnlySpan<float> x, float cap, Span<float> destination)
    {
        if (destination.Length < x.Length) throw new ArgumentException("destination is shorter than x");
        Span<float> target = destination[..x.Length];
        TensorPrimitives.Multiply(x, 1f / cap, target);
        TensorPrimitives.Tanh(target, target);
        TensorPrimitives.Multiply(target, cap, target);
    }

    /// <summary>GeGLU with the tanh GELU: gelu_tanh(gate) · up (Gemma). May run in place on <paramref name="gate"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void GeGluTanh(ReadOnlySpan<float> gate, ReadOnlySpan<float> up, Span<float> destination)
    {
        if (up.Length < gate.Length || destination.Length < gate.Length) throw new ArgumentException("up and destination must be as long as gate");
        GeluTanh(gate, destination);
        TensorPrimitives.Multiply(destination[..gate.Length], up[..gate.Length], destination);
    }

    /// <summary>SwiGLU: silu(gate) · up, with silu(g) = g · sigmoid(g) = g / (1 + e^(−g)). May run in place on <paramref name="gate"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void SwiGlu(ReadOnlySpan<float> gate, ReadOnlySpan<float> up, Span<float> destination)
    {
        if (up.Length < gate.Length || destination.Length < gate.Length) throw new ArgumentException("up and destination must be as long as gate");
        ref float g = ref MemoryMarshal.GetReference(gate);
        ref float u = ref MemoryMarshal.GetReference(up);
        ref float target = ref MemoryMarshal.GetReference(destination);
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
            for (; i + 16 <= gate.Length; i += 16)
            {
                Vector512<float> v = Vector512.LoadUnsafe(ref g, (nuint)i);
                (v / (Vector512<float>.One + Vector512.Exp(-v)) * Vector512.LoadUnsafe(ref u, (nuint)i)).StoreUnsafe(ref target, (nuint)i);
            }
        else if (Vector256.IsHardwareAccelerated)
            for (; i + 8 <= gate.Length; i += 8)
            {
                Vector256<float> v = Vector256.LoadUnsafe(ref g, (nuint)i);
                (v / (Vector256<float>.One + Vector256.Exp(-v)) * Vector256.LoadUnsafe(ref u, (nuint)i)).StoreUnsafe(ref target, (nuint)i);
            }
        for (; i < gate.Length; i++) destination[i] = gate[i] / (1 + MathF.Exp(-gate[i])) * up[i];
    }

    /// <summary>
    /// Rotary position embedding as GGUF Llama files expect it: adjacent pairs (x[2i], x[2i+1])
    /// rotate by angle position·θᵢ, with cos and sin of those angles given per pair.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void RopeAdjacentPairs(Span<float> x, ReadOnlySpan<float> cos, ReadOnlySpan<float> sin)
    {
        if (x.Length < 2 * cos.Length || sin.Length < cos.Length) throw new ArgumentException("RoPE: x needs two values per angle");
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            // Eight pairs per step: x·[c0 c0 c1 c1 …] + [x1 x0 x3 x2 …]·[−s0 s0 −s1 s1 …].
            ref float v = ref MemoryMarshal.GetReference(x);
            var duplicate = Vector512.Create(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
            var swap = Vector512.Create(1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14);
            var alternate = Vector512.Create(-1f, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1);
            for (; i + 8 <= cos.Length; i += 8)
            {
                Vector512<float> c = Vector512.Shuffle(Vector512.Create(Vector256.Create(cos.Slice(i, 8)), default), duplicate);
                Vector512<float> s = Vector512.Shuffle(Vector512.Create(Vector256.Create(sin.Slice(i, 8)), default), duplicate) * alternate;
                Vector512<float> pairs = Vector512.LoadUnsafe(ref v, (nuint)(2 * i));
                Vector512.FusedMultiplyAdd(pairs, c, Vector512.Shuffle(pairs, swap) * s).StoreUnsafe(ref v, (nuint)(2 * i));
            }
        }
        for (; i < cos.Length; i++)
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
        if (x.Length < 2 * half || sin.Length < half) throw new ArgumentException("RoPE: x needs two values per angle");
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            ref float v = ref MemoryMarshal.GetReference(x);
            ref float c = ref MemoryMarshal.GetReference(cos);
            ref float s = ref MemoryMarshal.GetReference(sin);
            for (; i + 16 <= half; i += 16)
            {
                Vector512<float> x0 = Vector512.LoadUnsafe(ref v, (nuint)i), x1 = Vector512.LoadUnsafe(ref v, (nuint)(i + half));
                Vector512<float> ci = Vector512.LoadUnsafe(ref c, (nuint)i), si = Vector512.LoadUnsafe(ref s, (nuint)i);
                Vector512.FusedMultiplyAdd(x0, ci, -(x1 * si)).StoreUnsafe(ref v, (nuint)i);
                Vector512.FusedMultiplyAdd(x0, si, x1 * ci).StoreUnsafe(ref v, (nuint)(i + half));
            }
        }
        for (; i < half; i++)
        {
            float x0 = x[i], x1 = x[i + half];
            x[i] = x0 * cos[i] - x1 * sin[i];
            x[i + half] = x0 * sin[i] + x1 * cos[i];
        }
    }
}
