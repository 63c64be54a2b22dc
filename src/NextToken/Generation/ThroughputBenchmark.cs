using System.Diagnostics;
using System.Numerics.Tensors;
using NextToken.Models;

namespace NextToken.Generation;

/// <summary>Measured speed of one model on this machine.</summary>
public sealed record ThroughputResult(
    int PromptTokens, int GeneratedTokens, int Threads,
    double PromptSeconds, double GenerationSeconds, long WeightBytesPerToken, double? DistributionSeconds = null, int Depth = 0)
{
    /// <summary>Generation speed when every step also computes the full next-token distribution (log-partition, entropy, top 10).</summary>
    public double? DistributionTokensPerSecond => DistributionSeconds is { } s ? GeneratedTokens / s : null;

    public double PromptTokensPerSecond => PromptTokens / PromptSeconds;
    public double GenerationTokensPerSecond => GeneratedTokens / GenerationSeconds;
    public double MillisecondsPerToken => GenerationSeconds * 1000 / GeneratedTokens;

    /// <summary>Weight bytes read per second while generating (each decode step reads every matrix once).</summary>
    public double GigabytesPerSecond => WeightBytesPerToken * GenerationTokensPerSecond / 1e9;

    /// <summary>With <c>profileSteps</c>: where a generation step's time went, per phase (milliseconds per step).</summary>
    public IReadOnlyList<Kernels.StepPhaseTimes>? Steps { get; init; }

    /// <summary>With <c>profileSteps</c>: where the prompt's one batched forward pass went, per phase (milliseconds).</summary>
    public IReadOnlyList<Kernels.StepPhaseTimes>? PromptSteps { get; init; }
}

/// <summary>
/// llama-bench's two measurements: a prompt of N tokens processed as one batch, then M tokens
/// generated one at a time through the KV cache. Token ids are drawn from a fixed seed, so runs
/// are comparable; a warm-up runs first so JIT compilation is not timed, and the KV cache is
/// touched before the clock starts. With a depth (llama-bench's <c>-d</c>), the context already
/// holds that many tokens when the clock starts, so both measurements include attention over it.
/// </summary>
public static class ThroughputBenchmark
{
    public static ThroughputResult Run(LanguageModel model, int promptTokens, int generatedTokens, int seed = 1234, bool withDistribution = false, int depth = 0, bool profileSteps = false)
    {
        if (promptTokens < 1 || generatedTokens < 1)
            throw new NextTokenException("bench needs at least 1 prompt token and 1 generated token");
        if (depth < 0 || (long)depth + promptTokens + generatedTokens > model.ContextLength)
            throw new NextTokenException($"bench: {depth} tokens of depth + {promptTokens} prompt + {generatedTokens} generated tokens exceed the context length {model.ContextLength}");
        var random = new Random(seed);
        int[] prompt = new int[promptTokens];
        for (int i = 0; i < prompt.Length; i++) prompt[i] = random.Next(model.VocabSize);
        int[] context = new int[depth];
        for (int i = 0; i < context.Length; i++) context[i] = random.Next(model.VocabSize);
        var logits = new float[model.VocabSize];

        // Generation feeds random token ids, as llama-bench's does: a step is the forward pass alone. (Picking
        // the most likely token cost the first run a compilation, 10–25 ms of its 64 steps, and later ones
        // ~15 µs a step; the ids do not change the work of a step.)
        int[] generated = new int[generatedTokens];
        for (int i = 0; i < generated.Length; i++) generated[i] = random.Next(model.VocabSize);
        // Warm-up as llama-bench's: one prompt and a few generated tokens, so every kernel the timed
        // runs use (the prompt path differs from the decode path) has been compiled.
        ModelState warmUp = model.CreateState();
        model.Forward(warmUp, prompt, logits);
        for (int i = 0; i < Math.Min(4, generatedTokens); i++) model.Forward(warmUp, generated.AsSpan(i, 1), logits);

        ModelState state = model.CreateState();
        state.Prefault(); // as llama-bench, whose context clears its cache before the timed runs
        if (depth > 0) model.Forward(state, context, logits); // untimed: what the timed work attends over
        // The prompt's profile costs a few dozen clock reads in a pass of milliseconds. The clock starts first so that the
        // profiled phases lie inside the timed span even when the thread is preempted between the two.
        var clock = Stopwatch.StartNew();
        if (profileSteps) Kernels.StepProfile.Start();
        model.Forward(state, prompt, logits);
        double promptSeconds = clock.Elapsed.TotalSeconds;
        IReadOnlyList<Kernels.StepPhaseTimes>? promptSteps = null;
        if (profileSteps)
        {
            Kernels.StepProfile.Stop();
            promptSteps = Kernels.StepProfile.Report(1);
        }

        clock.Restart();
        if (profileSteps) Kernels.StepProfile.Start();
        for (int i = 0; i < generatedTokens; i++) model.Forward(state, generated.AsSpan(i, 1), logits);
        double generationSeconds = clock.Elapsed.TotalSeconds;
        IReadOnlyList<Kernels.StepPhaseTimes>? steps = null;
        if (profileSteps)
        {
            Kernels.StepProfile.Stop();
            steps = Kernels.StepProfile.Report(generatedTokens);
        }
        double? distributionSeconds = null;
        if (withDistribution)
        {
            // The same generation again, with what the inspection features read at every step.
            state.Rewind(depth + promptTokens - 1);
            model.Forward(state, prompt.AsSpan(promptTokens - 1), logits); // the logits right after the prompt again
            clock.Restart();
            for (int i = 0; i < generatedTokens; i++)
            {
                var distribution = Inspection.TokenDistribution.Over(logits);
                int next = distribution.Top(10)[0].Id;
                model.Forward(state, [next], logits);
            }
            distributionSeconds = clock.Elapsed.TotalSeconds;
        }
        return new ThroughputResult(promptTokens, generatedTokens, model.Threads, promptSeconds, generationSeconds, model.WeightBytesPerToken, distributionSeconds, depth) { Steps = steps, PromptSteps = promptSteps };
    }

    /// <summary>
    /// Memory read bandwidth of this machine: each thread sums its share of a 512 MiB buffer with
    /// vector loads, three times; the best pass's bytes per second. A bound for weight-streaming decode.
    /// </summary>
    public static double MeasureReadBandwidth(int threads)
    {
        const int Length = 128 << 20; // floats: 512 MiB
        var buffer = new float[Length];
        for (int i = 0; i < Length; i += 1024) buffer[i] = 1; // touch every page
        double best = 0;
        for (int pass = 0; pass < 3; pass++)
        {
            var clock = Stopwatch.StartNew();
            Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, t =>
            {
                int start = (int)((long)Length * t / threads), end = (int)((long)Length * (t + 1) / threads);
                TensorPrimitives.Sum(buffer.AsSpan(start, end - start));
            });
            best = Math.Max(best, Length * 4.0 / clock.Elapsed.TotalSeconds);
        }
        return best / 1e9;
    }
}
