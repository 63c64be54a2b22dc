using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace NextToken.Hub;

/// <summary>A file download in progress, or, when <see cref="Message"/> is set, a notice about it (a retry, a resume).</summary>
public readonly record struct DownloadProgress(string File, long Downloaded, long Total)
{
    public string? Message { get; init; }
}

/// <summary>A model reference <c>ORG/NAME[@REVISION]</c>.</summary>
public sealed record HubModelId(string Repository, string Revision)
{
    private static readonly Regex Pattern = new(@"^(?<repo>[A-Za-z0-9][\w.\-]*/[\w.\-]+)(@(?<rev>[\w.\-]+(/[\w.\-]+)*))?$");

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
/// (<c>models--ORG--NAME/{blobs,snapshots,refs}</c>, blobs named by ETag, snapshot entries as relative
/// links), so files fetched by Python tools are reused and vice versa. Downloads resume, are checked
/// (size; SHA-256 for LFS files, the git blob SHA-1 for small ones) before use, and a lock per blob
/// keeps two processes from writing the same partial file.
/// </summary>
public sealed class HubClient : IDisposable
{
    private static readonly TimeSpan LockPoll = TimeSpan.FromMilliseconds(100);
    private readonly HubOptions _options;
    private readonly HubHttp _http;

    public HubClient(HubOptions options)
    {
        _options = options;
        _http = new HubHttp(options);
    }

    public void Dispose() => _http.Dispose();

    /// <summary>Files a checkpoint may need; weights are added from the repository listing.</summary>
    private static readonly string[] CheckpointFiles =
        ["config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json", "merges.txt"];

    public HubOptions Options => _options;

    /// <summary>Makes a snapshot entry a link to its blob; tests replace it to simulate file systems that refuse links.</summary>
    internal Action<string, string> CreateSymbolicLink { get; init; } = (path, target) => File.CreateSymbolicLink(path, target);

    /// <summary>The snapshot folder of a checkpoint, downloading what the cache lacks (nothing, when it is complete).</summary>
    public async Task<string> GetCheckpointAsync(HubModelId id, IProgress<DownloadProgress>? progress = null, CancellationToken cancellation = default)
    {
        string repoDir = RepoDir(id);
        string? cached = CachedSnapshot(repoDir, id.Revision);
        // Offline, config and weights are enough (whatever else the repository has cannot be asked).
        if (cached is not null && (IsComplete(cached) || _options.Offline && MissingCheckpointFiles(cached).Count == 0))
            return cached;
        if (_options.Offline)
        {
            var missing = cached is null ? ["config.json", "model.safetensors"] : MissingCheckpointFiles(cached);
            throw new NextTokenException($"offline (HF_HUB_OFFLINE) and {id} is not complete in the cache {repoDir}: missing {string.Join(", ", missing)}");
        }
        var (commit, files) = await ResolveAsync(id, progress, cancellation);
        var wanted = CheckpointFiles.Where(files.Contains).ToList();
        if (files.Contains("model.safetensors.index.json")) wanted.Add("model.safetensors.index.json");
        else if (files.Contains("model.safetensors")) wanted.Add("model.safetensors");
        else throw new NextTokenException($"{id}: the repository has no model.safetensors (files: {string.Join(", ", files.Take(12))})");
        // Recorded as huggingface_hub records a 404, so the next run knows the snapshot is complete without asking.
        foreach (string absent in CheckpointFiles.Where(f => !files.Contains(f))) MarkAbsent(repoDir, commit, absent);
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
        CheckFileName(id, file);
        string repoDir = RepoDir(id);
        if (CachedSnapshot(repoDir, id.Revision) is { } cached && Present(Path.Combine(cached, file)))
            return Path.Combine(cached, file);
        if (_options.Offline)
            throw new NextTokenException($"offline (HF_HUB_OFFLINE) and {id} has no cached {file} in {repoDir}");
        var (commit, files) = await ResolveAsync(id, progress, cancellation);
        if (!files.Contains(file))
            throw new NextTokenException($"{id} has no file '{file}' (files: {string.Join(", ", files.Order().Take(12))})");
        return await DownloadAsync(id, commit, file, progress, cancellation);
    }

    private string RepoDir(HubModelId id) => Path.Combine(_options.CacheDirectory, id.CacheFolder);

    /// <summary>The commit a revision points at and the repository's file list; records the revision in refs/.</summary>
    private async Task<(string Commit, HashSet<string> Files)> ResolveAsync(HubModelId id, IProgress<DownloadProgress>? progress, CancellationToken cancellation)
    {
        // A revision such as refs/pr/1 is one path segment, its slashes escaped (as huggingface_hub quotes it).
        var url = new Uri($"{_options.Endpoint}/api/models/{id.Repository}/revision/{Uri.EscapeDataString(id.Revision)}");
        using HttpResponseMessage response = await _http.SendAsync(HttpMethod.Get, url, 0, leaveHost: false, _options.MetadataTimeout, new HubTarget(id, null, progress), cancellation);
        string commit;
        HashSet<string> files;
        try
        {
            using var document = JsonDocument.Parse(await response.Content.ReadAsStringAsync(cancellation));
            commit = document.RootElement.TryGetProperty("sha", out JsonElement sha) && sha.GetString() is { } s && Regex.IsMatch(s, "^[0-9a-f]{40}$")
                ? s : throw new NextTokenException($"{url}: the hub's answer has no commit sha");
            files = document.RootElement.TryGetProperty("siblings", out JsonElement siblings)
                ? siblings.EnumerateArray().Select(f => f.GetProperty("rfilename").GetString()!).ToHashSet(StringComparer.Ordinal)
                : [];
        }
        catch (Exception error) when (error is JsonException or InvalidOperationException or KeyNotFoundException)
        {
            throw new NextTokenException($"{url}: the hub's answer is not the expected JSON ({error.Message})");
        }
        if (id.Revision != commit)
        {
            string refPath = Path.Combine(RepoDir(id), "refs", id.Revision);
            Directory.CreateDirectory(Path.GetDirectoryName(refPath)!);
            if (!File.Exists(refPath) || File.ReadAllText(refPath) != commit)
            {
                // Written aside and renamed, so a concurrent reader never sees half a commit hash.
                string temporary = $"{refPath}.{Guid.NewGuid():N}.tmp";
                await File.WriteAllTextAsync(temporary, commit, cancellation);
                File.Move(temporary, refPath, overwrite: true);
            }
        }
        return (commit, files);
    }

    /// <summary>A file's blob name, size and where to download it, from the hub's answer to HEAD.</summary>
    private readonly record struct FileMetadata(string Etag, long Size, Uri Location);

    private async Task<FileMetadata> MetadataAsync(Uri url, string commit, HubTarget target, CancellationToken cancellation)
    {
        // Relative and same-host redirects are followed; a redirect to a CDN is where the download goes, and its
        // own Content-Length is the redirect body's, so the size then comes only from X-Linked-Size.
        using HttpResponseMessage head = await _http.SendAsync(HttpMethod.Head, url, 0, leaveHost: false, _options.MetadataTimeout, target, cancellation);
        bool redirect = (int)head.StatusCode is >= 300 and < 400;
        Uri final = head.RequestMessage?.RequestUri ?? url;
        Uri location = redirect && head.Headers.Location is { } l ? (l.IsAbsoluteUri ? l : new Uri(final, l)) : final;
        long? size = long.TryParse(HubHttp.Header(head, "X-Linked-Size"), out long linked) ? linked : redirect ? null : head.Content.Headers.ContentLength;
        if (size is null)
            throw new NextTokenException($"{url}: the hub sent no {(redirect ? "X-Linked-Size with its redirect" : "X-Linked-Size or Content-Length")}, so the download cannot be checked");
        string etag = NormalizeEtag(HubHttp.Header(head, "X-Linked-Etag") ?? HubHttp.Header(head, "ETag"))
            ?? throw new NextTokenException($"{url}: the hub sent no usable ETag, so the download cannot be named or checked");
        if (HubHttp.Header(head, "X-Repo-Commit") is { } answered && answered != commit)
            throw new NextTokenException($"{url}: the hub answered for commit {answered}, not {commit}");
        return new FileMetadata(etag, size.Value, location);
    }

    /// <summary>An ETag as a blob name: without W/ and quotes, and only if it is a safe file name.</summary>
    internal static string? NormalizeEtag(string? value)
    {
        string? tag = value?.Trim();
        if (tag is not null && tag.StartsWith("W/", StringComparison.Ordinal)) tag = tag[2..];
        tag = tag?.Trim('"');
        return tag is { Length: > 0 } && Regex.IsMatch(tag, @"^[\w\-]+$") ? tag : null;
    }

    /// <summary>Downloads one file into blobs/ unless it is there, and links it from the snapshot.</summary>
    private async Task<string> DownloadAsync(HubModelId id, string commit, string file, IProgress<DownloadProgress>? progress, CancellationToken cancellation)
    {
        CheckFileName(id, file);
        string repoDir = RepoDir(id);
        string pointer = Path.Combine(repoDir, "snapshots", commit, file);
        if (Present(pointer)) return pointer;
        var url = new Uri($"{_options.Endpoint}/{id.Repository}/resolve/{commit}/{string.Join('/', file.Split('/').Select(Uri.EscapeDataString))}");
        var target = new HubTarget(id, file, progress);
        FileMetadata metadata = await MetadataAsync(url, commit, target, cancellation);
        string blobs = Path.Combine(repoDir, "blobs"), blob = Path.Combine(blobs, metadata.Etag);
        if (!File.Exists(blob))
        {
            Directory.CreateDirectory(blobs);
            // huggingface_hub's lock path, so it and this client also wait for each other.
            string lockPath = Path.Combine(_options.CacheDirectory, ".locks", id.CacheFolder, metadata.Etag + ".lock");
            using FileStream held = await LockAsync(lockPath, cancellation);
            if (!File.Exists(blob)) await FetchBlobAsync(url, commit, metadata, blob, target, progress, cancellation);
        }
        Link(blob, pointer);
        return pointer;
    }

    /// <summary>Downloads into blob.incomplete, resuming with Range after a cut or a stall, checks it and renames it.</summary>
    private async Task FetchBlobAsync(Uri url, string commit, FileMetadata metadata, string blob, HubTarget target,
                                      IProgress<DownloadProgress>? progress, CancellationToken cancellation)
    {
        string partial = blob + ".incomplete";
        TimeSpan backoff = _options.RetryBaseDelay;
        for (int failures = 0; ;)
        {
            long have = File.Exists(partial) ? new FileInfo(partial).Length : 0;
            if (have > metadata.Size) { File.Delete(partial); have = 0; }
            if (have == metadata.Size) break;
            long before = have;
            string failure;
            try
            {
                have = await ReceiveAsync(metadata.Location, partial, have, metadata.Size, target, progress, cancellation);
                if (have == metadata.Size) break;
                if (have > metadata.Size)
                {
                    File.Delete(partial);
                    throw new NextTokenException($"{HubHttp.Describe(target)}: {metadata.Location.Host} sent {have} bytes, but the hub says the file has {metadata.Size}; the file was deleted and not used");
                }
                failure = "the connection closed early";
            }
            catch (Exception error) when (error is IOException or HttpRequestException or TimeoutException && !cancellation.IsCancellationRequested)
            {
                failure = error.Message;
            }
            long now = File.Exists(partial) ? new FileInfo(partial).Length : 0;
            // Only cuts that bring nothing count against the retries: a slow, flaky link still finishes.
            if (now > before) { failures = 0; backoff = _options.RetryBaseDelay; }
            else if (++failures > _options.MaxRetries)
                throw new NextTokenException($"{HubHttp.Describe(target)}: the download stopped at byte {now} of {metadata.Size} {failures} times ({failure}); run again to resume");
            target.Notice($"{failure}; resuming at byte {now} of {metadata.Size}{(failures > 0 ? $" in {backoff.TotalSeconds:0.#} s" : "")}");
            if (failures > 0)
            {
                await _options.Delay(backoff, cancellation);
                backoff = TimeSpan.FromTicks(Math.Min(_options.RetryMaxDelay.Ticks, backoff.Ticks * 2));
            }
            // A CDN's signed URL may have expired meanwhile: ask the hub for a fresh one.
            if (!_http.IsHub(metadata.Location))
            {
                FileMetadata fresh = await MetadataAsync(url, commit, target, cancellation);
                if (fresh.Etag != metadata.Etag || fresh.Size != metadata.Size)
                    throw new NextTokenException($"{url}: the file changed during the download (ETag {metadata.Etag} → {fresh.Etag})");
                metadata = fresh;
            }
        }
        Verify(partial, metadata, target);
        File.Move(partial, blob, overwrite: true);
    }

    /// <summary>One GET from byte <paramref name="have"/> on; returns the bytes on disk when the body ends.</summary>
    private async Task<long> ReceiveAsync(Uri location, string partial, long have, long total, HubTarget target,
                                          IProgress<DownloadProgress>? progress, CancellationToken cancellation)
    {
        using HttpResponseMessage response = await _http.SendAsync(HttpMethod.Get, location, have, leaveHost: true, _options.ReadTimeout, target, cancellation);
        bool resumed = have > 0 && response.StatusCode == HttpStatusCode.PartialContent;
        if (resumed && response.Content.Headers.ContentRange?.From != have)
            throw new NextTokenException($"{HubHttp.Describe(target)}: asked {location.Host} for bytes from {have} on and got {response.Content.Headers.ContentRange}");
        if (!resumed) have = 0; // the server ignored the Range header: start over
        await using var output = new FileStream(partial, resumed ? FileMode.Append : FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16);
        await using Stream input = await response.Content.ReadAsStreamAsync(cancellation);
        var buffer = new byte[1 << 16];
        using var readTimeout = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
        while (true)
        {
            readTimeout.CancelAfter(_options.ReadTimeout);
            int read;
            try
            {
                read = await input.ReadAsync(buffer, readTimeout.Token);
            }
            catch (OperationCanceledException) when (!cancellation.IsCancellationRequested)
            {
                throw new TimeoutException($"{location.Host} sent nothing for {_options.ReadTimeout.TotalSeconds:0.#} s at byte {have} of {total}");
            }
            if (read == 0) return have;
            await output.WriteAsync(buffer.AsMemory(0, read), cancellation);
            have += read;
            progress?.Report(new DownloadProgress(target.File!, have, total));
        }
    }

    /// <summary>
    /// Size must match; an LFS file's ETag is its SHA-256 and a small file's its git blob SHA-1
    /// (of "blob {size}\0" and the bytes), which must match too. A bad file is deleted, never used.
    /// </summary>
    private static void Verify(string path, FileMetadata metadata, HubTarget target)
    {
        long size = new FileInfo(path).Length;
        if (size != metadata.Size)
            throw new IOException($"{HubHttp.Describe(target)}: received {size} of {metadata.Size} bytes");
        string kind, actual;
        using (FileStream stream = File.OpenRead(path))
        {
            if (Regex.IsMatch(metadata.Etag, "^[0-9a-f]{64}$"))
            {
                kind = "SHA-256";
                actual = Convert.ToHexStringLower(SHA256.HashData(stream));
            }
            else if (Regex.IsMatch(metadata.Etag, "^[0-9a-f]{40}$"))
            {
                kind = "git blob SHA-1";
                using var sha1 = IncrementalHash.CreateHash(HashAlgorithmName.SHA1);
                sha1.AppendData(Encoding.ASCII.GetBytes($"blob {size}\0"));
                var buffer = new byte[1 << 16];
                for (int read; (read = stream.Read(buffer)) > 0;) sha1.AppendData(buffer, 0, read);
                actual = Convert.ToHexStringLower(sha1.GetHashAndReset());
            }
            else return; // another kind of ETag (a mirror's): only the size can be checked
        }
        if (actual != metadata.Etag)
        {
            File.Delete(path);
            throw new NextTokenException($"{HubHttp.Describe(target)}: the downloaded file's {kind} is {actual} but the hub says {metadata.Etag}; the file was deleted and not used");
        }
    }

    /// <summary>Waits for the blob's lock file (held open exclusively, which is an advisory lock on Unix).</summary>
    private static async Task<FileStream> LockAsync(string path, CancellationToken cancellation)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        while (true)
        {
            try
            {
                return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException)
            {
                await Task.Delay(LockPoll, cancellation); // another process is downloading this blob
            }
        }
    }

    /// <summary>A relative link from the snapshot to the blob, or a copy where links are refused.</summary>
    private void Link(string blob, string pointer)
    {
        string directory = Path.GetDirectoryName(pointer)!;
        Directory.CreateDirectory(directory);
        if (PointsTo(pointer, blob)) return;
        File.Delete(pointer); // a dangling link or an old copy
        try
        {
            CreateSymbolicLink(pointer, Path.GetRelativePath(directory, blob));
        }
        catch (Exception error) when (error is IOException or UnauthorizedAccessException)
        {
            // Another process (or client) made the same link meanwhile: nothing to do. Copying then
            // would copy the blob onto itself through that link.
            if (PointsTo(pointer, blob)) return;
            // File systems or accounts without symbolic links: a copy, put in place in one step.
            string part = pointer + "." + Guid.NewGuid().ToString("N")[..8] + ".tmp";
            File.Copy(blob, part, overwrite: true);
            File.Move(part, pointer, overwrite: true);
        }
    }

    /// <summary>True when <paramref name="pointer"/> is a symbolic link that resolves to <paramref name="blob"/>.</summary>
    private static bool PointsTo(string pointer, string blob)
    {
        string? target = new FileInfo(pointer).LinkTarget;
        return target is not null
            && string.Equals(Path.GetFullPath(Path.Combine(Path.GetDirectoryName(pointer)!, target)), Path.GetFullPath(blob), StringComparison.Ordinal);
    }

    /// <summary>Marks a file the repository does not have at this commit, as huggingface_hub does (.no_exist/COMMIT/FILE).</summary>
    private static void MarkAbsent(string repoDir, string commit, string file)
    {
        string marker = Path.Combine(repoDir, ".no_exist", commit, file);
        try
        {
            Directory.CreateDirectory(Path.GetDirectoryName(marker)!);
            if (!File.Exists(marker)) File.Create(marker).Dispose();
        }
        catch (Exception error) when (error is IOException or UnauthorizedAccessException)
        {
            // only an optimisation: without it the next run asks the hub again
        }
    }

    private static void CheckFileName(HubModelId id, string file)
    {
        if (file.Length == 0 || file.Contains('\\') || Path.IsPathRooted(file) || file.Split('/').Any(part => part is "" or "." or ".."))
            throw new NextTokenException($"{id}: refusing the file name '{file}'");
    }

    /// <summary>A file or a link whose target exists; a dangling link (its blob deleted) counts as missing.</summary>
    private static bool Present(string path)
    {
        var info = new FileInfo(path);
        try
        {
            return info.LinkTarget is null ? info.Exists : info.ResolveLinkTarget(returnFinalTarget: true) is { Exists: true };
        }
        catch (IOException)
        {
            return false;
        }
    }

    private static string? CachedSnapshot(string repoDir, string revision)
    {
        string commit = revision;
        string refFile = Path.Combine(repoDir, "refs", revision);
        if (File.Exists(refFile)) commit = File.ReadAllText(refFile).Trim();
        string snapshot = Path.Combine(repoDir, "snapshots", commit);
        return Directory.Exists(snapshot) ? snapshot : null;
    }

    /// <summary>Complete: config and weights present, and every other checkpoint file present or known to be absent upstream.</summary>
    private static bool IsComplete(string snapshot)
    {
        if (MissingCheckpointFiles(snapshot).Count > 0) return false;
        string commit = Path.GetFileName(snapshot), repoDir = Path.GetDirectoryName(Path.GetDirectoryName(snapshot)!)!;
        return CheckpointFiles.All(f => Present(Path.Combine(snapshot, f)) || File.Exists(Path.Combine(repoDir, ".no_exist", commit, f)));
    }

    private static List<string> MissingCheckpointFiles(string snapshot)
    {
        var missing = new List<string>();
        if (!Present(Path.Combine(snapshot, "config.json"))) missing.Add("config.json");
        string index = Path.Combine(snapshot, "model.safetensors.index.json");
        if (Present(index)) missing.AddRange(Shards(index).Where(s => !Present(Path.Combine(snapshot, s))));
        else if (!Present(Path.Combine(snapshot, "model.safetensors"))) missing.Add("model.safetensors");
        return missing;
    }

    private static IEnumerable<string> Shards(string indexPath)
    {
        using var document = JsonDocument.Parse(File.ReadAllText(indexPath));
        return document.RootElement.GetProperty("weight_map").EnumerateObject().Select(p => p.Value.GetString()!).Distinct().ToList();
    }
}
