using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace NextToken.Hub;

/// <summary>Where and how to reach the Hugging Face hub, from the same environment variables its Python client reads.</summary>
public sealed record HubOptions(string Endpoint, string CacheDirectory, string? Token, bool Offline)
{
    public const string DefaultEndpoint = "https://huggingface.co";

    public static HubOptions FromEnvironment()
    {
        string home = Environment.GetEnvironmentVariable("HF_HOME") is { Length: > 0 } h
            ? h : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "huggingface");
        string cache = Environment.GetEnvironmentVariable("HF_HUB_CACHE") is { Length: > 0 } c ? c : Path.Combine(home, "hub");
        string? offline = Environment.GetEnvironmentVariable("HF_HUB_OFFLINE");
        return new HubOptions(
            (Environment.GetEnvironmentVariable("HF_ENDPOINT") is { Length: > 0 } e ? e : DefaultEndpoint).TrimEnd('/'),
            cache,
            Environment.GetEnvironmentVariable("HF_TOKEN") is { Length: > 0 } t ? t : null,
            offline is "1" or "true" or "TRUE" or "yes" or "ON" or "on");
    }
}

/// <summary>A file download in progress.</summary>
public readonly record struct DownloadProgress(string File, long Downloaded, long Total);

/// <summary>A model reference <c>ORG/NAME[@REVISION]</c>.</summary>
public sealed record HubModelId(string Repository, string Revision)
{
    private static readonly Regex Pattern = new(@"^(?<repo>[A-Za-z0-9][\w.\-]*/[\w.\-]+)(@(?<rev>[\w.\-/]+))?$");

    public static bool TryParse(string text, out HubModelId id)
    {
        Match m = Pattern.Match(text);
        id = m.Success ? new HubModelId(m.Groups["repo"].Value, m.Groups["rev"].Success ? m.Groups["rev"].Value : "main") : null!;
        return m.Success && !text.Contains("..", StringComparison.Ordinal);
    }

    /// <summary>The cache folder name, as huggingface_hub names it: models--ORG--NAME.</summary>
    public string CacheFolder => "models--" + Repository.Replace("/", "--", StringComparison.Ordinal);

    public override string ToString() => Revision == "main" ? Repository : $"{Repository}@{Revision}";
}

/// <summary>
/// Downloads model files from the Hugging Face hub into the standard cache layout
/// (<c>models--ORG--NAME/{blobs,snapshots,refs}</c>), so files fetched by Python tools are reused
/// and vice versa. Downloads resume, and are checked (size, and SHA-256 for LFS files) before use.
/// </summary>
public sealed class HubClient : IDisposable
{
    private const int Attempts = 3;
    private readonly HubOptions options;
    private readonly HttpClient http;          // follows redirects (large files live on a CDN)
    private readonly HttpClient metadataHttp;  // does not: the hub's own answer carries X-Linked-Etag / X-Linked-Size

    public HubClient(HubOptions options)
    {
        this.options = options;
        http = new HttpClient(new SocketsHttpHandler { AllowAutoRedirect = true }) { Timeout = Timeout.InfiniteTimeSpan };
        metadataHttp = new HttpClient(new SocketsHttpHandler { AllowAutoRedirect = false }) { Timeout = TimeSpan.FromMinutes(2) };
    }

    public void Dispose()
    {
        http.Dispose();
        metadataHttp.Dispose();
    }

    /// <summary>Files a checkpoint may need; weights are added from the repository listing.</summary>
    private static readonly string[] CheckpointFiles =
        ["config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json", "merges.txt"];

    public HubOptions Options => options;

    /// <summary>The snapshot folder of a checkpoint, downloading what the cache lacks (nothing, when it is complete).</summary>
    public async Task<string> GetCheckpointAsync(HubModelId id, IProgress<DownloadProgress>? progress = null, CancellationToken cancellation = default)
    {
        string repoDir = Path.Combine(options.CacheDirectory, id.CacheFolder);
        if (CachedSnapshot(repoDir, id.Revision) is { } cached && MissingCheckpointFiles(cached).Count == 0)
            return cached;
        if (options.Offline)
        {
            string? snapshot = CachedSnapshot(repoDir, id.Revision);
            var missing = snapshot is null ? ["config.json", "model.safetensors"] : MissingCheckpointFiles(snapshot);
            throw new NextTokenException($"offline (HF_HUB_OFFLINE=1) and {id} is not complete in the cache {repoDir}: missing {string.Join(", ", missing)}");
        }
        var (commit, files) = await ResolveAsync(id, cancellation);
        var wanted = CheckpointFiles.Where(files.Contains).ToList();
        if (files.Contains("model.safetensors.index.json")) wanted.Add("model.safetensors.index.json");
        else if (files.Contains("model.safetensors")) wanted.Add("model.safetensors");
        else throw new NextTokenException($"{id}: the repository has no model.safetensors (files: {string.Join(", ", files.Take(12))})");
        foreach (string file in wanted) await DownloadAsync(id, commit, file, progress, cancellation);
        string snapshotDir = Path.Combine(repoDir, "snapshots", commit);
        if (wanted.Contains("model.safetensors.index.json"))
            foreach (string shard in Shards(Path.Combine(snapshotDir, "model.safetensors.index.json")))
                await DownloadAsync(id, commit, shard, progress, cancellation);
        return snapshotDir;
    }

    /// <summary>One file of a repository (e.g. a GGUF file), from the cache or downloaded into it.</summary>
    public async Task<string> GetFileAsync(HubModelId id, string file, IProgress<DownloadProgress>? progress = null, CancellationToken cancellation = default)
    {
        string repoDir = Path.Combine(options.CacheDirectory, id.CacheFolder);
        if (CachedSnapshot(repoDir, id.Revision) is { } cached && File.Exists(Path.Combine(cached, file)))
            return Path.Combine(cached, file);
        if (options.Offline)
            throw new NextTokenException($"offline (HF_HUB_OFFLINE=1) and {id} has no cached {file} in {repoDir}");
        var (commit, files) = await ResolveAsync(id, cancellation);
        if (!files.Contains(file)) throw new NextTokenException($"{id}: no file '{file}' in the repository");
        return await DownloadAsync(id, commit, file, progress, cancellation);
    }

    /// <summary>The commit a revision points at and the repository's file list.</summary>
    private async Task<(string Commit, HashSet<string> Files)> ResolveAsync(HubModelId id, CancellationToken cancellation)
    {
        string url = $"{options.Endpoint}/api/models/{id.Repository}/revision/{Uri.EscapeDataString(id.Revision)}";
        HttpResponseMessage response;
        try
        {
            response = await SendAsync(HttpMethod.Get, url, null, id, cancellation);
        }
        catch (HttpRequestException error)
        {
            throw new NextTokenException($"cannot reach {options.Endpoint} to fetch {id} ({error.Message}); give --model a local GGUF file or checkpoint, or set HF_HUB_OFFLINE=1 to use only the cache");
        }
        using HttpResponseMessage _ = response;
        using var document = JsonDocument.Parse(await response.Content.ReadAsStringAsync(cancellation));
        string commit = document.RootElement.TryGetProperty("sha", out JsonElement sha) && sha.GetString() is { } s && Regex.IsMatch(s, "^[0-9a-f]{40}$")
            ? s : throw new NextTokenException($"{url}: the hub's answer has no commit sha");
        var files = document.RootElement.TryGetProperty("siblings", out JsonElement siblings)
            ? siblings.EnumerateArray().Select(f => f.GetProperty("rfilename").GetString()!).ToHashSet(StringComparer.Ordinal)
            : [];
        string refs = Path.Combine(options.CacheDirectory, id.CacheFolder, "refs");
        Directory.CreateDirectory(refs);
        if (!Regex.IsMatch(id.Revision, "^[0-9a-f]{40}$")) await File.WriteAllTextAsync(Path.Combine(refs, id.Revision), commit, cancellation);
        return (commit, files);
    }

    /// <summary>Downloads one file into blobs/ (resuming a partial download), checks it, and links it from the snapshot.</summary>
    private async Task<string> DownloadAsync(HubModelId id, string commit, string file, IProgress<DownloadProgress>? progress, CancellationToken cancellation)
    {
        if (file.Contains("..", StringComparison.Ordinal) || Path.IsPathRooted(file))
            throw new NextTokenException($"{id}: refusing the file name '{file}'");
        string repoDir = Path.Combine(options.CacheDirectory, id.CacheFolder);
        string snapshotPath = Path.Combine(repoDir, "snapshots", commit, file);
        if (File.Exists(snapshotPath)) return snapshotPath;
        string url = $"{options.Endpoint}/{id.Repository}/resolve/{commit}/{file}";
        for (int attempt = 1; ; attempt++)
        {
            try
            {
                return await DownloadOnceAsync(id, url, repoDir, snapshotPath, file, progress, cancellation);
            }
            catch (Exception error) when (attempt < Attempts && error is IOException or HttpRequestException && !cancellation.IsCancellationRequested)
            {
                // The partial blob stays; the next attempt asks for the rest with a Range header.
            }
        }
    }

    private async Task<string> DownloadOnceAsync(HubModelId id, string url, string repoDir, string snapshotPath, string file,
                                                 IProgress<DownloadProgress>? progress, CancellationToken cancellation)
    {
        string blobs = Path.Combine(repoDir, "blobs");
        Directory.CreateDirectory(blobs);
        using HttpResponseMessage head = await SendAsync(HttpMethod.Head, url, null, id, cancellation);
        string etag = Etag(head) ?? throw new NextTokenException($"{url}: the hub sent no ETag, so the download cannot be checked");
        long total = (head.Headers.TryGetValues("X-Linked-Size", out var linkedSize) && long.TryParse(linkedSize.FirstOrDefault(), out long size) ? size : head.Content.Headers.ContentLength)
            ?? throw new NextTokenException($"{url}: the hub sent no Content-Length");
        string blob = Path.Combine(blobs, etag), partial = blob + ".incomplete";
        if (!File.Exists(blob))
        {
            long have = File.Exists(partial) ? new FileInfo(partial).Length : 0;
            if (have > total) { File.Delete(partial); have = 0; }
            if (have < total)
            {
                using HttpResponseMessage response = await SendAsync(HttpMethod.Get, url, have > 0 ? new RangeHeaderValue(have, null) : null, id, cancellation);
                bool resumed = response.StatusCode == HttpStatusCode.PartialContent;
                await using (var output = new FileStream(partial, resumed ? FileMode.Append : FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16))
                {
                    if (!resumed) have = 0;
                    await using Stream input = await response.Content.ReadAsStreamAsync(cancellation);
                    var buffer = new byte[1 << 16];
                    int read;
                    while ((read = await input.ReadAsync(buffer, cancellation)) > 0)
                    {
                        await output.WriteAsync(buffer.AsMemory(0, read), cancellation);
                        have += read;
                        progress?.Report(new DownloadProgress(file, have, total));
                    }
                }
            }
            Verify(partial, total, etag, url);
            File.Move(partial, blob, overwrite: true);
        }
        Directory.CreateDirectory(Path.GetDirectoryName(snapshotPath)!);
        string relative = Path.GetRelativePath(Path.GetDirectoryName(snapshotPath)!, blob);
        try
        {
            File.CreateSymbolicLink(snapshotPath, relative);
        }
        catch (IOException)
        {
            File.Copy(blob, snapshotPath, overwrite: true); // file systems without symbolic links
        }
        return snapshotPath;
    }

    /// <summary>Size must match; an LFS file's ETag is its SHA-256, which must match too. A bad file is deleted, never used.</summary>
    private static void Verify(string path, long total, string etag, string url)
    {
        long size = new FileInfo(path).Length;
        if (size != total)
            throw new IOException($"{url}: received {size} of {total} bytes");
        if (!Regex.IsMatch(etag, "^[0-9a-f]{64}$")) return;
        string sha;
        using (FileStream stream = File.OpenRead(path)) sha = Convert.ToHexStringLower(SHA256.HashData(stream));
        if (sha != etag)
        {
            File.Delete(path);
            throw new NextTokenException($"{url}: the downloaded file's SHA-256 is {sha} but the hub says {etag}; the file was deleted and not used");
        }
    }

    private async Task<HttpResponseMessage> SendAsync(HttpMethod method, string url, RangeHeaderValue? range, HubModelId id, CancellationToken cancellation)
    {
        var request = new HttpRequestMessage(method, url);
        if (options.Token is { } token) request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        request.Headers.Range = range;
        request.Headers.UserAgent.ParseAdd("nexttoken/0.1");
        HttpClient client = method == HttpMethod.Head ? metadataHttp : http;
        HttpResponseMessage response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellation);
        if (response.IsSuccessStatusCode || (method == HttpMethod.Head && (int)response.StatusCode is 301 or 302 or 307 or 308)) return response;
        string reason = response.StatusCode switch
        {
            HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden => options.Token is null
                ? $"{id} is gated or private: set HF_TOKEN to an access token of an account that has accepted its terms"
                : $"{id} refused the token in HF_TOKEN: check that it is valid and that its account has access",
            HttpStatusCode.NotFound => $"{id}: not found on {options.Endpoint} ({url})",
            _ => $"{url}: the hub answered {(int)response.StatusCode} {response.ReasonPhrase}",
        };
        response.Dispose();
        throw new NextTokenException($"{reason} (HTTP {(int)response.StatusCode})");
    }

    private static string? Etag(HttpResponseMessage response)
    {
        string? value = response.Headers.TryGetValues("X-Linked-Etag", out var linked) ? linked.FirstOrDefault()
            : response.Headers.ETag?.Tag;
        return value?.Replace("W/", "", StringComparison.Ordinal).Trim('"') is { Length: > 0 } tag && Regex.IsMatch(tag, @"^[\w\-]+$") ? tag : null;
    }

    private string? CachedSnapshot(string repoDir, string revision)
    {
        string commit = revision;
        string refFile = Path.Combine(repoDir, "refs", revision);
        if (File.Exists(refFile)) commit = File.ReadAllText(refFile).Trim();
        string snapshot = Path.Combine(repoDir, "snapshots", commit);
        return Directory.Exists(snapshot) ? snapshot : null;
    }

    private static List<string> MissingCheckpointFiles(string snapshot)
    {
        var missing = new List<string>();
        if (!File.Exists(Path.Combine(snapshot, "config.json"))) missing.Add("config.json");
        string index = Path.Combine(snapshot, "model.safetensors.index.json");
        if (File.Exists(index)) missing.AddRange(Shards(index).Where(s => !File.Exists(Path.Combine(snapshot, s))));
        else if (!File.Exists(Path.Combine(snapshot, "model.safetensors"))) missing.Add("model.safetensors");
        return missing;
    }

    private static IEnumerable<string> Shards(string indexPath)
    {
        using var document = JsonDocument.Parse(File.ReadAllText(indexPath));
        return document.RootElement.GetProperty("weight_map").EnumerateObject().Select(p => p.Value.GetString()!).Distinct().ToList();
    }
}
