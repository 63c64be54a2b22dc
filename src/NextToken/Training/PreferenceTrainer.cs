using System.Diagnostics;
using System.Runtime.InteropServices;
using NextToken.Gguf;
using NextToken.Tensors;

namespace NextToken.Training;

/// <summary>
/// A reward model file: a complete gpt2 GGUF (the trunk; the engine runs it as a language model)
/// plus the scalar head as the extra F32 tensor <c>rm_head.weight</c> (GGUF dims [n_embd, 1], as
/// the fixtures store it) and the key <c>nexttoken.reward_model</c> = true. The reward of a sequence
/// is <c>rm_head · LN_f(x)</c> at its last token, no bias.
/// </summary>
public static class RewardModelFile
{
    public const string HeadTensor = "rm_head.weight", MarkerKey = "nexttoken.reward_model";

    public static void Save(string path, Gpt2Parameters layout, float[] trunk, float[] head, IReadOnlyDictionary<string, GgufValue> vocabulary, string name)
    {
        if (head.Length != layout.Shape.NEmbd) throw new ArgumentException($"reward head must have {layout.Shape.NEmbd} values");
        layout.Save(path, trunk, vocabulary, name, [(MarkerKey, GgufValue.Of(true))],
                    writer => writer.AddTensor(HeadTensor, GgmlType.F32, [layout.Shape.NEmbd, 1], s => s.Write(MemoryMarshal.AsBytes(head.AsSpan()))));
    }

    /// <summary>The head of a reward model file; an error naming the file when it has none.</summary>
    public static unsafe float[] LoadHead(GgufFile file, int nEmbd)
    {
        if (!file.TryGetTensorInfo(HeadTensor, out GgufTensorInfo info))
            throw new NextTokenException($"{file.FilePath}: no tensor '{HeadTensor}'; not a reward model (write one with 'nexttoken reward train')");
        if (!info.Dims.SequenceEqual([(long)nEmbd, 1L]))
            throw new NextTokenException($"{file.FilePath}: tensor '{HeadTensor}' has dims [{string.Join(", ", info.Dims)}], expected [{nEmbd}, 1]");
        TensorData data = file.GetTensor(HeadTensor);
        if (data.Type != GgmlType.F32) throw new NextTokenException($"{file.FilePath}: tensor '{HeadTensor}' is {data.Type}, expected F32");
        return new ReadOnlySpan<float>(data.Data, nEmbd).ToArray();
    }
}

/// <summary>What one preference step reports: mean loss, the share of pairs ranked right (r_c &gt; r_r, or a positive DPO margin).</summary>
public sealed record PreferenceStepReport(int Step, double Loss, double Accuracy, float LearningRate, double GradNorm, double Milliseconds);

/// <summary>
/// The loop of <c>reward train</c> and <c>dpo</c>: batches of BatchSize pairs in a seeded random
/// order (reshuffled every epoch), the loss of <see cref="PreferenceTraining"/>, clipping of the
/// global norm, AdamW with the learning-rate schedule. In reward mode the scalar head is trained too
/// (its own Adam moments, decayed like the other matrices); in DPO mode the reference stays frozen.
/// </summary>
public sealed class PreferenceTrainer
{
    private readonly PretrainOptions _o;
    private readonly PreferenceTraining _losses;
    private readonly AdamW _optimizer;
    private readonly IReadOnlyList<PreferencePair> _pairs;
    private readonly float[] _grads;
    private readonly float[]? _reference, _headGrad, _headM, _headV;
    private readonly float _beta;
    private readonly int[] _order;
    private readonly Random _random;
    private readonly List<PreferencePair> _batch = [];
    private int _next;

    private PreferenceTrainer(Gpt2Parameters layout, float[] parameters, IReadOnlyList<PreferencePair> pairs, PretrainOptions options)
    {
        if (pairs.Count == 0) throw new NextTokenException("no preference pairs to train on");
        foreach (PreferencePair pair in pairs)
            foreach (int id in pair.Chosen.Concat(pair.Rejected))
                if ((uint)id >= (uint)layout.Shape.NVocab) throw new NextTokenException($"token id {id} is beyond the model's vocabulary of {layout.Shape.NVocab}");
        _o = options;
        Parameters = parameters;
        _pairs = pairs;
        _losses = new PreferenceTraining(layout, options.Threads);
        _optimizer = new AdamW(layout, options.Beta1, options.Beta2, 1e-8f, options.WeightDecay);
        _grads = layout.NewBuffer();
        _order = [.. Enumerable.Range(0, pairs.Count)];
        _random = new Random(options.Seed);
        _random.Shuffle(_order);
    }

    /// <summary>DPO: <paramref name="policy"/> is trained, <paramref name="reference"/> (a separate buffer) stays as it is.</summary>
    public static PreferenceTrainer Dpo(Gpt2Parameters layout, float[] policy, float[] reference, float beta, IReadOnlyList<PreferencePair> pairs, PretrainOptions options)
    {
        if (ReferenceEquals(policy, reference)) throw new ArgumentException("the DPO reference must be a copy of the policy, not the same buffer");
        if (!(beta > 0) || !float.IsFinite(beta)) throw new NextTokenException($"--beta must be positive, not {beta}");
        return new PreferenceTrainer(layout, policy, pairs, options, reference, beta, null);
    }

    /// <summary>Reward model: trunk and <paramref name="head"/> [n_embd] are trained.</summary>
    public static PreferenceTrainer Reward(Gpt2Parameters layout, float[] trunk, float[] head, IReadOnlyList<PreferencePair> pairs, PretrainOptions options) =>
        new(layout, trunk, pairs, options, null, 0, head);

    private PreferenceTrainer(Gpt2Parameters layout, float[] parameters, IReadOnlyList<PreferencePair> pairs, PretrainOptions options, float[]? reference, float beta, float[]? head)
        : this(layout, parameters, pairs, options)
    {
        _reference = reference;
        _beta = beta;
        Head = head;
        if (head != null)
        {
            if (head.Length != layout.Shape.NEmbd) throw new ArgumentException($"reward head must have {layout.Shape.NEmbd} values");
            _headGrad = new float[head.Length]; _headM = new float[head.Length]; _headV = new float[head.Length];
        }
    }

    public float[] Parameters { get; }
    public float[]? Head { get; }
    public PreferenceTraining Losses => _losses;
    public int Step { get; private set; }

    public PreferenceStepReport TrainStep()
    {
        var clock = Stopwatch.StartNew();
        _batch.Clear();
        for (int i = 0; i < _o.BatchSize; i++)
        {
            if (_next == _order.Length)
            {
                _random.Shuffle(_order);
                _next = 0;
            }
            _batch.Add(_pairs[_order[_next++]]);
        }
        Array.Clear(_grads);
        double loss, accuracy;
        if (Head is null)
        {
            var details = new List<DpoPairResult>();
            loss = _losses.Dpo(Parameters, _reference!, _batch, _beta, _grads, details);
            accuracy = details.Count(d => d.BetaTimesMargin > 0) / (double)details.Count;
        }
        else
        {
            Array.Clear(_headGrad!);
            var details = new List<(double Chosen, double Rejected, double Loss)>();
            loss = _losses.Reward(Parameters, Head, _batch, _grads, _headGrad!, details);
            accuracy = details.Count(d => d.Chosen > d.Rejected) / (double)details.Count;
        }
        if (!double.IsFinite(loss)) throw new NextTokenException($"the loss is {loss} at step {Step}; stopping (try a lower learning rate)");

        // Clip trunk and head together, by their joint norm (torch's clip_grad_norm_ over all parameters).
        double headNorm = _headGrad is null ? 0 : AdamW.GlobalNorm(_headGrad);
        double trunkNorm = AdamW.GlobalNorm(_grads), norm = Math.Sqrt(trunkNorm * trunkNorm + headNorm * headNorm);
        if (!double.IsFinite(norm)) throw new NextTokenException($"the gradient norm is {norm} at step {Step}; stopping");
        if (_o.GradClip > 0 && norm > _o.GradClip)
        {
            float factor = (float)(_o.GradClip / (norm + 1e-6));
            System.Numerics.Tensors.TensorPrimitives.Multiply(_grads, factor, _grads);
            if (_headGrad != null) System.Numerics.Tensors.TensorPrimitives.Multiply(_headGrad, factor, _headGrad);
        }
        float lr = _o.LearningRateAt(Step);
        _optimizer.Update(Parameters, _grads, lr);
        if (Head != null) UpdateHead(lr);
        Step++;
        return new PreferenceStepReport(Step - 1, loss, accuracy, lr, norm, clock.Elapsed.TotalMilliseconds);
    }

    /// <summary>AdamW on the head, the same rule as <see cref="AdamW.Update"/> (the optimizer has counted this step already).</summary>
    private void UpdateHead(float lr)
    {
        int t = _optimizer.Step;
        float c1 = (float)(1 - Math.Pow(_o.Beta1, t)), c2 = (float)(1 - Math.Pow(_o.Beta2, t)), decay = 1 - lr * _o.WeightDecay;
        float[] p = Head!, g = _headGrad!, m = _headM!, v = _headV!;
        for (int i = 0; i < p.Length; i++)
        {
            m[i] = _o.Beta1 * m[i] + (1 - _o.Beta1) * g[i];
            v[i] = _o.Beta2 * v[i] + (1 - _o.Beta2) * g[i] * g[i];
            p[i] = p[i] * decay - lr * (m[i] / c1) / (MathF.Sqrt(v[i] / c2) + 1e-8f);
        }
    }

    /// <summary>TRL's initialization of a score head: N(0, 1/(n_embd + 1)), seeded.</summary>
    public static float[] InitialHead(int nEmbd, int seed)
    {
        var random = new Random(seed);
        var head = new float[nEmbd];
        double std = 1 / Math.Sqrt(nEmbd + 1);
        for (int i = 0; i < nEmbd; i++)
        {
            double u1 = 1.0 - random.NextDouble(), u2 = random.NextDouble();
            head[i] = (float)(std * Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2));
        }
        return head;
    }
}
