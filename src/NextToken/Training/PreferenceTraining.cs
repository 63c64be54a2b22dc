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

    private Gpt2Training For(int tokens)
    {
        if (!_byLength.TryGetValue(tokens, out Gpt2Training? training))
            _byLength[tokens] = training = new Gpt2Training(layout, 1, tokens, threads);
        return training;
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
        var weights = new float[n];
        for (int i = promptLength - 1; i < n; i++) weights[i] = 1;
        counted = n - (promptLength - 1);
        float meanNll = pass.Forward(parameters, sequence.AsSpan(0, n), sequence.AsSpan(1, n), weights);
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
            double refW = LogProb(reference, pair.Chosen, pair.PromptLength, out _, out _);
            double refL = LogProb(reference, pair.Rejected, pair.PromptLength, out _, out _);
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
                var dHidden = new float[sequence.Length * c];
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

    private double RewardOf(float[] trunk, float[] head, int[] sequence, out Gpt2Training pass)
    {
        int c = layout.Shape.NEmbd;
        pass = For(sequence.Length);
        pass.Forward(trunk, sequence, default, logitsOnly: true);
        ReadOnlySpan<float> hidden = pass.FinalHidden.Slice((sequence.Length - 1) * c, c);
        double r = 0;
        for (int i = 0; i < c; i++) r += (double)head[i] * hidden[i];
        return r;
    }

    private static double Sigmoid(double x) => 1 / (1 + Math.Exp(-x));

    /// <summary>log(1 + eˣ) = −log σ(−x), stable for large |x|.</summary>
    private static double Softplus(double x) => x > 0 ? x + Math.Log(1 + Math.Exp(-x)) : Math.Log(1 + Math.Exp(x));
}
