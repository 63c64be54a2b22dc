using System.CommandLine;
using System.Globalization;
using NextToken.Chat;
using NextToken.Gguf;
using NextToken.Tokenization;
using NextToken.Training;
using Spectre.Console;

namespace NextToken.Cli;

/// <summary>
/// The optimizer and loop options the fine-tuning commands (sft, reward train, dpo, prefer) share,
/// with pretrain's names; defaults are the command's (fine-tuning takes smaller steps than pretraining).
/// </summary>
internal sealed class TrainingFlags(int batchSize, int maxIters, float lr, float weightDecay)
{
    public readonly Option<string> InitFrom = new("--init-from") { Description = "The gpt2 GGUF (F32/F16) to start from", Required = true };
    public readonly Option<int> BatchSize = new("--batch-size") { DefaultValueFactory = _ => batchSize };
    public readonly Option<int> MaxIters = new("--max-iters") { Description = "Optimizer steps", DefaultValueFactory = _ => maxIters };
    public readonly Option<float> Lr = new("--lr") { DefaultValueFactory = _ => lr };
    public readonly Option<float?> MinLr = new("--min-lr") { Description = "Floor of the cosine schedule (default lr/10)" };
    public readonly Option<string> Schedule = CreateSchedule();
    public readonly Option<int> Warmup = new("--warmup-iters") { DefaultValueFactory = _ => 0 };
    public readonly Option<float> WeightDecay = new("--weight-decay") { DefaultValueFactory = _ => weightDecay };
    public readonly Option<float> Beta1 = new("--beta1") { DefaultValueFactory = _ => 0.9f };
    public readonly Option<float> Beta2 = new("--beta2") { DefaultValueFactory = _ => 0.95f };
    public readonly Option<float> GradClip = new("--grad-clip") { Description = "Clip the global gradient norm to this (0 = off)", DefaultValueFactory = _ => 1f };
    public readonly Option<int> Seed = new("--seed") { Description = "Seed of the data order", DefaultValueFactory = _ => 1337 };
    public readonly Option<int?> Threads = CommonOptions.Threads();
    public readonly Option<string> Out = new("--out") { Description = "Where to write the trained model (GGUF)", Required = true };

    private static Option<string> CreateSchedule()
    {
        var option = new Option<string>("--lr-schedule") { DefaultValueFactory = _ => "constant" };
        option.AcceptOnlyFromAmong("constant", "cosine");
        return option;
    }

    private bool _batch, _seed;

    /// <summary>Adds the options; a command that sets batch or seed another way leaves those out.</summary>
    public void AddTo(Command command, bool batch = true, bool seed = true)
    {
        foreach (Option option in new Option[] { InitFrom, MaxIters, Lr, MinLr, Schedule, Warmup, WeightDecay, Beta1, Beta2, GradClip, Threads, Out })
            command.Options.Add(option);
        _batch = batch;
        _seed = seed;
        if (batch) command.Options.Add(BatchSize);
        if (seed) command.Options.Add(Seed);
    }

    public PretrainOptions Build(ParseResult parse, int blockSize)
    {
        var options = new PretrainOptions
        {
            BatchSize = _batch ? parse.GetValue(BatchSize) : batchSize, BlockSize = blockSize, MaxIters = parse.GetValue(MaxIters),
            LearningRate = CommonOptions.Checked(parse, Lr, 0), MinLearningRate = CommonOptions.Checked(parse, MinLr, 0), Cosine = parse.GetValue(Schedule) == "cosine",
            WarmupIters = parse.GetValue(Warmup), WeightDecay = CommonOptions.Checked(parse, WeightDecay, 0),
            Beta1 = CommonOptions.Checked(parse, Beta1, 0, 1), Beta2 = CommonOptions.Checked(parse, Beta2, 0, 1), GradClip = CommonOptions.Checked(parse, GradClip, 0),
            Seed = _seed ? parse.GetValue(Seed) : 1337, Threads = parse.GetValue(Threads) ?? Environment.ProcessorCount,
        };
        if (options.MaxIters < 0) throw new NextTokenException($"--max-iters {options.MaxIters} is negative");
        if (options.BatchSize < 1) throw new NextTokenException($"--batch-size {options.BatchSize} must be at least 1");
        if (options.Threads < 1) throw new NextTokenException($"--threads must be at least 1, not {options.Threads}");
        return options;
    }

    /// <summary>A gpt2 GGUF as training starts from it: shape, parameters, the tokenizer.* keys and its tokenizer.</summary>
    public sealed record StartingModel(string Path, Gpt2Parameters Layout, float[] Parameters, Dictionary<string, GgufValue> Vocabulary, Tokenizer Tokenizer, string? ChatTemplate);

    public static StartingModel Load(string path)
    {
        using GgufFile file = GgufFile.Open(path);
        var layout = new Gpt2Parameters(Gpt2Parameters.ShapeOf(file));
        float[] parameters = layout.Load(file);
        var vocabulary = file.Metadata.Where(kv => kv.Key.StartsWith("tokenizer.", StringComparison.Ordinal)).ToDictionary();
        if (!vocabulary.ContainsKey("tokenizer.ggml.tokens")) throw new NextTokenException($"{path}: no vocabulary (tokenizer.ggml.tokens); fine-tuning reads text");
        return new StartingModel(path, layout, parameters, vocabulary, Tokenizer.Load(file), file.GetStringOrNull("tokenizer.chat_template"));
    }

    /// <summary>
    /// The chat template for the data: a file, a built-in name, else the model's own, else "plain".
    /// A template given by name or file is also written into the trained model, so chat and template use it.
    /// </summary>
    public static ChatTemplate Template(StartingModel model, string? templateFile, string? templateName)
    {
        ChatTemplate template = templateFile is not null ? new ChatTemplate(File.ReadAllText(templateFile), templateFile)
            : templateName is not null ? ChatTemplate.FromName(templateName)
            : ChatTemplate.FromModelText(model.ChatTemplate, $"{model.Path}: tokenizer.chat_template") ?? ChatTemplate.FromName("plain");
        model.Vocabulary["tokenizer.chat_template"] = GgufValue.Of(template.Source);
        return template;
    }

    public static Option<string?> TemplateFile() => new("--template-file") { Description = "A Jinja chat template file to render the data with" };

    public static Option<string?> TemplateName() =>
        new("--template") { Description = $"Built-in chat format to render the data with (default: the model's own, else plain): {string.Join(", ", ChatTemplate.BuiltIn.Keys)}" };

    /// <summary>Runs <paramref name="steps"/> optimizer steps with a progress bar on stderr (or nothing with <paramref name="quiet"/>).</summary>
    public static void Progress(int steps, bool quiet, string title, Func<int, string> step)
    {
        if (quiet)
        {
            for (int i = 0; i < steps; i++) step(i);
            return;
        }
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
        console.Progress()
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn())
            .Start(context =>
            {
                var task = context.AddTask(title, maxValue: Math.Max(1, steps));
                for (int i = 0; i < steps; i++)
                {
                    task.Description = Markup.Escape(step(i));
                    task.Increment(1);
                }
            });
    }

    public static string F(double value, string format = "F4") => value.ToString(format, CultureInfo.InvariantCulture);
}
