using System.Net;
using System.Net.Http.Headers;

namespace NextToken.Hub;

/// <summary>What a request is about, for error messages, and where to tell about retries.</summary>
internal readonly record struct HubTarget(HubModelId Id, string? File, IProgress<DownloadProgress>? Progress)
{
    public void Notice(string message) => Progress?.Report(new DownloadProgress(File ?? Id.ToString(), 0, 0) { Message = message });
}

/// <summary>
/// HTTP as the hub needs it: redirects followed by hand (relative and same-host ones keep the token,
/// a redirect to another host is returned or followed without it), retries with backoff on 408, 429
/// (honouring Retry-After), 5xx and failed connections, and the hub's X-Error-Code turned into one line.
/// </summary>
internal sealed class HubHttp : IDisposable
{
    private const int MaxRedirects = 10;
    private readonly HubOptions _options;
    private readonly Uri _endpoint;
    private readonly HttpClient _client;

    public HubHttp(HubOptions options)
    {
        _options = options;
        _endpoint = new Uri(options.Endpoint.TrimEnd('/') + "/");
        // No automatic redirects: .NET would drop Authorization on a same-host redirect too, and the metadata
        // must come from the hub's own answer, not from the CDN. No decompression: sizes are the files' sizes.
        _client = new HttpClient(new SocketsHttpHandler
        {
            AllowAutoRedirect = false,
            AutomaticDecompression = DecompressionMethods.None,
            ConnectTimeout = options.ConnectTimeout,
        })
        { Timeout = Timeout.InfiniteTimeSpan };
    }

    public void Dispose() => _client.Dispose();

    /// <summary>Whether a URL is on the hub's own host, the only one that is sent the token.</summary>
    public bool IsHub(Uri url) =>
        string.Equals(url.Scheme, _endpoint.Scheme, StringComparison.OrdinalIgnoreCase) &&
        string.Equals(url.IdnHost, _endpoint.IdnHost, StringComparison.OrdinalIgnoreCase) && url.Port == _endpoint.Port;

    /// <summary>
    /// Sends a request, following relative and same-host redirects. A redirect to another host is
    /// returned as it is when <paramref name="leaveHost"/> is false (the metadata HEAD), else followed
    /// without the token. Any other non-success status becomes a <see cref="NextTokenException"/>.
    /// </summary>
    public async Task<HttpResponseMessage> SendAsync(HttpMethod method, Uri url, long rangeFrom, bool leaveHost, TimeSpan headerTimeout,
                                                     HubTarget target, CancellationToken cancellation)
    {
        for (int hop = 0; ; hop++)
        {
            HttpResponseMessage response = await SendWithRetriesAsync(method, url, rangeFrom, headerTimeout, target, cancellation);
            int status = (int)response.StatusCode;
            if (status is >= 300 and < 400 && response.Headers.Location is { } location)
            {
                Uri next = location.IsAbsoluteUri ? location : new Uri(url, location);
                bool sameHost = string.Equals(next.Authority, url.Authority, StringComparison.OrdinalIgnoreCase) && next.Scheme == url.Scheme;
                if (!sameHost && !leaveHost) return response;
                if (hop >= MaxRedirects)
                {
                    response.Dispose();
                    throw new NextTokenException($"{Describe(target)}: more than {MaxRedirects} redirects from {url}");
                }
                response.Dispose();
                url = next;
                continue;
            }
            if (response.IsSuccessStatusCode) return response;
            using (response) throw Error(response, url, target);
        }
    }

    /// <summary>One request, retried with backoff while the answer is 408, 429 or 5xx or the connection fails.</summary>
    private async Task<HttpResponseMessage> SendWithRetriesAsync(HttpMethod method, Uri url, long rangeFrom, TimeSpan headerTimeout,
                                                                 HubTarget target, CancellationToken cancellation)
    {
        TimeSpan backoff = _options.RetryBaseDelay;
        for (int attempt = 0; ; attempt++)
        {
            using var request = new HttpRequestMessage(method, url);
            // The token goes to the hub only: a CDN gets a signed URL and must never see it.
            if (_options.Token is { } token && IsHub(url)) request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
            if (rangeFrom > 0) request.Headers.Range = new RangeHeaderValue(rangeFrom, null);
            request.Headers.UserAgent.ParseAdd("nexttoken/0.1");
            request.Headers.AcceptEncoding.ParseAdd("identity");
            HttpResponseMessage? response = null;
            string failure;
            using (var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellation))
            {
                timeout.CancelAfter(headerTimeout);
                try
                {
                    response = await _client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeout.Token);
                    if (!Retryable(response.StatusCode)) return response;
                    failure = $"HTTP {(int)response.StatusCode}";
                }
                catch (HttpRequestException error) when (error.HttpRequestError == HttpRequestError.NameResolutionError)
                {
                    // No network or a mistyped HF_ENDPOINT: waiting would not help.
                    throw Unreachable(url, target, error.Message, attempt + 1);
                }
                catch (HttpRequestException error)
                {
                    failure = error.Message;
                }
                catch (OperationCanceledException) when (!cancellation.IsCancellationRequested)
                {
                    failure = $"no answer within {headerTimeout.TotalSeconds:0.#} s";
                }
            }
            if (attempt >= _options.MaxRetries)
            {
                if (response is not null) return response; // the caller turns the last status into an error
                throw Unreachable(url, target, failure, attempt + 1);
            }
            TimeSpan wait = RetryAfter(response) ?? backoff;
            response?.Dispose();
            target.Notice($"{url.Host}: {failure}; retrying in {wait.TotalSeconds:0.#} s ({attempt + 1} of {_options.MaxRetries})");
            await _options.Delay(wait, cancellation);
            backoff = TimeSpan.FromTicks(Math.Min(_options.RetryMaxDelay.Ticks, backoff.Ticks * 2));
        }
    }

    private static NextTokenException Unreachable(Uri url, HubTarget target, string failure, int attempts) =>
        new($"cannot reach {url.GetLeftPart(UriPartial.Authority)} for {Describe(target)} ({failure}, {attempts} attempt{(attempts == 1 ? "" : "s")}); " +
            "give --model a local GGUF file or checkpoint, or set HF_HUB_OFFLINE=1 to use only the cache");

    private static bool Retryable(HttpStatusCode status) => (int)status is 408 or 429 or 500 or 502 or 503 or 504;

    /// <summary>The server's Retry-After, in seconds or as a date.</summary>
    private static TimeSpan? RetryAfter(HttpResponseMessage? response) => response?.Headers.RetryAfter switch
    {
        { Delta: { } delta } => delta,
        { Date: { } date } => date - DateTimeOffset.UtcNow is var wait && wait > TimeSpan.Zero ? wait : TimeSpan.Zero,
        _ => null,
    };

    public static string Describe(HubTarget target) => target.File is null ? target.Id.ToString() : $"{target.Id} {target.File}";

    /// <summary>One line for a failed request, from the hub's X-Error-Code and X-Error-Message where it sent them.</summary>
    public NextTokenException Error(HttpResponseMessage response, Uri url, HubTarget target)
    {
        int status = (int)response.StatusCode;
        string? code = Header(response, "X-Error-Code"), message = Header(response, "X-Error-Message");
        string detail = $"HTTP {status}{(code is null ? "" : " " + code)}{(message is null ? "" : ": " + message)}";
        string repo = target.Id.Repository, endpoint = _options.Endpoint;
        bool hasToken = _options.Token is not null;
        string text = code switch
        {
            "RevisionNotFound" => $"{repo} has no revision '{target.Id.Revision}' on {endpoint} ({detail})",
            "EntryNotFound" => $"{target.Id} has no file '{target.File}' on {endpoint} ({detail})",
            "GatedRepo" => hasToken
                ? $"{repo} is gated and the token from {_options.TokenSource} has no access yet: accept its terms at {endpoint}/{repo} with that account ({detail})"
                : $"{repo} is gated: accept its terms at {endpoint}/{repo}, then set HF_TOKEN to an access token of that account ({detail})",
            _ when message == "Invalid credentials in Authorization header" =>
                $"the hub rejected the token from {_options.TokenSource} as invalid; create a new one at {endpoint}/settings/tokens ({detail})",
            // The hub answers 401 for a repository that does not exist and for a private one it may not show.
            _ when code == "RepoNotFound" || (code is null && status == 401 && IsHub(url)) => hasToken
                ? $"repository {repo} not found on {endpoint}: check the name (if it is private, the token from {_options.TokenSource} has no access) ({detail})"
                : $"repository {repo} not found on {endpoint}: check the name (if it is private, set HF_TOKEN) ({detail})",
            _ when status == 403 => $"{Describe(target)}: access denied by {url.GetLeftPart(UriPartial.Authority)} ({detail})",
            _ when status == 429 => $"{Describe(target)}: rate-limited by {url.GetLeftPart(UriPartial.Authority)} after {_options.MaxRetries} retries; try again later ({detail})",
            _ => $"{Describe(target)}: {url.GetLeftPart(UriPartial.Path)} answered {detail}",
        };
        return new NextTokenException(text);
    }

    public static string? Header(HttpResponseMessage response, string name) =>
        response.Headers.TryGetValues(name, out var values) && values.FirstOrDefault() is { Length: > 0 } value ? value : null;
}
