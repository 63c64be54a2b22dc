namespace NextToken.Chat;

/// <summary>
/// Bounds that keep a hostile template (a GGUF's chat template is untrusted input) from
/// overflowing the stack, hanging or exhausting memory. <see cref="MaxRange"/> is Jinja2's
/// SandboxedEnvironment's MAX_RANGE; the others are far beyond what any real chat template needs
/// (the 35 fixture templates nest at most ~10 deep and render a few kB per message).
/// </summary>
internal static class JinjaLimits
{
    /// <summary>Nesting of brackets, unary operators and blocks the parser accepts.</summary>
    public const int MaxNesting = 100;

    /// <summary>Depth of an expression tree (also left-deep chains such as a+b+c…) and of a value (lists in lists) the renderer walks.</summary>
    public const int MaxDepth = 500;

    /// <summary>Items <c>range()</c> may produce.</summary>
    public const int MaxRange = 100_000;

    /// <summary>Loop iterations in one rendering, all loops together.</summary>
    public const long MaxLoopIterations = 1_000_000;

    /// <summary>Characters of the output and of any string an operator or filter builds.</summary>
    public const int MaxStringLength = 16 << 20;

    /// <summary>Items of any list an operator or filter builds.</summary>
    public const int MaxListLength = 1_000_000;

    /// <summary>
    /// Work in one rendering, counted as characters and items that operators, filters and calls
    /// read or produce: a few seconds at most, where a real conversation (even 1 MB of text)
    /// costs some ten times less.
    /// </summary>
    public const long MaxWork = 100_000_000;
}
