using System.CommandLine;
using NextToken.Hub;
using Spectre.Console;

namespace NextToken.Cli.Commands;

/// <summary><c>nexttoken pull</c> and <c>nexttoken models</c>: the Hugging Face cache.</summary>
internal static class HubCommands
{
    public static Command Pull()
    {
        var model = new Argument<string>("model") { Description = "Hub model ORG/NAME[@REVISION]" };
        var file = new Option<string?>("--file") { Description = "Download only this file (e.g. a .gguf) instead of the safetensors checkpoint" };
        var command = new Command("pull", "Download a model into the Hugging Face cache without running it") { model, file };
        command.SetAction((parse, cancellation) => CommonOptions.RunAsync(parse, async () =>
        {
            string text = parse.GetValue(model)!;
            if (!HubModelId.TryParse(text, out HubModelId id)) throw new NextTokenException($"'{text}' is not a hub model id ORG/NAME[@REVISION]");
            using var hub = new HubClient(HubOptions.FromEnvironment());
            string path = await Downloads.Run(progress => parse.GetValue(file) is { } single
                ? hub.GetFileAsync(id, single, progress, cancellation)
                : hub.GetCheckpointAsync(id, progress, cancellation));
            Console.WriteLine(path);
            return 0;
        }));
        return command;
    }

    public static Command Models()
    {
        var json = CommonOptions.Json();
        var command = new Command("models", "List the models in the Hugging Face cache ($HF_HOME/hub)") { json };
        command.SetAction(parse => CommonOptions.Run(parse, () =>
        {
            string cache = HubOptions.FromEnvironment().CacheDirectory;
            var models = Directory.Exists(cache)
                ? Directory.GetDirectories(cache, "models--*").Order().Select(Describe).ToList()
                : [];
            if (parse.GetValue(json))
            {
                JsonOutput.Write(new { cache, models = models.Select(m => new { id = m.Id, revisions = m.Refs, snapshots = m.Snapshots, bytes = m.Bytes, files = m.Files }).ToArray() });
                return 0;
            }
            if (models.Count == 0)
            {
                AnsiConsole.MarkupLine($"no models cached in {Markup.Escape(cache)}");
                return 0;
            }
            var table = new Table().Border(TableBorder.Rounded).Title(Markup.Escape(cache)).AddColumn("model").AddColumn("revisions").AddColumn(new TableColumn("size").RightAligned()).AddColumn("files");
            foreach (var m in models)
                table.AddRow(Markup.Escape(m.Id), Markup.Escape(string.Join(", ", m.Refs)), $"{m.Bytes / 1e6:F1} MB", Markup.Escape(string.Join(", ", m.Files)));
            AnsiConsole.Write(table);
            return 0;
        }));
        return command;
    }

    private static (string Id, string[] Refs, string[] Snapshots, long Bytes, string[] Files) Describe(string directory)
    {
        string id = Path.GetFileName(directory)["models--".Length..].Replace("--", "/", StringComparison.Ordinal);
        string refs = Path.Combine(directory, "refs"), snapshots = Path.Combine(directory, "snapshots"), blobs = Path.Combine(directory, "blobs");
        // Refs may be nested (refs/pr/1 is stored as refs/refs/pr/1, as huggingface_hub stores it).
        string[] refNames = Directory.Exists(refs) ? Directory.GetFiles(refs, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal)
            .Select(f => (Name: Path.GetRelativePath(refs, f).Replace('\\', '/'), Commit: File.ReadAllText(f).Trim()))
            .Select(r => $"{r.Name}→{r.Commit[..Math.Min(8, r.Commit.Length)]}").ToArray() : [];
        string[] snapshotNames = Directory.Exists(snapshots) ? Directory.GetDirectories(snapshots).Select(d => Path.GetFileName(d)).ToArray() : [];
        long bytes = Directory.Exists(blobs) ? Directory.GetFiles(blobs).Where(f => !f.EndsWith(".incomplete", StringComparison.Ordinal)).Sum(f => new FileInfo(f).Length) : 0;
        string[] files = Directory.Exists(snapshots) ? Directory.GetFiles(snapshots, "*", SearchOption.AllDirectories).Select(f => Path.GetFileName(f)).Distinct().Order().ToArray() : [];
        return (id, refNames, snapshotNames, bytes, files);
    }
}
