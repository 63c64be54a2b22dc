namespace NextToken.Sampling;

/// <summary>The two stage orders in common use; the same settings sample differently under each.</summary>
public enum SamplerOrder
{
    /// <summary>llama.cpp: penalties → top-k → typical → top-p → min-p → temperature → draw.</summary>
    LlamaCpp,
    /// <summary>Hugging Face transformers: penalties → temperature → top-k → top-p → min-p → typical → draw.</summary>
    HuggingFace,
}

/// <summary>
/// Every knob of the sampler. Defaults are llama.cpp's; a value that turns a stage off
/// (top-k 0, top-p 1, min-p 0, typical-p 1, penalties 1/0/0) removes it from the chain.
/// Temperature 0 means greedy: the best token, with no random draw.
/// </summary>
public sealed record SamplingOptions
{
    public float Temperature { get; init; } = 0.8f;
    public int TopK { get; init; } = 40;
    public float TopP { get; init; } = 0.95f;
    public float MinP { get; init; } = 0.05f;
    public float TypicalP { get; init; } = 1.0f;
    public float RepeatPenalty { get; init; } = 1.0f;
    public float PresencePenalty { get; init; }
    public float FrequencyPenalty { get; init; }
    /// <summary>How many of the latest tokens the penalties look at.</summary>
    public int PenaltyLastN { get; init; } = 64;
    public IReadOnlyDictionary<int, float> LogitBias { get; init; } = new Dictionary<int, float>();
    public SamplerOrder Order { get; init; } = SamplerOrder.LlamaCpp;

    /// <summary>Greedy decoding: always the top token.</summary>
    public static SamplingOptions Greedy { get; } = new() { Temperature = 0 };

    /// <summary>Exploratory (the posts' planning mode): hot, wide nucleus.</summary>
    public static SamplingOptions Plan { get; } = new() { Temperature = 1.0f, TopK = 0, TopP = 0.95f, MinP = 0.02f };

    /// <summary>Precise (the posts' coding mode): cool, narrow.</summary>
    public static SamplingOptions Code { get; } = new() { Temperature = 0.2f, TopK = 40, TopP = 0.9f, MinP = 0.05f };

    public static IReadOnlyDictionary<string, SamplingOptions> Presets { get; } = new Dictionary<string, SamplingOptions>
    {
        ["plan"] = Plan,
        ["code"] = Code,
        ["greedy"] = Greedy,
    };

    public void Validate()
    {
        if (float.IsNaN(Temperature) || Temperature < 0) throw new NextTokenException($"temperature must be 0 or more, not {Temperature}");
        if (TopK < 0) throw new NextTokenException($"top-k must be 0 (off) or more, not {TopK}");
        if (!(TopP > 0 && TopP <= 1)) throw new NextTokenException($"top-p must be in (0, 1], not {TopP}");
        if (!(MinP >= 0 && MinP <= 1)) throw new NextTokenException($"min-p must be in [0, 1], not {MinP}");
        if (!(TypicalP > 0 && TypicalP <= 1)) throw new NextTokenException($"typical-p must be in (0, 1], not {TypicalP}");
        if (!(RepeatPenalty > 0)) throw new NextTokenException($"repeat penalty must be above 0, not {RepeatPenalty}");
        if (PenaltyLastN < 0) throw new NextTokenException($"penalty window must be 0 or more, not {PenaltyLastN}");
    }
}
