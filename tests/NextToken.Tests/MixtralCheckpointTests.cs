using System.Text;
using System.Text.Json;
using NextToken.Gguf;
using NextToken.Models;
using NextToken.Tensors;
using Xunit.Abstractions;

namespace NextToken.Tests;

/// <summary>
/// A Mixtral-layout Hugging Face checkpoint (one tensor per expert, <c>block_sparse_moe.experts.N.w1/w2/w3</c>)
/// written from the very values of <c>moe-tiny.f32.gguf</c> — q/k rows put back into Hugging Face's
/// rotate-half order, as the fixtures' llama-tiny-hf holds them — reproduces that file's expectations.
/// </summary>
public sealed unsafe class MixtralCheckpointTests(ITestOutputHelper output) : IDisposable
{
    private readonly TempDir _temp = new();

    public void Dispose() => _temp.Dispose();

    /// <summary>The GGUF's tensors under Mixtral's names, with config.json.</summary>
    private string WriteCheckpoint()
    {
        using GgufFile gguf = GgufFile.Open(Fixtures.Model("moe-tiny.f32.gguf"));
        int layers = (int)gguf.GetInteger("llama.block_count"), heads = (int)gguf.GetInteger("llama.attention.head_count");
        int kvHeads = (int)gguf.GetInteger("llama.attention.head_count_kv"), d = (int)gguf.GetInteger("llama.embedding_length");
        int experts = (int)gguf.GetInteger("llama.expert_count");
        var tensors = new List<(string Name, long[] Shape, float[] Data)>();
        float[] Read(TensorData t) => new ReadOnlySpan<float>(t.Data, (int)t.ElementCount).ToArray();
        void Add(string hf, string ggufName)
        {
            TensorData t = gguf.GetTensor(ggufName);
            tensors.Add((hf, t.Dims.Reverse().ToArray(), Read(t)));
        }
        // llama.cpp's converter stores row h·hd + 2i + j of q/k where Hugging Face has h·hd + j·hd/2 + i.
        void AddUnpermuted(string hf, string ggufName, int nHead)
        {
            TensorData t = gguf.GetTensor(ggufName);
            float[] stored = Read(t), hfRows = new float[stored.Length];
            int columns = (int)t.Dims[0], rows = (int)t.Dims[1], hd = rows / nHead, half = hd / 2;
            for (int h = 0; h < nHead; h++)
                for (int i = 0; i < half; i++)
                    for (int j = 0; j < 2; j++)
                        Array.Copy(stored, (h * hd + 2 * i + j) * columns, hfRows, (h * hd + j * half + i) * columns, columns);
            tensors.Add((hf, [rows, columns], hfRows));
        }
        Add("model.embed_tokens.weight", "token_embd.weight");
        Add("model.norm.weight", "output_norm.weight");
        Add("lm_head.weight", "output.weight");
        for (int l = 0; l < layers; l++)
        {
            string p = $"model.layers.{l}.";
            Add(p + "input_layernorm.weight", $"blk.{l}.attn_norm.weight");
            AddUnpermuted(p + "self_attn.q_proj.weight", $"blk.{l}.attn_q.weight", heads);
            AddUnpermuted(p + "self_attn.k_proj.weight", $"blk.{l}.attn_k.weight", kvHeads);
            Add(p + "self_attn.v_proj.weight", $"blk.{l}.attn_v.weight");
            Add(p + "self_attn.o_proj.weight", $"blk.{l}.attn_output.weight");
            Add(p + "post_attention_layernorm.weight", $"blk.{l}.ffn_norm.weight");
            Add(p + "block_sparse_moe.gate.weight", $"blk.{l}.ffn_gate_inp.weight");
            foreach (var (w, name) in new[] { ("w1", "ffn_gate_exps"), ("w2", "ffn_down_exps"), ("w3", "ffn_up_exps") })
            {
                TensorData all = gguf.GetTensor($"blk.{l}.{name}.weight");
                for (int e = 0; e < experts; e++)
                {
                    TensorData one = all.Matrix(e);
                    tensors.Add(($"{p}block_sparse_moe.experts.{e}.{w}.weight", [one.Dims[1], one.Dims[0]], Read(one)));
                }
            }
        }
        string dir = Path.Combine(_temp.Path, "mixtral-tiny-hf");
        Directory.CreateDirectory(dir);
        WriteSafeTensors(Path.Combine(dir, "model.safetensors"), tensors);
        File.WriteAllText(Path.Combine(dir, "config.json"), JsonSerializer.Serialize(new Dictionary<string, object>
        {
            ["architectures"] = new[] { "MixtralForCausalLM" }, ["model_type"] = "mixtral",
            ["hidden_size"] = d, ["num_attention_heads"] = heads, ["num_key_value_heads"] = kvHeads,
            ["num_hidden_layers"] = layers, ["intermediate_size"] = (int)gguf.GetInteger("llama.feed_forward_length"),
            ["max_position_embeddings"] = (int)gguf.GetInteger("llama.context_length"), ["rms_norm_eps"] = 1e-5, ["rope_theta"] = 10000.0,
            ["vocab_size"] = 32000, ["num_local_experts"] = experts, ["num_experts_per_tok"] = (int)gguf.GetInteger("llama.expert_used_count"),
            ["bos_token_id"] = 1, ["eos_token_id"] = 2,
        }));
        return dir;
    }

    internal static void WriteSafeTensors(string path, List<(string Name, long[] Shape, float[] Data)> tensors)
    {
        var header = new Dictionary<string, object>();
        long offset = 0;
        foreach (var (name, shape, data) in tensors)
        {
            header[name] = new { dtype = "F32", shape, data_offsets = new[] { offset, offset + 4L * data.Length } };
            offset += 4L * data.Length;
        }
        byte[] json = Encoding.UTF8.GetBytes(JsonSerializer.Serialize(header));
        using var stream = File.Create(path);
        stream.Write(BitConverter.GetBytes((ulong)json.Length));
        stream.Write(json);
        foreach (var (_, _, data) in tensors) stream.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(data.AsSpan()));
    }

    [Fact]
    public void MixtralCheckpoint_PerExpertTensors_ReproduceMoeTinyExpectations()
    {
        string dir = WriteCheckpoint();
        using LanguageModel model = ModelLoader.Load(dir, Fixtures.Model("moe-tiny.f32.gguf"));
        Assert.Equal("llama (mixture of experts)", model.Architecture);
        double maxDiff = 0;
        foreach (ExpectedCase expected in ExpectedOutputs.Load("moe-tiny.f32"))
        {
            var logits = new float[model.VocabSize];
            ModelState state = model.CreateState();
            model.Forward(state, expected.Tokens, logits);
            float[] last = expected.ReadLastLogits();
            for (int i = 0; i < logits.Length; i++)
            {
                maxDiff = Math.Max(maxDiff, Math.Abs(logits[i] - last[i]));
                Assert.True(Tolerance.Within(logits[i], last[i]), $"{expected.Name}: token {i}: {logits[i]} vs {last[i]}");
            }
            var greedy = new List<int>();
            for (int i = 0; i < expected.GreedyNext12.Length; i++)
            {
                int next = System.Numerics.Tensors.TensorPrimitives.IndexOfMax(logits);
                greedy.Add(next);
                model.Forward(state, [next], logits);
            }
            Assert.Equal(expected.GreedyNext12, greedy);
        }
        output.WriteLine($"mixtral-layout checkpoint of moe-tiny: every case's last row within tolerance, max |Δ| {maxDiff:E3}; greedy identical");
    }

    [Fact]
    public void MixtralCheckpoint_MissingExpert_NamesTheTensor()
    {
        string dir = WriteCheckpoint();
        // Drop expert 3's w2 of layer 1 by renaming it in the header (same length, so offsets stay valid).
        string path = Path.Combine(dir, "model.safetensors");
        byte[] bytes = File.ReadAllBytes(path);
        byte[] from = Encoding.UTF8.GetBytes("layers.1.block_sparse_moe.experts.3.w2"), to = Encoding.UTF8.GetBytes("layers.1.block_sparse_moe.experts.3.wX");
        int at = bytes.AsSpan().IndexOf(from);
        Assert.True(at > 0);
        to.CopyTo(bytes, at);
        File.WriteAllBytes(path, bytes);
        var error = Assert.ThrowsAny<NextTokenException>(() => ModelLoader.Load(dir, Fixtures.Model("moe-tiny.f32.gguf")));
        Assert.Contains("model.layers.1.block_sparse_moe.experts.3.w2.weight", error.Message);
        output.WriteLine(error.Message);
    }
}
