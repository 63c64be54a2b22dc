using NextToken.Models;

namespace NextToken.Inspection;

/// <summary>The experts one position was sent to in one layer, best first, with their renormalized weights.</summary>
public sealed record ExpertChoice(int Layer, int Position, int[] Experts, float[] Weights);

/// <summary>
/// Records a mixture-of-experts model's routing decisions through its hook points while
/// registered: <c>using var recorder = new RoutingRecorder(model); model.Forward(...);</c>.
/// </summary>
public sealed class RoutingRecorder : IDisposable
{
    private readonly List<IDisposable> _registrations = [];
    private readonly List<ExpertChoice> _choices = [];

    public RoutingRecorder(LanguageModel model)
    {
        if (!model.Hooks.Contains("blocks.0.mlp.hook_expert_indices"))
            throw new NextTokenException($"{model.FilePath}: this {model.Architecture} model has no mixture-of-experts layers to show routing for");
        for (int l = 0; l < model.LayerCount; l++)
        {
            int layer = l;
            float[]? indices = null;
            _registrations.Add(model.Hooks.Add($"blocks.{l}.mlp.hook_expert_indices", a => indices = a.Data.ToArray()));
            _registrations.Add(model.Hooks.Add($"blocks.{l}.mlp.hook_expert_weights", a =>
            {
                int k = a.Shape[1];
                for (int t = 0; t < a.Shape[0]; t++)
                {
                    int[] experts = indices!.AsSpan(t * k, k).ToArray().Select(e => (int)e).ToArray();
                    _choices.Add(new ExpertChoice(layer, a.FirstPosition + t, experts, a.Data.Slice(t * k, k).ToArray()));
                }
            }));
        }
    }

    public IReadOnlyList<ExpertChoice> Choices => _choices;

    public void Dispose() => _registrations.ForEach(r => r.Dispose());
}
