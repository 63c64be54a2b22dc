using NextToken.Models;

namespace NextToken.Inspection;

/// <summary>An activation-addition vector (Turner et al. 2023): [Length, d] to add at a layer's input from position 0.</summary>
public sealed record SteeringVector(int Layer, float[] Vector, int Length, int Width)
{
    public string HookName => HookNames.ResidPre(Layer);

    /// <summary>L2 norm of each row.</summary>
    public double[] RowNorms => Enumerable.Range(0, Length)
        .Select(r => (double)System.Numerics.Tensors.TensorPrimitives.Norm(Vector.AsSpan(r * Width, Width))).ToArray();

    /// <summary>
    /// resid_pre(add) − resid_pre(sub) at <paramref name="layer"/>; the shorter prompt is padded
    /// with <paramref name="padId"/> (a space token) so both have the same length.
    /// </summary>
    public static SteeringVector FromPrompts(LanguageModel model, int[] add, int[] sub, int layer, int padId)
    {
        if (layer < 0 || layer >= model.LayerCount)
            throw new NextTokenException($"layer {layer} does not exist; the model has layers 0 to {model.LayerCount - 1}");
        int length = Math.Max(add.Length, sub.Length);
        int[] Pad(int[] ids) => ids.Concat(Enumerable.Repeat(padId, length - ids.Length)).ToArray();
        string hook = HookNames.ResidPre(layer);
        float[] a = model.RunWithCache(Pad(add), n => n == hook).Cache[hook].Data;
        float[] b = model.RunWithCache(Pad(sub), n => n == hook).Cache[hook].Data;
        var difference = new float[a.Length];
        System.Numerics.Tensors.TensorPrimitives.Subtract(a, b, difference);
        return new SteeringVector(layer, difference, length, model.EmbeddingLength);
    }

    /// <summary>Adds coefficient × vector at this layer while the returned scope lives.</summary>
    public IDisposable Apply(LanguageModel model, float coefficient) => model.AddVector(HookName, Vector, Length, coefficient);
}

/// <summary>One layer × coefficient of a steering sweep.</summary>
public sealed record SteeringSweepRow(int Layer, float Coefficient, double LogProbabilityLift, double KlToUnsteered, double RelativeNorm);

/// <summary>Steering as the <c>steer</c> command and the server run it: the prompts' tokens, continuations, the sweep.</summary>
public static class Steering
{
    /// <summary>The sampler <c>steer</c> continues with unless told otherwise: wide enough to show the vector's pull, with a frequency penalty against loops.</summary>
    public static Sampling.SamplingOptions DefaultSampling { get; } = new() { Temperature = 1.0f, TopK = 0, TopP = 0.3f, MinP = 0, FrequencyPenalty = 1 };

    /// <summary>
    /// The prompt and the two steering prompts as tokens (BOS as the vocabulary wants), and the
    /// token the shorter steering prompt is padded with (a space).
    /// </summary>
    public static (int[] Prompt, int[] Add, int[] Sub, int Pad) Encode(LanguageModel model, string prompt, string add, string sub)
    {
        var tokenizer = model.Tokenizer;
        bool bos = tokenizer.Vocabulary.AddBos;
        int[] space = tokenizer.Encode(" ").Ids;
        if (space.Length == 0) throw new NextTokenException($"{model.FilePath}: the tokenizer has no token for a space to pad the steering prompts with");
        return (tokenizer.Encode(prompt, bos).Ids, tokenizer.Encode(add, bos).Ids, tokenizer.Encode(sub, bos).Ids, space[^1]);
    }

    /// <summary>The first token of each target text (texts that encode to nothing are skipped), without repeats.</summary>
    public static int[] TargetIds(LanguageModel model, IEnumerable<string> targets) =>
        targets.Select(t => model.Tokenizer.Encode(t).Ids.FirstOrDefault(-1)).Where(id => id >= 0).Distinct().ToArray();

    /// <summary>The text generated after <paramref name="prompt"/> from a fresh context (what <see cref="Generation.Generator"/> yields, run here on the caller's thread).</summary>
    public static string Continue(LanguageModel model, int[] prompt, Generation.GenerationOptions options, CancellationToken cancel = default)
    {
        var stream = new Generation.TokenStream(model, options);
        ModelState state = model.CreateState();
        var logits = new float[model.VocabSize];
        var next = new int[1];
        var text = new System.Text.StringBuilder();
        model.Forward(state, prompt, logits);
        while (!stream.Finished)
        {
            cancel.ThrowIfCancellationRequested();
            if (stream.Step(logits, state.Position) is not { } token) break;
            text.Append(token.Text);
            if (stream.Finished) break;
            next[0] = stream.NextInput;
            model.Forward(state, next, logits);
        }
        return text.Append(stream.TrailingText).ToString();
    }

    /// <summary>
    /// Every layer × coefficient: the lift of the targets' mean log-probability at the next position,
    /// KL(steered ‖ unsteered), and the vector's size relative to the residual stream it is added to.
    /// </summary>
    public static SteeringSweepRow[] Sweep(LanguageModel model, int[] prompt, int[] add, int[] sub, int padId, IReadOnlyList<float> coefficients, int[] targets,
                                           CancellationToken cancel = default)
    {
        if (coefficients.Count == 0) throw new NextTokenException("no coefficients to sweep");
        foreach (float c in coefficients)
            if (!float.IsFinite(c)) throw new NextTokenException($"coefficients must be finite numbers, not {c}");
        if (targets.Length == 0) throw new NextTokenException("no target token");
        foreach (int id in targets)
            if ((uint)id >= (uint)model.VocabSize) throw new NextTokenException($"target {id} is not a token id below {model.VocabSize}");
        var (plainLogits, plainCache) = model.RunWithCache(prompt, n => n.EndsWith(HookNames.ResidPreSuffix, StringComparison.Ordinal));
        float[] plainLast = plainLogits[^model.VocabSize..];
        double lseP = Kernels.Ops.LogSumExp(plainLast);
        var steered = new float[model.VocabSize];
        var rows = new List<SteeringSweepRow>();
        for (int l = 0; l < model.LayerCount; l++)
        {
            SteeringVector vector = SteeringVector.FromPrompts(model, add, sub, l, padId);
            CachedActivation residual = plainCache[vector.HookName];
            int overlap = Math.Min(vector.Length, prompt.Length);
            double residualNorm = Enumerable.Range(0, overlap).Average(r => (double)System.Numerics.Tensors.TensorPrimitives.Norm(residual.Row(r)));
            double vectorNorm = vector.RowNorms.Take(overlap).Average();
            foreach (float c in coefficients)
            {
                cancel.ThrowIfCancellationRequested();
                using (vector.Apply(model, c)) model.Forward(model.CreateState(), prompt, steered);
                double lseS = Kernels.Ops.LogSumExp(steered);
                double lift = targets.Average(id => (steered[id] - lseS) - (plainLast[id] - lseP));
                rows.Add(new SteeringSweepRow(l, c, lift, DistributionComparison.Compare(steered, plainLast, 1).KlAB, c * vectorNorm / residualNorm));
            }
        }
        return rows.ToArray();
    }
}
