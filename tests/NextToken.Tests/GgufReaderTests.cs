using System.Text;
using NextToken.Gguf;
using NextToken.Models;
using NextToken.Tensors;

namespace NextToken.Tests;

public sealed class TempDir : IDisposable
{
    public string Path { get; } = Directory.CreateTempSubdirectory("nexttoken-test-").FullName;

    public string File(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose() => Directory.Delete(Path, recursive: true);
}

/// <summary>Writes GGUF bytes field by field, so a test can put any wrong value anywhere.</summary>
internal sealed class RawGguf
{
    private readonly MemoryStream _stream = new();
    private readonly BinaryWriter _w;

    public RawGguf() => _w = new BinaryWriter(_stream, Encoding.UTF8);

    public RawGguf Header(uint magic = GgufFile.Magic, uint version = 3, ulong tensors = 0, ulong keys = 0)
    {
        _w.Write(magic); _w.Write(version); _w.Write(tensors); _w.Write(keys);
        return this;
    }

    public RawGguf String(string s) { byte[] b = Encoding.UTF8.GetBytes(s); _w.Write((ulong)b.Length); _w.Write(b); return this; }
    public RawGguf U32(uint v) { _w.Write(v); return this; }
    public RawGguf U64(ulong v) { _w.Write(v); return this; }
    public RawGguf KeyU32(string key, uint value) => String(key).U32((uint)GgufValueType.UInt32).U32(value);

    public RawGguf Tensor(string name, GgmlType type, ulong offset, params ulong[] dims)
    {
        String(name).U32((uint)dims.Length);
        foreach (ulong d in dims) U64(d);
        return U32((uint)type).U64(offset);
    }

    /// <summary>Pads to 32 bytes and appends <paramref name="dataBytes"/> zero bytes of tensor data.</summary>
    public RawGguf Data(int dataBytes)
    {
        while (_stream.Length % 32 != 0) _w.Write((byte)0);
        _w.Write(new byte[dataBytes]);
        return this;
    }

    public string WriteTo(string path)
    {
        _w.Flush();
        System.IO.File.WriteAllBytes(path, _stream.ToArray());
        return path;
    }
}

public class GgufReaderTests : IDisposable
{
    private readonly TempDir _temp = new();

    public void Dispose() => _temp.Dispose();

    private string Bad(RawGguf gguf) => gguf.WriteTo(_temp.File($"bad-{Guid.NewGuid():N}.gguf"));

    private static void AssertError(string path, params string[] fragments)
    {
        var error = Assert.Throws<GgufFormatException>(() => GgufFile.Open(path).Dispose());
        AssertMessage(error, [path, .. fragments]);
    }

    private static void AssertMessage(Exception error, params string[] fragments)
    {
        foreach (string fragment in fragments)
            Assert.True(error.Message.Contains(fragment, StringComparison.Ordinal), $"expected \"{fragment}\" in: {error.Message}");
    }

    [Fact]
    public void Open_WrongMagic_NamesMagic() =>
        AssertError(Bad(new RawGguf().Header(magic: 0x12345678)), "wrong magic 0x12345678", "offset 0");

    [Theory]
    [InlineData(1u)]
    [InlineData(4u)]
    public void Open_UnsupportedVersion_NamesVersion(uint version) =>
        AssertError(Bad(new RawGguf().Header(version: version)), $"unsupported GGUF version {version}", "expected 2 or 3");

    [Fact]
    public void Open_Version2_IsAccepted()
    {
        using var file = GgufFile.Open(Bad(new RawGguf().Header(version: 2, keys: 1).KeyU32("general.alignment", 32)));
        Assert.Equal(2u, file.Version);
    }

    [Fact]
    public void Open_EmptyFile_SaysTooShort()
    {
        string path = _temp.File("empty.gguf");
        File.WriteAllBytes(path, []);
        AssertError(path, "too short for a GGUF header");
    }

    [Fact]
    public void Open_StringLengthPastEnd_NamesLength() =>
        AssertError(Bad(new RawGguf().Header(keys: 1).U64(1_000_000).U64(0).U64(0)), "length 1000000 of metadata key runs past the end of the file", "offset 24");

    [Fact]
    public void Open_ArrayLengthPastEnd_NamesArray() =>
        AssertError(Bad(new RawGguf().Header(keys: 1).String("tokenizer.ggml.tokens").U32((uint)GgufValueType.Array)
            .U32((uint)GgufValueType.String).U64(ulong.MaxValue / 2)), "array 'tokenizer.ggml.tokens' length", "runs past the end of the file");

    [Fact]
    public void Open_UnknownValueType_NamesKey() =>
        AssertError(Bad(new RawGguf().Header(keys: 1).String("general.name").U32(99).U32(0)), "metadata 'general.name' has unknown value type 99");

    [Fact]
    public void Open_DuplicateKey_NamesKey() =>
        AssertError(Bad(new RawGguf().Header(keys: 2).KeyU32("a.b", 1).KeyU32("a.b", 2)), "duplicate metadata key 'a.b'");

    [Fact]
    public void Open_ImpossibleTensorCount_IsRejectedBeforeAllocating() =>
        AssertError(Bad(new RawGguf().Header(tensors: ulong.MaxValue)), "tensor count", "is impossible");

    [Fact]
    public void Open_DimsProductOverflows_NamesTensor() =>
        AssertError(Bad(new RawGguf().Header(tensors: 1).Tensor("w", GgmlType.F32, 0, 1UL << 40, 1UL << 40).Data(32)),
            "tensor 'w' dimensions", "overflow");

    [Fact]
    public void Open_TooManyDims_NamesTensor() =>
        AssertError(Bad(new RawGguf().Header(tensors: 1).Tensor("w", GgmlType.F32, 0, 1, 1, 1, 1, 1).Data(32)), "tensor 'w' has 5 dimensions");

    [Fact]
    public void Open_TensorDataOutsideFile_NamesTensorAndRange() =>
        AssertError(Bad(new RawGguf().Header(tensors: 1).Tensor("w", GgmlType.F32, 0, 64, 64).Data(64)),
            "tensor 'w' data", "lies outside the file");

    [Fact]
    public void Open_MisalignedTensorOffset_NamesTensor() =>
        AssertError(Bad(new RawGguf().Header(tensors: 1).Tensor("w", GgmlType.F32, 4, 4).Data(64)),
            "tensor 'w' data offset 4 is misaligned", "multiple of 32");

    [Fact]
    public void Open_DuplicateTensorName_NamesTensor() =>
        AssertError(Bad(new RawGguf().Header(tensors: 2).Tensor("w", GgmlType.F32, 0, 4).Tensor("w", GgmlType.F32, 32, 4).Data(64)),
            "duplicate tensor name 'w'");

    [Fact]
    public void Open_UnknownTensorType_NamesTensorAndType() =>
        AssertError(Bad(new RawGguf().Header(tensors: 1).Tensor("w", (GgmlType)77, 0, 4).Data(64)), "tensor 'w' has unknown tensor type id 77");

    [Fact]
    public void Open_RowNotWholeBlocks_NamesTensor() =>
        AssertError(Bad(new RawGguf().Header(tensors: 1).Tensor("w", GgmlType.Q8_0, 0, 20).Data(64)), "row length 20 is not a multiple of the Q8_0 block size 32");

    [Fact]
    public void Open_BadAlignment_NamesKey() =>
        AssertError(Bad(new RawGguf().Header(keys: 1).KeyU32("general.alignment", 24)), "'general.alignment'", "power of two");

    [Fact]
    public void Open_TruncatedRealModel_NamesWhatIsCut()
    {
        byte[] bytes = File.ReadAllBytes(Fixtures.Model("gpt2-tiny.f32.gguf"));
        foreach (int length in new[] { 30, 5000, 700_000, bytes.Length - 100 })
        {
            string path = _temp.File($"cut-{length}.gguf");
            File.WriteAllBytes(path, bytes[..length]);
            var error = Assert.Throws<GgufFormatException>(() => GgufFile.Open(path).Dispose());
            Assert.True(error.Message.Contains("past the end of the file") || error.Message.Contains("outside the file") || error.Message.Contains("is impossible"), error.Message);
        }
    }

    [Fact]
    public void GetRequired_MissingKey_NamesKey()
    {
        using var file = GgufFile.Open(Bad(new RawGguf().Header()));
        var error = Assert.Throws<GgufFormatException>(() => file.GetString("general.architecture"));
        AssertMessage(error, "missing required metadata key 'general.architecture'");
    }

    [Fact]
    public void GetTensor_Missing_NamesTensor()
    {
        using var file = GgufFile.Open(Bad(new RawGguf().Header()));
        var error = Assert.Throws<GgufFormatException>(() => file.GetTensor("output_norm.weight"));
        AssertMessage(error, "missing required tensor 'output_norm.weight'");
    }

    [Fact]
    public void Writer_EveryValueTypeAndNestedArrays_RoundTrip()
    {
        string path = _temp.File("all-types.gguf");
        var nested = new GgufValue(GgufValueType.Array, new[] { GgufValue.Of(new[] { 1, 2 }), GgufValue.Of(new[] { 3 }) }, GgufValueType.Array);
        new GgufWriter { Alignment = 64 }
            .Add("u8", new GgufValue(GgufValueType.UInt8, (byte)200))
            .Add("i8", new GgufValue(GgufValueType.Int8, (sbyte)-5))
            .Add("u16", new GgufValue(GgufValueType.UInt16, (ushort)60000))
            .Add("i16", new GgufValue(GgufValueType.Int16, (short)-30000))
            .Add("u32", GgufValue.Of(4_000_000_000u))
            .Add("i32", GgufValue.Of(-7))
            .Add("f32", GgufValue.Of(1.5f))
            .Add("bool", GgufValue.Of(true))
            .Add("str", GgufValue.Of("héllo 🦙"))
            .Add("u64", new GgufValue(GgufValueType.UInt64, ulong.MaxValue))
            .Add("i64", new GgufValue(GgufValueType.Int64, long.MinValue))
            .Add("f64", new GgufValue(GgufValueType.Float64, Math.PI))
            .Add("strings", GgufValue.Of(["a", "", "ü"]))
            .Add("nested", nested)
            .AddTensor("t", [3, 2], [1, 2, 3, 4, 5, 6])
            .Write(path);
        using var file = GgufFile.Open(path);
        Assert.Equal(64, file.Alignment);
        Assert.Equal((byte)200, file.Metadata["u8"].Value);
        Assert.Equal((sbyte)-5, file.Metadata["i8"].Value);
        Assert.Equal(60000L, file.GetInteger("u16"));
        Assert.Equal(-30000L, file.GetInteger("i16"));
        Assert.Equal(4_000_000_000L, file.GetInteger("u32"));
        Assert.Equal(-7L, file.GetInteger("i32"));
        Assert.Equal(1.5, file.GetFloat("f32"));
        Assert.Equal(true, file.GetBoolOrNull("bool"));
        Assert.Equal("héllo 🦙", file.GetString("str"));
        Assert.Equal(ulong.MaxValue, file.Metadata["u64"].Value);
        Assert.Equal(long.MinValue, file.GetInteger("i64"));
        Assert.Equal(Math.PI, file.GetFloat("f64"));
        Assert.Equal(["a", "", "ü"], file.GetArray<string>("strings"));
        var inner = (GgufValue[])file.Metadata["nested"].Value;
        Assert.Equal([1, 2], (int[])inner[0].Value);
        Assert.Equal([3], (int[])inner[1].Value);
        TensorData t = file.GetTensor("t", 3, 2);
        Assert.Equal(0, file.Tensors[0].AbsoluteOffset % 64);
        Assert.Equal([1f, 2, 3, 4, 5, 6], Kernels.RowConvert.ToArray(t));
    }

    [Fact]
    public void Load_UnknownArchitecture_NamesIt()
    {
        string path = _temp.File("arch.gguf");
        CopyVocabWith(path, ("general.architecture", GgufValue.Of("mamba9")));
        var error = Assert.Throws<GgufFormatException>(() => ModelLoader.Load(path).Dispose());
        AssertMessage(error, "unknown architecture 'mamba9'");
    }

    [Fact]
    public void Load_HugeDimension_IsRefusedBeforeAllocating()
    {
        string path = _temp.File("huge.gguf");
        CopyVocabWith(path, ("general.architecture", GgufValue.Of("gpt2")), ("gpt2.embedding_length", GgufValue.Of(1u << 31)),
            ("gpt2.block_count", GgufValue.Of(2u)), ("gpt2.attention.head_count", GgufValue.Of(4u)), ("gpt2.context_length", GgufValue.Of(128u)));
        var error = Assert.Throws<GgufFormatException>(() => ModelLoader.Load(path).Dispose());
        AssertMessage(error, "'gpt2.embedding_length' is 2147483648");
    }

    [Fact]
    public void Load_MissingTensor_NamesTensor()
    {
        string path = _temp.File("no-tensors.gguf");
        CopyVocabWith(path, ("general.architecture", GgufValue.Of("gpt2")), ("gpt2.embedding_length", GgufValue.Of(64u)),
            ("gpt2.block_count", GgufValue.Of(2u)), ("gpt2.attention.head_count", GgufValue.Of(4u)), ("gpt2.context_length", GgufValue.Of(128u)));
        var error = Assert.Throws<GgufFormatException>(() => ModelLoader.Load(path).Dispose());
        AssertMessage(error, "missing required tensor 'blk.0.attn_norm.weight'");
    }

    [Fact]
    public void Load_MissingHyperparameter_NamesKey()
    {
        string path = _temp.File("no-layers.gguf");
        CopyVocabWith(path, ("general.architecture", GgufValue.Of("gpt2")), ("gpt2.embedding_length", GgufValue.Of(64u)));
        var error = Assert.Throws<GgufFormatException>(() => ModelLoader.Load(path).Dispose());
        AssertMessage(error, "missing required metadata key 'gpt2.");
    }

    /// <summary>The GPT-2 vocabulary file's tokenizer metadata plus the given keys, and no tensors.</summary>
    private static void CopyVocabWith(string path, params (string Key, GgufValue Value)[] extra)
    {
        using var vocab = GgufFile.Open(Fixtures.Vocab("ggml-vocab-gpt-2.gguf"));
        var writer = new GgufWriter();
        foreach (string key in vocab.MetadataKeys)
            if (key.StartsWith("tokenizer.", StringComparison.Ordinal)) writer.Add(key, vocab.Metadata[key]);
        foreach (var (key, value) in extra) writer.Add(key, value);
        writer.Write(path);
    }
}
