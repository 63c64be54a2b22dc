using System.CommandLine;
using NextToken.Gguf;
using NextToken.Tensors;
using Spectre.Console;

namespace NextToken.Cli.Commands;

/// <summary><c>nexttoken info</c>: what a GGUF file holds.</summary>
internal static class InfoCommand
{
    /// <summary>Scalars as themselves; arrays as their type, length and first items (vocabularies are long).</summary>
    private static object JsonValue(GgufValue value)
    {
        if (!value.IsArray) return value.Value;
        var array = (Array)value.Value;
        var head = new List<object?>();
        for (int i = 0; i < Math.Min(array.Length, 16); i++)
            head.Add(array.GetValue(i) is GgufValue nested ? JsonValue(nested) : array.GetValue(i));
        return new { element_type = value.ElementType.ToString(), length = array.Length, head };
    }

    /// <summary>The family's distinguishing settings, as the model would run them; none for GPT-2 and vocabulary-only files.</summary>
    private static IReadOnlyList<(string Setting, string Value)> FamilySettings(GgufFile file, string architecture)
    {
        if (NextToken.Models.ModelFamilies.ForGguf(architecture) is not { } family || family == NextToken.Models.ModelFamilies.Gpt2) return [];
        var config = NextToken.Models.LlamaConfig.FromGguf(file, 0, family);
        string? factors = file.Tensors.Any(t => t.Name == NextToken.Models.TensorNames.RopeFreqs) ? NextToken.Models.TensorNames.RopeFreqs
            : file.Tensors.Any(t => t.Name == NextToken.Models.TensorNames.RopeFactorsShort) ? NextToken.Models.TensorNames.RopeFactorsShort + " (short LongRoPE factors)" : null;
        return config.Describe(factors);
    }

    private static int CheckpointInfo(string directory, bool json)
    {
        var (checkpoint, family, hfConfig) = NextToken.Models.ModelLoader.OpenCheckpoint(directory);
        using var _ = checkpoint;
        IReadOnlyList<(string Setting, string Value)> settings = family == NextToken.Models.ModelFamilies.Gpt2 ? []
            : NextToken.Models.LlamaConfig.FromHuggingFace(hfConfig, 0, family).Describe();
        string config = File.ReadAllText(Path.Combine(directory, "config.json"));
        var tensors = checkpoint.Files.SelectMany(f => f.Tensors.Select(t => (File: Path.GetFileName(f.FilePath), Tensor: t))).OrderBy(t => t.Tensor.Name, StringComparer.Ordinal).ToList();
        if (json)
        {
            JsonOutput.Write(new
            {
                directory, architecture = checkpoint.Architecture,
                family = settings.ToDictionary(s => s.Setting, s => s.Value),
                config = System.Text.Json.JsonDocument.Parse(config).RootElement,
                tensors = tensors.Select(t => new { name = t.Tensor.Name, dtype = t.Tensor.DType, shape = t.Tensor.Shape, bytes = t.Tensor.End - t.Tensor.Begin, file = t.File }).ToArray(),
            });
            return 0;
        }
        AnsiConsole.MarkupLine($"[bold]{Markup.Escape(directory)}[/]: Hugging Face checkpoint, architecture {checkpoint.Architecture}, {tensors.Count} tensors in {checkpoint.Files.Count} file(s)");
        if (settings.Count > 0)
        {
            var grid = new Grid().AddColumn().AddColumn();
            foreach (var (setting, value) in settings) grid.AddRow($"[bold]{Markup.Escape(setting)}[/]", Markup.Escape(value));
            AnsiConsole.Write(grid);
        }
        AnsiConsole.Write(new Panel(Markup.Escape(config)).Header("config.json"));
        var table = new Table().Border(TableBorder.Rounded).AddColumn("name").AddColumn("dtype").AddColumn("shape").AddColumn(new TableColumn("bytes").RightAligned()).AddColumn("file");
        foreach (var (file, t) in tensors)
            table.AddRow(Markup.Escape(t.Name), t.DType, Markup.Escape("[" + string.Join(", ", t.Shape) + "]"), CommonOptions.Number(t.End - t.Begin), Markup.Escape(file));
        AnsiConsole.Write(table);
        return 0;
    }

    public static Command Create()
    {
        var model = CommonOptions.Model();
        model.Description = "GGUF file or Hugging Face checkpoint to describe";
        var json = CommonOptions.Json();
        var command = new Command("info", "Show a GGUF file's architecture, hyperparameters, metadata and tensor table") { model, json };
        command.SetAction(parse => CommonOptions.Run(parse, () =>
        {
            string path = CommonOptions.ResolveModel(parse.GetValue(model));
            if (Directory.Exists(path)) return CheckpointInfo(path, parse.GetValue(json));
            using GgufFile file = GgufFile.Open(path);
            string architecture = file.GetStringOrNull("general.architecture") ?? "(none: vocabulary only)";
            var typeMix = file.Tensors.GroupBy(t => t.Type).OrderByDescending(g => g.Sum(t => t.ByteLength))
                .Select(g => new { type = g.Key.ToString(), count = g.Count(), bytes = g.Sum(t => t.ByteLength) }).ToArray();
            IReadOnlyList<(string Setting, string Value)> settings = FamilySettings(file, architecture);
            if (parse.GetValue(json))
            {
                JsonOutput.Write(new
                {
                    file = file.FilePath,
                    gguf_version = file.Version,
                    architecture,
                    family = settings.ToDictionary(s => s.Setting, s => s.Value),
                    alignment = file.Alignment,
                    file_bytes = file.FileLength,
                    metadata = file.MetadataKeys.ToDictionary(k => k, k => JsonValue(file.Metadata[k])),
                    tensor_types = typeMix,
                    tensors = file.Tensors.Select(t => new { name = t.Name, type = t.Type.ToString(), shape = t.Dims, bytes = t.ByteLength, offset = t.AbsoluteOffset }).ToArray(),
                });
                return 0;
            }
            var summary = new Grid().AddColumn().AddColumn();
            summary.AddRow("[bold]file[/]", Markup.Escape(file.FilePath));
            summary.AddRow("[bold]architecture[/]", Markup.Escape(architecture));
            summary.AddRow("[bold]name[/]", Markup.Escape(file.GetStringOrNull("general.name") ?? "-"));
            summary.AddRow("[bold]GGUF version[/]", file.Version.ToString());
            summary.AddRow("[bold]size[/]", $"{CommonOptions.Number(file.FileLength)} bytes, tensor data from offset {file.DataOffset}, alignment {file.Alignment}");
            summary.AddRow("[bold]tensors[/]", $"{file.Tensors.Count}, {CommonOptions.Number(file.Tensors.Sum(t => t.ElementCount))} parameters");
            summary.AddRow("[bold]weight types[/]", Markup.Escape(string.Join(", ", typeMix.Select(t => $"{t.type}: {t.count} tensors, {t.bytes / 1048576.0:F1} MiB"))));
            foreach (var (setting, value) in settings)
                if (setting != "family") summary.AddRow($"[bold]{Markup.Escape(setting)}[/]", Markup.Escape(value));
            AnsiConsole.Write(summary);

            var metadata = new Table().Border(TableBorder.Rounded).Title("metadata").AddColumn("key").AddColumn("type").AddColumn("value");
            foreach (string key in file.MetadataKeys)
            {
                GgufValue value = file.Metadata[key];
                string type = value.IsArray ? $"{value.ElementType}[{value.ArrayLength}]" : value.Type.ToString();
                string style = key.StartsWith(architecture + ".", StringComparison.Ordinal) ? "bold" : "default";
                metadata.AddRow($"[{style}]{Markup.Escape(key)}[/]", Markup.Escape(type), Markup.Escape(value.ToDisplayString()));
            }
            AnsiConsole.Write(metadata);

            var tensors = new Table().Border(TableBorder.Rounded).Title("tensors")
                .AddColumn("name").AddColumn("type").AddColumn("shape (ggml order)").AddColumn(new TableColumn("bytes").RightAligned()).AddColumn(new TableColumn("offset").RightAligned());
            foreach (GgufTensorInfo t in file.Tensors)
                tensors.AddRow(Markup.Escape(t.Name), t.Type.ToString(), Markup.Escape("[" + string.Join(", ", t.Dims) + "]"), CommonOptions.Number(t.ByteLength), CommonOptions.Number(t.AbsoluteOffset));
            if (file.Tensors.Count > 0) AnsiConsole.Write(tensors);
            return 0;
        }));
        return command;
    }
}
