using NextToken.Gguf;
using NextToken.SafeTensors;
using NextToken.Tokenization;
using static NextToken.Models.TensorNames;

namespace NextToken.Models;

/// <summary>Which normalization a block applies to each branch's input.</summary>
public enum NormKind { RmsNorm, LayerNorm }

/// <summary>RMSNorm of the queries and keys before RoPE: per head (Qwen3, Gemma 3) or over the whole projection (OLMoE).</summary>
public enum QkNormKind { None, PerHead, Full }

/// <summary>The feed-forward: silu(gate)·up, gelu_tanh(gate)·up, or GPT-2's GELU MLP with biases.</summary>
public enum FfnKind { SwiGlu, GeGluTanh, GeluMlp }

/// <summary>
/// How a mixture-of-experts block combines its experts: softmax over all experts, then the top k
/// renormalized (Mixtral), or taken as they are (OLMoE, Qwen's norm_topk_prob=false), optionally
/// plus a shared expert gated by a sigmoid (Qwen2-MoE).
/// </summary>
public enum MoeKind { None, SoftmaxTopKRenormalized, SoftmaxTopK, SoftmaxTopKSharedExpert }

/// <summary>How one block of a family is put together; numbers (window, caps) come from the file.</summary>
public sealed record BlockComposition
{
    public NormKind Norm { get; init; } = NormKind.RmsNorm;
    /// <summary>Gemma: a second RMSNorm on each branch's output before it is added to the residual.</summary>
    public bool PostNorms { get; init; }
    /// <summary>RoPE pairing of the GGUF file's q/k rows (llama.cpp permutes only Llama's into adjacent pairs).</summary>
    public RopeStyle Rope { get; init; } = RopeStyle.AdjacentPairs;
    public QkNormKind QkNorm { get; init; }
    /// <summary>q, k and v projections have biases (Qwen2).</summary>
    public bool QkvBias { get; init; }
    /// <summary>One attn_qkv matrix (rows q, k, v) instead of three; one ffn_up holding gate then up.</summary>
    public bool FusedQkv { get; init; }
    public bool FusedGateUp { get; init; }
    public FfnKind Ffn { get; init; } = FfnKind.SwiGlu;
    /// <summary>The kind of mixture used when the file has experts.</summary>
    public MoeKind Moe { get; init; } = MoeKind.None;
    /// <summary>A file of this family without experts is an error (Qwen2-MoE, Qwen3-MoE); Llama's are optional (Mixtral).</summary>
    public bool ExpertsRequired { get; init; }
    /// <summary>Gemma: token embeddings multiplied by √d.</summary>
    public bool ScaleEmbedding { get; init; }
    /// <summary>
    /// Which layers use the sliding window (when the file gives one): 0 none, 1 every layer, n every
    /// layer but each n-th (Gemma 2: 2, layers 0, 2, … local; Gemma 3: 6, five local to one global).
    /// </summary>
    public int SlidingWindowPattern { get; init; }
    /// <summary>Gemma 3: local layers rotate with their own base and without the global layers' linear scaling.</summary>
    public bool LocalRopeUnscaled { get; init; }
}

/// <summary>
/// One model family: its GGUF architecture name, the Hugging Face <c>model_type</c>s it reads,
/// the tensor-name table GGUF ↔ Hugging Face, its block composition, and how to build it.
/// </summary>
public sealed class ModelFamily
{
    public required string Name { get; init; }
    public required string GgufArchitecture { get; init; }
    /// <summary><c>model_type</c>s and <c>architectures[0]</c> class names this family reads from config.json.</summary>
    public string[] HuggingFaceModelTypes { get; init; } = [];
    public TensorNameMapping[] HuggingFaceNames { get; init; } = [];
    public BlockComposition Block { get; init; } = new();
    /// <summary>Builds the model from an open GGUF file (the model then owns it).</summary>
    public required Func<ModelFamily, GgufFile, Tokenizer, string?, LanguageModel> LoadGguf { get; init; }
    /// <summary>Builds the model from a checkpoint, or null when this family is read from GGUF only.</summary>
    public Func<ModelFamily, HuggingFaceCheckpoint, HuggingFaceConfig, int, Tokenizer, string?, LanguageModel>? LoadHuggingFace { get; init; }

    public bool ReadsHuggingFace => LoadHuggingFace is not null && HuggingFaceNames.Length > 0;

    public override string ToString() => Name;
}

/// <summary>Every family this engine runs, looked up by GGUF architecture or Hugging Face model type.</summary>
public static class ModelFamilies
{
    private static LanguageModel Llama(ModelFamily family, GgufFile file, Tokenizer tokenizer, string? template) =>
        new LlamaModel(file, LlamaConfig.FromGguf(file, tokenizer.VocabSize, family), tokenizer, template);

    private static readonly TensorNameMapping[] LlamaHuggingFace =
    [
        new(TokenEmbedding, "model.embed_tokens.weight"),
        new(OutputNorm, "model.norm.weight"),
        new(Output, "lm_head.weight"),
        new(AttnNorm, "model.layers.{0}.input_layernorm.weight"),
        new(AttnQ, "model.layers.{0}.self_attn.q_proj.weight"),
        new(AttnK, "model.layers.{0}.self_attn.k_proj.weight"),
        new(AttnV, "model.layers.{0}.self_attn.v_proj.weight"),
        new(AttnOutput, "model.layers.{0}.self_attn.o_proj.weight"),
        new(FfnNorm, "model.layers.{0}.post_attention_layernorm.weight"),
        new(FfnGate, "model.layers.{0}.mlp.gate_proj.weight"),
        new(FfnUp, "model.layers.{0}.mlp.up_proj.weight"),
        new(FfnDown, "model.layers.{0}.mlp.down_proj.weight"),
    ];

    private static LanguageModel LlamaFromHuggingFace(ModelFamily family, HuggingFaceCheckpoint checkpoint, HuggingFaceConfig config, int vocab, Tokenizer tokenizer, string? template) =>
        new LlamaModel(checkpoint, LlamaConfig.FromHuggingFace(config, vocab, family), tokenizer, template);

    private static readonly TensorNameMapping[] QkvBiasHuggingFace =
    [
        new(AttnQBias, "model.layers.{0}.self_attn.q_proj.bias"),
        new(AttnKBias, "model.layers.{0}.self_attn.k_proj.bias"),
        new(AttnVBias, "model.layers.{0}.self_attn.v_proj.bias"),
    ];

    private static readonly TensorNameMapping[] QkNormHuggingFace =
    [
        new(AttnQNorm, "model.layers.{0}.self_attn.q_norm.weight"),
        new(AttnKNorm, "model.layers.{0}.self_attn.k_norm.weight"),
    ];

    /// <summary>Qwen2-MoE's, Qwen3-MoE's and OLMoE's router and experts, one tensor per expert ({1}).</summary>
    private static readonly TensorNameMapping[] ExpertsHuggingFace =
    [
        new(FfnRouter, "model.layers.{0}.mlp.gate.weight"),
        new(FfnGateExperts, "model.layers.{0}.mlp.experts.{1}.gate_proj.weight"),
        new(FfnUpExperts, "model.layers.{0}.mlp.experts.{1}.up_proj.weight"),
        new(FfnDownExperts, "model.layers.{0}.mlp.experts.{1}.down_proj.weight"),
    ];

    /// <summary>Gemma 2/3: four norms per block, named apart from Llama's; no lm_head (the embedding is the head).</summary>
    private static readonly TensorNameMapping[] GemmaHuggingFace =
    [
        new(TokenEmbedding, "model.embed_tokens.weight"),
        new(OutputNorm, "model.norm.weight"),
        new(AttnNorm, "model.layers.{0}.input_layernorm.weight"),
        new(AttnQ, "model.layers.{0}.self_attn.q_proj.weight"),
        new(AttnK, "model.layers.{0}.self_attn.k_proj.weight"),
        new(AttnV, "model.layers.{0}.self_attn.v_proj.weight"),
        new(AttnOutput, "model.layers.{0}.self_attn.o_proj.weight"),
        new(PostAttnNorm, "model.layers.{0}.post_attention_layernorm.weight"),
        new(FfnNorm, "model.layers.{0}.pre_feedforward_layernorm.weight"),
        new(PostFfnNorm, "model.layers.{0}.post_feedforward_layernorm.weight"),
        new(FfnGate, "model.layers.{0}.mlp.gate_proj.weight"),
        new(FfnUp, "model.layers.{0}.mlp.up_proj.weight"),
        new(FfnDown, "model.layers.{0}.mlp.down_proj.weight"),
    ];

    public static readonly ModelFamily Gpt2 = new()
    {
        Name = "gpt2", GgufArchitecture = "gpt2", HuggingFaceModelTypes = ["gpt2", "GPT2LMHeadModel"],
        Block = new() { Norm = NormKind.LayerNorm, FusedQkv = true, Ffn = FfnKind.GeluMlp },
        HuggingFaceNames =
        [
            new(TokenEmbedding, "wte.weight"),
            new(PositionEmbedding, "wpe.weight"),
            new(OutputNorm, "ln_f.weight"),
            new(OutputNormBias, "ln_f.bias"),
            new(Output, "lm_head.weight"),
            new(AttnNorm, "h.{0}.ln_1.weight"),
            new(AttnNormBias, "h.{0}.ln_1.bias"),
            new(AttnQkv, "h.{0}.attn.c_attn.weight", true),
            new(AttnQkvBias, "h.{0}.attn.c_attn.bias"),
            new(AttnOutput, "h.{0}.attn.c_proj.weight", true),
            new(AttnOutputBias, "h.{0}.attn.c_proj.bias"),
            new(FfnNorm, "h.{0}.ln_2.weight"),
            new(FfnNormBias, "h.{0}.ln_2.bias"),
            new(FfnUp, "h.{0}.mlp.c_fc.weight", true),
            new(FfnUpBias, "h.{0}.mlp.c_fc.bias"),
            new(FfnDown, "h.{0}.mlp.c_proj.weight", true),
            new(FfnDownBias, "h.{0}.mlp.c_proj.bias"),
        ],
        LoadGguf = (_, file, tokenizer, template) => new Gpt2Model(file, Gpt2Config.FromGguf(file, tokenizer.VocabSize), tokenizer, template),
        LoadHuggingFace = (_, checkpoint, config, vocab, tokenizer, template) => new Gpt2Model(checkpoint, Gpt2Config.FromHuggingFace(config, vocab), tokenizer, template),
    };

    /// <summary>Llama 1–3 (rope_freqs), Mistral, SmolLM2, TinyLlama, and Mixtral-style experts.</summary>
    public static readonly ModelFamily LlamaFamily = new()
    {
        Name = "llama", GgufArchitecture = "llama",
        HuggingFaceModelTypes = ["llama", "mistral", "mixtral", "LlamaForCausalLM", "MistralForCausalLM", "MixtralForCausalLM"],
        Block = new() { Rope = RopeStyle.AdjacentPairs, Moe = MoeKind.SoftmaxTopKRenormalized },
        HuggingFaceNames =
        [
            .. LlamaHuggingFace,
            // Mixtral: the router, and each expert as its own tensors ({1} the expert): w1 gate, w2 down, w3 up.
            new(FfnRouter, "model.layers.{0}.block_sparse_moe.gate.weight"),
            new(FfnGateExperts, "model.layers.{0}.block_sparse_moe.experts.{1}.w1.weight"),
            new(FfnDownExperts, "model.layers.{0}.block_sparse_moe.experts.{1}.w2.weight"),
            new(FfnUpExperts, "model.layers.{0}.block_sparse_moe.experts.{1}.w3.weight"),
        ],
        LoadGguf = Llama,
        LoadHuggingFace = LlamaFromHuggingFace,
    };

    public static readonly ModelFamily Qwen2 = new()
    {
        Name = "qwen2", GgufArchitecture = "qwen2", HuggingFaceModelTypes = ["qwen2", "Qwen2ForCausalLM"],
        Block = new() { Rope = RopeStyle.Halves, QkvBias = true },
        HuggingFaceNames = [.. LlamaHuggingFace, .. QkvBiasHuggingFace],
        LoadGguf = Llama,
        LoadHuggingFace = LlamaFromHuggingFace,
    };

    public static readonly ModelFamily Qwen3 = new()
    {
        Name = "qwen3", GgufArchitecture = "qwen3", HuggingFaceModelTypes = ["qwen3", "Qwen3ForCausalLM"],
        Block = new() { Rope = RopeStyle.Halves, QkNorm = QkNormKind.PerHead },
        HuggingFaceNames = [.. LlamaHuggingFace, .. QkNormHuggingFace],
        LoadGguf = Llama,
        LoadHuggingFace = LlamaFromHuggingFace,
    };

    public static readonly ModelFamily Qwen2Moe = new()
    {
        Name = "qwen2moe", GgufArchitecture = "qwen2moe", HuggingFaceModelTypes = ["qwen2_moe", "Qwen2MoeForCausalLM"],
        Block = new() { Rope = RopeStyle.Halves, QkvBias = true, Moe = MoeKind.SoftmaxTopKSharedExpert, ExpertsRequired = true },
        HuggingFaceNames =
        [
            .. LlamaHuggingFace, .. QkvBiasHuggingFace, .. ExpertsHuggingFace,
            new(FfnRouterShared, "model.layers.{0}.mlp.shared_expert_gate.weight"),
            new(FfnGateShared, "model.layers.{0}.mlp.shared_expert.gate_proj.weight"),
            new(FfnUpShared, "model.layers.{0}.mlp.shared_expert.up_proj.weight"),
            new(FfnDownShared, "model.layers.{0}.mlp.shared_expert.down_proj.weight"),
        ],
        LoadGguf = Llama,
        LoadHuggingFace = LlamaFromHuggingFace,
    };

    /// <summary>
    /// Qwen3-MoE: Qwen3's attention (per-head q/k RMSNorm) with a softmax router and top-k experts, no
    /// shared expert. llama.cpp always renormalizes the top k for it (no GGUF key); checkpoints follow norm_topk_prob.
    /// </summary>
    public static readonly ModelFamily Qwen3Moe = new()
    {
        Name = "qwen3moe", GgufArchitecture = "qwen3moe", HuggingFaceModelTypes = ["qwen3_moe", "Qwen3MoeForCausalLM"],
        Block = new() { Rope = RopeStyle.Halves, QkNorm = QkNormKind.PerHead, Moe = MoeKind.SoftmaxTopKRenormalized, ExpertsRequired = true },
        HuggingFaceNames = [.. LlamaHuggingFace, .. QkNormHuggingFace, .. ExpertsHuggingFace],
        LoadGguf = Llama,
        LoadHuggingFace = LlamaFromHuggingFace,
    };

    public static readonly ModelFamily Olmoe = new()
    {
        Name = "olmoe", GgufArchitecture = "olmoe", HuggingFaceModelTypes = ["olmoe", "OlmoeForCausalLM"],
        Block = new() { Rope = RopeStyle.Halves, QkNorm = QkNormKind.Full, Moe = MoeKind.SoftmaxTopK },
        HuggingFaceNames = [.. LlamaHuggingFace, .. QkNormHuggingFace, .. ExpertsHuggingFace],
        LoadGguf = Llama,
        LoadHuggingFace = LlamaFromHuggingFace,
    };

    public static readonly ModelFamily Gemma2 = new()
    {
        Name = "gemma2", GgufArchitecture = "gemma2", HuggingFaceModelTypes = ["gemma2", "Gemma2ForCausalLM"],
        Block = new() { Rope = RopeStyle.Halves, PostNorms = true, Ffn = FfnKind.GeGluTanh, ScaleEmbedding = true, SlidingWindowPattern = 2 },
        HuggingFaceNames = GemmaHuggingFace,
        LoadGguf = Llama,
        LoadHuggingFace = LlamaFromHuggingFace,
    };

    public static readonly ModelFamily Gemma3 = new()
    {
        Name = "gemma3", GgufArchitecture = "gemma3", HuggingFaceModelTypes = ["gemma3_text", "Gemma3ForCausalLM"],
        HuggingFaceNames = [.. GemmaHuggingFace, .. QkNormHuggingFace],
        LoadHuggingFace = LlamaFromHuggingFace,
        Block = new()
        {
            Rope = RopeStyle.Halves, PostNorms = true, QkNorm = QkNormKind.PerHead, Ffn = FfnKind.GeGluTanh, ScaleEmbedding = true,
            SlidingWindowPattern = 6, LocalRopeUnscaled = true,
        },
        LoadGguf = Llama,
    };

    public static readonly ModelFamily Phi3 = new()
    {
        Name = "phi3", GgufArchitecture = "phi3", HuggingFaceModelTypes = ["phi3", "Phi3ForCausalLM"],
        Block = new() { Rope = RopeStyle.Halves, FusedQkv = true, FusedGateUp = true, SlidingWindowPattern = 1 },
        HuggingFaceNames =
        [
            .. LlamaHuggingFace.Where(n => n.Gguf is not (AttnQ or AttnK or AttnV or FfnGate or FfnUp)),
            new(AttnQkv, "model.layers.{0}.self_attn.qkv_proj.weight"),
            new(FfnUp, "model.layers.{0}.mlp.gate_up_proj.weight"),
        ],
        LoadGguf = Llama,
        LoadHuggingFace = LlamaFromHuggingFace,
    };

    public static readonly IReadOnlyList<ModelFamily> All = [Gpt2, LlamaFamily, Qwen2, Qwen3, Qwen3Moe, Qwen2Moe, Olmoe, Gemma2, Gemma3, Phi3];

    public static ModelFamily? ForGguf(string architecture) => All.FirstOrDefault(f => f.GgufArchitecture == architecture);

    public static ModelFamily? ForHuggingFace(string modelType) => All.FirstOrDefault(f => f.ReadsHuggingFace && f.HuggingFaceModelTypes.Contains(modelType));

    public static string GgufNames => string.Join(", ", All.Select(f => f.GgufArchitecture));

    public static string HuggingFaceNamesList => string.Join(", ", All.Where(f => f.ReadsHuggingFace).Select(f => f.Name));
}
