namespace NextToken.Hub;

/// <summary>Where and how to reach the Hugging Face hub, from the same environment variables its Python client reads.</summary>
public sealed record HubOptions(string Endpoint, string CacheDirectory, string? Token, bool Offline)
{
    public const string DefaultEndpoint = "https://huggingface.co";

    /// <summary>Where the token came from, named in error messages (an environment variable or the token file).</summary>
    public string TokenSource { get; init; } = "HF_TOKEN";

    /// <summary>Time to open a connection.</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Time to wait for a response's headers (HF_HUB_ETAG_TIMEOUT, as huggingface_hub).</summary>
    public TimeSpan MetadataTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Time to wait for each read of a download's body (HF_HUB_DOWNLOAD_TIMEOUT); a stall past it resumes the download.</summary>
    public TimeSpan ReadTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Retries after a 408, 429, 5xx or a failed connection, and resumes of a download cut off without progress.</summary>
    public int MaxRetries { get; init; } = 5;

    /// <summary>First backoff delay; it doubles per retry up to <see cref="RetryMaxDelay"/>. A Retry-After header overrides it.</summary>
    public TimeSpan RetryBaseDelay { get; init; } = TimeSpan.FromSeconds(1);

    public TimeSpan RetryMaxDelay { get; init; } = TimeSpan.FromSeconds(8);

    /// <summary>How a backoff waits; tests replace it to record delays instead of sleeping.</summary>
    public Func<TimeSpan, CancellationToken, Task> Delay { get; init; } = Task.Delay;

    public static HubOptions FromEnvironment() => FromEnvironment(Environment.GetEnvironmentVariable);

    /// <summary>Reads the hub's environment variables through <paramref name="variable"/> (so tests can give their own).</summary>
    public static HubOptions FromEnvironment(Func<string, string?> variable)
    {
        string? Get(string name) => variable(name) is { Length: > 0 } value ? value : null;
        string userHome = Get("HOME") ?? Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        string home = Get("HF_HOME") ?? Path.Combine(Get("XDG_CACHE_HOME") ?? Path.Combine(userHome, ".cache"), "huggingface");
        string cache = Get("HF_HUB_CACHE") ?? Get("HUGGINGFACE_HUB_CACHE") ?? Path.Combine(home, "hub");
        // huggingface_hub's order: HF_TOKEN, the legacy HUGGING_FACE_HUB_TOKEN, then the file `hf auth login` writes.
        string? token = null, source = "HF_TOKEN";
        foreach (string name in (string[])["HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"])
            if (Get(name)?.Trim() is { Length: > 0 } t) { token = t; source = name; break; }
        if (token is null)
        {
            string tokenPath = Get("HF_TOKEN_PATH") ?? Path.Combine(home, "token");
            try
            {
                if (File.ReadAllText(tokenPath).Trim() is { Length: > 0 } t) { token = t; source = tokenPath; }
            }
            catch (Exception error) when (error is FileNotFoundException or DirectoryNotFoundException)
            {
                // not logged in
            }
        }
        var options = new HubOptions((Get("HF_ENDPOINT") ?? DefaultEndpoint).TrimEnd('/'), cache, token,
            IsTrue(Get("HF_HUB_OFFLINE") ?? Get("TRANSFORMERS_OFFLINE"))) { TokenSource = source };
        if (Seconds(Get("HF_HUB_ETAG_TIMEOUT")) is { } metadata) options = options with { MetadataTimeout = metadata };
        if (Seconds(Get("HF_HUB_DOWNLOAD_TIMEOUT")) is { } read) options = options with { ReadTimeout = read };
        return options;
    }

    /// <summary>huggingface_hub's truth values: 1, true, yes, on, in any case.</summary>
    public static bool IsTrue(string? value) => value?.Trim().ToUpperInvariant() is "1" or "TRUE" or "YES" or "ON";

    private static TimeSpan? Seconds(string? value) =>
        double.TryParse(value, System.Globalization.CultureInfo.InvariantCulture, out double s) && s > 0 ? TimeSpan.FromSeconds(s) : null;
}
