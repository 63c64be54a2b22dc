using System.Diagnostics;
using NextToken.Kernels;
using NextToken.Models;

namespace NextToken.Bench;

/// <summary>
/// <c>--ilv-decode FILE [tokens] [chunks,chunks,…]</c>: whole decode steps with each setting of decode's chunks per thread in
/// turn, token by token (so load swings hit every setting alike); per setting the minimum and the 10th percentile of the
/// step's wall time.
/// </summary>
internal static class InterleavedDecode
{
    public static void Run(string path, int tokens, int[] settings)
    {
        using LanguageModel model = ModelLoader.Load(path);
        model.Threads = 2;
        var logits = new float[model.VocabSize];
        ModelState state = model.CreateState();
        model.Forward(state, [1, 2, 3, 4], logits);
        var times = settings.Select(_ => new List<double>()).ToArray();
        Console.WriteLine($"{path}: {tokens} steps, load {File.ReadAllText("/proc/loadavg").Split(' ')[0]}");
        for (int i = 0; i < tokens; i++)
        {
            int k = i % settings.Length;
            MatMul.DecodeChunksPerThread = settings[k];
            long t0 = Stopwatch.GetTimestamp();
            model.Forward(state, [(i * 7919) % model.VocabSize], logits);
            times[k].Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
        }
        for (int k = 0; k < settings.Length; k++)
        {
            times[k].Sort();
            var t = times[k];
            Console.WriteLine($"  {settings[k],3} chunks/thread: min {t[0]:F2} ms ({1000 / t[0]:F1} tok/s), p10 {t[t.Count / 10]:F2}, median {t[t.Count / 2]:F2}");
        }
        Console.WriteLine($"  load now {File.ReadAllText("/proc/loadavg").Split(' ')[0]}");
    }
}
