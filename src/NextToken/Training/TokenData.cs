using System.Buffers.Binary;

namespace NextToken.Training;

/// <summary>
/// llm.c's token files: a 256 × int32 little-endian header (magic 20240520, version 1, token
/// count), then the tokens as uint16.
/// </summary>
public static class TokenFile
{
    public const int Magic = 20240520;
    public const int HeaderInts = 256;

    public static int[] Read(string path)
    {
        byte[] bytes = File.ReadAllBytes(path);
        if (bytes.Length < HeaderInts * 4)
            throw new NextTokenException($"{path}: {bytes.Length} bytes, shorter than the {HeaderInts * 4}-byte header of an llm.c token file");
        int magic = BinaryPrimitives.ReadInt32LittleEndian(bytes);
        if (magic != Magic)
            throw new NextTokenException($"{path}: magic {magic} at offset 0, expected {Magic} (llm.c token file)");
        int version = BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(4));
        if (version != 1)
            throw new NextTokenException($"{path}: version {version} at offset 4, expected 1 (uint16 tokens)");
        int count = BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(8));
        long expected = HeaderInts * 4L + 2L * count;
        if (count < 0 || expected != bytes.Length)
            throw new NextTokenException($"{path}: token count {count} at offset 8 needs {expected} bytes, the file has {bytes.Length}");
        var tokens = new int[count];
        for (int i = 0; i < count; i++) tokens[i] = BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(HeaderInts * 4 + 2 * i));
        return tokens;
    }

    public static void Write(string path, ReadOnlySpan<int> tokens)
    {
        var bytes = new byte[HeaderInts * 4 + 2 * tokens.Length];
        BinaryPrimitives.WriteInt32LittleEndian(bytes, Magic);
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(4), 1);
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(8), tokens.Length);
        for (int i = 0; i < tokens.Length; i++)
        {
            if ((uint)tokens[i] > ushort.MaxValue) throw new NextTokenException($"token {tokens[i]} at index {i} does not fit the uint16 token file");
            BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(HeaderInts * 4 + 2 * i), (ushort)tokens[i]);
        }
        File.WriteAllBytes(path, bytes);
    }
}

/// <summary>
/// Batches of B rows × T tokens with next-token targets. Sequential mode reads as llm.c's loader:
/// consecutive windows of B·T+1 tokens advancing by B·T, starting over when the next window would
/// run past the end. Random mode draws B offsets per batch from a seeded generator (nanoGPT's way).
/// </summary>
public sealed class BatchLoader
{
    private readonly int[] _tokens;
    private readonly int _b, _t;
    private readonly bool _sequential;
    private readonly Random _random;
    private long _position;

    public BatchLoader(int[] tokens, int batch, int block, bool sequential, int seed, string what)
    {
        _tokens = tokens;
        _b = batch; _t = block;
        _sequential = sequential;
        _random = new Random(seed);
        long needed = sequential ? (long)batch * block + 1 : block + 1;
        if (tokens.Length < needed)
            throw new NextTokenException($"{what}: {tokens.Length} tokens, fewer than the {needed} one batch needs (batch {batch}, block {block})");
    }

    /// <summary>Position of the next sequential window (saved in checkpoints).</summary>
    public long Position { get => _position; set => _position = value; }

    public void Next(Span<int> inputs, Span<int> targets)
    {
        int bt = _b * _t;
        if (_sequential)
        {
            if (_position + bt + 1 > _tokens.Length) _position = 0;
            for (int i = 0; i < bt; i++)
            {
                inputs[i] = _tokens[_position + i];
                targets[i] = _tokens[_position + i + 1];
            }
            _position += bt;
            return;
        }
        for (int b = 0; b < _b; b++)
        {
            int start = _random.Next(_tokens.Length - _t);
            for (int i = 0; i < _t; i++)
            {
                inputs[b * _t + i] = _tokens[start + i];
                targets[b * _t + i] = _tokens[start + i + 1];
            }
        }
    }
}
