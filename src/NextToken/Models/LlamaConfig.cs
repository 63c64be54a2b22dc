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

/// <summary>
/// Hyperparameters of a Llama-like decoder (Llama, Qwen2/3, Qwen2/3-MoE, OLMoE, Gemma 2/3, Phi-3), from
/// <c>{architecture}.*</c> GGUF metadata or a Hugging Face config.json; <see cref="Block"/> says how
/// the family composes a block.
/// </summary>
public sealed record LlamaConfig(
    int NLayer, int NEmbd, int NHead, int NKvHead, int HeadDim, int NCtx, int NFf, int NVocab,
    float RmsNormEps, double RopeFreqBase, int RopeDims, int NExpert, int NExpertUsed, RopeStyle RopeStyle = RopeStyle.AdjacentPairs)
{
    private const long MaxDimension = 1 << 20;

    public int QueryDim => NHead * HeadDim;
    public int KvDim => NKvHead * HeadDim;
    public bool IsMixtureOfExperts => NExpert > 0;

    /// <summary>The family's name, as <c>general.architecture</c> gives it.</summary>
    public string Family { get; init; } = "llama";
    public BlockComposition Block { get; init; } = new() { Moe = MoeKind.SoftmaxTopKRenormalized };
    /// <summary>Width of each routed expert (Qwen2-MoE's <c>expert_feed_forward_length</c>); 0 means <see cref="NFf"/>.</summary>
    public int NFfExpert { get; init; }
    /// <summary>Width of the shared expert (Qwen2-MoE), 0 without one.</summary>
    public int NFfShared { get; init; }
    /// <summary>Gemma 2: attention scores become cap·tanh(s/cap) before the mask; 0 = off.</summary>
    public float AttnSoftcap { get; init; }
    /// <summary>Gemma 2: logits become cap·tanh(l/cap); 0 = off.</summary>
    public float FinalSoftcap { get; init; }
    /// <summary>Keys a query sees on local layers (itself included); 0 = no window.</summary>
    public int SlidingWindow { get; init; }
    /// <summary>RoPE base of the local (sliding-window) layers; 0 means <see cref="RopeFreqBase"/>.</summary>
    public double RopeFreqBaseLocal { get; init; }
    /// <summary>Linear RoPE scaling: angles divided by this factor (1 = none).</summary>
    public double RopeLinearScale { get; init; } = 1;
    /// <summary>LongRoPE's magnitude correction: cos and sin multiplied by it (Phi-3).</summary>
    public double RopeAttnFactor { get; init; } = 1;
    /// <summary>Multiplier of q·k; 0 means 1/√headDim.</summary>
    public float QueryScale { get; init; }
    /// <summary>Gemma's Hugging Face checkpoints store norm weights w applied as (1 + w); GGUF files store 1 + w already.</summary>
    public bool NormWeightsPlusOne { get; init; }
    /// <summary>Per RoPE pair, a divisor of its frequency computed from config.json (Llama 3's rope_scaling); GGUF files carry them as a tensor instead.</summary>
    public float[]? RopeFreqFactors { get; init; }

    public int ExpertFf => NFfExpert > 0 ? NFfExpert : NFf;
    public int MaxFf => Math.Max(NFf, Math.Max(ExpertFf, NFfShared));
    public float AttentionScale => QueryScale > 0 ? QueryScale : 1f / MathF.Sqrt(HeadDim);

    /// <summary>True when layer <paramref name="layer"/> attends through the sliding window.</summary>
    public bool IsLocalLayer(int layer) =>
        SlidingWindow > 0 && Block.SlidingWindowPattern switch { 0 => false, 1 => true, var p => (layer + 1) % p != 0 };

    /// <summary>The window of layer <paramref name="layer"/>, 0 for full causal attention.</summary>
    public int WindowOf(int layer) => IsLocalLayer(layer) && SlidingWindow < NCtx ? SlidingWindow : 0;

    /// <summary>
    /// Llama 3.1+'s frequency divisors: pairs whose wavelength is shorter than
    /// original_max_position_embeddings / high_freq_factor keep their frequency, those longer than
    /// … / low_freq_factor are divided by factor, and the band between blends the two (as
    /// transformers' llama3 rope init and llama.cpp's rope_freqs tensor do).
    /// </summary>
    /// <summary>A list of per-pair factors from config.json (LongRoPE's short_factor), checked for length and sign.</summary>
    private static float[] Factors(HuggingFaceConfig scaling, string key, int count)
    {
        double[] values = scaling.Numbers(key);
        if (values.Length != count || values.Any(v => !(v > 0)))
            throw new NextTokenException($"{scaling.Path}: '{key}' has {values.Length} values; expected {count} positive numbers (one per rotary pair)");
        return values.Select(v => (float)v).ToArray();
    }

    internal static float[] Llama3RopeFactors(HuggingFaceConfig scaling, double factor, double ropeBase, int ropeDims)
    {
        double low = scaling.Number("low_freq_factor", 1), high = scaling.Number("high_freq_factor", 4);
        double original = scaling.Dimension("original_max_position_embeddings");
        if (!(high > low)) throw new NextTokenException($"{scaling.Path}: 'high_freq_factor' {high} must exceed 'low_freq_factor' {low}");
        var factors = new float[ropeDims / 2];
        for (int i = 0; i < factors.Length; i++)
        {
            double wavelength = 2 * Math.PI * Math.Pow(ropeBase, 2.0 * i / ropeDims);
            if (wavelength < original / high) factors[i] = 1;
            else if (wavelength > original / low) factors[i] = (float)factor;
            else
            {
                double smooth = (original / wavelength - low) / (high - low);
                factors[i] = (float)(1 / ((1 - smooth) / factor + smooth));
            }
        }
        return factors;
    }

    /// <summary>
    /// What sets this family's blocks apart, one line per setting (for <c>info</c>); <paramref name="ropeFactors"/>
    /// names the per-pair frequency tensor when the file has one.
    /// </summary>
    public IReadOnlyList<(string Setting, string Value)> Describe(string? ropeFactors = null)
    {
        static string N(double x) => x.ToString("0.######", System.Globalization.CultureInfo.InvariantCulture);
        var lines = new List<(string, string)>
        {
            ("family", Family),
            ("norms", $"RMSNorm (eps {N(RmsNormEps)}) before attention and feed-forward" + (Block.PostNorms ? ", and on each branch's output before its residual add" : "")),
            ("attention", $"{NHead} query heads, {NKvHead} KV heads of {HeadDim}; scores q·k × {N(AttentionScale)}"
                + (Block.QkvBias ? "; q/k/v biases" : "")
                + Block.QkNorm switch { QkNormKind.PerHead => "; RMSNorm of each head's q and k", QkNormKind.Full => "; RMSNorm over the whole q and k", _ => "" }
                + (AttnSoftcap > 0 ? $"; scores capped {N(AttnSoftcap)}·tanh(s/{N(AttnSoftcap)})" : "")),
            ("rope", (RopeStyle == RopeStyle.Halves ? "NeoX halves (x[i], x[i+d/2])" : "adjacent pairs (x[2i], x[2i+1])")
                + $", {RopeDims} dims, base {N(RopeFreqBase)}"
                + (RopeLinearScale != 1 ? $", linear scaling ×{N(RopeLinearScale)}" : "")
                + (ropeFactors is not null ? $", frequencies divided by {ropeFactors}" : RopeFreqFactors is not null ? ", frequencies divided by per-pair factors from config.json" : "")
                + (RopeAttnFactor != 1 ? $", cos/sin × {N(RopeAttnFactor)}" : "")),
        };
        if (SlidingWindow > 0)
        {
            int[] local = Enumerable.Range(0, NLayer).Where(IsLocalLayer).ToArray();
            string which = local.Length == NLayer ? "every layer" : $"layers {string.Join(", ", local)} of {NLayer}";
            double localBase = RopeFreqBaseLocal > 0 ? RopeFreqBaseLocal : RopeFreqBase;
            lines.Add(("sliding window", $"{SlidingWindow} keys on {which}"
                + (WindowOf(local.FirstOrDefault()) == 0 ? " (not narrower than the context)" : "")
                + (localBase != RopeFreqBase || Block.LocalRopeUnscaled ? $"; their RoPE base {N(localBase)}{(Block.LocalRopeUnscaled && RopeLinearScale != 1 ? ", unscaled" : "")}" : "")));
        }
        string ffn = Block.Ffn == FfnKind.GeGluTanh ? "GeGLU, gelu_tanh(gate)·up" : "SwiGLU, silu(gate)·up";
        if (Block.FusedGateUp) ffn += " (gate and up fused in ffn_up)";
        lines.Add(("feed-forward", IsMixtureOfExperts
            ? $"{NExpert} experts of {ExpertFf} ({ffn}), softmax router, top {NExpertUsed} "
              + (Block.Moe == MoeKind.SoftmaxTopKRenormalized ? "renormalized" : "weights as they are")
              + (NFfShared > 0 ? $", plus a shared expert of {NFfShared} gated by a sigmoid" : "")
            : $"{ffn}, width {NFf}"));
        if (Block.FusedQkv) lines.Add(("projections", "q, k and v fused in attn_qkv"));
        if (Block.ScaleEmbedding) lines.Add(("embedding", $"scaled by √{NEmbd} = {N(Math.Sqrt(NEmbd))}"));
        if (FinalSoftcap > 0) lines.Add(("logits", $"capped {N(FinalSoftcap)}·tanh(l/{N(FinalSoftcap)})"));
        return lines;
    }

    public static LlamaConfig FromGguf(GgufFile file, int vocabSize) => FromGguf(file, vocabSize, ModelFamilies.LlamaFamily);

    public static LlamaConfig FromGguf(GgufFile file, int vocabSize, ModelFamily family)
    {
        string prefix = family.GgufArchitecture;
        BlockComposition block = family.Block;
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
        int nLayer = Dim($"{prefix}.block_count");
        int nFf = Dim($"{prefix}.feed_forward_length");
        float Cap(string key)
        {
            double value = file.GetFloatOrNull(key) ?? 0;
            if (!double.IsFinite(value) || value < 0)
                throw new GgufFormatException(file.FilePath, null, $"'{key}' is {value}; expected a positive number");
            return (float)value;
        }
        double ropeBase = file.GetFloatOrNull($"{prefix}.rope.freq_base") ?? 10000.0;
        double linear = 1;
        if (file.GetStringOrNull($"{prefix}.rope.scaling.type") is { } scaling)
        {
            if (scaling == "linear") linear = file.GetFloatOrNull($"{prefix}.rope.scaling.factor") ?? 1;
            else if (scaling != "none" && scaling != "yarn" && scaling != "longrope")
                throw new GgufFormatException(file.FilePath, null, $"'{prefix}.rope.scaling.type' is '{scaling}'; supported: none, linear, longrope");
        }
        if (!(linear >= 1) || !double.IsFinite(linear))
            throw new GgufFormatException(file.FilePath, null, $"'{prefix}.rope.scaling.factor' is {linear}; expected a number ≥ 1");
        if (block.ExpertsRequired && nExpert == 0)
            throw new GgufFormatException(file.FilePath, null, $"'{prefix}.expert_count' is missing; a {family.Name} file has experts");
        // Gemma's 27B models scale queries by 1/√(d/heads) rather than 1/√headDim (query_pre_attn_scalar);
        // GGUF has no key for it, so llama.cpp goes by their layer counts (46: Gemma 2, 62: Gemma 3), as here.
        float queryScale = (family.Name == "gemma2" && nLayer == 46) || (family.Name == "gemma3" && nLayer == 62)
            ? 1f / MathF.Sqrt(nEmbd / nHead) : 0;
        return new LlamaConfig(
            NLayer: nLayer,
            NEmbd: nEmbd,
            NHead: nHead,
            NKvHead: nKvHead,
            HeadDim: headDim,
            NCtx: Dim($"{prefix}.context_length"),
            NFf: nFf,
            NVocab: vocabSize,
            RmsNormEps: (float)(file.GetFloatOrNull($"{prefix}.attention.layer_norm_rms_epsilon") ?? 1e-5),
            RopeFreqBase: ropeBase,
            RopeDims: ropeDims,
            NExpert: nExpert,
            NExpertUsed: nExpertUsed,
            RopeStyle: block.Rope)
        {
            Family = family.Name,
            Block = block,
            NFfExpert = nExpert > 0 ? Dim($"{prefix}.expert_feed_forward_length", nFf) : 0,
            NFfShared = block.Moe == MoeKind.SoftmaxTopKSharedExpert ? Dim($"{prefix}.expert_shared_feed_forward_length", nFf) : 0,
            AttnSoftcap = Cap($"{prefix}.attn_logit_softcapping"),
            FinalSoftcap = Cap($"{prefix}.final_logit_softcapping"),
            SlidingWindow = block.SlidingWindowPattern > 0 ? Dim($"{prefix}.attention.sliding_window", 0, min: 0) : 0,
            RopeFreqBaseLocal = file.GetFloatOrNull($"{prefix}.rope.freq_base_swa") ?? (block.LocalRopeUnscaled ? 10000.0 : ropeBase),
            RopeLinearScale = linear,
            RopeAttnFactor = file.GetFloatOrNull($"{prefix}.rope.scaling.attn_factor") ?? 1,
            QueryScale = queryScale,
        };
    }

    /// <summary>From a Hugging Face <c>LlamaForCausalLM</c>-style config.json (its q/k use rotate-half RoPE).</summary>
    public static LlamaConfig FromHuggingFace(HuggingFaceConfig config, int vocabSize, ModelFamily family)
    {
        int nEmbd = config.Dimension("hidden_size");
        int nHead = config.Dimension("num_attention_heads");
        int nKvHead = config.Dimension("num_key_value_heads", nHead);
        if (nHead % nKvHead != 0)
            throw new NextTokenException($"{config.Path}: 'num_attention_heads' {nHead} is not a multiple of 'num_key_value_heads' {nKvHead}");
        int headDim = config.Dimension("head_dim", nEmbd / nHead);
        // Experts: Mixtral's num_local_experts, Qwen2-MoE's and OLMoE's num_experts; num_experts_per_tok of them per token.
        string expertKey = config.Has("num_local_experts") ? "num_local_experts" : "num_experts";
        int nExpert = config.Has(expertKey) ? config.Dimension(expertKey) : 0;
        int nExpertUsed = nExpert > 0 ? config.Dimension("num_experts_per_tok") : 0;
        if (nExpertUsed > nExpert)
            throw new NextTokenException($"{config.Path}: 'num_experts_per_tok' {nExpertUsed} exceeds '{expertKey}' {nExpert}");
        if (family.Block.ExpertsRequired && nExpert == 0)
            throw new NextTokenException($"{config.Path}: missing required key 'num_experts' (a {family.Name} checkpoint has experts)");
        int nFf = config.Dimension("intermediate_size");
        double ropeBase = config.Number("rope_theta", 10000.0), linear = 1, attnFactor = 1;
        double partial = config.Number("partial_rotary_factor", 1);
        int ropeDims = (int)(headDim * partial);
        if (!(partial > 0 && partial <= 1) || ropeDims % 2 != 0)
            throw new NextTokenException($"{config.Path}: 'partial_rotary_factor' {partial} must give an even number of rotary dimensions of the head's {headDim}");
        float[]? ropeFactors = null;
        if (config.Section("rope_scaling") is { } scaling)
        {
            string type = scaling.String("rope_type") ?? scaling.String("type") ?? throw new NextTokenException($"{scaling.Path}: missing 'rope_type'");
            double factor = scaling.Number("factor", 1);
            if (!(factor >= 1)) throw new NextTokenException($"{scaling.Path}: 'factor' is {factor}; expected a number ≥ 1");
            if (type == "linear") linear = factor;
            else if (type == "llama3") ropeFactors = Llama3RopeFactors(scaling, factor, ropeBase, ropeDims);
            else if (type is "longrope" or "su")
            {
                // Phi-3: the short factors, which apply while a sequence stays within original_max_position_embeddings
                // (as the GGUF path does), and the magnitude correction √(1 + ln(s)/ln(original)), s = context / original.
                ropeFactors = Factors(scaling, "short_factor", ropeDims / 2);
                double original = config.Dimension("original_max_position_embeddings"), s = config.Dimension("max_position_embeddings") / original;
                attnFactor = s <= 1 ? 1 : Math.Sqrt(1 + Math.Log(s) / Math.Log(original));
            }
            else if (type != "default")
                throw new NextTokenException($"{scaling.Path}: 'rope_type' '{type}' is not supported yet; supported: default, linear, llama3, longrope");
        }
        BlockComposition block = family.Block with { Rope = RopeStyle.Halves };
        // Qwen3-MoE: transformers renormalizes the top k only when norm_topk_prob is set (Qwen3's released MoEs set it).
        if (block.Moe == MoeKind.SoftmaxTopKRenormalized && !config.Bool("norm_topk_prob", true)) block = block with { Moe = MoeKind.SoftmaxTopK };
        bool gemma = family.Block.ScaleEmbedding;
        return new LlamaConfig(
            NLayer: config.Dimension("num_hidden_layers"), NEmbd: nEmbd, NHead: nHead, NKvHead: nKvHead, HeadDim: headDim,
            NCtx: config.Dimension("max_position_embeddings"), NFf: nFf, NVocab: vocabSize,
            RmsNormEps: (float)config.Number("rms_norm_eps", 1e-6), RopeFreqBase: ropeBase,
            RopeDims: ropeDims, NExpert: nExpert, NExpertUsed: nExpertUsed, RopeStyle: RopeStyle.Halves)
        {
            RopeLinearScale = linear,
            RopeFreqFactors = ropeFactors,
            RopeAttnFactor = attnFactor,
            Family = family.Name,
            Block = block,
            NormWeightsPlusOne = gemma,
            // Gemma: q·k scaled by query_pre_attn_scalar^(−1/2), softcaps, a window on the local layers (Gemma 3 gives their RoPE base).
            QueryScale = config.Has("query_pre_attn_scalar") ? (float)(1 / Math.Sqrt(config.Number("query_pre_attn_scalar", 1))) : 0,
            AttnSoftcap = (float)config.Number("attn_logit_softcapping", 0),
            FinalSoftcap = (float)config.Number("final_logit_softcapping", 0),
            SlidingWindow = block.SlidingWindowPattern > 0 && config.Has("sliding_window") ? config.Dimension("sliding_window") : 0,
            RopeFreqBaseLocal = config.Number("rope_local_base_freq", 0),
            NFfExpert = nExpert > 0 ? config.Dimension("moe_intermediate_size", nFf) : 0,
            NFfShared = family.Block.Moe == MoeKind.SoftmaxTopKSharedExpert ? config.Dimension("shared_expert_intermediate_size") : 0,
        };
    }
}
