using System.Runtime.CompilerServices;

namespace NextToken.Training;

/// <summary>A preference pair: one prompt, a preferred and a rejected continuation (whole token lists, prompt included).</summary>
public sealed record PreferencePair(int PromptLength, int[] Chosen, int[] Rejected);

/// <summary>Per-pair numbers of a DPO loss.</summary>
public sealed record DpoPairResult(double PolicyChosen, double PolicyRejected, double ReferenceChosen, double ReferenceRejected, double BetaTimesMargin, double Loss);

/// <summary>
/// Losses beyond next-token prediction, on the same forward/backward passes: DPO (Rafailov et al.)
/// and a pairwise (Bradley–Terry) reward model on the final hidden state. Each sequence runs on its
/// own, without padding; a pass buffer is kept per sequence length.
/// </summary>
public sealed class PreferenceTraining(Gpt2Parameters layout, int threads)
{
    private readonly Dictionary<int, Gpt2Training> _byLength = [];

    /// <summary>
    /// The pass for sequences of <paramref name="tokens"/> positions: lengths are rounded up to a multiple of
    /// 16 (at most the context) and padded after the end, so a data set of many lengths keeps a few
    /// buffers, not one per length. Causal attention and row-wise kernels leave the real positions
    /// unchanged by padding after them.
    /// </summary>
    private Gpt2Training For(int tokens)
    {
        int padded = Math.Min(layout.Shape.NCtx, (tokens + 15) / 16 * 16);
        if (tokens > padded) padded = tokens; // above the context: Gpt2Training names the limit
        if (!_byLength.TryGetValue(padded, out Gpt2Training? training))
            _byLength[padded] = training = new Gpt2Training(layout, 1, padded, threads);
        return training;
    }

    private readonly Dictionary<(float[] Reference, PreferencePair Pair), (double Chosen, double Rejected)> _referenceLogProbs = new(ReferenceKeyComparer.Instance);

    private sealed class ReferenceKeyComparer : IEqualityComparer<(float[] Reference, PreferencePair Pair)>
    {
        public static readonly ReferenceKeyComparer Instance = new();
        public bool Equals((float[] Reference, PreferencePair Pair) x, (float[] Reference, PreferencePair Pair) y) =>
            ReferenceEquals(x.Reference, y.Reference) && ReferenceEquals(x.Pair, y.Pair);
        public int GetHashCode((float[] Reference, PreferencePair Pair) key) =>
            HashCode.Combine(RuntimeHelpers.GetHashCode(key.Reference), RuntimeHelpers.GetHashCode(key.Pair));
    }

    /// <summary>
    /// Forward over <paramref name="sequence"/>: log p(completion | prompt) = Σ_{t ≥ promptLength} log softmax(logits[t−1])[tokens[t]]
    /// (a sum). The pass stays ready for <see cref="BackwardLogProb"/>.
    /// </summary>
    public double LogProb(float[] parameters, int[] sequence, int promptLength, out Gpt2Training pass, out int counted)
    {
        if (promptLength < 1 || promptLength >= sequence.Length)
            throw new NextTokenException($"prompt length {promptLength} leaves no completion in a sequence of {sequence.Length} tokens");
        int n = sequence.Length - 1;
        pass = For(n);
        int padded = pass.BlockSize;
        int[] inputs = new int[padded], targets = new int[padded];
        var weights = new float[padded];
        sequence.AsSpan(0, n).CopyTo(inputs);
        sequence.AsSpan(1, n).CopyTo(targets);
        for (int i = promptLength - 1; i < n; i++) weights[i] = 1;
        counted = n - (promptLength - 1);
        float meanNll = pass.Forward(parameters, inputs, targets, weights);
        return -(double)meanNll * counted;
    }

    /// <summary>
    /// DPO loss, mean over the pairs of −log σ(β·((π_w − ref_w) − (π_l − ref_l))), and its gradient
    /// with respect to the policy added to <paramref name="grads"/>.
    /// </summary>
    public double Dpo(float[] policy, float[] reference, IReadOnlyList<PreferencePair> pairs, float beta, float[] grads, List<DpoPairResult>? details = null)
    {
        double total = 0;
        int p = pairs.Count;
        foreach (PreferencePair pair in pairs)
        {
            // The reference is frozen: its log-probabilities are computed once per pair and reference buffer.
            if (!_referenceLogProbs.TryGetValue((reference, pair), out var cached))
                _referenceLogProbs[(reference, pair)] = cached = (LogProb(reference, pair.Chosen, pair.PromptLength, out _, out _),
                                                                  LogProb(reference, pair.Rejected, pair.PromptLength, out _, out _));
            var (refW, refL) = cached;
            double polW = LogProb(policy, pair.Chosen, pair.PromptLength, out _, out _);
            double polL = LogProb(policy, pair.Rejected, pair.PromptLength, out _, out _);
            double z = beta * ((polW - refW) - (polL - refL));
            double loss = Softplus(-z);
            total += loss;
            details?.Add(new DpoPairResult(polW, polL, refW, refL, z, loss));
            // dL/dπ_w = −β σ(−z)/P; π = −(mean NLL)·count, and Backward(scale) differentiates scale·mean NLL.
            // Each backward needs its own forward just before it: sequences of equal length share one pass buffer.
            double g = beta * Sigmoid(-z) / p;
            LogProb(policy, pair.Chosen, pair.PromptLength, out Gpt2Training passW, out int countW);
            passW.Backward(grads, (float)(g * countW));
            LogProb(policy, pair.Rejected, pair.PromptLength, out Gpt2Training passL, out int countL);
            passL.Backward(grads, (float)(-g * countL));
        }
        return total / p;
    }

    /// <summary>
    /// Reward-model loss, mean over the pairs of −log σ(r_c − r_r) with r = head · LN_f(x)[last position];
    /// trunk gradients go to <paramref name="grads"/>, the head's to <paramref name="headGrad"/>.
    /// </summary>
    public double Reward(float[] trunk, float[] head, IReadOnlyList<PreferencePair> pairs, float[] grads, float[] headGrad, List<(double Chosen, double Rejected, double Loss)>? details = null)
    {
        int c = layout.Shape.NEmbd;
        if (head.Length != c || headGrad.Length != c) throw new ArgumentException($"reward head must have {c} values");
        double total = 0;
        int p = pairs.Count;
        foreach (PreferencePair pair in pairs)
        {
            double rc = RewardOf(trunk, head, pair.Chosen, out _), rr = RewardOf(trunk, head, pair.Rejected, out _);
            double margin = rc - rr;
            double loss = Softplus(-margin);
            total += loss;
            details?.Add((rc, rr, loss));
            double g = -Sigmoid(-margin) / p; // dL/dr_c; dL/dr_r = −g
            foreach (var (sequence, dr) in new[] { (pair.Chosen, g), (pair.Rejected, -g) })
            {
                RewardOf(trunk, head, sequence, out Gpt2Training pass);
                int last = sequence.Length - 1;
                ReadOnlySpan<float> hidden = pass.FinalHidden.Slice(last * c, c);
                var dHidden = new float[pass.BlockSize * c];
                for (int i = 0; i < c; i++)
                {
                    dHidden[last * c + i] = (float)(dr * head[i]);
                    headGrad[i] += (float)(dr * hidden[i]);
                }
                pass.BackwardFromFinalHidden(grads, dHidden);
            }
        }
        return total / p;
    }

    /// <summary>r = head · LN_f(x) at the last token of <paramref name="sequence"/>.</summary>
    public double Score(float[] trunk, float[] head, int[] sequence) => RewardOf(trunk, head, sequence, out _);

    private double RewardOf(float[] trunk, float[] head, int[] sequence, out Gpt2Training pass)
    {
        int c = layout.Shape.NEmbd;
        pass = For(sequence.Length);
        var inputs = new int[pass.BlockSize];
        sequence.CopyTo(inputs, 0);
        pass.Forward(trunk, inputs, default, logitsOnly: true);
        ReadOnlySpan<float> hidden = pass.FinalHidden.Slice((sequence.Length - 1) * c, c);
        double r = 0;
        for (int i = 0; i < c; i++) r += (double)head[i] * hidden[i];
        return r;
    }

    private static double Sigmoid(double x) => 1 / (1 + Math.Exp(-x));

    /// <summary>log(1 + eˣ) = −log σ(−x), stable for large |x|.</summary>
    private static double Softplus(double x) => x > 0 ? x + Math.Log(1 + Math.Exp(-x)) : Math.Log(1 + Math.Exp(x));
}
