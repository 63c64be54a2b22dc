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
/// of experts: softmax over all experts, the top k kept and renormalized. The other Llama-like
/// families run here too, each block composed as <see cref="LlamaConfig.Block"/> says: q/k/v
/// biases, q/k RMSNorm, NeoX RoPE with per-pair factors and per-layer bases, post-norms, GeGLU,
/// softcaps, sliding windows, fused projections, a shared expert.
/// </summary>
public sealed class LlamaModel : LanguageModel
{
    private const int DefaultMaxBatch = 128;

    private readonly float[] _ropeCos, _ropeSin; // [nCtx, ropeDims/2] for global layers
    private readonly float[] _localCos, _localSin; // the same for sliding-window layers (the same arrays when they rotate alike)
    private readonly HookPoint _hookEmbed, _hookFinalNormalized;
    private readonly BlockHooks[] _blockHooks;
    private readonly LlamaHooks[] _llamaHooks;

    public LlamaModel(IWeightSource source, LlamaConfig config, Tokenizer tokenizer, string? chatTemplate = null) : base(source, tokenizer, chatTemplate)
    {
        Config = config;
        TrainedContextLength = config.NCtx;
        Weights = LlamaWeights.Load(source, Config);
        (_ropeCos, _ropeSin) = RopeTables(Config, Config.RopeFreqBase, Config.RopeLinearScale, Weights.RopeFactors ?? Config.RopeFreqFactors);
        double localBase = Config.RopeFreqBaseLocal > 0 ? Config.RopeFreqBaseLocal : Config.RopeFreqBase;
        double localScale = Config.Block.LocalRopeUnscaled ? 1 : Config.RopeLinearScale;
        (_localCos, _localSin) = localBase == Config.RopeFreqBase && localScale == Config.RopeLinearScale
            ? (_ropeCos, _ropeSin) : RopeTables(Config, localBase, localScale, Weights.RopeFactors ?? Config.RopeFreqFactors);
        _hookEmbed = Hooks.Declare(HookNames.Embed);
        _blockHooks = new BlockHooks[Config.NLayer];
        _llamaHooks = new LlamaHooks[Config.NLayer];
        for (int l = 0; l < Config.NLayer; l++)
        {
            _blockHooks[l] = new BlockHooks(Hooks, l);
            _llamaHooks[l] = new LlamaHooks(Hooks, l, Config.IsMixtureOfExperts, Config.NFfShared > 0);
        }
        _hookFinalNormalized = Hooks.Declare(HookNames.FinalNormalized);
    }

    public LlamaConfig Config { get; private set; }
    public LlamaWeights Weights { get; }

    public override string Architecture => Config.IsMixtureOfExperts ? $"{Config.Family} (mixture of experts)" : Config.Family;
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
            foreach (LlamaLayerWeights w in Weights.Layers)
            {
                bytes += w.AttnQ.ByteLength + w.AttnK.ByteLength + w.AttnV.ByteLength + w.AttnOutput.ByteLength;
                if (w.Router is { } router)
                    bytes += router.ByteLength + Config.NExpertUsed * (w.ExpertGate![0].ByteLength + w.ExpertUp![0].ByteLength + w.ExpertDown![0].ByteLength);
                else
                    bytes += w.FfnGate!.Value.ByteLength + w.FfnUp!.Value.ByteLength + w.FfnDown!.Value.ByteLength;
                if (w.SharedRouter is { } shared)
                    bytes += shared.ByteLength + w.SharedGate!.Value.ByteLength + w.SharedUp!.Value.ByteLength + w.SharedDown!.Value.ByteLength;
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
        StepProfile.Mark(StepPhase.Other);

        // 1. Token embeddings (no position embedding: positions enter through RoPE); Gemma scales them by √d.
        EmbedTokens(Weights.TokenEmbedding, tokens, x, d);
        if (c.Block.ScaleEmbedding) TensorPrimitives.Multiply(x, MathF.Sqrt(d), x);
        Raise(_hookEmbed, x, p0, n, d);
        StepProfile.Mark(StepPhase.Embed);

        // A prompt runs the row-wise steps between matmuls on all threads (each row computed exactly as
        // alone, so the result does not depend on the thread count), joining neighbouring steps into one
        // parallel region where no hook needs to see the values in between.
        RowSteps steps = s.Steps ??= new RowSteps();
        steps.Begin(this, s, n, p0, Each is null);
        bool normed = false; // this layer's attention RMSNorm already ran with the previous layer's last step
        for (int l = 0; l < c.NLayer; l++)
        {
            LlamaLayerWeights w = Weights.Layers[l];
            BlockHooks hooks = _blockHooks[l];
            LlamaHooks llamaHooks = _llamaHooks[l];
            long cacheOffset = (long)l * c.NCtx * c.KvDim;
            bool local = c.IsLocalLayer(l);
            steps.Layer(w, cacheOffset, local ? _localCos : _ropeCos, local ? _localSin : _ropeSin);
            Raise(hooks.ResidPre, x, p0, n, d);

            // 2. Attention: x += W_o · Attention(RoPE(W_q h), RoPE(W_k h), W_v h) with h = RMSNorm(x).
            if (!normed) steps.Run(RowStep.AttnNorm);
            StepProfile.Mark(StepPhase.Norms);
            Project(w.AttnQkv, s.Normed, n, s.QkvOutputs);
            StepProfile.Mark(StepPhase.QueryKeyValue);
            bool qkvHooks = llamaHooks.Q.IsActive || llamaHooks.K.IsActive || llamaHooks.V.IsActive;
            steps.Run(qkvHooks ? RowStep.Rotate : RowStep.Rotate | RowStep.Store);
            StepProfile.Mark(StepPhase.RopeStore);
            Raise(llamaHooks.Q, s.Query.AsSpan(0, n * c.QueryDim), p0, n, c.QueryDim);
            Raise(llamaHooks.K, s.Key.AsSpan(0, n * c.KvDim), p0, n, c.KvDim);
            Raise(llamaHooks.V, s.Value.AsSpan(0, n * c.KvDim), p0, n, c.KvDim);
            if (Each is { } each)
            {
                for (int t = 0; t < n; t++)
                    s.Attention.Store(s.Key.AsSpan(t * c.KvDim), c.KvDim, s.Value.AsSpan(t * c.KvDim), c.KvDim, each.KeyCaches[t], each.ValueCaches[t], cacheOffset, each.Positions[t], 1);
                s.Attention.RunEach(s.Query, c.QueryDim, each.KeyCaches, each.ValueCaches, cacheOffset, each.Positions, n, s.AttnOut, Threads, c.WindowOf(l));
            }
            else
            {
                if (qkvHooks) steps.Run(RowStep.Store);
                s.Attention.Run(s.Query, c.QueryDim, s.KeyCache, s.ValueCache, cacheOffset, p0, n, s.AttnOut, Threads, hooks.Pattern.IsActive, c.WindowOf(l));
            }
            StepProfile.Mark(StepPhase.Attention);
            hooks.RaisePattern(s.Attention, p0, n, c.NHead);
            Raise(hooks.Z, s.AttnOut.AsSpan(0, n * c.QueryDim), p0, n, c.QueryDim);
            Span<float> projected = s.Projected.AsSpan(0, n * d);
            Project(w.AttnOutput, s.AttnOut, n, projected);
            StepProfile.Mark(StepPhase.AttentionOutput);
            steps.PostNorm(w.PostAttnNorm);
            if (hooks.AttnOut.IsActive || hooks.ResidMid.IsActive)
            {
                steps.Run(RowStep.PostNorm);
                Raise(hooks.AttnOut, projected, p0, n, d);
                steps.Run(RowStep.AddResidual);
                Raise(hooks.ResidMid, x, p0, n, d);
                steps.Run(RowStep.FfnNorm);
            }
            else steps.Run(RowStep.PostNorm | RowStep.AddResidual | RowStep.FfnNorm);
            StepProfile.Mark(StepPhase.Norms);

            // 3. Feed-forward: x += W_down · (silu(W_gate h) ⊙ W_up h) with h = RMSNorm(x), or a mixture of such experts.
            if (w.Router is { } router)
                MixtureOfExperts(s, w, router, llamaHooks, n);
            else
                DenseFeedForward(s, w, hooks, n, steps);
            steps.PostNorm(w.PostFfnNorm);
            normed = l + 1 < c.NLayer && !hooks.MlpOut.IsActive && !hooks.ResidPost.IsActive && !_blockHooks[l + 1].ResidPre.IsActive;
            if (normed)
            {
                steps.Next(Weights.Layers[l + 1]);
                steps.Run(RowStep.PostNorm | RowStep.AddResidual | RowStep.NextAttnNorm);
                StepProfile.Mark(StepPhase.Norms);
                continue;
            }
            steps.Run(RowStep.PostNorm);
            Raise(hooks.MlpOut, projected, p0, n, d);
            steps.Run(RowStep.AddResidual);
            Raise(hooks.ResidPost, x, p0, n, d);
        }

        Advance(s, p0, n);

        // 4. Final RMSNorm and the LM head.
        // Only the last row when only its logits are wanted and no hook looks at the others.
        int first = which == LogitsFor.AllPositions || _hookFinalNormalized.IsActive ? 0 : n - 1;
        RmsNormRows(x[(first * d)..], Weights.OutputNorm, s.Normed.AsSpan(first * d), n - first);
        Raise(_hookFinalNormalized, s.Normed.AsSpan(0, n * d), p0, n, d);
        StepProfile.Mark(StepPhase.Norms);
        ProjectToVocabulary(Weights.Output, s.Normed, n, d, logits, which);
        if (c.FinalSoftcap > 0 && which is { } rows)
        {
            // Row by row, so a row's values do not depend on where a vector kernel's tail falls in the batch.
            int v = c.NVocab;
            for (int t = 0; t < (rows == LogitsFor.AllPositions ? n : 1); t++)
                Ops.Softcap(logits.Slice(t * v, v), c.FinalSoftcap, logits.Slice(t * v, v));
        }
        StepProfile.Mark(StepPhase.LmHead);
    }

    public override void DecodeResidual(ReadOnlySpan<float> residual, Span<float> logits)
    {
        var normed = new float[Config.NEmbd];
        Ops.RmsNorm(residual, Weights.OutputNorm, Config.RmsNormEps, normed);
        Project(Weights.Output, normed, 1, logits);
        if (Config.FinalSoftcap > 0) Ops.Softcap(logits[..Config.NVocab], Config.FinalSoftcap, logits);
    }

    private void DenseFeedForward(LlamaState s, LlamaLayerWeights w, BlockHooks hooks, int n, RowSteps steps)
    {
        int ff = Config.NFf;
        Project(w.FfnGateUp, s.Normed, n, s.GateUpOutputs);
        StepProfile.Mark(StepPhase.GateUp);
        // Row by row: a vector kernel's scalar tail would otherwise fall on different values of a row
        // depending on the batch, and a context must compute the same alone as beside others.
        steps.Run(RowStep.Glu);
        StepProfile.Mark(StepPhase.Glu);
        Raise(hooks.MlpPost, s.Gate.AsSpan(0, n * ff), s.Position, n, ff);
        Project(w.FfnDown!.Value, s.Gate, n, s.Projected);
        StepProfile.Mark(StepPhase.Down);
    }

    /// <summary>
    /// Route each position to its top-k experts and sum their SwiGLU outputs by weight (renormalized
    /// or not, as the family does), plus a shared expert gated by a sigmoid where the family has one.
    /// </summary>
    private void MixtureOfExperts(LlamaState s, LlamaLayerWeights w, Tensors.TensorData router, LlamaHooks hooks, int n)
    {
        LlamaConfig c = Config;
        int d = c.NEmbd, e = c.NExpert, k = c.NExpertUsed, ff = c.ExpertFf;
        bool renormalize = c.Block.Moe == MoeKind.SoftmaxTopKRenormalized;
        Span<float> probs = s.RouterProbs.AsSpan(0, n * e);
        Project(router, s.Normed, n, probs);
        for (int t = 0; t < n; t++)
        {
            Span<float> p = probs.Slice(t * e, e);
            TensorPrimitives.SoftMax(p, p);
            SelectTopK(p, s.ExpertIndices.AsSpan(t * k, k), s.ExpertWeights.AsSpan(t * k, k), renormalize);
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
        if (w.SharedRouter is { } sharedRouter) SharedExpert(s, w, sharedRouter, hooks, n);
    }

    /// <summary>Qwen2-MoE: x += sigmoid(w_g · h) · SwiGLU_shared(h), for every position of the batch.</summary>
    private void SharedExpert(LlamaState s, LlamaLayerWeights w, Tensors.TensorData router, LlamaHooks hooks, int n)
    {
        int d = Config.NEmbd, ff = Config.NFfShared;
        float[] gates = s.SharedGateValues!, shared = s.SharedOut!;
        Project(router, s.Normed, n, gates.AsSpan(0, n));
        for (int t = 0; t < n; t++) gates[t] = 1f / (1f + MathF.Exp(-gates[t]));
        Raise(hooks.SharedGate!, gates.AsSpan(0, n), s.Position, n, 1);
        Project(w.SharedGateUp, s.Normed, n, s.GateUpOutputs);
        for (int t = 0; t < n; t++)
        {
            Span<float> gate = s.Gate.AsSpan(t * ff, ff);
            Ops.SwiGlu(gate, s.Up.AsSpan(t * ff, ff), gate);
        }
        Project(w.SharedDown!.Value, s.Gate, n, shared);
        for (int t = 0; t < n; t++)
        {
            Span<float> output = s.Projected.AsSpan(t * d, d);
            TensorPrimitives.MultiplyAdd(shared.AsSpan(t * d, d), gates[t], output, output);
        }
    }

    /// <summary>The k most probable experts, best first (ties to the lower index), weights renormalized to sum to 1 when asked.</summary>
    private static void SelectTopK(ReadOnlySpan<float> probs, Span<float> indices, Span<float> weights, bool renormalize)
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
        if (renormalize) TensorPrimitives.Divide(weights, sum, weights);
    }

    private void RotateHeads(Span<float> vectors, int heads, int position, float[] cosTable, float[] sinTable)
    {
        int half = Config.RopeDims / 2;
        ReadOnlySpan<float> cos = cosTable.AsSpan(position * half, half), sin = sinTable.AsSpan(position * half, half);
        for (int h = 0; h < heads; h++)
        {
            Span<float> head = vectors.Slice(h * Config.HeadDim, Config.RopeDims);
            if (Config.RopeStyle == RopeStyle.Halves) Ops.RopeHalves(head, cos, sin);
            else Ops.RopeAdjacentPairs(head, cos, sin);
        }
    }

    private void RmsNormRows(ReadOnlySpan<float> x, float[] weight, Span<float> destination, int n)
    {
        int d = weight.Length;
        for (int t = 0; t < n; t++)
            Ops.RmsNorm(x.Slice(t * d, d), weight, Config.RmsNormEps, destination.Slice(t * d, d));
    }

    [Flags]
    internal enum RowStep
    {
        AttnNorm = 1, Rotate = 2, Store = 4, PostNorm = 8, AddResidual = 16, FfnNorm = 32, Glu = 64, NextAttnNorm = 128,
    }

    /// <summary>
    /// The row-wise work of a prompt between its matmuls (RMSNorms, q/k biases, norms and RoPE, the
    /// key/value cache store, GLU, residual adds), split by rows across the worker pool. One per
    /// state: allocated on the first forward pass, reused after.
    /// </summary>
    internal sealed class RowSteps : RowChunks
    {
        private LlamaModel _model = null!;
        private LlamaState _s = null!;
        private LlamaLayerWeights _w = null!, _next = null!;
        private float[]? _post;
        private float[] _cos = null!, _sin = null!;
        private int _p0;
        private bool _store;
        private long _cacheOffset;
        private RowStep _steps;

        public void Begin(LlamaModel model, LlamaState s, int n, int p0, bool store)
        {
            (_model, _s, _p0, _store) = (model, s, p0, store);
            Split(n, model.Threads);
        }

        public void Layer(LlamaLayerWeights w, long cacheOffset, float[] cos, float[] sin) => (_w, _cacheOffset, _cos, _sin) = (w, cacheOffset, cos, sin);

        /// <summary>The next layer, whose attention RMSNorm <see cref="RowStep.NextAttnNorm"/> computes.</summary>
        public void Next(LlamaLayerWeights next) => _next = next;

        /// <summary>The weight of the norm <see cref="RowStep.PostNorm"/> applies to the projected rows in place (none: the step does nothing).</summary>
        public void PostNorm(float[]? weight) => _post = weight;

        public void Run(RowStep steps)
        {
            _steps = steps;
            RunChunks();
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        protected override void Rows(int from, int to)
        {
            LlamaModel model = _model;
            LlamaConfig c = model.Config;
            LlamaState s = _s;
            LlamaLayerWeights w = _w;
            int d = c.NEmbd, ff = c.NFf;
            float eps = c.RmsNormEps;
            RowStep steps = _steps;
            for (int t = from; t < to; t++)
            {
                Span<float> x = s.Residual.AsSpan(t * d, d), normed = s.Normed.AsSpan(t * d, d), projected = s.Projected.AsSpan(t * d, d);
                if ((steps & RowStep.Rotate) != 0)
                {
                    Span<float> q = s.Query.AsSpan(t * c.QueryDim, c.QueryDim), k = s.Key.AsSpan(t * c.KvDim, c.KvDim);
                    if (w.AttnQBias is { } qb)
                    {
                        TensorPrimitives.Add(q, qb, q);
                        TensorPrimitives.Add(k, w.AttnKBias, k);
                        Span<float> v = s.Value.AsSpan(t * c.KvDim, c.KvDim);
                        TensorPrimitives.Add(v, w.AttnVBias, v);
                    }
                    if (w.AttnQNorm is { } qn)
                    {
                        // Per head (weight of headDim) or over the whole projection (weight as wide as q).
                        Ops.RmsNormHeads(q, qn, eps);
                        Ops.RmsNormHeads(k, w.AttnKNorm, eps);
                    }
                    int position = model.PositionOf(_p0, t);
                    model.RotateHeads(q, c.NHead, position, _cos, _sin);
                    model.RotateHeads(k, c.NKvHead, position, _cos, _sin);
                }
                if ((steps & RowStep.PostNorm) != 0 && _post is { } post) Ops.RmsNorm(projected, post, eps, projected);
                if ((steps & RowStep.AddResidual) != 0) TensorPrimitives.Add(x, projected, x);
                if ((steps & RowStep.AttnNorm) != 0) Ops.RmsNorm(x, w.AttnNorm, eps, normed);
                if ((steps & RowStep.NextAttnNorm) != 0) Ops.RmsNorm(x, _next.AttnNorm, eps, normed);
                if ((steps & RowStep.FfnNorm) != 0) Ops.RmsNorm(x, w.FfnNorm, eps, normed);
                if ((steps & RowStep.Glu) != 0)
                {
                    Span<float> gate = s.Gate.AsSpan(t * ff, ff);
                    if (c.Block.Ffn == FfnKind.GeGluTanh) Ops.GeGluTanh(gate, s.Up.AsSpan(t * ff, ff), gate);
                    else Ops.SwiGlu(gate, s.Up.AsSpan(t * ff, ff), gate);
                }
            }
            if ((steps & RowStep.Store) != 0 && _store)
                s.Attention.Store(s.Key.AsSpan(from * c.KvDim), c.KvDim, s.Value.AsSpan(from * c.KvDim), c.KvDim, s.KeyCache, s.ValueCache, _cacheOffset, _p0 + from, to - from);
        }
    }

    /// <summary>
    /// cos and sin of position·base^(−2i/ropeDims) / (linear · factor[i]) for every position and pair,
    /// times the LongRoPE attention factor, computed once in float64.
    /// </summary>
    private static (float[] Cos, float[] Sin) RopeTables(LlamaConfig c, double freqBase, double linear, float[]? factors)
    {
        int half = c.RopeDims / 2;
        var cos = new float[c.NCtx * half];
        var sin = new float[c.NCtx * half];
        for (int p = 0; p < c.NCtx; p++)
        {
            for (int i = 0; i < half; i++)
            {
                double angle = p * Math.Pow(freqBase, -2.0 * i / c.RopeDims) / linear / (factors is null ? 1 : factors[i]);
                cos[p * half + i] = (float)(Math.Cos(angle) * c.RopeAttnFactor);
                sin[p * half + i] = (float)(Math.Sin(angle) * c.RopeAttnFactor);
            }
        }
        return (cos, sin);
    }

    private sealed class LlamaHooks(HookRegistry hooks, int layer, bool moe, bool shared)
    {
        public readonly HookPoint Q = hooks.Declare(HookNames.Q(layer));
        public readonly HookPoint K = hooks.Declare(HookNames.K(layer));
        public readonly HookPoint V = hooks.Declare(HookNames.V(layer));
        public readonly HookPoint? RouterProbs = moe ? hooks.Declare(HookNames.RouterProbs(layer)) : null;
        public readonly HookPoint? ExpertIndices = moe ? hooks.Declare(HookNames.ExpertIndices(layer)) : null;
        public readonly HookPoint? ExpertWeights = moe ? hooks.Declare(HookNames.ExpertWeights(layer)) : null;
        public readonly HookPoint? SharedGate = shared ? hooks.Declare(HookNames.SharedGate(layer)) : null;
    }
}
