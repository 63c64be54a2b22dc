using System.CommandLine;
using System.Globalization;
using NextToken.Training;

namespace NextToken.Cli.Commands;

/// <summary><c>nexttoken sft</c>: supervised fine-tuning on chats, the loss on assistant tokens only.</summary>
internal static class SftCommand
{
    public static Command Create()
    {
        var flags = new TrainingFlags(batchSize: 4, maxIters: 100, lr: 1e-4f, weightDecay: 0f);
        var data = new Option<string>("--data") { Description = "Chats, JSONL: one {\"messages\": [{\"role\": …, \"content\": …}, …]} per line", Required = true };
        var valData = new Option<string?>("--val-data") { Description = "Held-out chats (JSONL) for the validation loss" };
        var block = new Option<int?>("--block-size") { Description = "Tokens per row: a longer chat is cut (default: the model's context)" };
        var evalInterval = new Option<int>("--eval-interval") { Description = "Validation loss every N steps and at the end (0 = off; needs --val-data)", DefaultValueFactory = _ => 0 };
        var accumulation = new Option<int>("--grad-accum") { Description = "Batches per optimizer step", DefaultValueFactory = _ => 1 };
        var evalIters = new Option<int>("--eval-iters") { Description = "Batches of held-out chats per evaluation", DefaultValueFactory = _ => 20 };
        var templateFile = TrainingFlags.TemplateFile();
        var templateName = TrainingFlags.TemplateName();
        var json = CommonOptions.Json();
        json.Description = "Print one JSON object per step ({step, loss, lr, grad_norm, ms, val_loss}) instead of the progress display";
        var command = new Command("sft", "Fine-tune a GPT-2 on chats (rendered with a chat template), the loss on assistant tokens only, and write it as GGUF")
        {
            data, valData, block, accumulation, evalInterval, evalIters, templateFile, templateName, json,
        };
        flags.AddTo(command);
        command.SetAction(parse => CommonOptions.Run(parse, () =>
        {
            TrainingFlags.StartingModel model = TrainingFlags.Load(parse.GetValue(flags.InitFrom)!);
            int blockSize = parse.GetValue(block) ?? model.Layout.Shape.NCtx;
            PretrainOptions options = flags.Build(parse, blockSize) with
            {
                EvalInterval = parse.GetValue(evalInterval), EvalIters = Math.Max(1, parse.GetValue(evalIters)), GradAccumulation = parse.GetValue(accumulation),
            };
            var template = TrainingFlags.Template(model, parse.GetValue(templateFile), parse.GetValue(templateName));
            List<SftExample> Encode(string path)
            {
                var chats = ChatData.ReadChats(path);
                return [.. chats.Select((chat, i) => ChatData.Encode(chat, template, model.Tokenizer, $"{path} line {i + 1}"))];
            }
            List<SftExample> train = Encode(parse.GetValue(data)!);
            List<SftExample>? val = parse.GetValue(valData) is { } valPath ? Encode(valPath) : null;
            var trainer = new SftTrainer(model.Layout, model.Parameters, train, val, options);
            bool asJson = parse.GetValue(json);
            if (!asJson)
            {
                var shape = model.Layout.Shape;
                Console.Error.WriteLine($"GPT-2 {shape.NLayer} layers, d={shape.NEmbd}, ctx {shape.NCtx}: {trainer.TrainCount} chats ({trainer.Dropped} without an assistant token in the first {blockSize + 1} tokens left out), " +
                                        $"{train.Sum(e => e.AssistantCount):N0} assistant tokens of {train.Sum(e => e.Tokens.Length):N0}; {template.Name}; batch {options.BatchSize}×{blockSize}; {options.Threads} threads");
            }
            var history = new List<StepReport>();
            float? lastVal = null;
            TrainingFlags.Progress(options.MaxIters, asJson, "sft", _ =>
            {
                StepReport r = trainer.TrainStep();
                if (options.EvalInterval > 0 && (r.Step % options.EvalInterval == 0 || trainer.Step == options.MaxIters))
                    r = r with { ValLoss = trainer.Evaluate() };
                lastVal = r.ValLoss ?? lastVal;
                history.Add(r);
                if (asJson)
                    JsonOutput.Write(new { step = r.Step, loss = r.Loss, lr = r.LearningRate, grad_norm = r.GradNorm, ms = Math.Round(r.Milliseconds, 3), val_loss = r.ValLoss });
                return string.Create(CultureInfo.InvariantCulture, $"step {r.Step + 1}/{options.MaxIters} loss {r.Loss:F4}{(lastVal is { } v ? $" val {v:F4}" : "")}");
            });
            string outPath = parse.GetValue(flags.Out)!;
            model.Layout.Save(outPath, trainer.Parameters, model.Vocabulary, $"nexttoken-sft-gpt2 ({trainer.Step} steps)");
            if (!asJson && history.Count > 0)
                Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"wrote {outPath}; {history.Count} steps, loss {history[0].Loss:F4} → {history[^1].Loss:F4}, mean {history.Average(h => h.Milliseconds):F1} ms/step"));
            return 0;
        }));
        return command;
    }
}
