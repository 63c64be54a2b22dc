using System.Text.Json;

namespace NextToken.Tests;

/// <summary>Models by name through the CLI, against the local test hub.</summary>
public class HubCliTests : IDisposable
{
    private readonly TempDir _home = new();
    private readonly TestHub _hub = new(new()
    {
        ["test-org/gpt2-tiny"] = Fixtures.Model("gpt2-tiny-hf"),
        ["test-org/gated"] = Fixtures.Model("gpt2-tiny-hf"),
    });

    public void Dispose()
    {
        _hub.Dispose();
        _home.Dispose();
    }

    private (int ExitCode, string Stdout, string Stderr) Run(Dictionary<string, string>? extra, params string[] args)
    {
        // Cleared so a token or cache setting of whoever runs the tests cannot leak in.
        var environment = new Dictionary<string, string>
        {
            ["HF_ENDPOINT"] = _hub.Endpoint, ["HF_HOME"] = _home.Path, ["HF_HUB_OFFLINE"] = "0", ["TRANSFORMERS_OFFLINE"] = "", ["NEXTTOKEN_MODEL"] = "",
            ["HF_TOKEN"] = "", ["HUGGING_FACE_HUB_TOKEN"] = "", ["HF_TOKEN_PATH"] = "", ["HF_HUB_CACHE"] = "", ["HUGGINGFACE_HUB_CACHE"] = "",
        };
        foreach (var (k, v) in extra ?? []) environment[k] = v;
        return CliTests.RunWith(null, environment, args);
    }

    [Fact]
    public void Next_ModelByName_DownloadsOnceAndMatchesTheReference()
    {
        ExpectedCase expected = ExpectedOutputs.Load("gpt2-tiny.f32")[0];
        string tokens = string.Join(',', expected.Tokens);
        var (code, stdout, stderr) = Run(null, "next", "--model", "test-org/gpt2-tiny", "--tokens", tokens, "--json");
        Assert.True(code == 0, stderr);
        using var doc = JsonDocument.Parse(stdout);
        Assert.Equal(expected.Positions[^1].Top[0].Id, doc.RootElement.GetProperty("top")[0].GetProperty("id").GetInt32());
        int requests = _hub.Requests;
        var again = Run(new() { ["HF_HUB_OFFLINE"] = "1" }, "next", "--model", "test-org/gpt2-tiny", "--tokens", tokens, "--json");
        Assert.True(again.ExitCode == 0, again.Stderr);
        Assert.Equal(stdout, again.Stdout);
        Assert.Equal(requests, _hub.Requests);
    }

    [Fact]
    public void DefaultModel_FromNextTokenModel_IsUsedWithoutModelOption()
    {
        var (code, stdout, stderr) = Run(new() { ["NEXTTOKEN_MODEL"] = "test-org/gpt2-tiny" }, "next", "The cat sat on the", "--json");
        Assert.True(code == 0, stderr);
        using var doc = JsonDocument.Parse(stdout);
        Assert.Equal([464, 3797, 3332, 319, 262], doc.RootElement.GetProperty("tokens").EnumerateArray().Select(e => e.GetInt32()));
    }

    [Fact]
    public void PullThenModels_ListsTheCachedModel()
    {
        var pull = Run(null, "pull", "test-org/gpt2-tiny");
        Assert.True(pull.ExitCode == 0, pull.Stderr);
        Assert.EndsWith(Path.Combine("models--test-org--gpt2-tiny", "snapshots", TestHub.Commit), pull.Stdout.Trim());
        var models = Run(null, "models", "--json");
        Assert.True(models.ExitCode == 0, models.Stderr);
        using var doc = JsonDocument.Parse(models.Stdout);
        JsonElement model = doc.RootElement.GetProperty("models").EnumerateArray().Single();
        Assert.Equal("test-org/gpt2-tiny", model.GetProperty("id").GetString());
        Assert.Contains("model.safetensors", model.GetProperty("files").EnumerateArray().Select(f => f.GetString()));
        var pr = Run(null, "pull", "test-org/gpt2-tiny@refs/pr/1");
        Assert.True(pr.ExitCode == 0, pr.Stderr);
        using var again = JsonDocument.Parse(Run(null, "models", "--json").Stdout);
        Assert.Equal(["main→01234567", "refs/pr/1→89abcdef"],
            again.RootElement.GetProperty("models")[0].GetProperty("revisions").EnumerateArray().Select(r => r.GetString()));
    }

    [Fact]
    public void Pull_ThroughA429_A503_AndACut_KeepsTheTokenOffTheCdn_AndTheSecondPullAsksNothing()
    {
        // Retry-After: 0 keeps the test from sleeping; the backoff itself is tested in HubTests with an injected delay.
        _hub.Inject("hub", "/api/models/", Fault.TooManyRequests("0"));
        _hub.Inject("hub", "/resolve/", Fault.Unavailable("0"));
        _hub.Inject("cdn", "/repos/", Fault.Cut);
        var token = new Dictionary<string, string> { ["HF_TOKEN"] = "hf_user_token" };
        var pull = Run(token, "pull", "test-org/gpt2-tiny");
        Assert.True(pull.ExitCode == 0, pull.Stderr);
        string snapshot = pull.Stdout.Trim();
        Assert.Contains("HTTP 429; retrying in 0 s", pull.Stderr);
        Assert.Contains("HTTP 503; retrying in 0 s", pull.Stderr);
        Assert.Contains("resuming at byte", pull.Stderr);
        Assert.Equal(Path.Combine(_home.Path, "hub", "models--test-org--gpt2-tiny", "snapshots", TestHub.Commit), snapshot);
        Assert.Equal(File.ReadAllBytes(Fixtures.Model("gpt2-tiny-hf/model.safetensors")), File.ReadAllBytes(Path.Combine(snapshot, "model.safetensors")));
        Assert.Equal(0, _hub.PendingFaults);
        Assert.Contains(_hub.Log, r => r.Host == "cdn" && r.Range is { } range && range != "bytes=0-");
        Assert.DoesNotContain(_hub.Log, r => r.Host == "cdn" && r.Authorization);
        Assert.All(_hub.Log.Where(r => r.Host == "hub"), r => Assert.True(r.Authorization, r.Path));
        int requests = _hub.Requests;
        var again = Run(token, "pull", "test-org/gpt2-tiny");
        Assert.True(again.ExitCode == 0, again.Stderr);
        Assert.Equal(snapshot, again.Stdout.Trim());
        Assert.Equal(requests, _hub.Requests);
    }

    [Fact]
    public void TokenFromTheLoginFile_OpensAGatedModel()
    {
        _hub.Gated.Add("test-org/gated");
        File.WriteAllText(Path.Combine(_home.Path, "token"), TestHub.GrantedToken + "\n"); // what `hf auth login` writes
        var pull = Run(null, "pull", "test-org/gated");
        Assert.True(pull.ExitCode == 0, pull.Stderr);
        Assert.True(File.Exists(Path.Combine(pull.Stdout.Trim(), "model.safetensors")));
    }

    [Fact]
    public void TypoInTheModelName_SaysNotFound_NotGated()
    {
        var (code, _, stderr) = Run(null, "pull", "test-org/gpt2-tinny");
        Assert.Equal(1, code);
        Assert.Contains("repository test-org/gpt2-tinny not found", stderr);
        Assert.DoesNotContain("gated", stderr);
    }

    [Fact]
    public void GatedModel_ExitsWithAMessageAboutHfToken()
    {
        _hub.Gated.Add("test-org/gated");
        var (code, _, stderr) = Run(null, "next", "--model", "test-org/gated", "--tokens", "1");
        Assert.Equal(1, code);
        Assert.Contains("HF_TOKEN", stderr);
    }

    [Fact]
    public void Offline_EmptyCache_NamesWhatIsMissing()
    {
        var (code, _, stderr) = Run(new() { ["HF_HUB_OFFLINE"] = "1" }, "next", "--model", "test-org/gpt2-tiny", "--tokens", "1");
        Assert.Equal(1, code);
        Assert.Contains("missing config.json, model.safetensors", stderr);
    }

    [Fact]
    public void LocalCheckpointWithVocab_TokenizesAndRuns()
    {
        var (code, stdout, stderr) = Run(null, "next", "--model", Fixtures.Model("llama-tiny-hf"), "--vocab", Fixtures.Vocab("ggml-vocab-llama-spm.gguf"),
            "--prompt", "The cat sat", "--add-bos", "--json");
        Assert.True(code == 0, stderr);
        using var doc = JsonDocument.Parse(stdout);
        Assert.Equal(1, doc.RootElement.GetProperty("tokens")[0].GetInt32());
    }
}
