using System.CommandLine;
using System.Globalization;
using NextToken.Generation;
using NextToken.Inspection;
using NextToken.Models;
using NextToken.Sampling;
using Spectre.Console;

namespace NextToken.Cli.Commands;

/// <summary><c>nexttoken steer</c>: activation addition (ActAdd) into the residual stream.</summary>
internal static class SteerCommand
{
    public static Command Create()
    {
        var model = CommonOptions.Model();
        var prompt = CommonOptions.Prompt();
        prompt.Required = true;
        var add = new Option<string>("--add") { Description = "Prompt whose activations are added, e.g. \" wedding\"", Required = true };
        var sub = new Option<string>("--sub") { Description = "Prompt whose activations are subtracted, e.g. \" \"", Required = true };
        var layer = new Option<int>("--layer") { Description = "Layer whose input (hook_resid_pre) is steered", DefaultValueFactory = _ => 0 };
        var coeff = new Option<float>("--coeff") { Description = "Coefficient on the steering vector", DefaultValueFactory = _ => 4 };
        var runs = new Option<int>("--runs") { Description = "Continuations per side, with seeds seed, seed+1, …", DefaultValueFactory = _ => 3 };
        var maxTokens = new Option<int>("--max-tokens", "-n") { Description = "Tokens per continuation", DefaultValueFactory = _ => 30 };
        var sweep = new Option<bool>("--sweep") { Description = "Instead of generating, measure every layer × coefficient" };
        var coeffs = new Option<string>("--coeffs") { Description = "Coefficients for --sweep", DefaultValueFactory = _ => "1,2,4,8" };
        var targets = new Option<string[]>("--target") { Description = "Text whose first token's log-probability lift --sweep reports; repeatable (default: the --add text)" };
        var threads = CommonOptions.Threads();
        var json = CommonOptions.Json();
        var sampling = new SamplingFlags();
        var command = new Command("steer", "Add a steering vector (difference of two prompts' activations) into the residual stream and compare continuations")
        {
            model, prompt, add, sub, layer, coeff, runs, maxTokens, sweep, coeffs, targets, threads, json,
        };
        sampling.AddTo(command);
        command.SetAction((parse, cancellation) => CommonOptions.RunAsync(parse, async () =>
        {
            using LanguageModel lm = CommonOptions.LoadModel(parse, parse.GetValue(model), parse.GetValue(threads));
            var tokenizer = lm.Tokenizer;
            bool bos = tokenizer.Vocabulary.AddBos;
            int[] promptIds = tokenizer.Encode(parse.GetValue(prompt)!, bos).Ids;
            int[] addIds = tokenizer.Encode(parse.GetValue(add)!, bos).Ids, subIds = tokenizer.Encode(parse.GetValue(sub)!, bos).Ids;
            int padId = tokenizer.Encode(" ").Ids is [var space] ? space : tokenizer.Encode(" ").Ids[^1];

            if (parse.GetValue(sweep))
                return Sweep(parse, lm, promptIds, addIds, subIds, padId, parse.GetValue(coeffs)!, parse.GetValue(targets) is { Length: > 0 } t ? t : [parse.GetValue(add)!], parse.GetValue(json));

            CommonOptions.Checked(parse, runs, 1);
            CommonOptions.Checked(parse, maxTokens, 0);
            float coefficient = CommonOptions.Checked(parse, coeff);
            SteeringVector vector = SteeringVector.FromPrompts(lm, addIds, subIds, parse.GetValue(layer), padId);
            SamplingOptions options = sampling.Build(parse, new SamplingOptions { Temperature = 1.0f, TopK = 0, TopP = 0.3f, MinP = 0, FrequencyPenalty = 1 });
            ulong seed = parse.GetValue(sampling.Seed) ?? Xoshiro256StarStar.RandomSeed();
            var results = new List<(ulong Seed, string Plain, string Steered)>();
            for (int r = 0; r < parse.GetValue(runs); r++)
            {
                var generation = new GenerationOptions { MaxTokens = parse.GetValue(maxTokens), Sampling = options, Seed = seed + (ulong)r };
                string plain = await Continue(lm, promptIds, generation, cancellation);
                string steered;
                using (vector.Apply(lm, coefficient))
                    steered = await Continue(lm, promptIds, generation, cancellation);
                results.Add((seed + (ulong)r, plain, steered));
            }
            if (parse.GetValue(json))
            {
                JsonOutput.Write(new
                {
                    layer = vector.Layer, coeff = coefficient, vector_length = vector.Length, vector_row_norms = vector.RowNorms,
                    runs = results.Select(r => new { seed = r.Seed, unsteered = r.Plain, steered = r.Steered }).ToArray(),
                });
                return 0;
            }
            // The row norms' brackets are escaped: Spectre reads "[14.2, …]" as a style name.
            string norms = Markup.Escape($"[{string.Join(", ", vector.RowNorms.Select(v => v.ToString("F1", CultureInfo.InvariantCulture)))}]");
            AnsiConsole.MarkupLine($"steering vector: \"{Markup.Escape(parse.GetValue(add)!)}\" − \"{Markup.Escape(parse.GetValue(sub)!)}\" at {vector.HookName}, {vector.Length} positions, row norms {norms}, × {coefficient.ToString(CultureInfo.InvariantCulture)}");
            var table = new Table().Border(TableBorder.Rounded).AddColumn(new TableColumn("seed").RightAligned()).AddColumn("unsteered").AddColumn("[bold]steered[/]");
            foreach (var (s, plain, steered) in results)
                table.AddRow(s.ToString(), Markup.Escape(parse.GetValue(prompt)! + plain), Markup.Escape(parse.GetValue(prompt)! + steered));
            AnsiConsole.Write(table);
            return 0;
        }));
        return command;
    }

    private static async Task<string> Continue(LanguageModel model, int[] prompt, GenerationOptions options, CancellationToken cancellation)
    {
        var generator = new Generator(model);
        var text = new System.Text.StringBuilder();
        await foreach (GeneratedToken token in generator.GenerateAsync(prompt, options, cancellation)) text.Append(token.Text);
        return text.Append(generator.TrailingText).ToString();
    }

    /// <summary>Every layer × coefficient: lift of the targets' log-probability at the next position, KL to the unsteered distribution, and the vector's size relative to the residual stream.</summary>
    private static int Sweep(ParseResult parse, LanguageModel lm, int[] promptIds, int[] addIds, int[] subIds, int padId, string coefficientList, string[] targetTexts, bool json)
    {
        float[] coefficients = coefficientList.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(c => float.TryParse(c, NumberStyles.Float, CultureInfo.InvariantCulture, out float v) ? CommonOptions.Checked("--coeffs", v) : throw new NextTokenException($"--coeffs: '{c}' is not a number")).ToArray();
        if (coefficients.Length == 0) throw new NextTokenException("--coeffs: no coefficients given");
        int[] targetIds = targetTexts.Select(t => lm.Tokenizer.Encode(t).Ids.FirstOrDefault(-1)).Where(id => id >= 0).Distinct().ToArray();
        if (targetIds.Length == 0) throw new NextTokenException("--target: no target token");
        var (plainLogits, plainCache) = lm.RunWithCache(promptIds, n => n.EndsWith(HookNames.ResidPreSuffix, StringComparison.Ordinal));
        float[] plainLast = plainLogits[^lm.VocabSize..];
        double lseP = Kernels.Ops.LogSumExp(plainLast);
        var rows = new List<(int Layer, float Coeff, double Lift, double Kl, double RelativeNorm)>();
        for (int l = 0; l < lm.LayerCount; l++)
        {
            SteeringVector vector = SteeringVector.FromPrompts(lm, addIds, subIds, l, padId);
            CachedActivation residual = plainCache[vector.HookName];
            double residualNorm = Enumerable.Range(0, Math.Min(vector.Length, promptIds.Length)).Average(r => (double)System.Numerics.Tensors.TensorPrimitives.Norm(residual.Row(r)));
            double vectorNorm = vector.RowNorms.Take(Math.Min(vector.Length, promptIds.Length)).Average();
            foreach (float c in coefficients)
            {
                float[] steered;
                using (vector.Apply(lm, c)) steered = CompareCommand.NextLogits(lm, promptIds);
                double lseS = Kernels.Ops.LogSumExp(steered);
                double lift = targetIds.Average(id => (steered[id] - lseS) - (plainLast[id] - lseP));
                rows.Add((l, c, lift, DistributionComparison.Compare(steered, plainLast, 1).KlAB, c * vectorNorm / residualNorm));
            }
        }
        if (json)
        {
            JsonOutput.Write(new { targets = targetIds, sweep = rows.Select(r => new { layer = r.Layer, coeff = r.Coeff, logprob_lift = r.Lift, kl_to_unsteered = r.Kl, relative_norm = r.RelativeNorm }).ToArray() });
            return 0;
        }
        var table = new Table().Border(TableBorder.Rounded).Title($"steering sweep: lift of log P({Markup.Escape(string.Join(", ", targetIds.Select(id => lm.Tokenizer.TokenDisplay(id))))}) at the next position")
            .AddColumn("layer").AddColumn(new TableColumn("coeff").RightAligned()).AddColumn(new TableColumn("log-prob lift").RightAligned())
            .AddColumn(new TableColumn("KL to unsteered").RightAligned()).AddColumn(new TableColumn("‖coeff·v‖ / ‖resid‖").RightAligned());
        foreach (var r in rows) table.AddRow(r.Layer.ToString(), r.Coeff.ToString(CultureInfo.InvariantCulture), r.Lift.ToString("+0.000;-0.000"), r.Kl.ToString("F4"), r.RelativeNorm.ToString("F2"));
        AnsiConsole.Write(table);
        return 0;
    }
}
