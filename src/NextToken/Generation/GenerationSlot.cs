using System.Runtime.CompilerServices;
using NextToken.Models;

namespace NextToken.Generation;

/// <summary>
/// One context of a model kept between calls (an <c>IChatClient</c>, a chat session): a KV cache
/// allocated once, and the tokens it holds, so that a prompt sharing a prefix with the previous one
/// runs only what is new. Not thread-safe: one caller at a time. (The server's scheduler keeps the
/// same state per slot itself, since it decodes its slots together.)
/// </summary>
public sealed class GenerationSlot(LanguageModel model)
{
    private readonly ModelState _state = model.CreateState();
    private int[] _cached = [];

    public LanguageModel Model { get; } = model;

    /// <summary>Generates after <paramref name="prompt"/>, running only what the cache does not hold yet.</summary>
    public async IAsyncEnumerable<GeneratedToken> GenerateAsync(Generator generator, int[] prompt, GenerationOptions options,
                                                                [EnumeratorCancellation] CancellationToken cancel = default)
    {
        if (prompt.Length == 0) throw new NextTokenException("no tokens to run: the prompt is empty");
        int common = 0;
        while (common < _cached.Length && common < prompt.Length && _cached[common] == prompt[common]) common++;
        if (common == prompt.Length) common--; // the last prompt token must run to give the first distribution
        _state.Rewind(common);
        _cached = prompt[..common];
        try
        {
            await foreach (GeneratedToken token in generator.GenerateAsync(_state, prompt[common..], options, cancel))
                yield return token;
        }
        finally
        {
            // Finished or cut off: the cache holds the prompt and generated tokens as far as they ran.
            int[] ran = [.. prompt, .. generator.Generated];
            if (_state.Position <= ran.Length) _cached = ran[.._state.Position];
            else
            {
                _state.Rewind(0);
                _cached = [];
            }
        }
    }
}
