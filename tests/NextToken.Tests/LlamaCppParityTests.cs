using NextToken.Tensors;
using NextToken.Kernels;
using NextToken.Models;
using Xunit.Abstractions;

namespace NextToken.Tests;

/// <summary>
/// Does <c>--q8-activations</c> move logits as much as llama.cpp does on the same files (issue #13)?
/// The llama.cpp numbers were measured once (llama.cpp de3ff81, CPU backend, 1 thread, F32 KV cache
/// as ours, flash attention off; every case of the file's expectation fed token by token as here,
/// each position's row read back through <c>llama_get_logits_ith</c>) with the same two metrics computed
/// here: the last position's whole row (max |Δ| / max |logit| of the expected row, the fixtures
/// README's "2% … 5%") and the top ten of every position (max |Δ| / |top logit| of that position,
/// what <c>QuantizedActivationTests</c> asserts). They cannot be re-measured in CI (no llama.cpp
/// there), so they are pinned; ours must stay within the stated margin of them.
/// </summary>
public class LlamaCppParityTests(ITestOutputHelper output)
{
    /// <summary>Our method (Q8_0 blocks of 32, K-quants Q8_K blocks of 256) rounds as llama.cpp's; the
    /// two engines' float sums and attention differ, so a row may land up to this much either side.</summary>
    private const double Margin = 0.01;

    [SkippableTheory]
    // stem, llama.cpp last row, llama.cpp top-10 of every position (F32 KV; default F16 KV in the README table)
    [InlineData("gpt2-tiny.q8_0", 0.0205, 0.0148)]
    [InlineData("gpt2-tiny.q4_0", 0.0185, 0.0151)]
    [InlineData("llama-tiny.q8_0", 0.0265, 0.0316)]
    [InlineData("llama-k.q4_k_m", 0.0480, 0.1210)]
    [InlineData("gpt2-d256.q4_k_m", 0.0232, 0.0272)]
    [InlineData("llama-d192.q4_k_m", 0.0291, 0.0344)]
    [InlineData("llama-d256.q4_k", 0.0315, 0.0467)]
    [InlineData("llama-d256.q5_k", 0.0317, 0.0353)]
    [InlineData("llama-d256.q6_k", 0.0331, 0.0443)]
    public void QuantizedActivations_MoveLogitsAsLlamaCppDoes(string stem, double llamaLastRow, double llamaTop10)
    {
        // Without AVX2 the flag keeps the exact path: nothing would be quantized, nothing compared.
        Skip.IfNot(QuantizedActivations.IsSupported(GgmlType.Q8_0), "quantized activations need AVX2");
        var (exactLast, exactTop) = Measure(stem, quantize: false);
        var (q8Last, q8Top) = Measure(stem, quantize: true);
        output.WriteLine($"{stem}: last row {exactLast:P2} exact, {q8Last:P2} q8, llama.cpp {llamaLastRow:P2}; " +
                         $"top-10 of every position {exactTop:P2} exact, {q8Top:P2} q8, llama.cpp {llamaTop10:P2}");
        // The flag took effect (else the comparison below would pass vacuously) ...
        Assert.True(q8Last > 10 * exactLast, $"{stem}: --q8-activations moved the last row only {q8Last:P3} (exact {exactLast:P3})");
        // ... and moved the logits no more than llama.cpp's own method does.
        Assert.True(q8Last <= llamaLastRow + Margin, $"{stem}: last row moved {q8Last:P2}, llama.cpp {llamaLastRow:P2}");
        Assert.True(q8Top <= llamaTop10 + Margin, $"{stem}: top-10 moved {q8Top:P2}, llama.cpp {llamaTop10:P2}");
    }

    /// <summary>
    /// Not just the same size of error: the same logits. llama.cpp's top four at the last position
    /// (same measurement as above), which our <c>--q8-activations</c> reproduces to 3e-6 on this machine (AVX-512
    /// VNNI) while the exact path is 0.009–0.24 away. Only files where the two engines agree to the last
    /// rounding: GPT-2 files diverge at position 0 (llama.cpp's GELU goes through a float16 table), the
    /// longer d256 cases after 36–93 positions (one activation landing on the other side of a rounding
    /// boundary after the engines' float sums differ in the last bit), llama-d192 because our flag leaves
    /// its Q5_0 matrices exact. The tolerance leaves room for another CPU's summation order.
    /// </summary>
    [SkippableTheory]
    [InlineData("llama-tiny.q8_0", "kafka", "4725:5.08650 3461:4.98303 22137:4.74519 25684:4.62714")]
    [InlineData("llama-tiny.q8_0", "cat", "22747:4.95923 23638:4.74829 809:4.55566 17360:4.50037")]
    [InlineData("llama-tiny.q8_0", "system", "20568:4.65675 150:4.64248 11084:4.52043 18318:4.50592")]
    [InlineData("llama-k.q4_k_m", "kafka", "16928:10.08055 22725:10.01058 1291:9.61259 434:9.52651")]
    [InlineData("llama-k.q4_k_m", "cat", "23939:9.98411 24949:9.98103 22466:9.39320 1892:8.81926")]
    [InlineData("llama-k.q4_k_m", "system", "10454:9.73052 8758:9.70987 25663:9.28151 28029:9.15672")]
    [InlineData("llama-d256.q6_k", "kafka", "146:11.29519 297:10.58558 473:10.58314 202:9.94810")]
    [InlineData("llama-d256.q6_k", "cat", "405:9.22796 201:8.86570 289:8.11618 120:7.83047")]
    public void QuantizedActivations_GiveLlamaCppsLogits(string stem, string caseName, string llamaTop4)
    {
        Skip.IfNot(QuantizedActivations.IsSupported(GgmlType.Q8_0), "quantized activations need AVX2");
        ExpectedCase expected = ExpectedOutputs.Load(stem).Single(c => c.Name == caseName);
        double worstQ8 = 0, closestExact = double.MaxValue;
        foreach (bool quantize in new[] { true, false })
        {
            using LanguageModel model = ModelLoader.Load(ExpectedOutputs.ModelPath(stem));
            model.QuantizeActivations = quantize;
            ModelState state = model.CreateState();
            var logits = new float[model.VocabSize];
            for (int p = 0; p < expected.Tokens.Length; p++) model.Forward(state, expected.Tokens.AsSpan(p, 1), logits);
            double worst = 0;
            foreach (string pair in llamaTop4.Split(' '))
            {
                int id = int.Parse(pair.Split(':')[0]);
                double logit = double.Parse(pair.Split(':')[1], System.Globalization.CultureInfo.InvariantCulture);
                worst = Math.Max(worst, Math.Abs(logits[id] - logit));
            }
            if (quantize) worstQ8 = worst;
            else closestExact = worst;
        }
        output.WriteLine($"{stem} {caseName}: top four vs llama.cpp's, max |Δ| {worstQ8:E2} with --q8-activations, {closestExact:E2} exact");
        Assert.True(worstQ8 <= 1e-3, $"{stem} {caseName}: --q8-activations {worstQ8:E2} from llama.cpp's logits");
        // The exact path must fail the same check (twice over), or the comparison would tell nothing.
        Assert.True(closestExact > 2e-3, $"{stem} {caseName}: the exact path is as close ({closestExact:E2}): the comparison tells nothing");
    }

    /// <summary>Token by token (the decode kernels, where every quantized matmul takes the flag): the worst
    /// last-row deviation and the worst top-10 deviation over every position of every case.</summary>
    private static (double LastRow, double Top10) Measure(string stem, bool quantize)
    {
        using LanguageModel model = ModelLoader.Load(ExpectedOutputs.ModelPath(stem));
        model.QuantizeActivations = quantize;
        double lastRow = 0, top10 = 0;
        var logits = new float[model.VocabSize];
        foreach (ExpectedCase expected in ExpectedOutputs.Load(stem))
        {
            ModelState state = model.CreateState();
            for (int p = 0; p < expected.Tokens.Length; p++)
            {
                model.Forward(state, expected.Tokens.AsSpan(p, 1), logits);
                var top = expected.Positions[p].Top;
                double scale = Math.Abs(top[0].Logit);
                foreach (var (id, logit) in top) top10 = Math.Max(top10, Math.Abs(logits[id] - logit) / scale);
            }
            float[] last = expected.ReadLastLogits();
            double largest = 0, worst = 0;
            for (int i = 0; i < last.Length; i++)
            {
                largest = Math.Max(largest, Math.Abs(last[i]));
                worst = Math.Max(worst, Math.Abs(logits[i] - last[i]));
            }
            lastRow = Math.Max(lastRow, worst / largest);
        }
        return (lastRow, top10);
    }
}
