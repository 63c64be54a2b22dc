using System.Runtime.InteropServices;
using NextToken.Gguf;
using NextToken.Models;
using NextToken.Tensors;

namespace NextToken.Training;

/// <summary>Shape of a GPT-2 being trained. <see cref="NFf"/> is read from the weights, never assumed 4·d.</summary>
public sealed record Gpt2Dimensions(int NLayer, int NHead, int NEmbd, int NCtx, int NFf, int NVocab, float Eps = 1e-5f)
{
    public int HeadDim => NEmbd / NHead;
}

/// <summary>One named tensor inside the flat parameter buffer; <see cref="Dims"/> in GGUF order (innermost first).</summary>
public sealed record ParameterTensor(string Name, long[] Dims, int Offset, int Length)
{
    /// <summary>AdamW decays every 2-D tensor (matrices and both embeddings, as nanoGPT), never biases or norms.</summary>
    public bool Decayed => Dims.Length == 2;
}

/// <summary>
/// The parameters of a GPT-2 (llama.cpp's gpt2 tensor names, matrices <c>[out][in]</c>) in one
/// pinned float buffer, so the optimizer, clipping and zeroing are single loops and the kernels can
/// take pointers. The LM head is tied: <c>token_embd.weight</c> is one parameter for both uses.
/// </summary>
public sealed class Gpt2Parameters
{
    private readonly Dictionary<string, ParameterTensor> _byName = [];

    public Gpt2Parameters(Gpt2Dimensions shape)
    {
        if (shape.NEmbd % shape.NHead != 0)
            throw new NextTokenException($"n_embd {shape.NEmbd} is not divisible by n_head {shape.NHead}");
        Shape = shape;
        int c = shape.NEmbd, f = shape.NFf;
        var list = new List<ParameterTensor>();
        int offset = 0;
        void Add(string name, params long[] dims)
        {
            long length = dims.Aggregate(1L, (a, b) => a * b);
            if (offset + length > int.MaxValue) throw new NextTokenException($"model too large for one buffer at tensor '{name}'");
            var tensor = new ParameterTensor(name, dims, offset, (int)length);
            list.Add(tensor);
            _byName[name] = tensor;
            offset += (int)length;
        }
        Add(TensorNames.TokenEmbedding, c, shape.NVocab);
        Add(TensorNames.PositionEmbedding, c, shape.NCtx);
        for (int l = 0; l < shape.NLayer; l++)
        {
            Add(TensorNames.Layer(TensorNames.AttnNorm, l), c);
            Add(TensorNames.Layer(TensorNames.AttnNormBias, l), c);
            Add(TensorNames.Layer(TensorNames.AttnQkv, l), c, 3 * c);
            Add(TensorNames.Layer(TensorNames.AttnQkvBias, l), 3 * c);
            Add(TensorNames.Layer(TensorNames.AttnOutput, l), c, c);
            Add(TensorNames.Layer(TensorNames.AttnOutputBias, l), c);
            Add(TensorNames.Layer(TensorNames.FfnNorm, l), c);
            Add(TensorNames.Layer(TensorNames.FfnNormBias, l), c);
            Add(TensorNames.Layer(TensorNames.FfnUp, l), c, f);
            Add(TensorNames.Layer(TensorNames.FfnUpBias, l), f);
            Add(TensorNames.Layer(TensorNames.FfnDown, l), f, c);
            Add(TensorNames.Layer(TensorNames.FfnDownBias, l), c);
        }
        Add(TensorNames.OutputNorm, c);
        Add(TensorNames.OutputNormBias, c);
        Tensors = list;
        Count = offset;
    }

    public Gpt2Dimensions Shape { get; }
    public IReadOnlyList<ParameterTensor> Tensors { get; }
    public int Count { get; }

    public ParameterTensor this[string name] => _byName.TryGetValue(name, out var t) ? t : throw new NextTokenException($"no parameter '{name}'");

    public float[] NewBuffer() => GC.AllocateArray<float>(Count, pinned: true);

    /// <summary>GPT-2's initialization (as nanoGPT): N(0, 0.02), residual projections N(0, 0.02/√(2L)), biases 0, norms 1.</summary>
    public float[] InitializeRandom(int seed)
    {
        float[] values = NewBuffer();
        var random = new Random(seed);
        float residualStd = 0.02f / MathF.Sqrt(2 * Shape.NLayer);
        foreach (ParameterTensor t in Tensors)
        {
            Span<float> span = values.AsSpan(t.Offset, t.Length);
            if (t.Name.EndsWith("_norm.weight", StringComparison.Ordinal)) span.Fill(1f);
            else if (t.Dims.Length == 1) span.Clear();
            else
            {
                bool residual = t.Name.EndsWith("attn_output.weight", StringComparison.Ordinal) || t.Name.EndsWith("ffn_down.weight", StringComparison.Ordinal);
                float std = residual ? residualStd : 0.02f;
                for (int i = 0; i < span.Length; i += 2)
                {
                    // Box–Muller: two normals per two uniforms.
                    double u1 = 1.0 - random.NextDouble(), u2 = random.NextDouble();
                    double r = Math.Sqrt(-2 * Math.Log(u1));
                    span[i] = (float)(std * r * Math.Cos(2 * Math.PI * u2));
                    if (i + 1 < span.Length) span[i + 1] = (float)(std * r * Math.Sin(2 * Math.PI * u2));
                }
            }
        }
        return values;
    }

    /// <summary>Shape of a gpt2 GGUF (from its metadata and tensor dims).</summary>
    public static Gpt2Dimensions ShapeOf(GgufFile file)
    {
        string arch = file.GetStringOrNull("general.architecture") ?? "";
        if (arch != "gpt2") throw new NextTokenException($"{file.FilePath}: general.architecture is '{arch}'; training needs a gpt2 model");
        if (!file.TryGetTensorInfo(TensorNames.TokenEmbedding, out GgufTensorInfo embd) || embd.Dims.Length != 2)
            throw new NextTokenException($"{file.FilePath}: no 2-D tensor '{TensorNames.TokenEmbedding}'");
        if (!file.TryGetTensorInfo(TensorNames.Layer(TensorNames.FfnUp, 0), out GgufTensorInfo up) || up.Dims.Length != 2)
            throw new NextTokenException($"{file.FilePath}: no 2-D tensor 'blk.0.ffn_up.weight'");
        Gpt2Config config = Gpt2Config.FromGguf(file, (int)embd.Dims[1]);
        return new Gpt2Dimensions(config.NLayer, config.NHead, config.NEmbd, config.NCtx, (int)up.Dims[1], config.NVocab, config.LayerNormEps);
    }

    /// <summary>Reads every parameter (F32, or F16 widened) from a GGUF; dims must match exactly.</summary>
    public unsafe float[] Load(GgufFile file)
    {
        float[] values = NewBuffer();
        foreach (ParameterTensor t in Tensors)
        {
            if (!file.TryGetTensorInfo(t.Name, out GgufTensorInfo info))
                throw new NextTokenException($"{file.FilePath}: tensor '{t.Name}' is missing");
            if (!info.Dims.SequenceEqual(t.Dims))
                throw new NextTokenException($"{file.FilePath}: tensor '{t.Name}' has dims [{string.Join(", ", info.Dims)}], expected [{string.Join(", ", t.Dims)}]");
            TensorData data = file.GetTensor(t.Name);
            Span<float> target = values.AsSpan(t.Offset, t.Length);
            switch (data.Type)
            {
                case GgmlType.F32:
                    new ReadOnlySpan<float>(data.Data, t.Length).CopyTo(target);
                    break;
                case GgmlType.F16:
                    var halves = new ReadOnlySpan<Half>(data.Data, t.Length);
                    for (int i = 0; i < t.Length; i++) target[i] = (float)halves[i];
                    break;
                default:
                    throw new NextTokenException($"{file.FilePath}: tensor '{t.Name}' is {data.Type}; training reads F32 or F16 weights");
            }
        }
        return values;
    }

    /// <summary>
    /// Writes a complete gpt2 GGUF the engine runs: shape metadata, the <c>tokenizer.*</c> keys of
    /// <paramref name="vocabulary"/>, every tensor as F32, and the tied head a second time as <c>output.weight</c>.
    /// </summary>
    public void Save(string path, float[] values, IReadOnlyDictionary<string, GgufValue> vocabulary, string name,
                     IEnumerable<(string Key, GgufValue Value)>? extra = null, Action<GgufWriter>? moreTensors = null)
    {
        var writer = new GgufWriter()
            .Add("general.architecture", GgufValue.Of("gpt2"))
            .Add("general.name", GgufValue.Of(name))
            .Add("general.file_type", GgufValue.Of(0u))
            .Add("gpt2.block_count", GgufValue.Of((uint)Shape.NLayer))
            .Add("gpt2.context_length", GgufValue.Of((uint)Shape.NCtx))
            .Add("gpt2.embedding_length", GgufValue.Of((uint)Shape.NEmbd))
            .Add("gpt2.feed_forward_length", GgufValue.Of((uint)Shape.NFf))
            .Add("gpt2.attention.head_count", GgufValue.Of((uint)Shape.NHead))
            .Add("gpt2.attention.layer_norm_epsilon", GgufValue.Of(Shape.Eps));
        foreach (var (key, value) in vocabulary.Where(kv => kv.Key.StartsWith("tokenizer.", StringComparison.Ordinal)))
            writer.Add(key, value);
        foreach (var (key, value) in extra ?? []) writer.Add(key, value);
        foreach (ParameterTensor t in Tensors)
            writer.AddTensor(t.Name, GgmlType.F32, t.Dims, s => s.Write(MemoryMarshal.AsBytes(values.AsSpan(t.Offset, t.Length))));
        ParameterTensor embd = this[TensorNames.TokenEmbedding];
        writer.AddTensor(TensorNames.Output, GgmlType.F32, embd.Dims, s => s.Write(MemoryMarshal.AsBytes(values.AsSpan(embd.Offset, embd.Length))));
        moreTensors?.Invoke(writer);
        writer.Write(path);
    }
}
