using NextToken.Gguf;
using NextToken.Kernels;
using NextToken.Tensors;
using Xunit.Abstractions;

namespace NextToken.Tests;

/// <summary>Every quantized block of the fixture files against the per-element scalar reference.</summary>
public class QuantizationTests(ITestOutputHelper output)
{
    public static TheoryData<string, GgmlType> QuantizedFiles => new()
    {
        { "gpt2-tiny.q8_0.gguf", GgmlType.Q8_0 },
        { "gpt2-tiny.q4_0.gguf", GgmlType.Q4_0 },
        { "llama-tiny.q8_0.gguf", GgmlType.Q8_0 },
        { "llama-k.q4_k_m.gguf", GgmlType.Q4_K },
        { "llama-k.q4_k_m.gguf", GgmlType.Q6_K },
    };

    [Theory]
    [MemberData(nameof(QuantizedFiles))]
    public void DequantizeRow_EveryBlockOfFixture_EqualsScalarReference(string fileName, GgmlType type)
    {
        using var file = GgufFile.Open(Fixtures.Model(fileName));
        GgmlTypeInfo.TryGetLayout(type, out int blockSize, out int blockBytes);
        long blocks = 0;
        foreach (GgufTensorInfo info in file.Tensors.Where(t => t.Type == type))
        {
            TensorData tensor = file.GetTensor(info.Name);
            var row = new float[tensor.RowLength];
            for (int r = 0; r < tensor.RowCount; r++)
            {
                ReadOnlySpan<byte> bytes = tensor.Row(r);
                Quantized.DequantizeRow(type, bytes, row);
                for (int b = 0; b < row.Length / blockSize; b++, blocks++)
                {
                    ReadOnlySpan<byte> block = bytes.Slice(b * blockBytes, blockBytes);
                    for (int i = 0; i < blockSize; i++)
                    {
                        float expected = ScalarReference.DequantizeElement(type, block, i);
                        if (expected != row[b * blockSize + i])
                            Assert.Fail($"{info.Name} row {r} block {b} value {i}: {row[b * blockSize + i]}, reference {expected}");
                    }
                }
            }
        }
        Assert.True(blocks > 0, $"{fileName} has no {type} blocks");
        output.WriteLine($"{fileName}: {blocks} {type} blocks dequantized, all equal to the scalar reference");
    }

    [Theory]
    [MemberData(nameof(QuantizedFiles))]
    public void DotRow_AgreesWithDequantizeThenDot(string fileName, GgmlType type)
    {
        using var file = GgufFile.Open(Fixtures.Model(fileName));
        var random = new Random(3);
        double worst = 0;
        foreach (GgufTensorInfo info in file.Tensors.Where(t => t.Type == type))
        {
            TensorData tensor = file.GetTensor(info.Name);
            float[] x = Enumerable.Range(0, tensor.RowLength).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
            var row = new float[tensor.RowLength];
            for (int r = 0; r < Math.Min(tensor.RowCount, 64); r++)
            {
                Quantized.DequantizeRow(type, tensor.Row(r), row);
                double expected = 0, magnitude = 0;
                for (int i = 0; i < row.Length; i++)
                {
                    expected += (double)row[i] * x[i];
                    magnitude += Math.Abs((double)row[i] * x[i]);
                }
                float fused = Quantized.DotRow(type, tensor.Row(r), x);
                double error = Math.Abs(fused - expected) / Math.Max(magnitude, 1e-30);
                worst = Math.Max(worst, error);
                Assert.True(error < 1e-5, $"{info.Name} row {r}: fused {fused}, reference {expected} (relative to Σ|terms| {error:E2})");
            }
        }
        output.WriteLine($"{fileName} {type}: fused dot vs dequantize-then-dot, worst error {worst:E2} of Σ|terms|");
    }

    /// <summary>Every vector width of the Q8_0/Q4_0 row dot, and the AVX-512 and AVX2 four-row kernels (the machine picks one; the others are tested here).</summary>
    [Theory]
    [InlineData("gpt2-tiny.q8_0.gguf", GgmlType.Q8_0)]
    [InlineData("gpt2-tiny.q4_0.gguf", GgmlType.Q4_0)]
    public unsafe void DotRow_EveryVectorWidth_AgreesWithDequantizeThenDot(string fileName, GgmlType type)
    {
        using var file = GgufFile.Open(Fixtures.Model(fileName));
        var random = new Random(8);
        GgufTensorInfo info = file.Tensors.First(t => t.Type == type);
        TensorData tensor = file.GetTensor(info.Name);
        float[] x = Enumerable.Range(0, tensor.RowLength).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
        var row = new float[tensor.RowLength];
        int rows = Math.Min(tensor.RowCount, 64);
        var four = new float[rows];
        var fourNarrow = new float[rows];
        bool narrow = System.Runtime.Intrinsics.X86.Avx2.IsSupported && System.Runtime.Intrinsics.X86.Fma.IsSupported;
        fixed (float* xp = x, yp = four, ynp = fourNarrow)
            for (int r = 0; r + 4 <= rows; r += 4)
            {
                if (System.Runtime.Intrinsics.Vector512.IsHardwareAccelerated)
                    Quantized.Dot4RowsWide(type, tensor.Data + r * tensor.RowBytes, tensor.RowBytes, xp, x.Length, yp + r);
                if (narrow)
                    Quantized.Dot4RowsNarrow(type, tensor.Data + r * tensor.RowBytes, tensor.RowBytes, xp, x.Length, ynp + r);
            }
        for (int r = 0; r < rows; r++)
        {
            Quantized.DequantizeRow(type, tensor.Row(r), row);
            double expected = 0, magnitude = 0;
            for (int i = 0; i < row.Length; i++) { expected += (double)row[i] * x[i]; magnitude += Math.Abs((double)row[i] * x[i]); }
            var widths = new List<float> { Quantized.DotRow(type, tensor.Row(r), x) }; // whatever this machine dispatches to
            if (narrow) widths.Add(Quantized.DotRowNarrow(type, tensor.Row(r), x));
            if (System.Runtime.Intrinsics.Vector512.IsHardwareAccelerated)
            {
                widths.Add(Quantized.DotRowWide(type, tensor.Row(r), x));
                widths.Add(four[r]);
            }
            if (narrow) widths.Add(fourNarrow[r]);
            foreach (float actual in widths)
                Assert.True(Math.Abs(actual - expected) <= 1e-5 * magnitude, $"row {r}: {actual} vs {expected}");
        }
    }
}
