namespace NextToken;

/// <summary>
/// Base of every error the engine reports about its input (a file, a value, an argument). The
/// message is written for the user: it names the file, offset or field and what was expected.
/// </summary>
public class NextTokenException : Exception
{
    public NextTokenException(string message) : base(message) { }
    public NextTokenException(string message, Exception inner) : base(message, inner) { }
}
