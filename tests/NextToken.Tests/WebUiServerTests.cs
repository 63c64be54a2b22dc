using System.Diagnostics;
using System.Net;
using System.Text.Json;
using NextToken.Models;
using NextToken.Server;
using Xunit.Abstractions;

namespace NextToken.Tests;

/// <summary>
/// The web UI (web/): its Vitest unit tests, the server serving it at <c>/</c>, and an end-to-end run in
/// Debian's Chromium through playwright-core (web/e2e/run.mjs) against a server on loopback with the
/// built-in model, which saves a screenshot of each view (to the test output; to docs/screenshots, the
/// README's, when NEXTTOKEN_UPDATE_SCREENSHOTS=1, so a test run leaves the checkout clean). Tests that need
/// Node.js, the web packages, the built UI or Chromium report Skipped, naming what is missing.
/// </summary>
public class WebUiServerTests(ITestOutputHelper output)
{
    private static readonly string Root = WebUiVectorTests.RepositoryRoot();
    private static readonly string Web = Path.Combine(Root, "web");
    private const string Chromium = "/usr/bin/chromium";

    /// <summary>An empty folder for this run's screenshots: the README's with NEXTTOKEN_UPDATE_SCREENSHOTS=1, else the test output.</summary>
    private static string ScreenshotFolder(params string[] names)
    {
        string folder = Environment.GetEnvironmentVariable("NEXTTOKEN_UPDATE_SCREENSHOTS") == "1"
            ? Path.Combine(Root, "docs", "screenshots")
            : Path.Combine(AppContext.BaseDirectory, "screenshots");
        Directory.CreateDirectory(folder);
        foreach (string name in names) File.Delete(Path.Combine(folder, name + ".png")); // a stale file must not pass the check
        return folder;
    }

    private static string? Which(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Select(dir => Path.Combine(dir, name)).FirstOrDefault(File.Exists);

    private static void SkipWithoutNode()
    {
        Skip.If(Which("node") is null, "Node.js (node) is not on PATH; install it (Debian: apt-get install nodejs npm) to run the web UI's tests");
        Skip.IfNot(Directory.Exists(Path.Combine(Web, "node_modules", "vitest")), "web/node_modules is missing; run 'npm ci' in web/");
    }

    /// <summary>Runs node with arguments in web/, returning its exit code and output (both streams).</summary>
    private async Task<(int Code, string Output)> Node(TimeSpan limit, params string[] arguments)
    {
        var start = new ProcessStartInfo(Which("node")!) { WorkingDirectory = Web, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string a in arguments) start.ArgumentList.Add(a);
        start.Environment["NO_COLOR"] = "1";
        start.Environment["FORCE_COLOR"] = "0";
        using Process process = Process.Start(start)!;
        Task<string> stdout = process.StandardOutput.ReadToEndAsync(), stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(limit);
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"node {string.Join(' ', arguments)} did not finish within {limit}; output so far: {await stdout}{await stderr}");
        }
        string text = await stdout + await stderr;
        output.WriteLine(text);
        return (process.ExitCode, text);
    }

    [SkippableFact]
    public async Task Vitest_ClientReshaping_MatchesTheCSharpStages()
    {
        SkipWithoutNode();
        (int code, string text) = await Node(TimeSpan.FromMinutes(3), Path.Combine("node_modules", "vitest", "vitest.mjs"), "run");
        Assert.True(code == 0, $"vitest failed (exit {code})");
        Assert.Contains("max |prob diff| vs C#", text);
    }

    [Fact]
    public async Task Root_WithoutTheBuiltUi_SaysHowToBuildIt_AndTheApiStillAnswers()
    {
        string empty = Directory.CreateTempSubdirectory("nexttoken-noui-").FullName;
        try
        {
            await using NextTokenServer server = await NextTokenServer.StartAsync(ModelLoader.Load(BuiltInModel.Id), BuiltInModel.Name,
                new ServerOptions { Port = 0, WebRoot = empty });
            using var http = new HttpClient { BaseAddress = server.Url };
            using HttpResponseMessage page = await http.GetAsync("/");
            string html = await page.Content.ReadAsStringAsync();
            Assert.Equal(HttpStatusCode.NotFound, page.StatusCode);
            Assert.Equal("text/html", page.Content.Headers.ContentType?.MediaType);
            Assert.Contains("npm ci &amp;&amp; npm run build", html);
            Assert.Contains(empty, html);
            Assert.Contains(BuiltInModel.Name, await http.GetStringAsync("/v1/models"));
        }
        finally
        {
            Directory.Delete(empty, recursive: true);
        }
    }

    [Fact]
    public async Task Root_ServesTheUiFiles_WithoutTheApiKey_AndApiPathsKeepTheirErrors()
    {
        string root = Directory.CreateTempSubdirectory("nexttoken-ui-").FullName;
        try
        {
            File.WriteAllText(Path.Combine(root, "index.html"), "<!doctype html><title>ui marker 7f3a</title>");
            Directory.CreateDirectory(Path.Combine(root, "assets"));
            File.WriteAllText(Path.Combine(root, "assets", "app.js"), "console.log('x')");
            await using NextTokenServer server = await NextTokenServer.StartAsync(ModelLoader.Load(BuiltInModel.Id), BuiltInModel.Name,
                new ServerOptions { Port = 0, WebRoot = root, ApiKey = "k" });
            using var http = new HttpClient { BaseAddress = server.Url };
            Assert.Contains("ui marker 7f3a", await http.GetStringAsync("/"));
            using HttpResponseMessage script = await http.GetAsync("/assets/app.js");
            Assert.Equal(HttpStatusCode.OK, script.StatusCode);
            Assert.Equal("text/javascript", script.Content.Headers.ContentType?.MediaType);
            // The API still needs the key, and unknown paths still answer in OpenAI's error shape.
            using HttpResponseMessage models = await http.GetAsync("/v1/models");
            Assert.Equal(HttpStatusCode.Unauthorized, models.StatusCode);
            http.DefaultRequestHeaders.Authorization = new("Bearer", "k");
            using HttpResponseMessage missing = await http.GetAsync("/v1/nothing");
            Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
            using JsonDocument error = JsonDocument.Parse(await missing.Content.ReadAsStringAsync());
            Assert.Equal("not_found", error.RootElement.GetProperty("error").GetProperty("code").GetString());
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    [SkippableFact]
    public void BuildOutput_HoldsTheUi_WhenNodeIsThere()
    {
        // The server project's BuildWebUi target runs 'npm ci && npm run build' when node is on PATH,
        // and the files are copied beside the assemblies, where the server looks for them.
        Skip.If(Which("node") is null, "node is not on PATH, so the build leaves the UI out (and / says how to build it)");
        string index = Path.Combine(AppContext.BaseDirectory, "wwwroot", "index.html");
        Assert.True(File.Exists(index), $"node is on PATH but the build put no web UI at {index}");
        string html = File.ReadAllText(index);
        Assert.Matches(@"src=""\./assets/index-[\w-]+\.js""", html);
        Assert.DoesNotContain("http://", html);
        Assert.DoesNotContain("https://", html);
    }

    [SkippableFact]
    public async Task EndToEnd_InChromium_EveryViewLoads_AndNothingLeavesTheOrigin()
    {
        SkipWithoutNode();
        Skip.IfNot(File.Exists(Chromium), $"{Chromium} is missing (Debian: apt-get install chromium); the end-to-end test drives Debian's Chromium, never a downloaded browser");
        Skip.IfNot(File.Exists(Path.Combine(AppContext.BaseDirectory, "wwwroot", "index.html")), "the web UI was not built into the test's output (node was missing at build time)");
        await using NextTokenServer server = await NextTokenServer.StartAsync(ModelLoader.Load(BuiltInModel.Id), BuiltInModel.Name, new ServerOptions { Port = 0 });
        string[] views = ["next-token", "system-prompt-ab", "inside-the-model", "drift", "steering-lab", "activation-space"];
        string screenshots = ScreenshotFolder(views);
        (int code, string text) = await Node(TimeSpan.FromMinutes(5), Path.Combine("e2e", "run.mjs"),
            "--url", server.Url.ToString(), "--screenshots", screenshots, "--expect-top", ",", "--prompt", "Once upon a time", "--timing-runs", "5", "--views", "next,ab,inside,drift,steer,map");
        Assert.True(code == 0, $"the end-to-end run failed (exit {code}); see the output");
        string result = text.Split('\n').Last(line => line.StartsWith("RESULT ", StringComparison.Ordinal))[7..];
        using JsonDocument json = JsonDocument.Parse(result);
        output.WriteLine($"Enter → table on {BuiltInModel.Name}: median {json.RootElement.GetProperty("enterToTableMedianMs").GetDouble():0.0} ms over {json.RootElement.GetProperty("enterToTableMs").GetArrayLength()} runs");
        Assert.Equal(",", json.RootElement.GetProperty("topToken").GetString());
        Assert.Equal(0, json.RootElement.GetProperty("consoleErrors").GetArrayLength());
        foreach (string name in views)
            Assert.True(File.Exists(Path.Combine(screenshots, name + ".png")), $"no screenshot {name}.png");
    }

    [SkippableFact]
    public async Task EndToEnd_InChromium_RoutingView_OnAMixtureOfExpertsModel()
    {
        SkipWithoutNode();
        Skip.IfNot(File.Exists(Chromium), $"{Chromium} is missing (Debian: apt-get install chromium)");
        Skip.IfNot(File.Exists(Path.Combine(AppContext.BaseDirectory, "wwwroot", "index.html")), "the web UI was not built into the test's output (node was missing at build time)");
        // The built-in model is dense; the routing view runs on the fixtures' Mixtral-shaped model.
        await using NextTokenServer server = await NextTokenServer.StartAsync(ModelLoader.Load(Fixtures.Model("moe-tiny.f32.gguf")), "moe-tiny.f32.gguf", new ServerOptions { Port = 0 });
        string screenshots = ScreenshotFolder("routing");
        (int code, _) = await Node(TimeSpan.FromMinutes(3), Path.Combine("e2e", "run.mjs"), "--url", server.Url.ToString(), "--screenshots", screenshots, "--views", "routing");
        Assert.True(code == 0, $"the end-to-end run failed (exit {code}); see the output");
        Assert.True(File.Exists(Path.Combine(screenshots, "routing.png")), "no screenshot routing.png");
    }
}
