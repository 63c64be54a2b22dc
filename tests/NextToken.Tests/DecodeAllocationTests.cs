using NextToken.Models;
using NextToken.Sampling;
using Xunit.Abstractions;

namespace NextToken.Tests;

/// <summary>
/// Decoding allocates nothing per token once a state exists: a decode step, a batched step over
/// several contexts and a sampling step (every stage on) take their buffers from the state and the
/// chain, for every family and weight type. Measured on the calling thread with one thread, where
/// every kernel runs inline; with two threads the caller's share is measured too, where
/// a first-use scratch buffer may appear once.
/// </summary>
public class DecodeAllocationTests(ITestOutputHelper output)
{
    private const int Steps = 16;
    private const int MaxFirstUseBytes = 64 << 10;

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
    public void DecodeStep_AfterWarmUp_AllocatesNothing(string stem)
    {
        using LanguageModel model = ModelLoader.Load(ExpectedOutputs.ModelPath(stem));
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

            long forward = 0, sampling = 0;
            for (int i = 0; i < Steps; i++)
            {
                one[0] = token;
                long before = GC.GetAllocatedBytesForCurrentThread();
                model.Forward(state, one, logits);
                long between = GC.GetAllocatedBytesForCurrentThread();
                token = chain.Sample(logits);
                forward += between - before;
                sampling += GC.GetAllocatedBytesForCurrentThread() - between;
            }
            output.WriteLine($"{stem}, {threads} thread(s): {forward} bytes allocated in {Steps} decode steps, {sampling} in {Steps} sampling steps");
            Assert.Equal(0, sampling);
            if (threads == 1) Assert.Equal(0, forward);
            // With two threads the calling thread takes whichever chunks it claims first: a kernel's
            // per-thread scratch may be made the first time it runs one, once, never per token.
            else Assert.True(forward <= MaxFirstUseBytes, $"{forward} bytes in {Steps} steps: more than first-use scratch");
        }
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

        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < Steps; i++) model.ForwardEach(states, tokens, logits);
        long perStep = (GC.GetAllocatedBytesForCurrentThread() - before) / Steps;
        output.WriteLine($"{stem}: {perStep} bytes allocated per batched step of {states.Length} contexts");
        Assert.Equal(0, perStep);
    }
}
