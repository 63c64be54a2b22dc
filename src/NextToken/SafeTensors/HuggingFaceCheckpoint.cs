using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using NextToken.Tensors;

namespace NextToken.SafeTensors;

/// <summary>
/// A Hugging Face checkpoint directory: config.json and model.safetensors (or shards listed in
/// model.safetensors.index.json), all memory-mapped. Tensors are asked for by GGUF name and found
/// through the family's name table (<see cref="TensorNameMapping"/>), with or without a
/// <c>transformer.</c> or <c>model.</c> prefix;
/// buffers the model does not use (GPT-2's <c>attn.bias</c> masks) are simply never asked for.
/// </summary>
public sealed class HuggingFaceCheckpoint : IWeightSource
{
    private static readonly string[] Prefixes = ["", "transformer.", "model."];
    private readonly List<SafeTensorsFile> _files = [];
    private readonly Dictionary<string, SafeTensorsFile> _fileOf = new(StringComparer.Ordinal);
    private readonly (Regex Gguf, string HuggingFace, bool Transposed)[] _names;

    private HuggingFaceCheckpoint(string directory, string architecture, IReadOnlyList<TensorNameMapping> names)
    {
        FilePath = directory;
        Architecture = architecture;
        _names = names
            .Select(n => (new Regex("^" + Regex.Escape(n.Gguf).Replace("\\{0}", "(\\d+)") + "$"), n.HuggingFace, n.Transposed)).ToArray();
    }

    public string FilePath { get; }
    public IReadOnlyList<SafeTensorsFile> Files => _files;

    /// <summary>The family the caller chose from config.json (e.g. "gpt2", "llama").</summary>
    public string Architecture { get; }

    public static bool IsCheckpoint(string path) =>
        Directory.Exists(path) && File.Exists(Path.Combine(path, "config.json"));

    /// <summary>Maps the checkpoint's safetensors files; tensors are then asked for by GGUF name through <paramref name="names"/>.</summary>
    public static HuggingFaceCheckpoint Open(string directory, string architecture, IReadOnlyList<TensorNameMapping> names)
    {
        var checkpoint = new HuggingFaceCheckpoint(directory, architecture, names);
        try
        {
            checkpoint.OpenWeights();
            return checkpoint;
        }
        catch
        {
            checkpoint.Dispose();
            throw;
        }
    }

    private void OpenWeights()
    {
        string single = Path.Combine(FilePath, "model.safetensors"), index = Path.Combine(FilePath, "model.safetensors.index.json");
        IEnumerable<string> shards;
        if (File.Exists(index))
        {
            shards = ReadIndex(index);
        }
        else if (File.Exists(single)) shards = ["model.safetensors"];
        else throw new FileNotFoundException($"{FilePath}: no model.safetensors or model.safetensors.index.json", single);
        foreach (string shard in shards)
        {
            if (shard.Contains('/') || shard.Contains('\\') || shard.Contains(".."))
                throw new NextTokenException($"{FilePath}: shard name '{shard}' must be a file in the checkpoint directory");
            var file = SafeTensorsFile.Open(Path.Combine(FilePath, shard));
            _files.Add(file);
            foreach (SafeTensorInfo tensor in file.Tensors) _fileOf.TryAdd(tensor.Name, file);
        }
    }

    /// <summary>The shard files a <c>model.safetensors.index.json</c> names in its <c>weight_map</c> (tensor → file).</summary>
    private static List<string> ReadIndex(string index)
    {
        JsonDocument document = JsonInput.ParseFile(index);
        using (document)
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object || !document.RootElement.TryGetProperty("weight_map", out JsonElement map))
                throw new NextTokenException($"{index}: missing 'weight_map'");
            if (map.ValueKind != JsonValueKind.Object)
                throw new NextTokenException($"{index}: 'weight_map' is {Quote(map)}; expected an object of tensor name → shard file");
            var shards = new List<string>();
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (JsonProperty entry in map.EnumerateObject())
            {
                if (entry.Value.ValueKind != JsonValueKind.String || entry.Value.GetString() is not { Length: > 0 } shard)
                    throw new NextTokenException($"{index}: 'weight_map.{entry.Name}' is {Quote(entry.Value)}; expected a shard file name");
                if (seen.Add(shard)) shards.Add(shard);
            }
            if (shards.Count == 0) throw new NextTokenException($"{index}: 'weight_map' names no tensors");
            return shards;
        }
    }

    public bool HasTensor(string name) => Locate(name) is not null;

    public TensorData GetTensor(string name, params long[] expectedDims)
    {
        var located = Locate(name) ?? throw new NextTokenException($"{FilePath}: missing tensor for '{name}' ({string.Join(" or ", Candidates(name) ?? [name])})");
        TensorData stored = located.File.GetTensor(located.Name);
        if (!located.Transposed)
        {
            if (expectedDims.Length > 0 && !stored.Dims.AsSpan().SequenceEqual(expectedDims))
                throw new NextTokenException($"{FilePath}: tensor '{located.Name}' has shape {Shape(stored.Dims)}; expected {Shape(expectedDims)}");
            return stored;
        }
        // Conv1D: stored [in][out], so its reversed shape is [out, in]; present it as the logical [in, out].
        long[] logical = [stored.Dims[1], stored.Dims[0]];
        if (stored.Dims.Length != 2 || (expectedDims.Length > 0 && !logical.AsSpan().SequenceEqual(expectedDims)))
            throw new NextTokenException($"{FilePath}: Conv1D tensor '{located.Name}' has shape {Shape(stored.Dims)}; expected {Shape(expectedDims.Reverse().ToArray())}");
        unsafe
        {
            return new TensorData(located.Name, stored.Type, logical, stored.Data, stored.ByteLength, transposed: true);
        }
    }

    /// <summary>
    /// Experts stored one tensor each (Mixtral's <c>block_sparse_moe.experts.{1}.w1</c>, {1} the
    /// expert) are gathered into one view per expert; a single 3-D tensor is split as GGUF's is.
    /// </summary>
    public TensorData[] GetExperts(string name, int rows, int columns, int count)
    {
        if (!PerExpert(name))
        {
            TensorData all = GetTensor(name, columns, rows, count);
            return Enumerable.Range(0, count).Select(all.Matrix).ToArray();
        }
        var experts = new TensorData[count];
        for (int e = 0; e < count; e++)
        {
            var located = Locate(name, e) ?? throw new NextTokenException($"{FilePath}: missing tensor for '{name}' expert {e} ({string.Join(" or ", Candidates(name, e) ?? [name])})");
            TensorData stored = located.File.GetTensor(located.Name);
            if (!stored.Dims.AsSpan().SequenceEqual([(long)columns, rows]))
                throw new NextTokenException($"{FilePath}: tensor '{located.Name}' has shape {Shape(stored.Dims)}; expected {Shape([columns, rows])}");
            experts[e] = stored;
        }
        return experts;
    }

    /// <summary>True when the name table stores this GGUF tensor as one Hugging Face tensor per expert.</summary>
    private bool PerExpert(string ggufName) =>
        _names.Any(n => n.Gguf.IsMatch(ggufName) && n.HuggingFace.Contains("{1}", StringComparison.Ordinal));

    private (SafeTensorsFile File, string Name, bool Transposed)? Locate(string ggufName, int expert = -1)
    {
        foreach (var (pattern, hfPattern, transposed) in _names)
        {
            Match match = pattern.Match(ggufName);
            if (!match.Success) continue;
            string hfName = Format(hfPattern, match, expert);
            foreach (string prefix in Prefixes)
                if (_fileOf.TryGetValue(prefix + hfName, out SafeTensorsFile? file)) return (file, prefix + hfName, transposed);
        }
        return null;
    }

    private string[]? Candidates(string ggufName, int expert = -1)
    {
        foreach (var (pattern, hfPattern, _) in _names)
        {
            Match match = pattern.Match(ggufName);
            if (match.Success) return [Format(hfPattern, match, expert)];
        }
        return null;
    }

    /// <summary>The Hugging Face name: {0} the layer the GGUF name matched, {1} the expert.</summary>
    private static string Format(string hfPattern, Match match, int expert) =>
        match.Groups.Count > 1 ? string.Format(CultureInfo.InvariantCulture, hfPattern, match.Groups[1].Value, expert) : hfPattern;

    private static string Quote(JsonElement value)
    {
        string raw = value.GetRawText().ReplaceLineEndings(" ");
        return raw.Length <= 40 ? raw : raw[..40] + "…";
    }

    private static string Shape(long[] dims) => "[" + string.Join(", ", dims) + "]";

    public void Dispose() => _files.ForEach(f => f.Dispose());
}
