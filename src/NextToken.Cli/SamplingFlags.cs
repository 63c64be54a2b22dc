using System.CommandLine;
using System.Globalization;
using NextToken.Sampling;

namespace NextToken.Cli;

/// <summary>The sampler's command-line options, shared by <c>next --explain</c>, <c>generate</c> and <c>chat</c>.</summary>
internal sealed class SamplingFlags
{
    private static readonly string PresetHelp = string.Join("; ", SamplingOptions.Presets.Select(p =>
        $"{p.Key}: temperature {p.Value.Temperature}, top-k {p.Value.TopK}, top-p {p.Value.TopP}, min-p {p.Value.MinP}"));

    public readonly Option<string?> Mode = new("--mode") { Description = $"Preset, overridden by explicit flags. {PresetHelp}" };
    public readonly Option<float?> Temperature = new("--temperature") { Description = "Divide logits by T before the draw; 0 = greedy, no draw (default 0.8)" };
    public readonly Option<int?> TopK = new("--top-k") { Description = "Keep the k best tokens; 0 = off (default 40)" };
    public readonly Option<float?> TopP = new("--top-p") { Description = "Keep the smallest best-first set whose probability reaches p; 1 = off (default 0.95)" };
    public readonly Option<float?> MinP = new("--min-p") { Description = "Keep tokens at least p × the best token's probability; 0 = off (default 0.05)" };
    public readonly Option<float?> TypicalP = new("--typical-p") { Description = "Locally typical sampling mass; 1 = off (default 1)" };
    public readonly Option<float?> RepeatPenalty = new("--repeat-penalty") { Description = "Penalty for tokens in the last N; 1 = off (default 1)" };
    public readonly Option<float?> PresencePenalty = new("--presence-penalty") { Description = "Subtracted once from seen tokens' logits (default 0)" };
    public readonly Option<float?> FrequencyPenalty = new("--frequency-penalty") { Description = "Subtracted per occurrence from seen tokens' logits (default 0)" };
    public readonly Option<int?> PenaltyLastN = new("--penalty-last-n") { Description = "How many recent tokens the penalties see (default 64)" };
    public readonly Option<string?> Order = new("--sampler-order") { Description = "llama (penalties, top-k, typical, top-p, min-p, temperature) or hf (penalties, temperature, top-k, top-p, min-p, typical); default llama" };
    public readonly Option<string[]> LogitBias = new("--logit-bias") { Description = "ID=BIAS added to a token's logit, e.g. 198=-inf; repeatable", AllowMultipleArgumentsPerToken = false };
    public readonly Option<ulong?> Seed = new("--seed") { Description = "Seed of the draw (xoshiro256**); omitted: a random seed, reported so the run can be replayed" };

    public void AddTo(Command command)
    {
        foreach (Option option in new Option[] { Mode, Temperature, TopK, TopP, MinP, TypicalP, RepeatPenalty, PresencePenalty, FrequencyPenalty, PenaltyLastN, Order, LogitBias, Seed })
            command.Options.Add(option);
    }

    public SamplingOptions Build(ParseResult parse, SamplingOptions? fallback = null)
    {
        SamplingOptions options = fallback ?? new SamplingOptions();
        if (parse.GetValue(Mode) is { } mode)
            options = SamplingOptions.Presets.TryGetValue(mode.ToLowerInvariant(), out SamplingOptions? preset)
                ? preset
                : throw new NextTokenException($"--mode '{mode}' is not a preset; expected one of {string.Join(", ", SamplingOptions.Presets.Keys)}");
        // Each flag is checked here, with its name: NaN and ±Infinity slip through range comparisons.
        float? Above0(Option<float?> option, float max, string range) => CommonOptions.Checked(parse, option) is { } v
            ? v > 0 && v <= max ? v : throw new NextTokenException($"{option.Name} must be {range}, not {v.ToString(CultureInfo.InvariantCulture)}")
            : null;
        options = options with
        {
            Temperature = CommonOptions.Checked(parse, Temperature, 0) ?? options.Temperature,
            TopK = CommonOptions.Checked(parse, TopK, 0) ?? options.TopK,
            TopP = Above0(TopP, 1, "in (0, 1] (1 = off)") ?? options.TopP,
            MinP = CommonOptions.Checked(parse, MinP, 0, 1) ?? options.MinP,
            TypicalP = Above0(TypicalP, 1, "in (0, 1] (1 = off)") ?? options.TypicalP,
            RepeatPenalty = Above0(RepeatPenalty, float.MaxValue, "above 0 (1 = off)") ?? options.RepeatPenalty,
            PresencePenalty = CommonOptions.Checked(parse, PresencePenalty) ?? options.PresencePenalty,
            FrequencyPenalty = CommonOptions.Checked(parse, FrequencyPenalty) ?? options.FrequencyPenalty,
            PenaltyLastN = CommonOptions.Checked(parse, PenaltyLastN, 0) ?? options.PenaltyLastN,
            Order = parse.GetValue(Order)?.ToLowerInvariant() switch
            {
                null => options.Order,
                "llama" or "llama.cpp" => SamplerOrder.LlamaCpp,
                "hf" or "huggingface" => SamplerOrder.HuggingFace,
                var other => throw new NextTokenException($"--sampler-order '{other}' is unknown; expected llama or hf"),
            },
            LogitBias = ParseBias(parse.GetValue(LogitBias) ?? [], options.LogitBias),
        };
        options.Validate();
        return options;
    }

    private static IReadOnlyDictionary<int, float> ParseBias(string[] entries, IReadOnlyDictionary<int, float> existing)
    {
        if (entries.Length == 0) return existing;
        var bias = new Dictionary<int, float>(existing);
        foreach (string entry in entries)
        {
            string[] parts = entry.Split('=', 2);
            if (parts.Length != 2 || !int.TryParse(parts[0], CultureInfo.InvariantCulture, out int id))
                throw new NextTokenException($"--logit-bias '{entry}': expected ID=BIAS, e.g. 198=-2.5 or 198=-inf");
            // -inf bans a token; NaN or +inf would turn the whole distribution into NaN.
            float value = parts[1].Trim().ToLowerInvariant() switch
            {
                "-inf" or "-infinity" => float.NegativeInfinity,
                var text when float.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out float v) && float.IsFinite(v) => v,
                var text when float.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out float v) && float.IsNegativeInfinity(v) => v,
                var text when text is "inf" or "+inf" or "infinity" or "+infinity" || float.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out _) =>
                    throw new NextTokenException($"--logit-bias '{entry}': the bias must be a finite number or -inf (which bans the token), not '{parts[1]}'"),
                _ => throw new NextTokenException($"--logit-bias '{entry}': '{parts[1]}' is not a number"),
            };
            if (id < 0) throw new NextTokenException($"--logit-bias '{entry}': token id {id} is negative");
            bias[id] = value;
        }
        return bias;
    }
}
