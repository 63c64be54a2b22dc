using NextToken.Models;
using NextToken.Sampling;
using Xunit.Abstractions;

namespace NextToken.Tests;

/// <summary>
/// Decoding allocates nothing per token once a state exists: a decode step, a batched step over
/// several contexts and a sampling step (every stage on) take their buffers from the state and the
/// chain, for every family and weight type. Measured on the calling thread with one thread, where
/// every kernel runs inline, and with two (the caller's share), in windows of 16 steps.
/// </summary>
public class DecodeAllocationTests(ITestOutputHelper output)
{
    private const int Steps = 16, Windows = 4;
    private const int MaxOneOffBytes = 64 << 10;

    [Theory]
    [InlineData("gpt2-tiny.f32")]
    [InlineData("gpt2-tiny.f16")]
    [InlineData("gpt2-tiny.q8_0")]
    [InlineData("gpt2-tiny.q4_0")]
    [InlineData("llama-tiny.q8_0")]
    [InlineData("moe-tiny.f32")]
    [InlineData("llama-k.q4_k_m")]
    [InlineData("llama-d256.q5_k")]
    [InlineData("llama-d256.q3_k")]
    [InlineData("llama-d256.q2_k")]
    [InlineData("llama-d256.iq4_xs")]
    [InlineData("llama-d256.q5_1")]
    [InlineData("llama3-tiny.f32")]
    [InlineData("qwen2moe-tiny.f32")]
    [InlineData("qwen3-tiny.f32")]
    [InlineData("olmoe-tiny.f32")]
    [InlineData("gemma2-tiny.f32")]
    [InlineData("gemma3-tiny.f32")]
    [InlineData("phi3-tiny.f32")]
    public void DecodeStep_AfterWarmUp_AllocatesNothing(string stem) => DecodeSteps(stem, quantizeActivations: false);

    /// <summary>The same with <c>--q8-activations</c>: the activation blocks live in the per-thread matmul job.</summary>
    [Theory]
    [InlineData("gpt2-tiny.q4_0")]
    [InlineData("llama-k.q4_k_m")]
    [InlineData("llama-d256.q5_k")]
    public void DecodeStep_WithQuantizedActivations_AllocatesNothing(string stem) => DecodeSteps(stem, quantizeActivations: true);

    private void DecodeSteps(string stem, bool quantizeActivations)
    {
        using LanguageModel model = ModelLoader.Load(ExpectedOutputs.ModelPath(stem));
        model.QuantizeActivations = quantizeActivations;
        int[] prompt = ExpectedOutputs.Load(stem).First().Tokens;
        int vocab = model.VocabSize;
        var logits = new float[vocab];
        var chain = new SamplerChain(vocab, new SamplingOptions { Temperature = 0.9f, TopK = 40, TopP = 0.9f, MinP = 0.02f, TypicalP = 0.95f, RepeatPenalty = 1.1f }, new Xoshiro256StarStar(7));
        var one = new int[1];
        foreach (int threads in new[] { 1, 2 })
        {
            model.Threads = threads;
            ModelState state = model.CreateState();
            model.Forward(state, prompt, logits);
            int token = prompt[^1];
            for (int i = 0; i < 3; i++) // warm up: first-use buffers and cached delegates, JIT
            {
                model.Forward(state, [token], logits);
                token = chain.Sample(logits);
            }

            var forward = new long[Windows];
            var sampling = new long[Windows];
            for (int w = 0; w < Windows; w++)
                for (int i = 0; i < Steps; i++)
                {
                    one[0] = token;
                    long before = GC.GetAllocatedBytesForCurrentThread();
                    model.Forward(state, one, logits);
                    long between = GC.GetAllocatedBytesForCurrentThread();
                    token = chain.Sample(logits);
                    forward[w] += between - before;
                    sampling[w] += GC.GetAllocatedBytesForCurrentThread() - between;
                }
            output.WriteLine($"{stem}{(quantizeActivations ? " --q8-activations" : "")}, {threads} thread(s), bytes allocated per window of {Steps} steps: decode {string.Join(" ", forward)}, sampling {string.Join(" ", sampling)}");
            AssertNothingPerToken(forward, "decode");
            AssertNothingPerToken(sampling, "sampling");
        }
    }

    /// <summary>
    /// An allocation per token shows in every window; what may show once is a kernel's per-thread
    /// scratch made the first time this thread claims its chunk (two threads), or a jump of the
    /// counter itself when another test's garbage collection retires this thread's allocation
    /// context (tests run in parallel) — so: one window at least allocates nothing, and all of
    /// them together stay under a one-off bound.
    /// </summary>
    private static void AssertNothingPerToken(long[] windows, string what)
    {
        Assert.True(windows.Min() == 0, $"{what} allocated in every window of {Steps} steps: {string.Join(", ", windows)} bytes");
        Assert.True(windows.Sum() <= MaxOneOffBytes, $"{what} allocated {windows.Sum()} bytes in {Windows * Steps} steps: more than one-off scratch");
    }

    [Theory]
    [InlineData("gpt2-tiny.q8_0")]
    [InlineData("llama-k.q4_k_m")]
    [InlineData("qwen2moe-tiny.f32")]
    [InlineData("gemma2-tiny.f32")]
    public void ForwardEach_AfterWarmUp_AllocatesNothing(string stem)
    {
        using LanguageModel model = ModelLoader.Load(ExpectedOutputs.ModelPath(stem));
        model.Threads = 1;
        int[][] prompts = ExpectedOutputs.Load(stem).Select(c => c.Tokens).Take(3).ToArray();
        int vocab = model.VocabSize;
        ModelState[] states = prompts.Select(p =>
        {
            ModelState state = model.CreateState();
            model.Forward(state, p, new float[vocab]);
            return state;
        }).ToArray();
        int[] tokens = prompts.Select(p => p[^1]).ToArray();
        var logits = new float[states.Length * vocab];
        model.ForwardEach(states, tokens, logits);

        var windows = new long[Windows];
        for (int w = 0; w < Windows; w++)
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            for (int i = 0; i < Steps; i++) model.ForwardEach(states, tokens, logits);
            windows[w] = GC.GetAllocatedBytesForCurrentThread() - before;
        }
        output.WriteLine($"{stem}: bytes allocated per window of {Steps} batched steps of {states.Length} contexts: {string.Join(" ", windows)}");
        AssertNothingPerToken(windows, "ForwardEach");
    }
}
