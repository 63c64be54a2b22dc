using System.ClientModel;
using System.Net;
using System.Net.Http.Headers;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using NextToken.Models;
using NextToken.Server;
using OpenAI;
using OpenAI.Chat;
using Xunit.Abstractions;

namespace NextToken.Tests;

/// <summary>One server on loopback with the built-in model, shared by the tests of a class.</summary>
public sealed class ServerFixture : IAsyncLifetime
{
    public const string ApiKey = "test-key-123";
    public NextTokenServer Server { get; private set; } = null!;
    public HttpClient Http { get; } = new();

    public async Task InitializeAsync()
    {
        Server = await NextTokenServer.StartAsync(ModelLoader.Load(BuiltInModel.Id), BuiltInModel.Name,
            new ServerOptions { Port = 0, ApiKey = ApiKey, MaxBodyBytes = 64 << 10 });
        Http.BaseAddress = Server.Url;
        Http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", ApiKey);
    }

    public async Task DisposeAsync()
    {
        Http.Dispose();
        await Server.DisposeAsync();
    }
}

/// <summary>
/// <c>nexttoken serve</c> as clients see it: the official OpenAI .NET SDK unchanged, raw HTTP for the
/// legacy completions endpoint (echo, logprobs), and every refusal in OpenAI's error shape.
/// </summary>
public class ServerTests(ServerFixture fixture, ITestOutputHelper output) : IClassFixture<ServerFixture>
{
    private static readonly Lazy<LanguageModel> Reference = new(() => ModelLoader.Load(BuiltInModel.Id));

    private ChatClient Chat() => new OpenAIClient(new ApiKeyCredential(ServerFixture.ApiKey),
        new OpenAIClientOptions { Endpoint = new Uri(fixture.Server.Url, "v1") }).GetChatClient(BuiltInModel.Name);

    [Fact]
    public async Task OpenAiSdk_ChatCompletion_GreedyEqualsTheLibrarysGreedy()
    {
        ChatCompletion completion = await Chat().CompleteChatAsync(
            [new UserChatMessage("Once upon a time")],
            new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 12 });
        Assert.Equal(ChatFinishReason.Length, completion.FinishReason);
        Assert.Equal(12, completion.Usage.OutputTokenCount);

        // The same prompt through the library: the plain template, then greedy.
        var template = NextToken.Chat.ChatTemplate.FromName("plain");
        int[] prompt = NextToken.Chat.ChatPrompt.Tokens(Reference.Value, [new NextToken.Chat.ChatMessage("user", "Once upon a time")], template);
        Assert.Equal(prompt.Length, completion.Usage.InputTokenCount);
        var generator = new NextToken.Generation.Generator(Reference.Value);
        var text = new StringBuilder();
        await foreach (var token in generator.GenerateAsync(prompt, new NextToken.Generation.GenerationOptions { MaxTokens = 12, Sampling = NextToken.Sampling.SamplingOptions.Greedy }))
            text.Append(token.Text);
        text.Append(generator.TrailingText);
        output.WriteLine($"chat: {completion.Content[0].Text}");
        Assert.Equal(text.ToString(), completion.Content[0].Text);
    }

    [Fact]
    public async Task OpenAiSdk_Streaming_EqualsNonStreamingForTheSameSeed()
    {
        var options = new ChatCompletionOptions { Temperature = 0.9f, Seed = 42, MaxOutputTokenCount = 20, IncludeLogProbabilities = true, TopLogProbabilityCount = 3 };
        List<ChatMessage> messages = [new SystemChatMessage("You tell stories."), new UserChatMessage("A dog")];
        ChatCompletion whole = await Chat().CompleteChatAsync(messages, options);
        var streamed = new StringBuilder();
        ChatFinishReason? finish = null;
        int logprobTokens = 0;
        await foreach (StreamingChatCompletionUpdate update in Chat().CompleteChatStreamingAsync(messages, options))
        {
            foreach (var part in update.ContentUpdate) streamed.Append(part.Text);
            logprobTokens += update.ContentTokenLogProbabilities.Count;
            finish ??= update.FinishReason;
        }
        Assert.Equal(whole.Content[0].Text, streamed.ToString());
        Assert.NotNull(finish);
        Assert.Equal(whole.ContentTokenLogProbabilities.Count, logprobTokens);
        Assert.All(whole.ContentTokenLogProbabilities, t =>
        {
            Assert.True(t.LogProbability <= 0);
            Assert.Equal(3, t.TopLogProbabilities.Count);
            Assert.True(t.TopLogProbabilities[0].LogProbability >= t.TopLogProbabilities[1].LogProbability);
        });
    }

    [Fact]
    public async Task Completions_EchoWithLogprobs_ScoresThePromptAsTheModelDoes()
    {
        int[] ids = Reference.Value.Tokenizer.Encode("Once upon a time there was a cat", addBos: true).Ids;
        using JsonDocument doc = await PostOk("v1/completions", new { prompt = ids, max_tokens = 0, echo = true, logprobs = 1 });
        JsonElement choice = doc.RootElement.GetProperty("choices")[0];
        JsonElement logprobs = choice.GetProperty("logprobs");
        JsonElement[] values = logprobs.GetProperty("token_logprobs").EnumerateArray().ToArray();
        Assert.Equal(ids.Length, values.Length);
        Assert.Equal(JsonValueKind.Null, values[0].ValueKind);
        Assert.Equal(ids.Length, doc.RootElement.GetProperty("usage").GetProperty("prompt_tokens").GetInt32()); // ids used as given: no BOS added

        var logits = new float[ids.Length * Reference.Value.VocabSize];
        Reference.Value.Forward(Reference.Value.CreateState(), ids, logits, LogitsFor.AllPositions);
        double worst = 0;
        for (int i = 1; i < ids.Length; i++)
        {
            ReadOnlySpan<float> row = logits.AsSpan((i - 1) * Reference.Value.VocabSize, Reference.Value.VocabSize);
            double max = 0, z = 0;
            foreach (float v in row) max = Math.Max(max, v);
            foreach (float v in row) z += Math.Exp(v - max);
            double expected = row[ids[i]] - max - Math.Log(z);
            worst = Math.Max(worst, Math.Abs(values[i].GetDouble() - expected));
        }
        output.WriteLine($"echo logprobs of {ids.Length - 1} prompt tokens: max |diff| vs float64 log-softmax {worst:E2}");
        Assert.True(worst < 1e-4);
        string text = choice.GetProperty("text").GetString()!;
        int[] offsets = logprobs.GetProperty("text_offset").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        string[] tokens = logprobs.GetProperty("tokens").EnumerateArray().Select(e => e.GetString()!).ToArray();
        for (int i = 0; i < tokens.Length; i++) Assert.Equal(tokens[i], text.Substring(offsets[i], tokens[i].Length));
    }

    [Fact]
    public async Task Completions_NChoicesWithSeed_AreReproducibleAndStreamEndsWithDone()
    {
        var body = new { prompt = "Once upon a time", max_tokens = 8, n = 3, seed = 7, temperature = 1.0, logprobs = 2 };
        using JsonDocument first = await PostOk("v1/completions", body);
        using JsonDocument second = await PostOk("v1/completions", body);
        string[] a = first.RootElement.GetProperty("choices").EnumerateArray().Select(c => c.GetProperty("text").GetString()!).ToArray();
        string[] b = second.RootElement.GetProperty("choices").EnumerateArray().Select(c => c.GetProperty("text").GetString()!).ToArray();
        Assert.Equal(3, a.Length);
        Assert.Equal(a, b);

        using var request = new HttpRequestMessage(HttpMethod.Post, "v1/completions") { Content = Json(new { prompt = "Once upon a time", max_tokens = 8, seed = 7, temperature = 1.0, stream = true }) };
        using HttpResponseMessage response = await fixture.Http.SendAsync(request);
        string sse = await response.Content.ReadAsStringAsync();
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType!.MediaType);
        string[] events = sse.Split("\n\n", StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("data: [DONE]", events[^1].Trim());
        string streamed = string.Concat(events[..^1].Select(e => JsonDocument.Parse(e["data: ".Length..]).RootElement.GetProperty("choices")[0].GetProperty("text").GetString()));
        Assert.Equal(a[0], streamed);
    }

    [Theory]
    [InlineData("v1/completions", """{"prompt":"x","temperature":-1}""", 400, "temperature")]
    [InlineData("v1/completions", """{"prompt":"x","top_p":0}""", 400, "top_p")]
    [InlineData("v1/completions", """{"prompt":"x","top_p":1.5}""", 400, "top_p")]
    [InlineData("v1/completions", """{"prompt":"x","max_tokens":-1}""", 400, "max_tokens")]
    [InlineData("v1/completions", """{"prompt":"x","max_tokens":"ten"}""", 400, "max_tokens")]
    [InlineData("v1/completions", """{"prompt":[1, 99999]}""", 400, "prompt")]
    [InlineData("v1/completions", """{"prompt":"x","logit_bias":{"5":1e9}}""", 400, "logit_bias")]
    [InlineData("v1/completions", """{"prompt":"x","stop":["a","b","c","d","e"]}""", 400, "stop")]
    [InlineData("v1/completions", """{"max_tokens":3}""", 400, "prompt")]
    [InlineData("v1/completions", """{"prompt":"x","model":"gpt-4"}""", 404, "model")]
    [InlineData("v1/chat/completions", """{"model":"stories260K"}""", 400, "messages")]
    [InlineData("v1/chat/completions", """{"messages":"hi"}""", 400, "messages")]
    [InlineData("v1/chat/completions", """{"messages":[{"content":"hi"}]}""", 400, "messages[0].role")]
    [InlineData("v1/chat/completions", """{"messages":[{"role":"user","content":"hi"}],"top_logprobs":2}""", 400, "top_logprobs")]
    [InlineData("v1/chat/completions", """{"messages":[{"role":"user","content":"hi"}],"n":0}""", 400, "n")]
    [InlineData("v1/chat/completions", "{not json", 400, null)]
    [InlineData("v1/chat/completions", "[1,2]", 400, null)]
    [InlineData("v1/nothing", "{}", 404, null)]
    public async Task BadRequest_AnsweredInOpenAiShape_AndServerKeepsServing(string path, string body, int status, string? param)
    {
        using HttpResponseMessage response = await fixture.Http.PostAsync(path, new StringContent(body, Encoding.UTF8, "application/json"));
        Assert.Equal(status, (int)response.StatusCode);
        JsonElement error = await ErrorOf(response);
        Assert.Equal(param, error.GetProperty("param").GetString());
        output.WriteLine($"{status} {error.GetProperty("message").GetString()}");
        using JsonDocument ok = await PostOk("v1/completions", new { prompt = "Once", max_tokens = 1 });
    }

    /// <summary>Found by fuzzing the request parser: invalid text inside JSON strings escaped as a 500.</summary>
    [Theory]
    [InlineData(new byte[] { 0x7B, 0x22, 0x70, 0x72, 0x6F, 0x6D, 0x70, 0x74, 0x22, 0x3A, 0x22, 0xC3, 0x28, 0x22, 0x7D })] // {"prompt":"\xC3("}
    [InlineData(new byte[] { 0x7B, 0x22, 0x70, 0x72, 0x6F, 0x6D, 0x70, 0x74, 0x22, 0x3A, 0x22, 0x5C, 0x75, 0x64, 0x38, 0x30, 0x30, 0x22, 0x7D })] // {"prompt":"\ud800"}
    public async Task InvalidTextInsideJsonStrings_Is400(byte[] body)
    {
        using var content = new ByteArrayContent(body);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        using HttpResponseMessage response = await fixture.Http.PostAsync("v1/completions", content);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("invalid_json", (await ErrorOf(response)).GetProperty("code").GetString());
    }

    [Fact]
    public async Task PromptLongerThanContext_Is400NamingTheLimit()
    {
        using HttpResponseMessage response = await fixture.Http.PostAsync("v1/completions", Json(new { prompt = Enumerable.Repeat(300, 600).ToArray() }));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        JsonElement error = await ErrorOf(response);
        Assert.Equal("context_length_exceeded", error.GetProperty("code").GetString());
        Assert.Contains("512", error.GetProperty("message").GetString());
    }

    [Fact]
    public async Task ApiKey_RequiredEverywhereButHealth()
    {
        using var anonymous = new HttpClient { BaseAddress = fixture.Server.Url };
        Assert.Equal(HttpStatusCode.OK, (await anonymous.GetAsync("health")).StatusCode);
        foreach (string path in new[] { "v1/models", "metrics" })
        {
            using HttpResponseMessage response = await anonymous.GetAsync(path);
            Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
            Assert.Equal("invalid_api_key", (await ErrorOf(response)).GetProperty("code").GetString());
        }
        anonymous.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", ServerFixture.ApiKey + "x");
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.PostAsync("v1/completions", Json(new { prompt = "x" }))).StatusCode);
        using JsonDocument models = JsonDocument.Parse(await fixture.Http.GetStringAsync("v1/models"));
        Assert.Equal(BuiltInModel.Name, models.RootElement.GetProperty("data")[0].GetProperty("id").GetString());
    }

    [Fact]
    public async Task BodyOverTheLimit_Is413()
    {
        string big = new('a', 100 << 10);
        using HttpResponseMessage response = await fixture.Http.PostAsync("v1/completions", Json(new { prompt = big }));
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
        Assert.Equal("request_too_large", (await ErrorOf(response)).GetProperty("code").GetString());
    }

    [Fact]
    public async Task TokenizeAndDetokenize_RoundTrip()
    {
        using JsonDocument tokens = await PostOk("tokenize", new { content = "Once upon a time" });
        int[] ids = tokens.RootElement.GetProperty("tokens").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        Assert.Equal(Reference.Value.Tokenizer.Encode("Once upon a time", addBos: true).Ids, ids);
        using JsonDocument text = await PostOk("detokenize", new { tokens = ids[1..] });
        Assert.Equal("Once upon a time", text.RootElement.GetProperty("content").GetString()!.TrimStart());
    }

    [Fact]
    public async Task ClientDisconnectMidStream_FreesTheSlot()
    {
        using (var cancel = new CancellationTokenSource())
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "v1/completions") { Content = Json(new { prompt = "Once", max_tokens = 400, stream = true, temperature = 1.0 }) };
            using HttpResponseMessage response = await fixture.Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancel.Token);
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(cancel.Token));
            await reader.ReadLineAsync(cancel.Token); // the first event arrived: generation is under way
            cancel.Cancel();
        }
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        using HttpResponseMessage next = await fixture.Http.PostAsync("v1/completions", Json(new { prompt = "Once", max_tokens = 2 }), timeout.Token);
        Assert.Equal(HttpStatusCode.OK, next.StatusCode);
        string metrics = await fixture.Http.GetStringAsync("metrics");
        Assert.Contains("nexttoken_generated_tokens_total", metrics);
    }

    private async Task<JsonDocument> PostOk(string path, object body)
    {
        using HttpResponseMessage response = await fixture.Http.PostAsync(path, Json(body));
        string text = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, $"{(int)response.StatusCode}: {text}");
        return JsonDocument.Parse(text);
    }

    private static async Task<JsonElement> ErrorOf(HttpResponseMessage response)
    {
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        using JsonDocument doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        JsonElement error = doc.RootElement.GetProperty("error");
        foreach (string key in new[] { "message", "type", "param", "code" }) Assert.True(error.TryGetProperty(key, out _), $"error lacks '{key}'");
        return error.Clone();
    }

    private static StringContent Json(object body) => new(JsonSerializer.Serialize(body), Encoding.UTF8, "application/json");
}

/// <summary>Continuous batching: many clients at once, each getting exactly what it gets alone.</summary>
public class ServerConcurrencyTests(ITestOutputHelper output)
{
    [Fact]
    public async Task SixteenClients_EachStreamEqualsItsSoloRun_NoErrors()
    {
        await using NextTokenServer server = await NextTokenServer.StartAsync(ModelLoader.Load(BuiltInModel.Id), BuiltInModel.Name,
            new ServerOptions { Port = 0, Parallel = 4, MaxQueue = 32 });
        using var http = new HttpClient { BaseAddress = server.Url, Timeout = TimeSpan.FromSeconds(120) };
        string[] prompts = ["Once upon a time", "The little dog", "Lily and Ben went to the park", "One day, a cat", "The sun was hot"];
        object Body(int i) => new { prompt = prompts[i % prompts.Length], max_tokens = 24 + i % 7, temperature = 0.9, top_k = 30, seed = 100 + i, cache_prompt = false, stream = i % 2 == 0 };

        // Solo: one request at a time.
        var solo = new string[16];
        for (int i = 0; i < 16; i++) solo[i] = await Complete(http, Body(i));
        long before = GC.GetTotalMemory(true);

        // Together: 16 clients at once, for a bounded time (every request has a deadline).
        var clock = System.Diagnostics.Stopwatch.StartNew();
        string[] together = await Task.WhenAll(Enumerable.Range(0, 16).Select(i => Complete(http, Body(i))));
        output.WriteLine($"16 concurrent requests on 4 slots in {clock.Elapsed.TotalSeconds:F2} s");
        for (int i = 0; i < 16; i++) Assert.Equal(solo[i], together[i]);
        Assert.Contains(together, t => t.Length > 0);

        string metrics = await http.GetStringAsync("metrics");
        Assert.Contains("nexttoken_request_errors_total 0", metrics);
        long after = GC.GetTotalMemory(true);
        output.WriteLine($"managed memory before {before / 1024} KB, after {after / 1024} KB");
        Assert.True(after < before + (64L << 20), "memory grew by more than 64 MB");
    }

    [Fact]
    public async Task QueueFull_Is503_AndTheServerRecovers()
    {
        await using NextTokenServer server = await NextTokenServer.StartAsync(ModelLoader.Load(BuiltInModel.Id), BuiltInModel.Name,
            new ServerOptions { Port = 0, Parallel = 1, MaxQueue = 1 });
        using var http = new HttpClient { BaseAddress = server.Url, Timeout = TimeSpan.FromSeconds(120) };
        // n = 8 choices need 8 sequences: more than one slot plus one waiting.
        using HttpResponseMessage busy = await http.PostAsync("v1/completions", new StringContent("""{"prompt":"Once","max_tokens":4,"n":8}""", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.ServiceUnavailable, busy.StatusCode);
        using JsonDocument error = JsonDocument.Parse(await busy.Content.ReadAsStringAsync());
        Assert.Equal("server_busy", error.RootElement.GetProperty("error").GetProperty("code").GetString());
        // All or none: the refused request took no slot, so the next one is served at once.
        using HttpResponseMessage ok = await http.PostAsync("v1/completions", new StringContent("""{"prompt":"Once","max_tokens":4}""", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
    }

    private static async Task<string> Complete(HttpClient http, object body)
    {
        using var cancel = new CancellationTokenSource(TimeSpan.FromSeconds(90));
        using HttpResponseMessage response = await http.PostAsync("v1/completions", new StringContent(JsonSerializer.Serialize(body), Encoding.UTF8, "application/json"), cancel.Token);
        string text = await response.Content.ReadAsStringAsync(cancel.Token);
        Assert.True(response.IsSuccessStatusCode, text);
        if (response.Content.Headers.ContentType?.MediaType != "text/event-stream")
            return JsonDocument.Parse(text).RootElement.GetProperty("choices")[0].GetProperty("text").GetString()!;
        var events = text.Split("\n\n", StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("data: [DONE]", events[^1].Trim());
        return string.Concat(events[..^1].Select(e => JsonDocument.Parse(e["data: ".Length..]).RootElement.GetProperty("choices")[0].GetProperty("text").GetString()));
    }
}

/// <summary>The inspection endpoints answer with what the CLI's --json writes.</summary>
public class InspectEndpointTests(ServerFixture fixture) : IClassFixture<ServerFixture>
{
    private static readonly Lazy<LanguageModel> Reference = new(() => ModelLoader.Load(BuiltInModel.Id));

    private async Task<JsonDocument> Post(string path, object body)
    {
        using HttpResponseMessage response = await fixture.Http.PostAsync(path, new StringContent(JsonSerializer.Serialize(body), Encoding.UTF8, "application/json"));
        string text = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, text);
        return JsonDocument.Parse(text);
    }

    [Fact]
    public async Task Next_OnceUponATime_TopTokenIsComma_WithTheFullLogitRow()
    {
        using JsonDocument doc = await Post("v1/inspect/next", new { prompt = "Once upon a time", top = 5, logits = true, explain = new { temperature = 0.8, top_k = 40 }, seed = 3 });
        JsonElement report = doc.RootElement.GetProperty("report");
        Assert.Equal(",", report.GetProperty("top")[0].GetProperty("piece").GetString());
        Assert.Equal(5, report.GetProperty("top").GetArrayLength());
        Assert.Equal(3UL, report.GetProperty("explain").GetProperty("seed").GetUInt64());
        float[] logits = MemoryMarshal.Cast<byte, float>(Convert.FromBase64String(doc.RootElement.GetProperty("logits_f32_base64").GetString()!)).ToArray();
        Assert.Equal(Reference.Value.VocabSize, logits.Length);
        var expected = new float[Reference.Value.VocabSize];
        int[] ids = Reference.Value.Tokenizer.Encode("Once upon a time", addBos: true).Ids;
        Reference.Value.Forward(Reference.Value.CreateState(), ids, expected);
        Assert.Equal(expected, logits);
    }

    [Fact]
    public async Task CompareAndLens_EqualTheCliJson()
    {
        using JsonDocument compare = await Post("v1/inspect/compare", new { prompt = "The dog", system_a = (string?)null, system_b = "Lily had a cat.", top = 5 });
        var cli = CliTests.RunWith(null, null, "compare", "--prompt", "The dog", "--system-b", "Lily had a cat.", "--top", "5", "--json");
        Assert.True(cli.ExitCode == 0, cli.Stderr);
        using JsonDocument expected = JsonDocument.Parse(cli.Stdout);
        Assert.Equal(expected.RootElement.GetProperty("kl_ab").GetDouble(), compare.RootElement.GetProperty("kl_ab").GetDouble(), 1e-9);
        Assert.Equal(expected.RootElement.GetProperty("top_b").GetRawText(), compare.RootElement.GetProperty("top_b").GetRawText());

        using JsonDocument lens = await Post("v1/inspect/lens", new { prompt = "Once upon a time", top = 3 });
        Assert.Equal(Reference.Value.LayerCount + 1, lens.RootElement.GetProperty("layers").GetArrayLength());
        Assert.Equal(",", lens.RootElement.GetProperty("layers")[Reference.Value.LayerCount].GetProperty("top")[0].GetProperty("piece").GetString());
    }

    [Fact]
    public async Task Next_BadInput_Is400()
    {
        using HttpResponseMessage both = await fixture.Http.PostAsync("v1/inspect/next", new StringContent("""{"prompt":"a","tokens":[1]}""", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.BadRequest, both.StatusCode);
        using HttpResponseMessage id = await fixture.Http.PostAsync("v1/inspect/next", new StringContent("""{"tokens":[1, 100000]}""", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.BadRequest, id.StatusCode);
    }
}

/// <summary>The OpenAPI document, and <c>nexttoken serve</c> as a process.</summary>
public class ServerDocumentTests(ServerFixture fixture) : IClassFixture<ServerFixture>
{
    [Fact]
    public async Task OpenApi_ListsEveryEndpoint_AndEveryListedPathAnswers()
    {
        using JsonDocument doc = JsonDocument.Parse(await fixture.Http.GetStringAsync("openapi/v1.json"));
        JsonElement paths = doc.RootElement.GetProperty("paths");
        string[] listed = paths.EnumerateObject().Select(p => p.Name).ToArray();
        foreach (string expected in new[] { "/health", "/metrics", "/v1/models", "/v1/completions", "/v1/chat/completions", "/tokenize", "/detokenize", "/v1/inspect/next", "/v1/inspect/compare", "/v1/inspect/lens", "/v1/inspect/attention", "/v1/inspect/drift", "/v1/inspect/steer", "/v1/inspect/steer/sweep", "/v1/inspect/routing", "/v1/inspect/map" })
            Assert.Contains(expected, listed);
        Assert.True(paths.GetProperty("/v1/completions").GetProperty("post").GetProperty("responses").TryGetProperty("400", out _));
        // The report records are the schemas, so a field added to one (the lens's residual norms) is documented.
        Assert.True(doc.RootElement.GetProperty("components").GetProperty("schemas").GetProperty("LensReport").GetProperty("properties").TryGetProperty("residual_norms", out _));
        foreach (JsonProperty path in paths.EnumerateObject())
        {
            foreach (JsonProperty operation in path.Value.EnumerateObject())
            {
                using var request = new HttpRequestMessage(new HttpMethod(operation.Name.ToUpperInvariant()), path.Name.TrimStart('/'));
                if (operation.Name == "post") request.Content = new StringContent("{}", Encoding.UTF8, "application/json");
                using HttpResponseMessage response = await fixture.Http.SendAsync(request);
                // An empty body is a 400 naming the missing field; never "no such endpoint" or "method not allowed".
                Assert.True(response.StatusCode is HttpStatusCode.OK or HttpStatusCode.BadRequest, $"{operation.Name} {path.Name}: {(int)response.StatusCode}");
            }
        }
    }

    [Fact]
    public async Task ServeCommand_PrintsItsUrl_AnswersAndStopsOnSigterm()
    {
        var start = new System.Diagnostics.ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "NextToken.Cli.dll"));
        foreach (string a in new[] { "serve", "--port", "0", "--parallel", "2" }) start.ArgumentList.Add(a);
        using var process = System.Diagnostics.Process.Start(start)!;
        try
        {
            string line = (await process.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(60)))!;
            var url = System.Text.RegularExpressions.Regex.Match(line, @"at (http://127\.0\.0\.1:\d+/)").Groups[1].Value;
            Assert.StartsWith("http://127.0.0.1:", url);
            Assert.Contains("stories260K", line);
            using var http = new HttpClient { BaseAddress = new Uri(url) };
            Assert.Equal("""{"status":"ok"}""", await http.GetStringAsync("health"));
            using HttpResponseMessage completion = await http.PostAsync("v1/completions", new StringContent("""{"prompt":"Once upon a time","max_tokens":4,"temperature":0}""", Encoding.UTF8, "application/json"));
            Assert.Equal(HttpStatusCode.OK, completion.StatusCode);
        }
        finally
        {
            if (!process.HasExited) System.Diagnostics.Process.Start("kill", ["-TERM", process.Id.ToString()])!.WaitForExit();
        }
        Assert.True(process.WaitForExit(20_000), "serve did not stop on SIGTERM");
        Assert.Equal(0, process.ExitCode);
    }
}
