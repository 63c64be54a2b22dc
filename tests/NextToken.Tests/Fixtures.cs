namespace NextToken.Tests;

/// <summary>Locates the read-only fixtures in <c>../shared/fixtures</c> beside the repository.</summary>
public static class Fixtures
{
    private static readonly Lazy<string> Root = new(FindRoot);

    public static string Dir => Root.Value;

    public static string Path(params string[] parts) => System.IO.Path.Combine([Dir, .. parts]);

    public static string Model(string file) => Path("models", file);

    public static string Vocab(string file) => Path("vocab", file);

    public static string Expected(string file) => Path("expected", file);

    private static string FindRoot()
    {
        if (Environment.GetEnvironmentVariable("NEXTTOKEN_FIXTURES") is { Length: > 0 } fromEnv)
            return fromEnv;
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
        {
            if (File.Exists(System.IO.Path.Combine(dir.FullName, "NextToken.slnx")))
            {
                string candidate = System.IO.Path.GetFullPath(System.IO.Path.Combine(dir.FullName, "..", "shared", "fixtures"));
                if (Directory.Exists(candidate)) return candidate;
                throw new DirectoryNotFoundException($"fixtures not found at {candidate}; check out the project with shared/ beside it or set NEXTTOKEN_FIXTURES");
            }
        }
        throw new DirectoryNotFoundException("repository root (NextToken.slnx) not found above " + AppContext.BaseDirectory);
    }
}
