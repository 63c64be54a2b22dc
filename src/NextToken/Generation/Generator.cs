using System.Runtime.CompilerServices;
using NextToken.Inspection;
using NextToken.Models;
using NextToken.Sampling;
using NextToken.Tokenization;

namespace NextToken.Generation;

/// <summary>Why generation ended.</summary>
public enum StopReason { MaxTokens, EndOfGeneration, StopString, ContextFull }

/// <summary>What to generate and how to choose each token.</summary>
public sealed record GenerationOptions
{
    public int MaxTokens { get; init; } = 128;
    public SamplingOptions Sampling { get; init; } = new();

    /// <summary>Seed of the draw; null picks a random one, reported in <see cref="Generator.Seed"/>.</summary>
    public ulong? Seed { get; init; }

    public IReadOnlyList<string> StopStrings { get; init; } = [];

    /// <summary>Stop at EOS and the model's end-of-turn tokens.</summary>
    public bool StopAtEndOfGeneration { get; init; } = true;

    /// <summary>How many of the unmodified distribution's best tokens to report with each token.</summary>
    public int TopAlternatives { get; init; }

    /// <summary>Record what each sampler stage did at every step.</summary>
    public bool Explain { get; init; }
}

/// <summary>
/// One generated token: its id, the text it adds (whole characters only, stop strings held back),
/// its log-probability and rank under the model's unmodified distribution, the best alternatives,
/// and, when asked, the sampler's trace.
/// </summary>
public sealed record GeneratedToken(int Id, string Text, double LogProbability, int Rank, RankedToken[] Alternatives, SamplingTrace? Trace);

/// <summary>
/// The generation loop: runs new tokens through the model (reusing whatever the KV cache already
/// holds), then samples, streams and feeds back one token at a time until a stop condition.
/// </summary>
public sealed class Generator(LanguageModel model)
{
    public ulong Seed { get; private set; }
    public StopReason StopReason { get; private set; }

    /// <summary>Text held back at the end (an unfinished stop-string prefix or UTF-8 character), to append after the last token.</summary>
    public string TrailingText { get; private set; } = "";

    public List<int> Generated { get; } = [];

    /// <summary>Generates from a fresh context.</summary>
    public IAsyncEnumerable<GeneratedToken> GenerateAsync(int[] prompt, GenerationOptions options, CancellationToken cancellation = default) =>
        GenerateAsync(model.CreateState(), prompt, options, cancellation);

    /// <summary>
    /// Appends <paramref name="newTokens"/> to the context in <paramref name="state"/> and generates
    /// after them. The cache then holds every generated token but the last (which nothing has
    /// needed to run yet); <see cref="Generated"/> lists them all.
    /// </summary>
    public async IAsyncEnumerable<GeneratedToken> GenerateAsync(ModelState state, int[] newTokens, GenerationOptions options,
                                                               [EnumeratorCancellation] CancellationToken cancellation = default)
    {
        if (options.MaxTokens < 0) throw new NextTokenException($"max tokens must be 0 or more, not {options.MaxTokens}");
        Seed = options.Seed ?? Xoshiro256StarStar.RandomSeed();
        var sampler = new SamplerChain(model.VocabSize, options.Sampling, new Xoshiro256StarStar(Seed));
        var logits = new float[model.VocabSize];
        var nextToken = new int[1]; // fed back each step without a new array
        var decoder = new Utf8StreamDecoder();
        var stops = new StopStringMatcher(options.StopStrings);
        IReadOnlySet<int> endOfGeneration = model.Tokenizer.Vocabulary.EndOfGeneration;
        Generated.Clear();
        TrailingText = "";
        StopReason = StopReason.MaxTokens;

        await Task.Yield(); // the caller's thread is free while the model runs
        model.Forward(state, newTokens, logits);
        for (int i = 0; i < options.MaxTokens; i++)
        {
            cancellation.ThrowIfCancellationRequested();
            SamplingTrace? trace = options.Explain ? new SamplingTrace() : null;
            int next = sampler.Sample(logits, trace);
            if (options.StopAtEndOfGeneration && endOfGeneration.Contains(next))
            {
                StopReason = StopReason.EndOfGeneration;
                break;
            }
            sampler.Accept(next);
            Generated.Add(next);
            string text = stops.Append(decoder.Append(model.Tokenizer.TokenBytes(next)));
            // One pass of exponentials per token: the distribution's log Z when alternatives are asked for.
            TokenDistribution? distribution = options.TopAlternatives > 0 ? TokenDistribution.Over(logits) : null;
            double logZ = distribution?.LogSumExp ?? Kernels.Ops.LogSumExp(logits);
            yield return new GeneratedToken(next, text, logits[next] - logZ, SamplerChain.RankIn(logits, next),
                distribution?.Top(options.TopAlternatives) ?? [], trace);
            if (stops.Stopped)
            {
                StopReason = StopReason.StopString;
                break;
            }
            if (i + 1 == options.MaxTokens) break;
            if (state.Position >= model.ContextLength)
            {
                StopReason = StopReason.ContextFull;
                break;
            }
            nextToken[0] = next;
            model.Forward(state, nextToken, logits);
        }
        TrailingText = stops.Flush() + (stops.Stopped ? "" : decoder.Flush());
    }
}
