using System.Diagnostics;

namespace NextToken.Training;

/// <summary>
/// Supervised fine-tuning: each batch row is one chat (cut to BlockSize + 1 tokens, padded after
/// its end), the loss is Σ mask·CE / Σ mask over the batch with the mask on assistant tokens
/// (padding and the other turns carry no loss; attention is causal, so padding after a chat does not
/// change it). Chats are visited in a seeded random order, reshuffled every epoch. Same optimizer,
/// schedule and clipping as <see cref="Pretrainer"/>.
/// </summary>
public sealed class SftTrainer
{
    private readonly PretrainOptions _o;
    private readonly Gpt2Training _training;
    private readonly AdamW _optimizer;
    private readonly List<SftExample> _train, _val;
    private readonly float[] _grads, _weights;
    private readonly int[] _inputs, _targets, _order;
    private readonly Random _random;
    private int _next;

    public SftTrainer(Gpt2Parameters layout, float[] parameters, IReadOnlyList<SftExample> train, IReadOnlyList<SftExample>? val, PretrainOptions options)
    {
        _o = options;
        Parameters = parameters;
        int t = options.BlockSize;
        // A chat whose assistant tokens all lie beyond the block has nothing to learn from.
        bool Usable(SftExample e) => e.Assistant.AsSpan(1, Math.Min(t, e.Tokens.Length - 1)).Contains(true);
        _train = [.. train.Where(Usable)];
        Dropped = train.Count - _train.Count;
        if (_train.Count == 0) throw new NextTokenException($"no chat has an assistant token within the first {t + 1} tokens (block size {t})");
        _val = [.. (val ?? []).Where(Usable)];
        foreach (SftExample e in _train.Concat(_val))
            foreach (int id in e.Tokens)
                if ((uint)id >= (uint)layout.Shape.NVocab) throw new NextTokenException($"token id {id} is beyond the model's vocabulary of {layout.Shape.NVocab}");
        if (options.GradAccumulation < 1) throw new NextTokenException($"gradient accumulation {options.GradAccumulation} must be at least 1");
        _training = new Gpt2Training(layout, options.BatchSize, t, options.Threads);
        _optimizer = new AdamW(layout, options.Beta1, options.Beta2, 1e-8f, options.WeightDecay);
        _grads = layout.NewBuffer();
        int n = options.BatchSize * t;
        _inputs = new int[n]; _targets = new int[n]; _weights = new float[n];
        _order = [.. Enumerable.Range(0, _train.Count)];
        _random = new Random(options.Seed);
        _random.Shuffle(_order);
    }

    public float[] Parameters { get; }
    /// <summary>Training chats left out because no assistant token fits the block.</summary>
    public int Dropped { get; }
    public int TrainCount => _train.Count;
    public int ValCount => _val.Count;
    public int Step { get; private set; }

    /// <summary>Fills row <paramref name="row"/> with <paramref name="e"/>: inputs, next-token targets, mask of assistant targets.</summary>
    private void Fill(int row, SftExample e)
    {
        int t = _o.BlockSize, start = row * t, length = Math.Min(t, e.Tokens.Length - 1);
        for (int i = 0; i < t; i++)
        {
            bool real = i < length;
            _inputs[start + i] = real ? e.Tokens[i] : 0;
            _targets[start + i] = real ? e.Tokens[i + 1] : 0;
            _weights[start + i] = real && e.Assistant[i + 1] ? 1f : 0f;
        }
    }

    public StepReport TrainStep()
    {
        var total = Stopwatch.StartNew();
        double forwardMs = 0, backwardMs = 0, lossSum = 0;
        int assistantTokens = 0;
        Array.Clear(_grads);
        for (int micro = 0; micro < _o.GradAccumulation; micro++)
        {
            for (int row = 0; row < _o.BatchSize; row++)
            {
                if (_next == _order.Length)
                {
                    _random.Shuffle(_order);
                    _next = 0;
                }
                Fill(row, _train[_order[_next++]]);
            }
            long t0 = Stopwatch.GetTimestamp();
            float loss = _training.Forward(Parameters, _inputs, _targets, _weights);
            long t1 = Stopwatch.GetTimestamp();
            if (!float.IsFinite(loss)) throw new NextTokenException($"the loss is {loss} at step {Step} (micro-batch {micro}); stopping (try a lower learning rate)");
            _training.Backward(_grads, 1f / _o.GradAccumulation);
            forwardMs += Stopwatch.GetElapsedTime(t0, t1).TotalMilliseconds;
            backwardMs += Stopwatch.GetElapsedTime(t1).TotalMilliseconds;
            lossSum += loss;
            foreach (float w in _weights) if (w != 0) assistantTokens++;
        }
        long o0 = Stopwatch.GetTimestamp();
        double norm = AdamW.Clip(_grads, _o.GradClip);
        if (!double.IsFinite(norm)) throw new NextTokenException($"the gradient norm is {norm} at step {Step}; stopping");
        float lr = _o.LearningRateAt(Step);
        _optimizer.Update(Parameters, _grads, lr);
        double optimizerMs = Stopwatch.GetElapsedTime(o0).TotalMilliseconds;
        double ms = total.Elapsed.TotalMilliseconds;
        var report = new StepReport(Step, (float)(lossSum / _o.GradAccumulation), lr, norm, ms, forwardMs, backwardMs, optimizerMs,
                                    assistantTokens / (ms / 1000), null, null);
        Step++;
        return report;
    }

    /// <summary>Masked loss over the held-out chats (at most EvalIters batches, in file order), or null without any.</summary>
    public float? Evaluate()
    {
        if (_val.Count == 0) return null;
        double sum = 0;
        int batches = 0;
        for (int start = 0; start < _val.Count && batches < _o.EvalIters; start += _o.BatchSize, batches++)
        {
            // A short last batch repeats chats from the start, so every row is a real chat.
            for (int row = 0; row < _o.BatchSize; row++) Fill(row, _val[(start + row) % _val.Count]);
            sum += _training.Forward(Parameters, _inputs, _targets, _weights);
        }
        return (float)(sum / batches);
    }
}
