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

    private TensorData[]? _attnQkv, _ffnGateUp;
}

/// <summary>Llama weights, located by the names in <see cref="TensorNames"/> and shape-checked.</summary>
public sealed class LlamaWeights
{
    public required TensorData TokenEmbedding { get; init; } // [nVocab, nEmbd]
    public required LlamaLayerWeights[] Layers { get; init; } // [nLayer]
    public required float[] OutputNorm { get; init; }        // [nEmbd]
    public required TensorData Output { get; init; }         // [nVocab, nEmbd]; the token embedding when tied
    public static LlamaWeights Load(IWeightSource file, LlamaConfig c)
    {
        var load = new WeightLoader(file);
        TensorData Matrix(string name, int rows, int columns) => load.Matrix(name, rows, columns);
        float[] Vector(string name, int length) => load.Vector(name, length);
        TensorData[] Experts(string name, int rows, int columns) => load.Experts(name, rows, columns, c.NExpert);

        var layers = new LlamaLayerWeights[c.NLayer];
        for (int l = 0; l < c.NLayer; l++)
        {
            string N(string pattern) => TensorNames.Layer(pattern, l);
            bool moe = c.IsMixtureOfExperts;
            layers[l] = new LlamaLayerWeights
            {
                AttnNorm = Vector(N(TensorNames.AttnNorm), c.NEmbd),
                AttnQ = Matrix(N(TensorNames.AttnQ), c.QueryDim, c.NEmbd),
                AttnK = Matrix(N(TensorNames.AttnK), c.KvDim, c.NEmbd),
                AttnV = Matrix(N(TensorNames.AttnV), c.KvDim, c.NEmbd),
                AttnOutput = Matrix(N(TensorNames.AttnOutput), c.NEmbd, c.QueryDim),
                FfnNorm = Vector(N(TensorNames.FfnNorm), c.NEmbd),
                FfnGate = moe ? null : Matrix(N(TensorNames.FfnGate), c.NFf, c.NEmbd),
                FfnUp = moe ? null : Matrix(N(TensorNames.FfnUp), c.NFf, c.NEmbd),
                FfnDown = moe ? null : Matrix(N(TensorNames.FfnDown), c.NEmbd, c.NFf),
                Router = moe ? Matrix(N(TensorNames.FfnRouter), c.NExpert, c.NEmbd) : null,
                ExpertGate = moe ? Experts(N(TensorNames.FfnGateExperts), c.NFf, c.NEmbd) : null,
                ExpertUp = moe ? Experts(N(TensorNames.FfnUpExperts), c.NFf, c.NEmbd) : null,
                ExpertDown = moe ? Experts(N(TensorNames.FfnDownExperts), c.NEmbd, c.NFf) : null,
            };
        }
        TensorData tokenEmbedding = Matrix(TensorNames.TokenEmbedding, c.NVocab, c.NEmbd);
        bool tied = !load.Has(TensorNames.Output);
        return new LlamaWeights
        {
            TokenEmbedding = tokenEmbedding,
            Layers = layers,
            OutputNorm = Vector(TensorNames.OutputNorm, c.NEmbd),
            Output = tied ? tokenEmbedding : Matrix(TensorNames.Output, c.NVocab, c.NEmbd),
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
        Gate = new float[maxBatch * c.NFf];
        Up = new float[maxBatch * c.NFf];
        QkvOutputs = [Query, Key, Value];
        GateUpOutputs = [Gate, Up];
        KeyCache = new float[(long)c.NLayer * c.NCtx * c.KvDim];
        ValueCache = new float[(long)c.NLayer * c.NCtx * c.KvDim];
        Attention = new CausalAttention(c.NHead, c.NKvHead, c.HeadDim, c.NCtx, maxBatch);
        RouterProbs = new float[maxBatch * Math.Max(1, c.NExpert)];
        ExpertIndices = new float[maxBatch * Math.Max(1, c.NExpertUsed)];
        ExpertWeights = new float[maxBatch * Math.Max(1, c.NExpertUsed)];
        ExpertOut = new float[c.NEmbd];
    }

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
    public float[] Gate { get; }          // [maxBatch, nFf] gate projection, then SwiGLU output
    public float[] Up { get; }            // [maxBatch, nFf]
    public float[][] QkvOutputs { get; }  // Query, Key, Value, as one matmul call writes them
    public float[][] GateUpOutputs { get; } // Gate, Up
    public override float[] KeyCache { get; }      // [nLayer, nKvHead, nCtx, headDim]
    public override float[] ValueCache { get; }    // [nLayer, nKvHead, nCtx, headDim]
    public float[] RouterProbs { get; }   // [maxBatch, nExpert] softmax over all experts
    public float[] ExpertIndices { get; } // [maxBatch, nExpertUsed] chosen experts, best first (as floats, for hooks)
    public float[] ExpertWeights { get; } // [maxBatch, nExpertUsed] renormalized weights
    public float[] ExpertOut { get; }     // [nEmbd] one expert's output
}
