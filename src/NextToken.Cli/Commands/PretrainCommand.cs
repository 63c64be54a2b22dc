using System.CommandLine;
using System.Globalization;
using System.Text;
using NextToken.Gguf;
using NextToken.Tokenization;
using NextToken.Training;
using Spectre.Console;

namespace NextToken.Cli.Commands;

/// <summary><c>nexttoken pretrain</c>: train a GPT-2 from scratch or from a GGUF on token or text files.</summary>
internal static class PretrainCommand
{
    public static Command Create()
    {
        var initFrom = new Option<string?>("--init-from") { Description = "Start from this gpt2 GGUF (F32/F16) instead of random weights" };
        var resume = new Option<string?>("--resume") { Description = "Continue from a checkpoint written by --checkpoint-interval or at the end (OUT.ckpt.gguf)" };
        var nLayer = new Option<int>("--n-layer") { Description = "Layers of a new model", DefaultValueFactory = _ => 4 };
        var nHead = new Option<int>("--n-head") { Description = "Attention heads of a new model", DefaultValueFactory = _ => 4 };
        var nEmbd = new Option<int>("--n-embd") { Description = "Width of a new model", DefaultValueFactory = _ => 128 };
        var context = new Option<int?>("--context") { Description = "Context length of a new model (default: the block size)" };
        var tokenizer = new Option<string?>("--tokenizer") { Description = "Vocabulary of a new model: a GGUF vocabulary (e.g. DIR/tokenizer.gguf from train-tokenizer), or 'char' for the characters of the text data (ASCII)" };
        var data = new Option<string[]>("--data") { Description = "Training data: llm.c token files (.bin) or text files (tokenized with the model's vocabulary)", Required = true, AllowMultipleArgumentsPerToken = true };
        var valData = new Option<string[]>("--val-data") { Description = "Validation data (default: the last --val-fraction of the training tokens)", AllowMultipleArgumentsPerToken = true };
        var valFraction = new Option<double>("--val-fraction") { Description = "Share of the tokens held out for validation when evaluating without --val-data", DefaultValueFactory = _ => 0.1 };
        var batch = new Option<int>("--batch-size") { DefaultValueFactory = _ => 12 };
        var block = new Option<int>("--block-size") { DefaultValueFactory = _ => 64 };
        var maxIters = new Option<int>("--max-iters") { DefaultValueFactory = _ => 100 };
        var lr = new Option<float>("--lr") { DefaultValueFactory = _ => 1e-3f };
        var minLr = new Option<float?>("--min-lr") { Description = "Floor of the cosine schedule (default lr/10)" };
        var schedule = new Option<string>("--lr-schedule") { DefaultValueFactory = _ => "constant" };
        schedule.AcceptOnlyFromAmong("constant", "cosine");
        var warmup = new Option<int>("--warmup-iters") { DefaultValueFactory = _ => 0 };
        var decayIters = new Option<int?>("--lr-decay-iters") { Description = "Step where the cosine reaches --min-lr (default --max-iters)" };
        var weightDecay = new Option<float>("--weight-decay") { DefaultValueFactory = _ => 0.1f };
        var beta1 = new Option<float>("--beta1") { DefaultValueFactory = _ => 0.9f };
        var beta2 = new Option<float>("--beta2") { DefaultValueFactory = _ => 0.95f };
        var gradClip = new Option<float>("--grad-clip") { Description = "Clip the global gradient norm to this (0 = off)", DefaultValueFactory = _ => 1f };
        var accumulation = new Option<int>("--grad-accum") { Description = "Batches per optimizer step", DefaultValueFactory = _ => 1 };
        var evalInterval = new Option<int>("--eval-interval") { Description = "Evaluate train/val loss every N steps (0 = off)", DefaultValueFactory = _ => 0 };
        var evalIters = new Option<int>("--eval-iters") { Description = "Batches per evaluation", DefaultValueFactory = _ => 20 };
        var sequential = new Option<bool>("--sequential") { Description = "Read the data as llm.c's loader: consecutive windows of B·T+1 tokens, wrapping to the start" };
        var seed = new Option<int>("--seed") { DefaultValueFactory = _ => 1337 };
        var threads = CommonOptions.Threads();
        var output = new Option<string>("--out") { Description = "Where to write the trained model (GGUF)", Required = true };
        var checkpointInterval = new Option<int>("--checkpoint-interval") { Description = "Also write OUT.ckpt.gguf every N steps (0: only at the end)", DefaultValueFactory = _ => 0 };
        var csv = new Option<string?>("--csv") { Description = "Write step, loss, lr, grad norm, val loss per step to this CSV" };
        var plot = new Option<string?>("--plot") { Description = "Save the loss curve as a PNG" };
        var json = CommonOptions.Json();
        json.Description = "Print one JSON object per step ({step, loss, lr, grad_norm, ms, ...}) instead of the progress display";
        var command = new Command("pretrain", "Train a GPT-2 (hand-written forward and backward passes, AdamW) and write it as GGUF")
        {
            initFrom, resume, nLayer, nHead, nEmbd, context, tokenizer, data, valData, valFraction, batch, block, maxIters, lr, minLr, schedule,
            warmup, decayIters, weightDecay, beta1, beta2, gradClip, accumulation, evalInterval, evalIters, sequential, seed, threads,
            output, checkpointInterval, csv, plot, json,
        };
        command.SetAction(parse => CommonOptions.Run(parse, () =>
        {
            var options = new PretrainOptions
            {
                BatchSize = parse.GetValue(batch), BlockSize = parse.GetValue(block), MaxIters = parse.GetValue(maxIters),
                LearningRate = parse.GetValue(lr), MinLearningRate = parse.GetValue(minLr), Cosine = parse.GetValue(schedule) == "cosine",
                WarmupIters = parse.GetValue(warmup), DecayIters = parse.GetValue(decayIters), WeightDecay = parse.GetValue(weightDecay),
                Beta1 = parse.GetValue(beta1), Beta2 = parse.GetValue(beta2), GradClip = parse.GetValue(gradClip),
                GradAccumulation = parse.GetValue(accumulation), EvalInterval = parse.GetValue(evalInterval), EvalIters = parse.GetValue(evalIters),
                Sequential = parse.GetValue(sequential), Seed = parse.GetValue(seed), Threads = parse.GetValue(threads) ?? Environment.ProcessorCount,
                CheckpointInterval = parse.GetValue(checkpointInterval),
            };
            if (options.MaxIters < 0) throw new NextTokenException($"--max-iters {options.MaxIters} is negative");

            // The model: a checkpoint, a GGUF to start from, or a new one with a vocabulary.
            string[] dataFiles = parse.GetValue(data) ?? [];
            Gpt2Parameters layout;
            float[] parameters;
            Dictionary<string, GgufValue> vocabulary;
            Tokenizer? textTokenizer;
            GgufFile? resumeFile = null;
            string? source = parse.GetValue(resume) ?? parse.GetValue(initFrom);
            if (source != null)
            {
                resumeFile = GgufFile.Open(source);
                layout = new Gpt2Parameters(Gpt2Parameters.ShapeOf(resumeFile));
                parameters = layout.Load(resumeFile);
                vocabulary = resumeFile.Metadata.Where(kv => kv.Key.StartsWith("tokenizer.", StringComparison.Ordinal)).ToDictionary();
                textTokenizer = vocabulary.Count > 0 ? Tokenizer.Load(resumeFile) : null;
                if (parse.GetValue(resume) == null) { resumeFile.Dispose(); resumeFile = null; }
            }
            else
            {
                string vocabPath = parse.GetValue(tokenizer) ?? throw new NextTokenException("a new model needs --tokenizer (a GGUF vocabulary, or 'char'); or give --init-from");
                if (vocabPath == "char")
                {
                    vocabulary = CharVocabulary(dataFiles);
                    textTokenizer = CharTokenizer(vocabulary);
                }
                else
                {
                    using GgufFile vocabFile = GgufFile.Open(vocabPath);
                    vocabulary = vocabFile.Metadata.Where(kv => kv.Key.StartsWith("tokenizer.", StringComparison.Ordinal)).ToDictionary();
                    textTokenizer = Tokenizer.Load(vocabFile);
                }
                int nVocab = ((string[])vocabulary["tokenizer.ggml.tokens"].Value).Length;
                var shape = new Gpt2Dimensions(parse.GetValue(nLayer), parse.GetValue(nHead), parse.GetValue(nEmbd),
                                          parse.GetValue(context) ?? options.BlockSize, 4 * parse.GetValue(nEmbd), nVocab);
                layout = new Gpt2Parameters(shape);
                parameters = layout.InitializeRandom(options.Seed);
            }

            int[] trainTokens = ReadTokens(dataFiles, textTokenizer);
            int[]? valTokens = null;
            string[] valFiles = parse.GetValue(valData) ?? [];
            if (valFiles.Length > 0) valTokens = ReadTokens(valFiles, textTokenizer);
            else if (options.EvalInterval > 0)
            {
                int split = (int)(trainTokens.Length * (1 - parse.GetValue(valFraction)));
                valTokens = trainTokens[split..];
                trainTokens = trainTokens[..split];
            }
            string dataName = string.Join(", ", dataFiles);
            var trainer = new Pretrainer(layout, parameters, trainTokens, valTokens, options, dataName);
            if (resumeFile != null)
            {
                trainer.Resume(resumeFile);
                resumeFile.Dispose();
            }

            string outPath = parse.GetValue(output)!;
            string checkpointPath = Path.ChangeExtension(outPath, null) + ".ckpt.gguf";
            bool asJson = parse.GetValue(json);
            var history = new List<StepReport>();
            void Loop(Action<StepReport>? show)
            {
                while (trainer.Step < options.MaxIters)
                {
                    StepReport report = trainer.TrainStep();
                    bool last = trainer.Step == options.MaxIters;
                    if (options.EvalInterval > 0 && (report.Step % options.EvalInterval == 0 || last))
                    {
                        var (trainLoss, valLoss) = trainer.Evaluate();
                        report = report with { TrainEvalLoss = trainLoss, ValLoss = valLoss };
                    }
                    history.Add(report);
                    show?.Invoke(report);
                    if (options.CheckpointInterval > 0 && trainer.Step % options.CheckpointInterval == 0)
                        trainer.SaveCheckpoint(checkpointPath, vocabulary);
                }
            }
            if (asJson)
                Loop(r => JsonOutput.Write(new
                {
                    step = r.Step, loss = r.Loss, lr = r.LearningRate, grad_norm = r.GradNorm, ms = Math.Round(r.Milliseconds, 3),
                    forward_ms = Math.Round(r.ForwardMs, 3), backward_ms = Math.Round(r.BackwardMs, 3), optimizer_ms = Math.Round(r.OptimizerMs, 3),
                    tok_per_s = Math.Round(r.TokensPerSecond, 1), train_eval_loss = r.TrainEvalLoss, val_loss = r.ValLoss,
                }));
            else
            {
                var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
                var shape = layout.Shape;
                console.MarkupLine($"[grey]GPT-2 {shape.NLayer} layers, {shape.NHead} heads, d={shape.NEmbd}, ctx {shape.NCtx}, vocab {shape.NVocab}: {layout.Count:N0} parameters; {trainTokens.Length:N0} training tokens; batch {options.BatchSize}×{options.BlockSize}×{options.GradAccumulation}; {options.Threads} threads[/]");
                float? lastVal = null;
                console.Progress()
                    .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn())
                    .Start(context =>
                    {
                        var task = context.AddTask("training", maxValue: Math.Max(1, options.MaxIters - trainer.Step));
                        Loop(r =>
                        {
                            lastVal = r.ValLoss ?? lastVal;
                            task.Description = string.Create(CultureInfo.InvariantCulture,
                                $"step {r.Step + 1}/{options.MaxIters} loss {r.Loss:F4}{(lastVal is { } v ? $" val {v:F4}" : "")} {r.TokensPerSecond:N0} tok/s");
                            task.Increment(1);
                        });
                    });
            }

            trainer.SaveCheckpoint(checkpointPath, vocabulary);
            layout.Save(outPath, trainer.Parameters, vocabulary, $"nexttoken-pretrained-gpt2 ({trainer.Step} steps)");
            if (parse.GetValue(csv) is { } csvPath) WriteCsv(csvPath, history);
            if (parse.GetValue(plot) is { } plotPath && history.Count > 0)
            {
                var series = new List<(string, double[])> { ("train (step)", history.Select(h => (double)h.Loss).ToArray()) };
                Plots.Lines(plotPath, "pretraining loss", "step", "loss", history.Select(h => (double)h.Step).ToArray(), [.. series]);
            }
            if (!asJson)
            {
                double meanMs = history.Count > 0 ? history.Average(h => h.Milliseconds) : 0;
                Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"wrote {outPath} (and {checkpointPath}); {history.Count} steps, mean {meanMs:F1} ms/step " +
                    $"(forward {Mean(history, h => h.ForwardMs):F1}, backward {Mean(history, h => h.BackwardMs):F1}, optimizer {Mean(history, h => h.OptimizerMs):F1})"));
            }
            return 0;
        }));
        return command;
    }

    private static double Mean(List<StepReport> history, Func<StepReport, double> field) => history.Count > 0 ? history.Average(field) : 0;

    private static int[] ReadTokens(string[] files, Tokenizer? tokenizer)
    {
        if (files.Length == 0) throw new NextTokenException("no --data files given");
        var all = new List<int>();
        foreach (string file in files)
        {
            if (file.EndsWith(".bin", StringComparison.OrdinalIgnoreCase)) all.AddRange(TokenFile.Read(file));
            else
            {
                if (tokenizer == null) throw new NextTokenException($"{file}: a text file needs a vocabulary to tokenize it; the model has none");
                all.AddRange(tokenizer.Encode(File.ReadAllText(file)).Ids);
            }
        }
        return [.. all];
    }

    /// <summary>
    /// nanoGPT's character-level vocabulary (the sorted distinct characters of the text) as a
    /// byte-level BPE with no merges: for ASCII text each character is its own byte token, so the
    /// written model runs in the engine like any gpt2 GGUF.
    /// </summary>
    private static Dictionary<string, GgufValue> CharVocabulary(string[] files)
    {
        var chars = new SortedSet<char>();
        foreach (string file in files)
        {
            string text = File.ReadAllText(file);
            for (int i = 0; i < text.Length; i++)
            {
                if (text[i] > 127) throw new NextTokenException($"{file}: character U+{(int)text[i]:X4} at index {i} is not ASCII; the char vocabulary needs ASCII text");
                chars.Add(text[i]);
            }
        }
        char[] table = ByteLevelBpeTokenizer.ByteToUnicode();
        string[] tokens = [.. chars.Select(c => table[c].ToString())];
        return new Dictionary<string, GgufValue>
        {
            ["tokenizer.ggml.model"] = GgufValue.Of("gpt2"),
            ["tokenizer.ggml.pre"] = GgufValue.Of("gpt-2"),
            ["tokenizer.ggml.tokens"] = GgufValue.Of(tokens),
            ["tokenizer.ggml.token_type"] = GgufValue.Of(tokens.Select(_ => 1).ToArray()),
            ["tokenizer.ggml.merges"] = GgufValue.Of(Array.Empty<string>()),
        };
    }

    /// <summary>The tokenizer of a character vocabulary (a byte-level BPE without merges).</summary>
    private static Tokenizer CharTokenizer(Dictionary<string, GgufValue> vocabulary)
    {
        string[] tokens = (string[])vocabulary["tokenizer.ggml.tokens"].Value;
        var types = tokens.Select(_ => TokenType.Normal).ToArray();
        return new ByteLevelBpeTokenizer(new Vocabulary(tokens, types, null, null, addBos: false, "char vocabulary"), [], "gpt-2");
    }

    private static void WriteCsv(string path, List<StepReport> history)
    {
        var text = new StringBuilder("step,loss,lr,grad_norm,ms,train_eval_loss,val_loss\n");
        foreach (StepReport h in history)
            text.Append(CultureInfo.InvariantCulture, $"{h.Step},{h.Loss},{h.LearningRate},{h.GradNorm},{h.Milliseconds:F3},{h.TrainEvalLoss},{h.ValLoss}\n");
        File.WriteAllText(path, text.ToString());
    }
}
