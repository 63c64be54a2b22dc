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

    /// <summary>Where Gemma (modeling_gemma2/3) and Phi-3 (modeling_phi3) name a tensor otherwise.</summary>
    private static readonly Dictionary<string, string> GemmaNames = new()
    {
        ["ffn_norm.weight"] = "pre_feedforward_layernorm.weight",
        ["post_attention_norm.weight"] = "post_attention_layernorm.weight",
        ["post_ffw_norm.weight"] = "post_feedforward_layernorm.weight",
    };

    private static readonly Dictionary<string, string> Phi3Names = new()
    {
        ["attn_qkv.weight"] = "self_attn.qkv_proj.weight", ["ffn_up.weight"] = "mlp.gate_up_proj.weight",
    };

    private static readonly Dictionary<string, string> ExpertNames = new()
    {
        ["ffn_gate_exps.weight"] = "gate_proj.weight", ["ffn_up_exps.weight"] = "up_proj.weight", ["ffn_down_exps.weight"] = "down_proj.weight",
    };

    /// <summary>llama.cpp's converter stores q/k row h·hd + 2i + j where Hugging Face has h·hd + j·hd/2 + i.</summary>
    private static float[] Unpermute(float[] stored, int columns, int heads)
    {
        var rows = new float[stored.Length];
        int hd = stored.Length / columns / heads, half = hd / 2;
        for (int h = 0; h < heads; h++)
            for (int i = 0; i < half; i++)
                for (int j = 0; j < 2; j++)
                    Array.Copy(stored, (h * hd + 2 * i + j) * columns, rows, (h * hd + j * half + i) * columns, columns);
        return rows;
    }

    /// <summary>A checkpoint of the arch fixture <paramref name="stem"/>, or of the GGUF file at <paramref name="ggufPath"/> when given.</summary>
    private string WriteCheckpoint(string stem, string modelType, Dictionary<string, object>? extra = null, string? ggufPath = null)
    {
        using GgufFile gguf = GgufFile.Open(ggufPath ?? ExpectedOutputs.ModelPath(stem + "-tiny.f32"));
        string family = gguf.GetString("general.architecture");
        var tensors = new List<(string Name, long[] Shape, float[] Data)>();
        foreach (GgufTensorInfo info in gguf.Tensors)
        {
            TensorData t = gguf.GetTensor(info.Name);
            float[] data = new ReadOnlySpan<float>(t.Data, (int)t.ElementCount).ToArray();
            string[] parts = info.Name.Split('.', 3);
            // Hugging Face gives RoPE scaling in config.json instead of these tensors.
            if (info.Name is "rope_freqs.weight" or "rope_factors_short.weight" or "rope_factors_long.weight") continue;
            bool gemma = family.StartsWith("gemma", StringComparison.Ordinal);
            // Gemma's norms are stored as w of (1 + w) in Hugging Face checkpoints; llama.cpp's converter adds the 1.
            if (gemma && info.Name.EndsWith("norm.weight", StringComparison.Ordinal))
                for (int i = 0; i < data.Length; i++) data[i] -= 1;
            if (family == "llama" && parts[0] == "blk" && parts[2] is "attn_q.weight" or "attn_k.weight")
                data = Unpermute(data, (int)t.Dims[0], (int)(t.Dims[1] / gguf.GetInteger("llama.rope.dimension_count")));
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
            else
            {
                string name = (family.StartsWith("gemma", StringComparison.Ordinal) ? GemmaNames : family == "phi3" ? Phi3Names : []).GetValueOrDefault(parts[2]) ?? BlockNames[parts[2]];
                tensors.Add(($"model.layers.{parts[1]}.{name}", t.Dims.Reverse().ToArray(), data));
            }
        }
        string dir = Path.Combine(_temp.Path, stem + "-tiny-hf");
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
        foreach (var (key, value) in extra ?? []) config[key] = value;
        File.WriteAllText(Path.Combine(dir, "config.json"), JsonSerializer.Serialize(config));
        return dir;
    }

    /// <summary>llama3-tiny's rope_scaling, as the fixtures README gives it.</summary>
    private static readonly Dictionary<string, object> Llama3Scaling = new()
    {
        ["rope_scaling"] = new Dictionary<string, object>
        {
            ["rope_type"] = "llama3", ["factor"] = 32.0, ["low_freq_factor"] = 1.0, ["high_freq_factor"] = 4.0, ["original_max_position_embeddings"] = 64,
        },
    };

    /// <summary>config.json of the families with more settings, as the fixtures README describes their files.</summary>
    private static Dictionary<string, object>? Extra(string family) => family switch
    {
        "llama3" => Llama3Scaling,
        "gemma2" => new()
        {
            ["query_pre_attn_scalar"] = 32, ["attn_logit_softcapping"] = 50.0, ["final_logit_softcapping"] = 30.0, ["sliding_window"] = 8,
        },
        "gemma3" => new()
        {
            ["query_pre_attn_scalar"] = 32, ["sliding_window"] = 8, ["sliding_window_pattern"] = 6, ["rope_local_base_freq"] = 10000.0,
            ["rope_scaling"] = new Dictionary<string, object> { ["rope_type"] = "linear", ["factor"] = 8.0 },
        },
        "phi3" => Phi3Scaling(),
        _ => null,
    };

    /// <summary>Phi-3's LongRoPE settings: the factors the GGUF file carries as tensors, the contexts from its metadata.</summary>
    private static Dictionary<string, object> Phi3Scaling()
    {
        using GgufFile gguf = GgufFile.Open(ExpectedOutputs.ModelPath("phi3-tiny.f32"));
        float[] Read(string name)
        {
            TensorData t = gguf.GetTensor(name);
            return new ReadOnlySpan<float>(t.Data, (int)t.ElementCount).ToArray();
        }
        return new()
        {
            ["original_max_position_embeddings"] = gguf.GetInteger("phi3.rope.scaling.original_context_length"), ["sliding_window"] = 4096,
            ["rope_scaling"] = new Dictionary<string, object>
            {
                ["type"] = "longrope", ["short_factor"] = Read("rope_factors_short.weight"), ["long_factor"] = Read("rope_factors_long.weight"),
            },
        };
    }

    [Fact]
    public void Llama3RopeScaling_GivesTheFactorsOfTheGgufRopeFreqsTensor()
    {
        // llama.cpp's converter wrote rope_freqs from the same rope_scaling; config.json's path computes them itself.
        string dir = WriteCheckpoint("llama3", "llama", Llama3Scaling);
        using GgufFile gguf = GgufFile.Open(ExpectedOutputs.ModelPath("llama3-tiny.f32"));
        TensorData stored = gguf.GetTensor("rope_freqs.weight");
        float[] expected = new ReadOnlySpan<float>(stored.Data, (int)stored.ElementCount).ToArray();
        using LanguageModel model = ModelLoader.Load(dir, ExpectedOutputs.ModelPath("llama3-tiny.f32"));
        float[] actual = ((LlamaModel)model).Config.RopeFreqFactors!;
        double maxDiff = expected.Zip(actual, (e, a) => Math.Abs(e - (double)a)).Max();
        output.WriteLine($"factors [{string.Join(", ", actual)}], max |Δ| to rope_freqs.weight {maxDiff:E3}");
        Assert.True(maxDiff <= 1e-5 * 32, $"max |Δ| {maxDiff}");
        Assert.Contains(actual, f => f == 1f);
        Assert.Contains(actual, f => f == 32f);
    }

    [Theory]
    [InlineData("gemma2", "gemma2", "sliding window", "8 keys on layers 0, 2 of 3")]
    [InlineData("gemma3", "gemma3_text", "sliding window", "8 keys on layers 0, 1, 2, 3, 4 of 6; their RoPE base 10000, unscaled")]
    [InlineData("phi3", "phi3", "rope", "frequencies divided by per-pair factors from config.json, cos/sin × 1.1547")]
    [InlineData("qwen2moe", "qwen2_moe", "feed-forward", "plus a shared expert of 96 gated by a sigmoid")]
    [InlineData("qwen3moe", "qwen3_moe", "feed-forward", "4 experts of 160 (SwiGLU, silu(gate)·up), softmax router, top 2 renormalized")]
    public void Info_OnACheckpoint_ShowsTheFamilysSettings(string family, string modelType, string setting, string expected)
    {
        using var moe = family == "qwen3moe" ? new Qwen3MoeFile() : null;
        string dir = WriteCheckpoint(family, modelType, moe is null ? Extra(family) : new() { ["norm_topk_prob"] = true }, moe?.Path);
        var (code, stdout, stderr) = CliTests.RunWith(null, null, "info", "--model", dir, "--json");
        Assert.True(code == 0, stderr);
        using JsonDocument doc = JsonDocument.Parse(stdout);
        Assert.Equal(family, doc.RootElement.GetProperty("architecture").GetString());
        Assert.Contains(expected, doc.RootElement.GetProperty("family").GetProperty(setting).GetString());
    }

    [Fact]
    public void UnsupportedRopeScaling_IsAnErrorNamingTheKey()
    {
        string dir = WriteCheckpoint("llama3", "llama", new() { ["rope_scaling"] = new Dictionary<string, object> { ["rope_type"] = "yarn", ["factor"] = 4.0 } });
        var error = Assert.ThrowsAny<NextTokenException>(() => ModelLoader.Load(dir, ExpectedOutputs.ModelPath("llama3-tiny.f32")));
        Assert.Contains("'rope_scaling': 'rope_type' 'yarn' is not supported yet", error.Message);
    }

    [Theory]
    [InlineData("llama3", "llama")]
    [InlineData("qwen2", "qwen2")]
    [InlineData("qwen3", "qwen3")]
    [InlineData("qwen2moe", "qwen2_moe")]
    [InlineData("olmoe", "olmoe")]
    [InlineData("gemma2", "gemma2")]
    [InlineData("gemma3", "gemma3_text")]
    [InlineData("phi3", "phi3")]
    public void Checkpoint_ReproducesTheGgufFamilysExpectations(string family, string modelType)
    {
        string dir = WriteCheckpoint(family, modelType, Extra(family));
        using LanguageModel model = ModelLoader.Load(dir, ExpectedOutputs.ModelPath(family + "-tiny.f32"));
        Assert.StartsWith(family == "llama3" ? "llama" : family, model.Architecture);
        double maxDiff = AssertReproduces(model, family + "-tiny.f32");
        output.WriteLine($"{family} as a Hugging Face '{modelType}' checkpoint: last rows max |Δ| {maxDiff:E3}, greedy identical");
    }

    /// <summary>
    /// Qwen3-MoE (norm_topk_prob true): the qwen3moe GGUF of <see cref="Qwen3MoeFile"/> (identical experts) as a
    /// checkpoint with per-expert tensors reproduces qwen3-tiny; with norm_topk_prob false the weights stay as
    /// the softmax gives them, the FFN output shrinks, and the last rows move off the reference.
    /// </summary>
    [Fact]
    public void Qwen3MoeCheckpoint_RenormalizesAsNormTopKProbSays()
    {
        using var moe = new Qwen3MoeFile();
        string dir = WriteCheckpoint("qwen3moe", "qwen3_moe", new() { ["norm_topk_prob"] = true }, moe.Path);
        using (LanguageModel model = ModelLoader.Load(dir, moe.Path))
        {
            Assert.Equal("qwen3moe (mixture of experts)", model.Architecture);
            Assert.Equal(MoeKind.SoftmaxTopKRenormalized, ((LlamaModel)model).Config.Block.Moe);
            double maxDiff = AssertReproduces(model, "qwen3-tiny.f32");
            output.WriteLine($"qwen3moe as a Hugging Face 'qwen3_moe' checkpoint (norm_topk_prob true): last rows of qwen3-tiny max |Δ| {maxDiff:E3}, greedy identical");
        }
        string raw = WriteCheckpoint("qwen3moe-raw", "qwen3_moe", new() { ["norm_topk_prob"] = false }, moe.Path);
        using LanguageModel rawModel = ModelLoader.Load(raw, moe.Path);
        Assert.Equal(MoeKind.SoftmaxTopK, ((LlamaModel)rawModel).Config.Block.Moe);
        ExpectedCase kafka = ExpectedOutputs.Load("qwen3-tiny.f32").Single(c => c.Name == "kafka");
        var logits = new float[rawModel.VocabSize];
        rawModel.Forward(rawModel.CreateState(), kafka.Tokens, logits);
        double moved = logits.Zip(kafka.ReadLastLogits(), (a, b) => Math.Abs(a - (double)b)).Max();
        output.WriteLine($"norm_topk_prob false: kafka's last row moves max |Δ| {moved:E3} off qwen3-tiny's");
        Assert.True(moved > 0.01, $"max |Δ| {moved}");
    }

    /// <summary>Last rows within the tolerance and 12 greedy tokens identical on every case of <paramref name="stem"/>; returns the max |Δ|.</summary>
    private static double AssertReproduces(LanguageModel model, string stem)
    {
        double maxDiff = 0;
        foreach (ExpectedCase expected in ExpectedOutputs.Load(stem))
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
        return maxDiff;
    }
}
