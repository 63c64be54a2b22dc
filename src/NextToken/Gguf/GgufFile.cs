using System.Text;
using NextToken.Tensors;

namespace NextToken.Gguf;

/// <summary>Where one tensor lives in a GGUF file and what it holds.</summary>
public sealed record GgufTensorInfo(string Name, GgmlType Type, long[] Dims, long RelativeOffset, long AbsoluteOffset, long ByteLength)
{
    public long ElementCount => Dims.Aggregate(1L, (a, b) => a * b);
}

/// <summary>
/// A GGUF file (versions 2 and 3), memory-mapped. The header, metadata and tensor table are parsed
/// and validated when the file is opened; tensor data stays in the mapping and is exposed as
/// <see cref="TensorData"/> views, so opening a model never copies its weights.
/// </summary>
public sealed unsafe class GgufFile : IWeightSource
{
    public const uint Magic = 0x46554747; // "GGUF" little-endian
    public const int DefaultAlignment = 32;
    private const int MaxDims = 4;
    private const int MaxArrayNesting = 16;

    private readonly MappedFile _mapped;
    private byte* _base;
    private readonly Dictionary<string, GgufValue> _metadata;
    private readonly Dictionary<string, GgufTensorInfo> _tensorsByName;

    private GgufFile(MappedFile mapped)
    {
        string path = mapped.Path;
        byte* basePointer = mapped.Pointer;
        FilePath = path;
        FileLength = mapped.Length;
        long length = mapped.Length;
        _mapped = mapped;
        _base = basePointer;
        var cursor = new Cursor(path, basePointer, length);
        uint magic = cursor.ReadUInt32("magic");
        if (magic != Magic)
            throw new GgufFormatException(path, 0, $"wrong magic 0x{magic:X8}; expected 0x{Magic:X8} (\"GGUF\"): not a GGUF file");
        Version = cursor.ReadUInt32("version");
        if (Version == 0x03000000 || Version == 0x02000000)
            throw new GgufFormatException(path, 4, "big-endian GGUF files are not supported; expected little-endian version 2 or 3");
        if (Version is not (2 or 3))
            throw new GgufFormatException(path, 4, $"unsupported GGUF version {Version}; expected 2 or 3");
        long tensorCount = cursor.ReadCount("tensor count", minBytesEach: 8 + 4 + 8 + 4 + 8);
        long metadataCount = cursor.ReadCount("metadata key/value count", minBytesEach: 8 + 4 + 1);

        _metadata = new Dictionary<string, GgufValue>(StringComparer.Ordinal);
        var keys = new List<string>();
        for (long i = 0; i < metadataCount; i++)
        {
            long keyOffset = cursor.Position;
            string key = cursor.ReadString("metadata key");
            var type = (GgufValueType)cursor.ReadUInt32($"type of metadata '{key}'");
            GgufValue value = cursor.ReadValue(type, key, depth: 0);
            if (!_metadata.TryAdd(key, value))
                throw new GgufFormatException(path, keyOffset, $"duplicate metadata key '{key}'");
            keys.Add(key);
        }
        MetadataKeys = keys;

        Alignment = DefaultAlignment;
        if (_metadata.TryGetValue("general.alignment", out GgufValue? alignmentValue))
        {
            if (alignmentValue.Value is not uint alignment || alignment == 0 || (alignment & (alignment - 1)) != 0)
                throw new GgufFormatException(path, null, $"metadata 'general.alignment' is {alignmentValue.ToDisplayString()} ({alignmentValue.Type}); expected a power of two stored as uint32");
            Alignment = alignment;
        }

        var infos = new List<GgufTensorInfo>((int)tensorCount);
        var relative = new List<(string Name, long InfoOffset, GgmlType Type, long[] Dims, long Offset, long Bytes)>();
        _tensorsByName = new Dictionary<string, GgufTensorInfo>(StringComparer.Ordinal);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        for (long i = 0; i < tensorCount; i++)
        {
            long infoOffset = cursor.Position;
            string name = cursor.ReadString($"name of tensor #{i}");
            if (!seen.Add(name))
                throw new GgufFormatException(path, infoOffset, $"duplicate tensor name '{name}'");
            uint nDims = cursor.ReadUInt32($"dimension count of tensor '{name}'");
            if (nDims is 0 or > MaxDims)
                throw new GgufFormatException(path, cursor.Position - 4, $"tensor '{name}' has {nDims} dimensions; expected 1 to {MaxDims}");
            var dims = new long[nDims];
            long elements = 1;
            for (int d = 0; d < nDims; d++)
            {
                ulong dim = cursor.ReadUInt64($"dimension {d} of tensor '{name}'");
                if (dim == 0 || dim > long.MaxValue)
                    throw new GgufFormatException(path, cursor.Position - 8, $"tensor '{name}' dimension {d} is {dim}; expected a positive size");
                dims[d] = (long)dim;
                if (elements > long.MaxValue / (long)dim)
                    throw new GgufFormatException(path, cursor.Position - 8, $"tensor '{name}' dimensions [{string.Join(", ", dims.Take(d + 1))}] overflow a 64-bit element count");
                elements *= (long)dim;
            }
            long typeOffset = cursor.Position;
            var type = (GgmlType)cursor.ReadUInt32($"type of tensor '{name}'");
            if (!GgmlTypeInfo.TryGetLayout(type, out int blockSize, out int bytesPerBlock))
                throw new GgufFormatException(path, typeOffset, $"tensor '{name}' has unknown tensor type id {(uint)type}");
            if (dims[0] % blockSize != 0)
                throw new GgufFormatException(path, typeOffset, $"tensor '{name}' row length {dims[0]} is not a multiple of the {type} block size {blockSize}");
            long blocks = elements / blockSize;
            if (blocks > long.MaxValue / bytesPerBlock)
                throw new GgufFormatException(path, typeOffset, $"tensor '{name}' byte size overflows 64 bits");
            long offset = (long)Math.Min(cursor.ReadUInt64($"data offset of tensor '{name}'"), long.MaxValue);
            relative.Add((name, infoOffset, type, dims, offset, blocks * bytesPerBlock));
        }

        DataOffset = AlignUp(cursor.Position, Alignment);
        foreach (var t in relative)
        {
            if (t.Offset % Alignment != 0)
                throw new GgufFormatException(path, t.InfoOffset, $"tensor '{t.Name}' data offset {t.Offset} is misaligned; expected a multiple of {Alignment}");
            long start = DataOffset + t.Offset;
            if (t.Offset > FileLength || start > FileLength || t.Bytes > FileLength - start)
                throw new GgufFormatException(path, t.InfoOffset, $"tensor '{t.Name}' data [{start}, {start + t.Bytes}) lies outside the file of {FileLength} bytes");
            var info = new GgufTensorInfo(t.Name, t.Type, t.Dims, t.Offset, start, t.Bytes);
            infos.Add(info);
            _tensorsByName.Add(t.Name, info);
        }
        Tensors = infos;
    }

    public string FilePath { get; }
    public long FileLength { get; }
    public uint Version { get; }
    public long Alignment { get; }

    /// <summary>Absolute file offset where the tensor data section starts.</summary>
    public long DataOffset { get; }

    public IReadOnlyList<string> MetadataKeys { get; }
    public IReadOnlyDictionary<string, GgufValue> Metadata => _metadata;
    public IReadOnlyList<GgufTensorInfo> Tensors { get; }

    public static GgufFile Open(string path) =>
        Open(MappedFile.Open(path, 24, length => new GgufFormatException(path, length, $"file is {length} bytes, too short for a GGUF header (24 bytes)")));

    /// <summary>Parses a file already in memory; the new <see cref="GgufFile"/> owns <paramref name="mapped"/>.</summary>
    public static GgufFile Open(MappedFile mapped)
    {
        try
        {
            return new GgufFile(mapped);
        }
        catch
        {
            mapped.Dispose();
            throw;
        }
    }

    public bool ContainsKey(string key) => _metadata.ContainsKey(key);

    public GgufValue GetRequired(string key) =>
        _metadata.TryGetValue(key, out GgufValue? value) ? value : throw new GgufFormatException(FilePath, null, $"missing required metadata key '{key}'");

    public string GetString(string key) => GetRequired(key).Value as string ?? throw WrongType(key, "a string");

    public string? GetStringOrNull(string key) => _metadata.TryGetValue(key, out GgufValue? v) ? v.Value as string ?? throw WrongType(key, "a string") : null;

    /// <summary>An integer of any GGUF integer type, range-checked into <see cref="long"/>.</summary>
    public long GetInteger(string key) => ToInteger(key, GetRequired(key));

    public long? GetIntegerOrNull(string key) => _metadata.TryGetValue(key, out GgufValue? v) ? ToInteger(key, v) : null;

    public double GetFloat(string key) => ToFloat(key, GetRequired(key));

    public double? GetFloatOrNull(string key) => _metadata.TryGetValue(key, out GgufValue? v) ? ToFloat(key, v) : null;

    public bool? GetBoolOrNull(string key) => _metadata.TryGetValue(key, out GgufValue? v) ? v.Value as bool? ?? throw WrongType(key, "a bool") : null;

    /// <summary>An array value with elements of CLR type <typeparamref name="T"/>, e.g. string[] or int[].</summary>
    public T[] GetArray<T>(string key) => GetRequired(key).Value as T[] ?? throw WrongType(key, $"an array of {typeof(T).Name}");

    public T[]? GetArrayOrNull<T>(string key) => _metadata.TryGetValue(key, out GgufValue? v) ? v.Value as T[] ?? throw WrongType(key, $"an array of {typeof(T).Name}") : null;

    public bool TryGetTensorInfo(string name, out GgufTensorInfo info) => _tensorsByName.TryGetValue(name, out info!);

    public bool HasTensor(string name) => _tensorsByName.ContainsKey(name);

    public TensorData GetTensor(string name)
    {
        if (!_tensorsByName.TryGetValue(name, out GgufTensorInfo? info))
            throw new GgufFormatException(FilePath, null, $"missing required tensor '{name}'");
        ObjectDisposedException.ThrowIf(_base == null, this);
        return new TensorData(info.Name, info.Type, info.Dims, _base + info.AbsoluteOffset, info.ByteLength);
    }

    /// <summary>Fetches a tensor and checks its shape (ggml order, innermost first).</summary>
    public TensorData GetTensor(string name, params long[] expectedDims)
    {
        TensorData tensor = GetTensor(name);
        if (expectedDims.Length == 0) return tensor;
        if (!tensor.Dims.AsSpan().SequenceEqual(expectedDims))
            throw new GgufFormatException(FilePath, _tensorsByName[name].AbsoluteOffset,
                $"tensor '{name}' has shape {tensor.ShapeText}; expected [{string.Join(", ", expectedDims)}]");
        return tensor;
    }

    public void Dispose()
    {
        _base = null;
        _mapped.Dispose();
    }

    internal static long AlignUp(long value, long alignment) => (value + alignment - 1) / alignment * alignment;

    private GgufFormatException WrongType(string key, string expected) =>
        new(FilePath, null, $"metadata '{key}' is {_metadata[key].Type}; expected {expected}");

    private long ToInteger(string key, GgufValue value) => value.Value switch
    {
        byte v => v, sbyte v => v, ushort v => v, short v => v, uint v => v, int v => v, long v => v,
        ulong v when v <= long.MaxValue => (long)v,
        _ => throw WrongType(key, "an integer"),
    };

    private double ToFloat(string key, GgufValue value) => value.Value switch
    {
        float v => v, double v => v,
        _ => throw WrongType(key, "a floating-point number"),
    };

    /// <summary>Bounds-checked little-endian reader over the mapped header.</summary>
    private struct Cursor(string path, byte* data, long length)
    {
        public long Position;

        private void Need(long bytes, string what)
        {
            if (bytes < 0 || bytes > length - Position)
                throw new GgufFormatException(path, Position, $"{what} runs past the end of the file: needs {bytes} bytes, {length - Position} remain");
        }

        public uint ReadUInt32(string what)
        {
            Need(4, what);
            uint v = *(uint*)(data + Position);
            Position += 4;
            return v;
        }

        public ulong ReadUInt64(string what)
        {
            Need(8, what);
            ulong v = *(ulong*)(data + Position);
            Position += 8;
            return v;
        }

        /// <summary>A 64-bit count, rejected when even the smallest items could not fit in the rest of the file.</summary>
        public long ReadCount(string what, int minBytesEach)
        {
            long at = Position;
            ulong count = ReadUInt64(what);
            if (count > (ulong)((length - Position) / minBytesEach))
                throw new GgufFormatException(path, at, $"{what} {count} is impossible: {length - Position} bytes remain and each item takes at least {minBytesEach}");
            return (long)count;
        }

        public string ReadString(string what)
        {
            long at = Position;
            ulong len = ReadUInt64($"length of {what}");
            if (len > (ulong)(length - Position))
                throw new GgufFormatException(path, at, $"length {len} of {what} runs past the end of the file ({length - Position} bytes remain)");
            if (len > int.MaxValue)
                throw new GgufFormatException(path, at, $"length {len} of {what} exceeds the 2 GiB string limit");
            string s = Encoding.UTF8.GetString(data + Position, (int)len);
            Position += (long)len;
            return s;
        }

        public GgufValue ReadValue(GgufValueType type, string key, int depth)
        {
            string what = $"value of '{key}'";
            switch (type)
            {
                case GgufValueType.UInt8: Need(1, what); return new(type, data[Position++]);
                case GgufValueType.Int8: Need(1, what); return new(type, (sbyte)data[Position++]);
                case GgufValueType.Bool:
                    Need(1, what);
                    byte b = data[Position];
                    if (b > 1) throw new GgufFormatException(path, Position, $"bool '{key}' has byte {b}; expected 0 or 1");
                    Position++;
                    return new(type, b == 1);
                case GgufValueType.UInt16: return new(type, Read<ushort>(what));
                case GgufValueType.Int16: return new(type, Read<short>(what));
                case GgufValueType.UInt32: return new(type, Read<uint>(what));
                case GgufValueType.Int32: return new(type, Read<int>(what));
                case GgufValueType.Float32: return new(type, Read<float>(what));
                case GgufValueType.UInt64: return new(type, Read<ulong>(what));
                case GgufValueType.Int64: return new(type, Read<long>(what));
                case GgufValueType.Float64: return new(type, Read<double>(what));
                case GgufValueType.String: return new(type, ReadString(what));
                case GgufValueType.Array: return ReadArray(key, depth);
                default:
                    throw new GgufFormatException(path, Position - 4, $"metadata '{key}' has unknown value type {(uint)type}; expected 0 to 12");
            }
        }

        private T Read<T>(string what) where T : unmanaged
        {
            Need(sizeof(T), what);
            T v = *(T*)(data + Position);
            Position += sizeof(T);
            return v;
        }

        private GgufValue ReadArray(string key, int depth)
        {
            if (depth >= MaxArrayNesting)
                throw new GgufFormatException(path, Position, $"metadata '{key}' nests arrays deeper than {MaxArrayNesting} levels");
            long at = Position;
            var elementType = (GgufValueType)ReadUInt32($"element type of array '{key}'");
            int minSize = elementType switch
            {
                GgufValueType.UInt8 or GgufValueType.Int8 or GgufValueType.Bool => 1,
                GgufValueType.UInt16 or GgufValueType.Int16 => 2,
                GgufValueType.UInt32 or GgufValueType.Int32 or GgufValueType.Float32 => 4,
                GgufValueType.UInt64 or GgufValueType.Int64 or GgufValueType.Float64 or GgufValueType.String => 8,
                GgufValueType.Array => 12,
                _ => throw new GgufFormatException(path, at, $"array '{key}' has unknown element type {(uint)elementType}; expected 0 to 12"),
            };
            long countAt = Position;
            ulong count = ReadUInt64($"length of array '{key}'");
            if (count > (ulong)((length - Position) / minSize))
                throw new GgufFormatException(path, countAt, $"array '{key}' length {count} runs past the end of the file ({length - Position} bytes remain, {minSize} needed per element)");
            if (count > (ulong)Array.MaxLength)
                throw new GgufFormatException(path, countAt, $"array '{key}' length {count} exceeds the largest supported array ({Array.MaxLength})");
            int n = (int)count;
            object array = elementType switch
            {
                GgufValueType.UInt8 => ReadBlock<byte>(n),
                GgufValueType.Int8 => ReadBlock<sbyte>(n),
                GgufValueType.UInt16 => ReadBlock<ushort>(n),
                GgufValueType.Int16 => ReadBlock<short>(n),
                GgufValueType.UInt32 => ReadBlock<uint>(n),
                GgufValueType.Int32 => ReadBlock<int>(n),
                GgufValueType.Float32 => ReadBlock<float>(n),
                GgufValueType.UInt64 => ReadBlock<ulong>(n),
                GgufValueType.Int64 => ReadBlock<long>(n),
                GgufValueType.Float64 => ReadBlock<double>(n),
                GgufValueType.Bool => ReadBools(n, key),
                GgufValueType.String => ReadStrings(n, key),
                _ => ReadNested(n, key, depth),
            };
            return new GgufValue(GgufValueType.Array, array, elementType);
        }

        private T[] ReadBlock<T>(int n) where T : unmanaged
        {
            var result = new T[n];
            new ReadOnlySpan<T>(data + Position, n).CopyTo(result);
            Position += (long)n * sizeof(T);
            return result;
        }

        private bool[] ReadBools(int n, string key)
        {
            var result = new bool[n];
            for (int i = 0; i < n; i++)
                result[i] = ReadValue(GgufValueType.Bool, key, 0).Value is true;
            return result;
        }

        private string[] ReadStrings(int n, string key)
        {
            var result = new string[n];
            for (int i = 0; i < n; i++)
                result[i] = ReadString($"element {i} of array '{key}'");
            return result;
        }

        private GgufValue[] ReadNested(int n, string key, int depth)
        {
            var result = new GgufValue[n];
            for (int i = 0; i < n; i++)
                result[i] = ReadArray(key, depth + 1);
            return result;
        }
    }
}
