using NextToken.Gguf;
using NextToken.Models;
using NextToken.Tensors;

namespace NextToken.Tests;

public class SyntheticModelTests
{
    [Theory]
    [InlineData(GgmlType.F32)]
    [InlineData(GgmlType.F16)]
    [InlineData(GgmlType.BF16)]
    public void WriteGpt2_SmallShape_LoadsWithLlamaCppLayoutAndRuns(GgmlType type)
    {
        using var temp = new TempDir();
        string path = temp.File("synth.gguf");
        using (var vocab = GgufFile.Open(Fixtures.Vocab("ggml-vocab-gpt-2.gguf")))
            SyntheticModel.WriteGpt2(path, new Gpt2Shape("test", 2, 64, 4, 32), type, vocab, seed: 7);
        using LanguageModel model = ModelLoader.Load(path);
        Assert.Equal("gpt2", model.Architecture);
        Assert.Equal(50257, model.VocabSize);
        Assert.Equal(type, model.Source.GetTensor("blk.1.ffn_up.weight", 64, 256).Type);
        Assert.Equal(GgmlType.F32, model.Source.GetTensor("blk.1.ffn_up.bias", 256).Type);
        Assert.True(model.Source.HasTensor("output.weight"));
        var logits = new float[model.VocabSize];
        model.Forward(model.CreateState(), [15496, 995], logits);
        Assert.All(logits, x => Assert.True(float.IsFinite(x)));
        Assert.True(System.Numerics.Tensors.TensorPrimitives.MaxMagnitude(logits) > 0);
    }
}

public class UnsupportedWeightTypeTests
{
    [Fact]
    public void Load_MatrixOfTypeWithoutKernel_NamesTypeAndTensor()
    {
        using var temp = new TempDir();
        string path = temp.File("mxfp4.gguf");
        using (var vocab = GgufFile.Open(Fixtures.Vocab("ggml-vocab-gpt-2.gguf")))
            SyntheticModel.WriteGpt2(path, new Gpt2Shape("test", 1, 64, 4, 32), GgmlType.F32, vocab);
        // Relabel one F32 matrix as MXFP4, a type without a kernel (its data shrinks, so it still lies inside the file).
        byte[] bytes = File.ReadAllBytes(path);
        byte[] name = System.Text.Encoding.UTF8.GetBytes("blk.0.ffn_up.weight");
        int at = bytes.AsSpan().IndexOf(name) + name.Length + 4 + 2 * 8;
        Assert.Equal((uint)GgmlType.F32, BitConverter.ToUInt32(bytes, at));
        BitConverter.TryWriteBytes(bytes.AsSpan(at), (uint)GgmlType.MXFP4);
        File.WriteAllBytes(path, bytes);
        var error = Assert.ThrowsAny<NextTokenException>(() => ModelLoader.Load(path).Dispose());
        Assert.Contains("tensor 'blk.0.ffn_up.weight' has type MXFP4", error.Message);
    }
}

public class SyntheticLlamaTests
{
    [Theory]
    [InlineData(GgmlType.F32)]
    [InlineData(GgmlType.Q8_0)]
    [InlineData(GgmlType.Q4_0)]
    public void WriteLlama_SmallShape_LoadsAndRuns(GgmlType type)
    {
        using var temp = new TempDir();
        string path = temp.File("llama.gguf");
        using (var vocab = GgufFile.Open(Fixtures.Vocab("ggml-vocab-llama-spm.gguf")))
            SyntheticModel.WriteLlama(path, new LlamaShape("test", 2, 64, 4, 2, 128, 64), type, vocab, seed: 3);
        using LanguageModel model = ModelLoader.Load(path);
        Assert.Equal(type, model.Source.GetTensor("blk.0.attn_k.weight", 64, 32).Type);
        var logits = new float[model.VocabSize];
        model.Forward(model.CreateState(), [1, 450, 6635, 3290], logits);
        Assert.All(logits, x => Assert.True(float.IsFinite(x)));
    }

    [Theory]
    [InlineData(GgmlType.Q8_0, 1.0 / 127)]
    [InlineData(GgmlType.Q4_0, 1.0 / 8)]
    public void Quantize_ThenDequantize_IsWithinAStep(GgmlType type, double stepFraction)
    {
        var random = new Random(4);
        float[] x = Enumerable.Range(0, 256).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
        byte[] blocks = NextToken.Kernels.Quantize.Blocks(type, x);
        var back = new float[x.Length];
        NextToken.Kernels.Quantized.DequantizeRow(type, blocks, back);
        for (int b = 0; b < x.Length / 32; b++)
        {
            double amax = x.Skip(b * 32).Take(32).Max(Math.Abs);
            for (int i = b * 32; i < b * 32 + 32; i++)
                // Half a step when rounding; Q4_0's range is asymmetric (−8…+7 steps), so the side opposite
                // the largest magnitude clips at up to a whole step.
                Assert.True(Math.Abs(back[i] - x[i]) <= amax * stepFraction * (type == GgmlType.Q4_0 ? 1 : 0.5) + 1e-3 * amax, $"{type} value {i}: {back[i]} vs {x[i]}");
        }
    }
}

public class TiedOutputTests
{
    /// <summary>gpt2-tiny stores its tied LM head twice; without output.weight the token embedding must serve, with the same logits.</summary>
    [Fact]
    public unsafe void Load_WithoutOutputWeight_UsesTheTokenEmbedding()
    {
        using var temp = new TempDir();
        string path = temp.File("tied.gguf");
        using (var source = GgufFile.Open(Fixtures.Model("gpt2-tiny.f32.gguf")))
        {
            var writer = new GgufWriter();
            foreach (string key in source.MetadataKeys.Where(k => k != "general.alignment")) writer.Add(key, source.Metadata[key]);
            foreach (GgufTensorInfo info in source.Tensors.Where(t => t.Name != "output.weight"))
            {
                TensorData tensor = source.GetTensor(info.Name);
                writer.AddTensor(info.Name, info.Type, info.Dims, s => s.Write(new ReadOnlySpan<byte>(tensor.Data, (int)tensor.ByteLength)));
            }
            writer.Write(path);
        }
        using LanguageModel model = ModelLoader.Load(path);
        Assert.False(model.Source.HasTensor("output.weight"));
        ExpectedCase expected = ExpectedOutputs.Load("gpt2-tiny.f32")[0];
        var logits = new float[model.VocabSize];
        model.Forward(model.CreateState(), expected.Tokens, logits);
        float[] reference = expected.ReadLastLogits();
        for (int i = 0; i < logits.Length; i++) Assert.True(Tolerance.Within(logits[i], reference[i]), $"token {i}");
    }
}

public class ThroughputBenchmarkTests
{
    [Fact]
    public void Run_WithDistribution_FillsTheContextExactlyOnce()
    {
        // 100 prompt + 28 generated = the 128-token context: the second timed pass must start from the prompt again, not after it.
        using LanguageModel model = ModelLoader.Load(Fixtures.Model("gpt2-tiny.f32.gguf"));
        var result = NextToken.Generation.ThroughputBenchmark.Run(model, 100, 28, withDistribution: true);
        Assert.True(result.DistributionTokensPerSecond > 0);
        Assert.True(result.GenerationTokensPerSecond > 0 && result.PromptTokensPerSecond > 0);
    }
}
