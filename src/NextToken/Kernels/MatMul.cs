using System.Runtime.InteropServices;
using NextToken.Tensors;

namespace NextToken.Kernels;

/// <summary>
/// y = x · Wᵀ for a weight matrix W stored <c>[out][in]</c> (ggml dims <c>[in, out]</c>) and a batch
/// of input rows. Output rows are split across threads; each weight row is read once per call and
/// applied to every input row, so a prompt batch reads the weights once.
/// </summary>
public static unsafe class MatMul
{
    /// <param name="weight">[nOut, nIn]</param>
    /// <param name="input">[nBatch, nIn]</param>
    /// <param name="output">[nBatch, nOut]</param>
    public static void Forward(in TensorData weight, ReadOnlySpan<float> input, int nBatch, Span<float> output, int threads)
    {
        int nIn = weight.RowLength, nOut = weight.RowCount;
        if (input.Length < nBatch * nIn || output.Length < nBatch * nOut)
            throw new ArgumentException($"matmul '{weight.Name}': buffers too small for [{nBatch}, {nIn}] × [{nOut}, {nIn}]ᵀ");
        fixed (float* x = input)
        fixed (float* y = output)
        {
            var job = new Job(weight, x, y, nBatch);
            int chunks = Math.Min(nOut, Math.Max(1, threads) * 8);
            if (threads <= 1 || (long)nOut * nIn * nBatch < 32_768)
            {
                job.Run(0, nOut);
                return;
            }
            Parallel.For(0, chunks, new ParallelOptions { MaxDegreeOfParallelism = threads }, chunk =>
            {
                int start = (int)((long)nOut * chunk / chunks), end = (int)((long)nOut * (chunk + 1) / chunks);
                job.Run(start, end);
            });
        }
    }

    private readonly struct Job(TensorData weight, float* x, float* y, int nBatch)
    {
        public void Run(int rowStart, int rowEnd)
        {
            int nIn = weight.RowLength, nOut = weight.RowCount;
            long rowBytes = weight.RowBytes;
            for (int o = rowStart; o < rowEnd; o++)
            {
                byte* row = weight.Data + o * rowBytes;
                for (int b = 0; b < nBatch; b++)
                {
                    var xb = new ReadOnlySpan<float>(x + (long)b * nIn, nIn);
                    y[(long)b * nOut + o] = weight.Type switch
                    {
                        GgmlType.F32 => Dot.F32(new ReadOnlySpan<float>(row, nIn), xb),
                        GgmlType.F16 => Dot.F16(new ReadOnlySpan<Half>(row, nIn), xb),
                        GgmlType.BF16 => Dot.BF16(new ReadOnlySpan<ushort>(row, nIn), xb),
                        _ => Quantized.DotRow(weight.Type, new ReadOnlySpan<byte>(row, (int)rowBytes), xb),
                    };
                }
            }
        }
    }

    /// <summary>Plain scalar reference: dequantize each weight, multiply, add in float64.</summary>
    public static void Reference(in TensorData weight, ReadOnlySpan<float> input, int nBatch, Span<float> output)
    {
        int nIn = weight.RowLength, nOut = weight.RowCount;
        var row = new float[nIn];
        for (int o = 0; o < nOut; o++)
        {
            RowConvert.Row(weight, o, row);
            for (int b = 0; b < nBatch; b++)
            {
                double sum = 0;
                for (int i = 0; i < nIn; i++) sum += (double)row[i] * input[b * nIn + i];
                output[b * nOut + o] = (float)sum;
            }
        }
    }
}
