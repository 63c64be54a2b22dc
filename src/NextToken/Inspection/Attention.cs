namespace NextToken.Inspection;

/// <summary>Shares of attention paid to spans of the context, read from <c>attn.hook_pattern</c> ([nHead, n, keys]).</summary>
public static class AttentionShares
{
    /// <summary>Attention mass that query position <paramref name="query"/> of one head puts on keys [start, end).</summary>
    public static double Share(CachedActivation pattern, int head, int query, int start, int end)
    {
        int n = pattern.Shape[1], keys = pattern.Shape[2];
        ReadOnlySpan<float> row = pattern.Data.AsSpan((head * n + query) * keys, keys);
        double sum = 0;
        for (int k = Math.Max(0, start); k < Math.Min(end, keys); k++) sum += row[k];
        return sum;
    }

    /// <summary>The share averaged over heads and over queries [queryStart, queryEnd).</summary>
    public static double MeanShare(CachedActivation pattern, int queryStart, int queryEnd, int start, int end)
    {
        int heads = pattern.Shape[0];
        double sum = 0;
        int count = 0;
        for (int h = 0; h < heads; h++)
            for (int q = queryStart; q < queryEnd; q++, count++)
                sum += Share(pattern, h, q, start, end);
        return count == 0 ? 0 : sum / count;
    }
}
