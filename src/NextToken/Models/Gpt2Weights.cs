using NextToken.Gguf;
using NextToken.Kernels;
using NextToken.Tensors;

namespace NextToken.Models;

/// <summary>One GPT-2 block's weights. Matrices are views over the mapped file; vectors are small float32 copies.</summary>
public sealed class Gpt2LayerWeights
{
    public required float[] AttnNormWeight { get; init; } // [nEmbd]
    public required float[] AttnNormBias { get; init; }   // [nEmbd]
    public required TensorData AttnQkv { get; init; }     // [3·nEmbd, nEmbd]: rows of Q, then K, then V
    public required float[] AttnQkvBias { get; init; }    // [3·nEmbd]
    public required TensorData AttnOutput { get; init; }  // [nEmbd, nEmbd]
    public required float[] AttnOutputBias { get; init; } // [nEmbd]
    public required float[] FfnNormWeight { get; init; }  // [nEmbd]
    public required float[] FfnNormBias { get; init; }    // [nEmbd]
    public required TensorData FfnUp { get; init; }       // [nFf, nEmbd]
    public required float[] FfnUpBias { get; init; }      // [nFf]
    public required TensorData FfnDown { get; init; }     // [nEmbd, nFf]
    public required float[] FfnDownBias { get; init; }    // [nEmbd]
}

/// <summary>GPT-2 weights, located by the names in <see cref="TensorNames"/> and shape-checked.</summary>
public sealed class Gpt2Weights
{
    public required TensorData TokenEmbedding { get; init; }    // [nVocab, nEmbd]
    public required TensorData PositionEmbedding { get; init; } // [nCtx, nEmbd]
    public required Gpt2LayerWeights[] Layers { get; init; }    // [nLayer]
    public required float[] OutputNormWeight { get; init; }     // [nEmbd]
    public required float[] OutputNormBias { get; init; }       // [nEmbd]
    public required TensorData Output { get; init; }            // [nVocab, nEmbd]; the token embedding when tied

    public static Gpt2Weights Load(IWeightSource file, Gpt2Config c)
    {
        var load = new WeightLoader(file);
        TensorData Matrix(string name, int rows, int columns) => load.Matrix(name, rows, columns);
        float[] Vector(string name, int length) => load.Vector(name, length);

        var layers = new Gpt2LayerWeights[c.NLayer];
        for (int l = 0; l < c.NLayer; l++)
        {
            string N(string pattern) => TensorNames.Layer(pattern, l);
            layers[l] = new Gpt2LayerWeights
            {
                AttnNormWeight = Vector(N(TensorNames.AttnNorm), c.NEmbd),
                AttnNormBias = Vector(N(TensorNames.AttnNormBias), c.NEmbd),
                AttnQkv = Matrix(N(TensorNames.AttnQkv), 3 * c.NEmbd, c.NEmbd),
                AttnQkvBias = Vector(N(TensorNames.AttnQkvBias), 3 * c.NEmbd),
                AttnOutput = Matrix(N(TensorNames.AttnOutput), c.NEmbd, c.NEmbd),
                AttnOutputBias = Vector(N(TensorNames.AttnOutputBias), c.NEmbd),
                FfnNormWeight = Vector(N(TensorNames.FfnNorm), c.NEmbd),
                FfnNormBias = Vector(N(TensorNames.FfnNormBias), c.NEmbd),
                FfnUp = Matrix(N(TensorNames.FfnUp), c.NFf, c.NEmbd),
                FfnUpBias = Vector(N(TensorNames.FfnUpBias), c.NFf),
                FfnDown = Matrix(N(TensorNames.FfnDown), c.NEmbd, c.NFf),
                FfnDownBias = Vector(N(TensorNames.FfnDownBias), c.NEmbd),
            };
        }
        TensorData tokenEmbedding = Matrix(TensorNames.TokenEmbedding, c.NVocab, c.NEmbd);
        bool tied = !load.Has(TensorNames.Output);
        return new Gpt2Weights
        {
            TokenEmbedding = tokenEmbedding,
            PositionEmbedding = Matrix(TensorNames.PositionEmbedding, c.NCtx, c.NEmbd),
            Layers = layers,
            OutputNormWeight = Vector(TensorNames.OutputNorm, c.NEmbd),
            OutputNormBias = Vector(TensorNames.OutputNormBias, c.NEmbd),
            Output = tied ? tokenEmbedding : Matrix(TensorNames.Output, c.NVocab, c.NEmbd),
        };
    }
}

/// <summary>Buffers for one GPT-2 context, allocated once; nothing is allocated per token.</summary>
public sealed class Gpt2State : ModelState
{
    public Gpt2State(Gpt2Config c, int maxBatch)
    {
        Config = c;
        MaxBatch = maxBatch;
        Residual = new float[maxBatch * c.NEmbd];
        Normed = new float[maxBatch * c.NEmbd];
        Qkv = new float[maxBatch * 3 * c.NEmbd];
        AttnOut = new float[maxBatch * c.NEmbd];
        Projected = new float[maxBatch * c.NEmbd];
        FfnHidden = new float[maxBatch * c.NFf];
        Attention = new Kernels.CausalAttention(c.NHead, c.NHead, c.HeadDim, c.NCtx, maxBatch);
        KeyCache = new float[(long)c.NLayer * c.NCtx * c.NEmbd];
        ValueCache = new float[(long)c.NLayer * c.NCtx * c.NEmbd];
    }

    public Gpt2Config Config { get; }
    public override int MaxBatch { get; }
    public override int ContextLength => Config.NCtx;
    public Kernels.CausalAttention Attention { get; }

    public float[] Residual { get; }   // [maxBatch, nEmbd] the residual stream
    public float[] Normed { get; }     // [maxBatch, nEmbd] LayerNorm output
    public float[] Qkv { get; }        // [maxBatch, 3·nEmbd] query, key, value per position
    public float[] AttnOut { get; }    // [maxBatch, nHead, headDim] attention-weighted values
    public float[] Projected { get; }  // [maxBatch, nEmbd] attention or MLP output before the residual add
    public float[] FfnHidden { get; }  // [maxBatch, nFf]
    public override float[] KeyCache { get; }   // [nLayer, nHead, nCtx, headDim]
    public override float[] ValueCache { get; } // [nLayer, nHead, nCtx, headDim]

    /// <summary>The prompt's row-wise steps, made by the first forward pass.</summary>
    internal Gpt2Model.RowSteps? Steps;
}
