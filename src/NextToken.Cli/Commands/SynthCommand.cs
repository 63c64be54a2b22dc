using System.CommandLine;
using NextToken.Gguf;
using NextToken.Models;
using NextToken.Tensors;
using Spectre.Console;

namespace NextToken.Cli.Commands;

/// <summary><c>nexttoken synth</c>: a random-weight GGUF with a real model's shapes, for benchmarks.</summary>
internal static class SynthCommand
{
    /// <summary>
    /// The fixtures' gpt-2 or llama-spm vocabulary: in $NEXTTOKEN_FIXTURES if set, else in
    /// <c>../shared/fixtures</c> beside the repository (the first directory holding NextToken.slnx
    /// above the current directory or above this executable), so synth runs from any directory.
    /// </summary>
    internal static string DefaultVocab(string arch)
    {
        string file = arch == "llama" ? "ggml-vocab-llama-spm.gguf" : "ggml-vocab-gpt-2.gguf";
        if (Environment.GetEnvironmentVariable("NEXTTOKEN_FIXTURES") is { Length: > 0 } fixtures)
        {
            string named = Path.GetFullPath(Path.Combine(fixtures, "vocab", file));
            return File.Exists(named) ? named : throw new NextTokenException($"no default vocabulary at {named} (from $NEXTTOKEN_FIXTURES); give --from-vocab FILE");
        }
        foreach (string start in new[] { Environment.CurrentDirectory, AppContext.BaseDirectory })
            for (var dir = new DirectoryInfo(start); dir != null; dir = dir.Parent)
                if (File.Exists(Path.Combine(dir.FullName, "NextToken.slnx")))
                {
                    string candidate = Path.GetFullPath(Path.Combine(dir.FullName, "..", "shared", "fixtures", "vocab", file));
                    if (File.Exists(candidate)) return candidate;
                    break;
                }
        throw new NextTokenException($"no default vocabulary: {file} not found in ../shared/fixtures/vocab beside a NextToken checkout above {Environment.CurrentDirectory} or {AppContext.BaseDirectory}; give --from-vocab FILE or set NEXTTOKEN_FIXTURES");
    }

    private static string TypeNames => string.Join(", ", SyntheticModel.SupportedTypes.Select(t => t.ToString().ToLowerInvariant()));

    private const int MaxContext = 1 << 20;

    public static Command Create()
    {
        var arch = new Option<string>("--arch") { Description = "Architecture: gpt2 or llama", DefaultValueFactory = _ => "gpt2" };
        var size = new Option<string?>("--size") { Description = $"Model size: gpt2 {string.Join(", ", Gpt2Shape.Known.Select(s => s.Name))}; llama {string.Join(", ", LlamaShape.Known.Select(s => s.Name))} (default 124M / 135M)" };
        var type = new Option<string>("--type") { Description = $"Weight type of the matrices: {TypeNames} (types other than f32/f16/bf16/q8_0/q4_0 are random blocks, for speed)", DefaultValueFactory = _ => "f32" };
        var output = new Option<string>("--output", "-o") { Description = "GGUF file to write", Required = true };
        var vocab = new Option<string?>("--from-vocab") { Description = "GGUF file whose tokenizer is copied (default: the fixtures' gpt-2 or llama-spm vocabulary)" };
        var seed = new Option<ulong>("--seed") { Description = "Seed of the random weights", DefaultValueFactory = _ => 1UL };
        var context = new Option<int?>("--ctx") { Description = "Trained context length to write (default: the real model's), e.g. to bench attention at depth past it" };
        var command = new Command("synth", "Write a random-weight GGUF with a real model's shapes (loads in llama.cpp too)")
        {
            arch, size, type, output, vocab, seed, context,
        };
        command.SetAction(parse => CommonOptions.Run(parse, () =>
        {
            string architecture = parse.GetValue(arch)!;
            if (architecture is not ("gpt2" or "llama"))
                throw new NextTokenException($"--arch '{architecture}' is not supported by synth; supported: gpt2, llama");
            string typeName = parse.GetValue(type)!;
            GgmlType weightType = SyntheticModel.SupportedTypes.FirstOrDefault(t => t.ToString().Equals(typeName, StringComparison.OrdinalIgnoreCase), (GgmlType)uint.MaxValue);
            if (weightType == (GgmlType)uint.MaxValue)
                throw new NextTokenException($"--type '{typeName}' is not supported by synth; supported: {TypeNames}");
            string path = parse.GetValue(output)!;
            using GgufFile vocabulary = GgufFile.Open(parse.GetValue(vocab) ?? DefaultVocab(architecture));
            string description;
            if (architecture == "gpt2")
            {
                Gpt2Shape shape = Gpt2Shape.Parse(parse.GetValue(size) ?? "124M");
                if (parse.GetValue(context) is { } gpt2Context) shape = shape with { NCtx = CommonOptions.Checked(context.Name, gpt2Context, 1, MaxContext) };
                AnsiConsole.Status().Start($"writing GPT-2 {shape.Name} {weightType} to {Markup.Escape(path)} …", _ =>
                    SyntheticModel.WriteGpt2(path, shape, weightType, vocabulary, parse.GetValue(seed)));
                description = $"GPT-2 {shape.Name} ({shape.NLayer} layers × {shape.NEmbd}, {shape.NHead} heads, ctx {shape.NCtx})";
            }
            else
            {
                LlamaShape shape = LlamaShape.Parse(parse.GetValue(size) ?? "135M");
                if (parse.GetValue(context) is { } llamaContext) shape = shape with { NCtx = CommonOptions.Checked(context.Name, llamaContext, 1, MaxContext) };
                AnsiConsole.Status().Start($"writing Llama {shape.Name} {weightType} to {Markup.Escape(path)} …", _ =>
                    SyntheticModel.WriteLlama(path, shape, weightType, vocabulary, parse.GetValue(seed)));
                description = $"Llama {shape.Name} ({shape.NLayer} layers × {shape.NEmbd}, {shape.NHead} heads / {shape.NKvHead} KV, ffn {shape.NFf}, ctx {shape.NCtx})";
            }
            AnsiConsole.MarkupLine($"wrote [bold]{Markup.Escape(path)}[/]: {description}, {weightType}, {new FileInfo(path).Length / 1e6:F1} MB");
            return 0;
        }));
        return command;
    }
}
