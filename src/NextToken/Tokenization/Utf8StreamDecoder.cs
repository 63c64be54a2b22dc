using System.Text;

namespace NextToken.Tokenization;

/// <summary>
/// Turns a stream of token bytes into text without ever emitting half a UTF-8 character: bytes
/// of an unfinished character are held back until the token that completes it arrives.
/// </summary>
public sealed class Utf8StreamDecoder
{
    private readonly Decoder _decoder = new UTF8Encoding(false, false).GetDecoder();
    private char[] _chars = new char[64];

    public string Append(ReadOnlySpan<byte> bytes)
    {
        int needed = _decoder.GetCharCount(bytes, flush: false);
        if (needed > _chars.Length) _chars = new char[Math.Max(needed, _chars.Length * 2)];
        int written = _decoder.GetChars(bytes, _chars, flush: false);
        return new string(_chars, 0, written);
    }

    /// <summary>Ends the stream; an unfinished character becomes U+FFFD.</summary>
    public string Flush()
    {
        int written = _decoder.GetChars(ReadOnlySpan<byte>.Empty, _chars, flush: true);
        return new string(_chars, 0, written);
    }
}
