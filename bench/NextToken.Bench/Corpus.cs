namespace NextToken.Bench;

/// <summary>Paths to the shared fixtures, found from wherever BenchmarkDotNet runs the benchmark.</summary>
public static class Corpus
{
    public static string Shared(params string[] parts)
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "NextToken.slnx")))
                return Path.GetFullPath(Path.Combine([dir.FullName, "..", "shared", .. parts]));
        }
        throw new DirectoryNotFoundException("repository root (NextToken.slnx) not found above " + AppContext.BaseDirectory);
    }

    /// <summary>Real English prose: the seed blog posts, concatenated.</summary>
    public static string Text() =>
        string.Concat(Directory.GetFiles(Shared("seeds")).Order().Select(File.ReadAllText));
}
