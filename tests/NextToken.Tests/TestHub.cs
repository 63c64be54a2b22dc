using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;

namespace NextToken.Tests;

/// <summary>One request the test hub received: which host, and whether it carried a token.</summary>
public sealed record HubRequest(string Host, string Method, string Path, bool Authorization, string? Range);

/// <summary>A failure the test hub injects once into the next matching request.</summary>
public readonly record struct Fault(FaultKind Kind, string? RetryAfter = null, int StallMilliseconds = 0)
{
    public static Fault TooManyRequests(string? retryAfter) => new(FaultKind.Status429, retryAfter);
    public static Fault Unavailable(string? retryAfter = null) => new(FaultKind.Status503, retryAfter);
    public static Fault Cut => new(FaultKind.Cut);
    public static Fault Stall(int milliseconds) => new(FaultKind.Stall, StallMilliseconds: milliseconds);
}

public enum FaultKind { Status429, Status503, Cut, Stall }

/// <summary>
/// A stand-in for the Hugging Face hub that answers as the real one does: the hub (on 127.0.0.1) and
/// a CDN (on localhost, another host name and port) listen on loopback. A small file's resolve URL
/// answers 307 with a relative Location into /api/resolve-cache/ (X-Linked-Etag, no X-Linked-Size,
/// the redirect body's Content-Length); a large (LFS) file's answers 302 to the CDN with X-Linked-Size
/// and X-Linked-Etag = SHA-256; the CDN wants a signature it issued (new per redirect), has its own
/// ETag, and refuses a request with Authorization as S3 does. Missing and gated repositories,
/// unknown revisions and entries answer with the hub's X-Error-Code. Every request is logged per host.
/// </summary>
public sealed class TestHub : IDisposable
{
    public const string Commit = "0123456789abcdef0123456789abcdef01234567";
    public const string PrCommit = "89abcdef0123456789abcdef0123456789abcdef";
    public const string GrantedToken = "hf_granted_token";
    private readonly HttpListener _hub, _cdn;
    private readonly Dictionary<string, string> _repositories; // repo → local directory
    private readonly ConcurrentDictionary<string, byte> _signatures = new();
    private readonly ConcurrentDictionary<string, byte[]> _cdnObjects = new(); // sha256 → content
    private readonly ConcurrentDictionary<string, byte[]> _files = new();
    private readonly List<(string Host, string Match, Fault Fault)> _faults = [];
    private readonly List<HubRequest> _log = [];
    private readonly Task[] _loops;

    public TestHub(Dictionary<string, string> repositories)
    {
        _repositories = repositories;
        (_hub, Endpoint) = Listen("127.0.0.1");
        (_cdn, CdnEndpoint) = Listen("localhost");
        _loops = [Task.Run(() => Serve(_hub, "hub")), Task.Run(() => Serve(_cdn, "cdn"))];
    }

    public string Endpoint { get; }
    public string CdnEndpoint { get; }

    public IReadOnlyList<HubRequest> Log
    {
        get { lock (_log) return _log.ToList(); }
    }

    public int Requests
    {
        get { lock (_log) return _log.Count; }
    }

    public List<string> RangeRequests { get; } = [];
    public HashSet<string> Corrupt { get; } = [];
    public HashSet<string> Gated { get; } = [];
    /// <summary>Old repository names the hub redirects to the new one on its own host (an absolute 307, as after a rename).</summary>
    public Dictionary<string, string> Renamed { get; } = [];

    /// <summary>A token the hub rejects outright (401 "Invalid credentials in Authorization header", no X-Error-Code).</summary>
    public const string InvalidToken = "hf_invalid_token";

    /// <summary>Files listed by the API whose resolve URL answers EntryNotFound (a listing that raced a commit).</summary>
    public HashSet<string> Vanished { get; } = [];

    /// <summary>Nested files every repository also has (as GPT-2's onnx/ folder); a checkpoint download must not fetch them.</summary>
    public Dictionary<string, byte[]> Nested { get; } = new()
    {
        ["onnx/decoder_model.onnx"] = Encoding.ASCII.GetBytes(new string('o', 5000)),
        ["onnx/config.json"] = Encoding.ASCII.GetBytes("{\"onnx\": true}\n"),
    };

    /// <summary>Makes the next request to <paramref name="host"/> ("hub" or "cdn") whose path contains <paramref name="match"/> fail once.</summary>
    public void Inject(string host, string match, Fault fault)
    {
        lock (_faults) _faults.Add((host, match, fault));
    }

    public int PendingFaults
    {
        get { lock (_faults) return _faults.Count; }
    }

    private static int FreePort()
    {
        var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        int port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        return port;
    }

    /// <summary>
    /// A started listener on a free port of the host. The port is free when probed, but a test running in parallel can take it
    /// before the listener binds ("Address already in use", seen in CI): then another port, a few times.
    /// </summary>
    private static (HttpListener Listener, string Endpoint) Listen(string host)
    {
        for (int attempt = 1; ; attempt++)
        {
            string endpoint = $"http://{host}:{FreePort()}";
            var listener = new HttpListener();
            listener.Prefixes.Add(endpoint + "/");
            try
            {
                listener.Start();
                return (listener, endpoint);
            }
            catch (HttpListenerException) when (attempt < 10)
            {
                listener.Close();
            }
        }
    }

    private async Task Serve(HttpListener listener, string host)
    {
        while (listener.IsListening)
        {
            HttpListenerContext context;
            try { context = await listener.GetContextAsync(); }
            catch (Exception) { return; }
            _ = Task.Run(async () =>
            {
                try { await Handle(context, host); }
                catch (Exception) { try { context.Response.Abort(); } catch (Exception) { } }
            });
        }
    }

    private async Task Handle(HttpListenerContext context, string host)
    {
        HttpListenerRequest request = context.Request;
        HttpListenerResponse response = context.Response;
        string raw = request.RawUrl ?? "/";
        string rawPath = raw.Split('?')[0];
        string? authorization = request.Headers["Authorization"];
        lock (_log) _log.Add(new HubRequest(host, request.HttpMethod, raw, authorization is not null, request.Headers["Range"]));
        Fault? fault = null;
        lock (_faults)
        {
            int index = _faults.FindIndex(f => f.Host == host && rawPath.Contains(f.Match, StringComparison.Ordinal)
                                               && (f.Fault.Kind is FaultKind.Status429 or FaultKind.Status503 || request.HttpMethod == "GET"));
            if (index >= 0)
            {
                fault = _faults[index].Fault;
                _faults.RemoveAt(index);
            }
        }
        if (fault is { Kind: FaultKind.Status429 or FaultKind.Status503 } status)
        {
            if (status.RetryAfter is { } after) response.Headers["Retry-After"] = after;
            Status(response, status.Kind == FaultKind.Status429 ? 429 : 503);
            return;
        }
        // Path segments are unescaped one by one, so refs%2Fpr%2F1 stays one segment.
        string[] parts = rawPath.Trim('/').Split('/').Select(Uri.UnescapeDataString).ToArray();
        if (host == "cdn") await HandleCdn(request, response, parts, raw, authorization, fault);
        else await HandleHub(request, response, parts, authorization, fault);
    }

    private async Task HandleHub(HttpListenerRequest request, HttpListenerResponse response, string[] parts, string? authorization, Fault? fault)
    {
        string? token = authorization is { } a && a.StartsWith("Bearer ", StringComparison.Ordinal) ? a[7..] : null;
        if (token == InvalidToken)
        {
            response.Headers["X-Error-Message"] = "Invalid credentials in Authorization header";
            Status(response, 401);
            return;
        }
        string? oldName = parts.Length >= 4 && parts[0] == "api" ? parts[2] + "/" + parts[3] : parts.Length >= 2 ? parts[0] + "/" + parts[1] : null;
        if (oldName is not null && Renamed.TryGetValue(oldName, out string? newName))
        {
            response.RedirectLocation = Endpoint + request.RawUrl!.Replace("/" + oldName + "/", "/" + newName + "/", StringComparison.Ordinal);
            Status(response, 307);
            return;
        }
        if (parts.Length == 6 && parts[0] == "api" && parts[1] == "models" && parts[4] == "revision")
        {
            string repo = parts[2] + "/" + parts[3];
            if (!_repositories.TryGetValue(repo, out string? dir)) { Error(response, 401, "RepoNotFound", "Repository not found"); return; }
            // The model API is public even for a gated repository; only its files are not.
            if (CommitOf(parts[5]) is not { } commit) { Error(response, 404, "RevisionNotFound", $"Invalid rev id: {parts[5]}"); return; }
            string siblings = string.Join(",", Listing(dir).Select(f => $"{{\"rfilename\":\"{f}\"}}"));
            string gated = Gated.Contains(repo) ? "\"manual\"" : "false";
            Send(response, request, Encoding.UTF8.GetBytes($"{{\"id\":\"{repo}\",\"sha\":\"{commit}\",\"gated\":{gated},\"siblings\":[{siblings}]}}"), fault);
            return;
        }
        if (parts.Length >= 7 && parts[0] == "api" && parts[1] == "resolve-cache" && parts[2] == "models")
        {
            string repo = parts[3] + "/" + parts[4], file = string.Join('/', parts[6..]);
            if (!Allowed(repo, token, response)) return;
            if (CommitOf(parts[5]) is not { } commit || Content(repo, file) is not { } content) { Error(response, 404, "EntryNotFound", "Entry not found"); return; }
            response.Headers["ETag"] = $"\"{GitBlobSha1(content)}\"";
            response.Headers["X-Repo-Commit"] = commit;
            await SendFile(request, response, Served(file, content), file, fault);
            return;
        }
        if (parts.Length >= 5 && parts[2] == "resolve")
        {
            string repo = parts[0] + "/" + parts[1], file = string.Join('/', parts[4..]);
            if (!_repositories.ContainsKey(repo)) { Error(response, 401, "RepoNotFound", "Repository not found"); return; }
            if (!Allowed(repo, token, response)) return;
            if (CommitOf(parts[3]) is not { } commit) { Error(response, 404, "RevisionNotFound", $"Invalid rev id: {parts[3]}"); return; }
            response.Headers["X-Repo-Commit"] = commit;
            if (Vanished.Contains(file) || Content(repo, file) is not { } content) { Error(response, 404, "EntryNotFound", "Entry not found"); return; }
            string location;
            if (IsLfs(file))
            {
                string sha256 = Convert.ToHexStringLower(SHA256.HashData(content));
                string signature = Guid.NewGuid().ToString("N");
                _signatures[signature] = 0;
                _cdnObjects[sha256] = Served(file, content);
                location = $"{CdnEndpoint}/repos/{sha256[..2]}/{sha256[2..4]}/{sha256}?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=3600" +
                           $"&X-Amz-Signature={signature}&response-content-disposition=attachment%3B%20filename%3D%22{Uri.EscapeDataString(file.Split('/')[^1])}%22";
                response.Headers["X-Linked-Etag"] = $"\"{sha256}\"";
                response.Headers["X-Linked-Size"] = content.Length.ToString();
                response.Headers["ETag"] = $"\"{sha256}\"";
                response.StatusCode = 302;
            }
            else
            {
                string escapedFile = string.Join('/', file.Split('/').Select(Uri.EscapeDataString));
                location = $"/api/resolve-cache/models/{repo}/{commit}/{escapedFile}?%2F{Uri.EscapeDataString(repo)}%2Fresolve%2F{parts[3]}%2F{Uri.EscapeDataString(file)}=&etag=%22{GitBlobSha1(content)}%22";
                response.Headers["X-Linked-Etag"] = $"\"{GitBlobSha1(content)}\"";
                response.StatusCode = 307;
            }
            response.RedirectLocation = location;
            // The redirect's own body, whose length is what Content-Length gives (not the file's size).
            byte[] body = Encoding.UTF8.GetBytes($"{(IsLfs(file) ? "Found" : "Temporary Redirect")}. Redirecting to {location}");
            response.ContentLength64 = body.Length;
            if (request.HttpMethod != "HEAD") response.OutputStream.Write(body);
            response.Close();
            return;
        }
        Status(response, 404);
    }

    private async Task HandleCdn(HttpListenerRequest request, HttpListenerResponse response, string[] parts, string raw, string? authorization, Fault? fault)
    {
        if (authorization is not null)
        {
            // S3 refuses a presigned URL that also carries a token; the log records that it was sent.
            Status(response, 400);
            return;
        }
        string? signature = request.QueryString["X-Amz-Signature"];
        if (signature is null || !_signatures.ContainsKey(signature)) { Status(response, 403); return; }
        if (parts.Length != 4 || parts[0] != "repos" || !_cdnObjects.TryGetValue(parts[3], out byte[]? content)) { Status(response, 404); return; }
        response.Headers["ETag"] = $"\"{Convert.ToHexStringLower(MD5.HashData(content))}\""; // the CDN's own ETag, not the blob name
        response.Headers["Content-Disposition"] = request.QueryString["response-content-disposition"] ?? "attachment";
        await SendFile(request, response, content, raw, fault);
    }

    /// <summary>Gated repositories: 401 without a token, 403 with one that was not granted (both X-Error-Code GatedRepo).</summary>
    private bool Allowed(string repo, string? token, HttpListenerResponse response)
    {
        if (!Gated.Contains(repo) || token == GrantedToken) return true;
        if (token is null)
            Error(response, 401, "GatedRepo", $"Access to model {repo} is restricted. You must have access to it and be authenticated to access it. Please log in.");
        else
            Error(response, 403, "GatedRepo", $"Access to model {repo} is restricted and you are not in the authorized list. Visit {Endpoint}/{repo} to ask for access.");
        return false;
    }

    private static string? CommitOf(string revision) => revision switch
    {
        "main" or Commit => Commit,
        "refs/pr/1" or PrCommit => PrCommit,
        _ => null,
    };

    private IEnumerable<string> Listing(string dir) =>
        Directory.GetFiles(dir).Select(f => Path.GetFileName(f)).Concat(Nested.Keys).Order(StringComparer.Ordinal);

    private byte[]? Content(string repo, string file)
    {
        if (Nested.TryGetValue(file, out byte[]? nested)) return nested;
        if (!_repositories.TryGetValue(repo, out string? dir) || file.Contains('/') || !File.Exists(Path.Combine(dir, file))) return null;
        return _files.GetOrAdd(Path.Combine(dir, file), File.ReadAllBytes);
    }

    private static bool IsLfs(string file) => file.EndsWith(".safetensors", StringComparison.Ordinal) || file.EndsWith(".onnx", StringComparison.Ordinal);

    /// <summary>The bytes actually sent: one flipped in the middle when the file is marked corrupt (its ETags stay the true ones).</summary>
    private byte[] Served(string file, byte[] content)
    {
        if (!Corrupt.Contains(file)) return content;
        byte[] copy = content.ToArray();
        copy[copy.Length / 2] ^= 0xFF;
        return copy;
    }

    public static string GitBlobSha1(byte[] content) =>
        Convert.ToHexStringLower(SHA1.HashData([.. Encoding.ASCII.GetBytes($"blob {content.Length}\0"), .. content]));

    private async Task SendFile(HttpListenerRequest request, HttpListenerResponse response, byte[] content, string name, Fault? fault)
    {
        response.Headers["Accept-Ranges"] = "bytes";
        long from = 0;
        if (request.Headers["Range"] is { } range && range.StartsWith("bytes=", StringComparison.Ordinal))
        {
            lock (RangeRequests) RangeRequests.Add($"{name.Split('?')[0].Split('/')[^1]} {range}");
            from = long.Parse(range[6..].TrimEnd('-'));
            response.StatusCode = 206;
            response.Headers["Content-Range"] = $"bytes {from}-{content.Length - 1}/{content.Length}";
        }
        await SendBody(response, request, content[(int)from..], fault);
    }

    private void Send(HttpListenerResponse response, HttpListenerRequest request, byte[] body, Fault? fault)
    {
        response.ContentType = "application/json";
        SendBody(response, request, body, fault).GetAwaiter().GetResult();
    }

    private static async Task SendBody(HttpListenerResponse response, HttpListenerRequest request, byte[] body, Fault? fault)
    {
        response.ContentLength64 = body.Length;
        if (request.HttpMethod == "HEAD")
        {
            response.Close();
            return;
        }
        if (fault is { Kind: FaultKind.Cut or FaultKind.Stall } broken)
        {
            response.OutputStream.Write(body, 0, body.Length / 2);
            response.OutputStream.Flush();
            if (broken.Kind == FaultKind.Stall) await Task.Delay(broken.StallMilliseconds);
            response.Abort(); // the connection drops midway
            return;
        }
        response.OutputStream.Write(body);
        response.Close();
    }

    private static void Error(HttpListenerResponse response, int code, string errorCode, string message)
    {
        response.Headers["X-Error-Code"] = errorCode;
        response.Headers["X-Error-Message"] = message;
        Status(response, code);
    }

    private static void Status(HttpListenerResponse response, int code)
    {
        response.StatusCode = code;
        response.Close();
    }

    public void Dispose()
    {
        foreach (HttpListener listener in (HttpListener[])[_hub, _cdn])
        {
            // Close alone (it stops too): Stop then Close removed the prefixes twice, and on Linux the
            // second removal binds the freed port again — which a parallel test may hold by then
            // ("Address already in use" from Dispose).
            try
            {
                listener.Close();
            }
            catch (HttpListenerException)
            {
                // the port is already someone else's: nothing of ours is left on it
            }
        }
        try { Task.WaitAll(_loops, 2000); } catch (AggregateException) { }
    }
}
