using System.Diagnostics;
using System.Numerics.Tensors;
using NextToken.Models;

namespace NextToken.Generation;

/// <summary>Measured speed of one model on this machine.</summary>
public sealed record ThroughputResult(
    int PromptTokens, int GeneratedTokens, int Threads,
    double PromptSeconds, double GenerationSeconds, long WeightBytesPerToken)
{
    public double PromptTokensPerSecond => PromptTokens / PromptSeconds;
    public double GenerationTokensPerSecond => GeneratedTokens / GenerationSeconds;
    public double MillisecondsPerToken => GenerationSeconds * 1000 / GeneratedTokens;

    /// <summary>Weight bytes read per second while generating (each decode step reads every matrix once).</summary>
    public double GigabytesPerSecond => WeightBytesPerToken * GenerationTokensPerSecond / 1e9;
}

/// <summary>
/// llama-bench's two measurements: a prompt of N tokens processed as one batch, then M tokens
/// generated one at a time through the KV cache. Token ids are drawn from a fixed seed, so runs
/// are comparable; a short warm-up runs first so JIT compilation is not timed.
/// </summary>
public static class ThroughputBenchmark
{
    public static ThroughputResult Run(LanguageModel model, int promptTokens, int generatedTokens, int seed = 1234)
    {
        if (promptTokens < 1 || generatedTokens < 1)
            throw new NextTokenException("bench needs at least 1 prompt token and 1 generated token");
        if (promptTokens + generatedTokens > model.ContextLength)
            throw new NextTokenException($"bench: {promptTokens} prompt + {generatedTokens} generated tokens exceed the context length {model.ContextLength}");
        var random = new Random(seed);
        int[] prompt = new int[promptTokens];
        for (int i = 0; i < prompt.Length; i++) prompt[i] = random.Next(model.VocabSize);
        var logits = new float[model.VocabSize];

        ModelState warmUp = model.CreateState();
        model.Forward(warmUp, prompt.AsSpan(0, Math.Min(8, promptTokens)), logits);
        model.Forward(warmUp, [0], logits);

        ModelState state = model.CreateState();
        var clock = Stopwatch.StartNew();
        model.Forward(state, prompt, logits);
        double promptSeconds = clock.Elapsed.TotalSeconds;

        clock.Restart();
        for (int i = 0; i < generatedTokens; i++)
        {
            int next = TensorPrimitives.IndexOfMax(logits);
            model.Forward(state, [next], logits);
        }
        double generationSeconds = clock.Elapsed.TotalSeconds;
        return new ThroughputResult(promptTokens, generatedTokens, model.Threads, promptSeconds, generationSeconds, model.WeightBytesPerToken);
    }
}
