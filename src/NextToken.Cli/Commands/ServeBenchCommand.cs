using System.CommandLine;
using System.Diagnostics;
using System.Text;
using System.Text.Json;
using NextToken.Models;
using NextToken.Server;
using Spectre.Console;

namespace NextToken.Cli.Commands;

/// <summary>
/// <c>nexttoken bench-serve</c>: load on an OpenAI-compatible server — NextToken's own, started
/// in-process on loopback, or any other at <c>--url</c> (llama-server, to compare) — measured as
/// aggregate generated tokens per second and time to first token at several numbers of
/// concurrent streaming clients.
/// </summary>
internal static class ServeBenchCommand
{
    public static Command Create()
    {
        var model = CommonOptions.Model();
        var url = new Option<string?>("--url") { Description = "Measure a running server instead (e.g. llama-server at http://127.0.0.1:8081/); only loopback addresses" };
        var clients = new Option<string>("--clients") { Description = "Concurrent streaming clients, comma-separated", DefaultValueFactory = _ => "1,4,8" };
        var tokens = new Option<int>("--tokens", "-n") { Description = "Tokens each request generates", DefaultValueFactory = _ => 64 };
        var requests = new Option<int>("--requests") { Description = "Requests per client at each level", DefaultValueFactory = _ => 2 };
        var parallel = new Option<int?>("--parallel", "-np") { Description = "Slots of the in-process server (default: the largest client count)" };
        var prompt = new Option<string>("--prompt") { Description = "Prompt text", DefaultValueFactory = _ => "Once upon a time" };
        var threads = CommonOptions.Threads();
        var json = CommonOptions.Json();
        var command = new Command("bench-serve", "Aggregate tokens/s and time to first token of a server under 1, 4, 8… concurrent streams")
        {
            model, url, clients, tokens, requests, parallel, prompt, threads, json,
        };
        command.SetAction((parse, cancel) => CommonOptions.RunAsync(parse, async () =>
        {
            int[] levels = parse.GetValue(clients)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .Select(c => int.TryParse(c, out int v) && v is >= 1 and <= 256 ? v : throw new NextTokenException($"--clients: '{c}' is not a count from 1 to 256")).ToArray();
            if (levels.Length == 0) throw new NextTokenException("--clients: give at least one count");
            int n = parse.GetValue(tokens), perClient = parse.GetValue(requests);
            if (n < 1) throw new NextTokenException($"--tokens must be at least 1, not {n}");
            if (perClient < 1) throw new NextTokenException($"--requests must be at least 1, not {perClient}");
            NextTokenServer? server = null;
            Uri target;
            string modelName;
            if (parse.GetValue(url) is { } given)
            {
                target = new Uri(given.EndsWith('/') ? given : given + "/");
                if (!target.IsLoopback) throw new NextTokenException($"--url must be a loopback address (127.0.0.1, localhost, [::1]), not {target.Host}");
                modelName = "";
            }
            else
            {
                LanguageModel lm = CommonOptions.LoadModel(parse, parse.GetValue(model), parse.GetValue(threads));
                server = await NextTokenServer.StartAsync(lm, "bench", new ServerOptions { Port = 0, Parallel = parse.GetValue(parallel) ?? levels.Max(), MaxQueue = 1024 }, cancel);
                target = server.Url;
                modelName = "bench";
            }
            try
            {
                using var http = new HttpClient { BaseAddress = target, Timeout = TimeSpan.FromMinutes(10) };
                await Measure(http, modelName, parse.GetValue(prompt)!, 1, 1, Math.Min(n, 8), cancel); // warm-up
                var rows = new List<Level>();
                foreach (int level in levels) rows.Add(await Measure(http, modelName, parse.GetValue(prompt)!, level, perClient, n, cancel));
                if (parse.GetValue(json))
                    JsonOutput.Write(new { url = target.ToString(), tokens = n, requests_per_client = perClient, levels = rows });
                else
                    Show(target, rows);
            }
            finally
            {
                if (server is not null) await server.DisposeAsync();
            }
            return 0;
        }));
        return command;
    }

    private sealed record Level(int clients, int requests, long generated_tokens, double seconds, double aggregate_tokens_per_second,
        double ttft_p50_ms, double ttft_p99_ms, double per_stream_tokens_per_second);

    private static async Task<Level> Measure(HttpClient http, string model, string prompt, int clients, int perClient, int n, CancellationToken cancel)
    {
        var firstToken = new List<double>();
        long generated = 0;
        var clock = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, clients).Select(async client =>
        {
            for (int r = 0; r < perClient; r++)
            {
                (double ttft, int count) = await Stream(http, model, prompt, n, seed: client * 1000 + r, cancel);
                lock (firstToken) firstToken.Add(ttft);
                Interlocked.Add(ref generated, count);
            }
        }));
        double seconds = clock.Elapsed.TotalSeconds;
        double[] sorted = firstToken.Order().ToArray();
        return new Level(clients, clients * perClient, generated, seconds, generated / seconds,
            Percentile(sorted, 0.5), Percentile(sorted, 0.99), generated / seconds / clients);
    }

    /// <summary>One streaming request: ms to the first token, and the number of tokens streamed.</summary>
    private static async Task<(double FirstTokenMs, int Tokens)> Stream(HttpClient http, string model, string prompt, int n, int seed, CancellationToken cancel)
    {
        string body = JsonSerializer.Serialize(new Dictionary<string, object?>
        {
            ["model"] = model.Length > 0 ? model : null,
            ["prompt"] = prompt,
            ["max_tokens"] = n,
            ["temperature"] = 0.8,
            ["seed"] = seed,
            ["stream"] = true,
            ["ignore_eos"] = true, // llama-server: generate all n tokens
        }.Where(p => p.Value is not null).ToDictionary());
        var clock = Stopwatch.StartNew();
        using var request = new HttpRequestMessage(HttpMethod.Post, "v1/completions") { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        // A fresh connection per request: llama-server drops reused keep-alive connections after a
        // long stream ("response ended prematurely" at 4 clients × 64 tokens); loopback setup is negligible.
        request.Headers.ConnectionClose = true;
        using HttpResponseMessage response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancel);
        if (!response.IsSuccessStatusCode)
            throw new NextTokenException($"{http.BaseAddress}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync(cancel)}");
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(cancel));
        double first = -1;
        int tokens = 0;
        while (await reader.ReadLineAsync(cancel) is { } line)
        {
            if (!line.StartsWith("data: ", StringComparison.Ordinal)) continue;
            if (line == "data: [DONE]") break;
            using JsonDocument chunk = JsonDocument.Parse(line.AsMemory(6));
            if (chunk.RootElement.GetProperty("choices") is { ValueKind: JsonValueKind.Array } choices && choices.GetArrayLength() > 0
                && choices[0].TryGetProperty("text", out JsonElement text) && text.GetString() is { Length: > 0 })
            {
                if (first < 0) first = clock.Elapsed.TotalMilliseconds;
                tokens++;
            }
        }
        return (first < 0 ? clock.Elapsed.TotalMilliseconds : first, tokens);
    }

    private static double Percentile(double[] sorted, double fraction) =>
        sorted.Length == 0 ? 0 : sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(fraction * sorted.Length) - 1)];

    private static void Show(Uri target, List<Level> rows)
    {
        var table = new Table().Border(TableBorder.Rounded).Title($"streaming completions at {Markup.Escape(target.ToString())}")
            .AddColumn(new TableColumn("clients").RightAligned()).AddColumn(new TableColumn("requests").RightAligned())
            .AddColumn(new TableColumn("tokens").RightAligned()).AddColumn(new TableColumn("aggregate tok/s").RightAligned())
            .AddColumn(new TableColumn("per stream tok/s").RightAligned()).AddColumn(new TableColumn("first token p50 / p99 ms").RightAligned());
        foreach (Level l in rows)
            table.AddRow(l.clients.ToString(), l.requests.ToString(), l.generated_tokens.ToString(), l.aggregate_tokens_per_second.ToString("F1"),
                l.per_stream_tokens_per_second.ToString("F1"), $"{l.ttft_p50_ms:F1} / {l.ttft_p99_ms:F1}");
        AnsiConsole.Write(table);
    }
}
