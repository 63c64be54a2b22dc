using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using NextToken.Kernels;
using NextToken.Models;

namespace NextToken.Training;

/// <summary>
/// Hand-written forward and backward passes of GPT-2 in float32 for a batch of B rows of T tokens
/// (the structure of llm.c's train_gpt2.c: every activation the backward pass needs is kept).
/// Block: pre-norm, x += attn(LN1(x)); x += mlp(LN2(x)) with tanh GELU; final LN; logits through
/// the tied embedding. Loss = mean cross-entropy over the positions with a target (target −1 or a
/// zero mask weight leaves a position out; <see cref="Forward"/> can weight positions for SFT).
/// Buffers are allocated once for the batch shape; a step allocates nothing.
/// </summary>
public sealed unsafe class Gpt2Training
{
    private readonly Gpt2Parameters _p;
    private readonly Gpt2Dimensions _s;
    private readonly int _b, _t, _n, _threads;
    private readonly Layer[] _layers;
    private readonly float[] _encoded, _lnf, _lnfMean, _lnfRstd, _logits;
    private readonly float[] _scratchT, _dResidual, _dLn, _dBig, _dAtty;
    private readonly float[] _lossWeights;
    private readonly int[] _inputs, _targets;
    private float[] _params = null!, _grads = null!;
    private readonly AttentionJob _attention;
    // Offset of each per-layer tensor by name pattern, so a step formats no names.
    private readonly Dictionary<string, int[]> _layerOffsets = [];

    private sealed class Layer
    {
        public float[] Ln1 = null!, Ln1Mean = null!, Ln1Rstd = null!, Qkv = null!, Att = null!, Atty = null!, Residual2 = null!,
            Ln2 = null!, Ln2Mean = null!, Ln2Rstd = null!, Fch = null!, FchGelu = null!, Residual3 = null!;
    }

    public Gpt2Training(Gpt2Parameters parameters, int batch, int tokens, int threads)
    {
        _p = parameters;
        _s = parameters.Shape;
        if (tokens > _s.NCtx) throw new NextTokenException($"block size {tokens} is above the model's context length {_s.NCtx}");
        if (batch < 1 || tokens < 1) throw new NextTokenException($"batch size {batch} and block size {tokens} must be at least 1");
        _b = batch; _t = tokens; _n = batch * tokens; _threads = Math.Max(1, threads);
        int c = _s.NEmbd, f = _s.NFf, v = _s.NVocab;
        float[] A(long length) => GC.AllocateArray<float>(checked((int)length), pinned: true);
        _layers = new Layer[_s.NLayer];
        for (int l = 0; l < _s.NLayer; l++)
            _layers[l] = new Layer
            {
                Ln1 = A(_n * c), Ln1Mean = A(_n), Ln1Rstd = A(_n), Qkv = A(_n * 3L * c), Att = A((long)_b * _s.NHead * _t * _t),
                Atty = A(_n * c), Residual2 = A(_n * c), Ln2 = A(_n * c), Ln2Mean = A(_n), Ln2Rstd = A(_n),
                Fch = A((long)_n * f), FchGelu = A((long)_n * f), Residual3 = A(_n * c),
            };
        _encoded = A(_n * c);
        _lnf = A(_n * c); _lnfMean = A(_n); _lnfRstd = A(_n);
        _logits = A((long)_n * v);
        long widest = Math.Max(Math.Max(3L * c, f), v);
        _scratchT = A(Math.Max(widest * c, widest * _n));
        _dResidual = A(_n * c); _dLn = A(_n * c); _dAtty = A(_n * c);
        _dBig = A(Math.Max((long)_n * Math.Max(3L * c, f), (long)_n * f));
        _lossWeights = A(_n);
        _inputs = new int[_n];
        _targets = new int[_n];
        _attention = new AttentionJob(this);
        foreach (string pattern in new[] { TensorNames.AttnNorm, TensorNames.AttnNormBias, TensorNames.AttnQkv, TensorNames.AttnQkvBias,
                     TensorNames.AttnOutput, TensorNames.AttnOutputBias, TensorNames.FfnNorm, TensorNames.FfnNormBias,
                     TensorNames.FfnUp, TensorNames.FfnUpBias, TensorNames.FfnDown, TensorNames.FfnDownBias })
            _layerOffsets[pattern] = [.. Enumerable.Range(0, _s.NLayer).Select(l => parameters[TensorNames.Layer(pattern, l)].Offset)];
    }

    public int BatchSize => _b;
    public int BlockSize => _t;

    /// <summary>Softmax probabilities [B·T, V] after a <see cref="Forward"/> with targets (until <see cref="Backward"/> turns them into logit gradients).</summary>
    public ReadOnlySpan<float> Probabilities => _logits.AsSpan(0, _n * _s.NVocab);

    /// <summary>
    /// Runs the forward pass over <paramref name="inputs"/> [B·T] and returns the mean cross-entropy
    /// against <paramref name="targets"/>; with <paramref name="weights"/> the loss is
    /// Σ w·CE / Σ w (a masked SFT loss). Keeps the activations for <see cref="Backward"/>.
    /// With <paramref name="logitsOnly"/> no loss is computed (NaN is returned) and the raw logits stay in <see cref="Logits"/>.
    /// </summary>
    public float Forward(float[] parameters, ReadOnlySpan<int> inputs, ReadOnlySpan<int> targets, ReadOnlySpan<float> weights = default, bool logitsOnly = false)
    {
        if (parameters.Length != _p.Count) throw new ArgumentException("parameter buffer of another model");
        if (inputs.Length != _n || (!logitsOnly && targets.Length != _n)) throw new ArgumentException($"expected {_n} inputs and targets");
        _params = parameters;
        int c = _s.NEmbd, v = _s.NVocab;
        for (int i = 0; i < _n; i++)
        {
            if ((uint)inputs[i] >= (uint)v) throw new NextTokenException($"token id {inputs[i]} at batch position {i} is beyond the vocabulary of {v}");
            _inputs[i] = inputs[i];
        }
        if (!logitsOnly)
            for (int i = 0; i < _n; i++)
            {
                if ((uint)targets[i] >= (uint)v) throw new NextTokenException($"target id {targets[i]} at batch position {i} is beyond the vocabulary of {v}");
                _targets[i] = targets[i];
                _lossWeights[i] = weights.IsEmpty ? 1f : weights[i];
            }

        // Embeddings.
        float* wte = P(TensorNames.TokenEmbedding), wpe = P(TensorNames.PositionEmbedding);
        for (int i = 0; i < _n; i++)
        {
            var dst = new Span<float>(Ptr(_encoded) + (long)i * c, c);
            TensorPrimitives.Add(new ReadOnlySpan<float>(wte + (long)_inputs[i] * c, c), new ReadOnlySpan<float>(wpe + (long)(i % _t) * c, c), dst);
        }

        float[] residual = _encoded;
        for (int l = 0; l < _s.NLayer; l++)
        {
            Layer a = _layers[l];
            LayerNormForward(residual, P(l, TensorNames.AttnNorm), P(l, TensorNames.AttnNormBias), a.Ln1, a.Ln1Mean, a.Ln1Rstd);
            Linear(a.Ln1, P(l, TensorNames.AttnQkv), P(l, TensorNames.AttnQkvBias), a.Qkv, c, 3 * c);
            _attention.Run(a, forward: true);
            Linear(a.Atty, P(l, TensorNames.AttnOutput), P(l, TensorNames.AttnOutputBias), a.Residual2, c, c);
            TensorPrimitives.Add(a.Residual2, residual, a.Residual2);
            LayerNormForward(a.Residual2, P(l, TensorNames.FfnNorm), P(l, TensorNames.FfnNormBias), a.Ln2, a.Ln2Mean, a.Ln2Rstd);
            Linear(a.Ln2, P(l, TensorNames.FfnUp), P(l, TensorNames.FfnUpBias), a.Fch, c, _s.NFf);
            Ops.GeluTanh(a.Fch, a.FchGelu);
            Linear(a.FchGelu, P(l, TensorNames.FfnDown), P(l, TensorNames.FfnDownBias), a.Residual3, _s.NFf, c);
            TensorPrimitives.Add(a.Residual3, a.Residual2, a.Residual3);
            residual = a.Residual3;
        }
        LayerNormForward(residual, P(TensorNames.OutputNorm), P(TensorNames.OutputNormBias), _lnf, _lnfMean, _lnfRstd);
        Linear(_lnf, wte, null, _logits, c, v);
        if (logitsOnly) return float.NaN;

        // Softmax in place and the loss, summed in float64.
        double loss = 0, weightSum = 0;
        for (int i = 0; i < _n; i++)
        {
            Span<float> row = _logits.AsSpan(i * v, v);
            float max = TensorPrimitives.Max(row);
            TensorPrimitives.Subtract(row, max, row);
            float shiftedTarget = row[_targets[i]]; // −log p = log Σ exp(shifted) − shifted[target], without the log of a rounded probability
            TensorPrimitives.Exp(row, row);
            double sum = Ops.SumInDouble(row);
            TensorPrimitives.Multiply(row, (float)(1 / sum), row);
            float w = _lossWeights[i];
            if (w != 0)
            {
                loss += w * (Math.Log(sum) - shiftedTarget);
                weightSum += w;
            }
        }
        if (weightSum == 0) throw new NextTokenException("no position of the batch carries loss (all weights zero)");
        _weightSum = (float)weightSum;
        return (float)(loss / weightSum);
    }

    private float _weightSum;

    /// <summary>Last forward pass's logits (valid only after a <c>logitsOnly</c> forward).</summary>
    public ReadOnlySpan<float> Logits => _logits.AsSpan(0, _n * _s.NVocab);

    /// <summary>
    /// Adds the gradient of (<paramref name="scale"/> × the last forward's loss) to <paramref name="grads"/>
    /// (callers zero it between optimizer steps; gradient accumulation passes 1/steps).
    /// </summary>
    public void Backward(float[] grads, float scale = 1f)
    {
        if (grads.Length != _p.Count) throw new ArgumentException("gradient buffer of another model");
        _grads = grads;
        int c = _s.NEmbd, v = _s.NVocab;

        // dlogits = (p − onehot)·w/Σw, in place over the probabilities.
        float norm = scale / _weightSum;
        for (int i = 0; i < _n; i++)
        {
            Span<float> row = _logits.AsSpan(i * v, v);
            float w = _lossWeights[i] * norm;
            if (w == 0) { row.Clear(); continue; }
            row[_targets[i]] -= 1f;
            TensorPrimitives.Multiply(row, w, row);
        }
        _dLn.AsSpan().Clear();
        LinearBackward(_logits, _lnf, P(TensorNames.TokenEmbedding), G(TensorNames.TokenEmbedding), null, _dLn, c, v, accumulateDx: false);
        BackwardTrunk();
    }

    /// <summary>Final-norm output [B·T, d] of the last forward pass (the hidden state a reward head reads).</summary>
    public ReadOnlySpan<float> FinalHidden => _lnf.AsSpan(0, _n * _s.NEmbd);

    /// <summary>
    /// Adds to <paramref name="grads"/> the gradient of a loss whose gradient with respect to
    /// <see cref="FinalHidden"/> is <paramref name="dHidden"/> (the LM head is not involved: a reward model).
    /// </summary>
    public void BackwardFromFinalHidden(float[] grads, ReadOnlySpan<float> dHidden)
    {
        if (grads.Length != _p.Count) throw new ArgumentException("gradient buffer of another model");
        if (dHidden.Length != _n * _s.NEmbd) throw new ArgumentException($"expected {_n * _s.NEmbd} hidden gradients");
        _grads = grads;
        dHidden.CopyTo(_dLn);
        BackwardTrunk();
    }

    /// <summary>From the gradient at the final norm's output (in _dLn) down to the embeddings.</summary>
    private void BackwardTrunk()
    {
        int c = _s.NEmbd, f = _s.NFf;
        float[] residual = _s.NLayer > 0 ? _layers[^1].Residual3 : _encoded;
        _dResidual.AsSpan().Clear();
        LayerNormBackward(_dLn, residual, P(TensorNames.OutputNorm), G(TensorNames.OutputNorm), G(TensorNames.OutputNormBias), _lnfMean, _lnfRstd, _dResidual);

        for (int l = _s.NLayer - 1; l >= 0; l--)
        {
            Layer a = _layers[l];
            float[] input = l > 0 ? _layers[l - 1].Residual3 : _encoded;
            // MLP branch: residual3 = residual2 + down(gelu(up(LN2(residual2)))).
            LinearBackward(_dResidual, a.FchGelu, P(l, TensorNames.FfnDown), G(l, TensorNames.FfnDown), G(l, TensorNames.FfnDownBias), _dBig, f, c, accumulateDx: false);
            TrainingKernels.GeluBackward(a.Fch.AsSpan(0, _n * f), _dBig);
            LinearBackward(_dBig, a.Ln2, P(l, TensorNames.FfnUp), G(l, TensorNames.FfnUp), G(l, TensorNames.FfnUpBias), _dLn, c, f, accumulateDx: false);
            LayerNormBackward(_dLn, a.Residual2, P(l, TensorNames.FfnNorm), G(l, TensorNames.FfnNorm), G(l, TensorNames.FfnNormBias), a.Ln2Mean, a.Ln2Rstd, _dResidual);
            // Attention branch: residual2 = input + proj(attn(qkv(LN1(input)))).
            LinearBackward(_dResidual, a.Atty, P(l, TensorNames.AttnOutput), G(l, TensorNames.AttnOutput), G(l, TensorNames.AttnOutputBias), _dAtty, c, c, accumulateDx: false);
            _attention.Run(a, forward: false);
            LinearBackward(_dBig, a.Ln1, P(l, TensorNames.AttnQkv), G(l, TensorNames.AttnQkv), G(l, TensorNames.AttnQkvBias), _dLn, c, 3 * c, accumulateDx: false);
            LayerNormBackward(_dLn, input, P(l, TensorNames.AttnNorm), G(l, TensorNames.AttnNorm), G(l, TensorNames.AttnNormBias), a.Ln1Mean, a.Ln1Rstd, _dResidual);
        }

        float* dwte = G(TensorNames.TokenEmbedding), dwpe = G(TensorNames.PositionEmbedding);
        for (int i = 0; i < _n; i++)
        {
            var d = new ReadOnlySpan<float>(Ptr(_dResidual) + (long)i * c, c);
            var te = new Span<float>(dwte + (long)_inputs[i] * c, c);
            TensorPrimitives.Add(te, d, te);
            var pe = new Span<float>(dwpe + (long)(i % _t) * c, c);
            TensorPrimitives.Add(pe, d, pe);
        }
    }

    // ---- building blocks ----

    private static float* Ptr(float[] pinned) => (float*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(pinned));
    private float* P(string name) => Ptr(_params) + _p[name].Offset;
    private float* P(int layer, string pattern) => Ptr(_params) + _layerOffsets[pattern][layer];
    private float* G(string name) => Ptr(_grads) + _p[name].Offset;
    private float* G(int layer, string pattern) => Ptr(_grads) + _layerOffsets[pattern][layer];

    /// <summary>y[N,out] = x[N,in]·Wᵀ + b for W [out][in].</summary>
    private void Linear(float[] x, float* w, float* bias, float[] y, int nIn, int nOut)
    {
        fixed (float* wt = _scratchT)
        {
            TrainingKernels.Transpose(new ReadOnlySpan<float>(w, nIn * nOut), nOut, nIn, _scratchT);
            TrainingKernels.MatMul(Ptr(x), wt, Ptr(y), _n, nIn, nOut, accumulate: false, _threads);
        }
        if (bias != null)
        {
            var b = new ReadOnlySpan<float>(bias, nOut);
            for (int i = 0; i < _n; i++)
            {
                Span<float> row = y.AsSpan(i * nOut, nOut);
                TensorPrimitives.Add(row, b, row);
            }
        }
    }

    /// <summary>For y = x·Wᵀ + b: dx (+)= dy·W, dW += dyᵀ·x, db += Σ_rows dy.</summary>
    private void LinearBackward(float[] dy, float[] x, float* w, float* dw, float* dbias, float[] dx, int nIn, int nOut, bool accumulateDx)
    {
        TrainingKernels.MatMul(Ptr(dy), w, Ptr(dx), _n, nOut, nIn, accumulateDx, _threads);
        TrainingKernels.Transpose(dy.AsSpan(0, _n * nOut), _n, nOut, _scratchT);
        TrainingKernels.MatMul(Ptr(_scratchT), Ptr(x), dw, nOut, _n, nIn, accumulate: true, _threads);
        if (dbias != null)
        {
            var db = new Span<float>(dbias, nOut);
            for (int i = 0; i < _n; i++) TensorPrimitives.Add(db, dy.AsSpan(i * nOut, nOut), db);
        }
    }

    private void LayerNormForward(float[] x, float* weight, float* bias, float[] y, float[] mean, float[] rstd)
    {
        int c = _s.NEmbd;
        var w = new ReadOnlySpan<float>(weight, c);
        var b = new ReadOnlySpan<float>(bias, c);
        for (int i = 0; i < _n; i++)
        {
            ReadOnlySpan<float> row = x.AsSpan(i * c, c);
            Span<float> dst = y.AsSpan(i * c, c);
            float m = TensorPrimitives.Sum(row) / c;
            TensorPrimitives.Subtract(row, m, dst);
            float variance = TensorPrimitives.SumOfSquares(dst) / c;
            float r = 1f / MathF.Sqrt(variance + _s.Eps);
            TensorPrimitives.Multiply(dst, r, dst);
            TensorPrimitives.FusedMultiplyAdd(dst, w, b, dst);
            mean[i] = m;
            rstd[i] = r;
        }
    }

    /// <summary>dx += (dn − mean(dn) − n·mean(dn·n))·rstd with n the normalized input and dn = w·dy; dw += n·dy; db += dy.</summary>
    private void LayerNormBackward(float[] dy, float[] x, float* weight, float* dweight, float* dbias, float[] mean, float[] rstd, float[] dx)
    {
        int c = _s.NEmbd;
        var w = new ReadOnlySpan<float>(weight, c);
        var dw = new Span<float>(dweight, c);
        var db = new Span<float>(dbias, c);
        Span<float> normalized = _scratchT.AsSpan(0, c), dnorm = _scratchT.AsSpan(c, c);
        for (int i = 0; i < _n; i++)
        {
            ReadOnlySpan<float> dyRow = dy.AsSpan(i * c, c);
            TensorPrimitives.Subtract(x.AsSpan(i * c, c), mean[i], normalized);
            TensorPrimitives.Multiply(normalized, rstd[i], normalized);
            TensorPrimitives.Multiply(w, dyRow, dnorm);
            float dnormMean = TensorPrimitives.Sum(dnorm) / c;
            float dnormNormMean = TensorPrimitives.Dot(dnorm, normalized) / c;
            TensorPrimitives.FusedMultiplyAdd(normalized, dyRow, dw, dw);
            TensorPrimitives.Add(db, dyRow, db);
            // dnorm ← (dnorm − dnormMean − normalized·dnormNormMean)·rstd, added to dx.
            TensorPrimitives.Subtract(dnorm, dnormMean, dnorm);
            TensorPrimitives.FusedMultiplyAdd(normalized, -dnormNormMean, dnorm, dnorm);
            Span<float> dxRow = dx.AsSpan(i * c, c);
            TensorPrimitives.FusedMultiplyAdd(dnorm, rstd[i], dxRow, dxRow);
        }
    }

    /// <summary>Causal attention over one (batch row, head) per chunk; forward and backward.</summary>
    private sealed class AttentionJob(Gpt2Training owner) : IParallelWork
    {
        private Layer _layer = null!;
        private bool _forward;

        public void Run(Layer layer, bool forward)
        {
            _layer = layer;
            _forward = forward;
            // Work ~ B·H·T²·hd/2 multiply-adds per pass; small ones stay on the caller (see TrainingKernels.MatMul).
            long work = (long)owner._b * owner._s.NHead * owner._t * owner._t * owner._s.HeadDim / 2;
            WorkerPool.Shared.Run(this, owner._b * owner._s.NHead, work < 1 << 18 ? 1 : owner._threads);
        }

        public void Execute(int chunk)
        {
            if (_forward) Forward(chunk); else Backward(chunk);
        }

        /// <summary>Per-thread scratch: q, k, v, the output gradient and their transposes ([T, hd] each), and three [T, T] matrices.</summary>
        [ThreadStatic] private static float[]? _scratch;

        private static float* Scratch(int length)
        {
            if (_scratch == null || _scratch.Length < length) _scratch = GC.AllocateArray<float>(length, pinned: true);
            return Ptr(_scratch);
        }

        /// <summary>Copies head h's columns of one of q, k, v (part 0, 1, 2) for batch row b into a contiguous [T, hd] matrix.</summary>
        private void Gather(int b, int h, int part, float* dst)
        {
            int t = owner._t, c = owner._s.NEmbd, hd = owner._s.HeadDim;
            float* qkv = Ptr(_layer.Qkv);
            for (int i = 0; i < t; i++)
                new ReadOnlySpan<float>(qkv + (long)(b * t + i) * 3 * c + part * c + h * hd, hd).CopyTo(new Span<float>(dst + i * hd, hd));
        }

        /// <summary>S = Q·Kᵀ·scale, causal softmax per row into P (zeros above the diagonal), O = P·V.</summary>
        private void Forward(int chunk)
        {
            int t = owner._t, c = owner._s.NEmbd, hd = owner._s.HeadDim, nh = owner._s.NHead;
            int b = chunk / nh, h = chunk % nh;
            float scale = 1f / MathF.Sqrt(hd);
            int th = t * hd;
            float* q = Scratch(4 * th), k = q + th, kt = k + th, v = kt + th;
            float* p = Ptr(_layer.Att) + (long)chunk * t * t;
            Gather(b, h, 0, q);
            Gather(b, h, 1, k);
            Gather(b, h, 2, v);
            TrainingKernels.Transpose(new ReadOnlySpan<float>(k, th), t, hd, new Span<float>(kt, th));
            TrainingKernels.MatMulSerial(q, kt, p, t, hd, t, accumulate: false);
            for (int i = 0; i < t; i++)
            {
                Span<float> row = new(p + (long)i * t, t);
                Span<float> causal = row[..(i + 1)];
                TensorPrimitives.Multiply(causal, scale, causal);
                float max = TensorPrimitives.Max(causal);
                TensorPrimitives.Subtract(causal, max, causal);
                TensorPrimitives.Exp(causal, causal);
                TensorPrimitives.Multiply(causal, 1f / TensorPrimitives.Sum(causal), causal);
                row[(i + 1)..].Clear();
            }
            // O = P·V into q's space, then out to the head's columns of atty.
            TrainingKernels.MatMulSerial(p, v, q, t, t, hd, accumulate: false);
            float* atty = Ptr(_layer.Atty);
            for (int i = 0; i < t; i++)
                new ReadOnlySpan<float>(q + i * hd, hd).CopyTo(new Span<float>(atty + (long)(b * t + i) * c + h * hd, hd));
        }

        /// <summary>
        /// For O = P·V with P = softmax(S), S = Q·Kᵀ·scale: dP = dO·Vᵀ, dV = Pᵀ·dO,
        /// dS = P ⊙ (dP − rowsum(P ⊙ dP))·scale, dQ = dS·K, dK = dSᵀ·Q. Rows of P above the diagonal are 0, so dS is too.
        /// </summary>
        private void Backward(int chunk)
        {
            int t = owner._t, c = owner._s.NEmbd, hd = owner._s.HeadDim, nh = owner._s.NHead;
            int b = chunk / nh, h = chunk % nh;
            float scale = 1f / MathF.Sqrt(hd);
            int th = t * hd, tt = t * t;
            float* q = Scratch(6 * th + 3 * tt), k = q + th, v = k + th, vt = v + th, dOut = vt + th, grad = dOut + th;
            float* pt = grad + th, dp = pt + tt, dst = dp + tt;
            float* p = Ptr(_layer.Att) + (long)chunk * t * t;
            float* dqkv = Ptr(owner._dBig), datty = Ptr(owner._dAtty);
            Gather(b, h, 0, q);
            Gather(b, h, 1, k);
            Gather(b, h, 2, v);
            for (int i = 0; i < t; i++)
                new ReadOnlySpan<float>(datty + (long)(b * t + i) * c + h * hd, hd).CopyTo(new Span<float>(dOut + i * hd, hd));

            TrainingKernels.Transpose(new ReadOnlySpan<float>(v, th), t, hd, new Span<float>(vt, th));
            TrainingKernels.MatMulSerial(dOut, vt, dp, t, hd, t, accumulate: false);
            TrainingKernels.Transpose(new ReadOnlySpan<float>(p, tt), t, t, new Span<float>(pt, tt));
            TrainingKernels.MatMulSerial(pt, dOut, grad, t, t, hd, accumulate: false);
            Scatter(b, h, 2, grad, dqkv);

            // dS in place of dP.
            for (int i = 0; i < t; i++)
            {
                ReadOnlySpan<float> pRow = new(p + (long)i * t, i + 1);
                Span<float> dRow = new(dp + (long)i * t, t);
                float dot = TensorPrimitives.Dot(pRow, dRow[..(i + 1)]);
                TensorPrimitives.Subtract(dRow[..(i + 1)], dot, dRow[..(i + 1)]);
                TensorPrimitives.Multiply(dRow[..(i + 1)], pRow, dRow[..(i + 1)]);
                TensorPrimitives.Multiply(dRow[..(i + 1)], scale, dRow[..(i + 1)]);
                dRow[(i + 1)..].Clear();
            }
            TrainingKernels.MatMulSerial(dp, k, grad, t, t, hd, accumulate: false);
            Scatter(b, h, 0, grad, dqkv);
            TrainingKernels.Transpose(new ReadOnlySpan<float>(dp, tt), t, t, new Span<float>(dst, tt));
            TrainingKernels.MatMulSerial(dst, q, grad, t, t, hd, accumulate: false);
            Scatter(b, h, 1, grad, dqkv);
        }

        /// <summary>Writes a [T, hd] gradient into head h's columns of part 0/1/2 (q, k, v) of dqkv for batch row b.</summary>
        private void Scatter(int b, int h, int part, float* src, float* dqkv)
        {
            int t = owner._t, c = owner._s.NEmbd, hd = owner._s.HeadDim;
            for (int i = 0; i < t; i++)
                new ReadOnlySpan<float>(src + i * hd, hd).CopyTo(new Span<float>(dqkv + (long)(b * t + i) * 3 * c + part * c + h * hd, hd));
        }
    }
}
