using System.Numerics.Tensors;
using NextToken.Models;

namespace NextToken.Inspection;

/// <summary>What the residual stream at one depth would predict if decoded directly.</summary>
public sealed record LensLayer(string Stage, RankedToken[] Top, double KlToFinal, int RankOfFinalTop, float[] Logits);

/// <summary>The lens at one position, and the L2 norm of every block's output (<c>blocks.L.hook_resid_post</c>), [layer][position].</summary>
public sealed record LensResult(LensLayer[] Layers, float[][] ResidualNorms);

/// <summary>
/// The logit lens (nostalgebraist 2020): the residual stream entering each block, and leaving the
/// last, decoded through the final norm and the unembedding. The last entry equals the model's logits.
/// </summary>
public static class LogitLens
{
    public static LensLayer[] Run(LanguageModel model, int[] tokens, int position = -1, int top = 5) => Analyze(model, tokens, position, top).Layers;

    /// <summary>The lens, plus the residual stream's norm after every block at every position (it grows with depth; outliers show up here first).</summary>
    public static LensResult Analyze(LanguageModel model, int[] tokens, int position = -1, int top = 5)
    {
        if (position < 0) position += tokens.Length;
        if (position < 0 || position >= tokens.Length)
            throw new NextTokenException($"position {position} is outside the {tokens.Length} tokens");
        var (_, cache) = model.RunWithCache(tokens, name => name.EndsWith(HookNames.ResidPreSuffix, StringComparison.Ordinal)
                                                           || name.EndsWith(HookNames.ResidPostSuffix, StringComparison.Ordinal));
        var stages = new List<(string Stage, float[] Logits)>();
        for (int l = 0; l <= model.LayerCount; l++)
        {
            CachedActivation residual = l < model.LayerCount ? cache[HookNames.ResidPre(l)] : cache[HookNames.ResidPost(l - 1)];
            var logits = new float[model.VocabSize];
            model.DecodeResidual(residual.Row(position), logits);
            stages.Add((l == 0 ? "embeddings" : l < model.LayerCount ? $"after block {l - 1}" : $"after block {l - 1} (final)", logits));
        }
        float[] final = stages[^1].Logits;
        var finalDistribution = new TokenDistribution(final);
        int finalTop = finalDistribution.Top(1)[0].Id;
        LensLayer[] layers = stages.Select(s =>
        {
            var distribution = new TokenDistribution(s.Logits);
            double kl = DistributionComparison.Compare(final, s.Logits, 1).KlAB;
            return new LensLayer(s.Stage, distribution.Top(top), kl, distribution.RankOf(finalTop), s.Logits);
        }).ToArray();
        float[][] norms = Enumerable.Range(0, model.LayerCount).Select(l =>
        {
            CachedActivation resid = cache[HookNames.ResidPost(l)];
            return Enumerable.Range(0, tokens.Length).Select(p => TensorPrimitives.Norm(resid.Row(p))).ToArray();
        }).ToArray();
        return new LensResult(layers, norms);
    }
}
