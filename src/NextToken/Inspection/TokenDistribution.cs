using System.Numerics.Tensors;

namespace NextToken.Inspection;

/// <summary>One vocabulary entry's place in a next-token distribution.</summary>
public readonly record struct RankedToken(int Rank, int Id, float Logit, double Probability);

/// <summary>
/// The softmax of one logit row over the whole vocabulary: log-partition, entropy, and the
/// ranked top entries with how much probability the rest of the list holds.
/// </summary>
public sealed class TokenDistribution
{
    private readonly float[] _logits;

    public TokenDistribution(ReadOnlySpan<float> logits)
    {
        if (logits.IsEmpty) throw new ArgumentException("empty logit row");
        _logits = logits.ToArray();
        float max = TensorPrimitives.Max(logits);
        double sum = 0, weighted = 0;
        foreach (float x in logits)
        {
            double e = Math.Exp(x - max);
            sum += e;
            weighted += e * (x - max);
        }
        LogSumExp = max + Math.Log(sum);
        // H = −Σ p log p = log Z − E[x]
        Entropy = Math.Log(sum) - weighted / sum;
    }

    public int VocabSize => _logits.Length;
    public double LogSumExp { get; }

    /// <summary>Shannon entropy in nats.</summary>
    public double Entropy { get; }

    public ReadOnlySpan<float> Logits => _logits;

    public double Probability(int id) => Math.Exp(_logits[id] - LogSumExp);

    /// <summary>Rank of a token (1 = most likely); ties go to the lower id.</summary>
    public int RankOf(int id)
    {
        float logit = _logits[id];
        int rank = 1;
        for (int i = 0; i < _logits.Length; i++)
            if (_logits[i] > logit || (_logits[i] == logit && i < id)) rank++;
        return rank;
    }

    /// <summary>The <paramref name="k"/> most likely tokens, best first (a bounded heap, not a full sort).</summary>
    public RankedToken[] Top(int k)
    {
        k = Math.Clamp(k, 0, _logits.Length);
        var heap = new PriorityQueue<int, (float Logit, int NegativeId)>(k + 1);
        for (int i = 0; i < _logits.Length; i++)
        {
            heap.Enqueue(i, (_logits[i], -i));
            if (heap.Count > k) heap.Dequeue();
        }
        var result = new RankedToken[heap.Count];
        for (int r = result.Length - 1; r >= 0; r--)
        {
            int id = heap.Dequeue();
            result[r] = new RankedToken(r + 1, id, _logits[id], Probability(id));
        }
        return result;
    }
}
