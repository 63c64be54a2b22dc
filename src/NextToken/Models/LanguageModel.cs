using NextToken.Gguf;
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
    protected LanguageModel(GgufFile file, Tokenizer tokenizer)
    {
        File = file;
        Tokenizer = tokenizer;
    }

    public GgufFile File { get; }
    public Tokenizer Tokenizer { get; }
    public HookRegistry Hooks { get; } = new();

    public abstract string Architecture { get; }
    public abstract int VocabSize { get; }
    public abstract int ContextLength { get; }
    public abstract int LayerCount { get; }
    public abstract int EmbeddingLength { get; }

    /// <summary>Threads used by matrix kernels; defaults to the processor count.</summary>
    public int Threads { get; set; } = Environment.ProcessorCount;

    /// <summary>Bytes of weights one decode step reads (for bandwidth figures).</summary>
    public abstract long WeightBytesPerToken { get; }

    public abstract ModelState CreateState();

    /// <summary>
    /// Runs <paramref name="tokens"/> at positions <c>state.Position…</c>, appends them to the KV
    /// cache and writes logits: <c>[VocabSize]</c> for the last position, or
    /// <c>[tokens.Length, VocabSize]</c> for every position.
    /// </summary>
    public abstract void Forward(ModelState state, ReadOnlySpan<int> tokens, Span<float> logits, LogitsFor which = LogitsFor.LastPosition);

    /// <summary>Checks ids and context room before a forward pass, with messages for the user.</summary>
    protected void CheckInput(ModelState state, ReadOnlySpan<int> tokens, Span<float> logits, LogitsFor which)
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

    public virtual void Dispose() => File.Dispose();
}

public sealed class ContextFullException(int position, int adding, int contextLength)
    : NextTokenException($"context full: {position} tokens in the context plus {adding} new would exceed the model's context length of {contextLength}")
{
    public int ContextLength { get; } = contextLength;
}
