namespace NextToken.Gguf;

/// <summary>A GGUF file that is malformed, truncated, or lacks what the caller needs.</summary>
public sealed class GgufFormatException : NextTokenException
{
    public GgufFormatException(string path, long? offset, string message)
        : base(offset is null ? $"{path}: {message}" : $"{path}: at byte offset {offset}: {message}")
    {
        FilePath = path;
        Offset = offset;
    }

    public string FilePath { get; }
    public long? Offset { get; }
}
