using System.Text.Json;
using NextToken.Tensors;

namespace NextToken.SafeTensors;

/// <summary>A safetensors file that is malformed, truncated, or lacks what the caller needs.</summary>
public sealed class SafeTensorsFormatException(string path, string message) : NextTokenException($"{path}: {message}")
{
    public string FilePath { get; } = path;
}

/// <summary>One tensor's entry in a safetensors header.</summary>
public sealed record SafeTensorInfo(string Name, string DType, long[] Shape, long Begin, long End);

/// <summary>
/// A Hugging Face safetensors file, memory-mapped: an 8-byte little-endian header length, a JSON
/// header (name → dtype, shape, [begin, end) in the data section), then the data. The header is
/// validated strictly when the file is opened; tensors are views over the mapping.
/// </summary>
public sealed unsafe class SafeTensorsFile : IDisposable
{
    /// <summary>Headers beyond this are refused before being read (the format's own limit is 100 MB).</summary>
    public const long MaxHeaderBytes = 100_000_000;

    private static readonly Dictionary<string, (int Bytes, GgmlType Type)> DTypes = new()
    {
        ["F32"] = (4, GgmlType.F32), ["F16"] = (2, GgmlType.F16), ["BF16"] = (2, GgmlType.BF16), ["F64"] = (8, GgmlType.F64),
        ["I64"] = (8, GgmlType.I64), ["I32"] = (4, GgmlType.I32), ["I16"] = (2, GgmlType.I16), ["I8"] = (1, GgmlType.I8),
        ["U8"] = (1, GgmlType.I8), ["BOOL"] = (1, GgmlType.I8),
    };

    private readonly MappedFile _mapped;
    private byte* _base;
    private readonly Dictionary<string, SafeTensorInfo> _tensors;

    private SafeTensorsFile(MappedFile mapped)
    {
        string path = mapped.Path;
        long length = mapped.Length;
        byte* basePointer = mapped.Pointer;
        FilePath = path;
        FileLength = length;
        _mapped = mapped;
        _base = basePointer;
        ulong headerLength = *(ulong*)basePointer;
        if (headerLength > (ulong)(length - 8))
            throw new SafeTensorsFormatException(path, $"header length {headerLength} runs past the end of the file ({length - 8} bytes follow the length field)");
        if (headerLength > MaxHeaderBytes)
            throw new SafeTensorsFormatException(path, $"header length {headerLength} exceeds the {MaxHeaderBytes}-byte limit");
        DataOffset = 8 + (long)headerLength;
        var header = new ReadOnlySpan<byte>(basePointer + 8, (int)headerLength);
        (_tensors, Metadata) = ParseHeader(path, header, length - DataOffset);
    }

    public string FilePath { get; }
    public long FileLength { get; }

    /// <summary>Where the data section starts; tensor offsets count from here.</summary>
    public long DataOffset { get; }

    public IReadOnlyDictionary<string, string> Metadata { get; }
    public IReadOnlyCollection<SafeTensorInfo> Tensors => _tensors.Values;

    public static SafeTensorsFile Open(string path)
    {
        MappedFile mapped = MappedFile.Open(path, 8, length => new SafeTensorsFormatException(path, $"file is {length} bytes, too short for the 8-byte header length"));
        try
        {
            return new SafeTensorsFile(mapped);
        }
        catch
        {
            mapped.Dispose();
            throw;
        }
    }

    public bool Contains(string name) => _tensors.ContainsKey(name);

    public SafeTensorInfo Info(string name) =>
        _tensors.TryGetValue(name, out SafeTensorInfo? info) ? info : throw new SafeTensorsFormatException(FilePath, $"missing required tensor '{name}'");

    /// <summary>The tensor as a view; dims in ggml order (the safetensors shape reversed).</summary>
    public TensorData GetTensor(string name)
    {
        SafeTensorInfo info = Info(name);
        ObjectDisposedException.ThrowIf(_base == null, this);
        long[] dims = info.Shape.Length == 0 ? [1] : info.Shape.Reverse().ToArray();
        return new TensorData(name, DTypes[info.DType].Type, dims, _base + DataOffset + info.Begin, info.End - info.Begin);
    }

    public void Dispose()
    {
        _base = null;
        _mapped.Dispose();
    }

    private static (Dictionary<string, SafeTensorInfo>, Dictionary<string, string>) ParseHeader(string path, ReadOnlySpan<byte> header, long dataLength)
    {
        JsonDocument document;
        try
        {
            document = JsonInput.Parse(header.ToArray(), "header");
        }
        catch (NextTokenException error)
        {
            throw new SafeTensorsFormatException(path, error.Message);
        }
        using (document)
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object)
                throw new SafeTensorsFormatException(path, "header is not a JSON object");
            var tensors = new Dictionary<string, SafeTensorInfo>(StringComparer.Ordinal);
            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (JsonProperty property in document.RootElement.EnumerateObject())
            {
                if (property.Name == "__metadata__")
                {
                    if (property.Value.ValueKind != JsonValueKind.Object)
                        throw new SafeTensorsFormatException(path, "'__metadata__' is not an object of strings");
                    foreach (JsonProperty m in property.Value.EnumerateObject())
                        metadata[m.Name] = m.Value.ValueKind == JsonValueKind.String ? m.Value.GetString()! : throw new SafeTensorsFormatException(path, $"'__metadata__.{m.Name}' is not a string");
                    continue;
                }
                if (tensors.ContainsKey(property.Name))
                    throw new SafeTensorsFormatException(path, $"duplicate tensor name '{property.Name}'");
                tensors[property.Name] = ParseTensor(path, property.Name, property.Value, dataLength);
            }
            CheckOverlaps(path, tensors.Values);
            return (tensors, metadata);
        }
    }

    private static SafeTensorInfo ParseTensor(string path, string name, JsonElement entry, long dataLength)
    {
        if (entry.ValueKind != JsonValueKind.Object)
            throw new SafeTensorsFormatException(path, $"tensor '{name}': entry is not an object with dtype, shape and data_offsets");
        string dtype = entry.TryGetProperty("dtype", out JsonElement d) && d.ValueKind == JsonValueKind.String ? d.GetString()!
            : throw new SafeTensorsFormatException(path, $"tensor '{name}': missing 'dtype'");
        if (!DTypes.TryGetValue(dtype, out var type))
            throw new SafeTensorsFormatException(path, $"tensor '{name}' has unknown dtype '{dtype}'; expected one of {string.Join(", ", DTypes.Keys)}");
        if (!entry.TryGetProperty("shape", out JsonElement shapeElement) || shapeElement.ValueKind != JsonValueKind.Array)
            throw new SafeTensorsFormatException(path, $"tensor '{name}': missing 'shape'");
        var shape = new List<long>();
        long elements = 1;
        foreach (JsonElement dim in shapeElement.EnumerateArray())
        {
            if (!dim.TryGetInt64(out long size) || size < 0)
                throw new SafeTensorsFormatException(path, $"tensor '{name}': shape entry {dim} is not a non-negative integer");
            if (size != 0 && elements > long.MaxValue / size / type.Bytes)
                throw new SafeTensorsFormatException(path, $"tensor '{name}': shape [{string.Join(", ", shape.Append(size))}] overflows a 64-bit byte count");
            elements *= size;
            shape.Add(size);
        }
        if (!entry.TryGetProperty("data_offsets", out JsonElement offsets) || offsets.ValueKind != JsonValueKind.Array || offsets.GetArrayLength() != 2
            || !offsets[0].TryGetInt64(out long begin) || !offsets[1].TryGetInt64(out long end))
            throw new SafeTensorsFormatException(path, $"tensor '{name}': 'data_offsets' must be [begin, end]");
        if (begin < 0 || end < begin)
            throw new SafeTensorsFormatException(path, $"tensor '{name}': data_offsets [{begin}, {end}] are not an ordered range");
        if (end > dataLength)
            throw new SafeTensorsFormatException(path, $"tensor '{name}': data [{begin}, {end}) lies outside the {dataLength}-byte data section");
        if (end - begin != elements * type.Bytes)
            throw new SafeTensorsFormatException(path, $"tensor '{name}': shape [{string.Join(", ", shape)}] of {dtype} needs {elements * type.Bytes} bytes but data_offsets span {end - begin}");
        return new SafeTensorInfo(name, dtype, shape.ToArray(), begin, end);
    }

    private static void CheckOverlaps(string path, IEnumerable<SafeTensorInfo> tensors)
    {
        SafeTensorInfo? previous = null;
        foreach (SafeTensorInfo t in tensors.Where(t => t.End > t.Begin).OrderBy(t => t.Begin))
        {
            if (previous is not null && t.Begin < previous.End)
                throw new SafeTensorsFormatException(path, $"tensors '{previous.Name}' [{previous.Begin}, {previous.End}) and '{t.Name}' [{t.Begin}, {t.End}) overlap");
            previous = t;
        }
    }
}
