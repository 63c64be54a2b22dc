using NextToken.Gguf;

namespace NextToken.Models;

/// <summary>Which elements rotary embeddings pair up.</summary>
public enum RopeStyle
{
    /// <summary>(x[2i], x[2i+1]): GGUF files, whose converter permutes the q/k rows into this order.</summary>
    AdjacentPairs,
    /// <summary>(x[i], x[i + d/2]): Hugging Face checkpoints ("rotate half").</summary>
    Halves,
}

/// <summary>Llama-family hyperparameters, from <c>llama.*</c> GGUF metadata or a Hugging Face config.json.</summary>
public sealed record LlamaConfig(
    int NLayer, int NEmbd, int NHead, int NKvHead, int HeadDim, int NCtx, int NFf, int NVocab,
    float RmsNormEps, double RopeFreqBase, int RopeDims, int NExpert, int NExpertUsed, RopeStyle RopeStyle = RopeStyle.AdjacentPairs)
{
    private const long MaxDimension = 1 << 20;

    public int QueryDim => NHead * HeadDim;
    public int KvDim => NKvHead * HeadDim;
    public bool IsMixtureOfExperts => NExpert > 0;

    public static LlamaConfig FromGguf(GgufFile file, int vocabSize, string prefix = "llama")
    {
        int Dim(string key, long? fallback = null, long min = 1)
        {
            long value = fallback is { } f && !file.ContainsKey(key) ? f : file.GetInteger(key);
            if (value < min || value > MaxDimension)
                throw new GgufFormatException(file.FilePath, null, $"'{key}' is {value}; expected {min} to {MaxDimension}");
            return (int)value;
        }

        int nEmbd = Dim($"{prefix}.embedding_length");
        int nHead = Dim($"{prefix}.attention.head_count");
        int nKvHead = Dim($"{prefix}.attention.head_count_kv", nHead);
        if (nHead % nKvHead != 0)
            throw new GgufFormatException(file.FilePath, null, $"'{prefix}.attention.head_count' {nHead} is not a multiple of 'head_count_kv' {nKvHead}");
        if (nEmbd % nHead != 0 && !file.ContainsKey($"{prefix}.attention.key_length"))
            throw new GgufFormatException(file.FilePath, null, $"'{prefix}.embedding_length' {nEmbd} is not divisible by the head count {nHead}");
        int headDim = Dim($"{prefix}.attention.key_length", nEmbd / nHead);
        int ropeDims = Dim($"{prefix}.rope.dimension_count", headDim);
        if (ropeDims > headDim || ropeDims % 2 != 0)
            throw new GgufFormatException(file.FilePath, null, $"'{prefix}.rope.dimension_count' {ropeDims} must be even and at most the head size {headDim}");
        int nExpert = Dim($"{prefix}.expert_count", 0, min: 0);
        int nExpertUsed = Dim($"{prefix}.expert_used_count", 0, min: 0);
        if (nExpert > 0 && (nExpertUsed < 1 || nExpertUsed > nExpert))
            throw new GgufFormatException(file.FilePath, null, $"'{prefix}.expert_used_count' is {nExpertUsed}; expected 1 to 'expert_count' {nExpert}");
        return new LlamaConfig(
            NLayer: Dim($"{prefix}.block_count"),
            NEmbd: nEmbd,
            NHead: nHead,
            NKvHead: nKvHead,
            HeadDim: headDim,
            NCtx: Dim($"{prefix}.context_length"),
            NFf: Dim($"{prefix}.feed_forward_length"),
            NVocab: vocabSize,
            RmsNormEps: (float)(file.GetFloatOrNull($"{prefix}.attention.layer_norm_rms_epsilon") ?? 1e-5),
            RopeFreqBase: file.GetFloatOrNull($"{prefix}.rope.freq_base") ?? 10000.0,
            RopeDims: ropeDims,
            NExpert: nExpert,
            NExpertUsed: nExpertUsed);
    }

    /// <summary>From a Hugging Face <c>LlamaForCausalLM</c>-style config.json (its q/k use rotate-half RoPE).</summary>
    public static LlamaConfig FromHuggingFace(HuggingFaceConfig config, int vocabSize)
    {
        int nEmbd = config.Dimension("hidden_size");
        int nHead = config.Dimension("num_attention_heads");
        int nKvHead = config.Dimension("num_key_value_heads", nHead);
        if (nHead % nKvHead != 0)
            throw new NextTokenException($"{config.Path}: 'num_attention_heads' {nHead} is not a multiple of 'num_key_value_heads' {nKvHead}");
        int headDim = config.Dimension("head_dim", nEmbd / nHead);
        if (config.Has("num_local_experts"))
            throw new NextTokenException($"{config.Path}: mixture-of-experts Hugging Face checkpoints (num_local_experts) are not supported yet; use a GGUF file");
        return new LlamaConfig(
            NLayer: config.Dimension("num_hidden_layers"), NEmbd: nEmbd, NHead: nHead, NKvHead: nKvHead, HeadDim: headDim,
            NCtx: config.Dimension("max_position_embeddings"), NFf: config.Dimension("intermediate_size"), NVocab: vocabSize,
            RmsNormEps: (float)config.Number("rms_norm_eps", 1e-6), RopeFreqBase: config.Number("rope_theta", 10000.0),
            RopeDims: headDim, NExpert: 0, NExpertUsed: 0, RopeStyle: RopeStyle.Halves);
    }
}
