using NextToken.Models;

namespace NextToken.Inspection;

/// <summary>One token's routing in one layer: the router's probabilities over all experts, and the chosen ones.</summary>
public sealed record RoutingEntry(int Layer, int Position, float[] RouterProbabilities, int[] Experts, float[] Weights);

/// <summary>A mixture-of-experts model's routing for a prompt, from its hook points.</summary>
public sealed class RoutingLedger
{
    private RoutingLedger(RoutingEntry[] entries, int layers, int experts) => (Entries, Layers, ExpertCount) = (entries, layers, experts);

    public RoutingEntry[] Entries { get; }
    public int Layers { get; }
    public int ExpertCount { get; }

    /// <summary>Whether <paramref name="model"/> has mixture-of-experts layers whose routing can be recorded.</summary>
    public static bool HasRouting(LanguageModel model) => model.Hooks.Contains(HookNames.RouterProbs(0));

    public static RoutingLedger Record(LanguageModel model, int[] tokens)
    {
        if (!model.Hooks.Contains(HookNames.RouterProbs(0)))
            throw new NextTokenException($"{model.FilePath}: this {model.Architecture} model has no mixture-of-experts layers to show routing for");
        var (_, cache) = model.RunWithCache(tokens, n => n.Contains(HookNames.RouterProbsInfix) || n.Contains(HookNames.ExpertInfix));
        var entries = new List<RoutingEntry>();
        int experts = cache[HookNames.RouterProbs(0)].Shape[1];
        for (int l = 0; l < model.LayerCount; l++)
        {
            CachedActivation probs = cache[HookNames.RouterProbs(l)], chosen = cache[HookNames.ExpertIndices(l)], weights = cache[HookNames.ExpertWeights(l)];
            for (int t = 0; t < tokens.Length; t++)
                entries.Add(new RoutingEntry(l, t, probs.Row(t).ToArray(), chosen.Row(t).ToArray().Select(e => (int)e).ToArray(), weights.Row(t).ToArray()));
        }
        return new RoutingLedger(entries.ToArray(), model.LayerCount, experts);
    }

    /// <summary>[layer, expert]: how many tokens chose each expert, and the routing weight they gave it.</summary>
    public (int[,] Count, double[,] Weight) Load()
    {
        var count = new int[Layers, ExpertCount];
        var weight = new double[Layers, ExpertCount];
        foreach (RoutingEntry e in Entries)
            for (int j = 0; j < e.Experts.Length; j++)
            {
                count[e.Layer, e.Experts[j]]++;
                weight[e.Layer, e.Experts[j]] += e.Weights[j];
            }
        return (count, weight);
    }

    /// <summary>
    /// For the tokens two contexts share at their ends (e.g. the same question with and without a
    /// system prompt), the layers where a token is sent to a different set of experts.
    /// </summary>
    public static List<(int Layer, int PositionA, int PositionB)> Differences(RoutingLedger a, int[] tokensA, RoutingLedger b, int[] tokensB)
    {
        int shared = 0;
        while (shared < Math.Min(tokensA.Length, tokensB.Length) && tokensA[^(shared + 1)] == tokensB[^(shared + 1)]) shared++;
        var lookupA = a.Entries.ToDictionary(e => (e.Layer, e.Position));
        var lookupB = b.Entries.ToDictionary(e => (e.Layer, e.Position));
        var differences = new List<(int, int, int)>();
        for (int l = 0; l < a.Layers; l++)
            for (int k = 1; k <= shared; k++)
            {
                int pa = tokensA.Length - k, pb = tokensB.Length - k;
                if (!lookupA[(l, pa)].Experts.Order().SequenceEqual(lookupB[(l, pb)].Experts.Order())) differences.Add((l, pa, pb));
            }
        return differences;
    }
}
