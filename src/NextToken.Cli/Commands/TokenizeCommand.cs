using System.CommandLine;
using System.Text.Json;
using NextToken.Gguf;
using NextToken.Tokenization;
using Spectre.Console;

namespace NextToken.Cli.Commands;

/// <summary><c>nexttoken tokenize</c>: text → tokens, needing only a vocabulary.</summary>
internal static class TokenizeCommand
{
    public static Command Create()
    {
        var model = CommonOptions.Model();
        model.Description = "GGUF model or vocabulary-only file (e.g. ggml-vocab-gpt-2.gguf), a checkpoint directory, or a hub model ORG/NAME";
        var text = new Option<string?>("--text") { Description = "Text to tokenize" };
        var file = new Option<string?>("--file") { Description = "Tokenize the contents of this file" };
        var jsonl = new Option<string?>("--jsonl") { Description = "Batch mode: read lines {\"text\": ...} from this file, write one line {\"ids\": [...]} per input" };
        var addBos = CommonOptions.AddBos();
        var parseSpecial = CommonOptions.ParseSpecial();
        var json = CommonOptions.Json();
        var command = new Command("tokenize", "Split text into tokens: ids, pieces and the character range of each")
        {
            model, text, file, jsonl, addBos, parseSpecial, json,
        };
        command.SetAction(parse => CommonOptions.Run(parse, () =>
        {
            Tokenizer tokenizer = parse.GetValue(CommonOptions.Vocab) is { } vocab
                ? Models.ModelLoader.LoadTokenizer(vocab)
                : Models.ModelLoader.LoadTokenizer(CommonOptions.ResolveModel(parse.GetValue(model)));
            bool bos = parse.GetValue(addBos) ?? tokenizer.Vocabulary.AddBos, special = parse.GetValue(parseSpecial);
            if (parse.GetValue(jsonl) is { } batchPath)
                return Batch(tokenizer, batchPath, bos, special);
            string input = (parse.GetValue(text), parse.GetValue(file)) switch
            {
                ({ } t, null) => t,
                (null, { } f) => File.ReadAllText(f),
                (null, null) => throw new NextTokenException("nothing to tokenize: give --text, --file or --jsonl"),
                _ => throw new NextTokenException("give either --text or --file, not both"),
            };
            EncodedText encoded = tokenizer.Encode(input, bos, special);
            if (parse.GetValue(json))
            {
                JsonOutput.Write(new
                {
                    ids = encoded.Ids,
                    pieces = encoded.Ids.Select(tokenizer.TokenText).ToArray(),
                    offsets = encoded.Offsets.Select(o => new[] { o.Start, o.End }).ToArray(),
                });
                return 0;
            }
            Show(tokenizer, input, encoded);
            return 0;
        }));
        return command;
    }

    private static int Batch(Tokenizer tokenizer, string path, bool addBos, bool parseSpecial)
    {
        int lineNumber = 0;
        foreach (string line in File.ReadLines(path))
        {
            lineNumber++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            string text;
            try
            {
                using var doc = JsonDocument.Parse(line);
                text = doc.RootElement.GetProperty("text").GetString()
                       ?? throw new NextTokenException($"{path}:{lineNumber}: \"text\" is null; expected a string");
            }
            catch (Exception error) when (error is JsonException or KeyNotFoundException or InvalidOperationException)
            {
                throw new NextTokenException($"{path}:{lineNumber}: expected a JSON object with a string field \"text\" ({error.Message})");
            }
            JsonOutput.Write(new { ids = tokenizer.Encode(text, addBos, parseSpecial).Ids });
        }
        return 0;
    }

    private static void Show(Tokenizer tokenizer, string input, EncodedText encoded)
    {
        var strip = string.Join("", encoded.Ids.Select(id => $"[grey][[[/]{Markup.Escape(tokenizer.TokenDisplay(id))}[grey]]][/]"));
        AnsiConsole.MarkupLine($"[bold]{encoded.Count}[/] tokens from {input.Length} characters ({System.Text.Encoding.UTF8.GetByteCount(input)} bytes):");
        AnsiConsole.MarkupLine(strip);
        var table = new Table().Border(TableBorder.Rounded)
            .AddColumn(new TableColumn("#").RightAligned())
            .AddColumn(new TableColumn("id").RightAligned())
            .AddColumn("piece")
            .AddColumn(new TableColumn("bytes").RightAligned())
            .AddColumn("chars");
        for (int i = 0; i < encoded.Count; i++)
        {
            int id = encoded.Ids[i];
            var (start, end) = encoded.Offsets[i];
            table.AddRow(i.ToString(), id.ToString(), Markup.Escape(tokenizer.TokenDisplay(id)),
                tokenizer.TokenBytes(id).Length.ToString(), $"{start}..{end}");
        }
        AnsiConsole.Write(table);
    }
}
