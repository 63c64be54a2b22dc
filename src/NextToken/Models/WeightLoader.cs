using NextToken.Gguf;
using NextToken.Kernels;
using NextToken.Tensors;

namespace NextToken.Models;

/// <summary>Finds a model's tensors in a GGUF file, checks their shapes and that a kernel exists for their type.</summary>
internal sealed class WeightLoader(IWeightSource file)
{
    /// <summary>A matrix stored [rows][columns] (ggml dims [columns, rows]), left in the mapping.</summary>
    public TensorData Matrix(string name, int rows, int columns) => Computable(file.GetTensor(name, columns, rows));

    /// <summary>A small vector (norm weights, biases), copied to float32.</summary>
    public float[] Vector(string name, int length) => RowConvert.ToArray(Computable(file.GetTensor(name, length)));

    /// <summary>Each expert's matrix of a 3-D expert tensor [count][rows][columns].</summary>
    public TensorData[] Experts(string name, int rows, int columns, int count) =>
        file.GetExperts(name, rows, columns, count).Select(Computable).ToArray();

    public bool Has(string name) => file.HasTensor(name);

    private TensorData Computable(TensorData tensor) =>
        RowConvert.IsSupported(tensor.Type)
            ? tensor
            : throw new NextTokenException(
                $"{file.FilePath}: tensor '{tensor.Name}' has type {tensor.Type}, which this version cannot compute with yet; supported: F32, F16, BF16, {Quantized.SupportedNames}");
}
