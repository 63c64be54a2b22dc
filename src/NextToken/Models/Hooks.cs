namespace NextToken.Models;

/// <summary>
/// An activation handed to a hook: a mutable view of the model's own buffer (a hook may read it
/// or edit it, e.g. to add a steering vector), with its shape.
/// </summary>
public readonly ref struct Activation
{
    public Activation(string name, Span<float> data, int[] shape, int firstPosition)
    {
        Name = name;
        Data = data;
        Shape = shape;
        FirstPosition = firstPosition;
    }

    public string Name { get; }

    /// <summary>Row-major data; see <see cref="Shape"/>.</summary>
    public Span<float> Data { get; }

    /// <summary>E.g. <c>[nPositions, nEmbd]</c> for residual hooks, <c>[nHead, nPositions, nKeys]</c> for attention patterns.</summary>
    public int[] Shape { get; }

    /// <summary>Absolute position (index in the context) of the first row.</summary>
    public int FirstPosition { get; }
}

public delegate void HookHandler(Activation activation);

/// <summary>One named place in the forward pass where hooks can observe or edit activations.</summary>
public sealed class HookPoint
{
    private HookHandler[] _handlers = [];

    internal HookPoint(string name) => Name = name;

    public string Name { get; }

    /// <summary>False when nothing is registered: the forward pass then skips the hook entirely.</summary>
    public bool IsActive => _handlers.Length != 0;

    public void Invoke(Activation activation)
    {
        foreach (HookHandler handler in _handlers) handler(activation);
    }

    internal void Add(HookHandler handler) => _handlers = [.. _handlers, handler];

    internal void Remove(HookHandler handler) => _handlers = _handlers.Where(h => h != handler).ToArray();
}

/// <summary>
/// The hook points a model exposes, TransformerLens style (<c>blocks.{L}.hook_resid_pre</c>, …).
/// Hooks are registered for a scope: <c>using var _ = model.Hooks.Add(name, handler);</c>.
/// </summary>
public sealed class HookRegistry
{
    private readonly Dictionary<string, HookPoint> _points = new(StringComparer.Ordinal);

    public IEnumerable<string> Names => _points.Keys;

    /// <summary>Called by a model while it is built, once per point it raises.</summary>
    public HookPoint Declare(string name)
    {
        var point = new HookPoint(name);
        _points.Add(name, point);
        return point;
    }

    public bool Contains(string name) => _points.ContainsKey(name);

    /// <summary>True when any point has a handler registered.</summary>
    public bool AnyActive
    {
        get
        {
            foreach (HookPoint point in _points.Values)
                if (point.IsActive) return true;
            return false;
        }
    }

    public IDisposable Add(string name, HookHandler handler)
    {
        if (!_points.TryGetValue(name, out HookPoint? point))
            throw new NextTokenException($"unknown hook point '{name}'; this model has: {string.Join(", ", _points.Keys.Take(12))}{(_points.Count > 12 ? ", …" : "")}");
        point.Add(handler);
        return new Registration(point, handler);
    }

    private sealed class Registration(HookPoint point, HookHandler handler) : IDisposable
    {
        private bool _disposed;

        public void Dispose()
        {
            if (_disposed) return;
            _disposed = true;
            point.Remove(handler);
        }
    }
}

/// <summary>
/// The names of the hook points, TransformerLens style, in one place: models declare them and
/// inspection reads them through these, so a name cannot drift between the two.
/// </summary>
public static class HookNames
{
    public const string Embed = "hook_embed";
    public const string PosEmbed = "hook_pos_embed";
    public const string FinalNormalized = "ln_final.hook_normalized";

    /// <summary>Endings that select one kind of hook in every layer (for name filters).</summary>
    public const string ResidPreSuffix = "hook_resid_pre", ResidPostSuffix = "hook_resid_post", PatternSuffix = "attn.hook_pattern", RouterProbsInfix = ".mlp.hook_router_probs", ExpertInfix = ".mlp.hook_expert_";

    public static string ResidPre(int layer) => $"blocks.{layer}.hook_resid_pre";
    public static string ResidMid(int layer) => $"blocks.{layer}.hook_resid_mid";
    public static string ResidPost(int layer) => $"blocks.{layer}.hook_resid_post";
    public static string AttnOut(int layer) => $"blocks.{layer}.hook_attn_out";
    public static string MlpOut(int layer) => $"blocks.{layer}.hook_mlp_out";
    public static string Q(int layer) => $"blocks.{layer}.attn.hook_q";
    public static string K(int layer) => $"blocks.{layer}.attn.hook_k";
    public static string V(int layer) => $"blocks.{layer}.attn.hook_v";
    public static string Qkv(int layer) => $"blocks.{layer}.attn.hook_qkv";
    public static string Z(int layer) => $"blocks.{layer}.attn.hook_z";
    public static string Pattern(int layer) => $"blocks.{layer}.attn.hook_pattern";
    public static string MlpPost(int layer) => $"blocks.{layer}.mlp.hook_post";
    public static string RouterProbs(int layer) => $"blocks.{layer}.mlp.hook_router_probs";
    public static string ExpertIndices(int layer) => $"blocks.{layer}.mlp.hook_expert_indices";
    public static string ExpertWeights(int layer) => $"blocks.{layer}.mlp.hook_expert_weights";
    /// <summary>The sigmoid gate of a shared expert (Qwen2-MoE), one value per position.</summary>
    public static string SharedGate(int layer) => $"blocks.{layer}.mlp.hook_shared_gate";
}
