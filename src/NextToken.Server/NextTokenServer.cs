using System.Net;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using NextToken.Models;

namespace NextToken.Server;

/// <summary>How <c>nexttoken serve</c> listens and what it accepts.</summary>
public sealed record ServerOptions
{
    /// <summary>Loopback by default: nothing leaves the machine unless the user binds elsewhere.</summary>
    public string Host { get; init; } = "127.0.0.1";

    /// <summary>0 picks a free port (tests); the URL is reported once listening.</summary>
    public int Port { get; init; } = 8080;

    /// <summary>When set, every endpoint but <c>/health</c> needs <c>Authorization: Bearer KEY</c>.</summary>
    public string? ApiKey { get; init; }

    /// <summary>Sequences decoded side by side (continuous batching); each slot has its own KV cache.</summary>
    public int Parallel { get; init; } = 4;

    /// <summary>Sequences allowed to wait for a slot before the server answers 503.</summary>
    public int MaxQueue { get; init; } = 64;

    public long MaxBodyBytes { get; init; } = 4 << 20;

    /// <summary>An origin allowed to call from a browser (CORS); none by default.</summary>
    public string? CorsOrigin { get; init; }

    /// <summary>Where the web UI's files are (default: <c>wwwroot</c> beside the assembly).</summary>
    public string? WebRoot { get; init; }

    /// <summary>
    /// The longest a request may take (<c>--timeout</c>); past it the request ends with a
    /// <c>request_timeout</c> error (408, or an error event in a stream) and its slots free.
    /// </summary>
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromSeconds(600);
}

/// <summary>
/// An OpenAI-compatible HTTP server over one loaded model: <c>/v1/completions</c> (with
/// <c>echo</c> and <c>logprobs</c>), <c>/v1/chat/completions</c>, <c>/v1/models</c>,
/// <c>/tokenize</c>, <c>/detokenize</c>, <c>/health</c> and <c>/metrics</c>. Errors come in
/// OpenAI's shape and the server keeps serving.
/// </summary>
public sealed class NextTokenServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly ModelHost _host;

    private NextTokenServer(WebApplication app, ModelHost host, Uri url)
    {
        _app = app;
        _host = host;
        Url = url;
    }

    /// <summary>Where the server listens, e.g. <c>http://127.0.0.1:8080/</c>.</summary>
    public Uri Url { get; }

    public string ModelId => _host.Id;

    /// <summary>Starts serving <paramref name="model"/> (which the server then owns) under the name <paramref name="modelId"/>.</summary>
    public static async Task<NextTokenServer> StartAsync(LanguageModel model, string modelId, ServerOptions options, CancellationToken cancel = default)
    {
        if (options.Port is < 0 or > 65535) throw new NextTokenException($"--port must be 0 to 65535, not {options.Port}");
        if (!IPAddress.TryParse(options.Host == "localhost" ? "127.0.0.1" : options.Host, out IPAddress? address))
            throw new NextTokenException($"--host must be an IP address such as 127.0.0.1, not '{options.Host}'");
        if (options.Parallel is < 1 or > 64) throw new NextTokenException($"--parallel must be 1 to 64, not {options.Parallel}");
        if (options.RequestTimeout <= TimeSpan.Zero) throw new NextTokenException($"--timeout must be above 0 seconds, not {options.RequestTimeout.TotalSeconds}");
        var host = new ModelHost(model, modelId, options.Parallel, options.MaxQueue);
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.Listen(address, options.Port);
            kestrel.Limits.MaxRequestBodySize = options.MaxBodyBytes;
            kestrel.AddServerHeader = false;
        });
        builder.Services.AddOpenApi();
        if (options.CorsOrigin is not null)
            builder.Services.AddCors(cors => cors.AddDefaultPolicy(policy => policy.WithOrigins(options.CorsOrigin).AllowAnyHeader().AllowAnyMethod()));
        WebApplication app = builder.Build();
        // The UI's files first: before routing, so the API's catch-all does not shadow them.
        WebUi.Use(app, options.WebRoot ?? WebUi.DefaultRoot);
        if (options.CorsOrigin is not null) app.UseCors();
        app.Use((context, next) => Guard(context, next, host, options));
        // Endpoints are matched after the guard, which reads every POST body as JSON whatever its
        // declared type (as llama-server does): `curl -d` sends form-urlencoded, and the endpoints'
        // JSON content type (their OpenAPI metadata) would otherwise refuse to match it.
        app.UseRouting();
        Map(app, host);
        await app.StartAsync(cancel);
        string listening = app.Services.GetRequiredService<Microsoft.AspNetCore.Hosting.Server.IServer>()
            .Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new NextTokenServer(app, host, new Uri(listening.TrimEnd('/') + "/"));
    }

    /// <summary>Errors in OpenAI's shape, the API key, the body limit and the time limit, around every request.</summary>
    private static async Task Guard(HttpContext context, RequestDelegate next, ModelHost host, ServerOptions options)
    {
        string path = context.Request.Path.Value ?? "";
        if (HttpMethods.IsPost(context.Request.Method) && context.Request.ContentType?.StartsWith("application/json", StringComparison.OrdinalIgnoreCase) != true)
            context.Request.ContentType = "application/json";
        bool api = path != "/health";
        if (api && path != "/metrics") host.Metrics.AddRequest();
        // Handlers and the scheduler stop on RequestAborted: it now also fires when the time is up.
        CancellationToken clientGone = context.RequestAborted;
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(clientGone);
        if (path is not "/health" and not "/metrics") limit.CancelAfter(options.RequestTimeout);
        context.RequestAborted = limit.Token;
        context.Items[ClientGoneKey] = clientGone;
        try
        {
            if (api && options.ApiKey is { } key && !Authorized(context.Request.Headers.Authorization.ToString(), key))
                throw new ApiError(401, "Incorrect or missing API key: send 'Authorization: Bearer KEY'", null, "invalid_api_key");
            await next(context);
        }
        catch (ApiError error)
        {
            host.Metrics.AddError();
            await error.WriteAsync(context);
        }
        catch (BadHttpRequestException error) when (error.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            host.Metrics.AddError();
            await ApiError.Write(context, 413, $"the request body is larger than the limit of {options.MaxBodyBytes} bytes", "invalid_request_error", null, "request_too_large");
        }
        catch (OperationCanceledException) when (clientGone.IsCancellationRequested)
        {
            // the client went away; its slot is already free
        }
        catch (Exception) when (limit.IsCancellationRequested)
        {
            // Whatever the stopped work threw on its way out, the cause is the time limit.
            host.Metrics.AddError();
            await TimedOut(context, options.RequestTimeout);
        }
        catch (NextTokenException error)
        {
            host.Metrics.AddError();
            await ApiError.Write(context, 400, error.Message, "invalid_request_error", null, null);
        }
        catch (Exception error)
        {
            host.Metrics.AddError();
            await ApiError.Write(context, 500, $"internal error: {error.GetType().Name}: {error.Message}", "server_error", null, null);
        }
    }

    private static readonly object ClientGoneKey = new();

    /// <summary>
    /// Fires only when the client disconnects (<see cref="HttpContext.RequestAborted"/> also fires at
    /// the time limit). Writes take this one: Kestrel aborts the connection when a pending write is
    /// cancelled, which would cut a stream before its error event could be sent.
    /// </summary>
    internal static CancellationToken ClientGone(HttpContext context) =>
        context.Items.TryGetValue(ClientGoneKey, out object? token) && token is CancellationToken gone ? gone : context.RequestAborted;

    /// <summary>A request past the time limit: a 408 in OpenAI's shape, or, when a stream has begun, an error event and the end of the stream.</summary>
    private static async Task TimedOut(HttpContext context, TimeSpan timeout)
    {
        string message = $"the request took longer than the server's limit of {timeout.TotalSeconds:0.###} s (--timeout) and was stopped";
        if (!context.Response.HasStarted)
        {
            await ApiError.Write(context, 408, message, "server_error", null, "request_timeout");
            return;
        }
        if (context.Response.ContentType?.StartsWith("text/event-stream", StringComparison.Ordinal) != true) return; // a plain body half written cannot take an error any more
        try
        {
            var error = new ErrorBody(new ErrorDetail(message, "server_error", null, "request_timeout"));
            await context.Response.WriteAsync($"data: {System.Text.Json.JsonSerializer.Serialize(error)}\n\ndata: [DONE]\n\n", ClientGone(context));
        }
        catch (Exception failure) when (failure is IOException or OperationCanceledException or ObjectDisposedException)
        {
            // the client is gone as well
        }
    }

    /// <summary>Compares hashes in constant time, so neither the key's content nor its length leaks through timing.</summary>
    private static bool Authorized(string header, string key)
    {
        const string prefix = "Bearer ";
        string given = header.StartsWith(prefix, StringComparison.OrdinalIgnoreCase) ? header[prefix.Length..].Trim() : "";
        return CryptographicOperations.FixedTimeEquals(SHA256.HashData(Encoding.UTF8.GetBytes(given)), SHA256.HashData(Encoding.UTF8.GetBytes(key)));
    }

    private static void Map(WebApplication app, ModelHost host)
    {
        var endpoints = new OpenAiEndpoints(host);
        var inspect = new InspectEndpoints(host);
        app.MapOpenApi(); // /openapi/v1.json, generated from the endpoints and their metadata
        app.MapGet("/health", () => Results.Json(new Health("ok"))).Produces<Health>().WithSummary("Liveness; needs no API key");
        app.MapGet("/metrics", () => Results.Text(host.Metrics.Prometheus(), "text/plain; version=0.0.4"))
            .Produces<string>(200, "text/plain").WithSummary("Prometheus counters: requests, tokens, queue, slots, tokens/s");
        app.MapGet("/v1/models", () => Results.Json(endpoints.Models())).Produces<ModelList>().Errors().WithSummary("The served model");
        Post<CompletionRequest, CompletionResponse>(app, "/v1/completions", "Legacy completions: echo, logprobs, n, token-id prompts; SSE with stream",
            async context => await endpoints.Completions(context, await Body(context)));
        Post<ChatCompletionRequest, ChatCompletionResponse>(app, "/v1/chat/completions", "Chat completions through the model's chat template; SSE with stream",
            async context => await endpoints.ChatCompletions(context, await Body(context)));
        Post<TokenizeRequest, TokenizeResponse>(app, "/tokenize", "Text to token ids",
            async context => await context.Response.WriteAsJsonAsync(endpoints.Tokenize(await Body(context))));
        Post<DetokenizeRequest, DetokenizeResponse>(app, "/detokenize", "Token ids to text",
            async context => await context.Response.WriteAsJsonAsync(endpoints.Detokenize(await Body(context))));
        Post<InspectNextRequest, Inspection.NextReport>(app, "/v1/inspect/next", "The next-token distribution (an InspectNextWithLogits when logits is true), one roll explained",
            async context => await context.Response.WriteAsJsonAsync(await inspect.Next(await Body(context), context.RequestAborted)));
        Post<InspectCompareRequest, Inspection.CompareReport>(app, "/v1/inspect/compare", "Two contexts' next-token distributions compared",
            async context => await context.Response.WriteAsJsonAsync(await inspect.Compare(await Body(context), context.RequestAborted)));
        Post<InspectLensRequest, Inspection.LensReport>(app, "/v1/inspect/lens", "The logit lens: every layer decoded",
            async context => await context.Response.WriteAsJsonAsync(await inspect.Lens(await Body(context), context.RequestAborted)));
        Post<InspectAttentionRequest, Inspection.AttentionReport>(app, "/v1/inspect/attention", "Where the last token looks: attention shares per layer and head, a chosen layer's patterns",
            async context => await context.Response.WriteAsJsonAsync(await inspect.Attention(await Body(context), context.RequestAborted)));
        Post<InspectDriftRequest, Inspection.DriftReport>(app, "/v1/inspect/drift", "Turn by turn, the attention paid to the system prompt and its effect on the next token",
            async context => await context.Response.WriteAsJsonAsync(await inspect.Drift(await Body(context), context.RequestAborted)));
        Post<InspectSteerRequest, Inspection.SteerReport>(app, "/v1/inspect/steer", "Continuations with and without a steering vector in the residual stream",
            async context => await context.Response.WriteAsJsonAsync(await inspect.Steer(await Body(context), context.RequestAborted)));
        Post<InspectSteerSweepRequest, Inspection.SteerSweepReport>(app, "/v1/inspect/steer/sweep", "Every layer × coefficient: the targets' log-probability lift, KL to unsteered, relative norm",
            async context => await context.Response.WriteAsJsonAsync(await inspect.SteerSweep(await Body(context), context.RequestAborted)));
        Post<InspectRoutingRequest, Inspection.RoutingReport>(app, "/v1/inspect/routing", "Mixture-of-experts routing: experts per token and layer, load per expert, what a system prompt changes",
            async context => await context.Response.WriteAsJsonAsync(await inspect.Routing(await Body(context), context.RequestAborted)));
        Post<InspectMapRequest, Inspection.MapReport>(app, "/v1/inspect/map", "Per-token residual vectors at a layer in 2-D (PCA or a concept axis)",
            async context => await context.Response.WriteAsJsonAsync(await inspect.Map(await Body(context), context.RequestAborted)));
        // Anything else answers in the same error shape rather than an empty 404.
        app.MapFallback(context => throw new ApiError(404, $"no endpoint {context.Request.Method} {context.Request.Path}", null, "not_found"));
    }

    /// <summary>A JSON POST endpoint with its request and response types and error shapes in the OpenAPI document.</summary>
    private static void Post<TRequest, TResponse>(WebApplication app, string path, string summary, Func<HttpContext, Task> handler) where TRequest : notnull =>
        // As a Delegate (not a RequestDelegate) so the endpoint gets the metadata OpenAPI is generated from.
        app.MapPost(path, (Delegate)handler)
            .Accepts<TRequest>("application/json").Produces<TResponse>().Errors().WithSummary(summary);

    private static async Task<RequestFields> Body(HttpContext context)
    {
        using var buffer = new MemoryStream();
        await context.Request.Body.CopyToAsync(buffer, context.RequestAborted);
        return RequestFields.Parse(buffer.ToArray());
    }

    public Task WaitForShutdownAsync(CancellationToken cancel = default) => _app.WaitForShutdownAsync(cancel);

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
        _host.Dispose();
    }
}

internal static class EndpointErrors
{
    /// <summary>The error statuses every API endpoint may answer with, in OpenAI's shape.</summary>
    public static RouteHandlerBuilder Errors(this RouteHandlerBuilder builder) => builder
        .Produces<ErrorBody>(400).Produces<ErrorBody>(401).Produces<ErrorBody>(404).Produces<ErrorBody>(408).Produces<ErrorBody>(413).Produces<ErrorBody>(503);
}
