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
}
