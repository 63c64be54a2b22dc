using System.ClientModel;
using Microsoft.Extensions.AI;
using NextToken.Chat;
using NextToken.Models;
using OpenAI;
using AiChatMessage = Microsoft.Extensions.AI.ChatMessage;

namespace NextToken.Tests;

/// <summary><see cref="NextTokenChatClient"/> as .NET's AI abstractions use it, and the server through Microsoft.Extensions.AI.OpenAI.</summary>
public class ChatClientTests(ServerFixture fixture) : IClassFixture<ServerFixture>
{
    private static readonly AiChatMessage[] Story = [new(ChatRole.System, "You tell stories."), new(ChatRole.User, "Once upon a time")];

    [Fact]
    public async Task GetResponse_Greedy_EqualsTheGeneratorsGreedy()
    {
        using var client = new NextTokenChatClient(ModelLoader.Load(BuiltInModel.Id), BuiltInModel.Name, ownsModel: true);
        ChatResponse response = await client.GetResponseAsync(Story, new ChatOptions { Temperature = 0, MaxOutputTokens = 10 });
        Assert.Equal(ChatFinishReason.Length, response.FinishReason);
        Assert.Equal(10, response.Usage!.OutputTokenCount);

        LanguageModel model = client.GetService<LanguageModel>()!;
        int[] prompt = ChatPrompt.Tokens(model, [new("system", "You tell stories."), new("user", "Once upon a time")], ChatTemplate.FromName("plain"));
        Assert.Equal(prompt.Length, response.Usage.InputTokenCount);
        var generator = new Generation.Generator(model);
        string expected = "";
        await foreach (var t in generator.GenerateAsync(prompt, new Generation.GenerationOptions { MaxTokens = 10, Sampling = Sampling.SamplingOptions.Greedy })) expected += t.Text;
        Assert.Equal(expected + generator.TrailingText, response.Text);
        var logprobs = (List<NextTokenChatClient.TokenLogprob>)response.AdditionalProperties!["logprobs"]!;
        Assert.Equal(10, logprobs.Count);
        Assert.All(logprobs, l => Assert.Equal(1, l.Rank)); // greedy takes the best token each time
    }

    [Fact]
    public async Task Streaming_InAPipeline_EqualsNonStreamingForTheSameSeed()
    {
        int calls = 0;
        using IChatClient client = new ChatClientBuilder(new NextTokenChatClient(ModelLoader.Load(BuiltInModel.Id), BuiltInModel.Name, ownsModel: true))
            .Use(async (messages, options, next, cancel) =>
            {
                Interlocked.Increment(ref calls);
                await next(messages, options, cancel);
            })
            .Build();
        var options = new ChatOptions { Temperature = 1.0f, TopK = 20, Seed = 11, MaxOutputTokens = 24, StopSequences = ["."] };
        ChatResponse whole = await client.GetResponseAsync(Story, options);
        string streamed = "";
        await foreach (ChatResponseUpdate update in client.GetStreamingResponseAsync(Story, options)) streamed += update.Text;
        Assert.Equal(whole.Text, streamed);
        Assert.Equal(2, calls);
        Assert.DoesNotContain(".", whole.Text); // the stop sequence ends the answer and is not part of it
    }

    [Fact]
    public async Task OpenAiAdapter_TalksToTheServerUnchanged()
    {
        IChatClient client = new OpenAIClient(new ApiKeyCredential(ServerFixture.ApiKey), new OpenAIClientOptions { Endpoint = new Uri(fixture.Server.Url, "v1") })
            .GetChatClient(BuiltInModel.Name).AsIChatClient();
        ChatResponse response = await client.GetResponseAsync(Story, new ChatOptions { Temperature = 0, MaxOutputTokens = 10 });
        using var local = new NextTokenChatClient(ModelLoader.Load(BuiltInModel.Id), BuiltInModel.Name, ownsModel: true);
        ChatResponse direct = await local.GetResponseAsync(Story, new ChatOptions { Temperature = 0, MaxOutputTokens = 10 });
        Assert.Equal(direct.Text, response.Text);
        Assert.Equal(10, response.Usage!.OutputTokenCount);
    }
}

/// <summary>The README's server and IChatClient snippets, as written there (the server on a free port).</summary>
public class ReadmeServerExampleTests(ServerFixture fixture) : IClassFixture<ServerFixture>
{
    [Fact]
    public void OpenAiSdkSnippet_RunsAsDocumented()
    {
        var client = new OpenAIClient(new ApiKeyCredential(ServerFixture.ApiKey), new OpenAIClientOptions { Endpoint = new Uri(fixture.Server.Url, "v1") });
        OpenAI.Chat.ChatCompletion reply = client.GetChatClient("stories260K").CompleteChat([new OpenAI.Chat.UserChatMessage("Once upon a time")]);
        Assert.False(string.IsNullOrEmpty(reply.Content[0].Text));
    }

    [Fact]
    public async Task ChatClientSnippet_RunsAsDocumented()
    {
        using IChatClient chat = new NextTokenChatClient(ModelLoader.Load("builtin"), "stories260K", ownsModel: true);
        ChatResponse response = await chat.GetResponseAsync("Once upon a time", new ChatOptions { Temperature = 0, MaxOutputTokens = 20 });
        Assert.Equal(20, response.Usage!.OutputTokenCount);
        Assert.False(string.IsNullOrWhiteSpace(response.Text));
    }
}
