using System.Text.Json;

namespace NextToken.Tests;

/// <summary>One case of <c>shared/fixtures/expected/&lt;stem&gt;.json</c>.</summary>
public sealed class ExpectedCase
{
    public required string Name { get; init; }
    public required int[] Tokens { get; init; }
    public required ExpectedPosition[] Positions { get; init; }
    public required string LastLogitsFile { get; init; }
    public required int[] GreedyNext12 { get; init; }
    public required double GreedyMinTop2Margin { get; init; }
    public required double[] ResidPreNormLast { get; init; }
    public required double[][][] AttnLastQuery { get; init; } // [layer][head][key]

    public float[] ReadLastLogits() =>
        System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(File.ReadAllBytes(Fixtures.Expected(LastLogitsFile))).ToArray();
}

public sealed record ExpectedPosition((int Id, double Logit)[] Top, double LogSumExp, double Mean, double Std);

public static class ExpectedOutputs
{
    /// <summary>models/&lt;stem&gt;.gguf, or the same under models/quant/ (one file per weight type) or models/arch/ (one per family).</summary>
    public static string ModelPath(string stem) =>
        File.Exists(Fixtures.Model(stem + ".gguf")) ? Fixtures.Model(stem + ".gguf")
        : File.Exists(Fixtures.Model(Path.Combine("arch", stem + ".gguf"))) ? Fixtures.Model(Path.Combine("arch", stem + ".gguf"))
        : Fixtures.Model(Path.Combine("quant", stem + ".gguf"));

    public static IReadOnlyList<ExpectedCase> Load(string stem)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Fixtures.Expected(stem + ".json")));
        var cases = new List<ExpectedCase>();
        foreach (JsonElement c in doc.RootElement.GetProperty("cases").EnumerateArray())
        {
            cases.Add(new ExpectedCase
            {
                Name = c.GetProperty("name").GetString()!,
                Tokens = c.GetProperty("tokens").EnumerateArray().Select(e => e.GetInt32()).ToArray(),
                Positions = c.GetProperty("positions").EnumerateArray().Select(p => new ExpectedPosition(
                    p.GetProperty("top").EnumerateArray().Select(t => (t[0].GetInt32(), t[1].GetDouble())).ToArray(),
                    p.GetProperty("logsumexp").GetDouble(), p.GetProperty("mean").GetDouble(), p.GetProperty("std").GetDouble())).ToArray(),
                LastLogitsFile = c.GetProperty("last_logits_file").GetString()!,
                GreedyNext12 = c.GetProperty("greedy_next_12").EnumerateArray().Select(e => e.GetInt32()).ToArray(),
                GreedyMinTop2Margin = c.GetProperty("greedy_min_top2_margin").GetDouble(),
                ResidPreNormLast = c.GetProperty("resid_pre_norm_last").EnumerateArray().Select(e => e.GetDouble()).ToArray(),
                AttnLastQuery = c.GetProperty("attn_last_query").EnumerateArray()
                    .Select(l => l.EnumerateArray().Select(h => h.EnumerateArray().Select(e => e.GetDouble()).ToArray()).ToArray()).ToArray(),
            });
        }
        return cases;
    }

    /// <summary>Every (model, case) pair of the given stems, for [Theory] data.</summary>
    public static TheoryData<string, string> Cases(params string[] stems)
    {
        var data = new TheoryData<string, string>();
        foreach (string stem in stems)
            foreach (ExpectedCase c in Load(stem))
                data.Add(stem, c.Name);
        return data;
    }
}

/// <summary>The fixtures README's tolerance for float32 engines: |a − e| ≤ 1e-3 + 1e-3·|e|.</summary>
public static class Tolerance
{
    public const double Absolute = 1e-3, Relative = 1e-3;

    public static double Of(double expected) => Absolute + Relative * Math.Abs(expected);

    public static bool Within(double actual, double expected) => Math.Abs(actual - expected) <= Of(expected);
}
