using NextToken.Gguf;

namespace NextToken.Models;

/// <summary>GPT-2 hyperparameters, read from <c>gpt2.*</c> GGUF metadata.</summary>
public sealed record Gpt2Config(int NLayer, int NEmbd, int NHead, int NCtx, int NFf, int NVocab, float LayerNormEps)
{
    public int HeadDim => NEmbd / NHead;

    /// <summary>Dimensions beyond this are refused as hostile or corrupt, before anything is allocated.</summary>
    private const long MaxDimension = 1 << 20;

    public static Gpt2Config FromGguf(GgufFile file, int vocabSize)
    {
        int Dim(string key)
        {
            long value = file.GetInteger(key);
            if (value <= 0 || value > MaxDimension)
                throw new GgufFormatException(file.FilePath, null, $"'{key}' is {value}; expected 1 to {MaxDimension}");
            return (int)value;
        }

        int nEmbd = Dim("gpt2.embedding_length");
        int nHead = Dim("gpt2.attention.head_count");
        if (nEmbd % nHead != 0)
            throw new GgufFormatException(file.FilePath, null, $"'gpt2.embedding_length' {nEmbd} is not divisible by 'gpt2.attention.head_count' {nHead}");
        float eps = (float)(file.GetFloatOrNull("gpt2.attention.layer_norm_epsilon") ?? 1e-5);
        return new Gpt2Config(
            NLayer: Dim("gpt2.block_count"),
            NEmbd: nEmbd,
            NHead: nHead,
            NCtx: Dim("gpt2.context_length"),
            NFf: file.ContainsKey("gpt2.feed_forward_length") ? Dim("gpt2.feed_forward_length") : 4 * nEmbd,
            NVocab: vocabSize,
            LayerNormEps: eps);
    }

    /// <summary>From a Hugging Face GPT-2 config.json.</summary>
    public static Gpt2Config FromHuggingFace(HuggingFaceConfig config, int vocabSize)
    {
        int nEmbd = config.Dimension("n_embd");
        int nHead = config.Dimension("n_head");
        if (nEmbd % nHead != 0)
            throw new NextTokenException($"{config.Path}: 'n_embd' {nEmbd} is not divisible by 'n_head' {nHead}");
        return new Gpt2Config(
            NLayer: config.Dimension("n_layer"), NEmbd: nEmbd, NHead: nHead, NCtx: config.Dimension("n_positions", config.Dimension("n_ctx", 1024)),
            NFf: config.Dimension("n_inner", 4 * nEmbd), NVocab: vocabSize, LayerNormEps: (float)config.Number("layer_norm_epsilon", 1e-5));
    }
}
