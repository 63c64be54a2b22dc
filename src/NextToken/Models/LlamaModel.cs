using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using NextToken.Tensors;
using NextToken.Kernels;
using NextToken.Tokenization;

namespace NextToken.Models;

/// <summary>
/// Llama (Touvron et al. 2023) as llama.cpp reads it: RMSNorm, rotary position embeddings on
/// adjacent pairs, grouped-query attention, SwiGLU feed-forward, untied LM head (tied when
/// absent). With <c>expert_count</c> set, each block's feed-forward is a Mixtral-style mixture
/// of experts: softmax over all experts, the top k kept and renormalized.
/// </summary>
public sealed class LlamaModel : LanguageModel
{
    private const int DefaultMaxBatch = 128;

    private readonly float[] _ropeCos, _ropeSin; // [nCtx, ropeDims/2]
    private readonly HookPoint _hookEmbed, _hookFinalNormalized;
    private readonly BlockHooks[] _blockHooks;
    private readonly LlamaHooks[] _llamaHooks;

    public LlamaModel(IWeightSource source, LlamaConfig config, Tokenizer tokenizer, string? chatTemplate = null) : base(source, tokenizer, chatTemplate)
    {
        Config = config;
        Weights = LlamaWeights.Load(source, Config);
        (_ropeCos, _ropeSin) = RopeTables(Config);
        _hookEmbed = Hooks.Declare("hook_embed");
        _blockHooks = new BlockHooks[Config.NLayer];
        _llamaHooks = new LlamaHooks[Config.NLayer];
        for (int l = 0; l < Config.NLayer; l++)
        {
            _blockHooks[l] = new BlockHooks(Hooks, l);
            _llamaHooks[l] = new LlamaHooks(Hooks, l, Config.IsMixtureOfExperts);
        }
        _hookFinalNormalized = Hooks.Declare("ln_final.hook_normalized");
    }

    public LlamaConfig Config { get; }
    public LlamaWeights Weights { get; }

    public override string Architecture => Config.IsMixtureOfExperts ? "llama (mixture of experts)" : "llama";
    public override int VocabSize => Config.NVocab;
    public override int ContextLength => Config.NCtx;
    public override int LayerCount => Config.NLayer;
    public override int EmbeddingLength => Config.NEmbd;

    public override long WeightBytesPerToken
    {
        get
        {
            long bytes = Weights.Output.ByteLength;
            foreach (LlamaLayerWeights w in Weights.Layers)
            {
                bytes += w.AttnQ.ByteLength + w.AttnK.ByteLength + w.AttnV.ByteLength + w.AttnOutput.ByteLength;
                if (w.Router is { } router)
                    bytes += router.ByteLength + Config.NExpertUsed * (w.ExpertGate![0].ByteLength + w.ExpertUp![0].ByteLength + w.ExpertDown![0].ByteLength);
                else
                    bytes += w.FfnGate!.Value.ByteLength + w.FfnUp!.Value.ByteLength + w.FfnDown!.Value.ByteLength;
            }
            return bytes;
        }
    }

    public override ModelState CreateState(int? maxBatch = null) => new LlamaState(Config, BatchSize(maxBatch, DefaultMaxBatch));

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    protected override void ForwardBatch(ModelState state, ReadOnlySpan<int> tokens, Span<float> logits, LogitsFor? which)
    {
        var s = (LlamaState)state;
        LlamaConfig c = Config;
        int n = tokens.Length, d = c.NEmbd, p0 = s.Position;
        Span<float> x = s.Residual.AsSpan(0, n * d);

        // 1. Token embeddings (no position embedding: positions enter through RoPE).
        EmbedTokens(Weights.TokenEmbedding, tokens, x, d);
        Raise(_hookEmbed, x, p0, n, d);

        for (int l = 0; l < c.NLayer; l++)
        {
            LlamaLayerWeights w = Weights.Layers[l];
            BlockHooks hooks = _blockHooks[l];
            LlamaHooks llamaHooks = _llamaHooks[l];
            Raise(hooks.ResidPre, x, p0, n, d);

            // 2. Attention: x += W_o · Attention(RoPE(W_q h), RoPE(W_k h), W_v h) with h = RMSNorm(x).
            RmsNormRows(x, w.AttnNorm, s.Normed, n);
            Project(w.AttnQkv, s.Normed, n, s.QkvOutputs);
            for (int t = 0; t < n; t++)
            {
                RotateHeads(s.Query.AsSpan(t * c.QueryDim, c.QueryDim), c.NHead, PositionOf(p0, t));
                RotateHeads(s.Key.AsSpan(t * c.KvDim, c.KvDim), c.NKvHead, PositionOf(p0, t));
            }
            Raise(llamaHooks.Q, s.Query.AsSpan(0, n * c.QueryDim), p0, n, c.QueryDim);
            Raise(llamaHooks.K, s.Key.AsSpan(0, n * c.KvDim), p0, n, c.KvDim);
            Raise(llamaHooks.V, s.Value.AsSpan(0, n * c.KvDim), p0, n, c.KvDim);
            long cacheOffset = (long)l * c.NCtx * c.KvDim;
            if (Each is { } each)
            {
                for (int t = 0; t < n; t++)
                    s.Attention.Store(s.Key.AsSpan(t * c.KvDim), c.KvDim, s.Value.AsSpan(t * c.KvDim), c.KvDim, each.KeyCaches[t], each.ValueCaches[t], cacheOffset, each.Positions[t], 1);
                s.Attention.RunEach(s.Query, c.QueryDim, each.KeyCaches, each.ValueCaches, cacheOffset, each.Positions, n, s.AttnOut, Threads);
            }
            else
            {
                s.Attention.Store(s.Key, c.KvDim, s.Value, c.KvDim, s.KeyCache, s.ValueCache, cacheOffset, p0, n);
                s.Attention.Run(s.Query, c.QueryDim, s.KeyCache, s.ValueCache, cacheOffset, p0, n, s.AttnOut, Threads, hooks.Pattern.IsActive);
            }
            hooks.RaisePattern(s.Attention, p0, n, c.NHead);
            Raise(hooks.Z, s.AttnOut.AsSpan(0, n * c.QueryDim), p0, n, c.QueryDim);
            Span<float> projected = s.Projected.AsSpan(0, n * d);
            Project(w.AttnOutput, s.AttnOut, n, projected);
            Raise(hooks.AttnOut, projected, p0, n, d);
            TensorPrimitives.Add(x, projected, x);
            Raise(hooks.ResidMid, x, p0, n, d);

            // 3. Feed-forward: x += W_down · (silu(W_gate h) ⊙ W_up h) with h = RMSNorm(x), or a mixture of such experts.
            RmsNormRows(x, w.FfnNorm, s.Normed, n);
            if (w.Router is { } router)
                MixtureOfExperts(s, w, router, llamaHooks, n);
            else
                DenseFeedForward(s, w, hooks, n);
            Raise(hooks.MlpOut, projected, p0, n, d);
            TensorPrimitives.Add(x, projected, x);
            Raise(hooks.ResidPost, x, p0, n, d);
        }

        Advance(s, p0, n);

        // 4. Final RMSNorm and the LM head.
        RmsNormRows(x, Weights.OutputNorm, s.Normed, n);
        Raise(_hookFinalNormalized, s.Normed.AsSpan(0, n * d), p0, n, d);
        ProjectToVocabulary(Weights.Output, s.Normed, n, d, logits, which);
    }

    public override void DecodeResidual(ReadOnlySpan<float> residual, Span<float> logits)
    {
        var normed = new float[Config.NEmbd];
        Ops.RmsNorm(residual, Weights.OutputNorm, Config.RmsNormEps, normed);
        Project(Weights.Output, normed, 1, logits);
    }

    private void DenseFeedForward(LlamaState s, LlamaLayerWeights w, BlockHooks hooks, int n)
    {
        int ff = Config.NFf;
        Project(w.FfnGateUp, s.Normed, n, s.GateUpOutputs);
        // Row by row: a vector kernel's scalar tail would otherwise fall on different values of a row
        // depending on the batch, and a context must compute the same alone as beside others.
        for (int t = 0; t < n; t++)
        {
            Span<float> gate = s.Gate.AsSpan(t * ff, ff);
            Ops.SwiGlu(gate, s.Up.AsSpan(t * ff, ff), gate);
        }
        Raise(hooks.MlpPost, s.Gate.AsSpan(0, n * ff), s.Position, n, ff);
        Project(w.FfnDown!.Value, s.Gate, n, s.Projected);
    }

    /// <summary>Route each position to its top-k experts and sum their SwiGLU outputs by renormalized weight.</summary>
    private void MixtureOfExperts(LlamaState s, LlamaLayerWeights w, Tensors.TensorData router, LlamaHooks hooks, int n)
    {
        LlamaConfig c = Config;
        int d = c.NEmbd, e = c.NExpert, k = c.NExpertUsed, ff = c.NFf;
        Span<float> probs = s.RouterProbs.AsSpan(0, n * e);
        Project(router, s.Normed, n, probs);
        for (int t = 0; t < n; t++)
        {
            Span<float> p = probs.Slice(t * e, e);
            TensorPrimitives.SoftMax(p, p);
            SelectTopK(p, s.ExpertIndices.AsSpan(t * k, k), s.ExpertWeights.AsSpan(t * k, k));
        }
        Raise(hooks.RouterProbs!, probs, s.Position, n, e);
        Raise(hooks.ExpertIndices!, s.ExpertIndices.AsSpan(0, n * k), s.Position, n, k);
        Raise(hooks.ExpertWeights!, s.ExpertWeights.AsSpan(0, n * k), s.Position, n, k);

        s.Projected.AsSpan(0, n * d).Clear();
        for (int t = 0; t < n; t++)
        {
            ReadOnlySpan<float> h = s.Normed.AsSpan(t * d, d);
            Span<float> gate = s.Gate.AsSpan(0, ff), up = s.Up.AsSpan(0, ff);
            for (int j = 0; j < k; j++)
            {
                int expert = (int)s.ExpertIndices[t * k + j];
                Project(w.ExpertGate![expert], h, 1, gate);
                Project(w.ExpertUp![expert], h, 1, up);
                Ops.SwiGlu(gate, up, gate);
                Project(w.ExpertDown![expert], gate, 1, s.ExpertOut);
                Span<float> output = s.Projected.AsSpan(t * d, d);
                TensorPrimitives.MultiplyAdd(s.ExpertOut, s.ExpertWeights[t * k + j], output, output);
            }
        }
    }

    /// <summary>The k most probable experts, best first (ties to the lower index), weights renormalized to sum to 1.</summary>
    private static void SelectTopK(ReadOnlySpan<float> probs, Span<float> indices, Span<float> weights)
    {
        Span<bool> taken = stackalloc bool[probs.Length];
        float sum = 0;
        for (int j = 0; j < indices.Length; j++)
        {
            int best = -1;
            for (int i = 0; i < probs.Length; i++)
                if (!taken[i] && (best < 0 || probs[i] > probs[best])) best = i;
            taken[best] = true;
            indices[j] = best;
            weights[j] = probs[best];
            sum += probs[best];
        }
        TensorPrimitives.Divide(weights, sum, weights);
    }

    private void RotateHeads(Span<float> vectors, int heads, int position)
    {
        int half = Config.RopeDims / 2;
        ReadOnlySpan<float> cos = _ropeCos.AsSpan(position * half, half), sin = _ropeSin.AsSpan(position * half, half);
        for (int h = 0; h < heads; h++)
        {
            Span<float> head = vectors.Slice(h * Config.HeadDim, Config.RopeDims);
            if (Config.RopeStyle == RopeStyle.Halves) Ops.RopeHalves(head, cos, sin);
            else Ops.RopeAdjacentPairs(head, cos, sin);
        }
    }

    private void RmsNormRows(ReadOnlySpan<float> x, float[] weight, float[] destination, int n)
    {
        int d = weight.Length;
        for (int t = 0; t < n; t++)
            Ops.RmsNorm(x.Slice(t * d, d), weight, Config.RmsNormEps, destination.AsSpan(t * d, d));
    }

    /// <summary>cos and sin of position·base^(−2i/ropeDims) for every position and pair, computed once in float64.</summary>
    private static (float[] Cos, float[] Sin) RopeTables(LlamaConfig c)
    {
        int half = c.RopeDims / 2;
        var cos = new float[c.NCtx * half];
        var sin = new float[c.NCtx * half];
        for (int p = 0; p < c.NCtx; p++)
        {
            for (int i = 0; i < half; i++)
            {
                double angle = p * Math.Pow(c.RopeFreqBase, -2.0 * i / c.RopeDims);
                cos[p * half + i] = (float)Math.Cos(angle);
                sin[p * half + i] = (float)Math.Sin(angle);
            }
        }
        return (cos, sin);
    }

    private sealed class LlamaHooks(HookRegistry hooks, int layer, bool moe)
    {
        public readonly HookPoint Q = hooks.Declare($"blocks.{layer}.attn.hook_q");
        public readonly HookPoint K = hooks.Declare($"blocks.{layer}.attn.hook_k");
        public readonly HookPoint V = hooks.Declare($"blocks.{layer}.attn.hook_v");
        public readonly HookPoint? RouterProbs = moe ? hooks.Declare($"blocks.{layer}.mlp.hook_router_probs") : null;
        public readonly HookPoint? ExpertIndices = moe ? hooks.Declare($"blocks.{layer}.mlp.hook_expert_indices") : null;
        public readonly HookPoint? ExpertWeights = moe ? hooks.Declare($"blocks.{layer}.mlp.hook_expert_weights") : null;
    }
}
