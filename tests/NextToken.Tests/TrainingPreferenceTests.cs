using System.Text.Json;
using NextToken.Gguf;
using NextToken.Training;
using Xunit.Abstractions;

namespace NextToken.Tests;

/// <summary>SFT (masked loss), DPO and reward-model losses and gradients against the float64 reference of <c>tiny-gpt2.json</c>.</summary>
public class TrainingPreferenceTests(ITestOutputHelper output)
{
    private static string TrainingFixture(string file) => Fixtures.Path("training", file);

    private static readonly Lazy<JsonElement> Reference = new(() =>
        JsonDocument.Parse(File.ReadAllText(TrainingFixture("tiny-gpt2.json"))).RootElement);

    private static int[] Ints(JsonElement e) => [.. e.EnumerateArray().Select(x => x.GetInt32())];
    private static int[] Flatten(JsonElement rows) => [.. rows.EnumerateArray().SelectMany(Ints)];

    private static (Gpt2Parameters Layout, float[] Values) LoadModel(string file)
    {
        using GgufFile gguf = GgufFile.Open(TrainingFixture(file));
        var layout = new Gpt2Parameters(Gpt2Parameters.ShapeOf(gguf));
        return (layout, layout.Load(gguf));
    }

    private static unsafe float[] LoadTensors(Gpt2Parameters layout, string file)
    {
        using GgufFile gguf = GgufFile.Open(TrainingFixture(file));
        float[] values = layout.NewBuffer();
        foreach (ParameterTensor t in layout.Tensors)
            new ReadOnlySpan<float>(gguf.GetTensor(t.Name, t.Dims).Data, t.Length).CopyTo(values.AsSpan(t.Offset, t.Length));
        return values;
    }

    private void AssertGradients(Gpt2Parameters layout, float[] grads, float[] reference)
    {
        foreach (ParameterTensor t in layout.Tensors)
        {
            double maxRef = 0, maxDiff = 0;
            for (int i = t.Offset; i < t.Offset + t.Length; i++)
            {
                maxRef = Math.Max(maxRef, Math.Abs(reference[i]));
                maxDiff = Math.Max(maxDiff, Math.Abs(grads[i] - reference[i]));
            }
            output.WriteLine($"{t.Name,-28} max|ref| {maxRef:E3}  max|g-ref| {maxDiff:E3}  ratio {maxDiff / maxRef:E2}");
            Assert.True(maxDiff <= 1e-4 * maxRef, $"{t.Name}: max|g - ref| {maxDiff:E3} above 1e-4 · {maxRef:E3}");
        }
    }

    private static List<PreferencePair> Pairs(JsonElement section) =>
        [.. section.GetProperty("pairs").EnumerateArray().Select(p => new PreferencePair(
            p.TryGetProperty("prompt_len", out JsonElement len) ? len.GetInt32() : 1, Ints(p.GetProperty("chosen")), Ints(p.GetProperty("rejected"))))];

    [Fact]
    public void Sft_MaskedLossAndGradients_MatchTheReference()
    {
        JsonElement sft = Reference.Value.GetProperty("sft");
        var (layout, parameters) = LoadModel("tiny-gpt2.init.gguf");
        JsonElement inputs = sft.GetProperty("inputs");
        int b = inputs.GetArrayLength(), t = inputs[0].GetArrayLength();
        float[] mask = [.. Flatten(sft.GetProperty("mask")).Select(m => (float)m)];
        Assert.Equal(sft.GetProperty("n_masked").GetInt32(), (int)mask.Sum());
        var training = new Gpt2Training(layout, b, t, threads: 2);
        float loss = training.Forward(parameters, Flatten(inputs), Flatten(sft.GetProperty("targets")), mask);
        double expected = sft.GetProperty("loss").GetDouble();
        output.WriteLine($"SFT loss {loss:G9} reference {expected:G9} |diff| {Math.Abs(loss - expected):E2}");
        Assert.True(Math.Abs(loss - expected) <= 1e-4);
        float[] grads = layout.NewBuffer();
        training.Backward(grads);
        AssertGradients(layout, grads, LoadTensors(layout, sft.GetProperty("grads_file").GetString()!));
    }

    [Fact]
    public void Dpo_LossLogProbsAndPolicyGradients_MatchTheReference()
    {
        JsonElement dpo = Reference.Value.GetProperty("dpo");
        var (layout, policy) = LoadModel(dpo.GetProperty("policy_file").GetString()!);
        var (_, reference) = LoadModel(dpo.GetProperty("reference_file").GetString()!);
        var preference = new PreferenceTraining(layout, threads: 2);
        float[] grads = layout.NewBuffer();
        var details = new List<DpoPairResult>();
        double loss = preference.Dpo(policy, reference, Pairs(dpo), dpo.GetProperty("beta").GetSingle(), grads, details);
        JsonElement[] pairs = [.. dpo.GetProperty("pairs").EnumerateArray()];
        for (int i = 0; i < pairs.Length; i++)
        {
            JsonElement e = pairs[i];
            DpoPairResult d = details[i];
            foreach (var (name, ours) in new[] { ("policy_logp_chosen", d.PolicyChosen), ("policy_logp_rejected", d.PolicyRejected),
                         ("reference_logp_chosen", d.ReferenceChosen), ("reference_logp_rejected", d.ReferenceRejected),
                         ("beta_times_margin", d.BetaTimesMargin), ("loss", d.Loss) })
            {
                double expected = e.GetProperty(name).GetDouble();
                output.WriteLine($"pair {i} {name}: {ours:G9} reference {expected:G9} |diff| {Math.Abs(ours - expected):E2}");
                // log-probabilities are sums over up to 31 tokens: 1e-4 per token
                Assert.True(Math.Abs(ours - expected) <= (name.Contains("logp") ? 3e-3 : 1e-4));
            }
        }
        double expectedLoss = dpo.GetProperty("loss").GetDouble();
        output.WriteLine($"DPO loss {loss:G9} reference {expectedLoss:G9}");
        Assert.True(Math.Abs(loss - expectedLoss) <= 1e-4);
        AssertGradients(layout, grads, LoadTensors(layout, dpo.GetProperty("grads_file").GetString()!));
    }

    [Fact]
    public unsafe void RewardModel_LossAndGradients_MatchTheReference()
    {
        JsonElement rm = Reference.Value.GetProperty("rm");
        var (layout, trunk) = LoadModel(rm.GetProperty("trunk_file").GetString()!);
        float[] head = [.. rm.GetProperty("head").EnumerateArray().Select(x => x.GetSingle())];
        var preference = new PreferenceTraining(layout, threads: 2);
        float[] grads = layout.NewBuffer(), headGrad = new float[head.Length];
        var details = new List<(double Chosen, double Rejected, double Loss)>();
        double loss = preference.Reward(trunk, head, Pairs(rm), grads, headGrad, details);
        JsonElement[] pairs = [.. rm.GetProperty("pairs").EnumerateArray()];
        for (int i = 0; i < pairs.Length; i++)
        {
            output.WriteLine($"pair {i}: rewards {details[i].Chosen:G9} / {details[i].Rejected:G9}, reference {pairs[i].GetProperty("reward_chosen").GetDouble():G9} / {pairs[i].GetProperty("reward_rejected").GetDouble():G9}");
            Assert.True(Math.Abs(details[i].Chosen - pairs[i].GetProperty("reward_chosen").GetDouble()) <= 1e-4);
            Assert.True(Math.Abs(details[i].Rejected - pairs[i].GetProperty("reward_rejected").GetDouble()) <= 1e-4);
        }
        double expectedLoss = rm.GetProperty("loss").GetDouble();
        output.WriteLine($"RM loss {loss:G9} reference {expectedLoss:G9}");
        Assert.True(Math.Abs(loss - expectedLoss) <= 1e-4);
        string gradsFile = rm.GetProperty("grads_file").GetString()!;
        float[] reference = layout.NewBuffer();
        using (GgufFile gguf = GgufFile.Open(TrainingFixture(gradsFile)))
        {
            // The head is unused in the trunk: token_embd gets only its embedding gradient.
            foreach (ParameterTensor t in layout.Tensors)
                new ReadOnlySpan<float>(gguf.GetTensor(t.Name, t.Dims).Data, t.Length).CopyTo(reference.AsSpan(t.Offset, t.Length));
            var refHead = new ReadOnlySpan<float>(gguf.GetTensor("rm_head.weight").Data, head.Length).ToArray();
            double maxRef = refHead.Max(Math.Abs), maxDiff = refHead.Zip(headGrad, (r, g) => Math.Abs(r - g)).Max();
            output.WriteLine($"rm_head.weight max|ref| {maxRef:E3} max|g-ref| {maxDiff:E3}");
            Assert.True(maxDiff <= 1e-4 * maxRef);
        }
        AssertGradients(layout, grads, reference);
    }
}
