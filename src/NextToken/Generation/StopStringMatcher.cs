namespace NextToken.Generation;

/// <summary>
/// Finds stop strings in streamed text, which may span token boundaries: text that could still
/// turn out to begin a stop string is held back until the next token settles it.
/// </summary>
public sealed class StopStringMatcher(IReadOnlyList<string> stopStrings)
{
    private readonly string[] _stops = stopStrings.Where(s => s.Length > 0).ToArray();
    private readonly System.Text.StringBuilder _pending = new();

    public bool Stopped { get; private set; }

    /// <summary>Adds new text; returns the part that is safe to show now.</summary>
    public string Append(string text)
    {
        if (Stopped) return "";
        _pending.Append(text);
        string pending = _pending.ToString();
        int cut = -1;
        foreach (string stop in _stops)
        {
            int at = pending.IndexOf(stop, StringComparison.Ordinal);
            if (at >= 0 && (cut < 0 || at < cut)) cut = at;
        }
        if (cut >= 0)
        {
            Stopped = true;
            _pending.Clear();
            return pending[..cut];
        }
        int hold = 0;
        foreach (string stop in _stops)
            for (int length = Math.Min(stop.Length - 1, pending.Length); length > hold; length--)
                if (pending.AsSpan(pending.Length - length).SequenceEqual(stop.AsSpan(0, length))) { hold = length; break; }
        _pending.Remove(0, pending.Length - hold);
        return pending[..^hold];
    }

    /// <summary>The held-back text, when generation ends for another reason.</summary>
    public string Flush()
    {
        string rest = Stopped ? "" : _pending.ToString();
        _pending.Clear();
        return rest;
    }
}
