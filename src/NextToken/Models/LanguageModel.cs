using NextToken.Tensors;
using NextToken.Tokenization;

namespace NextToken.Models;

/// <summary>Which positions of a forward pass get logits.</summary>
public enum LogitsFor
{
    /// <summary>Only the last position of the batch (what generation needs).</summary>
    LastPosition,
    /// <summary>Every position of the batch, row by row.</summary>
    AllPositions,
}

/// <summary>Per-context state: the KV cache and scratch buffers, allocated once.</summary>
public abstract class ModelState
{
    /// <summary>Number of tokens already in the KV cache; the next token goes at this position.</summary>
    public int Position { get; protected internal set; }

    public abstract int ContextLength { get; }

    /// <summary>Most positions one batch of the forward pass holds; longer inputs run in several.</summary>
    public abstract int MaxBatch { get; }

    /// <summary>Cached keys of every layer and position: [nLayer, nKvHead, nCtx, headDim] (see <see cref="Kernels.CausalAttention.Store"/>).</summary>
    public abstract float[] KeyCache { get; }

    /// <summary>Cached values of every layer and position: [nLayer, nKvHead, nCtx, headDim].</summary>
    public abstract float[] ValueCache { get; }

    /// <summary>
    /// Writes every page of the KV cache once, so that later tokens do not pay the operating
    /// system's first-touch page faults (tens of microseconds per token on a virtual machine).
    /// llama.cpp clears its cache when a context is created; benchmarks call this before timing.
    /// </summary>
    public void Prefault()
    {
        const int FloatsPerPage = 1024;
        for (long i = 0; i < KeyCache.LongLength; i += FloatsPerPage) KeyCache[i] = 0;
        for (long i = 0; i < ValueCache.LongLength; i += FloatsPerPage) ValueCache[i] = 0;
    }

    /// <summary>Forgets every token from <paramref name="position"/> on (e.g. to regenerate from a prompt).</summary>
    public void Rewind(int position)
    {
        if (position < 0 || position > Position)
            throw new ArgumentOutOfRangeException(nameof(position), $"can rewind to 0..{Position}, not {position}");
        Position = position;
    }
}

/// <summary>A transformer language model ready to run: configuration, weights, tokenizer and hooks.</summary>
public abstract class LanguageModel : IDisposable
{
    protected LanguageModel(IWeightSource source, Tokenizer tokenizer, string? chatTemplate)
    {
        Source = source;
        Tokenizer = tokenizer;
        ChatTemplate = chatTemplate;
    }

    /// <summary>Where the weights come from (a GGUF file or a Hugging Face checkpoint).</summary>
    public IWeightSource Source { get; }

    public string FilePath => Source.FilePath;

    /// <summary>The model's own chat template (Jinja source), if its files carry one.</summary>
    public string? ChatTemplate { get; }
    public Tokenizer Tokenizer { get; }
    public HookRegistry Hooks { get; } = new();

    public abstract string Architecture { get; }
    public abstract int VocabSize { get; }
    /// <summary>Positions a state holds: the trained context, or less after <see cref="LimitContext"/>.</summary>
    public abstract int ContextLength { get; }

    /// <summary>The context the model was trained for (its file's context length).</summary>
    public abstract int TrainedContextLength { get; }

    public abstract int LayerCount { get; }

    /// <summary>
    /// Makes states hold at most <paramref name="tokens"/> positions, as llama.cpp's <c>--ctx-size</c>:
    /// a model trained for 131,072 positions would otherwise allocate a KV cache of gigabytes per
    /// state. Call it before creating states; it cannot grow past the trained context.
    /// </summary>
    public void LimitContext(int tokens)
    {
        if (tokens < 1 || tokens > TrainedContextLength)
            throw new NextTokenException($"context size {tokens}: must be 1 to the model's trained context, {TrainedContextLength}");
        SetContextLength(tokens);
    }

    protected abstract void SetContextLength(int tokens);

    /// <summary>The hook names every block of every architecture raises.</summary>
    protected sealed class BlockHooks(HookRegistry hooks, int layer)
    {
        public readonly HookPoint ResidPre = hooks.Declare(HookNames.ResidPre(layer));
        public readonly HookPoint Z = hooks.Declare(HookNames.Z(layer));
        public readonly HookPoint Pattern = hooks.Declare(HookNames.Pattern(layer));
        public readonly HookPoint AttnOut = hooks.Declare(HookNames.AttnOut(layer));
        public readonly HookPoint ResidMid = hooks.Declare(HookNames.ResidMid(layer));
        public readonly HookPoint MlpPost = hooks.Declare(HookNames.MlpPost(layer));
        public readonly HookPoint MlpOut = hooks.Declare(HookNames.MlpOut(layer));
        public readonly HookPoint ResidPost = hooks.Declare(HookNames.ResidPost(layer));

        /// <summary>Attention probabilities as [nHead, n, nKeys]; copied only when a hook wants them.</summary>
        public void RaisePattern(Kernels.CausalAttention attention, int p0, int n, int nHead)
        {
            if (Pattern.IsActive)
                Pattern.Invoke(new Activation(Pattern.Name, attention.Pattern(p0, n), [nHead, n, p0 + n], p0));
        }
    }
    public abstract int EmbeddingLength { get; }

    /// <summary>Threads used by matrix kernels; defaults to the processor count.</summary>
    public int Threads { get; set; } = Environment.ProcessorCount;

    /// <summary>
    /// Quantize activations to 8 bits for Q8_0/Q4_0 weights (llama.cpp's method): decode multiplies
    /// in integers, and Q4_0 prompts use a repacked copy of the matrices (<see cref="Kernels.InterleavedBlock32"/>).
    /// Faster, but logits move by up to about 3% of the row's largest magnitude. Off by default.
    /// </summary>
    public bool QuantizeActivations { get; set; }

    /// <summary>y = x · Wᵀ with this model's thread count and activation mode.</summary>
    protected void Project(in Tensors.TensorData weight, ReadOnlySpan<float> input, int nBatch, Span<float> output) =>
        Kernels.MatMul.Forward(weight, input, nBatch, output, Threads, QuantizeActivations, QuantizeActivations ? Interleaved : null, Each is not null);

    /// <summary>Several matrices over the same input in one matmul call (one parallel region, the input prepared once).</summary>
    protected void Project(Tensors.TensorData[] weights, ReadOnlySpan<float> input, int nBatch, float[][] outputs) =>
        Kernels.MatMul.Forward(weights, input, nBatch, outputs, Threads, QuantizeActivations, QuantizeActivations ? Interleaved : null, Each is not null);

    /// <summary>
    /// Several contexts, one row each, during <see cref="ForwardEach"/>; null for a single sequence.
    /// Row t of the batch belongs to <c>States[t]</c> at <c>Positions[t]</c>.
    /// </summary>
    protected sealed class Contexts
    {
        public int Count;
        public ModelState[] States = [];
        public int[] Positions = [];
        public float[][] KeyCaches = [], ValueCaches = [];

        public void Set(ReadOnlySpan<ModelState> states)
        {
            if (States.Length < states.Length)
            {
                States = new ModelState[states.Length];
                Positions = new int[states.Length];
                KeyCaches = new float[states.Length][];
                ValueCaches = new float[states.Length][];
            }
            Count = states.Length;
            for (int t = 0; t < states.Length; t++)
            {
                States[t] = states[t];
                Positions[t] = states[t].Position;
                KeyCaches[t] = states[t].KeyCache;
                ValueCaches[t] = states[t].ValueCache;
            }
        }
    }

    private readonly Contexts _contexts = new();

    /// <summary>The contexts of the current <see cref="ForwardEach"/> call, else null.</summary>
    protected Contexts? Each { get; private set; }

    /// <summary>The position of batch row <paramref name="t"/>: consecutive from p0 for one sequence, its own context's otherwise.</summary>
    protected int PositionOf(int p0, int t) => Each is { } each ? each.Positions[t] : p0 + t;

    /// <summary>
    /// One decode step for several independent contexts at once (continuous batching): token t is
    /// appended to <c>states[t]</c> at that context's own position, and its next-token logits land
    /// in row t of <paramref name="logits"/> [n, VocabSize]. The weights are read once for all
    /// rows, and each row is computed exactly as <see cref="Forward"/> computes a single token, so
    /// what one context generates does not depend on which others run beside it.
    /// </summary>
    public void ForwardEach(ReadOnlySpan<ModelState> states, ReadOnlySpan<int> tokens, Span<float> logits)
    {
        int n = states.Length;
        if (n == 0 || tokens.Length != n)
            throw new ArgumentException($"ForwardEach takes one token per context: {n} contexts, {tokens.Length} tokens");
        if (logits.Length < (long)n * VocabSize)
            throw new ArgumentException($"logits buffer holds {logits.Length} floats; {(long)n * VocabSize} needed");
        if (n > states[0].MaxBatch)
            throw new ArgumentException($"{n} contexts exceed the batch size {states[0].MaxBatch} of the first context's buffers");
        if (Hooks.AnyActive)
            throw new NextTokenException("hooks are registered: run contexts one at a time so each hook sees one sequence");
        for (int t = 0; t < n; t++)
        {
            if ((uint)tokens[t] >= (uint)VocabSize) throw new TokenOutOfRangeException(tokens[t], VocabSize);
            if (states[t].Position >= ContextLength) throw new ContextFullException(states[t].Position, 1, ContextLength);
            for (int u = 0; u < t; u++)
                if (ReferenceEquals(states[u], states[t])) throw new ArgumentException($"context {t} is the same as context {u}; each row needs its own");
        }
        if (n == 1)
        {
            ForwardBatch(states[0], tokens, logits, LogitsFor.AllPositions);
            return;
        }
        _contexts.Set(states);
        Each = _contexts;
        try
        {
            // The first context's buffers serve as scratch for the batch; every row keeps its own KV cache.
            ForwardBatch(states[0], tokens, logits, LogitsFor.AllPositions);
        }
        finally
        {
            Each = null;
        }
    }

    /// <summary>After a batch: one sequence advances by n, each of several contexts by one.</summary>
    protected void Advance(ModelState state, int p0, int n)
    {
        if (Each is { } each)
            for (int t = 0; t < each.Count; t++) each.States[t].Position = each.Positions[t] + 1;
        else
            state.Position = p0 + n;
    }

    /// <summary>Q4_0 matrices repacked for prompts with quantized activations, made on first use and freed with the model.</summary>
    private Kernels.InterleavedBlock32.Cache Interleaved => _interleaved ??= new Kernels.InterleavedBlock32.Cache();
    private Kernels.InterleavedBlock32.Cache? _interleaved;

    /// <summary>Bytes of weights one decode step reads (for bandwidth figures).</summary>
    public abstract long WeightBytesPerToken { get; }

    /// <summary>A new context: KV cache and buffers for batches of up to <paramref name="maxBatch"/> positions.</summary>
    public abstract ModelState CreateState(int? maxBatch = null);

    protected int BatchSize(int? requested, int preferred)
    {
        int size = requested ?? Math.Min(preferred, ContextLength);
        if (size < 1 || size > ContextLength)
            throw new ArgumentOutOfRangeException(nameof(requested), $"batch size must be 1 to {ContextLength}, not {size}");
        return size;
    }

    /// <summary>
    /// Runs <paramref name="tokens"/> at positions <c>state.Position…</c>, appends them to the KV
    /// cache and writes logits: <c>[VocabSize]</c> for the last position, or
    /// <c>[tokens.Length, VocabSize]</c> for every position.
    /// </summary>
    public void Forward(ModelState state, ReadOnlySpan<int> tokens, Span<float> logits, LogitsFor which = LogitsFor.LastPosition)
    {
        CheckInput(state, tokens, logits, which);
        for (int done = 0; done < tokens.Length; done += state.MaxBatch)
        {
            int n = Math.Min(state.MaxBatch, tokens.Length - done);
            if (which == LogitsFor.AllPositions)
                ForwardBatch(state, tokens.Slice(done, n), logits.Slice(done * VocabSize, n * VocabSize), LogitsFor.AllPositions);
            else
                ForwardBatch(state, tokens.Slice(done, n), logits, done + n == tokens.Length ? LogitsFor.LastPosition : null);
        }
    }

    /// <summary>
    /// One batch of at most <see cref="ModelState.MaxBatch"/> positions starting at state.Position;
    /// advances state.Position. <paramref name="which"/> null means no logits are wanted.
    /// </summary>
    protected abstract void ForwardBatch(ModelState state, ReadOnlySpan<int> tokens, Span<float> logits, LogitsFor? which);

    /// <summary>Looks up each token's row of the embedding matrix into x: [n, d].</summary>
    protected static void EmbedTokens(in Tensors.TensorData embedding, ReadOnlySpan<int> tokens, Span<float> x, int d)
    {
        for (int t = 0; t < tokens.Length; t++) Kernels.RowConvert.Row(embedding, tokens[t], x.Slice(t * d, d));
    }

    /// <summary>The LM head: logits for every row of <paramref name="normed"/> [n, d], or for the last row only.</summary>
    protected void ProjectToVocabulary(in Tensors.TensorData output, float[] normed, int n, int d, Span<float> logits, LogitsFor? which)
    {
        if (which == LogitsFor.AllPositions)
            Project(output, normed, n, logits);
        else if (which == LogitsFor.LastPosition)
            Project(output, normed.AsSpan((n - 1) * d, d), 1, logits);
    }

    /// <summary>Raises a hook with a [rows, columns] activation; free when nothing is registered.</summary>
    protected static void Raise(HookPoint point, Span<float> data, int firstPosition, int rows, int columns)
    {
        if (point.IsActive) point.Invoke(new Activation(point.Name, data, [rows, columns], firstPosition));
    }

    /// <summary>
    /// Decodes one residual-stream vector [d] as the model decodes its last layer: the final norm,
    /// then the LM head, into <paramref name="logits"/> [VocabSize] (the logit lens).
    /// </summary>
    public abstract void DecodeResidual(ReadOnlySpan<float> residual, Span<float> logits);

    /// <summary>Checks ids and context room before a forward pass, with messages for the user.</summary>
    private void CheckInput(ModelState state, ReadOnlySpan<int> tokens, Span<float> logits, LogitsFor which)
    {
        if (tokens.IsEmpty) throw new NextTokenException("no tokens to run: the prompt is empty");
        foreach (int id in tokens)
        {
            if ((uint)id >= (uint)VocabSize) throw new TokenOutOfRangeException(id, VocabSize);
        }
        if (state.Position + tokens.Length > ContextLength)
            throw new ContextFullException(state.Position, tokens.Length, ContextLength);
        long needed = (long)VocabSize * (which == LogitsFor.AllPositions ? tokens.Length : 1);
        if (logits.Length < needed)
            throw new ArgumentException($"logits buffer holds {logits.Length} floats; {needed} needed");
    }

    public virtual void Dispose()
    {
        _interleaved?.Dispose();
        Source.Dispose();
    }
}

public sealed class ContextFullException(int position, int adding, int contextLength)
    : NextTokenException($"context full: {position} tokens in the context plus {adding} new would exceed the model's context length of {contextLength}")
{
    public int ContextLength { get; } = contextLength;
}
