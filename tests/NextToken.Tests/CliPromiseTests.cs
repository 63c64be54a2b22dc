using System.Text;
using Xunit.Abstractions;

namespace NextToken.Tests;

/// <summary>
/// The CLI's promise as a property: for mutated fixture files (structure-aware byte flips and
/// truncations of a GGUF, edits of config.json and tokenizer.json, hostile chat templates), every
/// command either succeeds or prints exactly one line "error: …" and exits 1 — no crash, no stack
/// trace without --verbose, no bare .NET exception text, no hang past the bound. The mutations
/// come from a fixed seed, so a failure reproduces.
/// </summary>
public class CliPromiseTests(ITestOutputHelper output) : IDisposable
{
    private readonly TempDir _temp = new();

    public void Dispose() => _temp.Dispose();

    /// <summary>Texts that only appear when an exception escapes the one-line error path.</summary>
    private static readonly string[] Leaks =
    [
        "   at ", "Exception:", "Unhandled", "Object reference not set", "Index was outside", "Arithmetic operation",
        "Specified argument", "Value cannot be null", "The requested operation requires", "Could not find color or style",
    ];

    private string Check(string what, string[] args)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var (code, stdout, stderr) = CliTests.RunWith(null, null, args);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(60), $"{what}: took {clock.Elapsed.TotalSeconds:F0} s");
        string firstLine = stderr.Trim().Split('\n')[0];
        output.WriteLine($"{what}: exit {code}{(code == 0 ? "" : ": " + firstLine)}");
        Assert.True(code is 0 or 1, $"{what}: exit code {code}: {stderr}");
        foreach (string leak in Leaks)
            Assert.False(stderr.Contains(leak, StringComparison.Ordinal) || stdout.Contains(leak, StringComparison.Ordinal), $"{what}: '{leak}' in the output: {stderr}");
        if (code == 1)
        {
            Assert.StartsWith("error: ", stderr);
            Assert.Single(stderr.TrimEnd().Split('\n'));
        }
        return stderr;
    }

    [Fact]
    public void MutatedGguf_EveryCommand_SucceedsOrFailsWithOneLine()
    {
        byte[] original = File.ReadAllBytes(Fixtures.Model("stories260K.gguf"));
        var random = new Random(20261201);
        // Header, metadata and the tensor table are where structure lives: most flips go there.
        int structureEnd = Math.Min(original.Length, 24_000);
        for (int i = 0; i < 24; i++)
        {
            byte[] mutated = (byte[])original.Clone();
            string how;
            switch (i % 4)
            {
                case 0:
                    int cut = random.Next(8, structureEnd);
                    mutated = mutated[..cut];
                    how = $"truncated at {cut}";
                    break;
                case 1:
                    int at = random.Next(0, structureEnd);
                    mutated[at] ^= (byte)(1 << random.Next(8));
                    how = $"bit flip at {at}";
                    break;
                case 2:
                    int start = random.Next(8, structureEnd - 8);
                    BitConverter.TryWriteBytes(mutated.AsSpan(start), random.Next(2) == 0 ? ulong.MaxValue : (ulong)random.NextInt64());
                    how = $"8 bytes overwritten at {start}";
                    break;
                default:
                    int from = random.Next(structureEnd, original.Length - 64);
                    random.NextBytes(mutated.AsSpan(from, 64));
                    how = $"tensor bytes randomized at {from}";
                    break;
            }
            string path = Path.Combine(_temp.Path, $"m{i}.gguf");
            File.WriteAllBytes(path, mutated);
            string command = (i % 3) switch { 0 => "next", 1 => "tokenize", _ => "info" };
            string[] args = command switch
            {
                "next" => ["next", "--model", path, "Once upon a time"],
                "tokenize" => ["tokenize", "--model", path, "--text", "Once upon a time"],
                _ => ["info", "--model", path],
            };
            Check($"{command} on {how}", args);
        }
    }

    [Fact]
    public void MutatedCheckpoint_ConfigAndTokenizer_SucceedOrFailWithOneLine()
    {
        string source = Fixtures.Model("gpt2-tiny-hf");
        string[] configEdits =
        [
            "\"n_layer\": 2", "\"n_layer\": \"2\"", "\"n_layer\": -1", "\"n_layer\": 1e12", "\"n_layer\": null", "\"n_layer\": [2]",
            "\"n_embd\": 65", "\"vocab_size\": 0", "\"n_head\": 0", "\"n_positions\": 99999999999",
        ];
        var random = new Random(7);
        int i = 0;
        foreach (string edit in configEdits)
        {
            string dir = Copy(source, $"c{i++}");
            string config = File.ReadAllText(Path.Combine(dir, "config.json"));
            string key = edit[..edit.IndexOf(':')];
            int k = config.IndexOf(key, StringComparison.Ordinal);
            if (k >= 0)
            {
                int end = config.IndexOfAny([',', '}'], k);
                config = config[..k] + edit + config[end..];
            }
            else config = config.TrimEnd().TrimEnd('}') + ", " + edit + "}";
            File.WriteAllText(Path.Combine(dir, "config.json"), config);
            Check($"next with config {edit}", ["next", "--model", dir, "--tokens", "1,2,3"]);
        }
        // vocab.json and merges.txt: cut at random places, a huge id, an unparseable line.
        string vocab = File.ReadAllText(Path.Combine(source, "vocab.json"));
        string[] vocabMutations =
        [
            vocab[..random.Next(1, vocab.Length)],
            vocab.Replace("\"!\": 0", "\"!\": 1000000000"),
            vocab.Replace("\"!\": 0", "\"!\": -5"),
            vocab.Replace("\"!\": 0", "\"!\": \"zero\""),
            "[1, 2, 3]",
        ];
        foreach (string mutated in vocabMutations)
        {
            string dir = Copy(source, $"v{i++}");
            File.WriteAllText(Path.Combine(dir, "vocab.json"), mutated);
            Check($"tokenize with vocab.json mutation {i}", ["tokenize", "--model", dir, "--text", "hello world"]);
        }
        string merges = File.ReadAllText(Path.Combine(source, "merges.txt"));
        foreach (string mutated in new[] { merges[..random.Next(1, merges.Length)], merges + "\nonlyone\n", merges.Replace(" ", "\t") })
        {
            string dir = Copy(source, $"g{i++}");
            File.WriteAllText(Path.Combine(dir, "merges.txt"), mutated);
            string stderr = Check($"tokenize with merges.txt mutation {i}", ["tokenize", "--model", dir, "--text", "hello world"]);
            if (mutated.Contains("onlyone") || mutated.Contains('\t')) Assert.Contains("merges.txt: line ", stderr);
        }
    }

    [Fact]
    public void HostileTemplates_ThroughTheTemplateCommand_SucceedOrFailWithOneLine()
    {
        string[] templates =
        [
            "{% for i in range(1000000000) %}x{% endfor %}", "{{ 'ab' * 1000000000000 }}", "{% set ns = namespace() %}{% set ns.self = ns %}{{ ns|tojson }}",
            string.Concat(Enumerable.Repeat("(", 100_000)), "{{ " + string.Concat(Enumerable.Repeat("[", 50_000)) + " }}", "{{ 1 / 0 }}", "{{ range(0, 10, 0)|list }}",
            "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "{{ messages[99] }}", "{% if %}", "{{ x.y.z }}", "{% for %}{% endfor %}",
        ];
        string messages = Path.Combine(_temp.Path, "messages.json");
        File.WriteAllText(messages, """[{"role": "user", "content": "hi"}]""");
        int i = 0;
        foreach (string template in templates)
        {
            string path = Path.Combine(_temp.Path, $"t{i++}.jinja");
            File.WriteAllText(path, template, Encoding.UTF8);
            Check($"template {i}", ["template", "--template-file", path, "--messages", messages]);
        }
    }

    private string Copy(string source, string name)
    {
        string dir = Path.Combine(_temp.Path, name);
        Directory.CreateDirectory(dir);
        foreach (string file in Directory.GetFiles(source)) File.Copy(file, Path.Combine(dir, Path.GetFileName(file)));
        return dir;
    }
}
