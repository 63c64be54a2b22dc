namespace NextToken.Tensors;

/// <summary>
/// Where a model's tensors come from (a GGUF file, a safetensors checkpoint). Tensors are asked for
/// by their GGUF names (<see cref="Models.TensorNames"/>); a source that stores other names maps them.
/// </summary>
public interface IWeightSource : IDisposable
{
    /// <summary>The file or directory, for messages.</summary>
    string FilePath { get; }

    bool HasTensor(string name);

    /// <summary>The tensor, checked to have <paramref name="expectedDims"/> (ggml order, innermost first).</summary>
    TensorData GetTensor(string name, params long[] expectedDims);

    /// <summary>
    /// Each expert's [rows, columns] matrix of a mixture-of-experts tensor: views of one 3-D tensor
    /// [count][rows][columns] (GGUF), unless a source stores one tensor per expert (Hugging Face's
    /// <c>experts.N.w1</c>), which then overrides this.
    /// </summary>
    TensorData[] GetExperts(string name, int rows, int columns, int count)
    {
        TensorData all = GetTensor(name, columns, rows, count);
        return Enumerable.Range(0, count).Select(all.Matrix).ToArray();
    }
}
