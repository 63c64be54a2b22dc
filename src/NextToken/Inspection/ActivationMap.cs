using System.Numerics.Tensors;
using NextToken.Models;

namespace NextToken.Inspection;

/// <summary>One token's residual vector placed on a 2-D map.</summary>
public sealed record MapPoint(int Prompt, int Position, int TokenId, double X, double Y);

/// <summary>
/// Per-token residual-stream vectors at a layer, projected to 2-D: by PCA (the two directions of
/// greatest variance), or onto concept axes, each the difference of two prompt sets' mean activations.
/// </summary>
public static class ActivationMap
{
    /// <summary>Residual vectors [tokens] of d floats, with where each came from.</summary>
    public static (List<float[]> Vectors, List<(int Prompt, int Position, int TokenId)> Origins) Collect(LanguageModel model, IReadOnlyList<int[]> prompts, int layer)
    {
        if (layer < 0 || layer > model.LayerCount)
            throw new NextTokenException($"layer {layer} does not exist; choose 0 to {model.LayerCount} (the last is the final residual)");
        string hook = layer < model.LayerCount ? HookNames.ResidPre(layer) : HookNames.ResidPost(layer - 1);
        var vectors = new List<float[]>();
        var origins = new List<(int, int, int)>();
        for (int p = 0; p < prompts.Count; p++)
        {
            CachedActivation residual = model.RunWithCache(prompts[p], n => n == hook).Cache[hook];
            for (int t = 0; t < prompts[p].Length; t++)
            {
                vectors.Add(residual.Row(t).ToArray());
                origins.Add((p, t, prompts[p][t]));
            }
        }
        return (vectors, origins);
    }

    /// <summary>The mean of a set of vectors.</summary>
    public static float[] Mean(IReadOnlyList<float[]> vectors)
    {
        var mean = new float[vectors[0].Length];
        foreach (float[] v in vectors) TensorPrimitives.Add(mean, v, mean);
        TensorPrimitives.Divide(mean, vectors.Count, mean);
        return mean;
    }

    /// <summary>The first <paramref name="components"/> principal directions (unit vectors), by power iteration with deflation.</summary>
    public static float[][] PrincipalComponents(IReadOnlyList<float[]> vectors, int components = 2, int iterations = 200)
    {
        int d = vectors[0].Length;
        float[] mean = Mean(vectors);
        var centered = vectors.Select(v => { var c = new float[d]; TensorPrimitives.Subtract(v, mean, c); return c; }).ToList();
        var result = new float[components][];
        var random = new Random(7);
        for (int k = 0; k < components; k++)
        {
            var direction = Enumerable.Range(0, d).Select(_ => (float)(random.NextDouble() - 0.5)).ToArray();
            var next = new float[d];
            for (int it = 0; it < iterations; it++)
            {
                // next = Σ (x·v) x, i.e. the covariance times v, without forming the d × d matrix.
                Array.Clear(next);
                foreach (float[] x in centered) TensorPrimitives.MultiplyAdd(x, TensorPrimitives.Dot(x, direction), next, next);
                for (int j = 0; j < k; j++) TensorPrimitives.MultiplyAdd(result[j], -TensorPrimitives.Dot(next, result[j]), next, next);
                float norm = TensorPrimitives.Norm(next);
                if (norm == 0) break;
                TensorPrimitives.Divide(next, norm, direction);
            }
            result[k] = direction;
        }
        return result;
    }

    /// <summary>Coordinates of every vector along the given axes (measured from the mean of <paramref name="vectors"/>).</summary>
    public static List<MapPoint> Project(IReadOnlyList<float[]> vectors, IReadOnlyList<(int Prompt, int Position, int TokenId)> origins, float[] axisX, float[] axisY)
    {
        float[] mean = Mean(vectors);
        var centered = new float[mean.Length];
        var points = new List<MapPoint>(vectors.Count);
        for (int i = 0; i < vectors.Count; i++)
        {
            TensorPrimitives.Subtract(vectors[i], mean, centered);
            points.Add(new MapPoint(origins[i].Prompt, origins[i].Position, origins[i].TokenId,
                TensorPrimitives.Dot(centered, axisX), TensorPrimitives.Dot(centered, axisY)));
        }
        return points;
    }

    /// <summary>A concept axis: mean(A) − mean(B), normalized.</summary>
    public static float[] ConceptAxis(IReadOnlyList<float[]> a, IReadOnlyList<float[]> b)
    {
        var axis = new float[a[0].Length];
        TensorPrimitives.Subtract(Mean(a), Mean(b), axis);
        float norm = TensorPrimitives.Norm(axis);
        if (norm > 0) TensorPrimitives.Divide(axis, norm, axis);
        return axis;
    }
}
