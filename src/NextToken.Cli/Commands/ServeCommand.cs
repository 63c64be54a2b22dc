using System.CommandLine;
using NextToken.Models;
using NextToken.Server;

namespace NextToken.Cli.Commands;

/// <summary><c>nexttoken serve</c>: the OpenAI-compatible server on loopback until Ctrl+C.</summary>
internal static class ServeCommand
{
    public static Command Create()
    {
        var model = CommonOptions.Model();
        var host = new Option<string>("--host") { Description = "Address to listen on (loopback by default; 0.0.0.0 exposes the server to the network)", DefaultValueFactory = _ => "127.0.0.1" };
        var port = new Option<int>("--port") { Description = "Port to listen on (0: any free port)", DefaultValueFactory = _ => 8080 };
        var apiKey = new Option<string?>("--api-key") { Description = "Require 'Authorization: Bearer KEY' on every endpoint but /health (default: $NEXTTOKEN_API_KEY, else none)" };
        var parallel = new Option<int>("--parallel", "-np") { Description = "Sequences decoded side by side in one pass over the weights (continuous batching), each with its own KV cache", DefaultValueFactory = _ => 4 };
        var cors = new Option<string?>("--cors") { Description = "Allow browser calls from this origin (CORS is off by default)" };
        var timeout = new Option<float>("--timeout") { Description = "Seconds a request may take before it is stopped with a request_timeout error and its slots freed", DefaultValueFactory = _ => 600 };
        var threads = CommonOptions.Threads();
        var context = CommonOptions.Context();
        var command = new Command("serve", "Serve the model over an OpenAI-compatible HTTP API (/v1/completions, /v1/chat/completions, /v1/models, /tokenize, /metrics)")
        {
            model, host, port, parallel, apiKey, cors, timeout, threads, context,
        };
        command.SetAction((parse, cancel) => CommonOptions.RunAsync(parse, async () =>
        {
            string? name = parse.GetValue(model);
            float seconds = CommonOptions.Checked(parse, timeout);
            if (seconds is <= 0 or > 1e7f) throw new NextTokenException($"--timeout must be above 0 and at most 10000000 seconds, not {seconds}");
            LanguageModel lm = CommonOptions.LoadModel(parse, name, parse.GetValue(threads), parse.GetValue(context));
            var options = new ServerOptions
            {
                Host = parse.GetValue(host)!,
                Port = parse.GetValue(port),
                Parallel = parse.GetValue(parallel),
                ApiKey = parse.GetValue(apiKey) ?? (Environment.GetEnvironmentVariable("NEXTTOKEN_API_KEY") is { Length: > 0 } k ? k : null),
                CorsOrigin = parse.GetValue(cors),
                RequestTimeout = TimeSpan.FromSeconds(seconds),
            };
            NextTokenServer server;
            try
            {
                server = await NextTokenServer.StartAsync(lm, ServedName(lm, name), options, cancel);
            }
            catch
            {
                lm.Dispose();
                throw;
            }
            await using (server)
            {
                Console.WriteLine($"NextToken serving {server.ModelId} ({CommonOptions.Describe(lm)}) with {options.Parallel} slots at {server.Url} — OpenAI API under {server.Url}v1; Ctrl+C stops");
                try
                {
                    // Ends on Ctrl+C or SIGTERM (the host's console lifetime stops the server).
                    await server.WaitForShutdownAsync(cancel);
                }
                catch (OperationCanceledException)
                {
                }
            }
            return 0;
        }));
        return command;
    }

    /// <summary>The name clients put in "model": the built-in model's name, a hub id as given, or a file's name.</summary>
    private static string ServedName(LanguageModel lm, string? requested) =>
        lm.FilePath == BuiltInModel.Id ? BuiltInModel.Name
        : requested is not null && !File.Exists(requested) && !Directory.Exists(requested) ? requested
        : Path.GetFileName(Path.TrimEndingDirectorySeparator(lm.FilePath));
}
