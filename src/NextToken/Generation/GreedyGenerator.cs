using System.Numerics.Tensors;
using NextToken.Models;
using NextToken.Tokenization;

namespace NextToken.Generation;

/// <summary>Why generation ended.</summary>
public enum StopReason { MaxTokens, EndOfSequence, ContextFull }

/// <summary>One generated token and the text it completes (never half a UTF-8 character).</summary>
public readonly record struct GeneratedToken(int Id, string Text, float Logit);

/// <summary>
/// Temperature-0 decoding: at every step the highest-scoring token wins, so the same prompt
/// always gives the same continuation. The prompt runs as one batch; every new token is one
/// decode step through the KV cache.
/// </summary>
public sealed class GreedyGenerator(LanguageModel model)
{
    public StopReason StopReason { get; private set; }

    /// <summary>Text of an unfinished UTF-8 character left when generation stopped (as U+FFFD), else empty.</summary>
    public string TrailingText { get; private set; } = "";

    public IEnumerable<GeneratedToken> Generate(int[] prompt, int maxTokens, bool stopAtEos = true)
    {
        ModelState state = model.CreateState();
        var logits = new float[model.VocabSize];
        var decoder = new Utf8StreamDecoder();
        model.Forward(state, prompt, logits);
        int? eos = model.Tokenizer.Vocabulary.EosId;
        StopReason = StopReason.MaxTokens;
        for (int i = 0; i < maxTokens; i++)
        {
            int next = TensorPrimitives.IndexOfMax(logits);
            if (stopAtEos && next == eos)
            {
                StopReason = StopReason.EndOfSequence;
                break;
            }
            string text = decoder.Append(model.Tokenizer.TokenBytes(next));
            yield return new GeneratedToken(next, text, logits[next]);
            if (i + 1 == maxTokens) break;
            if (state.Position + 1 > model.ContextLength)
            {
                StopReason = StopReason.ContextFull;
                break;
            }
            model.Forward(state, [next], logits);
        }
        TrailingText = decoder.Flush();
    }
}
