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
        var host = new ModelHost(model, modelId, options.Parallel, options.MaxQueue);
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.Listen(address, options.Port);
            kestrel.Limits.MaxRequestBodySize = options.MaxBodyBytes;
            kestrel.AddServerHeader = false;
        });
        if (options.CorsOrigin is not null)
            builder.Services.AddCors(cors => cors.AddDefaultPolicy(policy => policy.WithOrigins(options.CorsOrigin).AllowAnyHeader().AllowAnyMethod()));
        WebApplication app = builder.Build();
        if (options.CorsOrigin is not null) app.UseCors();
        app.Use((context, next) => Guard(context, next, host, options));
        Map(app, host);
        await app.StartAsync(cancel);
        string listening = app.Services.GetRequiredService<Microsoft.AspNetCore.Hosting.Server.IServer>()
            .Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new NextTokenServer(app, host, new Uri(listening.TrimEnd('/') + "/"));
    }

    /// <summary>Errors in OpenAI's shape, the API key, and the body limit, around every request.</summary>
    private static async Task Guard(HttpContext context, RequestDelegate next, ModelHost host, ServerOptions options)
    {
        string path = context.Request.Path.Value ?? "";
        bool api = path != "/health";
        if (api && path != "/metrics") host.Metrics.AddRequest();
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
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            // the client went away; its slot is already free
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
        app.MapGet("/health", () => Results.Json(new { status = "ok" }));
        app.MapGet("/metrics", () => Results.Text(host.Metrics.Prometheus(), "text/plain; version=0.0.4"));
        app.MapGet("/v1/models", () => Results.Json(endpoints.Models()));
        app.MapPost("/v1/completions", async context => await endpoints.Completions(context, await Body(context)));
        app.MapPost("/v1/chat/completions", async context => await endpoints.ChatCompletions(context, await Body(context)));
        app.MapPost("/tokenize", async context => await context.Response.WriteAsJsonAsync(endpoints.Tokenize(await Body(context))));
        app.MapPost("/detokenize", async context => await context.Response.WriteAsJsonAsync(endpoints.Detokenize(await Body(context))));
        var inspect = new InspectEndpoints(host);
        app.MapPost("/v1/inspect/next", async context => await context.Response.WriteAsJsonAsync(await inspect.Next(await Body(context), context.RequestAborted)));
        app.MapPost("/v1/inspect/compare", async context => await context.Response.WriteAsJsonAsync(await inspect.Compare(await Body(context), context.RequestAborted)));
        app.MapPost("/v1/inspect/lens", async context => await context.Response.WriteAsJsonAsync(await inspect.Lens(await Body(context), context.RequestAborted)));
        // Anything else under the API answers in the same error shape rather than an empty 404.
        app.MapFallback(context => throw new ApiError(404, $"no endpoint {context.Request.Method} {context.Request.Path}", null, "not_found"));
    }

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
