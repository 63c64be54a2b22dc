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

    // Further families (llama.cpp's llama-arch.cpp names).
    public const string RopeFreqs = "rope_freqs.weight";                 // Llama 3: per-pair frequency divisors
    public const string RopeFactorsShort = "rope_factors_short.weight";  // Phi-3 LongRoPE
    public const string RopeFactorsLong = "rope_factors_long.weight";
    public const string AttnQBias = "blk.{0}.attn_q.bias";
    public const string AttnKBias = "blk.{0}.attn_k.bias";
    public const string AttnVBias = "blk.{0}.attn_v.bias";
    public const string AttnQNorm = "blk.{0}.attn_q_norm.weight";
    public const string AttnKNorm = "blk.{0}.attn_k_norm.weight";
    public const string PostAttnNorm = "blk.{0}.post_attention_norm.weight"; // Gemma 2/3: on the attention branch before its add
    public const string PostFfnNorm = "blk.{0}.post_ffw_norm.weight";
    public const string FfnRouterShared = "blk.{0}.ffn_gate_inp_shexp.weight";
    public const string FfnGateShared = "blk.{0}.ffn_gate_shexp.weight";
    public const string FfnUpShared = "blk.{0}.ffn_up_shexp.weight";
    public const string FfnDownShared = "blk.{0}.ffn_down_shexp.weight";

    public static string Layer(string pattern, int layer) => string.Format(System.Globalization.CultureInfo.InvariantCulture, pattern, layer);
}
