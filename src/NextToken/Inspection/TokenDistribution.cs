using System.Buffers;
using System.Numerics.Tensors;
using System.Runtime.Intrinsics;

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

    /// <summary>The distribution of a copy of <paramref name="logits"/>.</summary>
    public TokenDistribution(ReadOnlySpan<float> logits) : this(logits.ToArray())
    {
    }

    private TokenDistribution(float[] logits)
    {
        if (logits.Length == 0) throw new ArgumentException("empty logit row");
        _logits = logits;
        float max = TensorPrimitives.Max(logits);
        // Exponentials in float32 vectors, sums in float64: Z = Σ e^(x−max), and Σ e^(x−max)·(x−max) for the entropy.
        float[] shiftedBuffer = ArrayPool<float>.Shared.Rent(logits.Length), expBuffer = ArrayPool<float>.Shared.Rent(logits.Length);
        try
        {
            Span<float> shifted = shiftedBuffer.AsSpan(0, logits.Length), exp = expBuffer.AsSpan(0, logits.Length);
            TensorPrimitives.Subtract(logits, max, shifted);
            TensorPrimitives.Exp(shifted, exp);
            (double sum, double weighted) = SumAndWeightedSum(exp, shifted);
            LogSumExp = max + Math.Log(sum);
            // H = −Σ p log p = log Z − E[x − max]
            Entropy = Math.Log(sum) - weighted / sum;
        }
        finally
        {
            ArrayPool<float>.Shared.Return(shiftedBuffer);
            ArrayPool<float>.Shared.Return(expBuffer);
        }
    }

    /// <summary>(Σ e, Σ e·w) accumulated in float64, 8 values per vector step.</summary>
    private static (double Sum, double Weighted) SumAndWeightedSum(ReadOnlySpan<float> e, ReadOnlySpan<float> w)
    {
        int i = 0;
        double sum = 0, weighted = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            Vector256<double> sums = Vector256<double>.Zero, weightedSums = Vector256<double>.Zero;
            for (; i + 8 <= e.Length; i += 8)
            {
                (Vector256<double> eLow, Vector256<double> eHigh) = Vector256.Widen(Vector256.Create(e.Slice(i, 8)));
                (Vector256<double> wLow, Vector256<double> wHigh) = Vector256.Widen(Vector256.Create(w.Slice(i, 8)));
                sums += eLow + eHigh;
                weightedSums = Vector256.FusedMultiplyAdd(eLow, wLow, Vector256.FusedMultiplyAdd(eHigh, wHigh, weightedSums));
            }
            (sum, weighted) = (Vector256.Sum(sums), Vector256.Sum(weightedSums));
        }
        for (; i < e.Length; i++)
        {
            sum += e[i];
            weighted += (double)e[i] * w[i];
        }
        return (sum, weighted);
    }

    /// <summary>
    /// The distribution of <paramref name="logits"/> without copying them — for loops that look at
    /// every step's distribution and move on (a vocabulary's copy per token churns the large-object
    /// heap). The array must not change while the result is in use.
    /// </summary>
    public static TokenDistribution Over(float[] logits) => new(logits ?? throw new ArgumentNullException(nameof(logits)));

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

    /// <summary>The <paramref name="k"/> most likely tokens, best first (one pass keeping the best k in order, not a full sort).</summary>
    public RankedToken[] Top(int k)
    {
        k = Math.Clamp(k, 0, _logits.Length);
        if (k == 0) return [];
        if (k > 64) return Ranked(SortedIds().AsSpan(0, k));
        // best[0..count) sorted by logit descending, ties by lower id; most entries fail the first comparison.
        var best = new int[k];
        int count = 0;
        for (int i = 0; i < _logits.Length; i++)
        {
            float logit = _logits[i];
            if (count == k && logit <= _logits[best[k - 1]]) continue; // equal logits keep the lower id, which came first
            int at = count < k ? count++ : k - 1;
            while (at > 0 && _logits[best[at - 1]] < logit)
            {
                best[at] = best[at - 1];
                at--;
            }
            best[at] = i;
        }
        return Ranked(best.AsSpan(0, count));
    }

    /// <summary>Every id, most likely first (ties by lower id): for long lists, where inserting one by one would be quadratic.</summary>
    private int[] SortedIds()
    {
        int[] ids = new int[_logits.Length];
        for (int i = 0; i < ids.Length; i++) ids[i] = i;
        float[] logits = _logits;
        Array.Sort(ids, (a, b) => logits[b].CompareTo(logits[a]) is var order && order != 0 ? order : a.CompareTo(b));
        return ids;
    }

    private RankedToken[] Ranked(ReadOnlySpan<int> ids)
    {
        var result = new RankedToken[ids.Length];
        for (int r = 0; r < ids.Length; r++) result[r] = new RankedToken(r + 1, ids[r], _logits[ids[r]], Probability(ids[r]));
        return result;
    }
}
