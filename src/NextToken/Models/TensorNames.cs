namespace NextToken.Models;

/// <summary>
/// GGUF tensor names per architecture, as llama.cpp's <c>llama-arch.cpp</c> lists them;
/// <c>{0}</c> is the layer index.
/// </summary>
public static class TensorNames
{
    public const string TokenEmbedding = "token_embd.weight";
    public const string PositionEmbedding = "position_embd.weight";
    public const string OutputNorm = "output_norm.weight";
    public const string OutputNormBias = "output_norm.bias";
    public const string Output = "output.weight";

    public const string AttnNorm = "blk.{0}.attn_norm.weight";
    public const string AttnNormBias = "blk.{0}.attn_norm.bias";
    public const string AttnQ = "blk.{0}.attn_q.weight";
    public const string AttnK = "blk.{0}.attn_k.weight";
    public const string AttnV = "blk.{0}.attn_v.weight";
    public const string AttnQkv = "blk.{0}.attn_qkv.weight";
    public const string AttnQkvBias = "blk.{0}.attn_qkv.bias";
    public const string AttnOutput = "blk.{0}.attn_output.weight";
    public const string AttnOutputBias = "blk.{0}.attn_output.bias";
    public const string FfnNorm = "blk.{0}.ffn_norm.weight";
    public const string FfnNormBias = "blk.{0}.ffn_norm.bias";
    public const string FfnGate = "blk.{0}.ffn_gate.weight";
    public const string FfnUp = "blk.{0}.ffn_up.weight";
    public const string FfnUpBias = "blk.{0}.ffn_up.bias";
    public const string FfnDown = "blk.{0}.ffn_down.weight";
    public const string FfnDownBias = "blk.{0}.ffn_down.bias";
    public const string FfnRouter = "blk.{0}.ffn_gate_inp.weight";
    public const string FfnGateExperts = "blk.{0}.ffn_gate_exps.weight";
    public const string FfnUpExperts = "blk.{0}.ffn_up_exps.weight";
    public const string FfnDownExperts = "blk.{0}.ffn_down_exps.weight";

    public static string Layer(string pattern, int layer) => string.Format(System.Globalization.CultureInfo.InvariantCulture, pattern, layer);

    /// <summary>
    /// Hugging Face names of the same tensors, per <c>model_type</c>, as llama.cpp's converter maps
    /// them. "Transposed" marks GPT-2's Conv1D weights, stored [in][out].
    /// </summary>
    public static readonly IReadOnlyDictionary<string, (string Gguf, string HuggingFace, bool Transposed)[]> HuggingFace =
        new Dictionary<string, (string, string, bool)[]>
        {
            ["gpt2"] =
            [
                (TokenEmbedding, "wte.weight", false),
                (PositionEmbedding, "wpe.weight", false),
                (OutputNorm, "ln_f.weight", false),
                (OutputNormBias, "ln_f.bias", false),
                (Output, "lm_head.weight", false),
                (AttnNorm, "h.{0}.ln_1.weight", false),
                (AttnNormBias, "h.{0}.ln_1.bias", false),
                (AttnQkv, "h.{0}.attn.c_attn.weight", true),
                (AttnQkvBias, "h.{0}.attn.c_attn.bias", false),
                (AttnOutput, "h.{0}.attn.c_proj.weight", true),
                (AttnOutputBias, "h.{0}.attn.c_proj.bias", false),
                (FfnNorm, "h.{0}.ln_2.weight", false),
                (FfnNormBias, "h.{0}.ln_2.bias", false),
                (FfnUp, "h.{0}.mlp.c_fc.weight", true),
                (FfnUpBias, "h.{0}.mlp.c_fc.bias", false),
                (FfnDown, "h.{0}.mlp.c_proj.weight", true),
                (FfnDownBias, "h.{0}.mlp.c_proj.bias", false),
            ],
            ["llama"] =
            [
                (TokenEmbedding, "model.embed_tokens.weight", false),
                (OutputNorm, "model.norm.weight", false),
                (Output, "lm_head.weight", false),
                (AttnNorm, "model.layers.{0}.input_layernorm.weight", false),
                (AttnQ, "model.layers.{0}.self_attn.q_proj.weight", false),
                (AttnK, "model.layers.{0}.self_attn.k_proj.weight", false),
                (AttnV, "model.layers.{0}.self_attn.v_proj.weight", false),
                (AttnOutput, "model.layers.{0}.self_attn.o_proj.weight", false),
                (FfnNorm, "model.layers.{0}.post_attention_layernorm.weight", false),
                (FfnGate, "model.layers.{0}.mlp.gate_proj.weight", false),
                (FfnUp, "model.layers.{0}.mlp.up_proj.weight", false),
                (FfnDown, "model.layers.{0}.mlp.down_proj.weight", false),
            ],
        };
}
