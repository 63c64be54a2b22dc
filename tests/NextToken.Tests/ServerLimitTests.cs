using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.Json;
using NextToken.Models;
using NextToken.Server;
using Xunit.Abstractions;

namespace NextToken.Tests;

/// <summary>Per-request limits: the time limit (<c>--timeout</c>) and max_tokens capped by the context.</summary>
public class ServerLimitTests(ITestOutputHelper output)
{
    private static StringContent Json(object body) => new(JsonSerializer.Serialize(body), Encoding.UTF8, "application/json");

    // 16 choices of a full context each, one slot: 8,000 decode steps, tens of seconds here, far past the limit.
    private static readonly object LongRequest = new { prompt = "Once upon a time", max_tokens = 100_000, n = 16, ignore_eos = true, temperature = 1.0, seed = 1 };

    [Fact]
    public async Task RequestOverTheTimeLimit_Is408InOpenAiShape_AndFreesItsSlot()
    {
        var timeout = TimeSpan.FromSeconds(2);
        await using NextTokenServer server = await NextTokenServer.StartAsync(ModelLoader.Load(BuiltInModel.Id), BuiltInModel.Name,
            new ServerOptions { Port = 0, Parallel = 1, RequestTimeout = timeout });
        using var http = new HttpClient { BaseAddress = server.Url };
        // Warm up (compile the paths) so the stream below has begun when its time is up.
        using (HttpResponseMessage warm = await http.PostAsync("v1/completions", Json(new { prompt = "Once upon a time", max_tokens = 1 })))
            Assert.Equal(HttpStatusCode.OK, warm.StatusCode);
        long warmTokens = Generated(await http.GetStringAsync("metrics"));
        var clock = Stopwatch.StartNew();
        using HttpResponseMessage response = await http.PostAsync("v1/completions", Json(LongRequest));
        clock.Stop();
        string text = await response.Content.ReadAsStringAsync();
        output.WriteLine($"after {clock.ElapsedMilliseconds} ms: {(int)response.StatusCode} {text}");
        Assert.Equal(HttpStatusCode.RequestTimeout, response.StatusCode);
        using (JsonDocument doc = JsonDocument.Parse(text))
        {
            JsonElement error = doc.RootElement.GetProperty("error");
            Assert.Equal("request_timeout", error.GetProperty("code").GetString());
            Assert.Contains("--timeout", error.GetProperty("message").GetString());
            Assert.Equal(JsonValueKind.Null, error.GetProperty("param").ValueKind);
        }
        Assert.True(clock.Elapsed < timeout + TimeSpan.FromSeconds(10), $"the request ran {clock.Elapsed} against a limit of {timeout}");

        // Streamed: the stream has begun, so it ends with an error event and [DONE].
        using HttpResponseMessage streamed = await http.PostAsync("v1/completions", Json(new { prompt = "Once upon a time", max_tokens = 100_000, n = 16, ignore_eos = true, temperature = 1.0, seed = 1, stream = true }));
        string events = await streamed.Content.ReadAsStringAsync();
        output.WriteLine($"streamed: {(int)streamed.StatusCode}, ends {events[^Math.Min(events.Length, 300)..]}");
        if (streamed.StatusCode == HttpStatusCode.OK)
        {
            Assert.Contains("\"code\":\"request_timeout\"", events);
            Assert.EndsWith("data: [DONE]\n\n", events);
        }
        else
            Assert.Equal(HttpStatusCode.RequestTimeout, streamed.StatusCode);

        // The work stopped (not left running behind the error) and the slot is free: the token
        // count settles far below the two requests' full work, and no slot is busy. (/metrics has no time limit.)
        long last = -1, now = Generated(await http.GetStringAsync("metrics"));
        var settle = Stopwatch.StartNew();
        while (now != last && settle.Elapsed < TimeSpan.FromSeconds(30))
        {
            last = now;
            await Task.Delay(500);
            now = Generated(await http.GetStringAsync("metrics"));
        }
        using LanguageModel model = ModelLoader.Load(BuiltInModel.Id);
        long fullWork = 2 * 16 * (model.ContextLength - 5);
        now -= warmTokens;
        last -= warmTokens;
        output.WriteLine($"generated {now} tokens before the limits stopped them (the full work: {fullWork})");
        Assert.Equal(last, now);
        Assert.True(now < fullWork / 2, $"{now} tokens generated: the timed-out work went on");
        Assert.Contains("nexttoken_slots_busy 0", await http.GetStringAsync("metrics"));
    }

    private static long Generated(string metrics) =>
        long.Parse(metrics.Split('\n').Single(l => l.StartsWith("nexttoken_generated_tokens_total ", StringComparison.Ordinal)).Split(' ')[1]);

    [Fact]
    public async Task MaxTokensOverTheContext_IsCappedByIt_AndFinishesWithLength()
    {
        await using NextTokenServer server = await NextTokenServer.StartAsync(ModelLoader.Load(BuiltInModel.Id), BuiltInModel.Name, new ServerOptions { Port = 0, Parallel = 1 });
        using var http = new HttpClient { BaseAddress = server.Url };
        using HttpResponseMessage response = await http.PostAsync("v1/completions", Json(new { prompt = "Once upon a time", max_tokens = 1_000_000, ignore_eos = true, temperature = 0 }));
        string text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, text);
        using JsonDocument doc = JsonDocument.Parse(text);
        JsonElement usage = doc.RootElement.GetProperty("usage");
        int prompt = usage.GetProperty("prompt_tokens").GetInt32(), completion = usage.GetProperty("completion_tokens").GetInt32();
        using LanguageModel model = ModelLoader.Load(BuiltInModel.Id);
        output.WriteLine($"prompt {prompt} + completion {completion} tokens, context {model.ContextLength}");
        Assert.Equal(model.ContextLength - prompt, completion);
        Assert.Equal("length", doc.RootElement.GetProperty("choices")[0].GetProperty("finish_reason").GetString());

        using HttpResponseMessage chat = await http.PostAsync("v1/chat/completions", Json(new { messages = new[] { new { role = "user", content = "Hi" } }, max_completion_tokens = 1_000_000, ignore_eos = true, temperature = 0 }));
        string chatText = await chat.Content.ReadAsStringAsync();
        Assert.True(chat.StatusCode == HttpStatusCode.OK, chatText);
        using JsonDocument chatDoc = JsonDocument.Parse(chatText);
        JsonElement chatUsage = chatDoc.RootElement.GetProperty("usage");
        Assert.Equal(model.ContextLength, chatUsage.GetProperty("total_tokens").GetInt32());
        Assert.Equal("length", chatDoc.RootElement.GetProperty("choices")[0].GetProperty("finish_reason").GetString());
    }

    [Fact]
    public async Task TimeoutOfZero_IsRefusedAtStart()
    {
        using LanguageModel model = ModelLoader.Load(BuiltInModel.Id);
        var error = await Assert.ThrowsAsync<NextTokenException>(() => NextTokenServer.StartAsync(model, "m", new ServerOptions { Port = 0, RequestTimeout = TimeSpan.Zero }));
        Assert.Contains("--timeout", error.Message);
    }
}
