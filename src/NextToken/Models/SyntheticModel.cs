using System.Runtime.InteropServices;
using NextToken.Gguf;
using NextToken.Tensors;

namespace NextToken.Models;

/// <summary>Llama-family shapes of published small models.</summary>
public sealed record LlamaShape(string Name, int NLayer, int NEmbd, int NHead, int NKvHead, int NFf, int NCtx)
{
    public static readonly LlamaShape[] Known =
    [
        new("135M", 30, 576, 9, 3, 1536, 2048),   // SmolLM2-135M
        new("1.1B", 22, 2048, 32, 4, 5632, 2048), // TinyLlama-1.1B
        new("3B", 28, 3072, 24, 8, 8192, 2048),   // Llama-3.2-3B's layers (synth's vocabulary, not its 128K one)
    ];

    public static LlamaShape Parse(string name) =>
        Known.FirstOrDefault(s => string.Equals(s.Name, name, StringComparison.OrdinalIgnoreCase))
        ?? throw new NextTokenException($"unknown Llama size '{name}'; expected one of {string.Join(", ", Known.Select(s => s.Name))}");
}

/// <summary>GPT-2 shapes by the names OpenAI published them under.</summary>
public sealed record Gpt2Shape(string Name, int NLayer, int NEmbd, int NHead, int NCtx)
{
    public static readonly Gpt2Shape[] Known =
    [
        new("124M", 12, 768, 12, 1024),
        new("355M", 24, 1024, 16, 1024),
        new("774M", 36, 1280, 20, 1024),
        new("1558M", 48, 1600, 25, 1024),
    ];

    public static Gpt2Shape Parse(string name) =>
        Known.FirstOrDefault(s => string.Equals(s.Name, name, StringComparison.OrdinalIgnoreCase))
        ?? throw new NextTokenException($"unknown GPT-2 size '{name}'; expected one of {string.Join(", ", Known.Select(s => s.Name))}");
}

/// <summary>
/// Writes random-weight GGUF files with real model shapes, laid out as llama.cpp's converter
/// lays them out, so speed can be measured (here and in llama.cpp) without downloading weights.
/// </summary>
public static class SyntheticModel
{
    public static readonly GgmlType[] SupportedTypes =
    [
        GgmlType.F32, GgmlType.F16, GgmlType.BF16, GgmlType.Q8_0, GgmlType.Q4_0,
        GgmlType.Q4_1, GgmlType.Q5_0, GgmlType.Q5_1, GgmlType.IQ4_NL, GgmlType.Q2_K, GgmlType.Q3_K, GgmlType.Q4_K, GgmlType.Q5_K, GgmlType.Q6_K, GgmlType.IQ4_XS,
    ];

    /// <summary>
    /// Where each f16 field of a block sits and its value as a multiple of the block scale d: the
    /// scale itself (1), and the min of Q4_1/Q5_1/K-quants set so the weights centre on zero (a
    /// biased matrix blows a 22-layer model up to NaN). <c>Reach</c> is the largest |sub-scale ×
    /// quant|, so d keeps weights within about ±0.02 (GPT-2's spread).
    /// </summary>
    private static ((int Offset, float TimesD)[] Fields, float Reach) ScaleLayout(GgmlType type) => type switch
    {
        GgmlType.Q4_1 => ([(0, 1), (2, -7.5f)], 15),
        GgmlType.Q5_0 => ([(0, 1)], 16),
        GgmlType.Q5_1 => ([(0, 1), (2, -15.5f)], 31),
        GgmlType.IQ4_NL => ([(0, 1)], 127),
        GgmlType.Q2_K => ([(80, 1), (82, 1.5f)], 15 * 3),
        GgmlType.Q3_K => ([(108, 1)], 32 * 4),
        GgmlType.Q4_K => ([(0, 1), (2, 7.5f)], 63 * 15),
        GgmlType.Q5_K => ([(0, 1), (2, 15.5f)], 63 * 31),
        GgmlType.Q6_K => ([(208, 1)], 128 * 32),
        GgmlType.IQ4_XS => ([(0, 1)], 32 * 127),
        _ => throw new NextTokenException($"synth cannot write {type} blocks"),
    };

    /// <param name="vocabulary">A GGUF file whose <c>tokenizer.*</c> metadata is copied.</param>
    public static void WriteGpt2(string path, Gpt2Shape shape, GgmlType type, GgufFile vocabulary, ulong seed = 1)
    {
        if (!SupportedTypes.Contains(type))
            throw new NextTokenException($"synth cannot write {type} weights yet; supported: {string.Join(", ", SupportedTypes)}");
        int nVocab = vocabulary.GetArray<string>("tokenizer.ggml.tokens").Length;
        int d = shape.NEmbd, ff = 4 * shape.NEmbd;
        var writer = new GgufWriter()
            .Add("general.architecture", GgufValue.Of("gpt2"))
            .Add("general.name", GgufValue.Of($"synthetic-gpt2-{shape.Name}-{type}".ToLowerInvariant()))
            .Add("general.file_type", GgufValue.Of(FileType(type)))
            .Add("gpt2.block_count", GgufValue.Of((uint)shape.NLayer))
            .Add("gpt2.context_length", GgufValue.Of((uint)shape.NCtx))
            .Add("gpt2.embedding_length", GgufValue.Of((uint)d))
            .Add("gpt2.feed_forward_length", GgufValue.Of((uint)ff))
            .Add("gpt2.attention.head_count", GgufValue.Of((uint)shape.NHead))
            .Add("gpt2.attention.layer_norm_epsilon", GgufValue.Of(1e-5f));
        foreach (string key in vocabulary.MetadataKeys.Where(k => k.StartsWith("tokenizer.", StringComparison.Ordinal)))
            writer.Add(key, vocabulary.Metadata[key]);

        var random = new SplitMix64(seed);
        void Matrix(string name, int rows, int columns) =>
            writer.AddTensor(name, type, [columns, rows], s => WriteRandom(s, (long)rows * columns, type, random));
        void Vector(string name, int length, float value) =>
            writer.AddTensor(name, GgmlType.F32, [length], s => WriteConstant(s, length, value));

        Matrix(TensorNames.TokenEmbedding, nVocab, d);
        Matrix(TensorNames.PositionEmbedding, shape.NCtx, d);
        Vector(TensorNames.OutputNorm, d, 1);
        Vector(TensorNames.OutputNormBias, d, 0);
        for (int l = 0; l < shape.NLayer; l++)
        {
            string N(string pattern) => TensorNames.Layer(pattern, l);
            Vector(N(TensorNames.AttnNorm), d, 1);
            Vector(N(TensorNames.AttnNormBias), d, 0);
            Matrix(N(TensorNames.AttnQkv), 3 * d, d);
            Vector(N(TensorNames.AttnQkvBias), 3 * d, 0);
            Matrix(N(TensorNames.AttnOutput), d, d);
            Vector(N(TensorNames.AttnOutputBias), d, 0);
            Vector(N(TensorNames.FfnNorm), d, 1);
            Vector(N(TensorNames.FfnNormBias), d, 0);
            Matrix(N(TensorNames.FfnUp), ff, d);
            Vector(N(TensorNames.FfnUpBias), ff, 0);
            Matrix(N(TensorNames.FfnDown), d, ff);
            Vector(N(TensorNames.FfnDownBias), d, 0);
        }
        Matrix(TensorNames.Output, nVocab, d); // llama.cpp's converter writes GPT-2's tied head out again
        writer.Write(path);
    }

    /// <param name="vocabulary">A GGUF file whose <c>tokenizer.*</c> metadata is copied (e.g. the llama-spm vocabulary).</param>
    public static void WriteLlama(string path, LlamaShape shape, GgmlType type, GgufFile vocabulary, ulong seed = 1)
    {
        if (!SupportedTypes.Contains(type))
            throw new NextTokenException($"synth cannot write {type} weights yet; supported: {string.Join(", ", SupportedTypes)}");
        int nVocab = vocabulary.GetArray<string>("tokenizer.ggml.tokens").Length;
        int d = shape.NEmbd, headDim = d / shape.NHead, kv = shape.NKvHead * headDim;
        var writer = new GgufWriter()
            .Add("general.architecture", GgufValue.Of("llama"))
            .Add("general.name", GgufValue.Of($"synthetic-llama-{shape.Name}-{type}".ToLowerInvariant()))
            .Add("general.file_type", GgufValue.Of(FileType(type)))
            .Add("llama.block_count", GgufValue.Of((uint)shape.NLayer))
            .Add("llama.context_length", GgufValue.Of((uint)shape.NCtx))
            .Add("llama.embedding_length", GgufValue.Of((uint)d))
            .Add("llama.feed_forward_length", GgufValue.Of((uint)shape.NFf))
            .Add("llama.attention.head_count", GgufValue.Of((uint)shape.NHead))
            .Add("llama.attention.head_count_kv", GgufValue.Of((uint)shape.NKvHead))
            .Add("llama.attention.layer_norm_rms_epsilon", GgufValue.Of(1e-5f))
            .Add("llama.rope.freq_base", GgufValue.Of(10000f))
            .Add("llama.rope.dimension_count", GgufValue.Of((uint)headDim))
            .Add("llama.vocab_size", GgufValue.Of((uint)nVocab));
        foreach (string key in vocabulary.MetadataKeys.Where(k => k.StartsWith("tokenizer.", StringComparison.Ordinal)))
            writer.Add(key, vocabulary.Metadata[key]);
        var random = new SplitMix64(seed);
        void Matrix(string name, int rows, int columns) =>
            writer.AddTensor(name, type, [columns, rows], s => WriteRandom(s, (long)rows * columns, type, random));
        void Vector(string name, int length) => writer.AddTensor(name, GgmlType.F32, [length], s => WriteConstant(s, length, 1));
        Matrix(TensorNames.TokenEmbedding, nVocab, d);
        Vector(TensorNames.OutputNorm, d);
        Matrix(TensorNames.Output, nVocab, d);
        for (int l = 0; l < shape.NLayer; l++)
        {
            string N(string pattern) => TensorNames.Layer(pattern, l);
            Vector(N(TensorNames.AttnNorm), d);
            Matrix(N(TensorNames.AttnQ), d, d);
            Matrix(N(TensorNames.AttnK), kv, d);
            Matrix(N(TensorNames.AttnV), kv, d);
            Matrix(N(TensorNames.AttnOutput), d, d);
            Vector(N(TensorNames.FfnNorm), d);
            Matrix(N(TensorNames.FfnGate), shape.NFf, d);
            Matrix(N(TensorNames.FfnUp), shape.NFf, d);
            Matrix(N(TensorNames.FfnDown), d, shape.NFf);
        }
        writer.Write(path);
    }

    /// <summary>llama.cpp's <c>general.file_type</c> (LLAMA_FTYPE) for a file whose matrices are all <paramref name="type"/>.</summary>
    private static uint FileType(GgmlType type) => type switch
    {
        GgmlType.F32 => 0, GgmlType.F16 => 1, GgmlType.Q4_0 => 2, GgmlType.Q4_1 => 3, GgmlType.Q8_0 => 7, GgmlType.Q5_0 => 8, GgmlType.Q5_1 => 9,
        GgmlType.Q2_K => 10, GgmlType.Q3_K => 11, GgmlType.Q4_K => 14, GgmlType.Q5_K => 16, GgmlType.Q6_K => 18, GgmlType.IQ4_NL => 25,
        GgmlType.IQ4_XS => 30, GgmlType.BF16 => 32,
        _ => throw new NextTokenException($"no file type for {type}"),
    };

    private static void WriteConstant(Stream stream, int length, float value)
    {
        var data = new float[length];
        Array.Fill(data, value);
        stream.Write(MemoryMarshal.AsBytes(data.AsSpan()));
    }

    /// <summary>Uniform values with GPT-2's initialisation spread (standard deviation 0.02), streamed in chunks.</summary>
    private static void WriteRandom(Stream stream, long count, GgmlType type, SplitMix64 random)
    {
        const int Chunk = 1 << 16;
        float halfWidth = 0.02f * MathF.Sqrt(3);
        var floats = new float[Chunk];
        var halves = new Half[Chunk];
        var bf16 = new ushort[Chunk];
        for (long done = 0; done < count; done += Chunk)
        {
            int n = (int)Math.Min(Chunk, count - done);
            for (int i = 0; i < n; i++) floats[i] = (random.NextFloat() * 2 - 1) * halfWidth;
            switch (type)
            {
                case GgmlType.F32:
                    stream.Write(MemoryMarshal.AsBytes(floats.AsSpan(0, n)));
                    break;
                case GgmlType.F16:
                    System.Numerics.Tensors.TensorPrimitives.ConvertToHalf(floats.AsSpan(0, n), halves);
                    stream.Write(MemoryMarshal.AsBytes(halves.AsSpan(0, n)));
                    break;
                case GgmlType.BF16:
                    for (int i = 0; i < n; i++) bf16[i] = (ushort)(BitConverter.SingleToUInt32Bits(floats[i]) >> 16);
                    stream.Write(MemoryMarshal.AsBytes(bf16.AsSpan(0, n)));
                    break;
                case GgmlType.Q8_0 or GgmlType.Q4_0:
                    stream.Write(Kernels.Quantize.Blocks(type, floats.AsSpan(0, n)));
                    break;
                default:
                    WriteRandomBlocks(stream, n, type, random);
                    break;
            }
        }
    }

    /// <summary>
    /// Types without a quantizer here (the K-quants, Q4_1, Q5_x, IQ4): random bytes for the packed
    /// values and sub-block scales, and the f16 fields of <see cref="ScaleLayout"/>. Meant for speed:
    /// the bytes are what a real file of that type reads.
    /// </summary>
    private static void WriteRandomBlocks(Stream stream, int count, GgmlType type, SplitMix64 random)
    {
        GgmlTypeInfo.TryGetLayout(type, out int blockSize, out int blockBytes);
        if (count % blockSize != 0) throw new NextTokenException($"synth: {count} values are not whole {type} blocks of {blockSize}");
        var bytes = new byte[count / blockSize * blockBytes];
        for (int i = 0; i + 8 <= bytes.Length; i += 8) BitConverter.TryWriteBytes(bytes.AsSpan(i), random.Next());
        ((int Offset, float TimesD)[] fields, float reach) = ScaleLayout(type);
        float d = 0.02f / reach;
        for (int block = 0; block < bytes.Length; block += blockBytes)
            foreach ((int offset, float timesD) in fields)
                BitConverter.TryWriteBytes(bytes.AsSpan(block + offset), BitConverter.HalfToUInt16Bits((Half)(d * timesD)));
        stream.Write(bytes);
    }

    /// <summary>A small, specified generator (Steele et al.'s SplitMix64), so a seed gives the same file everywhere.</summary>
    private sealed class SplitMix64(ulong seed)
    {
        private ulong _state = seed;

        public ulong Next()
        {
            ulong z = _state += 0x9E3779B97F4A7C15UL;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            return z ^ (z >> 31);
        }

        public float NextFloat() => (Next() >> 40) * (1f / (1 << 24));
    }
}
