using NextToken.Gguf;
using NextToken.Kernels;
using NextToken.Tensors;

namespace NextToken.Models;

/// <summary>One Llama block. Matrices are views over the mapped file; norms are small float32 copies.</summary>
public sealed class LlamaLayerWeights
{
    public required float[] AttnNorm { get; init; }       // [nEmbd]
    public required TensorData AttnQ { get; init; }       // [nHead·headDim, nEmbd]
    public required TensorData AttnK { get; init; }       // [nKvHead·headDim, nEmbd]
    public required TensorData AttnV { get; init; }       // [nKvHead·headDim, nEmbd]
    public required TensorData AttnOutput { get; init; }  // [nEmbd, nHead·headDim]
    public required float[] FfnNorm { get; init; }        // [nEmbd]

    // Family options (null when the family has none).
    public float[]? AttnQBias { get; init; }              // [nHead·headDim] (Qwen2)
    public float[]? AttnKBias { get; init; }              // [kvDim]
    public float[]? AttnVBias { get; init; }              // [kvDim]
    public float[]? AttnQNorm { get; init; }              // [headDim] per head (Qwen3, Gemma 3) or [nHead·headDim] (OLMoE)
    public float[]? AttnKNorm { get; init; }              // [headDim] or [kvDim]
    public float[]? PostAttnNorm { get; init; }           // [nEmbd] (Gemma)
    public float[]? PostFfnNorm { get; init; }            // [nEmbd]
    public TensorData? SharedRouter { get; init; }        // [1, nEmbd] sigmoid gate of the shared expert (Qwen2-MoE)
    public TensorData? SharedGate { get; init; }          // [nFfShared, nEmbd]
    public TensorData? SharedUp { get; init; }            // [nFfShared, nEmbd]
    public TensorData? SharedDown { get; init; }          // [nEmbd, nFfShared]

    // Dense feed-forward (absent in MoE blocks).
    public TensorData? FfnGate { get; init; }             // [nFf, nEmbd]
    public TensorData? FfnUp { get; init; }               // [nFf, nEmbd]
    public TensorData? FfnDown { get; init; }             // [nEmbd, nFf]

    // Mixture of experts (absent in dense blocks).
    public TensorData? Router { get; init; }              // [nExpert, nEmbd]
    public TensorData[]? ExpertGate { get; init; }        // [nExpert] of [nFf, nEmbd]
    public TensorData[]? ExpertUp { get; init; }          // [nExpert] of [nFf, nEmbd]
    public TensorData[]? ExpertDown { get; init; }        // [nExpert] of [nEmbd, nFf]

    /// <summary>q, k and v together: they read the same normalized input, so they run as one matmul call.</summary>
    public TensorData[] AttnQkv => _attnQkv ??= [AttnQ, AttnK, AttnV];

    /// <summary>Gate and up together (dense blocks), for the same reason.</summary>
    public TensorData[] FfnGateUp => _ffnGateUp ??= [FfnGate!.Value, FfnUp!.Value];

    /// <summary>The shared expert's gate and up.</summary>
    public TensorData[] SharedGateUp => _sharedGateUp ??= [SharedGate!.Value, SharedUp!.Value];

    private TensorData[]? _attnQkv, _ffnGateUp, _sharedGateUp;
}

/// <summary>Llama weights, located by the names in <see cref="TensorNames"/> and shape-checked.</summary>
public sealed class LlamaWeights
{
    public required TensorData TokenEmbedding { get; init; } // [nVocab, nEmbd]
    public required LlamaLayerWeights[] Layers { get; init; } // [nLayer]
    public required float[] OutputNorm { get; init; }        // [nEmbd]
    public required TensorData Output { get; init; }         // [nVocab, nEmbd]; the token embedding when tied
    /// <summary>Per RoPE pair, a divisor of its frequency: Llama 3's <c>rope_freqs</c>, Phi-3's short LongRoPE factors; null for none.</summary>
    public float[]? RopeFactors { get; init; }               // [ropeDims/2]
    public static LlamaWeights Load(IWeightSource file, LlamaConfig c)
    {
        var load = new WeightLoader(file);
        TensorData Matrix(string name, int rows, int columns) => load.Matrix(name, rows, columns);
        float[] Vector(string name, int length) => load.Vector(name, length);
        // Norm weights: Gemma's Hugging Face checkpoints hold w of (1 + w); GGUF files the sum.
        float[] Norm(string name, int length)
        {
            float[] weight = load.Vector(name, length);
            if (c.NormWeightsPlusOne) System.Numerics.Tensors.TensorPrimitives.Add(weight, 1f, weight);
            return weight;
        }
        TensorData[] Experts(string name, int rows, int columns) => load.Experts(name, rows, columns, c.NExpert);

        BlockComposition b = c.Block;
        int ffE = c.ExpertFf;
        var layers = new LlamaLayerWeights[c.NLayer];
        for (int l = 0; l < c.NLayer; l++)
        {
            string N(string pattern) => TensorNames.Layer(pattern, l);
            bool moe = c.IsMixtureOfExperts, shared = moe && b.Moe == MoeKind.SoftmaxTopKSharedExpert;
            TensorData? qkv = b.FusedQkv ? Matrix(N(TensorNames.AttnQkv), c.QueryDim + 2 * c.KvDim, c.NEmbd) : null;
            // Phi-3 stores gate and up as one [2·ffn, d] ffn_up: the first half is the gate.
            TensorData? gateUp = b.FusedGateUp && !moe ? Matrix(N(TensorNames.FfnUp), 2 * c.NFf, c.NEmbd) : null;
            int qkNorm = b.QkNorm == QkNormKind.PerHead ? c.HeadDim : c.QueryDim, kNorm = b.QkNorm == QkNormKind.PerHead ? c.HeadDim : c.KvDim;
            layers[l] = new LlamaLayerWeights
            {
                AttnNorm = Norm(N(TensorNames.AttnNorm), c.NEmbd),
                AttnQ = qkv is { } f ? f.Rows(0, c.QueryDim) : Matrix(N(TensorNames.AttnQ), c.QueryDim, c.NEmbd),
                AttnK = qkv is { } g ? g.Rows(c.QueryDim, c.KvDim) : Matrix(N(TensorNames.AttnK), c.KvDim, c.NEmbd),
                AttnV = qkv is { } h ? h.Rows(c.QueryDim + c.KvDim, c.KvDim) : Matrix(N(TensorNames.AttnV), c.KvDim, c.NEmbd),
                AttnOutput = Matrix(N(TensorNames.AttnOutput), c.NEmbd, c.QueryDim),
                FfnNorm = Norm(N(TensorNames.FfnNorm), c.NEmbd),
                AttnQBias = b.QkvBias ? Vector(N(TensorNames.AttnQBias), c.QueryDim) : null,
                AttnKBias = b.QkvBias ? Vector(N(TensorNames.AttnKBias), c.KvDim) : null,
                AttnVBias = b.QkvBias ? Vector(N(TensorNames.AttnVBias), c.KvDim) : null,
                AttnQNorm = b.QkNorm != QkNormKind.None ? Norm(N(TensorNames.AttnQNorm), qkNorm) : null,
                AttnKNorm = b.QkNorm != QkNormKind.None ? Norm(N(TensorNames.AttnKNorm), kNorm) : null,
                PostAttnNorm = b.PostNorms ? Norm(N(TensorNames.PostAttnNorm), c.NEmbd) : null,
                PostFfnNorm = b.PostNorms ? Norm(N(TensorNames.PostFfnNorm), c.NEmbd) : null,
                FfnGate = moe ? null : gateUp is { } gu ? gu.Rows(0, c.NFf) : Matrix(N(TensorNames.FfnGate), c.NFf, c.NEmbd),
                FfnUp = moe ? null : gateUp is { } gu2 ? gu2.Rows(c.NFf, c.NFf) : Matrix(N(TensorNames.FfnUp), c.NFf, c.NEmbd),
                FfnDown = moe ? null : Matrix(N(TensorNames.FfnDown), c.NEmbd, c.NFf),
                Router = moe ? Matrix(N(TensorNames.FfnRouter), c.NExpert, c.NEmbd) : null,
                ExpertGate = moe ? Experts(N(TensorNames.FfnGateExperts), ffE, c.NEmbd) : null,
                ExpertUp = moe ? Experts(N(TensorNames.FfnUpExperts), ffE, c.NEmbd) : null,
                ExpertDown = moe ? Experts(N(TensorNames.FfnDownExperts), c.NEmbd, ffE) : null,
                SharedRouter = shared ? Matrix(N(TensorNames.FfnRouterShared), 1, c.NEmbd) : null,
                SharedGate = shared ? Matrix(N(TensorNames.FfnGateShared), c.NFfShared, c.NEmbd) : null,
                SharedUp = shared ? Matrix(N(TensorNames.FfnUpShared), c.NFfShared, c.NEmbd) : null,
                SharedDown = shared ? Matrix(N(TensorNames.FfnDownShared), c.NEmbd, c.NFfShared) : null,
            };
        }
        TensorData tokenEmbedding = Matrix(TensorNames.TokenEmbedding, c.NVocab, c.NEmbd);
        bool tied = !load.Has(TensorNames.Output);
        // Llama 3 writes rope_freqs; Phi-3 writes short and long LongRoPE factors, of which the short
        // ones apply while a sequence stays within the original context (every context here starts so).
        string? factors = load.Has(TensorNames.RopeFreqs) ? TensorNames.RopeFreqs : load.Has(TensorNames.RopeFactorsShort) ? TensorNames.RopeFactorsShort : null;
        return new LlamaWeights
        {
            TokenEmbedding = tokenEmbedding,
            Layers = layers,
            OutputNorm = Norm(TensorNames.OutputNorm, c.NEmbd),
            Output = tied ? tokenEmbedding : Matrix(TensorNames.Output, c.NVocab, c.NEmbd),
            RopeFactors = factors is null ? null : Vector(factors, c.RopeDims / 2),
        };
    }
}

/// <summary>Buffers for one Llama context, allocated once.</summary>
public sealed class LlamaState : ModelState
{
    public LlamaState(LlamaConfig c, int maxBatch)
    {
        Config = c;
        MaxBatch = maxBatch;
        Residual = new float[maxBatch * c.NEmbd];
        Normed = new float[maxBatch * c.NEmbd];
        Query = new float[maxBatch * c.QueryDim];
        Key = new float[maxBatch * c.KvDim];
        Value = new float[maxBatch * c.KvDim];
        AttnOut = new float[maxBatch * c.QueryDim];
        Projected = new float[maxBatch * c.NEmbd];
        Gate = new float[maxBatch * c.MaxFf];
        Up = new float[maxBatch * c.MaxFf];
        QkvOutputs = [Query, Key, Value];
        GateUpOutputs = [Gate, Up];
        KeyCache = new float[(long)c.NLayer * c.NCtx * c.KvDim];
        ValueCache = new float[(long)c.NLayer * c.NCtx * c.KvDim];
        Attention = new CausalAttention(c.NHead, c.NKvHead, c.HeadDim, c.NCtx, maxBatch, c.AttentionScale, c.AttnSoftcap);
        RouterProbs = new float[maxBatch * Math.Max(1, c.NExpert)];
        ExpertIndices = new float[maxBatch * Math.Max(1, c.NExpertUsed)];
        ExpertWeights = new float[maxBatch * Math.Max(1, c.NExpertUsed)];
        ExpertOut = new float[c.NEmbd];
        if (c.NFfShared > 0)
        {
            SharedGateValues = new float[maxBatch];
            SharedOut = new float[maxBatch * c.NEmbd];
        }
    }

    /// <summary>The prompt's row-wise steps, made by the first forward pass.</summary>
    internal LlamaModel.RowSteps? Steps;

    public LlamaConfig Config { get; }
    public override int MaxBatch { get; }
    public override int ContextLength => Config.NCtx;
    public CausalAttention Attention { get; }

    public float[] Residual { get; }      // [maxBatch, nEmbd]
    public float[] Normed { get; }        // [maxBatch, nEmbd] RMSNorm output
    public float[] Query { get; }         // [maxBatch, nHead·headDim]
    public float[] Key { get; }           // [maxBatch, kvDim]
    public float[] Value { get; }         // [maxBatch, kvDim]
    public float[] AttnOut { get; }       // [maxBatch, nHead·headDim]
    public float[] Projected { get; }     // [maxBatch, nEmbd]
    public float[] Gate { get; }          // [maxBatch, max ffn width] gate projection, then SwiGLU/GeGLU output
    public float[] Up { get; }            // [maxBatch, max ffn width]
    public float[][] QkvOutputs { get; }  // Query, Key, Value, as one matmul call writes them
    public float[][] GateUpOutputs { get; } // Gate, Up
    public override float[] KeyCache { get; }      // [nLayer, nKvHead, nCtx, headDim]
    public override float[] ValueCache { get; }    // [nLayer, nKvHead, nCtx, headDim]
    public float[] RouterProbs { get; }   // [maxBatch, nExpert] softmax over all experts
    public float[] ExpertIndices { get; } // [maxBatch, nExpertUsed] chosen experts, best first (as floats, for hooks)
    public float[] ExpertWeights { get; } // [maxBatch, nExpertUsed] renormalized weights
    public float[] ExpertOut { get; }     // [nEmbd] one expert's output
    public float[]? SharedGateValues { get; } // [maxBatch] sigmoid gate of the shared expert
    public float[]? SharedOut { get; }    // [maxBatch, nEmbd] the shared expert's output
}
