using NextToken.Gguf;
using NextToken.Kernels;
using NextToken.Tensors;
using Xunit.Abstractions;

namespace NextToken.Tests;

/// <summary>
/// The weight types added for the common GGUF mixes (Q4_1, Q5_0, Q5_1, IQ4_NL, Q2_K, Q3_K, Q5_K,
/// IQ4_XS), on the files llama.cpp's own quantizer wrote (<c>models/quant/</c>): every block against
/// the per-element scalar reference, and every row kernel against dequantize-then-dot in float64.
/// </summary>
public class WeightTypeQuantizationTests(ITestOutputHelper output)
{
    /// <summary>Every (file, type) pair of <c>models/quant/</c>, the realistic mixes included.</summary>
    public static TheoryData<string, GgmlType> QuantFiles => new()
    {
        { "llama-d256.q4_1.gguf", GgmlType.Q4_1 },
        { "llama-d256.q5_0.gguf", GgmlType.Q5_0 },
        { "llama-d256.q5_1.gguf", GgmlType.Q5_1 },
        { "llama-d256.iq4_nl.gguf", GgmlType.IQ4_NL },
        { "llama-d256.q2_k.gguf", GgmlType.Q2_K },
        { "llama-d256.q3_k.gguf", GgmlType.Q3_K },
        { "llama-d256.q4_k.gguf", GgmlType.Q4_K },
        { "llama-d256.q5_k.gguf", GgmlType.Q5_K },
        { "llama-d256.q6_k.gguf", GgmlType.Q6_K },
        { "llama-d256.iq4_xs.gguf", GgmlType.IQ4_XS },
        { "gpt2-d256.q4_k_m.gguf", GgmlType.Q4_K },
        { "gpt2-d256.q4_k_m.gguf", GgmlType.Q5_K },
        { "gpt2-d256.q4_k_m.gguf", GgmlType.Q6_K },
        { "llama-d192.q4_k_m.gguf", GgmlType.Q5_0 },
        { "llama-d192.q4_k_m.gguf", GgmlType.Q8_0 },
        { "llama-d192.q4_k_m.gguf", GgmlType.Q4_K },
        { "llama-d192.q4_k_m.gguf", GgmlType.Q6_K },
    };

    private static GgufFile Open(string fileName) => GgufFile.Open(Fixtures.Model(Path.Combine("quant", fileName)));

    [Theory]
    [MemberData(nameof(QuantFiles))]
    public void DequantizeRow_EveryBlockOfFixture_EqualsScalarReference(string fileName, GgmlType type)
    {
        using GgufFile file = Open(fileName);
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
                        if (expected != row[b * blockSize + i]) // numerically: a zero scale may give +0 where the reference has −0
                            Assert.Fail($"{info.Name} row {r} block {b} value {i}: {row[b * blockSize + i]}, reference {expected}");
                    }
                }
            }
        }
        Assert.True(blocks > 0, $"{fileName} has no {type} blocks");
        output.WriteLine($"{fileName}: {blocks} {type} blocks dequantized, all equal to the scalar reference");
    }

    [Theory]
    [MemberData(nameof(QuantFiles))]
    public void DotRow_AgreesWithDequantizeThenDot(string fileName, GgmlType type)
    {
        using GgufFile file = Open(fileName);
        var random = new Random(3);
        double worst = 0;
        int rows = 0;
        foreach (GgufTensorInfo info in file.Tensors.Where(t => t.Type == type))
        {
            TensorData tensor = file.GetTensor(info.Name);
            float[] x = Enumerable.Range(0, tensor.RowLength).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
            var row = new float[tensor.RowLength];
            for (int r = 0; r < Math.Min(tensor.RowCount, 64); r++, rows++)
            {
                Quantized.DequantizeRow(type, tensor.Row(r), row);
                (double expected, double magnitude) = Float64Dot(row, x);
                float fused = Quantized.DotRow(type, tensor.Row(r), x);
                double error = Math.Abs(fused - expected) / Math.Max(magnitude, 1e-30);
                worst = Math.Max(worst, error);
                Assert.True(error < 1e-5, $"{info.Name} row {r}: fused {fused}, reference {expected} (relative to Σ|terms| {error:E2})");
            }
        }
        Assert.True(rows > 0, $"{fileName} has no {type} rows");
        output.WriteLine($"{fileName} {type}: {rows} rows, fused dot vs dequantize-then-dot, worst error {worst:E2} of Σ|terms|");
    }

    /// <summary>
    /// The decode path as the model runs it (<see cref="MatMul.Forward(in TensorData, ReadOnlySpan{float}, int, Span{float}, int, bool, InterleavedBlock32.Cache?)"/>
    /// with one input row, so the multi-row kernels and their single-row tails) and the prompt path
    /// (20 input rows: the panel GEMM over expanded rows), on every matrix of the type, 1 and 2 threads.
    /// </summary>
    [Theory]
    [MemberData(nameof(QuantFiles))]
    public void MatMul_DecodeAndPrompt_AgreeWithFloat64Reference(string fileName, GgmlType type)
    {
        using GgufFile file = Open(fileName);
        var random = new Random(5);
        double worst = 0;
        foreach (GgufTensorInfo info in file.Tensors.Where(t => t.Type == type && t.Dims.Length == 2))
        {
            TensorData tensor = file.GetTensor(info.Name);
            int nIn = tensor.RowLength, nOut = tensor.RowCount;
            foreach (int batch in new[] { 1, 20 })
            {
                float[] x = Enumerable.Range(0, batch * nIn).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
                var rowValues = new float[nIn];
                var expected = new double[batch * nOut];
                var magnitude = new double[batch * nOut];
                for (int o = 0; o < nOut; o++)
                {
                    Quantized.DequantizeRow(type, tensor.Row(o), rowValues);
                    for (int b = 0; b < batch; b++)
                        (expected[b * nOut + o], magnitude[b * nOut + o]) = Float64Dot(rowValues, x.AsSpan(b * nIn, nIn));
                }
                foreach (int threads in new[] { 1, 2 })
                {
                    var y = new float[batch * nOut];
                    MatMul.Forward(tensor, x, batch, y, threads);
                    for (int i = 0; i < y.Length; i++)
                    {
                        double error = Math.Abs(y[i] - expected[i]) / Math.Max(magnitude[i], 1e-30);
                        worst = Math.Max(worst, error);
                        Assert.True(error < 1e-5, $"{info.Name} batch {batch} threads {threads} output {i}: {y[i]}, reference {expected[i]} ({error:E2} of Σ|terms|)");
                    }
                }
            }
        }
        output.WriteLine($"{fileName} {type}: matmul (batch 1 and 20, 1 and 2 threads) vs float64, worst error {worst:E2} of Σ|terms|");
    }

    /// <summary>
    /// Each vector width of the chunked kernels, whichever this machine dispatches to: the AVX-512 and
    /// AVX2 four-row dot, single-row dot and row expansion against the scalar reference (skipped, not
    /// passed, where the CPU or the .NET switches lack the width).
    /// </summary>
    [CpuTheory(512)]
    [MemberData(nameof(QuantFiles))]
    public void ChunkedKernels_Avx512_AgreeWithScalarReference(string fileName, GgmlType type) => CheckChunkedKernels(fileName, type, wide: true);

    [CpuTheory(256)]
    [MemberData(nameof(QuantFiles))]
    public void ChunkedKernels_Avx2_AgreeWithScalarReference(string fileName, GgmlType type) => CheckChunkedKernels(fileName, type, wide: false);

    private unsafe void CheckChunkedKernels(string fileName, GgmlType type, bool wide)
    {
        if (!ChunkedQuant.Handles(type))
        {
            output.WriteLine($"{type} has its own kernels (QuantizationTests)");
            return;
        }
        using GgufFile file = Open(fileName);
        GgmlTypeInfo.TryGetLayout(type, out int blockSize, out int blockBytes);
        var random = new Random(11);
        double worst = 0;
        long values = 0;
        foreach (GgufTensorInfo info in file.Tensors.Where(t => t.Type == type))
        {
            TensorData tensor = file.GetTensor(info.Name);
            int n = tensor.RowLength, rows = tensor.RowCount & ~3;
            float[] x = Enumerable.Range(0, n).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
            var reference = new float[n];
            var expanded = new float[n];
            var four = new float[4];
            fixed (float* xp = x, yp = expanded, fp = four)
                for (int r = 0; r < rows; r++)
                {
                    byte* row = tensor.Data + r * tensor.RowBytes;
                    ReadOnlySpan<byte> bytes = tensor.Row(r);
                    for (int i = 0; i < n; i++) reference[i] = ScalarReference.DequantizeElement(type, bytes.Slice(i / blockSize * blockBytes, blockBytes), i % blockSize);
                    ChunkedQuant.Dequantize(type, wide, row, yp, n);
                    for (int i = 0; i < n; i++, values++)
                        if (expanded[i] != reference[i]) Assert.Fail($"{info.Name} row {r} value {i}: {expanded[i]}, reference {reference[i]}");
                    if (r % 4 == 0) ChunkedQuant.Dot4(type, wide, row, tensor.RowBytes, xp, n, fp);
                    (double expected, double magnitude) = Float64Dot(reference, x);
                    foreach (float actual in new[] { ChunkedQuant.Dot(type, wide, row, xp, n), four[r % 4] })
                    {
                        double error = Math.Abs(actual - expected) / Math.Max(magnitude, 1e-30);
                        worst = Math.Max(worst, error);
                        Assert.True(error < 1e-5, $"{info.Name} row {r}: {actual}, reference {expected} ({error:E2} of Σ|terms|)");
                    }
                }
        }
        Assert.True(values > 0, $"{fileName} has no {type} rows");
        output.WriteLine($"{fileName} {type} at {(wide ? 512 : 256)} bits: {values} values equal to the reference; four-row and one-row dot worst error {worst:E2} of Σ|terms|");
    }

    /// <summary>
    /// The K-quant decode kernels (<see cref="KQuantRows"/>, Q4_K and Q6_K) at each width against the
    /// float64 dot of the scalar reference's values: every row as the first of a group of 1, 2, 3 and
    /// 4 rows (so groups cut short at a matrix's end are covered), through the sums the caller makes.
    /// </summary>
    [CpuTheory(512)]
    [MemberData(nameof(QuantFiles))]
    public void KQuantRowKernels_Avx512_AgreeWithScalarReference(string fileName, GgmlType type) => CheckKQuantRows(fileName, type, wide: true);

    [CpuTheory(256)]
    [MemberData(nameof(QuantFiles))]
    public void KQuantRowKernels_Avx2_AgreeWithScalarReference(string fileName, GgmlType type) => CheckKQuantRows(fileName, type, wide: false);

    private unsafe void CheckKQuantRows(string fileName, GgmlType type, bool wide)
    {
        if (!KQuantRows.Handles(type))
        {
            output.WriteLine($"{type} has no K-quant row kernel (ChunkedKernels tests cover it)");
            return;
        }
        using GgufFile file = Open(fileName);
        GgmlTypeInfo.TryGetLayout(type, out int blockSize, out int blockBytes);
        var random = new Random(12);
        double worst = 0;
        long dots = 0, sameAsShifted = 0;
        foreach (GgufTensorInfo info in file.Tensors.Where(t => t.Type == type))
        {
            TensorData tensor = file.GetTensor(info.Name);
            int n = tensor.RowLength, width = KQuantRows.SumWidth(type);
            float[] x = Enumerable.Range(0, n).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
            var sums = new float[n / width];
            var expected = new (double Dot, double Magnitude)[tensor.RowCount];
            var values = new float[n];
            for (int r = 0; r < tensor.RowCount; r++)
            {
                ReadOnlySpan<byte> bytes = tensor.Row(r);
                for (int i = 0; i < n; i++) values[i] = ScalarReference.DequantizeElement(type, bytes.Slice(i / blockSize * blockBytes, blockBytes), i % blockSize);
                expected[r] = Float64Dot(values, x);
            }
            var y = new float[5];
            var previous = new float[4];
            fixed (float* xp = x, sp = sums, yp = y, shifted = previous)
            {
                KQuantRows.SubBlockSums(xp, n, width, sp);
                for (int r = 0; r < tensor.RowCount; r++)
                    for (int rows = 1; rows <= Math.Min(4, tensor.RowCount - r); rows++)
                    {
                        y[rows] = float.NaN; // the kernel writes exactly y[0 … rows − 1]
                        KQuantRows.Dot4(type, wide, tensor.Data + r * tensor.RowBytes, tensor.RowBytes, rows, xp, sp, n, yp);
                        Assert.True(float.IsNaN(y[rows]), $"{info.Name}: {rows} rows wrote y[{rows}]");
                        for (int k = 0; k < rows; k++, dots++)
                        {
                            double error = Math.Abs(y[k] - expected[r + k].Dot) / Math.Max(expected[r + k].Magnitude, 1e-30);
                            worst = Math.Max(worst, error);
                            Assert.True(error < 1e-5, $"{info.Name} row {r + k} (group of {rows} from {r}): {y[k]}, reference {expected[r + k].Dot} ({error:E2} of Σ|terms|)");
                        }
                        if (!wide && rows == 4 && type == GgmlType.Q4_K)
                        {
                            // High bits masked in place (16·n against scales / 16) must give the shifting kernel's bits.
                            KQuantRows.Dot4NarrowShifted(type, tensor.Data + r * tensor.RowBytes, tensor.RowBytes, xp, sp, n, shifted);
                            for (int k = 0; k < 4; k++, sameAsShifted++)
                                Assert.True(shifted[k].Equals(y[k]), $"{info.Name} row {r + k}: {y[k]}, shifting kernel {shifted[k]}");
                        }
                    }
            }
        }
        Assert.True(dots > 0, $"{fileName} has no {type} rows");
        output.WriteLine($"{fileName} {type} at {(wide ? 512 : 256)} bits: {dots} row dots (groups of 1–4 rows), worst error {worst:E2} of Σ|terms|"
                         + (sameAsShifted > 0 ? $"; {sameAsShifted} equal bit for bit to the shifting AVX2 kernel" : ""));
    }

    internal static (double Dot, double Magnitude) Float64Dot(ReadOnlySpan<float> row, ReadOnlySpan<float> x)
    {
        double dot = 0, magnitude = 0;
        for (int i = 0; i < row.Length; i++)
        {
            dot += (double)row[i] * x[i];
            magnitude += Math.Abs((double)row[i] * x[i]);
        }
        return (dot, magnitude);
    }
}

/// <summary>A theory that runs only where .NET uses vectors of the given width with their kernels' instructions (AVX-512F, or AVX2 and FMA), and is reported as skipped elsewhere.</summary>
public sealed class CpuTheoryAttribute : TheoryAttribute
{
    public CpuTheoryAttribute(int bits)
    {
        bool available = bits == 512
            ? System.Runtime.Intrinsics.Vector512.IsHardwareAccelerated && System.Runtime.Intrinsics.X86.Avx512F.IsSupported
            : System.Runtime.Intrinsics.Vector256.IsHardwareAccelerated && System.Runtime.Intrinsics.X86.Avx2.IsSupported && System.Runtime.Intrinsics.X86.Fma.IsSupported;
        if (!available) Skip = $"this CPU (or DOTNET_* switch) gives .NET no {bits}-bit kernels";
    }
}
