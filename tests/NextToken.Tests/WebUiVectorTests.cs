using System.Globalization;
using System.Text;
using System.Text.Json;
using NextToken.Models;
using NextToken.Sampling;
using Xunit.Abstractions;

namespace NextToken.Tests;

/// <summary>
/// <c>web/test/vectors.json</c>: real logits rows (the built-in model) and, for a grid of sampler
/// settings, the ids and probabilities the C# stages leave. The web UI's reshaping (web/src/sampling.ts)
/// is tested against this file by Vitest; this class checks the file is what the C# stages give today.
/// Set NEXTTOKEN_WRITE_VECTORS=1 to rewrite it after changing the sampler.
/// </summary>
public class WebUiVectorTests(ITestOutputHelper output)
{
    private static readonly string[] Prompts = ["Once upon a time", "The cat sat on the", "Lily wanted to"];

    private static readonly SamplingOptions[] Settings =
    [
        new(),
        new() { Temperature = 0 },
        new() { Temperature = 0.5f, TopK = 0, TopP = 1, MinP = 0 },
        new() { Temperature = 1.5f, TopK = 0, TopP = 1, MinP = 0 },
        new() { Temperature = 1, TopK = 5, TopP = 1, MinP = 0 },
        new() { Temperature = 1, TopK = 1, TopP = 1, MinP = 0 },
        new() { Temperature = 1, TopK = 0, TopP = 0.5f, MinP = 0 },
        new() { Temperature = 1, TopK = 0, TopP = 0.9f, MinP = 0 },
        new() { Temperature = 1, TopK = 0, TopP = 1, MinP = 0.1f },
        new() { Temperature = 2, TopK = 0, TopP = 1, MinP = 0.01f },
        new() { Temperature = 1.3f, TopK = 20, TopP = 0.8f, MinP = 0.02f },
        new() { Temperature = 1.3f, TopK = 20, TopP = 0.8f, MinP = 0.02f, Order = SamplerOrder.HuggingFace },
        new() { Temperature = 3, TopK = 0, TopP = 0.9f, MinP = 0, Order = SamplerOrder.HuggingFace },
    ];

    public static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "NextToken.slnx"))) return dir.FullName;
        throw new DirectoryNotFoundException("repository root (NextToken.slnx) not found above " + AppContext.BaseDirectory);
    }

    private static string VectorsPath => Path.Combine(RepositoryRoot(), "web", "test", "vectors.json");

    /// <summary>What the C# chain keeps, best first, and the renormalized probabilities it draws from.</summary>
    private static (int[] Ids, double[] Probabilities) Run(float[] logits, SamplingOptions options)
    {
        var chain = new SamplerChain(logits.Length, options, new Xoshiro256StarStar(1));
        if (chain.IsGreedy) return ([FirstBest(logits)], [1.0]);
        var candidates = new Candidates(logits.Length);
        candidates.Fill(logits);
        foreach (ISamplerStage stage in chain.Stages) stage.Apply(candidates);
        candidates.SortDescending(); // as SamplerChain.Sample does before the draw
        candidates.Normalize();
        return (candidates.Items.ToArray().Select(c => c.Id).ToArray(), candidates.Items.ToArray().Select(c => c.Probability).ToArray());
    }

    private static int FirstBest(float[] logits)
    {
        int best = 0;
        for (int i = 1; i < logits.Length; i++)
            if (logits[i] > logits[best]) best = i;
        return best;
    }

    private static List<float[]> Rows()
    {
        LanguageModel model = ModelLoader.Load(BuiltInModel.Id);
        var rows = new List<float[]>();
        foreach (string prompt in Prompts)
        {
            var logits = new float[model.VocabSize];
            model.Forward(model.CreateState(), model.Tokenizer.Encode(prompt, model.Tokenizer.Vocabulary.AddBos).Ids, logits);
            rows.Add(logits);
        }
        // The first row rounded to halves: many equal logits, so the id tie-break is exercised.
        rows.Add(rows[0].Select(l => MathF.Round(l * 2) / 2).ToArray());
        return rows;
    }

    private static string Json(List<float[]> rows)
    {
        var text = new StringBuilder();
        text.Append("{\n  \"model\": \"").Append(BuiltInModel.Name).Append("\",\n  \"rows\": [\n");
        for (int r = 0; r < rows.Count; r++)
        {
            text.Append("    {\n      \"logits\": [").AppendJoin(",", rows[r].Select(l => l.ToString("R", CultureInfo.InvariantCulture))).Append("],\n      \"cases\": [\n");
            for (int s = 0; s < Settings.Length; s++)
            {
                SamplingOptions o = Settings[s];
                (int[] ids, double[] probabilities) = Run(rows[r], o);
                text.Append("        {\"temperature\": ").Append(o.Temperature.ToString("R", CultureInfo.InvariantCulture))
                    .Append(", \"top_k\": ").Append(o.TopK)
                    .Append(", \"top_p\": ").Append(o.TopP.ToString("R", CultureInfo.InvariantCulture))
                    .Append(", \"min_p\": ").Append(o.MinP.ToString("R", CultureInfo.InvariantCulture))
                    .Append(", \"order\": \"").Append(o.Order == SamplerOrder.LlamaCpp ? "llama" : "hf")
                    .Append("\", \"kept\": [").AppendJoin(",", ids)
                    .Append("], \"prob\": [").AppendJoin(",", probabilities.Select(p => p.ToString("R", CultureInfo.InvariantCulture)))
                    .Append("]}").Append(s + 1 < Settings.Length ? ",\n" : "\n");
            }
            text.Append("      ]\n    }").Append(r + 1 < rows.Count ? ",\n" : "\n");
        }
        return text.Append("  ]\n}\n").ToString();
    }

    [Fact]
    public void Vectors_MatchTheCSharpStagesOnTheBuiltInModel()
    {
        List<float[]> rows = Rows();
        if (Environment.GetEnvironmentVariable("NEXTTOKEN_WRITE_VECTORS") == "1")
        {
            Directory.CreateDirectory(Path.GetDirectoryName(VectorsPath)!);
            File.WriteAllText(VectorsPath, Json(rows));
            output.WriteLine($"wrote {VectorsPath}");
        }
        Assert.True(File.Exists(VectorsPath), $"{VectorsPath} is missing; run this test with NEXTTOKEN_WRITE_VECTORS=1");
        using JsonDocument file = JsonDocument.Parse(File.ReadAllBytes(VectorsPath));
        JsonElement stored = file.RootElement.GetProperty("rows");
        Assert.Equal(rows.Count, stored.GetArrayLength());
        // The stored rows are the model's logits today (to float32 kernel differences between CPUs)…
        double maxLogitDiff = 0, maxProbDiff = 0;
        for (int r = 0; r < rows.Count; r++)
        {
            float[] storedLogits = stored[r].GetProperty("logits").EnumerateArray().Select(e => e.GetSingle()).ToArray();
            Assert.Equal(rows[r].Length, storedLogits.Length);
            for (int i = 0; i < storedLogits.Length; i++) maxLogitDiff = Math.Max(maxLogitDiff, Math.Abs(storedLogits[i] - rows[r][i]));
            // …and each case is what the stages give on the stored row: the same ids in the same order, the same probabilities.
            JsonElement cases = stored[r].GetProperty("cases");
            Assert.Equal(Settings.Length, cases.GetArrayLength());
            for (int s = 0; s < Settings.Length; s++)
            {
                (int[] ids, double[] probabilities) = Run(storedLogits, Settings[s]);
                int[] storedIds = cases[s].GetProperty("kept").EnumerateArray().Select(e => e.GetInt32()).ToArray();
                double[] storedProbabilities = cases[s].GetProperty("prob").EnumerateArray().Select(e => e.GetDouble()).ToArray();
                Assert.True(ids.SequenceEqual(storedIds), $"row {r} case {s}: the stages keep [{string.Join(",", ids.Take(20))}…], the file says [{string.Join(",", storedIds.Take(20))}…]; rewrite it with NEXTTOKEN_WRITE_VECTORS=1");
                for (int i = 0; i < ids.Length; i++) maxProbDiff = Math.Max(maxProbDiff, Math.Abs(probabilities[i] - storedProbabilities[i]));
            }
        }
        output.WriteLine($"{rows.Count} rows × {Settings.Length} settings; max |logit diff| {maxLogitDiff:E2} (tolerance 1e-4), max |prob diff| {maxProbDiff:E2} (tolerance 1e-6)");
        Assert.True(maxLogitDiff <= 1e-4, $"the built-in model's logits moved by {maxLogitDiff}; rewrite the vectors with NEXTTOKEN_WRITE_VECTORS=1");
        Assert.True(maxProbDiff <= 1e-6, $"the stages' probabilities moved by {maxProbDiff}; rewrite the vectors with NEXTTOKEN_WRITE_VECTORS=1");
    }
}
