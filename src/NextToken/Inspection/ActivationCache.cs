using NextToken.Models;

namespace NextToken.Inspection;

/// <summary>A copy of one hook point's activation from a forward pass.</summary>
public sealed record CachedActivation(string Name, float[] Data, int[] Shape, int FirstPosition)
{
    /// <summary>Row <paramref name="row"/> of a [rows, columns] activation.</summary>
    public ReadOnlySpan<float> Row(int row) => Data.AsSpan(row * Shape[^1], Shape[^1]);
}

/// <summary>Named activations recorded by <see cref="ModelInspection.RunWithCache"/>.</summary>
public sealed class ActivationCache(Dictionary<string, CachedActivation> activations)
{
    public IReadOnlyCollection<string> Names => activations.Keys;

    public bool Contains(string name) => activations.ContainsKey(name);

    public CachedActivation this[string name] =>
        activations.TryGetValue(name, out CachedActivation? value) ? value
        : throw new NextTokenException($"activation '{name}' was not recorded; recorded: {string.Join(", ", activations.Keys.Take(8))}…");
}

/// <summary>The inspection entry points every CLI command is built on (TransformerLens style).</summary>
public static class ModelInspection
{
    /// <summary>
    /// Runs <paramref name="tokens"/> through a fresh context in one batch and records every hook
    /// point that <paramref name="include"/> accepts. Returns the logits of every position [n, vocab].
    /// </summary>
    public static (float[] Logits, ActivationCache Cache) RunWithCache(this LanguageModel model, int[] tokens, Func<string, bool>? include = null)
    {
        var recorded = new Dictionary<string, CachedActivation>(StringComparer.Ordinal);
        var registrations = model.Hooks.Names.Where(n => include?.Invoke(n) ?? true).ToList()
            .Select(name => model.Hooks.Add(name, a => recorded[a.Name] = new CachedActivation(a.Name, a.Data.ToArray(), a.Shape, a.FirstPosition)))
            .ToList();
        try
        {
            // Checked before the [positions × vocabulary] array, whose size would overflow for a huge prompt.
            if (tokens.Length > model.ContextLength)
                throw new NextTokenException($"the prompt has {tokens.Length:N0} tokens; the model's context length is {model.ContextLength:N0}");
            var logits = new float[tokens.Length * model.VocabSize];
            model.Forward(model.CreateState(Math.Max(1, tokens.Length)), tokens, logits, LogitsFor.AllPositions);
            return (logits, new ActivationCache(recorded));
        }
        finally
        {
            registrations.ForEach(r => r.Dispose());
        }
    }

    /// <summary>Adds <paramref name="coefficient"/> × <paramref name="vector"/> ([rows, d]) to a [positions, d] hook point, row i at absolute position <paramref name="firstPosition"/> + i.</summary>
    public static IDisposable AddVector(this LanguageModel model, string hookName, float[] vector, int rows, float coefficient, int firstPosition = 0)
    {
        int d = vector.Length / rows;
        return model.Hooks.Add(hookName, a =>
        {
            for (int r = 0; r < a.Shape[0]; r++)
            {
                int row = a.FirstPosition + r - firstPosition;
                if (row < 0 || row >= rows) continue;
                Span<float> target = a.Data.Slice(r * d, d);
                System.Numerics.Tensors.TensorPrimitives.MultiplyAdd(vector.AsSpan(row * d, d), coefficient, target, target);
            }
        });
    }

    /// <summary>The attention pattern of every layer, [layer] of [nHead, n, n].</summary>
    public static CachedActivation[] AttentionPatterns(this ActivationCache cache, int layers) =>
        Enumerable.Range(0, layers).Select(l => cache[HookNames.Pattern(l)]).ToArray();
}
