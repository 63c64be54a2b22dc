using System.Text.Json;
using NextToken.Gguf;
using NextToken.Models;
using NextToken.Tensors;
using Xunit.Abstractions;

namespace NextToken.Tests;

/// <summary>
/// Hugging Face checkpoints of the Qwen2, Qwen3, Qwen2-MoE and OLMoE layouts, written from the values
/// of the arch fixtures under the names transformers gives them (their q/k rows are already in
/// Hugging Face order: these families use NeoX RoPE), reproduce the GGUF files' expectations.
/// </summary>
public sealed unsafe class FamilyCheckpointTests(ITestOutputHelper output) : IDisposable
{
    private readonly TempDir _temp = new();

    public void Dispose() => _temp.Dispose();

    /// <summary>transformers' names of each GGUF block tensor (Qwen2/Qwen3/Qwen2-MoE/OLMoE modeling files).</summary>
    private static readonly Dictionary<string, string> BlockNames = new()
    {
        ["attn_norm.weight"] = "input_layernorm.weight",
        ["attn_q.weight"] = "self_attn.q_proj.weight", ["attn_k.weight"] = "self_attn.k_proj.weight",
        ["attn_v.weight"] = "self_attn.v_proj.weight", ["attn_output.weight"] = "self_attn.o_proj.weight",
        ["attn_q.bias"] = "self_attn.q_proj.bias", ["attn_k.bias"] = "self_attn.k_proj.bias", ["attn_v.bias"] = "self_attn.v_proj.bias",
        ["attn_q_norm.weight"] = "self_attn.q_norm.weight", ["attn_k_norm.weight"] = "self_attn.k_norm.weight",
        ["ffn_norm.weight"] = "post_attention_layernorm.weight",
        ["ffn_gate.weight"] = "mlp.gate_proj.weight", ["ffn_up.weight"] = "mlp.up_proj.weight", ["ffn_down.weight"] = "mlp.down_proj.weight",
        ["ffn_gate_inp.weight"] = "mlp.gate.weight",
        ["ffn_gate_inp_shexp.weight"] = "mlp.shared_expert_gate.weight",
        ["ffn_gate_shexp.weight"] = "mlp.shared_expert.gate_proj.weight", ["ffn_up_shexp.weight"] = "mlp.shared_expert.up_proj.weight",
        ["ffn_down_shexp.weight"] = "mlp.shared_expert.down_proj.weight",
    };

    private static readonly Dictionary<string, string> ExpertNames = new()
    {
        ["ffn_gate_exps.weight"] = "gate_proj.weight", ["ffn_up_exps.weight"] = "up_proj.weight", ["ffn_down_exps.weight"] = "down_proj.weight",
    };

    private string WriteCheckpoint(string family, string modelType)
    {
        using GgufFile gguf = GgufFile.Open(ExpectedOutputs.ModelPath(family + "-tiny.f32"));
        var tensors = new List<(string Name, long[] Shape, float[] Data)>();
        foreach (GgufTensorInfo info in gguf.Tensors)
        {
            TensorData t = gguf.GetTensor(info.Name);
            float[] data = new ReadOnlySpan<float>(t.Data, (int)t.ElementCount).ToArray();
            string[] parts = info.Name.Split('.', 3);
            if (parts[0] != "blk")
            {
                string name = info.Name switch
                {
                    "token_embd.weight" => "model.embed_tokens.weight", "output_norm.weight" => "model.norm.weight", "output.weight" => "lm_head.weight",
                    var other => throw new InvalidOperationException($"no Hugging Face name for {other}"),
                };
                tensors.Add((name, t.Dims.Reverse().ToArray(), data));
            }
            else if (ExpertNames.TryGetValue(parts[2], out string? expertName))
            {
                for (int e = 0; e < t.Dims[2]; e++)
                {
                    TensorData one = t.Matrix(e);
                    tensors.Add(($"model.layers.{parts[1]}.mlp.experts.{e}.{expertName}", [one.Dims[1], one.Dims[0]], new ReadOnlySpan<float>(one.Data, (int)one.ElementCount).ToArray()));
                }
            }
            else tensors.Add(($"model.layers.{parts[1]}.{BlockNames[parts[2]]}", t.Dims.Reverse().ToArray(), data));
        }
        string dir = Path.Combine(_temp.Path, family + "-tiny-hf");
        Directory.CreateDirectory(dir);
        MixtralCheckpointTests.WriteSafeTensors(Path.Combine(dir, "model.safetensors"), tensors);
        long Key(string key) => gguf.GetInteger($"{family}.{key}");
        var config = new Dictionary<string, object>
        {
            ["model_type"] = modelType, ["hidden_size"] = Key("embedding_length"), ["num_attention_heads"] = Key("attention.head_count"),
            ["num_key_value_heads"] = Key("attention.head_count_kv"), ["num_hidden_layers"] = Key("block_count"),
            ["intermediate_size"] = Key("feed_forward_length"), ["max_position_embeddings"] = Key("context_length"),
            ["rms_norm_eps"] = gguf.GetFloatOrNull($"{family}.attention.layer_norm_rms_epsilon")!.Value,
            ["rope_theta"] = gguf.GetFloatOrNull($"{family}.rope.freq_base")!.Value, ["vocab_size"] = 512,
            ["tie_word_embeddings"] = !gguf.Tensors.Any(t => t.Name == "output.weight"),
        };
        if (gguf.ContainsKey($"{family}.attention.key_length")) config["head_dim"] = Key("attention.key_length");
        if (gguf.ContainsKey($"{family}.expert_count"))
        {
            config["num_experts"] = Key("expert_count");
            config["num_experts_per_tok"] = Key("expert_used_count");
            config["norm_topk_prob"] = false;
        }
        if (gguf.ContainsKey($"{family}.expert_feed_forward_length")) config["moe_intermediate_size"] = Key("expert_feed_forward_length");
        if (gguf.ContainsKey($"{family}.expert_shared_feed_forward_length")) config["shared_expert_intermediate_size"] = Key("expert_shared_feed_forward_length");
        File.WriteAllText(Path.Combine(dir, "config.json"), JsonSerializer.Serialize(config));
        return dir;
    }

    [Theory]
    [InlineData("qwen2", "qwen2")]
    [InlineData("qwen3", "qwen3")]
    [InlineData("qwen2moe", "qwen2_moe")]
    [InlineData("olmoe", "olmoe")]
    public void Checkpoint_ReproducesTheGgufFamilysExpectations(string family, string modelType)
    {
        string dir = WriteCheckpoint(family, modelType);
        using LanguageModel model = ModelLoader.Load(dir, ExpectedOutputs.ModelPath(family + "-tiny.f32"));
        Assert.StartsWith(family, model.Architecture);
        double maxDiff = 0;
        foreach (ExpectedCase expected in ExpectedOutputs.Load(family + "-tiny.f32"))
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
        output.WriteLine($"{family} as a Hugging Face '{modelType}' checkpoint: last rows max |Δ| {maxDiff:E3}, greedy identical");
    }
}
