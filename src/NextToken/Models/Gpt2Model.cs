using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using NextToken.Tensors;
using NextToken.Kernels;
using NextToken.Tokenization;

namespace NextToken.Models;

/// <summary>
/// GPT-2 (Radford et al. 2019): learned position embeddings, pre-LayerNorm blocks of causal
/// multi-head attention and a GELU MLP, a final LayerNorm, and an LM head (tied to the token
/// embedding when the file has no <c>output.weight</c>). Computed in float32.
/// </summary>
public sealed class Gpt2Model : LanguageModel
{
    private const int DefaultMaxBatch = 128;

    private readonly HookPoint _hookEmbed, _hookPosEmbed, _hookFinalNormalized;
    private readonly BlockHooks[] _blockHooks;
    private readonly HookPoint[] _hookQkv;

    public Gpt2Model(IWeightSource source, Gpt2Config config, Tokenizer tokenizer, string? chatTemplate = null) : base(source, tokenizer, chatTemplate)
    {
        Config = config;
        TrainedContextLength = config.NCtx;
        Weights = Gpt2Weights.Load(source, Config);
        _hookEmbed = Hooks.Declare(HookNames.Embed);
        _hookPosEmbed = Hooks.Declare(HookNames.PosEmbed);
        _blockHooks = new BlockHooks[Config.NLayer];
        _hookQkv = new HookPoint[Config.NLayer];
        for (int l = 0; l < Config.NLayer; l++)
        {
            _blockHooks[l] = new BlockHooks(Hooks, l);
            _hookQkv[l] = Hooks.Declare(HookNames.Qkv(l));
        }
        _hookFinalNormalized = Hooks.Declare(HookNames.FinalNormalized);
    }

    public Gpt2Config Config { get; private set; }
    public Gpt2Weights Weights { get; }

    public override string Architecture => "gpt2";
    public override int VocabSize => Config.NVocab;
    public override int ContextLength => Config.NCtx;
    public override int TrainedContextLength { get; }
    protected override void SetContextLength(int tokens) => Config = Config with { NCtx = tokens };
    public override int LayerCount => Config.NLayer;
    public override int EmbeddingLength => Config.NEmbd;

    public override long WeightBytesPerToken
    {
        get
        {
            long bytes = Weights.Output.ByteLength;
            foreach (Gpt2LayerWeights w in Weights.Layers)
                bytes += w.AttnQkv.ByteLength + w.AttnOutput.ByteLength + w.FfnUp.ByteLength + w.FfnDown.ByteLength;
            return bytes;
        }
    }

    public override ModelState CreateState(int? maxBatch = null) => new Gpt2State(Config, BatchSize(maxBatch, DefaultMaxBatch));

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    protected override void ForwardBatch(ModelState state, ReadOnlySpan<int> tokens, Span<float> logits, LogitsFor? which)
    {
        var s = (Gpt2State)state;
        Gpt2Config c = Config;
        int n = tokens.Length, d = c.NEmbd, p0 = s.Position;
        Span<float> x = s.Residual.AsSpan(0, n * d);

        // 1. Embeddings: token embedding plus learned position embedding.
        EmbedTokens(Weights.TokenEmbedding, tokens, x, d);
        Raise(_hookEmbed, x, p0, n, d);
        Span<float> positions = s.Normed.AsSpan(0, n * d);
        for (int t = 0; t < n; t++) RowConvert.Row(Weights.PositionEmbedding, PositionOf(p0, t), positions.Slice(t * d, d));
        Raise(_hookPosEmbed, positions, p0, n, d);
        TensorPrimitives.Add(x, positions, x);

        for (int l = 0; l < c.NLayer; l++)
        {
            Gpt2LayerWeights w = Weights.Layers[l];
            BlockHooks hooks = _blockHooks[l];
            Raise(hooks.ResidPre, x, p0, n, d);

            // 2. Attention sub-block: x += W_o · Attention(LN₁(x)) + b_o.
            LayerNormRows(x, w.AttnNormWeight, w.AttnNormBias, s.Normed, n);
            Span<float> qkv = s.Qkv.AsSpan(0, n * 3 * d);
            Project(w.AttnQkv, s.Normed, n, qkv);
            AddBiasRows(qkv, w.AttnQkvBias, n);
            Raise(_hookQkv[l], qkv, p0, n, 3 * d);
            long cacheOffset = (long)l * c.NCtx * d;
            if (Each is { } each)
            {
                for (int t = 0; t < n; t++)
                    s.Attention.Store(qkv[(t * 3 * d + d)..], 3 * d, qkv[(t * 3 * d + 2 * d)..], 3 * d, each.KeyCaches[t], each.ValueCaches[t], cacheOffset, each.Positions[t], 1);
                s.Attention.RunEach(s.Qkv, 3 * d, each.KeyCaches, each.ValueCaches, cacheOffset, each.Positions, n, s.AttnOut, Threads);
            }
            else
            {
                s.Attention.Store(qkv[d..], 3 * d, qkv[(2 * d)..], 3 * d, s.KeyCache, s.ValueCache, cacheOffset, p0, n);
                s.Attention.Run(s.Qkv, 3 * d, s.KeyCache, s.ValueCache, cacheOffset, p0, n, s.AttnOut, Threads, hooks.Pattern.IsActive);
            }
            hooks.RaisePattern(s.Attention, p0, n, c.NHead);
            Raise(hooks.Z, s.AttnOut.AsSpan(0, n * d), p0, n, d);
            Span<float> projected = s.Projected.AsSpan(0, n * d);
            Project(w.AttnOutput, s.AttnOut, n, projected);
            AddBiasRows(projected, w.AttnOutputBias, n);
            Raise(hooks.AttnOut, projected, p0, n, d);
            TensorPrimitives.Add(x, projected, x);
            Raise(hooks.ResidMid, x, p0, n, d);

            // 3. MLP sub-block: x += W_down · GELU(W_up · LN₂(x) + b_up) + b_down.
            LayerNormRows(x, w.FfnNormWeight, w.FfnNormBias, s.Normed, n);
            Span<float> hidden = s.FfnHidden.AsSpan(0, n * c.NFf);
            Project(w.FfnUp, s.Normed, n, hidden);
            AddBiasRows(hidden, w.FfnUpBias, n);
            for (int t = 0; t < n; t++) // row by row, so a row's values do not depend on the batch (see LlamaModel)
            {
                Span<float> row = hidden.Slice(t * c.NFf, c.NFf);
                Ops.GeluTanh(row, row);
            }
            Raise(hooks.MlpPost, hidden, p0, n, c.NFf);
            Project(w.FfnDown, s.FfnHidden, n, projected);
            AddBiasRows(projected, w.FfnDownBias, n);
            Raise(hooks.MlpOut, projected, p0, n, d);
            TensorPrimitives.Add(x, projected, x);
            Raise(hooks.ResidPost, x, p0, n, d);
        }

        Advance(s, p0, n);

        // 4. Final LayerNorm and the LM head, for the rows the caller wants.
        LayerNormRows(x, Weights.OutputNormWeight, Weights.OutputNormBias, s.Normed, n);
        Raise(_hookFinalNormalized, s.Normed.AsSpan(0, n * d), p0, n, d);
        ProjectToVocabulary(Weights.Output, s.Normed, n, d, logits, which);
    }

    public override void DecodeResidual(ReadOnlySpan<float> residual, Span<float> logits)
    {
        var normed = new float[Config.NEmbd];
        Ops.LayerNorm(residual, Weights.OutputNormWeight, Weights.OutputNormBias, Config.LayerNormEps, normed);
        Project(Weights.Output, normed, 1, logits);
    }

    private void LayerNormRows(ReadOnlySpan<float> x, float[] weight, float[] bias, float[] destination, int n)
    {
        int d = weight.Length;
        for (int t = 0; t < n; t++)
            Ops.LayerNorm(x.Slice(t * d, d), weight, bias, Config.LayerNormEps, destination.AsSpan(t * d, d));
    }

    private static void AddBiasRows(Span<float> rows, float[] bias, int n)
    {
        for (int t = 0; t < n; t++)
        {
            Span<float> row = rows.Slice(t * bias.Length, bias.Length);
            TensorPrimitives.Add(row, bias, row);
        }
    }
}
