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
        StepProfile.Mark(StepPhase.Other);

        // 1. Embeddings: token embedding plus learned position embedding.
        EmbedTokens(Weights.TokenEmbedding, tokens, x, d);
        Raise(_hookEmbed, x, p0, n, d);
        Span<float> positions = s.Normed.AsSpan(0, n * d);
        for (int t = 0; t < n; t++) RowConvert.Row(Weights.PositionEmbedding, PositionOf(p0, t), positions.Slice(t * d, d));
        Raise(_hookPosEmbed, positions, p0, n, d);
        TensorPrimitives.Add(x, positions, x);
        StepProfile.Mark(StepPhase.Embed);

        // A prompt runs the row-wise steps between matmuls on all threads (each row computed exactly as
        // alone, so the result does not depend on the thread count), joining neighbouring steps into one
        // parallel region where no hook needs to see the values in between.
        RowSteps steps = s.Steps ??= new RowSteps();
        steps.Begin(this, s, n, p0, Each is null);
        bool normed = false; // LN₁ of this layer already ran with the previous layer's last step
        for (int l = 0; l < c.NLayer; l++)
        {
            Gpt2LayerWeights w = Weights.Layers[l];
            BlockHooks hooks = _blockHooks[l];
            steps.Layer(w, (long)l * c.NCtx * d);
            Raise(hooks.ResidPre, x, p0, n, d);

            // 2. Attention sub-block: x += W_o · Attention(LN₁(x)) + b_o.
            if (!normed) steps.Run(RowStep.AttnNorm);
            StepProfile.Mark(StepPhase.Norms);
            Span<float> qkv = s.Qkv.AsSpan(0, n * 3 * d);
            Project(w.AttnQkv, s.Normed, n, qkv);
            StepProfile.Mark(StepPhase.QueryKeyValue);
            steps.Run(_hookQkv[l].IsActive ? RowStep.QkvBias : RowStep.QkvBias | RowStep.Store);
            StepProfile.Mark(StepPhase.RopeStore);
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
                if (_hookQkv[l].IsActive) steps.Run(RowStep.Store);
                s.Attention.Run(s.Qkv, 3 * d, s.KeyCache, s.ValueCache, cacheOffset, p0, n, s.AttnOut, Threads, hooks.Pattern.IsActive);
            }
            StepProfile.Mark(StepPhase.Attention);
            hooks.RaisePattern(s.Attention, p0, n, c.NHead);
            Raise(hooks.Z, s.AttnOut.AsSpan(0, n * d), p0, n, d);
            Span<float> projected = s.Projected.AsSpan(0, n * d);
            Project(w.AttnOutput, s.AttnOut, n, projected);
            StepProfile.Mark(StepPhase.AttentionOutput);
            if (hooks.AttnOut.IsActive || hooks.ResidMid.IsActive)
            {
                steps.Run(RowStep.OutBias);
                Raise(hooks.AttnOut, projected, p0, n, d);
                steps.Run(RowStep.AddResidual);
                Raise(hooks.ResidMid, x, p0, n, d);
                steps.Run(RowStep.FfnNorm);
            }
            else steps.Run(RowStep.OutBias | RowStep.AddResidual | RowStep.FfnNorm);
            StepProfile.Mark(StepPhase.Norms);

            // 3. MLP sub-block: x += W_down · GELU(W_up · LN₂(x) + b_up) + b_down.
            Span<float> hidden = s.FfnHidden.AsSpan(0, n * c.NFf);
            Project(w.FfnUp, s.Normed, n, hidden);
            StepProfile.Mark(StepPhase.GateUp);
            steps.Run(RowStep.UpBiasGelu);
            StepProfile.Mark(StepPhase.Glu);
            Raise(hooks.MlpPost, hidden, p0, n, c.NFf);
            Project(w.FfnDown, s.FfnHidden, n, projected);
            StepProfile.Mark(StepPhase.Down);
            normed = l + 1 < c.NLayer && !hooks.MlpOut.IsActive && !hooks.ResidPost.IsActive && !_blockHooks[l + 1].ResidPre.IsActive;
            if (normed)
            {
                steps.Next(Weights.Layers[l + 1]);
                steps.Run(RowStep.DownBias | RowStep.AddResidual | RowStep.NextAttnNorm);
                StepProfile.Mark(StepPhase.Norms);
                continue;
            }
            steps.Run(RowStep.DownBias);
            Raise(hooks.MlpOut, projected, p0, n, d);
            steps.Run(RowStep.AddResidual);
            Raise(hooks.ResidPost, x, p0, n, d);
        }

        Advance(s, p0, n);

        // 4. Final LayerNorm and the LM head, for the rows the caller wants.
        // Only the last row when only its logits are wanted and no hook looks at the others.
        int first = which == LogitsFor.AllPositions || _hookFinalNormalized.IsActive ? 0 : n - 1;
        LayerNormRows(x[(first * d)..], Weights.OutputNormWeight, Weights.OutputNormBias, s.Normed.AsSpan(first * d), n - first);
        Raise(_hookFinalNormalized, s.Normed.AsSpan(0, n * d), p0, n, d);
        StepProfile.Mark(StepPhase.Norms);
        ProjectToVocabulary(Weights.Output, s.Normed, n, d, logits, which);
        StepProfile.Mark(StepPhase.LmHead);
    }

    public override void DecodeResidual(ReadOnlySpan<float> residual, Span<float> logits)
    {
        var normed = new float[Config.NEmbd];
        Ops.LayerNorm(residual, Weights.OutputNormWeight, Weights.OutputNormBias, Config.LayerNormEps, normed);
        Project(Weights.Output, normed, 1, logits);
    }

    private void LayerNormRows(ReadOnlySpan<float> x, float[] weight, float[] bias, Span<float> destination, int n)
    {
        int d = weight.Length;
        for (int t = 0; t < n; t++)
            Ops.LayerNorm(x.Slice(t * d, d), weight, bias, Config.LayerNormEps, destination.Slice(t * d, d));
    }

    [Flags]
    internal enum RowStep
    {
        AttnNorm = 1, QkvBias = 2, Store = 4, OutBias = 8, AddResidual = 16, FfnNorm = 32, UpBiasGelu = 64, DownBias = 128, NextAttnNorm = 256,
    }

    /// <summary>
    /// The row-wise work of a prompt between its matmuls (LayerNorms, bias adds, GELU, residual adds,
    /// the key/value cache store), split by rows across the worker pool. One per state: allocated on the
    /// first forward pass, reused after.
    /// </summary>
    internal sealed class RowSteps : RowChunks
    {
        private Gpt2Model _model = null!;
        private Gpt2State _s = null!;
        private Gpt2LayerWeights _w = null!, _next = null!;
        private int _p0;
        private bool _store;
        private long _cacheOffset;
        private RowStep _steps;

        public void Begin(Gpt2Model model, Gpt2State s, int n, int p0, bool store)
        {
            (_model, _s, _p0, _store) = (model, s, p0, store);
            Split(n, model.Threads);
        }

        public void Layer(Gpt2LayerWeights w, long cacheOffset) => (_w, _cacheOffset) = (w, cacheOffset);

        /// <summary>The next layer, whose LN₁ <see cref="RowStep.NextAttnNorm"/> computes.</summary>
        public void Next(Gpt2LayerWeights next) => _next = next;

        public void Run(RowStep steps)
        {
            _steps = steps;
            RunChunks();
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        protected override void Rows(int from, int to)
        {
            Gpt2State s = _s;
            Gpt2LayerWeights w = _w;
            int d = _model.Config.NEmbd, ff = _model.Config.NFf;
            float eps = _model.Config.LayerNormEps;
            RowStep steps = _steps;
            for (int t = from; t < to; t++)
            {
                Span<float> x = s.Residual.AsSpan(t * d, d), normed = s.Normed.AsSpan(t * d, d), projected = s.Projected.AsSpan(t * d, d);
                if ((steps & RowStep.QkvBias) != 0)
                {
                    Span<float> qkv = s.Qkv.AsSpan(t * 3 * d, 3 * d);
                    TensorPrimitives.Add(qkv, w.AttnQkvBias, qkv);
                }
                if ((steps & (RowStep.OutBias | RowStep.DownBias)) != 0)
                    TensorPrimitives.Add(projected, (steps & RowStep.OutBias) != 0 ? w.AttnOutputBias : w.FfnDownBias, projected);
                if ((steps & RowStep.AddResidual) != 0) TensorPrimitives.Add(x, projected, x);
                if ((steps & RowStep.AttnNorm) != 0) Ops.LayerNorm(x, w.AttnNormWeight, w.AttnNormBias, eps, normed);
                if ((steps & RowStep.NextAttnNorm) != 0) Ops.LayerNorm(x, _next.AttnNormWeight, _next.AttnNormBias, eps, normed);
                if ((steps & RowStep.FfnNorm) != 0) Ops.LayerNorm(x, w.FfnNormWeight, w.FfnNormBias, eps, normed);
                if ((steps & RowStep.UpBiasGelu) != 0)
                {
                    Span<float> hidden = s.FfnHidden.AsSpan(t * ff, ff);
                    TensorPrimitives.Add(hidden, w.FfnUpBias, hidden);
                    Ops.GeluTanh(hidden, hidden);
                }
            }
            if ((steps & RowStep.Store) != 0 && _store)
            {
                ReadOnlySpan<float> qkv = s.Qkv.AsSpan(from * 3 * d, (to - from) * 3 * d);
                s.Attention.Store(qkv[d..], 3 * d, qkv[(2 * d)..], 3 * d, s.KeyCache, s.ValueCache, _cacheOffset, _p0 + from, to - from);
            }
        }
    }
}
