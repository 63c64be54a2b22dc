using System.CommandLine;
using NextToken.Gguf;
using NextToken.Models;
using NextToken.Tensors;
using Spectre.Console;

namespace NextToken.Cli.Commands;

/// <summary><c>nexttoken synth</c>: a random-weight GGUF with a real model's shapes, for benchmarks.</summary>
internal static class SynthCommand
{
    private const string DefaultVocab = "../shared/fixtures/vocab/ggml-vocab-gpt-2.gguf";

    public static Command Create()
    {
        var arch = new Option<string>("--arch") { Description = "Architecture (gpt2)", DefaultValueFactory = _ => "gpt2" };
        var size = new Option<string>("--size") { Description = $"Model size: {string.Join(", ", Gpt2Shape.Known.Select(s => s.Name))}", DefaultValueFactory = _ => "124M" };
        var type = new Option<string>("--type") { Description = "Weight type of the matrices: f32, f16, bf16", DefaultValueFactory = _ => "f32" };
        var output = new Option<string>("--output", "-o") { Description = "GGUF file to write", Required = true };
        var vocab = new Option<string>("--vocab") { Description = "GGUF file whose tokenizer is copied", DefaultValueFactory = _ => DefaultVocab };
        var seed = new Option<ulong>("--seed") { Description = "Seed of the random weights", DefaultValueFactory = _ => 1UL };
        var command = new Command("synth", "Write a random-weight GGUF with a real model's shapes (loads in llama.cpp too)")
        {
            arch, size, type, output, vocab, seed,
        };
        command.SetAction(parse => CommonOptions.Run(parse, () =>
        {
            if (parse.GetValue(arch) != "gpt2")
                throw new NextTokenException($"--arch '{parse.GetValue(arch)}' is not supported by synth yet; supported: gpt2");
            GgmlType weightType = parse.GetValue(type)!.ToLowerInvariant() switch
            {
                "f32" => GgmlType.F32,
                "f16" => GgmlType.F16,
                "bf16" => GgmlType.BF16,
                var other => throw new NextTokenException($"--type '{other}' is not supported by synth yet; supported: f32, f16, bf16"),
            };
            Gpt2Shape shape = Gpt2Shape.Parse(parse.GetValue(size)!);
            string path = parse.GetValue(output)!;
            using GgufFile vocabulary = GgufFile.Open(parse.GetValue(vocab)!);
            AnsiConsole.Status().Start($"writing {shape.Name} {weightType} to {Markup.Escape(path)} …", _ =>
                SyntheticModel.WriteGpt2(path, shape, weightType, vocabulary, parse.GetValue(seed)));
            AnsiConsole.MarkupLine($"wrote [bold]{Markup.Escape(path)}[/]: GPT-2 {shape.Name} ({shape.NLayer} layers × {shape.NEmbd}, {shape.NHead} heads, ctx {shape.NCtx}), {weightType}, {new FileInfo(path).Length / 1e6:F1} MB");
            return 0;
        }));
        return command;
    }
}
