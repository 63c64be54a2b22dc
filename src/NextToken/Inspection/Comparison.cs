namespace NextToken.Inspection;

/// <summary>One token's place in two next-token distributions.</summary>
public sealed record ComparedToken(int Id, int RankA, int RankB, double ProbabilityA, double ProbabilityB)
{
    /// <summary>Positive when the token rose (its rank number fell) from A to B.</summary>
    public int RankChange => RankA - RankB;
}

/// <summary>How two next-token distributions over the same vocabulary differ.</summary>
public sealed record DistributionComparison(
    double KlAB, double KlBA, double JensenShannon, double TotalVariation, double EntropyA, double EntropyB,
    int TopK, int TopKOverlap, ComparedToken[] TopOfA, ComparedToken[] TopOfB, ComparedToken[] NewInTopK, ComparedToken[] DroppedFromTopK)
{
    /// <summary>
    /// Compares the softmax of two logit rows: KL both ways, Jensen–Shannon, total variation (all in
    /// nats where applicable), entropies, and the ranked lists with rank changes.
    /// </summary>
    public static DistributionComparison Compare(ReadOnlySpan<float> logitsA, ReadOnlySpan<float> logitsB, int topK = 10)
    {
        if (logitsA.Length != logitsB.Length) throw new ArgumentException("the two rows have different vocabulary sizes");
        double[] p = Softmax(logitsA), q = Softmax(logitsB);
        double klAB = 0, klBA = 0, js = 0, tv = 0, hA = 0, hB = 0;
        for (int i = 0; i < p.Length; i++)
        {
            double m = 0.5 * (p[i] + q[i]);
            if (p[i] > 0) { klAB += p[i] * Math.Log(p[i] / q[i]); hA -= p[i] * Math.Log(p[i]); js += 0.5 * p[i] * Math.Log(p[i] / m); }
            if (q[i] > 0) { klBA += q[i] * Math.Log(q[i] / p[i]); hB -= q[i] * Math.Log(q[i]); js += 0.5 * q[i] * Math.Log(q[i] / m); }
            tv += 0.5 * Math.Abs(p[i] - q[i]);
        }
        int[] rankA = Ranks(p), rankB = Ranks(q);
        ComparedToken Token(int id) => new(id, rankA[id], rankB[id], p[id], q[id]);
        int[] topA = TopIds(rankA, topK), topB = TopIds(rankB, topK);
        var setA = topA.ToHashSet();
        var setB = topB.ToHashSet();
        return new DistributionComparison(Math.Max(0, klAB), Math.Max(0, klBA), Math.Max(0, js), tv, hA, hB, topK,
            setA.Intersect(setB).Count(), topA.Select(Token).ToArray(), topB.Select(Token).ToArray(),
            topB.Where(id => !setA.Contains(id)).Select(Token).ToArray(), topA.Where(id => !setB.Contains(id)).Select(Token).ToArray());
    }

    private static double[] Softmax(ReadOnlySpan<float> logits)
    {
        float max = float.NegativeInfinity;
        foreach (float x in logits) max = Math.Max(max, x);
        var result = new double[logits.Length];
        double sum = 0;
        for (int i = 0; i < logits.Length; i++) sum += result[i] = Math.Exp(logits[i] - max);
        for (int i = 0; i < result.Length; i++) result[i] /= sum;
        return result;
    }

    /// <summary>1-based ranks by probability, ties to the lower id.</summary>
    private static int[] Ranks(double[] probabilities)
    {
        int[] order = Enumerable.Range(0, probabilities.Length).ToArray();
        Array.Sort(order, (a, b) => probabilities[b] != probabilities[a] ? probabilities[b].CompareTo(probabilities[a]) : a.CompareTo(b));
        var ranks = new int[probabilities.Length];
        for (int r = 0; r < order.Length; r++) ranks[order[r]] = r + 1;
        return ranks;
    }

    private static int[] TopIds(int[] ranks, int k)
    {
        var ids = new int[Math.Min(k, ranks.Length)];
        for (int id = 0; id < ranks.Length; id++)
            if (ranks[id] <= ids.Length) ids[ranks[id] - 1] = id;
        return ids;
    }
}
