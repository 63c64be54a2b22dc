using NextToken.Kernels;
using Xunit.Abstractions;

namespace NextToken.Tests;

/// <summary>
/// The shared worker pool: every chunk of every region runs exactly once, also while busy threads
/// outnumber the cores (workers then join late or not at all, and must claim nothing of a region
/// that is over), and a failing chunk is reported by the caller while the pool lives on.
/// </summary>
public class WorkerPoolTests(ITestOutputHelper output)
{
    private sealed class Counting(int chunks) : IParallelWork
    {
        public readonly int[] Runs = new int[chunks];
        public int FailAt = -1;

        public void Execute(int chunk)
        {
            Interlocked.Increment(ref Runs[chunk]);
            if (chunk == FailAt) throw new InvalidOperationException($"chunk {chunk} fails");
            Thread.SpinWait(50 + chunk % 7 * 40); // uneven chunks
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Run_ManyRegions_EveryChunkRunsOnce(bool oversubscribed)
    {
        using var stop = new CancellationTokenSource();
        // Busy threads beside the pool: more runnable threads than cores, as on a shared machine.
        Thread[] hogs = oversubscribed
            ? Enumerable.Range(0, 2 * Environment.ProcessorCount).Select(_ => new Thread(() => { while (!stop.IsCancellationRequested) Thread.SpinWait(1000); }) { IsBackground = true }).ToArray()
            : [];
        foreach (Thread hog in hogs) hog.Start();
        try
        {
            var random = new Random(5);
            int regions = 0;
            var clock = System.Diagnostics.Stopwatch.StartNew();
            for (; regions < 3000 && clock.Elapsed < TimeSpan.FromSeconds(10); regions++)
            {
                int chunks = random.Next(1, 40);
                var work = new Counting(chunks);
                WorkerPool.Shared.Run(work, chunks, random.Next(1, WorkerPool.Shared.Threads + 2));
                for (int c = 0; c < chunks; c++)
                    Assert.True(work.Runs[c] == 1, $"region {regions}: chunk {c} of {chunks} ran {work.Runs[c]} times");
            }
            output.WriteLine($"{regions} regions on {WorkerPool.Shared.Threads} pool threads{(oversubscribed ? $" beside {hogs.Length} busy threads" : "")}: {clock.Elapsed.TotalMilliseconds / regions:F3} ms each");
            Assert.True(regions >= 100, $"only {regions} regions in 10 s");
        }
        finally
        {
            stop.Cancel();
            foreach (Thread hog in hogs) hog.Join();
        }
    }

    [Fact]
    public void Run_ChunkThrows_CallerGetsTheErrorAndPoolGoesOn()
    {
        var failing = new Counting(64) { FailAt = 3 };
        // Wrapped when the pool ran the region; as thrown when another test held the pool and the caller ran every chunk itself.
        Exception error = Assert.ThrowsAny<Exception>(() => WorkerPool.Shared.Run(failing, 64, WorkerPool.Shared.Threads));
        Assert.Contains("chunk 3 fails", (error is AggregateException wrapped ? wrapped.InnerException! : error).Message);
        Assert.All(failing.Runs, runs => Assert.True(runs <= 1));
        var next = new Counting(64);
        WorkerPool.Shared.Run(next, 64, WorkerPool.Shared.Threads);
        Assert.All(next.Runs, runs => Assert.Equal(1, runs));
        output.WriteLine($"after a failure in chunk 3, {failing.Runs.Sum()} of 64 chunks had started; the next region ran all 64");
    }
}
