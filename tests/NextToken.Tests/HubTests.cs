using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using NextToken.Hub;
using NextToken.Models;

namespace NextToken.Tests;

/// <summary>
/// A stand-in for the Hugging Face hub on 127.0.0.1, serving fixture checkpoints under the hub's
/// URL scheme, with switches to cut a download off, corrupt a file, or refuse a gated repository.
/// </summary>
public sealed class TestHub : IDisposable
{
    public const string Commit = "0123456789abcdef0123456789abcdef01234567";
    private readonly HttpListener _listener = new();
    private readonly Dictionary<string, string> _repositories; // repo → local directory
    private readonly Task _loop;
    private int _requests;

    public TestHub(Dictionary<string, string> repositories)
    {
        _repositories = repositories;
        int port = FreePort();
        Endpoint = $"http://127.0.0.1:{port}";
        _listener.Prefixes.Add(Endpoint + "/");
        _listener.Start();
        _loop = Task.Run(Serve);
    }

    public string Endpoint { get; }
    public int Requests => _requests;
    public List<string> RangeRequests { get; } = [];
    public HashSet<string> CutOffOnce { get; } = [];
    public HashSet<string> Corrupt { get; } = [];
    public HashSet<string> Gated { get; } = [];

    private static int FreePort()
    {
        var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        int port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        return port;
    }

    private async Task Serve()
    {
        while (_listener.IsListening)
        {
            HttpListenerContext context;
            try { context = await _listener.GetContextAsync(); }
            catch (Exception) { return; }
            Interlocked.Increment(ref _requests);
            try { Handle(context); }
            catch (Exception) { try { context.Response.Abort(); } catch (Exception) { } }
        }
    }

    private void Handle(HttpListenerContext context)
    {
        HttpListenerRequest request = context.Request;
        HttpListenerResponse response = context.Response;
        string path = Uri.UnescapeDataString(request.Url!.AbsolutePath);
        string[] parts = path.Trim('/').Split('/');
        if (parts.Length >= 5 && parts[0] == "api" && parts[1] == "models")
        {
            string repo = parts[2] + "/" + parts[3];
            if (Refuse(repo, response)) return;
            if (!_repositories.TryGetValue(repo, out string? dir)) { Status(response, 404); return; }
            string files = string.Join(",", Directory.GetFiles(dir).Select(f => $"{{\"rfilename\":\"{Path.GetFileName(f)}\"}}"));
            Send(response, Encoding.UTF8.GetBytes($"{{\"id\":\"{repo}\",\"sha\":\"{Commit}\",\"siblings\":[{files}]}}"), "application/json");
            return;
        }
        if (parts.Length >= 5 && parts[2] == "resolve")
        {
            string repo = parts[0] + "/" + parts[1], file = string.Join('/', parts[4..]);
            if (Refuse(repo, response)) return;
            if (!_repositories.TryGetValue(repo, out string? dir) || !File.Exists(Path.Combine(dir, file))) { Status(response, 404); return; }
            byte[] content = File.ReadAllBytes(Path.Combine(dir, file));
            string sha256 = Convert.ToHexStringLower(SHA256.HashData(content));
            bool lfs = file.EndsWith(".safetensors", StringComparison.Ordinal);
            response.Headers["ETag"] = "\"" + (lfs ? sha256 : sha256[..40]) + "\"";
            response.Headers["X-Repo-Commit"] = Commit;
            response.Headers["Accept-Ranges"] = "bytes";
            if (Corrupt.Contains(file)) content = content.Select((b, i) => i == content.Length / 2 ? (byte)(b ^ 0xFF) : b).ToArray();
            if (request.HttpMethod == "HEAD")
            {
                response.ContentLength64 = content.Length;
                response.Close();
                return;
            }
            long from = 0;
            if (request.Headers["Range"] is { } range && range.StartsWith("bytes=", StringComparison.Ordinal))
            {
                lock (RangeRequests) RangeRequests.Add($"{file} {range}");
                from = long.Parse(range[6..].TrimEnd('-'));
                response.StatusCode = 206;
                response.Headers["Content-Range"] = $"bytes {from}-{content.Length - 1}/{content.Length}";
            }
            byte[] body = content[(int)from..];
            response.ContentLength64 = body.Length;
            bool cut;
            lock (CutOffOnce) cut = CutOffOnce.Remove(file);
            if (cut)
            {
                response.OutputStream.Write(body, 0, body.Length / 2);
                response.OutputStream.Flush();
                response.Abort(); // the connection drops midway
                return;
            }
            response.OutputStream.Write(body);
            response.Close();
            return;
        }
        Status(response, 404);
    }

    private bool Refuse(string repo, HttpListenerResponse response)
    {
        if (!Gated.Contains(repo)) return false;
        Status(response, 401);
        return true;
    }

    private static void Status(HttpListenerResponse response, int code)
    {
        response.StatusCode = code;
        response.Close();
    }

    private static void Send(HttpListenerResponse response, byte[] body, string type)
    {
        response.ContentType = type;
        response.ContentLength64 = body.Length;
        response.OutputStream.Write(body);
        response.Close();
    }

    public void Dispose()
    {
        _listener.Stop();
        _listener.Close();
        try { _loop.Wait(2000); } catch (AggregateException) { }
    }
}

public class HubTests : IDisposable
{
    private readonly TempDir _cache = new();
    private readonly TestHub _hub = new(new()
    {
        ["test-org/gpt2-tiny"] = Fixtures.Model("gpt2-tiny-hf"),
        ["test-org/gated"] = Fixtures.Model("gpt2-tiny-hf"),
    });

    public void Dispose()
    {
        _hub.Dispose();
        _cache.Dispose();
    }

    private HubClient Client(bool offline = false, string? token = null) => new(new HubOptions(_hub.Endpoint, _cache.Path, token, offline));

    private static HubModelId Id(string text) => HubModelId.TryParse(text, out HubModelId id) ? id : throw new ArgumentException(text);

    [Fact]
    public async Task FirstDownload_FillsTheStandardCacheLayout_AndTheModelRuns()
    {
        using HubClient client = Client();
        string snapshot = await client.GetCheckpointAsync(Id("test-org/gpt2-tiny"));
        string repo = Path.Combine(_cache.Path, "models--test-org--gpt2-tiny");
        Assert.Equal(Path.Combine(repo, "snapshots", TestHub.Commit), snapshot);
        Assert.Equal(TestHub.Commit, File.ReadAllText(Path.Combine(repo, "refs", "main")));
        var weights = new FileInfo(Path.Combine(snapshot, "model.safetensors"));
        Assert.NotNull(weights.LinkTarget);
        string sha = Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(Fixtures.Model("gpt2-tiny-hf/model.safetensors"))));
        Assert.True(File.Exists(Path.Combine(repo, "blobs", sha)));
        Assert.True(File.Exists(Path.Combine(snapshot, "vocab.json")) && File.Exists(Path.Combine(snapshot, "merges.txt")));
        using LanguageModel model = ModelLoader.Load(snapshot);
        ExpectedCase expected = ExpectedOutputs.Load("gpt2-tiny.f32")[0];
        var logits = new float[model.VocabSize];
        model.Forward(model.CreateState(), expected.Tokens, logits);
        Assert.Equal(expected.ReadLastLogits(), logits, (a, b) => Tolerance.Within(b, a));
    }

    [Fact]
    public async Task SecondRun_UsesTheCacheWithoutNetwork()
    {
        using (HubClient first = Client()) await first.GetCheckpointAsync(Id("test-org/gpt2-tiny"));
        int requests = _hub.Requests;
        using HubClient second = Client();
        string snapshot = await second.GetCheckpointAsync(Id("test-org/gpt2-tiny"));
        Assert.Equal(requests, _hub.Requests);
        Assert.True(File.Exists(Path.Combine(snapshot, "model.safetensors")));
    }

    [Fact]
    public async Task CutOffMidway_ResumesWithARangeRequest()
    {
        _hub.CutOffOnce.Add("model.safetensors");
        using HubClient client = Client();
        string snapshot = await client.GetCheckpointAsync(Id("test-org/gpt2-tiny"));
        Assert.Contains(_hub.RangeRequests, r => r.StartsWith("model.safetensors bytes=", StringComparison.Ordinal) && !r.EndsWith("=0-", StringComparison.Ordinal));
        Assert.Equal(File.ReadAllBytes(Fixtures.Model("gpt2-tiny-hf/model.safetensors")), File.ReadAllBytes(Path.Combine(snapshot, "model.safetensors")));
    }

    [Fact]
    public async Task HashMismatch_IsRejectedAndNotUsed()
    {
        _hub.Corrupt.Add("model.safetensors");
        using HubClient client = Client();
        var error = await Assert.ThrowsAsync<NextTokenException>(() => client.GetCheckpointAsync(Id("test-org/gpt2-tiny")));
        Assert.Contains("SHA-256", error.Message);
        string repo = Path.Combine(_cache.Path, "models--test-org--gpt2-tiny");
        Assert.False(File.Exists(Path.Combine(repo, "snapshots", TestHub.Commit, "model.safetensors")));
        Assert.DoesNotContain(Directory.GetFiles(Path.Combine(repo, "blobs")), f => new FileInfo(f).Length > 1_000_000);
    }

    [Fact]
    public async Task GatedRepository_401_TellsAboutHfToken()
    {
        _hub.Gated.Add("test-org/gated");
        using HubClient client = Client();
        var error = await Assert.ThrowsAsync<NextTokenException>(() => client.GetCheckpointAsync(Id("test-org/gated")));
        Assert.Contains("HF_TOKEN", error.Message);
        Assert.Contains("401", error.Message);
    }

    [Fact]
    public async Task Offline_EmptyCache_NamesTheMissingFiles()
    {
        int requests = _hub.Requests;
        using HubClient client = Client(offline: true);
        var error = await Assert.ThrowsAsync<NextTokenException>(() => client.GetCheckpointAsync(Id("test-org/gpt2-tiny")));
        Assert.Contains("HF_HUB_OFFLINE", error.Message);
        Assert.Contains("config.json", error.Message);
        Assert.Contains("model.safetensors", error.Message);
        Assert.Equal(requests, _hub.Requests);
    }

    [Theory]
    [InlineData("openai-community/gpt2", "openai-community/gpt2", "main")]
    [InlineData("org/name@v1.0", "org/name", "v1.0")]
    public void ModelId_Parses(string text, string repo, string revision)
    {
        Assert.True(HubModelId.TryParse(text, out HubModelId id));
        Assert.Equal(repo, id.Repository);
        Assert.Equal(revision, id.Revision);
    }

    [Theory]
    [InlineData("../etc/passwd")]
    [InlineData("noslash")]
    [InlineData("org/../x")]
    public void ModelId_RejectsWhatIsNotARepository(string text) => Assert.False(HubModelId.TryParse(text, out _));
}
