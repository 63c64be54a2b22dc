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
        options = options with
        {
            Temperature = parse.GetValue(Temperature) ?? options.Temperature,
            TopK = parse.GetValue(TopK) ?? options.TopK,
            TopP = parse.GetValue(TopP) ?? options.TopP,
            MinP = parse.GetValue(MinP) ?? options.MinP,
            TypicalP = parse.GetValue(TypicalP) ?? options.TypicalP,
            RepeatPenalty = parse.GetValue(RepeatPenalty) ?? options.RepeatPenalty,
            PresencePenalty = parse.GetValue(PresencePenalty) ?? options.PresencePenalty,
            FrequencyPenalty = parse.GetValue(FrequencyPenalty) ?? options.FrequencyPenalty,
            PenaltyLastN = parse.GetValue(PenaltyLastN) ?? options.PenaltyLastN,
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
            float value = parts[1].Trim().ToLowerInvariant() switch
            {
                "-inf" => float.NegativeInfinity,
                "inf" or "+inf" => float.PositiveInfinity,
                var text when float.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out float v) => v,
                _ => throw new NextTokenException($"--logit-bias '{entry}': '{parts[1]}' is not a number"),
            };
            bias[id] = value;
        }
        return bias;
    }
}
