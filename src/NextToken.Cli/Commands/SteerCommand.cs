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
        // The runs honour Ctrl-C (RunAsync reports "cancelled"); the model runs on a pool thread.
        command.SetAction((parse, cancellation) => CommonOptions.RunAsync(parse, () => Task.Run(() =>
        {
            using LanguageModel lm = CommonOptions.LoadModel(parse, parse.GetValue(model), parse.GetValue(threads));
            var (promptIds, addIds, subIds, padId) = Steering.Encode(lm, parse.GetValue(prompt)!, parse.GetValue(add)!, parse.GetValue(sub)!);

            if (parse.GetValue(sweep))
                return Sweep(parse, lm, promptIds, addIds, subIds, padId, parse.GetValue(coeffs)!, parse.GetValue(targets) is { Length: > 0 } t ? t : [parse.GetValue(add)!], parse.GetValue(json));

            CommonOptions.Checked(parse, runs, 1);
            CommonOptions.Checked(parse, maxTokens, 0);
            float coefficient = CommonOptions.Checked(parse, coeff);
            SamplingOptions options = sampling.Build(parse, Steering.DefaultSampling);
            ulong seed = parse.GetValue(sampling.Seed) ?? Xoshiro256StarStar.RandomSeed();
            SteerReport report = Reports.Steer(lm, promptIds, addIds, subIds, padId, parse.GetValue(layer), coefficient, parse.GetValue(runs), parse.GetValue(maxTokens), options, seed, cancellation);
            if (parse.GetValue(json))
            {
                JsonOutput.Write(report);
                return 0;
            }
            // The row norms' brackets are escaped: Spectre reads "[14.2, …]" as a style name.
            string norms = Markup.Escape($"[{string.Join(", ", report.VectorRowNorms.Select(v => v.ToString("F1", CultureInfo.InvariantCulture)))}]");
            AnsiConsole.MarkupLine($"steering vector: \"{Markup.Escape(parse.GetValue(add)!)}\" − \"{Markup.Escape(parse.GetValue(sub)!)}\" at {HookNames.ResidPre(report.Layer)}, {report.VectorLength} positions, row norms {norms}, × {coefficient.ToString(CultureInfo.InvariantCulture)}");
            var table = new Table().Border(TableBorder.Rounded).AddColumn(new TableColumn("seed").RightAligned()).AddColumn("unsteered").AddColumn("[bold]steered[/]");
            foreach (ReportSteerRun r in report.Runs)
                table.AddRow(r.Seed.ToString(), Markup.Escape(parse.GetValue(prompt)! + r.Unsteered), Markup.Escape(parse.GetValue(prompt)! + r.Steered));
            AnsiConsole.Write(table);
            return 0;
        })));
        return command;
    }

    /// <summary>Every layer × coefficient: lift of the targets' log-probability at the next position, KL to the unsteered distribution, and the vector's size relative to the residual stream.</summary>
    private static int Sweep(ParseResult parse, LanguageModel lm, int[] promptIds, int[] addIds, int[] subIds, int padId, string coefficientList, string[] targetTexts, bool json)
    {
        float[] coefficients = coefficientList.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(c => float.TryParse(c, NumberStyles.Float, CultureInfo.InvariantCulture, out float v) ? CommonOptions.Checked("--coeffs", v) : throw new NextTokenException($"--coeffs: '{c}' is not a number")).ToArray();
        if (coefficients.Length == 0) throw new NextTokenException("--coeffs: no coefficients given");
        int[] targetIds = Steering.TargetIds(lm, targetTexts);
        if (targetIds.Length == 0) throw new NextTokenException("--target: no target token");
        SteerSweepReport report = Reports.SteerSweep(lm, promptIds, addIds, subIds, padId, coefficients, targetIds);
        if (json)
        {
            JsonOutput.Write(report);
            return 0;
        }
        var table = new Table().Border(TableBorder.Rounded).Title($"steering sweep: lift of log P({Markup.Escape(string.Join(", ", targetIds.Select(id => lm.Tokenizer.TokenDisplay(id))))}) at the next position")
            .AddColumn("layer").AddColumn(new TableColumn("coeff").RightAligned()).AddColumn(new TableColumn("log-prob lift").RightAligned())
            .AddColumn(new TableColumn("KL to unsteered").RightAligned()).AddColumn(new TableColumn("‖coeff·v‖ / ‖resid‖").RightAligned());
        foreach (ReportSweepRow r in report.Sweep) table.AddRow(r.Layer.ToString(), r.Coefficient.ToString(CultureInfo.InvariantCulture), r.LogProbabilityLift.ToString("+0.000;-0.000"), r.KlToUnsteered.ToString("F4"), r.RelativeNorm.ToString("F2"));
        AnsiConsole.Write(table);
        return 0;
    }
}
