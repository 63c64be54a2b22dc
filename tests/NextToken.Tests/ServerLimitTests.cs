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

    // 16 choices of a full context each, one slot: 8,000 decode steps, seconds on any machine, far past the limit.
    private static readonly object LongRequest = new { prompt = "Once upon a time", max_tokens = 100_000, n = 16, ignore_eos = true, temperature = 1.0, seed = 1, logprobs = 5 };

    [Fact]
    public async Task RequestOverTheTimeLimit_Is408InOpenAiShape_AndFreesItsSlot()
    {
        // A short limit, so the work below (16 × 507 tokens, sequentially in one slot) outlasts it on
        // any machine; the paths are compiled first on a server without a tight limit, so the
        // streamed request below has begun when its time is up even on a slow machine.
        // 0.2 s, not more: an AMD Zen 5 writes ~12,000 of the built-in model's tokens a second, so half a second
        // per request let the two requests reach half of their whole work before their limits.
        var timeout = TimeSpan.FromSeconds(0.2);
        await using (NextTokenServer warmServer = await NextTokenServer.StartAsync(ModelLoader.Load(BuiltInModel.Id), BuiltInModel.Name,
            new ServerOptions { Port = 0, Parallel = 1 }))
        using (var warmHttp = new HttpClient { BaseAddress = warmServer.Url })
        {
            using HttpResponseMessage warm = await warmHttp.PostAsync("v1/completions", Json(new { prompt = "Once upon a time", max_tokens = 2, logprobs = 5 }));
            using HttpResponseMessage warmStream = await warmHttp.PostAsync("v1/completions", Json(new { prompt = "Once upon a time", max_tokens = 2, logprobs = 5, stream = true }));
            Assert.Equal(HttpStatusCode.OK, warm.StatusCode);
            Assert.Equal(HttpStatusCode.OK, warmStream.StatusCode);
        }
        await using NextTokenServer server = await NextTokenServer.StartAsync(ModelLoader.Load(BuiltInModel.Id), BuiltInModel.Name,
            new ServerOptions { Port = 0, Parallel = 1, RequestTimeout = timeout });
        using var http = new HttpClient { BaseAddress = server.Url };
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
        using HttpResponseMessage streamed = await http.PostAsync("v1/completions", Json(new { prompt = "Once upon a time", max_tokens = 100_000, n = 16, ignore_eos = true, temperature = 1.0, seed = 1, logprobs = 5, stream = true }));
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
        string metrics = await http.GetStringAsync("metrics");
        Assert.Contains("nexttoken_slots_busy 0", metrics);
        Assert.Contains("nexttoken_queue_depth 0", metrics);
    }

    [Fact]
    public async Task RequestGivenUpWhileQueued_LeavesTheQueueAtOnce_WhileTheSlotIsBusy()
    {
        // Room for exactly 16 + 1 sequences: the long request's 16 choices (one running, 15 waiting)
        // and one more. A waiting request whose client gives up must free its place at once — not
        // when a slot would reach it, seconds later behind the 15 choices ahead of it.
        // The model is phi3-tiny for its 4,096-position context: 16 choices of ~4,090 tokens take ~13 s on a
        // fast Zen 5 core, far longer than the checks below (the built-in model's 512 positions took under 1 s,
        // so its choices could all end within the 500 ms check).
        await using NextTokenServer server = await NextTokenServer.StartAsync(ModelLoader.Load(Fixtures.Model(Path.Combine("arch", "phi3-tiny.f32.gguf"))), "phi3-tiny",
            new ServerOptions { Port = 0, Parallel = 1, MaxQueue = 16 });
        using var http = new HttpClient { BaseAddress = server.Url };
        // Wait until the first choice runs and the other 15 wait (on a loaded machine the choices reach the queue one by one).
        using var stopBusy = new CancellationTokenSource();
        Task<HttpResponseMessage> busy = http.PostAsync("v1/completions", Json(LongRequest), stopBusy.Token);
        var clock = Stopwatch.StartNew();
        bool ready;
        string state;
        while (!(ready = (state = await http.GetStringAsync("metrics")).Contains("nexttoken_slots_busy 1") && state.Contains("nexttoken_queue_depth 15")) && !busy.IsCompleted && clock.Elapsed < TimeSpan.FromSeconds(30)) await Task.Delay(10);
        Assert.True(ready, "the long request's 16 choices never showed as 1 running and 15 waiting");

        using (var giveUp = new CancellationTokenSource(TimeSpan.FromMilliseconds(200)))
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => http.PostAsync("v1/completions", Json(new { prompt = "Once", max_tokens = 4 }), giveUp.Token));
        string metrics = "";
        var settle = Stopwatch.StartNew();
        // At most the long request's 15 waiting choices (fewer once some are done).
        while (settle.Elapsed < TimeSpan.FromSeconds(5) && QueueDepth(metrics = await http.GetStringAsync("metrics")) > 15) await Task.Delay(10);
        output.WriteLine($"{settle.ElapsedMilliseconds} ms after the client gave up: {string.Join(", ", metrics.Split('\n').Where(l => l.StartsWith("nexttoken_queue_depth") || l.StartsWith("nexttoken_slots_busy")))}");

        // The place is free while the long request still runs: the next request is queued (it would
        // wait seconds for its turn), not refused with an immediate 503.
        HttpStatusCode? answered = null;
        using (var waitBriefly = new CancellationTokenSource(TimeSpan.FromMilliseconds(500)))
        {
            try
            {
                using HttpResponseMessage next = await http.PostAsync("v1/completions", Json(new { prompt = "Once", max_tokens = 4 }), waitBriefly.Token);
                answered = next.StatusCode;
            }
            catch (OperationCanceledException)
            {
                // still waiting in the queue, as it should
            }
        }
        Assert.False(busy.IsCompleted, "the long request finished before the check: it should run for seconds");
        Assert.Null(answered);

        // Everything given up: the queue and the slot empty without another request to wake the server.
        stopBusy.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => busy);
        settle.Restart();
        while (settle.Elapsed < TimeSpan.FromSeconds(5) && !((metrics = await http.GetStringAsync("metrics")).Contains("nexttoken_queue_depth 0") && metrics.Contains("nexttoken_slots_busy 0"))) await Task.Delay(10);
        Assert.Contains("nexttoken_queue_depth 0", metrics);
        Assert.Contains("nexttoken_slots_busy 0", metrics);
    }

    private static int QueueDepth(string metrics) =>
        int.Parse(metrics.Split('\n').Single(l => l.StartsWith("nexttoken_queue_depth ", StringComparison.Ordinal)).Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture);

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
