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
/// One sequence's decoding, a step at a time: given the logits after the last input, choose the
/// next token (sampler, stop tokens, stop strings, whole UTF-8 characters) and say whether to go
/// on. The model is run by the caller — <see cref="Generator"/> for one sequence, a server's
/// scheduler for many decoded together — so the same seed gives the same tokens either way.
/// </summary>
public sealed class TokenStream
{
    private readonly LanguageModel _model;
    private readonly GenerationOptions _options;
    private readonly SamplerChain _sampler;
    private readonly Utf8StreamDecoder _decoder = new();
    private readonly StopStringMatcher _stops;
    private readonly IReadOnlySet<int> _endOfGeneration;

    public TokenStream(LanguageModel model, GenerationOptions options)
    {
        if (options.MaxTokens < 0) throw new NextTokenException($"max tokens must be 0 or more, not {options.MaxTokens}");
        _model = model;
        _options = options;
        Seed = options.Seed ?? Xoshiro256StarStar.RandomSeed();
        _sampler = new SamplerChain(model.VocabSize, options.Sampling, new Xoshiro256StarStar(Seed));
        _stops = new StopStringMatcher(options.StopStrings);
        _endOfGeneration = model.Tokenizer.Vocabulary.EndOfGeneration;
        if (options.MaxTokens == 0) Finish(StopReason.MaxTokens);
    }

    public ulong Seed { get; }
    public bool Finished { get; private set; }
    public StopReason StopReason { get; private set; } = StopReason.MaxTokens;

    /// <summary>Text held back at the end (an unfinished stop-string prefix or UTF-8 character), to append after the last token.</summary>
    public string TrailingText { get; private set; } = "";

    public List<int> Generated { get; } = [];

    /// <summary>The token to run next (the last one chosen), while the stream goes on.</summary>
    public int NextInput => Generated[^1];

    /// <summary>
    /// Chooses the next token from <paramref name="logits"/> (the distribution after the last
    /// input); null when generation ends there (an end-of-generation token). <paramref name="cached"/>
    /// is how many tokens the context holds: when it is full, the stream ends after this token.
    /// </summary>
    public GeneratedToken? Step(float[] logits, int cached)
    {
        if (Finished) throw new InvalidOperationException("the stream has finished");
        SamplingTrace? trace = _options.Explain ? new SamplingTrace() : null;
        int next = _sampler.Sample(logits, trace);
        if (_options.StopAtEndOfGeneration && _endOfGeneration.Contains(next))
        {
            Finish(StopReason.EndOfGeneration);
            return null;
        }
        _sampler.Accept(next);
        Generated.Add(next);
        string text = _stops.Append(_decoder.Append(_model.Tokenizer.TokenBytes(next)));
        // One pass of exponentials per token: the distribution's log Z when alternatives are asked for.
        TokenDistribution? distribution = _options.TopAlternatives > 0 ? TokenDistribution.Over(logits) : null;
        double logZ = distribution?.LogSumExp ?? Kernels.Ops.LogSumExp(logits);
        var token = new GeneratedToken(next, text, logits[next] - logZ, SamplerChain.RankIn(logits, next),
            distribution?.Top(_options.TopAlternatives) ?? [], trace);
        if (_stops.Stopped) Finish(StopReason.StopString);
        else if (Generated.Count == _options.MaxTokens) Finish(StopReason.MaxTokens);
        else if (cached >= _model.ContextLength) Finish(StopReason.ContextFull);
        return token;
    }

    /// <summary>Ends the stream early (a cancelled request); the reason stays what it was.</summary>
    public void Stop() => Finish(StopReason);

    private void Finish(StopReason reason)
    {
        if (Finished) return;
        Finished = true;
        StopReason = reason;
        TrailingText = _stops.Flush() + (_stops.Stopped ? "" : _decoder.Flush());
    }
}

/// <summary>
/// The generation loop for one sequence: runs new tokens through the model (reusing whatever the
/// KV cache already holds), then samples, streams and feeds back one token at a time until a stop
/// condition.
/// </summary>
public sealed class Generator(LanguageModel model)
{
    private TokenStream? _stream;

    public ulong Seed => _stream?.Seed ?? 0;
    public StopReason StopReason => _stream?.StopReason ?? StopReason.MaxTokens;

    /// <summary>Text held back at the end (an unfinished stop-string prefix or UTF-8 character), to append after the last token.</summary>
    public string TrailingText => _stream?.TrailingText ?? "";

    public List<int> Generated => _stream?.Generated ?? [];

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
        var stream = _stream = new TokenStream(model, options);
        var logits = new float[model.VocabSize];
        var nextToken = new int[1]; // fed back each step without a new array
        await Task.Yield(); // the caller's thread is free while the model runs
        model.Forward(state, newTokens, logits);
        while (!stream.Finished)
        {
            cancellation.ThrowIfCancellationRequested();
            GeneratedToken? token = stream.Step(logits, state.Position);
            if (token is null) break;
            yield return token;
            if (stream.Finished) break;
            nextToken[0] = stream.NextInput;
            model.Forward(state, nextToken, logits);
        }
    }
}
