using System.Numerics.Tensors;
using NextToken.Kernels;
using NextToken.Models;

namespace NextToken.Inspection;

/// <summary>
/// One window of a perplexity run: tokens <c>[Start, Start + Length)</c> of the text go through the
/// model from an empty context; the targets at window positions <c>[FirstScored, Length)</c> are
/// scored, each predicted from the logits of the position before it.
/// </summary>
public readonly record struct PerplexityWindow(int Start, int Length, int FirstScored)
{
    public int Scored => Length - FirstScored;
}

/// <summary>How a text is cut into windows and what each window scores.</summary>
/// <param name="Context">Window length in tokens.</param>
/// <param name="Stride">
/// Null: llama-perplexity's rule — windows of <see cref="Context"/> tokens side by side, the first half
/// of each only context, the second half scored. A stride S: sliding windows S tokens apart (Hugging
/// Face's strided perplexity), each scoring only its last S targets, so every token after the first is
/// scored once with at least Context − S tokens before it.
/// </param>
/// <param name="Bos">
/// A BOS id to put at the first position of every window (as llama-perplexity does when the
/// vocabulary adds BOS): the window's first token is context only, so nothing scored is lost.
/// </param>
public sealed record PerplexityOptions(int Context, int? Stride = null, int? Bos = null)
{
    /// <summary>The windows over <paramref name="tokenCount"/> tokens; a clear error when there are none.</summary>
    public IReadOnlyList<PerplexityWindow> Windows(int tokenCount)
    {
        if (Context < 2) throw new NextTokenException($"--ctx must be at least 2, not {Context}");
        var windows = new List<PerplexityWindow>();
        if (Stride is not { } stride)
        {
            if (tokenCount < Context)
                throw new NextTokenException($"the text has {tokenCount} tokens; perplexity with --ctx {Context} needs at least {Context} (one window): give more text or a smaller --ctx");
            for (int start = 0; start + Context <= tokenCount; start += Context)
                windows.Add(new PerplexityWindow(start, Context, Context / 2 + 1));
            return windows;
        }
        if (stride < 1 || stride >= Context)
            throw new NextTokenException($"--stride must be 1 to {Context - 1} (below --ctx, so every window keeps context), not {stride}");
        if (tokenCount < 2) throw new NextTokenException($"the text has {tokenCount} token(s); perplexity needs at least 2");
        int scoredUpTo = 1; // position 0 has nothing before it
        for (int start = 0; scoredUpTo < tokenCount; start += stride)
        {
            int end = Math.Min(start + Context, tokenCount);
            windows.Add(new PerplexityWindow(start, end - start, scoredUpTo - start));
            scoredUpTo = end;
        }
        return windows;
    }
}

/// <summary>What a perplexity run measured; the KL part only when a base model was compared.</summary>
public sealed record PerplexityResult(
    int Tokens,
    int Windows,
    int Scored,
    double MeanNll,
    double NllStandardError,
    KlSummary? Kl)
{
    public double Perplexity => Math.Exp(MeanNll);
}

/// <summary>
/// KL(base ‖ model) over every scored position's full distribution, as llama-perplexity's
/// --kl-divergence reports it.
/// </summary>
public sealed record KlSummary(
    double Mean,
    double StandardError,
    double Median,
    double P90,
    double P99,
    double Max,
    double TopOneAgreement,
    double BaseMeanNll)
{
    public double BasePerplexity => Math.Exp(BaseMeanNll);
}

/// <summary>
/// Perplexity of a model on a token sequence, and optionally how far its distributions are from a
/// base model's (a quantized file against its F32/F16 original, say).
/// </summary>
public static class Perplexity
{
    public static PerplexityResult Measure(LanguageModel model, ReadOnlySpan<int> tokens, PerplexityOptions options,
        LanguageModel? baseModel = null, IProgress<(int Done, int Total)>? progress = null, CancellationToken cancel = default)
    {
        if (options.Context > model.ContextLength)
            throw new NextTokenException($"--ctx {options.Context} exceeds the model's context length {model.ContextLength}");
        if (baseModel is not null)
        {
            if (baseModel.VocabSize != model.VocabSize)
                throw new NextTokenException($"{baseModel.FilePath}: the base model has {baseModel.VocabSize} vocabulary entries, {model.FilePath} has {model.VocabSize}; KL divergence needs the same vocabulary");
            if (options.Context > baseModel.ContextLength)
                throw new NextTokenException($"--ctx {options.Context} exceeds the base model's context length {baseModel.ContextLength}");
        }
        IReadOnlyList<PerplexityWindow> windows = options.Windows(tokens.Length);
        int vocab = model.VocabSize;
        int maxScored = windows.Max(w => w.Scored);
        var logits = new float[maxScored * vocab];
        float[]? baseLogits = baseModel is null ? null : new float[maxScored * vocab];
        var last = new float[vocab];
        var window = new int[options.Context];
        ModelState state = model.CreateState();
        ModelState? baseState = baseModel?.CreateState();
        var nll = new List<double>();
        var baseNll = new List<double>();
        var kl = new List<double>();
        int agree = 0;
        float[] scratch = new float[vocab], scratch2 = new float[vocab];
        for (int w = 0; w < windows.Count; w++)
        {
            cancel.ThrowIfCancellationRequested();
            PerplexityWindow win = windows[w];
            tokens.Slice(win.Start, win.Length).CopyTo(window);
            if (options.Bos is { } bos && win.FirstScored >= 2) window[0] = bos;
            ReadOnlySpan<int> input = window.AsSpan(0, win.Length);
            Run(model, state, input, win, logits, last);
            if (baseModel is not null) Run(baseModel, baseState!, input, win, baseLogits!, last);
            for (int i = 0; i < win.Scored; i++)
            {
                int target = input[win.FirstScored + i];
                ReadOnlySpan<float> row = logits.AsSpan(i * vocab, vocab);
                float lse = Ops.LogSumExp(row);
                nll.Add(lse - row[target]);
                if (baseLogits is null) continue;
                ReadOnlySpan<float> baseRow = baseLogits.AsSpan(i * vocab, vocab);
                float baseLse = Ops.LogSumExp(baseRow);
                baseNll.Add(baseLse - baseRow[target]);
                kl.Add(Divergence(baseRow, baseLse, row, lse, scratch, scratch2));
                if (TensorPrimitives.IndexOfMax(baseRow) == TensorPrimitives.IndexOfMax(row)) agree++;
            }
            progress?.Report((w + 1, windows.Count));
        }
        (double mean, double error) = MeanAndError(nll);
        KlSummary? summary = null;
        if (baseModel is not null)
        {
            (double klMean, double klError) = MeanAndError(kl);
            double[] sorted = kl.Order().ToArray();
            summary = new KlSummary(klMean, klError, Percentile(sorted, 0.5), Percentile(sorted, 0.9), Percentile(sorted, 0.99),
                sorted[^1], (double)agree / kl.Count, MeanAndError(baseNll).Mean);
        }
        return new PerplexityResult(tokens.Length, windows.Count, nll.Count, mean, error, summary);
    }

    /// <summary>
    /// Runs one window from an empty context; the rows for its scored targets land in
    /// <paramref name="logits"/> [Scored, vocab]. The positions before the first scored one's
    /// predictor run without logits, and the window's last token is never run (nothing follows it).
    /// </summary>
    private static void Run(LanguageModel model, ModelState state, ReadOnlySpan<int> input, PerplexityWindow window, float[] logits, float[] last)
    {
        state.Rewind(0);
        int predictorsFrom = window.FirstScored - 1;
        if (predictorsFrom > 0) model.Forward(state, input[..predictorsFrom], last);
        model.Forward(state, input[predictorsFrom..(window.Length - 1)], logits, LogitsFor.AllPositions);
    }

    /// <summary>KL(p ‖ q) = Σ p·(log p − log q) from two logit rows and their log-normalizers.</summary>
    private static double Divergence(ReadOnlySpan<float> p, float lseP, ReadOnlySpan<float> q, float lseQ, Span<float> logRatio, Span<float> probability)
    {
        TensorPrimitives.Subtract(p, q, logRatio);
        TensorPrimitives.Add(logRatio, lseQ - lseP, logRatio);
        TensorPrimitives.Subtract(p, lseP, probability);
        TensorPrimitives.Exp(probability, probability);
        TensorPrimitives.Multiply(probability, logRatio, probability);
        return Ops.SumInDouble(probability);
    }

    private static (double Mean, double Error) MeanAndError(List<double> values)
    {
        double mean = values.Average();
        if (values.Count < 2) return (mean, 0);
        double variance = values.Sum(v => (v - mean) * (v - mean)) / (values.Count - 1);
        return (mean, Math.Sqrt(variance / values.Count));
    }

    private static double Percentile(double[] sorted, double fraction) =>
        sorted[Math.Min(sorted.Length - 1, (int)Math.Floor(fraction * (sorted.Length - 1) + 0.5))];
}
