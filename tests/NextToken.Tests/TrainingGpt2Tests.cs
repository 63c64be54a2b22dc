using System.Text.Json;
using NextToken.Gguf;
using NextToken.Models;
using NextToken.Training;
using Xunit.Abstractions;

namespace NextToken.Tests;

/// <summary>
/// The trainer against the float64 PyTorch reference of <c>training/tiny-gpt2.*</c>: loss, every
/// parameter's gradient, AdamW, ten steps with and without clipping, and the written GGUF read back
/// by the inference engine.
/// </summary>
public class TrainingGpt2Tests(ITestOutputHelper output)
{
    private static string TrainingFixture(string file) => Fixtures.Path("training", file);

    private static readonly Lazy<JsonElement> Reference = new(() =>
        JsonDocument.Parse(File.ReadAllText(TrainingFixture("tiny-gpt2.json"))).RootElement);

    private static JsonElement Lm => Reference.Value.GetProperty("lm");

    private static int[] Flatten(JsonElement rows) => [.. rows.EnumerateArray().SelectMany(r => r.EnumerateArray().Select(x => x.GetInt32()))];

    private static (Gpt2Parameters Layout, float[] Values) LoadModel(string file)
    {
        using GgufFile gguf = GgufFile.Open(TrainingFixture(file));
        var layout = new Gpt2Parameters(Gpt2Parameters.ShapeOf(gguf));
        return (layout, layout.Load(gguf));
    }

    /// <summary>Tensors of a reference file (grads have no output.weight) into the layout's buffer.</summary>
    private static unsafe float[] LoadTensors(Gpt2Parameters layout, string file)
    {
        using GgufFile gguf = GgufFile.Open(TrainingFixture(file));
        float[] values = layout.NewBuffer();
        foreach (ParameterTensor t in layout.Tensors)
            new ReadOnlySpan<float>(gguf.GetTensor(t.Name, t.Dims).Data, t.Length).CopyTo(values.AsSpan(t.Offset, t.Length));
        return values;
    }

    private static float[] LmGradients(Gpt2Parameters layout, float[] parameters, out float loss)
    {
        int b = Lm.GetProperty("B").GetInt32(), t = Lm.GetProperty("T").GetInt32();
        var training = new Gpt2Training(layout, b, t, threads: 2);
        loss = training.Forward(parameters, Flatten(Lm.GetProperty("inputs")), Flatten(Lm.GetProperty("targets")));
        float[] grads = layout.NewBuffer();
        training.Backward(grads);
        return grads;
    }

    [Fact]
    public void BatchFile_HoldsTheReferenceBatch()
    {
        int[] tokens = TokenFile.Read(TrainingFixture("tiny-gpt2.batch.bin"));
        int b = Lm.GetProperty("B").GetInt32(), t = Lm.GetProperty("T").GetInt32();
        Assert.Equal(b * t + 1, tokens.Length);
        var loader = new BatchLoader(tokens, b, t, sequential: true, seed: 0, "batch");
        int[] inputs = new int[b * t], targets = new int[b * t];
        loader.Next(inputs, targets);
        Assert.Equal(Flatten(Lm.GetProperty("inputs")), inputs);
        Assert.Equal(Flatten(Lm.GetProperty("targets")), targets);
    }

    [Fact]
    public void LossAndEveryGradient_MatchTheFloat64Reference()
    {
        var (layout, parameters) = LoadModel("tiny-gpt2.init.gguf");
        float[] grads = LmGradients(layout, parameters, out float loss);
        double expectedLoss = Lm.GetProperty("loss").GetDouble();
        output.WriteLine($"loss {loss:G9} reference {expectedLoss:G9} |diff| {Math.Abs(loss - expectedLoss):E2}");
        Assert.True(Math.Abs(loss - expectedLoss) <= 1e-4);

        float[] reference = LoadTensors(layout, Lm.GetProperty("grads_file").GetString()!);
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
        double norm = AdamW.GlobalNorm(grads), expectedNorm = Lm.GetProperty("grad_global_norm").GetDouble();
        output.WriteLine($"global norm {norm:G9} reference {expectedNorm:G9}");
        Assert.True(Math.Abs(norm - expectedNorm) <= 1e-4 * expectedNorm);
    }

    [Fact]
    public void AdamW_OneStepFromStoredGradients_MatchesReference()
    {
        var (layout, parameters) = LoadModel("tiny-gpt2.init.gguf");
        float[] grads = LoadTensors(layout, Lm.GetProperty("grads_file").GetString()!);
        float[] expected = LoadTensors(layout, Lm.GetProperty("after_1_step_file").GetString()!);
        JsonElement h = Lm.GetProperty("adamw");
        var optimizer = new AdamW(layout, h.GetProperty("beta1").GetSingle(), h.GetProperty("beta2").GetSingle(), h.GetProperty("eps").GetSingle(), h.GetProperty("weight_decay").GetSingle());
        var decayed = h.GetProperty("decayed").EnumerateArray().Select(e => e.GetString()!).ToHashSet();
        Assert.Equal(decayed, layout.Tensors.Where(t => t.Decayed).Select(t => t.Name).ToHashSet());
        optimizer.Update(parameters, grads, h.GetProperty("lr").GetSingle());
        double maxDiff = 0;
        for (int i = 0; i < parameters.Length; i++) maxDiff = Math.Max(maxDiff, Math.Abs(parameters[i] - expected[i]));
        output.WriteLine($"AdamW step 1 max|p - ref| {maxDiff:E3}");
        Assert.True(maxDiff <= 1e-6, $"max diff {maxDiff:E3}");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void TenStepsOnOneBatch_GiveTheReferenceLosses(bool clip)
    {
        var (layout, parameters) = LoadModel("tiny-gpt2.init.gguf");
        JsonElement h = Lm.GetProperty("adamw");
        JsonElement source = clip ? Lm.GetProperty("with_clip_1") : Lm;
        double[] expected = [.. source.GetProperty("losses").EnumerateArray().Select(e => e.GetDouble())];
        double[]? norms = clip ? [.. source.GetProperty("grad_norms_before_clip").EnumerateArray().Select(e => e.GetDouble())] : null;
        int b = Lm.GetProperty("B").GetInt32(), t = Lm.GetProperty("T").GetInt32();
        int[] inputs = Flatten(Lm.GetProperty("inputs")), targets = Flatten(Lm.GetProperty("targets"));
        var training = new Gpt2Training(layout, b, t, threads: 2);
        var optimizer = new AdamW(layout, h.GetProperty("beta1").GetSingle(), h.GetProperty("beta2").GetSingle(), h.GetProperty("eps").GetSingle(), h.GetProperty("weight_decay").GetSingle());
        float[] grads = layout.NewBuffer();
        double worst = 0;
        for (int step = 0; step < expected.Length; step++)
        {
            float loss = training.Forward(parameters, inputs, targets);
            double diff = Math.Abs(loss - expected[step]);
            worst = Math.Max(worst, diff);
            output.WriteLine($"step {step}: loss {loss:F7} reference {expected[step]:F7} |diff| {diff:E2}");
            Assert.True(diff <= 1e-4, $"step {step}: loss {loss} vs {expected[step]}");
            if (step == expected.Length - 1) break;
            Array.Clear(grads);
            training.Backward(grads);
            double norm = AdamW.Clip(grads, clip ? 1f : 0f);
            if (norms != null && step < norms.Length)
            {
                output.WriteLine($"  grad norm before clip {norm:F7} reference {norms[step]:F7}");
                Assert.True(Math.Abs(norm - norms[step]) <= 1e-4 * norms[step]);
            }
            optimizer.Update(parameters, grads, h.GetProperty("lr").GetSingle());
        }
        output.WriteLine($"max |loss diff| over {expected.Length} losses: {worst:E2}");
    }

    [Fact]
    public void TrainedModelWrittenAsGguf_GivesTheSameLogitsThroughTheEngine()
    {
        var (layout, parameters) = LoadModel("tiny-gpt2.init.gguf");
        int b = 2, t = 16;
        int[] all = Flatten(Lm.GetProperty("inputs"));
        int[] inputs = all[..(b * t)], targets = Flatten(Lm.GetProperty("targets"))[..(b * t)];
        var training = new Gpt2Training(layout, b, t, threads: 2);
        var optimizer = new AdamW(layout);
        float[] grads = layout.NewBuffer();
        for (int step = 0; step < 3; step++)
        {
            training.Forward(parameters, inputs, targets);
            Array.Clear(grads);
            training.Backward(grads);
            optimizer.Update(parameters, grads, 1e-3f);
        }
        training.Forward(parameters, inputs, targets, logitsOnly: true);
        float[] trainerLogits = training.Logits.ToArray();

        string path = Path.Combine(Path.GetTempPath(), $"nexttoken-trained-{Environment.ProcessId}.gguf");
        try
        {
            using (GgufFile init = GgufFile.Open(TrainingFixture("tiny-gpt2.init.gguf")))
                layout.Save(path, parameters, init.Metadata, "tiny-gpt2 trained 3 steps");
            using LanguageModel model = ModelLoader.Load(path);
            int v = model.VocabSize;
            double maxDiff = 0;
            for (int row = 0; row < b; row++)
            {
                ModelState state = model.CreateState();
                var logits = new float[t * v];
                model.Forward(state, inputs.AsSpan(row * t, t), logits, LogitsFor.AllPositions);
                for (int i = 0; i < t * v; i++) maxDiff = Math.Max(maxDiff, Math.Abs(logits[i] - trainerLogits[row * t * v + i]));
            }
            output.WriteLine($"engine vs trainer logits max |diff| {maxDiff:E3}");
            Assert.True(maxDiff <= 1e-4, $"max diff {maxDiff}");
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void GradientAccumulation_OverHalfBatches_EqualsTheWholeBatch()
    {
        var (layout, parameters) = LoadModel("tiny-gpt2.init.gguf");
        int b = Lm.GetProperty("B").GetInt32(), t = Lm.GetProperty("T").GetInt32();
        int[] inputs = Flatten(Lm.GetProperty("inputs")), targets = Flatten(Lm.GetProperty("targets"));
        float[] whole = LmGradients(layout, parameters, out _);
        var half = new Gpt2Training(layout, b / 2, t, threads: 2);
        float[] accumulated = layout.NewBuffer();
        for (int part = 0; part < 2; part++)
        {
            int n = b / 2 * t;
            half.Forward(parameters, inputs.AsSpan(part * n, n), targets.AsSpan(part * n, n));
            half.Backward(accumulated, 0.5f);
        }
        double maxRef = whole.Max(Math.Abs), maxDiff = whole.Zip(accumulated, (x, y) => Math.Abs(x - y)).Max();
        output.WriteLine($"two half batches vs one batch: max |diff| {maxDiff:E2} (max |g| {maxRef:E2})");
        Assert.True(maxDiff <= 1e-5 * maxRef);
    }

    [Fact]
    public void LearningRateSchedule_FollowsNanoGpt()
    {
        // nanoGPT's get_lr with lr 1e-3, warmup 100, decay to 1e-4 at 2000.
        var o = new PretrainOptions { LearningRate = 1e-3f, MinLearningRate = 1e-4f, Cosine = true, WarmupIters = 100, MaxIters = 2000 };
        Assert.Equal(1e-3 * 1 / 101, o.LearningRateAt(0), 9);
        Assert.Equal(1e-3 * 100 / 101, o.LearningRateAt(99), 9);
        Assert.Equal(1e-3, o.LearningRateAt(100), 9);
        Assert.Equal(1e-4 + 0.5 * (1 + Math.Cos(Math.PI * 950 / 1900)) * 9e-4, o.LearningRateAt(1050), 7);
        Assert.Equal(1e-4, o.LearningRateAt(2000), 9);
        Assert.Equal(1e-4, o.LearningRateAt(2500), 9);
        var constant = o with { Cosine = false };
        Assert.Equal(1e-3, constant.LearningRateAt(1500), 9);
    }

    [Fact]
    public void OtherShape_GradientsAgreeWithFiniteDifferences()
    {
        // Nothing of the fixture's shape: 3 layers, 3 heads of 8, ffn 40, vocabulary 37, context 9, T 5 < context.
        var layout = new Gpt2Parameters(new Gpt2Dimensions(NLayer: 3, NHead: 3, NEmbd: 24, NCtx: 9, NFf: 40, NVocab: 37));
        float[] parameters = layout.InitializeRandom(seed: 5);
        var random = new Random(6);
        for (int i = 0; i < parameters.Length; i++) parameters[i] += (float)(random.NextDouble() - 0.5) * 0.4f; // away from the init's symmetries
        int b = 2, t = 5;
        int[] inputs = [.. Enumerable.Range(0, b * t).Select(_ => random.Next(37))], targets = [.. Enumerable.Range(0, b * t).Select(_ => random.Next(37))];
        var training = new Gpt2Training(layout, b, t, threads: 2);
        training.Forward(parameters, inputs, targets);
        float[] grads = layout.NewBuffer();
        training.Backward(grads);

        ParameterTensor pos = layout["position_embd.weight"];
        Assert.All(grads.AsSpan(pos.Offset + t * 24, pos.Length - t * 24).ToArray(), g => Assert.Equal(0f, g));

        double worst = 0, largest = 0;
        foreach (ParameterTensor tensor in layout.Tensors)
        {
            for (int probe = 0; probe < 3; probe++)
            {
                int i = tensor.Offset + random.Next(tensor.Name == pos.Name ? t * 24 : tensor.Length);
                float saved = parameters[i];
                const float h = 1e-2f;
                parameters[i] = saved + h;
                double up = training.Forward(parameters, inputs, targets);
                parameters[i] = saved - h;
                double down = training.Forward(parameters, inputs, targets);
                parameters[i] = saved;
                double numeric = (up - down) / (2 * h);
                double diff = Math.Abs(numeric - grads[i]);
                worst = Math.Max(worst, diff);
                largest = Math.Max(largest, Math.Abs(numeric));
                Assert.True(diff <= 1e-4 + 1e-2 * Math.Abs(numeric), $"{tensor.Name}[{i - tensor.Offset}]: backward {grads[i]:E4}, central difference {numeric:E4}");
            }
        }
        output.WriteLine($"3 probes per tensor, max |backward - central difference (h 1e-2)| {worst:E2}, largest |gradient| probed {largest:E2}");
    }

    [Fact]
    public void BlockSizeAboveTheContext_IsRefused()
    {
        var (layout, _) = LoadModel("tiny-gpt2.init.gguf");
        var error = Assert.Throws<NextTokenException>(() => new Gpt2Training(layout, 1, layout.Shape.NCtx + 1, 1));
        Assert.Contains("context length", error.Message);
    }

    [Fact]
    public void TokenIdBeyondTheVocabulary_IsRefused()
    {
        var (layout, parameters) = LoadModel("tiny-gpt2.init.gguf");
        var training = new Gpt2Training(layout, 1, 4, 1);
        var error = Assert.Throws<NextTokenException>(() => training.Forward(parameters, [1, 2, layout.Shape.NVocab, 3], [1, 2, 3, 4]));
        Assert.Contains("beyond the vocabulary", error.Message);
    }
}
