using NextToken.Chat;
using NextToken.Generation;
using NextToken.Models;
using NextToken.Sampling;
using Xunit.Abstractions;

namespace NextToken.Tests;

/// <summary>
/// <see cref="ChatSession"/>: a turn that reuses the KV cache's prefix gives what a fresh run of the
/// same conversation gives; re-anchoring restates the system prompt in the turns it is due.
/// </summary>
public class ChatSessionTests(ITestOutputHelper output)
{
    private static readonly GenerationOptions Greedy = new() { MaxTokens = 8, Sampling = SamplingOptions.Greedy, TopAlternatives = 5 };

    private static async Task<List<GeneratedToken>> Send(ChatSession session, string text, GenerationOptions options)
    {
        var tokens = new List<GeneratedToken>();
        await foreach (GeneratedToken token in session.SendAsync(text, options)) tokens.Add(token);
        return tokens;
    }

    [Theory]
    [InlineData("stories260K")]
    [InlineData("llama-tiny.f32.gguf")]
    public async Task SecondTurn_ReusesTheCache_AndEqualsAFreshRunOfTheSameConversation(string which)
    {
        using LanguageModel model = ModelLoader.Load(which == "stories260K" ? BuiltInModel.Id : Fixtures.Model(which));
        ChatTemplate template = ChatPrompt.Template(model) ?? ChatTemplate.FromName("chatml");
        var session = new ChatSession(model, template, "You tell short stories.", seed: 7);
        await Send(session, "Tell me about a cat.", Greedy);
        Assert.Equal(0, session.LastReused);
        int[] prompt = session.PromptTokens("And a dog?");
        List<GeneratedToken> reused = await Send(session, "And a dog?", Greedy);
        Assert.True(session.LastReused > 0, "the second turn reused nothing from the cache");
        Assert.Equal(prompt.Length, session.LastPromptTokens);
        output.WriteLine($"{which}: {session.LastReused} of {session.LastPromptTokens} prompt tokens reused");

        // The same prompt from a fresh context, through the plain generator.
        var fresh = new List<GeneratedToken>();
        await foreach (GeneratedToken token in new Generator(model).GenerateAsync(prompt, Greedy with { Seed = 7 + 2UL, StopStrings = template.Source == ChatTemplate.BuiltIn["plain"] ? ["\nUser:", "\nAssistant:"] : [] }))
            fresh.Add(token);
        Assert.Equal(fresh.Select(t => t.Id), reused.Select(t => t.Id));
        // The cached prefix was computed in other chunks than the fresh run's: equal up to float rounding.
        double max = 0;
        for (int i = 0; i < fresh.Count; i++)
        {
            max = Math.Max(max, Math.Abs(fresh[i].LogProbability - reused[i].LogProbability));
            for (int k = 0; k < fresh[i].Alternatives.Length; k++)
            {
                Assert.Equal(fresh[i].Alternatives[k].Id, reused[i].Alternatives[k].Id);
                max = Math.Max(max, Math.Abs(fresh[i].Alternatives[k].Logit - reused[i].Alternatives[k].Logit));
            }
        }
        output.WriteLine($"{which}: max |diff| of logits and log-probabilities, reused vs fresh: {max:E2} (tolerance 1E-4)");
        Assert.True(max <= 1e-4, $"max |diff| {max}");
        Assert.Equal(4, session.History.Count);
        Assert.Equal("And a dog?", session.History[2].Content);
    }

    [Fact]
    public async Task Reanchoring_RestatesTheSystemPromptInEveryNthUserTurn()
    {
        using LanguageModel model = ModelLoader.Load(BuiltInModel.Id);
        var session = new ChatSession(model, ChatTemplate.FromName("chatml"), "Answer like a pirate.", reanchorEvery: 2);
        var options = new GenerationOptions { MaxTokens = 2, Sampling = SamplingOptions.Greedy };
        await Send(session, "one", options);
        string second = model.Tokenizer.Decode(session.PromptTokens("two"));
        Assert.Equal(2, CountOf(second, "Answer like a pirate."));
        await Send(session, "two", options);
        await Send(session, "three", options);
        Assert.Equal(["one", "(Reminder of your instructions: Answer like a pirate.)\n\ntwo", "three"],
            session.History.Where(m => m.Role == "user").Select(m => m.Content));
        // The restated turn stays in the history as sent, so later turns still reuse the cache.
        Assert.True(session.LastReused > 0);

        var never = new ChatSession(model, ChatTemplate.FromName("chatml"), "Answer like a pirate.");
        await Send(never, "one", options);
        Assert.Equal(1, CountOf(model.Tokenizer.Decode(never.PromptTokens("two")), "Answer like a pirate."));
        Assert.Throws<NextTokenException>(() => new ChatSession(model, ChatTemplate.FromName("chatml"), null, reanchorEvery: -1));
    }

    [Fact]
    public async Task ConversationOverTheContext_ThrowsAndLeavesTheSessionAsItWas()
    {
        using LanguageModel model = ModelLoader.Load(BuiltInModel.Id);
        var session = new ChatSession(model, ChatTemplate.FromName("plain"));
        string huge = string.Concat(Enumerable.Repeat("Once upon a time there was a cat. ", model.ContextLength));
        var error = await Assert.ThrowsAsync<ConversationTooLongException>(async () => await Send(session, huge, Greedy));
        output.WriteLine(error.Message);
        Assert.Empty(session.History);
        Assert.Equal(0, session.Turns);
    }

    private static int CountOf(string text, string part)
    {
        int count = 0;
        for (int at = text.IndexOf(part, StringComparison.Ordinal); at >= 0; at = text.IndexOf(part, at + part.Length, StringComparison.Ordinal)) count++;
        return count;
    }
}
