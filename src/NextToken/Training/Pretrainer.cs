using System.Diagnostics;
using System.Runtime.InteropServices;
using NextToken.Gguf;
using NextToken.Tensors;

namespace NextToken.Training;

/// <summary>Hyperparameters of a pretraining run (nanoGPT's names and rules).</summary>
public sealed record PretrainOptions
{
    public int BatchSize { get; init; } = 12;
    public int BlockSize { get; init; } = 64;
    public int MaxIters { get; init; } = 100;
    public float LearningRate { get; init; } = 1e-3f;
    /// <summary>Floor of the cosine schedule (nanoGPT's min_lr); default lr/10.</summary>
    public float? MinLearningRate { get; init; }
    public bool Cosine { get; init; }
    public int WarmupIters { get; init; }
    /// <summary>Where the cosine reaches its floor (nanoGPT's lr_decay_iters); default MaxIters.</summary>
    public int? DecayIters { get; init; }
    public float WeightDecay { get; init; } = 0.1f;
    public float Beta1 { get; init; } = 0.9f;
    public float Beta2 { get; init; } = 0.95f;
    /// <summary>Global-norm clipping threshold; 0 turns it off.</summary>
    public float GradClip { get; init; } = 1f;
    public int GradAccumulation { get; init; } = 1;
    /// <summary>Evaluate every this many steps (and at the last); 0 turns evaluation off.</summary>
    public int EvalInterval { get; init; }
    public int EvalIters { get; init; } = 20;
    public bool Sequential { get; init; }
    public int Seed { get; init; } = 1337;
    public int Threads { get; init; } = Environment.ProcessorCount;
    /// <summary>Save a checkpoint every this many steps (0: only at the end).</summary>
    public int CheckpointInterval { get; init; }

    /// <summary>nanoGPT's get_lr: linear warmup over (it+1)/(warmup+1), then constant or cosine down to the floor.</summary>
    public float LearningRateAt(int step)
    {
        if (step < WarmupIters) return LearningRate * (step + 1) / (WarmupIters + 1);
        if (!Cosine) return LearningRate;
        float min = MinLearningRate ?? LearningRate / 10;
        int decay = DecayIters ?? MaxIters;
        if (step > decay) return min;
        double ratio = decay == WarmupIters ? 1 : (double)(step - WarmupIters) / (decay - WarmupIters);
        double coefficient = 0.5 * (1 + Math.Cos(Math.PI * ratio));
        return (float)(min + coefficient * (LearningRate - min));
    }
}

/// <summary>What one optimizer step reports.</summary>
public sealed record StepReport(int Step, float Loss, float LearningRate, double GradNorm, double Milliseconds,
                                double ForwardMs, double BackwardMs, double OptimizerMs, double TokensPerSecond,
                                float? TrainEvalLoss, float? ValLoss);

/// <summary>
/// The training loop: batches from a token stream, forward, backward (with gradient accumulation),
/// clipping, AdamW with the learning-rate schedule, periodic evaluation, checkpoints. Deterministic
/// for a given seed and thread count (the kernels are deterministic for any thread count).
/// </summary>
public sealed class Pretrainer
{
    private readonly Gpt2Parameters _layout;
    private readonly PretrainOptions _o;
    private readonly Gpt2Training _training;
    private readonly AdamW _optimizer;
    private readonly BatchLoader _train;
    private readonly int[]? _valTokens, _trainTokens;
    private readonly float[] _grads;
    private readonly int[] _inputs, _targets;

    public Pretrainer(Gpt2Parameters layout, float[] parameters, int[] trainTokens, int[]? valTokens, PretrainOptions options, string dataName)
    {
        _layout = layout;
        _o = options;
        Parameters = parameters;
        CheckIds(trainTokens, layout.Shape.NVocab, dataName);
        if (valTokens != null)
        {
            CheckIds(valTokens, layout.Shape.NVocab, dataName + " (validation)");
            if (valTokens.Length < options.BlockSize + 1)
                throw new NextTokenException($"{dataName} (validation): {valTokens.Length} tokens, fewer than the {options.BlockSize + 1} an evaluation batch needs at block size {options.BlockSize}");
        }
        if (options.GradAccumulation < 1) throw new NextTokenException($"gradient accumulation {options.GradAccumulation} must be at least 1");
        _training = new Gpt2Training(layout, options.BatchSize, options.BlockSize, options.Threads);
        _optimizer = new AdamW(layout, options.Beta1, options.Beta2, 1e-8f, options.WeightDecay);
        _train = new BatchLoader(trainTokens, options.BatchSize, options.BlockSize, options.Sequential, options.Seed, dataName);
        _trainTokens = trainTokens;
        _valTokens = valTokens;
        _grads = layout.NewBuffer();
        _inputs = new int[options.BatchSize * options.BlockSize];
        _targets = new int[options.BatchSize * options.BlockSize];
    }

    public float[] Parameters { get; }
    public AdamW Optimizer => _optimizer;
    /// <summary>Steps done (the next step's number).</summary>
    public int Step { get; private set; }

    private static void CheckIds(int[] tokens, int vocab, string what)
    {
        for (int i = 0; i < tokens.Length; i++)
            if ((uint)tokens[i] >= (uint)vocab)
                throw new NextTokenException($"{what}: token id {tokens[i]} at index {i} is beyond the model's vocabulary of {vocab}");
    }

    /// <summary>One optimizer step (over GradAccumulation batches). Throws when the loss is not finite.</summary>
    public StepReport TrainStep()
    {
        var total = Stopwatch.StartNew();
        double forwardMs = 0, backwardMs = 0;
        Array.Clear(_grads);
        double lossSum = 0;
        for (int micro = 0; micro < _o.GradAccumulation; micro++)
        {
            _train.Next(_inputs, _targets);
            long t0 = Stopwatch.GetTimestamp();
            float loss = _training.Forward(Parameters, _inputs, _targets);
            long t1 = Stopwatch.GetTimestamp();
            if (!float.IsFinite(loss))
                throw new NextTokenException($"the loss is {loss} at step {Step} (micro-batch {micro}); stopping (try a lower learning rate)");
            _training.Backward(_grads, 1f / _o.GradAccumulation);
            long t2 = Stopwatch.GetTimestamp();
            forwardMs += Stopwatch.GetElapsedTime(t0, t1).TotalMilliseconds;
            backwardMs += Stopwatch.GetElapsedTime(t1, t2).TotalMilliseconds;
            lossSum += loss;
        }
        long o0 = Stopwatch.GetTimestamp();
        double norm = AdamW.Clip(_grads, _o.GradClip);
        if (!double.IsFinite(norm)) throw new NextTokenException($"the gradient norm is {norm} at step {Step}; stopping");
        float lr = _o.LearningRateAt(Step);
        _optimizer.Update(Parameters, _grads, lr);
        double optimizerMs = Stopwatch.GetElapsedTime(o0).TotalMilliseconds;
        total.Stop();
        double ms = total.Elapsed.TotalMilliseconds;
        var report = new StepReport(Step, (float)(lossSum / _o.GradAccumulation), lr, norm, ms, forwardMs, backwardMs, optimizerMs,
                                    _o.GradAccumulation * _inputs.Length / (ms / 1000), null, null);
        Step++;
        return report;
    }

    /// <summary>Mean loss over EvalIters random batches of each split (a fixed seed per evaluation, so runs compare).</summary>
    public (float Train, float? Val) Evaluate()
    {
        float Mean(int[] tokens, int seed)
        {
            var loader = new BatchLoader(tokens, _o.BatchSize, _o.BlockSize, sequential: false, seed, "evaluation data");
            double sum = 0;
            for (int i = 0; i < _o.EvalIters; i++)
            {
                loader.Next(_inputs, _targets);
                sum += _training.Forward(Parameters, _inputs, _targets);
            }
            return (float)(sum / _o.EvalIters);
        }
        return (Mean(_trainTokens!, _o.Seed + 1), _valTokens != null ? Mean(_valTokens, _o.Seed + 2) : null);
    }

    // ---- checkpoints: the model GGUF plus Adam moments and the loop position ----

    private const string MomentPrefix = "adamw.m.", VariancePrefix = "adamw.v.";

    public void SaveCheckpoint(string path, IReadOnlyDictionary<string, GgufValue> vocabulary)
    {
        var extra = new List<(string, GgufValue)>
        {
            ("training.step", GgufValue.Of(Step)),
            ("training.data_position", GgufValue.Of(checked((int)_train.Position))),
            ("training.seed", GgufValue.Of(_o.Seed)),
        };
        string temporary = path + ".tmp";
        _layout.Save(temporary, Parameters, vocabulary, "nexttoken checkpoint", extra, writer =>
        {
            foreach (ParameterTensor t in _layout.Tensors)
            {
                writer.AddTensor(MomentPrefix + t.Name, GgmlType.F32, t.Dims, s => s.Write(MemoryMarshal.AsBytes(_optimizer.M.AsSpan(t.Offset, t.Length))));
                writer.AddTensor(VariancePrefix + t.Name, GgmlType.F32, t.Dims, s => s.Write(MemoryMarshal.AsBytes(_optimizer.V.AsSpan(t.Offset, t.Length))));
            }
        });
        File.Move(temporary, path, overwrite: true);
    }

    /// <summary>Restores parameters (already loaded by the caller from the same file), moments, step and data position.</summary>
    public unsafe void Resume(GgufFile checkpoint)
    {
        if (!checkpoint.ContainsKey("training.step"))
            throw new NextTokenException($"{checkpoint.FilePath}: not a training checkpoint (no 'training.step')");
        foreach (ParameterTensor t in _layout.Tensors)
        {
            new ReadOnlySpan<float>(checkpoint.GetTensor(MomentPrefix + t.Name, t.Dims).Data, t.Length).CopyTo(_optimizer.M.AsSpan(t.Offset, t.Length));
            new ReadOnlySpan<float>(checkpoint.GetTensor(VariancePrefix + t.Name, t.Dims).Data, t.Length).CopyTo(_optimizer.V.AsSpan(t.Offset, t.Length));
        }
        Step = (int)checkpoint.GetInteger("training.step");
        _optimizer.Step = Step;
        _train.Position = checkpoint.GetInteger("training.data_position");
        // The random loader's state is not saved: replay its draws so a resumed run continues the same batch sequence.
        if (!_o.Sequential)
            for (long i = 0; i < (long)Step * _o.GradAccumulation; i++) _train.Next(_inputs, _targets);
    }
}
