using System.Text;

namespace NextToken.Tokenization;

/// <summary>Renders token bytes so that whitespace and partial characters can be seen.</summary>
public static class VisibleText
{
    /// <summary>Spaces become '␣', newlines '↵', tabs '⇥'; other control characters and
    /// bytes that do not form a whole UTF-8 character are written as &lt;0xNN&gt;.</summary>
    public static string Of(ReadOnlySpan<byte> bytes)
    {
        var sb = new StringBuilder();
        while (!bytes.IsEmpty)
        {
            var status = Rune.DecodeFromUtf8(bytes, out Rune rune, out int consumed);
            if (status != System.Buffers.OperationStatus.Done)
            {
                sb.Append($"<0x{bytes[0]:X2}>");
                bytes = bytes[1..];
                continue;
            }
            bytes = bytes[consumed..];
            switch (rune.Value)
            {
                case ' ': sb.Append('␣'); break;
                case '\n': sb.Append('↵'); break;
                case '\t': sb.Append('⇥'); break;
                case < 0x20 or 0x7F: sb.Append($"<0x{rune.Value:X2}>"); break;
                default: sb.Append(rune.ToString()); break;
            }
        }
        return sb.ToString();
    }
}
