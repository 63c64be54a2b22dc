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
