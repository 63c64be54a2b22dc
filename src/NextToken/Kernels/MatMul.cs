using System.Numerics.Tensors;
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
        if (weight.Transposed)
        {
            ForwardTransposed(weight, input, nBatch, output, threads);
            return;
        }
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

    /// <summary>
    /// y = x · W for W stored [in][out]: each output block accumulates x[i] · W[i, block] over i,
    /// so the weights are read in contiguous runs; threads split the output columns.
    /// </summary>
    private static void ForwardTransposed(in TensorData weight, ReadOnlySpan<float> input, int nBatch, Span<float> output, int threads)
    {
        int nIn = weight.RowLength, nOut = weight.RowCount;
        if (!RowConvert.IsSupported(weight.Type) || weight.Type is not (GgmlType.F32 or GgmlType.F16 or GgmlType.BF16))
            throw new NotSupportedException($"transposed matmul over {weight.Type} ('{weight.Name}') is not supported");
        const int Block = 256;
        int blocks = (nOut + Block - 1) / Block;
        TensorData w = weight;
        fixed (float* x = input)
        fixed (float* y = output)
        {
            float* xp = x, yp = y;
            void RunBlock(int block)
            {
                int o0 = block * Block, width = Math.Min(Block, nOut - o0);
                int elementBytes = w.Type == GgmlType.F32 ? 4 : 2;
                Span<float> row = stackalloc float[Block];
                for (int b = 0; b < nBatch; b++)
                {
                    var acc = new Span<float>(yp + (long)b * nOut + o0, width);
                    acc.Clear();
                    for (int i = 0; i < nIn; i++)
                    {
                        var stored = new ReadOnlySpan<byte>(w.Data + ((long)i * nOut + o0) * elementBytes, width * elementBytes);
                        RowConvert.ToSingle(w.Type, stored, row[..width]);
                        TensorPrimitives.MultiplyAdd(row[..width], xp[(long)b * nIn + i], acc, acc);
                    }
                }
            }
            if (threads <= 1 || blocks == 1)
                for (int block = 0; block < blocks; block++) RunBlock(block);
            else
                Parallel.For(0, blocks, new ParallelOptions { MaxDegreeOfParallelism = threads }, RunBlock);
        }
    }

    /// <summary>Plain scalar reference: dequantize each weight, multiply, add in float64.</summary>
    public static void Reference(in TensorData weight, ReadOnlySpan<float> input, int nBatch, Span<float> output)
    {
        int nIn = weight.RowLength, nOut = weight.RowCount;
        var row = new float[nIn];
        for (int o = 0; o < nOut; o++)
        {
            if (weight.Transposed)
                for (int i = 0; i < nIn; i++) row[i] = TransposedElement(weight, i, o);
            else
                RowConvert.Row(weight, o, row);
            for (int b = 0; b < nBatch; b++)
            {
                double sum = 0;
                for (int i = 0; i < nIn; i++) sum += (double)row[i] * input[b * nIn + i];
                output[b * nOut + o] = (float)sum;
            }
        }
    }

    private static float TransposedElement(in TensorData weight, int i, int o)
    {
        long index = (long)i * weight.RowCount + o;
        return weight.Type switch
        {
            GgmlType.F32 => ((float*)weight.Data)[index],
            GgmlType.F16 => (float)((Half*)weight.Data)[index],
            _ => Dot.BF16ToSingle(((ushort*)weight.Data)[index]),
        };
    }
}
