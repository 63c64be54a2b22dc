namespace NextToken.Training;

/// <summary>
/// AdamW as PyTorch and nanoGPT apply it: decoupled weight decay <c>p ← p·(1 − lr·wd)</c> on the
/// 2-D tensors only, then the bias-corrected Adam update; step count from 1. Moments live in flat
/// buffers laid out like the parameters.
/// </summary>
public sealed class AdamW
{
    private readonly Gpt2Parameters _layout;

    public AdamW(Gpt2Parameters layout, float beta1 = 0.9f, float beta2 = 0.95f, float eps = 1e-8f, float weightDecay = 0.1f)
    {
        _layout = layout;
        Beta1 = beta1; Beta2 = beta2; Eps = eps; WeightDecay = weightDecay;
        M = layout.NewBuffer();
        V = layout.NewBuffer();
    }

    public float Beta1 { get; }
    public float Beta2 { get; }
    public float Eps { get; }
    public float WeightDecay { get; }
    public float[] M { get; }
    public float[] V { get; }
    /// <summary>Steps taken so far (the next step is number <c>Step + 1</c>).</summary>
    public int Step { get; set; }

    public void Update(float[] parameters, float[] grads, float lr)
    {
        Step++;
        float correction1 = (float)(1 - Math.Pow(Beta1, Step));
        float correction2 = (float)(1 - Math.Pow(Beta2, Step));
        float b1 = Beta1, b2 = Beta2, eps = Eps;
        foreach (ParameterTensor t in _layout.Tensors)
        {
            float decay = t.Decayed ? 1f - lr * WeightDecay : 1f;
            Span<float> p = parameters.AsSpan(t.Offset, t.Length), m = M.AsSpan(t.Offset, t.Length), v = V.AsSpan(t.Offset, t.Length);
            ReadOnlySpan<float> g = grads.AsSpan(t.Offset, t.Length);
            for (int i = 0; i < p.Length; i++)
            {
                float gi = g[i];
                float mi = m[i] = b1 * m[i] + (1 - b1) * gi;
                float vi = v[i] = b2 * v[i] + (1 - b2) * gi * gi;
                p[i] = p[i] * decay - lr * (mi / correction1) / (MathF.Sqrt(vi / correction2) + eps);
            }
        }
    }

    /// <summary>√Σg² over all parameters, summed in float64.</summary>
    public static double GlobalNorm(ReadOnlySpan<float> grads)
    {
        double sum = 0;
        foreach (float g in grads) sum += (double)g * g;
        return Math.Sqrt(sum);
    }

    /// <summary>nanoGPT's clipping (torch's clip_grad_norm_): when the norm exceeds <paramref name="maxNorm"/>, g ← g·maxNorm/(norm + 1e-6). Returns the norm before clipping.</summary>
    public static double Clip(Span<float> grads, float maxNorm)
    {
        double norm = GlobalNorm(grads);
        if (maxNorm > 0 && norm > maxNorm)
        {
            float factor = (float)(maxNorm / (norm + 1e-6));
            System.Numerics.Tensors.TensorPrimitives.Multiply(grads, factor, grads);
        }
        return norm;
    }
}
