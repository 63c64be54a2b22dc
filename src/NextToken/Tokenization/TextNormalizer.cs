using System.Text;

namespace NextToken.Tokenization;

/// <summary>
/// tokenizer.json normalizers that SentencePiece-converted vocabularies use (<c>Prepend</c>,
/// <c>Replace</c> of a literal string, <c>NFC</c>, in a <c>Sequence</c>), plus the text side of the
/// <c>Metaspace</c> pre-tokenizer. Each output character remembers which input character it came from.
/// </summary>
internal sealed class TextNormalizer
{
    internal abstract record Step
    {
        /// <summary>Puts <see cref="Text"/> in front of a non-empty segment (Metaspace: only if it does not already start with it; FirstOnly: only the input's first segment).</summary>
        public sealed record Prepend(string Text, bool UnlessPresent = false, bool FirstOnly = false) : Step;

        public sealed record Replace(string From, string To) : Step;

        public sealed record Nfc : Step;
    }

    private readonly Step[] _steps;

    public TextNormalizer(IEnumerable<Step> steps) => _steps = steps.ToArray();

    public bool IsEmpty => _steps.Length == 0;

    /// <summary>Whether the normalizer may put text in front (then decoding drops one leading space).</summary>
    public bool Prepends => _steps.Any(s => s is Step.Prepend);

    /// <summary>
    /// The normalized form of text[start..end); origin[k] is the input index of output character k
    /// (origin[length] = end).
    /// </summary>
    public string Apply(string text, int start, int end, bool firstSegment, out int[] origin)
    {
        string current = text.Substring(start, end - start);
        origin = new int[current.Length + 1];
        for (int k = 0; k <= current.Length; k++) origin[k] = start + k;
        foreach (Step step in _steps)
        {
            switch (step)
            {
                case Step.Prepend p when current.Length > 0 && (!p.FirstOnly || firstSegment) && !(p.UnlessPresent && current.StartsWith(p.Text, StringComparison.Ordinal)):
                {
                    var shifted = new int[origin.Length + p.Text.Length];
                    Array.Fill(shifted, origin[0], 0, p.Text.Length);
                    origin.CopyTo(shifted, p.Text.Length);
                    (current, origin) = (p.Text + current, shifted);
                    break;
                }
                case Step.Replace r when r.From.Length > 0 && current.Contains(r.From, StringComparison.Ordinal):
                {
                    var sb = new StringBuilder(current.Length);
                    var map = new List<int>(origin.Length);
                    for (int k = 0; k < current.Length;)
                    {
                        if (string.CompareOrdinal(current, k, r.From, 0, r.From.Length) == 0)
                        {
                            sb.Append(r.To);
                            for (int j = 0; j < r.To.Length; j++) map.Add(origin[k]);
                            k += r.From.Length;
                        }
                        else
                        {
                            sb.Append(current[k]);
                            map.Add(origin[k]);
                            k++;
                        }
                    }
                    map.Add(origin[^1]);
                    (current, origin) = (sb.ToString(), map.ToArray());
                    break;
                }
                case Step.Nfc when !current.IsNormalized(NormalizationForm.FormC):
                {
                    // Composition changes lengths: every character then points at the start of the segment's text.
                    int first = origin[0], last = origin[^1];
                    current = current.Normalize(NormalizationForm.FormC);
                    origin = new int[current.Length + 1];
                    Array.Fill(origin, first);
                    origin[^1] = last;
                    break;
                }
            }
        }
        return current;
    }
}
