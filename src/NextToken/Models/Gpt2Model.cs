using System.Numerics.Tensors;
using NextToken.Gguf;
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
    private readonly LayerHooks[] _layerHooks;

    public Gpt2Model(GgufFile file, Tokenizer tokenizer) : base(file, tokenizer)
    {
        Config = Gpt2Config.FromGguf(file, tokenizer.VocabSize);
        Weights = Gpt2Weights.FromGguf(file, Config);
        _hookEmbed = Hooks.Declare("hook_embed");
        _hookPosEmbed = Hooks.Declare("hook_pos_embed");
        _layerHooks = new LayerHooks[Config.NLayer];
        for (int l = 0; l < Config.NLayer; l++) _layerHooks[l] = new LayerHooks(Hooks, l);
        _hookFinalNormalized = Hooks.Declare("ln_final.hook_normalized");
    }

    public Gpt2Config Config { get; }
    public Gpt2Weights Weights { get; }

    public override string Architecture => "gpt2";
    public override int VocabSize => Config.NVocab;
    public override int ContextLength => Config.NCtx;
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

    public override ModelState CreateState() => new Gpt2State(Config, Math.Min(DefaultMaxBatch, Config.NCtx));

    public override void Forward(ModelState state, ReadOnlySpan<int> tokens, Span<float> logits, LogitsFor which = LogitsFor.LastPosition)
    {
        CheckInput(state, tokens, logits, which);
        var s = (Gpt2State)state;
        for (int done = 0; done < tokens.Length; done += s.MaxBatch)
        {
            int n = Math.Min(s.MaxBatch, tokens.Length - done);
            bool lastChunk = done + n == tokens.Length;
            Span<float> chunkLogits = which == LogitsFor.AllPositions ? logits.Slice(done * VocabSize, n * VocabSize) : logits;
            ForwardBatch(s, tokens.Slice(done, n), chunkLogits, which == LogitsFor.AllPositions ? LogitsFor.AllPositions : lastChunk ? LogitsFor.LastPosition : null);
        }
    }

    /// <summary>One batch of at most MaxBatch positions, starting at state.Position.</summary>
    private void ForwardBatch(Gpt2State s, ReadOnlySpan<int> tokens, Span<float> logits, LogitsFor? which)
    {
        Gpt2Config c = Config;
        int n = tokens.Length, d = c.NEmbd, p0 = s.Position;
        Span<float> x = s.Residual.AsSpan(0, n * d);

        // 1. Embeddings: token embedding plus learned position embedding.
        for (int t = 0; t < n; t++) RowConvert.Row(Weights.TokenEmbedding, tokens[t], x.Slice(t * d, d));
        Raise(_hookEmbed, x, p0, n, d);
        Span<float> positions = s.Normed.AsSpan(0, n * d);
        for (int t = 0; t < n; t++) RowConvert.Row(Weights.PositionEmbedding, p0 + t, positions.Slice(t * d, d));
        Raise(_hookPosEmbed, positions, p0, n, d);
        TensorPrimitives.Add(x, positions, x);

        for (int l = 0; l < c.NLayer; l++)
        {
            Gpt2LayerWeights w = Weights.Layers[l];
            LayerHooks hooks = _layerHooks[l];
            Raise(hooks.ResidPre, x, p0, n, d);

            // 2. Attention sub-block: x += W_o · Attention(LN₁(x)) + b_o.
            LayerNormRows(x, w.AttnNormWeight, w.AttnNormBias, s.Normed, n);
            Span<float> qkv = s.Qkv.AsSpan(0, n * 3 * d);
            MatMul.Forward(w.AttnQkv, s.Normed, n, qkv, Threads);
            AddBiasRows(qkv, w.AttnQkvBias, n);
            Raise(hooks.Qkv, qkv, p0, n, 3 * d);
            Attention(s, l, n);
            Raise(hooks.Z, s.AttnOut.AsSpan(0, n * d), p0, n, d);
            if (hooks.Pattern.IsActive) RaisePattern(s, hooks.Pattern, n);
            Span<float> projected = s.Projected.AsSpan(0, n * d);
            MatMul.Forward(w.AttnOutput, s.AttnOut, n, projected, Threads);
            AddBiasRows(projected, w.AttnOutputBias, n);
            Raise(hooks.AttnOut, projected, p0, n, d);
            TensorPrimitives.Add(x, projected, x);
            Raise(hooks.ResidMid, x, p0, n, d);

            // 3. MLP sub-block: x += W_down · GELU(W_up · LN₂(x) + b_up) + b_down.
            LayerNormRows(x, w.FfnNormWeight, w.FfnNormBias, s.Normed, n);
            Span<float> hidden = s.FfnHidden.AsSpan(0, n * c.NFf);
            MatMul.Forward(w.FfnUp, s.Normed, n, hidden, Threads);
            AddBiasRows(hidden, w.FfnUpBias, n);
            Ops.GeluTanh(hidden, hidden);
            Raise(hooks.MlpPost, hidden, p0, n, c.NFf);
            MatMul.Forward(w.FfnDown, s.FfnHidden, n, projected, Threads);
            AddBiasRows(projected, w.FfnDownBias, n);
            Raise(hooks.MlpOut, projected, p0, n, d);
            TensorPrimitives.Add(x, projected, x);
            Raise(hooks.ResidPost, x, p0, n, d);
        }

        s.Position = p0 + n;

        // 4. Final LayerNorm and the LM head, for the rows the caller wants.
        LayerNormRows(x, Weights.OutputNormWeight, Weights.OutputNormBias, s.Normed, n);
        Raise(_hookFinalNormalized, s.Normed.AsSpan(0, n * d), p0, n, d);
        if (which == LogitsFor.AllPositions)
            MatMul.Forward(Weights.Output, s.Normed, n, logits, Threads);
        else if (which == LogitsFor.LastPosition)
            MatMul.Forward(Weights.Output, s.Normed.AsSpan((n - 1) * d, d), 1, logits, Threads);
    }

    /// <summary>Causal multi-head attention for the batch; keys and values go into the cache first.</summary>
    private void Attention(Gpt2State s, int layer, int n)
    {
        Gpt2Config c = Config;
        int d = c.NEmbd, p0 = s.Position;
        long layerOffset = (long)layer * c.NCtx * d;
        for (int t = 0; t < n; t++)
        {
            s.Qkv.AsSpan(t * 3 * d + d, d).CopyTo(s.KeyCache.AsSpan((int)(layerOffset + (long)(p0 + t) * d), d));
            s.Qkv.AsSpan(t * 3 * d + 2 * d, d).CopyTo(s.ValueCache.AsSpan((int)(layerOffset + (long)(p0 + t) * d), d));
        }
        int work = n * c.NHead;
        long flops = (long)work * (p0 + n) * c.HeadDim;
        if (Threads > 1 && flops > 65_536)
            Parallel.For(0, work, new ParallelOptions { MaxDegreeOfParallelism = Threads }, i => AttendHead(s, layerOffset, i / c.NHead, i % c.NHead));
        else
            for (int i = 0; i < work; i++) AttendHead(s, layerOffset, i / c.NHead, i % c.NHead);
    }

    /// <summary>softmax(q·Kᵀ/√d_head) · V for one query position and one head.</summary>
    private void AttendHead(Gpt2State s, long layerOffset, int t, int head)
    {
        Gpt2Config c = Config;
        int d = c.NEmbd, hd = c.HeadDim, keys = s.Position + t + 1;
        float scale = 1f / MathF.Sqrt(hd);
        ReadOnlySpan<float> q = s.Qkv.AsSpan(t * 3 * d + head * hd, hd);
        Span<float> scores = s.Scores.AsSpan((t * c.NHead + head) * c.NCtx, keys);
        ReadOnlySpan<float> keyCache = s.KeyCache.AsSpan((int)layerOffset, c.NCtx * d);
        ReadOnlySpan<float> valueCache = s.ValueCache.AsSpan((int)layerOffset, c.NCtx * d);
        for (int j = 0; j < keys; j++)
            scores[j] = TensorPrimitives.Dot(q, keyCache.Slice(j * d + head * hd, hd)) * scale;
        TensorPrimitives.SoftMax(scores, scores);
        Span<float> output = s.AttnOut.AsSpan(t * d + head * hd, hd);
        output.Clear();
        for (int j = 0; j < keys; j++)
            TensorPrimitives.MultiplyAdd(valueCache.Slice(j * d + head * hd, hd), scores[j], output, output);
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

    private static void Raise(HookPoint point, Span<float> data, int firstPosition, int rows, int columns)
    {
        if (point.IsActive) point.Invoke(new Activation(point.Name, data, [rows, columns], firstPosition));
    }

    /// <summary>Copies the batch's attention probabilities into [nHead, n, nKeys] for a hook.</summary>
    private void RaisePattern(Gpt2State s, HookPoint point, int n)
    {
        Gpt2Config c = Config;
        int keys = s.Position + n, p0 = s.Position;
        var pattern = new float[c.NHead * n * keys];
        for (int h = 0; h < c.NHead; h++)
            for (int t = 0; t < n; t++)
                s.Scores.AsSpan((t * c.NHead + h) * c.NCtx, p0 + t + 1).CopyTo(pattern.AsSpan((h * n + t) * keys));
        point.Invoke(new Activation(point.Name, pattern, [c.NHead, n, keys], p0));
    }

    private sealed class LayerHooks(HookRegistry hooks, int layer)
    {
        public readonly HookPoint ResidPre = hooks.Declare($"blocks.{layer}.hook_resid_pre");
        public readonly HookPoint Qkv = hooks.Declare($"blocks.{layer}.attn.hook_qkv");
        public readonly HookPoint Z = hooks.Declare($"blocks.{layer}.attn.hook_z");
        public readonly HookPoint Pattern = hooks.Declare($"blocks.{layer}.attn.hook_pattern");
        public readonly HookPoint AttnOut = hooks.Declare($"blocks.{layer}.hook_attn_out");
        public readonly HookPoint ResidMid = hooks.Declare($"blocks.{layer}.hook_resid_mid");
        public readonly HookPoint MlpPost = hooks.Declare($"blocks.{layer}.mlp.hook_post");
        public readonly HookPoint MlpOut = hooks.Declare($"blocks.{layer}.hook_mlp_out");
        public readonly HookPoint ResidPost = hooks.Declare($"blocks.{layer}.hook_resid_post");
    }
}
