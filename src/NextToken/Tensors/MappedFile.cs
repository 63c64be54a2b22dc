using System.IO.MemoryMappedFiles;
using System.Runtime.InteropServices;

namespace NextToken.Tensors;

/// <summary>
/// A whole file mapped read-only into memory; weights are read through <see cref="Pointer"/>, never
/// copied. A small file carried inside an assembly (the built-in model) is held in aligned native
/// memory instead, so the same readers serve both.
/// </summary>
public sealed unsafe class MappedFile : IDisposable
{
    private readonly MemoryMappedFile? _mapping;
    private readonly MemoryMappedViewAccessor? _view;

    private MappedFile(string path, long length, MemoryMappedFile? mapping, MemoryMappedViewAccessor? view, byte* pointer)
    {
        Path = path;
        Length = length;
        _mapping = mapping;
        _view = view;
        Pointer = pointer;
    }

    public string Path { get; }
    public long Length { get; }
    public byte* Pointer { get; private set; }

    /// <summary>Maps <paramref name="path"/>; <paramref name="tooShort"/> makes the error for files under <paramref name="minimumLength"/> bytes.</summary>
    public static MappedFile Open(string path, long minimumLength, Func<long, Exception> tooShort)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: file not found", path);
        var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        long length = stream.Length;
        if (length < minimumLength)
        {
            stream.Dispose();
            throw tooShort(length);
        }
        MemoryMappedFile? mapping = null;
        MemoryMappedViewAccessor? view = null;
        byte* pointer = null;
        try
        {
            mapping = MemoryMappedFile.CreateFromFile(stream, null, 0, MemoryMappedFileAccess.Read, HandleInheritability.None, leaveOpen: false);
            view = mapping.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
            view.SafeMemoryMappedViewHandle.AcquirePointer(ref pointer);
            return new MappedFile(path, length, mapping, view, pointer + view.PointerOffset);
        }
        catch
        {
            if (pointer != null) view!.SafeMemoryMappedViewHandle.ReleasePointer();
            view?.Dispose();
            mapping?.Dispose();
            stream.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Copies <paramref name="stream"/> (at most <paramref name="maximumLength"/> bytes) into native
    /// memory aligned to 64 bytes, as a mapping would be to a page; <paramref name="name"/> stands for
    /// the path in error messages.
    /// </summary>
    public static MappedFile FromStream(string name, Stream stream, long maximumLength)
    {
        long length = stream.Length;
        if (length < 0 || length > maximumLength)
            throw new NextTokenException($"{name}: {length} bytes; expected at most {maximumLength}");
        byte* pointer = (byte*)NativeMemory.AlignedAlloc((nuint)Math.Max(length, 1), 64);
        try
        {
            stream.ReadExactly(new Span<byte>(pointer, checked((int)length)));
            return new MappedFile(name, length, null, null, pointer);
        }
        catch
        {
            NativeMemory.AlignedFree(pointer);
            throw;
        }
    }

    public void Dispose()
    {
        if (Pointer == null) return;
        byte* pointer = Pointer;
        Pointer = null;
        if (_view is null)
        {
            NativeMemory.AlignedFree(pointer);
            return;
        }
        _view.SafeMemoryMappedViewHandle.ReleasePointer();
        _view.Dispose();
        _mapping!.Dispose();
    }
}
