using NextToken.Kernels;
using NextToken.Models;

namespace NextToken.Tests;

/// <summary>
/// bench --step-profile: off unless started; while on, each parallel region's chunks are counted once, on the phase the next
/// mark closes, and a forward pass computes exactly what it computes with the profile off.
/// </summary>
[CollectionDefinition(nameof(StepProfileTests), DisableParallelization = true)]
public class StepProfileCollection;

/// <summary>Alone (no other test's regions in the pool meanwhile, which would run these inline, unprofiled).</summary>
[Collection(nameof(StepProfileTests))]
public class StepProfileTests
{
    private sealed class Spin : IParallelWork
    {
        public void Execute(int chunk) => Thread.SpinWait(200);
    }

    [Fact]
    public void Regions_CountOnThePhaseTheNextMarkCloses()
    {
        Assert.False(StepProfile.Enabled);
        StepProfile.Start();
        try
        {
            var work = new Spin();
            for (int step = 0; step < 4; step++)
            {
                WorkerPool.Shared.Run(work, 12, 2);
                WorkerPool.Shared.Run(work, 12, 2);
                StepProfile.Mark(StepPhase.GateUp);
                StepProfile.Mark(StepPhase.Glu);
                WorkerPool.Shared.Run(work, 5, 2);
                StepProfile.Mark(StepPhase.Down);
            }
        }
        finally
        {
            StepProfile.Stop();
        }
        IReadOnlyList<StepPhaseTimes> report = StepProfile.Report(4);
        StepPhaseTimes gateUp = report.Single(p => p.Phase == StepPhase.GateUp), glu = report.Single(p => p.Phase == StepPhase.Glu), down = report.Single(p => p.Phase == StepPhase.Down);
        // Per step: two regions of 12 chunks, none, one of 5 (a one-core machine runs them all on the caller: no region).
        bool parallel = WorkerPool.Shared.Threads > 1;
        Assert.Equal(parallel ? 2 : 0, gateUp.Regions);
        Assert.Equal(parallel ? 24 : 0, gateUp.Chunks.Sum());
        Assert.Equal(parallel ? 5 : 0, down.Chunks.Sum());
        Assert.Equal(0, glu.Regions);
        Assert.True(gateUp.Wall >= gateUp.RegionWall && gateUp.RegionWall >= gateUp.Busy.Max());
        Assert.False(StepProfile.Enabled);
    }

    [Fact]
    public void Forward_WithTheProfileOn_IsBitIdentical()
    {
        using LanguageModel model = ModelLoader.Load(Fixtures.Model("llama-tiny.f32.gguf"));
        model.Threads = 2;
        int[] prompt = [1, 5, 9, 2];
        float[] Decode(bool profile)
        {
            ModelState state = model.CreateState();
            var logits = new float[model.VocabSize];
            model.Forward(state, prompt, logits);
            if (profile) StepProfile.Start();
            try
            {
                for (int i = 0; i < 3; i++) model.Forward(state, [i + 3], logits);
            }
            finally
            {
                StepProfile.Stop();
            }
            return logits;
        }
        float[] off = Decode(false), on = Decode(true);
        Assert.Equal(off, on);
        IReadOnlyList<StepPhaseTimes> report = StepProfile.Report(3);
        foreach (StepPhase phase in new[] { StepPhase.QueryKeyValue, StepPhase.Attention, StepPhase.GateUp, StepPhase.Down, StepPhase.LmHead })
            Assert.Contains(report, p => p.Phase == phase && p.Wall > 0);
    }

    /// <summary>bench's profile covers the prompt's one batched pass too: every phase of the forward pass, in milliseconds of that pass.</summary>
    [Fact]
    public void Bench_WithTheProfileOn_ProfilesThePromptAndTheSteps()
    {
        using LanguageModel model = ModelLoader.Load(Fixtures.Model("llama-tiny.f32.gguf"));
        model.Threads = 2;
        Generation.ThroughputResult result = Generation.ThroughputBenchmark.Run(model, promptTokens: 8, generatedTokens: 3, profileSteps: true);
        Assert.NotNull(result.PromptSteps);
        Assert.NotNull(result.Steps);
        foreach (StepPhase phase in new[] { StepPhase.Embed, StepPhase.QueryKeyValue, StepPhase.Attention, StepPhase.GateUp, StepPhase.Down, StepPhase.LmHead })
            Assert.Contains(result.PromptSteps!, p => p.Phase == phase && p.Wall > 0);
        Assert.True(result.PromptSteps!.Sum(p => p.Wall) <= result.PromptSeconds * 1000 * 1.01 + 0.05, "the phases fit in the timed prompt");
        Assert.False(StepProfile.Enabled);
    }
}
