using System.Security.Cryptography;
using NextToken.Hub;
using NextToken.Models;
using Xunit.Abstractions;

namespace NextToken.Tests;

/// <summary>The hub client against <see cref="TestHub"/>, which answers as the real hub and its CDN do.</summary>
public class HubTests(ITestOutputHelper output) : IDisposable
{
    private const string Repo = "test-org/gpt2-tiny";
    private readonly TempDir _cache = new();
    private readonly TestHub _hub = new(new()
    {
        [Repo] = Fixtures.Model("gpt2-tiny-hf"),
        ["test-org/gated"] = Fixtures.Model("gpt2-tiny-hf"),
    });
    private readonly List<TimeSpan> _delays = [];

    public void Dispose()
    {
        _hub.Dispose();
        _cache.Dispose();
    }

    /// <summary>A client whose backoff records its delays instead of sleeping.</summary>
    private HubClient Client(bool offline = false, string? token = null, string? endpoint = null, TimeSpan? readTimeout = null) =>
        new(new HubOptions(endpoint ?? _hub.Endpoint, _cache.Path, token, offline)
        {
            Delay = (wait, _) => { lock (_delays) _delays.Add(wait); return Task.CompletedTask; },
            ReadTimeout = readTimeout ?? TimeSpan.FromSeconds(10),
        });

    /// <summary>Collects the notices (retries, resumes) a download reports, synchronously.</summary>
    private sealed class Notices : IProgress<DownloadProgress>
    {
        public List<string> Messages { get; } = [];

        public void Report(DownloadProgress value)
        {
            if (value.Message is { } message) lock (Messages) Messages.Add($"{value.File}: {message}");
        }
    }

    private static HubModelId Id(string text) => HubModelId.TryParse(text, out HubModelId id) ? id : throw new ArgumentException(text);

    private string RepoDir => Path.Combine(_cache.Path, "models--test-org--gpt2-tiny");

    private static byte[] Fixture(string file) => File.ReadAllBytes(Fixtures.Model("gpt2-tiny-hf/" + file));

    /// <summary>Every entry under the repository folder, links shown with their targets, as huggingface_hub would leave it.</summary>
    private static List<string> Tree(string dir) =>
        Directory.GetFileSystemEntries(dir, "*", SearchOption.AllDirectories)
            .Select(p => (Relative: Path.GetRelativePath(dir, p).Replace('\\', '/'), Info: new FileInfo(p)))
            .Where(e => !Directory.Exists(e.Info.FullName) || e.Info.LinkTarget is not null)
            .Select(e => e.Info.LinkTarget is { } target ? $"{e.Relative} -> {target}" : e.Relative)
            .Order(StringComparer.Ordinal).ToList();

    [Fact]
    public async Task FirstDownload_LeavesHuggingFaceHubsCacheLayout_AndTheModelRuns()
    {
        using HubClient client = Client();
        string snapshot = await client.GetCheckpointAsync(Id(Repo));
        Assert.Equal(Path.Combine(RepoDir, "snapshots", TestHub.Commit), snapshot);
        // Blobs are named by the hub's ETag: SHA-256 for LFS files, the git blob SHA-1 for the others;
        // snapshot entries are relative links; files the repository lacks are marked in .no_exist.
        string Sha1(string file) => TestHub.GitBlobSha1(Fixture(file));
        string sha256 = Convert.ToHexStringLower(SHA256.HashData(Fixture("model.safetensors")));
        string c = TestHub.Commit;
        List<string> expected =
        [
            $".no_exist/{c}/generation_config.json", $".no_exist/{c}/special_tokens_map.json", $".no_exist/{c}/tokenizer.json", $".no_exist/{c}/tokenizer_config.json",
            $"blobs/{Sha1("config.json")}", $"blobs/{Sha1("merges.txt")}", $"blobs/{Sha1("vocab.json")}", $"blobs/{sha256}",
            "refs/main",
            $"snapshots/{c}/config.json -> ../../blobs/{Sha1("config.json")}",
            $"snapshots/{c}/merges.txt -> ../../blobs/{Sha1("merges.txt")}",
            $"snapshots/{c}/model.safetensors -> ../../blobs/{sha256}",
            $"snapshots/{c}/vocab.json -> ../../blobs/{Sha1("vocab.json")}",
        ];
        Assert.Equal(expected.Order(StringComparer.Ordinal), Tree(RepoDir));
        Assert.Equal(TestHub.Commit, File.ReadAllText(Path.Combine(RepoDir, "refs", "main")));
        Assert.True(File.Exists(Path.Combine(_cache.Path, ".locks", "models--test-org--gpt2-tiny", sha256 + ".lock")));
        // The nested onnx/ siblings are listed but not part of a checkpoint.
        Assert.DoesNotContain(_hub.Log, r => r.Path.Contains("onnx", StringComparison.Ordinal));
        using LanguageModel model = ModelLoader.Load(snapshot);
        ExpectedCase expectedCase = ExpectedOutputs.Load("gpt2-tiny.f32")[0];
        var logits = new float[model.VocabSize];
        model.Forward(model.CreateState(), expectedCase.Tokens, logits);
        float[] reference = expectedCase.ReadLastLogits();
        double maxDiff = logits.Zip(reference, (a, b) => Math.Abs((double)a - b)).Max();
        output.WriteLine($"gpt2-tiny-hf via the test hub: max |Δ| over the last position's logits {maxDiff:E3}");
        Assert.Equal(reference, logits, (a, b) => Tolerance.Within(b, a));
    }

    [Fact]
    public async Task Pull_Through429_503_AndACut_WithAToken_NoTokenReachesTheCdn_AndTheSecondRunAsksNothing()
    {
        _hub.Inject("hub", "/api/models/", Fault.TooManyRequests("7"));
        _hub.Inject("hub", "/resolve/" + TestHub.Commit + "/config.json", Fault.Unavailable());
        _hub.Inject("cdn", "/repos/", Fault.Cut);
        var notices = new Notices();
        using (HubClient client = Client(token: "hf_user_token"))
        {
            string snapshot = await client.GetCheckpointAsync(Id(Repo), notices);
            foreach (string file in (string[])["config.json", "vocab.json", "merges.txt", "model.safetensors"])
                Assert.Equal(Fixture(file), File.ReadAllBytes(Path.Combine(snapshot, file)));
        }
        Assert.Equal(0, _hub.PendingFaults);
        IReadOnlyList<HubRequest> log = _hub.Log;
        foreach (HubRequest r in log) output.WriteLine($"{r.Host} {r.Method} {r.Path} auth={r.Authorization} range={r.Range}");
        // Retry-After was honoured for the 429; the 503 waited the first backoff step.
        Assert.Equal([TimeSpan.FromSeconds(7), TimeSpan.FromSeconds(1)], _delays);
        // ... and each retry and resume was told to whoever shows the progress.
        foreach (string notice in notices.Messages) output.WriteLine("notice: " + notice);
        Assert.Equal(3, notices.Messages.Count);
        Assert.Contains(notices.Messages, m => m.StartsWith("test-org/gpt2-tiny: 127.0.0.1: HTTP 429; retrying in 7 s (1 of 5)", StringComparison.Ordinal));
        Assert.Contains(notices.Messages, m => m.StartsWith("config.json: 127.0.0.1: HTTP 503; retrying in 1 s (1 of 5)", StringComparison.Ordinal));
        Assert.Contains(notices.Messages, m => m.StartsWith("model.safetensors: ", StringComparison.Ordinal) && m.EndsWith($"resuming at byte {Fixture("model.safetensors").Length / 2} of {Fixture("model.safetensors").Length}", StringComparison.Ordinal));
        // The weights came from the CDN, resumed after the cut, and no request there carried the token.
        Assert.Contains(log, r => r.Host == "cdn" && r.Method == "GET" && r.Range is { } range && range != "bytes=0-");
        Assert.DoesNotContain(log, r => r.Host == "cdn" && r.Authorization);
        Assert.All(log.Where(r => r.Host == "hub"), r => Assert.True(r.Authorization, r.Path));
        // Small files followed the relative 307 into /api/resolve-cache/, still on the hub, still with the token.
        Assert.Contains(log, r => r.Host == "hub" && r.Method == "GET" && r.Path.StartsWith("/api/resolve-cache/models/test-org/gpt2-tiny/", StringComparison.Ordinal));
        int requests = _hub.Requests;
        using (HubClient again = Client(token: "hf_user_token"))
            Assert.True(File.Exists(Path.Combine(await again.GetCheckpointAsync(Id(Repo)), "model.safetensors")));
        Assert.Equal(requests, _hub.Requests);
    }

    [Fact]
    public async Task CutOffMidway_ResumesWithARangeRequest()
    {
        _hub.Inject("cdn", "/repos/", Fault.Cut);
        using HubClient client = Client();
        string snapshot = await client.GetCheckpointAsync(Id(Repo));
        Assert.Contains(_hub.RangeRequests, r => r.EndsWith(" bytes=" + Fixture("model.safetensors").Length / 2 + "-", StringComparison.Ordinal));
        Assert.Equal(Fixture("model.safetensors"), File.ReadAllBytes(Path.Combine(snapshot, "model.safetensors")));
        Assert.Empty(_delays); // a cut that brought data resumes at once
    }

    [Fact]
    public async Task StalledDownload_TimesOutPerRead_AndResumes()
    {
        // 1 s rather than less: the same timeout bounds the wait for the response's headers, which a loaded machine may need.
        _hub.Inject("cdn", "/repos/", Fault.Stall(8000));
        using HubClient client = Client(readTimeout: TimeSpan.FromSeconds(1));
        var clock = System.Diagnostics.Stopwatch.StartNew();
        string snapshot = await client.GetCheckpointAsync(Id(Repo));
        output.WriteLine($"stalled download finished in {clock.Elapsed.TotalSeconds:F2} s");
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(7), "the stalled read was not timed out");
        Assert.Contains(_hub.Log, r => r.Host == "cdn" && r.Range is { } range && range != "bytes=0-");
        Assert.Equal(Fixture("model.safetensors"), File.ReadAllBytes(Path.Combine(snapshot, "model.safetensors")));
    }

    [Fact]
    public async Task PersistentRateLimit_GivesUpAfterTheBoundedRetries_WithOneLine()
    {
        for (int i = 0; i < 6; i++) _hub.Inject("hub", "/api/models/", Fault.TooManyRequests(null));
        using HubClient client = Client();
        var error = await Assert.ThrowsAsync<NextTokenException>(() => client.GetCheckpointAsync(Id(Repo)));
        output.WriteLine(error.Message);
        Assert.Contains("rate-limited", error.Message);
        Assert.Contains("429", error.Message);
        Assert.Equal(6, _hub.Requests);
        // Exponential backoff without Retry-After, capped at 8 s.
        Assert.Equal([1, 2, 4, 8, 8], _delays.Select(d => d.TotalSeconds));
    }

    [Fact]
    public async Task UnreachableHub_FailsAfterTheBoundedRetries()
    {
        using HubClient client = Client(endpoint: "http://127.0.0.1:9"); // the discard port: nothing listens
        var error = await Assert.ThrowsAsync<NextTokenException>(() => client.GetCheckpointAsync(Id(Repo)));
        output.WriteLine(error.Message);
        Assert.Contains("cannot reach http://127.0.0.1:9", error.Message);
        Assert.Contains("HF_HUB_OFFLINE", error.Message);
        Assert.Equal(5, _delays.Count);
    }

    [Fact]
    public async Task SilentServer_TimesOutEachRequest_AndGivesUpAfterTheBoundedRetries()
    {
        // A listener that never accepts: the kernel completes the connection, nobody ever answers.
        var silent = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        silent.Start();
        try
        {
            int port = ((System.Net.IPEndPoint)silent.LocalEndpoint).Port;
            using var client = new HubClient(new HubOptions($"http://127.0.0.1:{port}", _cache.Path, null, false)
            {
                MetadataTimeout = TimeSpan.FromMilliseconds(200),
                Delay = (wait, _) => { lock (_delays) _delays.Add(wait); return Task.CompletedTask; },
            });
            var clock = System.Diagnostics.Stopwatch.StartNew();
            var error = await Assert.ThrowsAsync<NextTokenException>(() => client.GetCheckpointAsync(Id(Repo)));
            output.WriteLine($"{error.Message} ({clock.Elapsed.TotalSeconds:F2} s)");
            Assert.Contains("no answer within 0.2 s, 6 attempts", error.Message);
            Assert.Equal(5, _delays.Count);
        }
        finally
        {
            silent.Stop();
        }
    }

    [Fact]
    public async Task UnresolvableHostName_FailsAtOnce()
    {
        using HubClient client = Client(endpoint: "http://hub.invalid"); // .invalid never resolves (RFC 2606)
        var error = await Assert.ThrowsAsync<NextTokenException>(() => client.GetCheckpointAsync(Id(Repo)));
        output.WriteLine(error.Message);
        Assert.Contains("cannot reach http://hub.invalid", error.Message);
        Assert.Contains("1 attempt)", error.Message);
        Assert.Empty(_delays);
    }

    [Fact]
    public async Task LfsHashMismatch_IsRejectedAndNotUsed()
    {
        _hub.Corrupt.Add("model.safetensors");
        using HubClient client = Client();
        var error = await Assert.ThrowsAsync<NextTokenException>(() => client.GetCheckpointAsync(Id(Repo)));
        Assert.Contains("SHA-256", error.Message);
        Assert.False(File.Exists(Path.Combine(RepoDir, "snapshots", TestHub.Commit, "model.safetensors")));
        Assert.DoesNotContain(Directory.GetFiles(Path.Combine(RepoDir, "blobs")), f => new FileInfo(f).Length > 1_000_000);
    }

    [Fact]
    public async Task SmallFileHashMismatch_IsCheckedAgainstTheGitBlobSha1()
    {
        _hub.Corrupt.Add("config.json");
        using HubClient client = Client();
        var error = await Assert.ThrowsAsync<NextTokenException>(() => client.GetCheckpointAsync(Id(Repo)));
        output.WriteLine(error.Message);
        Assert.Contains("git blob SHA-1", error.Message);
        Assert.False(File.Exists(Path.Combine(RepoDir, "snapshots", TestHub.Commit, "config.json")));
    }

    [Fact]
    public async Task GatedRepository_WithoutToken_401_SaysGatedAndHfToken()
    {
        _hub.Gated.Add("test-org/gated");
        using HubClient client = Client();
        var error = await Assert.ThrowsAsync<NextTokenException>(() => client.GetCheckpointAsync(Id("test-org/gated")));
        output.WriteLine(error.Message);
        Assert.Contains("gated", error.Message);
        Assert.Contains("HF_TOKEN", error.Message);
        Assert.Contains("401 GatedRepo", error.Message);
    }

    [Fact]
    public async Task GatedRepository_TokenWithoutAccess_403_NamesTheToken_AndAGrantedTokenWorks()
    {
        _hub.Gated.Add("test-org/gated");
        using (HubClient client = Client(token: "hf_not_granted"))
        {
            var error = await Assert.ThrowsAsync<NextTokenException>(() => client.GetCheckpointAsync(Id("test-org/gated")));
            output.WriteLine(error.Message);
            Assert.Contains("403 GatedRepo", error.Message);
            Assert.Contains("token from HF_TOKEN has no access", error.Message);
        }
        using (HubClient granted = Client(token: TestHub.GrantedToken))
            Assert.True(File.Exists(Path.Combine(await granted.GetCheckpointAsync(Id("test-org/gated")), "model.safetensors")));
    }

    [Fact]
    public async Task TypoInTheRepositoryName_IsNotFound_NotGated()
    {
        using HubClient client = Client();
        var error = await Assert.ThrowsAsync<NextTokenException>(() => client.GetCheckpointAsync(Id("test-org/gpt2-tinny")));
        output.WriteLine(error.Message);
        Assert.Contains("repository test-org/gpt2-tinny not found", error.Message);
        Assert.Contains("RepoNotFound", error.Message);
        Assert.DoesNotContain("gated", error.Message);
        Assert.DoesNotContain("\n", error.Message);
    }

    [Fact]
    public async Task RenamedRepository_SameHostRedirect_IsFollowedWithTheToken()
    {
        _hub.Renamed["old-org/gpt2-tiny"] = Repo;
        using HubClient client = Client(token: "hf_user_token");
        string snapshot = await client.GetCheckpointAsync(Id("old-org/gpt2-tiny"));
        Assert.Equal(Fixture("config.json"), File.ReadAllBytes(Path.Combine(snapshot, "config.json")));
        Assert.Contains(_hub.Log, r => r.Host == "hub" && r.Method == "HEAD" && r.Path.StartsWith("/old-org/gpt2-tiny/resolve/", StringComparison.Ordinal));
        Assert.All(_hub.Log.Where(r => r.Host == "hub"), r => Assert.True(r.Authorization, r.Path));
        Assert.DoesNotContain(_hub.Log, r => r.Host == "cdn" && r.Authorization);
    }

    [Fact]
    public async Task InvalidToken_IsReportedAsSuch_NotAsAMissingRepository()
    {
        using HubClient client = Client(token: TestHub.InvalidToken);
        var error = await Assert.ThrowsAsync<NextTokenException>(() => client.GetCheckpointAsync(Id(Repo)));
        output.WriteLine(error.Message);
        Assert.Contains("rejected the token from HF_TOKEN as invalid", error.Message);
        Assert.DoesNotContain("not found", error.Message);
    }

    [Fact]
    public async Task UnknownRevision_AndVanishedEntry_AreNamed()
    {
        using HubClient client = Client();
        var revision = await Assert.ThrowsAsync<NextTokenException>(() => client.GetCheckpointAsync(Id(Repo + "@v9")));
        output.WriteLine(revision.Message);
        Assert.Contains("has no revision 'v9'", revision.Message);
        Assert.Contains("RevisionNotFound", revision.Message);
        _hub.Vanished.Add("merges.txt");
        var entry = await Assert.ThrowsAsync<NextTokenException>(() => client.GetFileAsync(Id(Repo), "merges.txt"));
        output.WriteLine(entry.Message);
        Assert.Contains("has no file 'merges.txt'", entry.Message);
        Assert.Contains("EntryNotFound", entry.Message);
        var unlisted = await Assert.ThrowsAsync<NextTokenException>(() => client.GetFileAsync(Id(Repo), "model.gguf"));
        Assert.Contains("has no file 'model.gguf'", unlisted.Message);
    }

    [Fact]
    public async Task PullRequestRevision_IsEscapedAsOneSegment_AndRecordedUnderRefs()
    {
        using HubClient client = Client();
        string snapshot = await client.GetCheckpointAsync(Id(Repo + "@refs/pr/1"));
        Assert.Equal(Path.Combine(RepoDir, "snapshots", TestHub.PrCommit), snapshot);
        Assert.Contains(_hub.Log, r => r.Path == "/api/models/test-org/gpt2-tiny/revision/refs%2Fpr%2F1");
        Assert.Equal(TestHub.PrCommit, File.ReadAllText(Path.Combine(RepoDir, "refs", "refs", "pr", "1")));
        int requests = _hub.Requests;
        using HubClient offline = Client(offline: true);
        Assert.Equal(snapshot, await offline.GetCheckpointAsync(Id(Repo + "@refs/pr/1")));
        Assert.Equal(requests, _hub.Requests);
    }

    [Fact]
    public async Task NestedFile_IsLinkedRelativelyFromItsFolder()
    {
        using HubClient client = Client();
        string path = await client.GetFileAsync(Id(Repo), "onnx/decoder_model.onnx");
        Assert.Equal(Path.Combine(RepoDir, "snapshots", TestHub.Commit, "onnx", "decoder_model.onnx"), path);
        Assert.StartsWith("../../../blobs/", new FileInfo(path).LinkTarget);
        Assert.Equal(_hub.Nested["onnx/decoder_model.onnx"], File.ReadAllBytes(path));
        Assert.Contains(_hub.Log, r => r.Host == "cdn"); // .onnx is an LFS file
    }

    [Fact]
    public async Task DanglingSnapshotLink_CountsAsMissing_AndIsDownloadedAgain()
    {
        using (HubClient first = Client()) await first.GetCheckpointAsync(Id(Repo));
        string weights = Path.Combine(RepoDir, "snapshots", TestHub.Commit, "model.safetensors");
        File.Delete(new FileInfo(weights).ResolveLinkTarget(true)!.FullName); // the blob is gone, the link stays
        using (HubClient offline = Client(offline: true))
        {
            var error = await Assert.ThrowsAsync<NextTokenException>(() => offline.GetCheckpointAsync(Id(Repo)));
            Assert.Contains("missing model.safetensors", error.Message);
        }
        int requests = _hub.Requests;
        using HubClient again = Client();
        await again.GetCheckpointAsync(Id(Repo));
        Assert.True(_hub.Requests > requests);
        Assert.Equal(Fixture("model.safetensors"), File.ReadAllBytes(weights));
    }

    [Fact]
    public async Task SnapshotWithoutTheRepositorysTokenizerFiles_IsNotComplete()
    {
        using (HubClient first = Client()) await first.GetCheckpointAsync(Id(Repo));
        string snapshot = Path.Combine(RepoDir, "snapshots", TestHub.Commit);
        // As another tool might leave it: config and weights only, no record of what the repository lacks.
        File.Delete(Path.Combine(snapshot, "vocab.json"));
        File.Delete(Path.Combine(snapshot, "merges.txt"));
        Directory.Delete(Path.Combine(RepoDir, ".no_exist"), recursive: true);
        using (HubClient offline = Client(offline: true)) Assert.Equal(snapshot, await offline.GetCheckpointAsync(Id(Repo))); // usable from --tokens
        int requests = _hub.Requests;
        using HubClient online = Client();
        await online.GetCheckpointAsync(Id(Repo));
        Assert.True(_hub.Requests > requests);
        Assert.True(File.Exists(Path.Combine(snapshot, "vocab.json")) && File.Exists(Path.Combine(snapshot, "merges.txt")));
        Assert.DoesNotContain(_hub.Log.Skip(requests), r => r.Path.Contains("model.safetensors", StringComparison.Ordinal) || r.Host == "cdn");
    }

    [Fact]
    public async Task SymbolicLinksRefused_WithAPermissionError_FallsBackToCopies()
    {
        using var client = new HubClient(new HubOptions(_hub.Endpoint, _cache.Path, null, false))
        {
            CreateSymbolicLink = (_, _) => throw new UnauthorizedAccessException("Operation not permitted"),
        };
        string snapshot = await client.GetCheckpointAsync(Id(Repo));
        var weights = new FileInfo(Path.Combine(snapshot, "model.safetensors"));
        Assert.Null(weights.LinkTarget);
        Assert.Equal(Fixture("model.safetensors"), File.ReadAllBytes(weights.FullName));
    }

    [Fact]
    public async Task BlobLockHeldByAnotherProcess_DownloadWaitsForIt()
    {
        string sha256 = Convert.ToHexStringLower(SHA256.HashData(Fixture("model.safetensors")));
        string lockPath = Path.Combine(_cache.Path, ".locks", "models--test-org--gpt2-tiny", sha256 + ".lock");
        Directory.CreateDirectory(Path.GetDirectoryName(lockPath)!);
        Task<string> download;
        using HubClient client = Client();
        using (new FileStream(lockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None))
        {
            download = client.GetCheckpointAsync(Id(Repo));
            await Task.Delay(1500);
            Assert.False(download.IsCompleted);
            Assert.DoesNotContain(_hub.Log, r => r.Host == "cdn");
        }
        await download;
        Assert.Single(_hub.Log, r => r.Host == "cdn" && r.Method == "GET");
    }

    [Fact]
    public async Task TwoClientsAtOnce_DownloadTheBlobOnce()
    {
        using HubClient a = Client(), b = Client();
        string[] snapshots = await Task.WhenAll(a.GetCheckpointAsync(Id(Repo)), b.GetCheckpointAsync(Id(Repo)));
        Assert.Equal(snapshots[0], snapshots[1]);
        Assert.Single(_hub.Log, r => r.Host == "cdn" && r.Method == "GET");
        Assert.Equal(Fixture("model.safetensors"), File.ReadAllBytes(Path.Combine(snapshots[0], "model.safetensors")));
    }

    [Fact]
    public async Task Offline_EmptyCache_NamesTheMissingFiles()
    {
        int requests = _hub.Requests;
        using HubClient client = Client(offline: true);
        var error = await Assert.ThrowsAsync<NextTokenException>(() => client.GetCheckpointAsync(Id(Repo)));
        Assert.Contains("HF_HUB_OFFLINE", error.Message);
        Assert.Contains("config.json", error.Message);
        Assert.Contains("model.safetensors", error.Message);
        Assert.Equal(requests, _hub.Requests);
    }

    [Theory]
    [InlineData("1", true)]
    [InlineData("true", true)]
    [InlineData("YES", true)]
    [InlineData("On", true)]
    [InlineData("0", false)]
    [InlineData("no", false)]
    [InlineData("", false)]
    public void Offline_AcceptsHuggingFaceTruthValues(string value, bool offline)
    {
        Assert.Equal(offline, HubOptions.FromEnvironment(Variables(new() { ["HF_HUB_OFFLINE"] = value })).Offline);
        Assert.Equal(offline, HubOptions.FromEnvironment(Variables(new() { ["TRANSFORMERS_OFFLINE"] = value })).Offline);
    }

    private static Func<string, string?> Variables(Dictionary<string, string> values) => name => values.GetValueOrDefault(name);

    [Fact]
    public void Options_CacheAndTokenLocations_FollowHuggingFaceHub()
    {
        using var home = new TempDir();
        var xdg = HubOptions.FromEnvironment(Variables(new() { ["HOME"] = "/home/u", ["XDG_CACHE_HOME"] = "/x" }));
        Assert.Equal(Path.Combine("/x", "huggingface", "hub"), xdg.CacheDirectory);
        Assert.Equal(Path.Combine("/home/u", ".cache", "huggingface", "hub"), HubOptions.FromEnvironment(Variables(new() { ["HOME"] = "/home/u" })).CacheDirectory);
        Assert.Equal("/c", HubOptions.FromEnvironment(Variables(new() { ["HF_HOME"] = "/h", ["HF_HUB_CACHE"] = "/c" })).CacheDirectory);
        // The token: HF_TOKEN, then HUGGING_FACE_HUB_TOKEN, then $HF_HOME/token as `hf auth login` writes it.
        File.WriteAllText(home.File("token"), "hf_from_file\n");
        var fromFile = HubOptions.FromEnvironment(Variables(new() { ["HF_HOME"] = home.Path }));
        Assert.Equal(("hf_from_file", home.File("token")), (fromFile.Token, fromFile.TokenSource));
        var legacy = HubOptions.FromEnvironment(Variables(new() { ["HF_HOME"] = home.Path, ["HUGGING_FACE_HUB_TOKEN"] = "hf_legacy" }));
        Assert.Equal(("hf_legacy", "HUGGING_FACE_HUB_TOKEN"), (legacy.Token, legacy.TokenSource));
        var first = HubOptions.FromEnvironment(Variables(new() { ["HF_HOME"] = home.Path, ["HUGGING_FACE_HUB_TOKEN"] = "hf_legacy", ["HF_TOKEN"] = " hf_main " }));
        Assert.Equal(("hf_main", "HF_TOKEN"), (first.Token, first.TokenSource));
        Assert.Null(HubOptions.FromEnvironment(Variables(new() { ["HF_HOME"] = Path.Combine(home.Path, "none") })).Token);
        var timeouts = HubOptions.FromEnvironment(Variables(new() { ["HF_HUB_ETAG_TIMEOUT"] = "3", ["HF_HUB_DOWNLOAD_TIMEOUT"] = "2.5" }));
        Assert.Equal((TimeSpan.FromSeconds(3), TimeSpan.FromSeconds(2.5)), (timeouts.MetadataTimeout, timeouts.ReadTimeout));
    }

    [Theory]
    [InlineData("\"abc123\"", "abc123")]
    [InlineData("W/\"abc-123\"", "abc-123")]
    [InlineData("abc", "abc")]
    [InlineData("\"../x\"", null)]
    [InlineData("\"\"", null)]
    public void Etag_IsNormalizedLikeHuggingFaceHub(string header, string? blob) => Assert.Equal(blob, HubClient.NormalizeEtag(header));

    [Theory]
    [InlineData("openai-community/gpt2", "openai-community/gpt2", "main")]
    [InlineData("org/name@v1.0", "org/name", "v1.0")]
    [InlineData("org/name@refs/pr/1", "org/name", "refs/pr/1")]
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
    [InlineData("org/name@refs//x")]
    [InlineData("org/name@/abs")]
    public void ModelId_RejectsWhatIsNotARepository(string text) => Assert.False(HubModelId.TryParse(text, out _));
}
