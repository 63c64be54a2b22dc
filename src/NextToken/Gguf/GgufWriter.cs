using System.Text;
using NextToken.Tensors;

namespace NextToken.Gguf;

/// <summary>
/// Writes GGUF version 3 files the way llama.cpp's gguf writer does: header, metadata, tensor
/// infos, padding to <c>general.alignment</c>, then each tensor's data padded to the alignment.
/// Tensor data is produced by callbacks so multi-gigabyte files are streamed, not held in memory.
/// </summary>
public sealed class GgufWriter
{
    private readonly List<(string Key, GgufValue Value)> _metadata = [];
    private readonly List<(string Name, GgmlType Type, long[] Dims, long Bytes, Action<Stream> Write)> _tensors = [];

    public int Alignment { get; init; } = GgufFile.DefaultAlignment;

    public GgufWriter Add(string key, GgufValue value)
    {
        _metadata.Add((key, value));
        return this;
    }

    /// <summary>Adds a tensor; <paramref name="dims"/> in ggml order (innermost first).</summary>
    public GgufWriter AddTensor(string name, GgmlType type, long[] dims, Action<Stream> writeData)
    {
        long elements = dims.Aggregate(1L, (a, b) => checked(a * b));
        long rowBytes = GgmlTypeInfo.RowBytes(type, dims[0]);
        if (rowBytes < 0) throw new ArgumentException($"tensor '{name}': row length {dims[0]} is not whole {type} blocks");
        _tensors.Add((name, type, dims, rowBytes * (elements / dims[0]), writeData));
        return this;
    }

    public GgufWriter AddTensor(string name, long[] dims, float[] data) =>
        AddTensor(name, GgmlType.F32, dims, s => s.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(data.AsSpan())));

    public void Write(string path)
    {
        using var stream = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20);
        Write(stream);
    }

    public void Write(Stream stream)
    {
        var w = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true);
        w.Write(GgufFile.Magic);
        w.Write(3u);
        w.Write((ulong)_tensors.Count);
        bool hasAlignment = _metadata.Any(m => m.Key == "general.alignment");
        w.Write((ulong)(_metadata.Count + (Alignment != GgufFile.DefaultAlignment && !hasAlignment ? 1 : 0)));
        foreach (var (key, value) in _metadata)
        {
            WriteString(w, key);
            w.Write((uint)value.Type);
            WriteValue(w, value);
        }
        if (Alignment != GgufFile.DefaultAlignment && !hasAlignment)
        {
            WriteString(w, "general.alignment");
            w.Write((uint)GgufValueType.UInt32);
            w.Write((uint)Alignment);
        }
        long offset = 0;
        foreach (var t in _tensors)
        {
            WriteString(w, t.Name);
            w.Write((uint)t.Dims.Length);
            foreach (long d in t.Dims) w.Write((ulong)d);
            w.Write((uint)t.Type);
            w.Write((ulong)offset);
            offset = GgufFile.AlignUp(offset + t.Bytes, Alignment);
        }
        w.Flush();
        Pad(stream, Alignment);
        foreach (var t in _tensors)
        {
            long start = stream.Position;
            t.Write(stream);
            long written = stream.Position - start;
            if (written != t.Bytes)
                throw new InvalidOperationException($"tensor '{t.Name}': wrote {written} bytes; expected {t.Bytes}");
            Pad(stream, Alignment);
        }
        stream.Flush();
    }

    private static void Pad(Stream stream, int alignment)
    {
        long padding = GgufFile.AlignUp(stream.Position, alignment) - stream.Position;
        for (long i = 0; i < padding; i++) stream.WriteByte(0);
    }

    private static void WriteString(BinaryWriter w, string s)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(s);
        w.Write((ulong)bytes.Length);
        w.Write(bytes);
    }

    private static void WriteValue(BinaryWriter w, GgufValue value)
    {
        switch (value.Value)
        {
            case byte v: w.Write(v); break;
            case sbyte v: w.Write(v); break;
            case ushort v: w.Write(v); break;
            case short v: w.Write(v); break;
            case uint v: w.Write(v); break;
            case int v: w.Write(v); break;
            case float v: w.Write(v); break;
            case bool v: w.Write(v); break;
            case string v: WriteString(w, v); break;
            case ulong v: w.Write(v); break;
            case long v: w.Write(v); break;
            case double v: w.Write(v); break;
            case Array array:
                w.Write((uint)value.ElementType);
                w.Write((ulong)array.Length);
                foreach (object? item in array)
                {
                    if (item is GgufValue nested) WriteValue(w, nested);
                    else WriteValue(w, new GgufValue(value.ElementType, item!));
                }
                break;
            default:
                throw new ArgumentException($"unsupported metadata value {value.Value?.GetType().Name}");
        }
    }
}
