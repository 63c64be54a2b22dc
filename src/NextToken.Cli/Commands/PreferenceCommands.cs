using System.CommandLine;
using System.Globalization;
using NextToken.Chat;
using NextToken.Gguf;
using NextToken.Tokenization;
using NextToken.Training;
using Spectre.Console;

namespace NextToken.Cli.Commands;

/// <summary><c>nexttoken reward train|score</c> and <c>nexttoken dpo</c>: learning from preference pairs.</summary>
internal static class PreferenceCommands
{
    private sealed class PairOptions
    {
        public readonly Option<string> Data = new("--data") { Description = "Preference pairs, JSONL: one {\"prompt\": …, \"chosen\": …, \"rejected\": …} per line", Required = true };
        public readonly Option<int?> MaxLength = new("--max-length") { Description = "Tokens per sequence (prompt + answer; a longer answer is cut, a longer prompt loses its start); default: the model's context" };
        public readonly Option<int?> Limit = new("--limit") { Description = "Use only the first N pairs of the file" };
        public readonly Option<string?> TemplateFile = TrainingFlags.TemplateFile();
        public readonly Option<string?> TemplateName = TrainingFlags.TemplateName();

        public void AddTo(Command command)
        {
            foreach (Option option in new Option[] { Data, MaxLength, Limit, TemplateFile, TemplateName }) command.Options.Add(option);
        }

        /// <summary>The pairs as tokens: the prompt a user turn, each answer the assistant turn, through the chat template.</summary>
        public List<PreferencePair> Read(ParseResult parse, TrainingFlags.StartingModel model)
        {
            ChatTemplate template = TrainingFlags.Template(model, parse.GetValue(TemplateFile), parse.GetValue(TemplateName));
            string path = parse.GetValue(Data)!;
            List<PreferenceText> texts = ChatData.ReadPairs(path);
            if (parse.GetValue(Limit) is { } limit)
            {
                if (limit < 1) throw new NextTokenException($"--limit must be at least 1, not {limit}");
                texts = texts[..Math.Min(limit, texts.Count)];
            }
            int maxLength = parse.GetValue(MaxLength) ?? model.Layout.Shape.NCtx;
            if (maxLength > model.Layout.Shape.NCtx) throw new NextTokenException($"--max-length {maxLength} is above the model's context length {model.Layout.Shape.NCtx}");
            return [.. texts.Select((t, i) => ChatData.EncodePair(t, template, model.Tokenizer, maxLength, $"{path} line {i + 1}"))];
        }
    }

    /// <summary>Runs the steps with a progress line (or one JSON object per step) and returns their reports.</summary>
    private static List<PreferenceStepReport> Train(PreferenceTrainer trainer, int maxIters, bool asJson, string name)
    {
        var history = new List<PreferenceStepReport>();
        TrainingFlags.Progress(maxIters, asJson, name, _ =>
        {
            PreferenceStepReport r = trainer.TrainStep();
            history.Add(r);
            if (asJson)
                JsonOutput.Write(new { step = r.Step, loss = r.Loss, accuracy = r.Accuracy, lr = r.LearningRate, grad_norm = r.GradNorm, ms = Math.Round(r.Milliseconds, 3) });
            return string.Create(CultureInfo.InvariantCulture, $"step {r.Step + 1}/{maxIters} loss {r.Loss:F4} accuracy {r.Accuracy:P0}");
        });
        return history;
    }

    private static void Summary(bool asJson, string outPath, List<PreferenceStepReport> history)
    {
        if (asJson || history.Count == 0) return;
        int tail = Math.Max(1, history.Count / 10);
        Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"wrote {outPath}; {history.Count} steps, loss {history[0].Loss:F4} → {history[^1].Loss:F4}, accuracy over the last {tail} steps {history[^tail..].Average(h => h.Accuracy):P0}, mean {history.Average(h => h.Milliseconds):F1} ms/step"));
    }

    public static Command Reward()
    {
        var command = new Command("reward", "Reward models: a GPT-2 trunk with a scalar head on the last token, trained on preference pairs");
        command.Subcommands.Add(RewardTrain());
        command.Subcommands.Add(RewardScore());
        return command;
    }

    private static Command RewardTrain()
    {
        var flags = new TrainingFlags(batchSize: 4, maxIters: 100, lr: 1e-4f, weightDecay: 0f);
        var pairs = new PairOptions();
        var json = CommonOptions.Json();
        json.Description = "Print one JSON object per step ({step, loss, accuracy, lr, grad_norm, ms})";
        var command = new Command("train", "Train a reward model (loss −log σ(r_chosen − r_rejected)) from a gpt2 GGUF and write it: the GGUF plus the head as tensor rm_head.weight") { json };
        flags.AddTo(command);
        pairs.AddTo(command);
        command.SetAction(parse => CommonOptions.Run(parse, () =>
        {
            TrainingFlags.StartingModel model = TrainingFlags.Load(parse.GetValue(flags.InitFrom)!);
            PretrainOptions options = flags.Build(parse, model.Layout.Shape.NCtx);
            List<PreferencePair> data = pairs.Read(parse, model);
            float[] head;
            using (GgufFile file = GgufFile.Open(model.Path))
                head = file.TryGetTensorInfo(RewardModelFile.HeadTensor, out _) ? RewardModelFile.LoadHead(file, model.Layout.Shape.NEmbd)
                    : PreferenceTrainer.InitialHead(model.Layout.Shape.NEmbd, options.Seed);
            var trainer = PreferenceTrainer.Reward(model.Layout, model.Parameters, head, data, options);
            bool asJson = parse.GetValue(json);
            if (!asJson) Console.Error.WriteLine($"{data.Count} pairs; batch {options.BatchSize} pairs; {options.Threads} threads");
            List<PreferenceStepReport> history = Train(trainer, options.MaxIters, asJson, "reward");
            string outPath = parse.GetValue(flags.Out)!;
            RewardModelFile.Save(outPath, model.Layout, trainer.Parameters, head, model.Vocabulary, $"nexttoken-reward-gpt2 ({trainer.Step} steps)");
            Summary(asJson, outPath, history);
            return 0;
        }));
        return command;
    }

    private static Command RewardScore()
    {
        var modelOption = new Option<string>("--model", "-m") { Description = "A reward model written by 'reward train'", Required = true };
        var prompt = new Option<string>("--prompt", "-p") { Description = "The user's prompt", Required = true };
        var responses = new Option<string[]>("--response", "-r") { Description = "An answer to score; repeat for several", Required = true, AllowMultipleArgumentsPerToken = false };
        var templateFile = TrainingFlags.TemplateFile();
        var templateName = TrainingFlags.TemplateName();
        var threads = CommonOptions.Threads();
        var json = CommonOptions.Json();
        var command = new Command("score", "Score answers to a prompt with a reward model (higher is preferred)") { modelOption, prompt, responses, templateFile, templateName, threads, json };
        command.SetAction(parse => CommonOptions.Run(parse, () =>
        {
            var scorer = RewardScorer.Load(parse.GetValue(modelOption)!, parse.GetValue(templateFile), parse.GetValue(templateName), parse.GetValue(threads) ?? Environment.ProcessorCount);
            string p = parse.GetValue(prompt)!;
            var rows = (parse.GetValue(responses) ?? []).Select((r, i) => (Index: i + 1, Response: r, Reward: scorer.Score(p, r))).ToList();
            if (parse.GetValue(json))
            {
                JsonOutput.Write(new { prompt = p, responses = rows.Select(r => new { response = r.Response, reward = r.Reward }) });
                return 0;
            }
            var table = new Table().AddColumns("#", "reward", "response");
            foreach (var row in rows.OrderByDescending(r => r.Reward))
                table.AddRow(row.Index.ToString(CultureInfo.InvariantCulture), TrainingFlags.F(row.Reward), Markup.Escape(row.Response.Length > 100 ? row.Response[..100] + "…" : row.Response));
            AnsiConsole.Write(table);
            return 0;
        }));
        return command;
    }

    public static Command Dpo()
    {
        var flags = new TrainingFlags(batchSize: 4, maxIters: 50, lr: 1e-4f, weightDecay: 0f);
        var pairs = new PairOptions();
        var beta = new Option<float>("--beta") { Description = "DPO's β: how far the policy may move from the reference", DefaultValueFactory = _ => 0.1f };
        var reference = new Option<string?>("--reference") { Description = "Reference model (default: a frozen copy of --init-from)" };
        var json = CommonOptions.Json();
        json.Description = "Print one JSON object per step ({step, loss, accuracy, lr, grad_norm, ms})";
        var command = new Command("dpo", "Direct preference optimization on pairs against a frozen reference copy; writes GGUF") { beta, reference, json };
        flags.AddTo(command);
        pairs.AddTo(command);
        command.SetAction(parse => CommonOptions.Run(parse, () =>
        {
            TrainingFlags.StartingModel model = TrainingFlags.Load(parse.GetValue(flags.InitFrom)!);
            PretrainOptions options = flags.Build(parse, model.Layout.Shape.NCtx);
            List<PreferencePair> data = pairs.Read(parse, model);
            float[] referenceParameters;
            if (parse.GetValue(reference) is { } referencePath)
            {
                using GgufFile file = GgufFile.Open(referencePath);
                if (Gpt2Parameters.ShapeOf(file) != model.Layout.Shape) throw new NextTokenException($"{referencePath}: the reference has another shape than {model.Path}");
                referenceParameters = model.Layout.Load(file);
            }
            else referenceParameters = (float[])model.Parameters.Clone();
            var trainer = PreferenceTrainer.Dpo(model.Layout, model.Parameters, referenceParameters, CommonOptions.Checked(parse, beta, 0), data, options);
            bool asJson = parse.GetValue(json);
            if (!asJson) Console.Error.WriteLine($"{data.Count} pairs; β {TrainingFlags.F(parse.GetValue(beta), "G3")}; batch {options.BatchSize} pairs; {options.Threads} threads");
            List<PreferenceStepReport> history = Train(trainer, options.MaxIters, asJson, "dpo");
            string outPath = parse.GetValue(flags.Out)!;
            model.Layout.Save(outPath, trainer.Parameters, model.Vocabulary, $"nexttoken-dpo-gpt2 ({trainer.Step} steps)");
            Summary(asJson, outPath, history);
            return 0;
        }));
        return command;
    }
}

/// <summary>A loaded reward model: prompt and answer through its chat template, the reward at the last token.</summary>
internal sealed class RewardScorer
{
    private readonly Gpt2Parameters _layout;
    private readonly float[] _trunk, _head;
    private readonly Tokenizer _tokenizer;
    private readonly ChatTemplate _template;
    private readonly PreferenceTraining _pass;

    private RewardScorer(Gpt2Parameters layout, float[] trunk, float[] head, Tokenizer tokenizer, ChatTemplate template, int threads)
    {
        _layout = layout; _trunk = trunk; _head = head; _tokenizer = tokenizer; _template = template;
        _pass = new PreferenceTraining(layout, threads);
    }

    public static RewardScorer Load(string path, string? templateFile, string? templateName, int threads)
    {
        TrainingFlags.StartingModel model = TrainingFlags.Load(path);
        float[] head;
        using (GgufFile file = GgufFile.Open(path)) head = RewardModelFile.LoadHead(file, model.Layout.Shape.NEmbd);
        return new RewardScorer(model.Layout, model.Parameters, head, model.Tokenizer, TrainingFlags.Template(model, templateFile, templateName), threads);
    }

    public double Score(string prompt, string response)
    {
        var (p, r) = ChatData.EncodePromptResponse(prompt, response, _template, _tokenizer, "--response");
        var (sequence, _) = ChatData.Fit(p, r, _layout.Shape.NCtx);
        return _pass.Score(_trunk, _head, sequence);
    }
}
