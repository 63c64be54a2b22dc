using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using NextToken.Training;
using Spectre.Console;

namespace NextToken.Cli.Commands;

/// <summary><c>nexttoken train-tokenizer</c>: a byte-level BPE trained as minbpe's RegexTokenizer.</summary>
internal static class TrainTokenizerCommand
{
    public static Command Create()
    {
        var input = new Option<string[]>("--input") { Description = "Text files to train on (read as UTF-8, in order)", Required = true, AllowMultipleArgumentsPerToken = true };
        var vocabSize = new Option<int>("--vocab-size") { Description = "Final vocabulary size: 256 bytes + merges + special tokens", Required = true };
        var pattern = new Option<string>("--pattern") { Description = "Split pattern: gpt2 or gpt4 (cl100k)", DefaultValueFactory = _ => "gpt2" };
        pattern.AcceptOnlyFromAmong("gpt2", "gpt4");
        var special = new Option<string[]>("--special") { Description = "Special tokens, given ids after the merges (the first also serves as BOS/EOS in the GGUF)", AllowMultipleArgumentsPerToken = true };
        var output = new Option<string>("--out") { Description = "Directory for tokenizer.json and tokenizer.gguf", Required = true };
        var json = CommonOptions.Json();
        json.Description = "Print a JSON summary (merges, timings) instead of text";
        var command = new Command("train-tokenizer", "Train a byte-level BPE tokenizer (minbpe's algorithm) and write tokenizer.json and a GGUF vocabulary")
        {
            input, vocabSize, pattern, special, output, json,
        };
        command.SetAction(parse => CommonOptions.Run(parse, () =>
        {
            string[] files = parse.GetValue(input) ?? [];
            if (files.Length == 0) throw new NextTokenException("no --input files given");
            string[] texts = [.. files.Select(File.ReadAllText)];
            SplitPattern split = parse.GetValue(pattern) == "gpt4" ? SplitPattern.Gpt4 : SplitPattern.Gpt2;
            string[] specials = parse.GetValue(special) ?? [];
            int size = parse.GetValue(vocabSize);
            bool asJson = parse.GetValue(json);
            var watch = Stopwatch.StartNew();
            BpeModel model;
            if (asJson)
                model = BpeTrainer.Train(texts, size, split, specials);
            else
            {
                BpeModel? trained = null;
                var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
                console.Progress()
                    .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn())
                    .Start(context =>
                    {
                        var task = context.AddTask("merges", maxValue: Math.Max(1, size - 256 - specials.Length));
                        trained = BpeTrainer.Train(texts, size, split, specials, (done, _) => task.Value = done);
                    });
                model = trained!;
            }
            watch.Stop();
            if (model.Merges.Count < size - 256 - specials.Length)
                Console.Error.WriteLine($"warning: the text holds only {model.Merges.Count} mergeable pairs; the vocabulary has {model.VocabSize} tokens, not {size}");
            List<int> duplicates = BpeVocabularyWriter.DuplicateSpellings(model);
            if (duplicates.Count > 0)
                Console.Error.WriteLine($"warning: ids {string.Join(", ", duplicates.Take(10))} spell the same bytes as earlier ids; tokenizer.json maps each such string to its first id");

            string dir = parse.GetValue(output)!;
            Directory.CreateDirectory(dir);
            string jsonPath = Path.Combine(dir, "tokenizer.json"), ggufPath = Path.Combine(dir, "tokenizer.gguf");
            BpeVocabularyWriter.WriteTokenizerJson(jsonPath, model);
            BpeVocabularyWriter.WriteGguf(ggufPath, model, $"bpe-{model.VocabSize}-{parse.GetValue(pattern)}");
            double seconds = watch.Elapsed.TotalSeconds;
            if (asJson)
                JsonOutput.Write(new
                {
                    vocab_size = model.VocabSize, merges = model.Merges.Select(m => new[] { m.Left, m.Right }).ToArray(), merge_counts = model.Counts,
                    seconds = Math.Round(seconds, 3), merges_per_second = Math.Round(model.Merges.Count / seconds, 1),
                    tokenizer_json = jsonPath, gguf = ggufPath,
                });
            else
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{model.Merges.Count} merges in {seconds:F2} s ({model.Merges.Count / seconds:F0} merges/s, reading and splitting included); wrote {jsonPath} and {ggufPath}"));
            return 0;
        }));
        return command;
    }
}
