using System.Net;
using System.Text;
using System.Text.Json;
using NextToken.Inspection;
using NextToken.Models;
using NextToken.Server;
using Xunit.Abstractions;

namespace NextToken.Tests;

/// <summary>
/// <c>/v1/inspect/{attention,drift,steer,steer/sweep,routing,map}</c>: each answers with the numbers
/// the CLI's <c>--json</c> prints for the same input (the same library report), and a bad parameter
/// is a 400 naming it.
/// </summary>
public class InspectReportEndpointTests(ServerFixture fixture, ITestOutputHelper output) : IClassFixture<ServerFixture>
{
    private async Task<JsonDocument> Post(string path, object body)
    {
        using HttpResponseMessage response = await fixture.Http.PostAsync(path, Json(body));
        string text = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, $"{(int)response.StatusCode}: {text}");
        return JsonDocument.Parse(text);
    }

    private static StringContent Json(object body) => new(JsonSerializer.Serialize(body), Encoding.UTF8, "application/json");

    private static JsonDocument Cli(params string[] args)
    {
        var (code, stdout, stderr) = CliTests.RunWith(null, null, args);
        Assert.True(code == 0, stderr);
        return JsonDocument.Parse(stdout);
    }

    /// <summary>Every number in two JSON trees, compared with a tolerance; the largest difference is printed.</summary>
    private void AssertSameNumbers(JsonElement expected, JsonElement actual, double tolerance, string what)
    {
        double max = 0;
        void Walk(JsonElement e, JsonElement a, string path)
        {
            Assert.True(e.ValueKind == a.ValueKind, $"{what}{path}: {e.ValueKind} vs {a.ValueKind}");
            switch (e.ValueKind)
            {
                case JsonValueKind.Object:
                    Assert.Equal(e.EnumerateObject().Select(p => p.Name).Order(), a.EnumerateObject().Select(p => p.Name).Order());
                    foreach (JsonProperty p in e.EnumerateObject()) Walk(p.Value, a.GetProperty(p.Name), $"{path}.{p.Name}");
                    break;
                case JsonValueKind.Array:
                    Assert.True(e.GetArrayLength() == a.GetArrayLength(), $"{what}{path}: {e.GetArrayLength()} vs {a.GetArrayLength()} items");
                    for (int i = 0; i < e.GetArrayLength(); i++) Walk(e[i], a[i], $"{path}[{i}]");
                    break;
                case JsonValueKind.Number:
                    double diff = Math.Abs(e.GetDouble() - a.GetDouble());
                    max = Math.Max(max, diff);
                    Assert.True(diff <= tolerance, $"{what}{path}: {e.GetDouble()} vs {a.GetDouble()}");
                    break;
                default:
                    Assert.Equal(e.GetRawText(), a.GetRawText());
                    break;
            }
        }
        Walk(expected, actual, "");
        output.WriteLine($"{what}: max |diff| {max:E2} (tolerance {tolerance:E0})");
    }

    private async Task AssertBadParam(string path, string body, string param)
    {
        using HttpResponseMessage response = await fixture.Http.PostAsync(path, new StringContent(body, Encoding.UTF8, "application/json"));
        string text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.BadRequest, $"{path} {body}: {(int)response.StatusCode} {text}");
        using JsonDocument doc = JsonDocument.Parse(text);
        JsonElement error = doc.RootElement.GetProperty("error");
        foreach (string key in new[] { "message", "type", "param", "code" }) Assert.True(error.TryGetProperty(key, out _), $"error lacks '{key}'");
        Assert.Equal(param, error.GetProperty("param").GetString());
        output.WriteLine($"{path} {body} → 400 {error.GetProperty("message").GetString()}");
    }

    [Fact]
    public async Task Attention_EqualsTheCliJson()
    {
        using JsonDocument server = await Post("v1/inspect/attention", new { prompt = "Once upon a time there was", layer = 1, spans = new[] { new { start = 1, end = 3 } }, recent = 2 });
        using JsonDocument cli = Cli("attention", "-p", "Once upon a time there was", "--layer", "1", "--span", "1:3", "--recent", "2", "--json");
        // The same forward pass on the same weights: bit-identical up to the JSON round trip of a float.
        AssertSameNumbers(cli.RootElement, server.RootElement, 1e-7, "attention");
        JsonElement root = server.RootElement;
        int n = root.GetProperty("tokens").GetArrayLength(), heads = root.GetProperty("heads").GetInt32();
        Assert.Equal(heads * n * n, root.GetProperty("patterns").GetArrayLength());
        Assert.Equal(["first token", "last 2", "1:3"], root.GetProperty("spans").EnumerateArray().Select(s => s.GetProperty("name").GetString()!));
        // Each head's attention over all keys sums to one.
        foreach (JsonElement row in root.GetProperty("last_query").EnumerateArray())
            Assert.InRange(row.GetProperty("shares")[1].GetDouble(), 0, 1 + 1e-6);
    }

    [Fact]
    public async Task Attention_BadParameters_Are400NamingThem()
    {
        await AssertBadParam("v1/inspect/attention", """{"prompt":"Once upon a time","layer":99}""", "layer");
        await AssertBadParam("v1/inspect/attention", """{"prompt":"Once upon a time","spans":[{"start":3,"end":2}]}""", "spans");
        await AssertBadParam("v1/inspect/attention", """{"prompt":"Once upon a time","spans":"1:3"}""", "spans");
        await AssertBadParam("v1/inspect/attention", """{"prompt":"Once upon a time","recent":0}""", "recent");
    }

    [Fact]
    public async Task Drift_EqualsTheCliJson()
    {
        using JsonDocument server = await Post("v1/inspect/drift", new { system = "You are a pirate.", synthetic = 3, reanchor = 2 });
        using JsonDocument cli = Cli("drift", "-s", "You are a pirate.", "--synthetic", "3", "--reanchor", "2", "--json");
        AssertSameNumbers(cli.RootElement, server.RootElement, 1e-12, "drift");
        Assert.Equal(3, server.RootElement.GetProperty("turns").GetArrayLength());
        Assert.Equal(3, server.RootElement.GetProperty("reanchored").GetArrayLength());

        // A conversation given as messages measures the same as the CLI's JSONL file of the same turns.
        string file = Path.Combine(Path.GetTempPath(), $"drift-{Guid.NewGuid():N}.jsonl");
        var messages = new[] { new { role = "user", content = "Where is the treasure?" }, new { role = "assistant", content = "Under the palm." }, new { role = "user", content = "How deep?" } };
        File.WriteAllLines(file, messages.Select(m => JsonSerializer.Serialize(m)));
        try
        {
            using JsonDocument fromMessages = await Post("v1/inspect/drift", new { system = "You are a pirate.", conversation = messages });
            using JsonDocument fromFile = Cli("drift", "-s", "You are a pirate.", "--conversation", file, "--json");
            AssertSameNumbers(fromFile.RootElement, fromMessages.RootElement, 1e-12, "drift (conversation)");
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public async Task Drift_BadParameters_Are400NamingThem()
    {
        await AssertBadParam("v1/inspect/drift", """{"synthetic":2}""", "system");
        await AssertBadParam("v1/inspect/drift", """{"system":"Be brief."}""", "conversation");
        await AssertBadParam("v1/inspect/drift", """{"system":"Be brief.","synthetic":0}""", "synthetic");
        await AssertBadParam("v1/inspect/drift", """{"system":"Be brief.","synthetic":2,"reanchor":-1}""", "reanchor");
        await AssertBadParam("v1/inspect/drift", """{"system":"Be brief.","synthetic":2,"template":"no-such-template"}""", "template");
        await AssertBadParam("v1/inspect/drift", """{"system":"Be brief.","conversation":[{"content":"hi"}]}""", "conversation[0].role");
    }

    [Fact]
    public async Task Steer_AndSweep_EqualTheCliJson()
    {
        using JsonDocument server = await Post("v1/inspect/steer", new { prompt = "Once upon a time", add = " happy", sub = " sad", layer = 1, coeff = 10, runs = 2, max_tokens = 8, seed = 5, top_p = 1 });
        using JsonDocument cli = Cli("steer", "-p", "Once upon a time", "--add", " happy", "--sub", " sad", "--layer", "1", "--coeff", "10", "--runs", "2", "-n", "8", "--seed", "5", "--top-p", "1", "--json");
        AssertSameNumbers(cli.RootElement, server.RootElement, 0, "steer");
        JsonElement[] runs = server.RootElement.GetProperty("runs").EnumerateArray().ToArray();
        Assert.Equal([5UL, 6UL], runs.Select(r => r.GetProperty("seed").GetUInt64()));
        Assert.Contains(runs, r => r.GetProperty("steered").GetString() != r.GetProperty("unsteered").GetString());

        using JsonDocument sweep = await Post("v1/inspect/steer/sweep", new { prompt = "Once upon a time", add = " happy", sub = " sad", coeffs = new[] { 1, 4 }, targets = new[] { " happy", " sad" } });
        using JsonDocument cliSweep = Cli("steer", "-p", "Once upon a time", "--add", " happy", "--sub", " sad", "--sweep", "--coeffs", "1,4", "--target", " happy", "--target", " sad", "--json");
        AssertSameNumbers(cliSweep.RootElement, sweep.RootElement, 1e-12, "steer sweep");
        using LanguageModel model = ModelLoader.Load(BuiltInModel.Id);
        Assert.Equal(model.LayerCount * 2, sweep.RootElement.GetProperty("sweep").GetArrayLength());
    }

    [Fact]
    public async Task Steer_BadParameters_Are400NamingThem()
    {
        await AssertBadParam("v1/inspect/steer", """{"add":" happy","sub":" "}""", "prompt");
        await AssertBadParam("v1/inspect/steer", """{"prompt":"Once","sub":" "}""", "add");
        await AssertBadParam("v1/inspect/steer", """{"prompt":"Once","add":" happy","sub":" ","layer":-1}""", "layer");
        await AssertBadParam("v1/inspect/steer", """{"prompt":"Once","add":" happy","sub":" ","runs":100}""", "runs");
        await AssertBadParam("v1/inspect/steer", """{"prompt":"Once","add":" happy","sub":" ","coeff":"big"}""", "coeff");
        await AssertBadParam("v1/inspect/steer", """{"prompt":"Once","add":" happy","sub":" ","temperature":-1}""", "temperature");
        await AssertBadParam("v1/inspect/steer/sweep", """{"prompt":"Once","add":" happy","sub":" ","coeffs":[1,"x"]}""", "coeffs");
        await AssertBadParam("v1/inspect/steer/sweep", """{"prompt":"Once","add":" happy","sub":" ","coeffs":[]}""", "coeffs");
        await AssertBadParam("v1/inspect/steer/sweep", """{"prompt":"Once","add":" happy","sub":" ","targets":[""]}""", "targets");
    }

    [Fact]
    public async Task Routing_OnTheMixtureOfExpertsFixture_EqualsTheCliJson_AndOnADenseModelIsAClear400()
    {
        string moe = Fixtures.Model("moe-tiny.f32.gguf");
        await using NextTokenServer server = await NextTokenServer.StartAsync(ModelLoader.Load(moe), "moe-tiny", new ServerOptions { Port = 0, Parallel = 1 });
        using var http = new HttpClient { BaseAddress = server.Url };
        using HttpResponseMessage response = await http.PostAsync("v1/inspect/routing", Json(new { prompt = "The cat sat", system = "Be brief." }));
        string text = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, text);
        using JsonDocument routing = JsonDocument.Parse(text);
        using JsonDocument cli = Cli("routing", "-m", moe, "-p", "The cat sat", "--system", "Be brief.", "--json");
        AssertSameNumbers(cli.RootElement, routing.RootElement, 0, "routing");
        // Each token's renormalized expert weights sum to one.
        foreach (JsonElement entry in routing.RootElement.GetProperty("entries").EnumerateArray())
            Assert.Equal(1.0, entry.GetProperty("weights").EnumerateArray().Sum(w => w.GetDouble()), 1e-5);
        Assert.NotEqual(JsonValueKind.Null, routing.RootElement.GetProperty("differences_with_system").ValueKind);

        using HttpResponseMessage missing = await http.PostAsync("v1/inspect/routing", Json(new { system = "Be brief." }));
        Assert.Equal(HttpStatusCode.BadRequest, missing.StatusCode);
        using (JsonDocument error = JsonDocument.Parse(await missing.Content.ReadAsStringAsync()))
            Assert.Equal("prompt", error.RootElement.GetProperty("error").GetProperty("param").GetString());
        using HttpResponseMessage template = await http.PostAsync("v1/inspect/routing", Json(new { prompt = "The cat", template = "nope" }));
        Assert.Equal(HttpStatusCode.BadRequest, template.StatusCode);

        // The built-in model is dense.
        await AssertBadParam("v1/inspect/routing", """{"prompt":"The cat sat"}""", "model");
    }

    [Fact]
    public async Task Map_EqualsTheCliJson_WithPcaAndWithAConceptAxis()
    {
        string dir = Directory.CreateTempSubdirectory("nexttoken-map-").FullName;
        try
        {
            string[] prompts = ["Once upon a time there was a cat", "The little dog ran to the park"], happy = ["She was very happy", "He smiled and laughed"], sad = ["She was very sad", "He cried all day"];
            File.WriteAllLines(Path.Combine(dir, "prompts.txt"), prompts);
            File.WriteAllLines(Path.Combine(dir, "happy.txt"), happy);
            File.WriteAllLines(Path.Combine(dir, "sad.txt"), sad);

            using JsonDocument pca = await Post("v1/inspect/map", new { prompts, layer = 2 });
            using JsonDocument cliPca = Cli("map", "--prompts", Path.Combine(dir, "prompts.txt"), "--layer", "2", "--json");
            // The same power iteration from the same start: identical, up to float printing.
            AssertSameNumbers(cliPca.RootElement, pca.RootElement, 1e-9, "map (PCA)");

            using JsonDocument axis = await Post("v1/inspect/map", new { prompts, layer = 2, axis_a = happy, axis_b = sad });
            using JsonDocument cliAxis = Cli("map", "--prompts", Path.Combine(dir, "prompts.txt"), "--layer", "2", "--axis-a", Path.Combine(dir, "happy.txt"), "--axis-b", Path.Combine(dir, "sad.txt"), "--json");
            Assert.Equal("happy − sad", cliAxis.RootElement.GetProperty("x_axis").GetString());
            Assert.Equal("axis_a − axis_b", axis.RootElement.GetProperty("x_axis").GetString());
            AssertSameNumbers(cliAxis.RootElement.GetProperty("points"), axis.RootElement.GetProperty("points"), 1e-9, "map (concept axis)");
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public async Task Map_BadParameters_Are400NamingThem()
    {
        await AssertBadParam("v1/inspect/map", """{"layer":1}""", "prompts");
        await AssertBadParam("v1/inspect/map", """{"prompts":"one"}""", "prompts");
        await AssertBadParam("v1/inspect/map", """{"prompts":["one", ""]}""", "prompts");
        await AssertBadParam("v1/inspect/map", """{"prompts":["one"],"layer":99}""", "layer");
        await AssertBadParam("v1/inspect/map", """{"prompts":["one"],"axis_a":["good"]}""", "axis_b");
    }

    [Fact]
    public async Task NextExplained_EqualsTheCliJson_OneShape()
    {
        using JsonDocument server = await Post("v1/inspect/next", new { prompt = "Once upon a time", top = 5, explain = new { temperature = 0.7, top_k = 20 }, seed = 11 });
        using JsonDocument cli = Cli("next", "-p", "Once upon a time", "--top", "5", "--explain", "--temperature", "0.7", "--top-k", "20", "--seed", "11", "--json");
        AssertSameNumbers(cli.RootElement, server.RootElement, 1e-7, "next --explain");
        Assert.Equal(11UL, server.RootElement.GetProperty("explain").GetProperty("seed").GetUInt64());
        await AssertBadParam("v1/inspect/next", """{"prompt":"Once","routing":true}""", "routing");
    }

    [Fact]
    public async Task CurlStyleBody_FormContentType_IsReadAsJson()
    {
        // `curl -d '{…}'` declares application/x-www-form-urlencoded, as in the README's examples.
        foreach (string path in new[] { "v1/completions", "v1/inspect/next", "v1/inspect/attention" })
        {
            using var content = new StringContent("""{"prompt":"Once upon a time","max_tokens":2}""", Encoding.UTF8, "application/x-www-form-urlencoded");
            using HttpResponseMessage response = await fixture.Http.PostAsync(path, content);
            Assert.True(response.StatusCode == HttpStatusCode.OK, $"{path}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        }
    }
}
