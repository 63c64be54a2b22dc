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
        string path = temp.File("q5.gguf");
        using (var vocab = GgufFile.Open(Fixtures.Vocab("ggml-vocab-gpt-2.gguf")))
            SyntheticModel.WriteGpt2(path, new Gpt2Shape("test", 1, 64, 4, 32), GgmlType.F32, vocab);
        // Relabel one F32 matrix as Q5_0 (its data shrinks, so it still lies inside the file).
        byte[] bytes = File.ReadAllBytes(path);
        byte[] name = System.Text.Encoding.UTF8.GetBytes("blk.0.ffn_up.weight");
        int at = bytes.AsSpan().IndexOf(name) + name.Length + 4 + 2 * 8;
        Assert.Equal((uint)GgmlType.F32, BitConverter.ToUInt32(bytes, at));
        BitConverter.TryWriteBytes(bytes.AsSpan(at), (uint)GgmlType.Q5_0);
        File.WriteAllBytes(path, bytes);
        var error = Assert.ThrowsAny<NextTokenException>(() => ModelLoader.Load(path).Dispose());
        Assert.Contains("tensor 'blk.0.ffn_up.weight' has type Q5_0", error.Message);
    }
}
