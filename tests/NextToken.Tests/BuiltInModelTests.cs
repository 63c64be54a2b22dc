using System.Text.Json;
using NextToken.Gguf;
using NextToken.Models;

namespace NextToken.Tests;

/// <summary>The model carried inside the library: what a fresh machine with no network runs.</summary>
public class BuiltInModelTests
{
    [Fact]
    public void Resource_IsTheStories260KFixtureByteForByte()
    {
        using GgufFile builtIn = BuiltInModel.Open();
        byte[] fixture = File.ReadAllBytes(Fixtures.Model("stories260K.gguf"));
        Assert.Equal(fixture.Length, builtIn.FileLength);
        Assert.Equal(BuiltInModel.Id, builtIn.FilePath);
        using GgufFile onDisk = GgufFile.Open(Fixtures.Model("stories260K.gguf"));
        Assert.Equal(onDisk.Tensors.Select(t => (t.Name, t.Type, t.ByteLength)), builtIn.Tensors.Select(t => (t.Name, t.Type, t.ByteLength)));
        foreach (GgufTensorInfo t in builtIn.Tensors)
            Assert.True(Bytes(builtIn.GetTensor(t.Name)).SequenceEqual(Bytes(onDisk.GetTensor(t.Name))), t.Name);
    }

    private static unsafe ReadOnlySpan<byte> Bytes(NextToken.Tensors.TensorData t) => new(t.Data, checked((int)t.ByteLength));

    [Fact]
    public void Licence_IsShippedWithTheWeights()
    {
        Assert.Contains("MIT License", BuiltInModel.Licence());
        Assert.Contains("Andrej Karpathy", BuiltInModel.Licence());
    }

    [Fact]
    public void Greedy_AfterBos_WritesTheStoryLlamaCppWrites()
    {
        using LanguageModel model = ModelLoader.Load("builtin");
        Assert.True(model.Tokenizer.Vocabulary.AddBos);
        ExpectedCase expected = ExpectedOutputs.Load("stories260K").First();
        var ids = new List<int>(expected.Tokens);
        var logits = new float[model.VocabSize];
        ModelState state = model.CreateState();
        model.Forward(state, ids.ToArray(), logits);
        for (int i = 0; i < expected.GreedyNext12.Length; i++)
        {
            int next = System.Numerics.Tensors.TensorPrimitives.IndexOfMax(logits);
            ids.Add(next);
            model.Forward(state, [next], logits);
        }
        Assert.Equal(expected.GreedyNext12, ids.Skip(expected.Tokens.Length));
    }

    [Fact]
    public void Cli_NextWithoutModel_RunsTheBuiltInModelOffline()
    {
        // No model named anywhere, and a hub that cannot be reached: the main job must still run.
        var environment = new Dictionary<string, string> { ["NEXTTOKEN_MODEL"] = "", ["HF_ENDPOINT"] = "http://127.0.0.1:9", ["HF_HUB_OFFLINE"] = "0" };
        var (code, stdout, stderr) = CliTests.RunWith(null, environment, "next", "Once upon a time");
        Assert.True(code == 0, stderr);
        Assert.Contains("Model: stories260K (built in", stdout);
        Assert.Contains("Context: 5 tokens [<s>][␣Once][␣upon][␣a][␣time]", stdout);

        (code, stdout, stderr) = CliTests.RunWith(null, environment, "next", "Once upon a time", "--json");
        Assert.True(code == 0, stderr);
        using var doc = JsonDocument.Parse(stdout);
        Assert.Equal(BuiltInModel.Id, doc.RootElement.GetProperty("model").GetString());
        JsonElement best = doc.RootElement.GetProperty("top")[0];
        Assert.Equal(",", best.GetProperty("piece").GetString());
    }

    [Fact]
    public void Cli_AddBosFalse_LeavesBosOut()
    {
        var (code, stdout, stderr) = CliTests.RunWith(null, null, "tokenize", "--model", "builtin", "--text", "Once upon", "--add-bos", "false", "--json");
        Assert.True(code == 0, stderr);
        using var doc = JsonDocument.Parse(stdout);
        Assert.NotEqual(1, doc.RootElement.GetProperty("ids")[0].GetInt32());
        (code, stdout, stderr) = CliTests.RunWith(null, null, "tokenize", "--model", "builtin", "--text", "Once upon", "--json");
        Assert.True(code == 0, stderr);
        using var withBos = JsonDocument.Parse(stdout);
        Assert.Equal(1, withBos.RootElement.GetProperty("ids")[0].GetInt32());
    }
}
