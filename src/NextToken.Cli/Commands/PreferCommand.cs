using System.CommandLine;
using System.Globalization;
using System.Text.RegularExpressions;
using NextToken.Chat;
using NextToken.Generation;
using NextToken.Models;
using NextToken.Sampling;
using NextToken.Training;
using Spectre.Console;

namespace NextToken.Cli.Commands;

/// <summary>
/// <c>nexttoken prefer</c>: the preference loop in one command. For each prompt, N candidates from
/// the inference engine's generator with seeds S, S+1, …; each scored by a reward model or a rule;
/// DPO on (best, worst) of every prompt against a frozen copy; the table of candidates with their
/// scores and log-probabilities before and after.
/// </summary>
internal static class PreferCommand
{
    /// <summary>A scoring rule from the command line (higher is better).</summary>
    internal static Func<string, double> Rule(string rule)
    {
        int colon = rule.IndexOf(':');
        string kind = colon < 0 ? rule : rule[..colon], argument = colon < 0 ? "" : rule[(colon + 1)..];
        if (colon >= 0 && argument.Length == 0) throw new NextTokenException($"--score '{rule}': nothing after the colon");
        return kind switch
        {
            "length" when colon < 0 => text => text.Length,
            "short" when colon < 0 => text => -text.Length,
            "contains" when colon > 0 => text => text.Contains(argument, StringComparison.Ordinal) ? 1 : 0,
            "count" when colon > 0 => text => CountOf(text, argument),
            "regex" when colon > 0 => Regex(argument),
            _ => throw new NextTokenException($"--score '{rule}': expected length, short, contains:TEXT, count:TEXT or regex:PATTERN"),
        };
    }

    /// <summary>A candidate for a table cell: line breaks as ⏎, other control characters as ·, at most 60 characters.</summary>
    private static string Printable(string text)
    {
        var chars = text.Select(c => c == '\n' ? '⏎' : char.IsControl(c) ? '·' : c).ToArray();
        return chars.Length > 60 ? new string(chars, 0, 60) + "…" : new string(chars);
    }

    private static int CountOf(string text, string part)
    {
        int count = 0;
        for (int i = text.IndexOf(part, StringComparison.Ordinal); i >= 0; i = text.IndexOf(part, i + part.Length, StringComparison.Ordinal)) count++;
        return count;
    }

    private static Func<string, double> Regex(string pattern)
    {
        Regex regex;
        try
        {
            regex = new Regex(pattern, RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1));
        }
        catch (ArgumentException error)
        {
            throw new NextTokenException($"--score regex:{pattern}: {error.Message}");
        }
        return text => regex.IsMatch(text) ? 1 : 0;
    }

    private sealed record Candidate(int Index, ulong Seed, int[] Tokens, string Text, double Score)
    {
        public string Role { get; set; } = "";
        public double Before { get; set; } = double.NaN;
        public double After { get; set; } = double.NaN;
    }

    public static Command Create()
    {
        var flags = new TrainingFlags(batchSize: 1, maxIters: 10, lr: 1e-4f, weightDecay: 0f);
        var prompts = new Option<string[]>("--prompt", "-p") { Description = "A prompt; repeat for several", AllowMultipleArgumentsPerToken = false };
        var promptsFile = new Option<string?>("--prompts") { Description = "A text file of prompts, one per line" };
        var candidates = new Option<int>("--candidates", "-n") { Description = "Candidates per prompt (seeds S, S+1, …)", DefaultValueFactory = _ => 4 };
        var maxTokens = new Option<int>("--max-tokens") { Description = "Longest candidate in tokens", DefaultValueFactory = _ => 24 };
        var stop = new Option<string[]>("--stop") { Description = "End a candidate at this text (kept in it); repeatable", AllowMultipleArgumentsPerToken = false };
        var rewardModel = new Option<string?>("--reward-model") { Description = "Score candidates with this reward model (from 'reward train')" };
        var score = new Option<string?>("--score")
        {
            Description = "Score candidates with a rule instead (higher is better): length (characters), short (fewer characters), contains:TEXT (1 or 0), count:TEXT (occurrences), regex:PATTERN (1 or 0)",
        };
        var beta = new Option<float>("--beta") { Description = "DPO's β", DefaultValueFactory = _ => 0.1f };
        var templateFile = TrainingFlags.TemplateFile();
        var templateName = TrainingFlags.TemplateName();
        templateName.Description = "Render each prompt as a user turn with this built-in chat format (default: the model's own template if it has one, else the prompt as plain text)";
        var json = CommonOptions.Json();
        var sampling = new SamplingFlags();
        var command = new Command("prefer", "Sample N candidates per prompt, score them (reward model or rule), DPO on best vs worst, and show log-probabilities before and after")
        {
            prompts, promptsFile, candidates, maxTokens, stop, rewardModel, score, beta, templateFile, templateName, json,
        };
        flags.AddTo(command, batch: false, seed: false);
        sampling.AddTo(command);
        command.SetAction((parse, cancellation) => CommonOptions.RunAsync(parse, async () =>
        {
            List<string> promptTexts = [.. parse.GetValue(prompts) ?? []];
            if (parse.GetValue(promptsFile) is { } file) promptTexts.AddRange(File.ReadAllLines(file).Where(l => l.Trim().Length > 0));
            if (promptTexts.Count == 0) throw new NextTokenException("give --prompt TEXT (repeatable) or --prompts FILE");
            int n = parse.GetValue(candidates);
            if (n < 2) throw new NextTokenException($"--candidates must be at least 2, not {n}");
            string? rewardPath = parse.GetValue(rewardModel), rule = parse.GetValue(score);
            if ((rewardPath is null) == (rule is null)) throw new NextTokenException("give exactly one of --reward-model FILE and --score RULE");
            Func<string, double>? ruleScore = rule is null ? null : Rule(rule);
            int maxNew = CommonOptions.Checked(parse, maxTokens, 1);

            string initPath = parse.GetValue(flags.InitFrom)!;
            TrainingFlags.StartingModel model = TrainingFlags.Load(initPath);
            int threads = parse.GetValue(flags.Threads) ?? Environment.ProcessorCount;
            RewardScorer? scorer = rewardPath is null ? null : RewardScorer.Load(rewardPath, null, null, threads);
            ChatTemplate? template = parse.GetValue(templateFile) is not null || parse.GetValue(templateName) is not null || model.ChatTemplate is not null
                ? TrainingFlags.Template(model, parse.GetValue(templateFile), parse.GetValue(templateName)) : null;
            SamplingOptions samplingOptions = sampling.Build(parse);
            ulong firstSeed = parse.GetValue(sampling.Seed) ?? Xoshiro256StarStar.RandomSeed();
            int nCtx = model.Layout.Shape.NCtx;

            // Candidates from the inference engine's generator, one seed each.
            var table = new List<(string Prompt, int[] PromptTokens, List<Candidate> Candidates)>();
            using (LanguageModel lm = ModelLoader.Load(initPath))
            {
                lm.Threads = threads;
                foreach (string prompt in promptTexts)
                {
                    int[] promptTokens = template is null ? lm.Tokenizer.Encode(prompt, lm.Tokenizer.Vocabulary.AddBos).Ids
                        : ChatPrompt.Tokens(lm, [new ChatMessage("user", prompt)], template);
                    if (promptTokens.Length == 0) throw new NextTokenException($"prompt '{prompt}' has no tokens");
                    if (promptTokens.Length + 1 > nCtx) throw new NextTokenException($"prompt '{prompt}' is {promptTokens.Length} tokens; the context of {nCtx} leaves no room for a candidate");
                    var list = new List<Candidate>();
                    for (int k = 0; k < n; k++)
                    {
                        var options = new GenerationOptions
                        {
                            MaxTokens = Math.Min(maxNew, nCtx - promptTokens.Length), Sampling = samplingOptions, Seed = firstSeed + (ulong)k,
                            StopStrings = parse.GetValue(stop) ?? [],
                        };
                        var generator = new Generator(lm);
                        var text = new System.Text.StringBuilder();
                        await foreach (GeneratedToken token in generator.GenerateAsync(promptTokens, options, cancellation)) text.Append(token.Text);
                        text.Append(generator.TrailingText);
                        string candidateText = text.ToString();
                        double value = scorer?.Score(prompt, candidateText) ?? ruleScore!(candidateText);
                        list.Add(new Candidate(k + 1, generator.Seed, [.. generator.Generated], candidateText, value));
                    }
                    table.Add((prompt, promptTokens, list));
                }
            }

            // Best vs worst of each prompt (ties: the earlier seed is best, the later worst); a prompt whose candidates all score the same gives no pair.
            var pairs = new List<PreferencePair>();
            var scored = new List<(int[] Sequence, int PromptLength, Candidate Candidate)>();
            foreach (var (_, promptTokens, list) in table)
            {
                var usable = list.Where(c => c.Tokens.Length > 0).ToList();
                foreach (Candidate c in usable) scored.Add(([.. promptTokens, .. c.Tokens], promptTokens.Length, c));
                if (usable.Count < 2) continue;
                Candidate best = usable.OrderByDescending(c => c.Score).First(), worst = usable.OrderBy(c => c.Score).ThenByDescending(c => c.Index).First();
                if (best.Score == worst.Score) continue;
                best.Role = "best";
                worst.Role = "worst";
                pairs.Add(new PreferencePair(promptTokens.Length, [.. promptTokens, .. best.Tokens], [.. promptTokens, .. worst.Tokens]));
            }
            if (pairs.Count == 0) throw new NextTokenException("every prompt's candidates scored the same: no preference pair to learn from (more candidates, another rule, or a higher temperature)");

            PretrainOptions trainOptions = flags.Build(parse, nCtx) with { BatchSize = pairs.Count, Seed = (int)(firstSeed & int.MaxValue) };
            float[] reference = (float[])model.Parameters.Clone();
            var trainer = PreferenceTrainer.Dpo(model.Layout, model.Parameters, reference, CommonOptions.Checked(parse, beta, 0), pairs, trainOptions);
            foreach (var (sequence, promptLength, c) in scored) c.Before = trainer.Losses.LogProb(reference, sequence, promptLength, out _, out _);
            bool asJson = parse.GetValue(json);
            var steps = new List<PreferenceStepReport>();
            TrainingFlags.Progress(trainOptions.MaxIters, asJson, "dpo", _ =>
            {
                PreferenceStepReport r = trainer.TrainStep();
                steps.Add(r);
                return string.Create(CultureInfo.InvariantCulture, $"step {r.Step + 1}/{trainOptions.MaxIters} loss {r.Loss:F4}");
            });
            foreach (var (sequence, promptLength, c) in scored) c.After = trainer.Losses.LogProb(trainer.Parameters, sequence, promptLength, out _, out _);
            string outPath = parse.GetValue(flags.Out)!;
            model.Layout.Save(outPath, trainer.Parameters, model.Vocabulary, $"nexttoken-prefer-gpt2 ({trainer.Step} DPO steps)");

            if (asJson)
            {
                JsonOutput.Write(new
                {
                    sampling = samplingOptions.ToString(),
                    scoring = rewardPath ?? rule,
                    prompts = table.Select(t => new
                    {
                        prompt = t.Prompt,
                        candidates = t.Candidates.Select(c => new
                        {
                            index = c.Index, seed = c.Seed, text = c.Text, tokens = c.Tokens, score = c.Score, role = c.Role,
                            logp_before = double.IsNaN(c.Before) ? (double?)null : c.Before, logp_after = double.IsNaN(c.After) ? (double?)null : c.After,
                        }),
                    }),
                    steps = steps.Select(s => new { step = s.Step, loss = s.Loss, accuracy = s.Accuracy }),
                    output = outPath,
                });
                return 0;
            }
            foreach (var (prompt, _, list) in table)
            {
                var view = new Table().Title(Markup.Escape(prompt)).AddColumns("#", "seed", "candidate", "score", "log p before", "log p after", "Δ", "");
                foreach (Candidate c in list)
                    view.AddRow(c.Index.ToString(CultureInfo.InvariantCulture), c.Seed.ToString(CultureInfo.InvariantCulture),
                                Markup.Escape(Printable(c.Text)), TrainingFlags.F(c.Score, "G4"),
                                TrainingFlags.F(c.Before, "F2"), TrainingFlags.F(c.After, "F2"), TrainingFlags.F(c.After - c.Before, "+0.00;-0.00"),
                                c.Role == "best" ? "[green]best[/]" : c.Role == "worst" ? "[red]worst[/]" : "");
                AnsiConsole.Write(view);
                AnsiConsole.WriteLine();
            }
            Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{pairs.Count} pairs; DPO {steps.Count} steps, loss {steps[0].Loss:F4} → {steps[^1].Loss:F4}; wrote {outPath}"));
            return 0;
        }));
        return command;
    }
}
