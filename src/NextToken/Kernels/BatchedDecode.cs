using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using NextToken.Tensors;

namespace NextToken.Kernels;

/// <summary>
/// Exact decode of several independent input rows at once (a server's streams): each group of
/// weight rows is unpacked or converted once and applied to every input, while each (row, input)
/// pair accumulates in exactly the order and lanes of the single-input decode kernel, so every
/// result is bit-identical to decoding that input alone. The single-input kernels, run once per
/// input, unpacked each weight block nBatch times: batched decode was compute-bound.
/// </summary>
internal static unsafe class BatchedDecode
{
    /// <summary>Inputs per pass: their accumulators live on the stack (4 rows × 16 inputs × 64 bytes for Q8_0/Q4_0).</summary>
    public const int MaxInputs = 16;

    /// <summary>Whether <see cref="Rows"/> has a kernel for this type and row length at the chosen width.</summary>
    public static bool Handles(GgmlType type, int nIn, bool wide, bool narrow) =>
        (wide || narrow) && type is GgmlType.Q8_0 or GgmlType.Q4_0 && nIn % 32 == 0;

    /// <summary>
    /// y[b, o] for o in whole groups of four rows from <paramref name="rowStart"/> and every input b
    /// (x and y rows nIn and nOut floats apart); returns the first row not computed (the caller
    /// takes the last 1–3 rows one at a time, as a batch of one does).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static int Rows(in TensorData weight, bool wide, float* x, float* y, int nBatch, int rowStart, int rowEnd)
    {
        int nIn = weight.RowLength, nOut = weight.RowCount;
        long rowBytes = weight.RowBytes;
        int o = rowStart;
        for (; o + 4 <= rowEnd; o += 4)
            Quantized.Dot4RowsBatch(weight.Type, wide, weight.Data + o * rowBytes, rowBytes, x, nIn, nBatch, y + o, nOut);
        return o;
    }
}

public static unsafe partial class Quantized
{
    /// <summary>
    /// <see cref="Dot4RowsWide"/> (<paramref name="wide"/>) or <see cref="Dot4RowsNarrow"/> for
    /// <paramref name="nBatch"/> inputs n floats apart: y[b·yStride + r] gets bit for bit what the
    /// single-input kernel gives input b, each block of the four rows unpacked once for all inputs.
    /// </summary>
    internal static void Dot4RowsBatch(GgmlType type, bool wide, byte* w, long rowBytes, float* x, int n, int nBatch, float* y, long yStride)
    {
        for (int start = 0; start < nBatch; start += BatchedDecode.MaxInputs)
        {
            int count = Math.Min(BatchedDecode.MaxInputs, nBatch - start);
            float* xs = x + (long)start * n, ys = y + start * yStride;
            switch (type, wide)
            {
                case (GgmlType.Q8_0, true): Dot4RowsWideBatch<Q8_0Floats>(w, rowBytes, xs, n, count, ys, yStride); break;
                case (GgmlType.Q4_0, true): Dot4RowsWideBatch<Q4_0Floats>(w, rowBytes, xs, n, count, ys, yStride); break;
                case (GgmlType.Q8_0, false): Dot4RowsNarrowBatch<Q8_0Floats>(w, rowBytes, xs, n, count, ys, yStride); break;
                case (GgmlType.Q4_0, false): Dot4RowsNarrowBatch<Q4_0Floats>(w, rowBytes, xs, n, count, ys, yStride); break;
                default: throw new NotSupportedException($"no batched decode kernel for {type}");
            }
        }
    }

    /// <summary>
    /// Per block: the four rows' 32 values (two vectors each) and scales stay in registers while
    /// every input's two x vectors and offset are loaded and its four accumulators (on the stack)
    /// updated by the chain of <see cref="BlockTimes{TFormat}(byte*, Vector512{float}, Vector512{float}, Vector512{float}, float*, Vector512{float})"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Dot4RowsWideBatch<TFormat>(byte* w, long rowBytes, float* x, int n, int nBatch, float* y, long yStride) where TFormat : struct, IBlockFloats
    {
        float* halves = HalfTable.Pointer;
        int blocks = n / 32;
        int prefetchStride = 4 * TFormat.Bytes;
        byte* w1 = w + rowBytes, w2 = w + 2 * rowBytes, w3 = w + 3 * rowBytes, next = w + 4 * rowBytes;
        Vector512<float>* acc = stackalloc Vector512<float>[4 * BatchedDecode.MaxInputs];
        for (int i = 0; i < 4 * nBatch; i++) acc[i] = default;
        for (int b = 0; b < blocks; b++)
        {
            for (int line = 0; line < prefetchStride; line += 64) System.Runtime.Intrinsics.X86.Sse.Prefetch0(next + b * prefetchStride + line);
            int at = b * TFormat.Bytes;
            (Vector512<float> l0, Vector512<float> u0) = TFormat.StoredValues(w + at);
            (Vector512<float> l1, Vector512<float> u1) = TFormat.StoredValues(w1 + at);
            (Vector512<float> l2, Vector512<float> u2) = TFormat.StoredValues(w2 + at);
            (Vector512<float> l3, Vector512<float> u3) = TFormat.StoredValues(w3 + at);
            var d0 = Vector512.Create(HalfTable.ToSingle(halves, ref *(w + at)));
            var d1 = Vector512.Create(HalfTable.ToSingle(halves, ref *(w1 + at)));
            var d2 = Vector512.Create(HalfTable.ToSingle(halves, ref *(w2 + at)));
            var d3 = Vector512.Create(HalfTable.ToSingle(halves, ref *(w3 + at)));
            float* xb = x + b * 32;
            Vector512<float>* a = acc;
            for (int i = 0; i < nBatch; i++, xb += n, a += 4)
            {
                var x0 = Vector512.Load(xb);
                var x1 = Vector512.Load(xb + 16);
                Vector512<float> offset = TFormat.Offset(x0, x1);
                a[0] = BlockTimes(l0, u0, d0, x0, x1, offset, a[0]);
                a[1] = BlockTimes(l1, u1, d1, x0, x1, offset, a[1]);
                a[2] = BlockTimes(l2, u2, d2, x0, x1, offset, a[2]);
                a[3] = BlockTimes(l3, u3, d3, x0, x1, offset, a[3]);
            }
        }
        for (int i = 0; i < nBatch; i++)
        {
            float* yi = y + i * yStride;
            yi[0] = Vector512.Sum(acc[4 * i]); yi[1] = Vector512.Sum(acc[4 * i + 1]); yi[2] = Vector512.Sum(acc[4 * i + 2]); yi[3] = Vector512.Sum(acc[4 * i + 3]);
        }
    }

    /// <summary>
    /// The AVX2 form: a block's four rows × four 8-lane vectors and scales would not fit in 16
    /// registers, so they are unpacked once into a stack buffer that every input reads (as memory
    /// operands of its multiply-adds).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Dot4RowsNarrowBatch<TFormat>(byte* w, long rowBytes, float* x, int n, int nBatch, float* y, long yStride) where TFormat : struct, IBlockFloats
    {
        float* halves = HalfTable.Pointer;
        int blocks = n / 32;
        int prefetchStride = 4 * TFormat.Bytes;
        byte* next = w + 4 * rowBytes;
        Vector256<float>* acc = stackalloc Vector256<float>[4 * BatchedDecode.MaxInputs];
        Vector256<float>* v = stackalloc Vector256<float>[4 * 5]; // per row: four value vectors, then the scale
        for (int i = 0; i < 4 * nBatch; i++) acc[i] = default;
        for (int b = 0; b < blocks; b++)
        {
            for (int line = 0; line < prefetchStride; line += 64) System.Runtime.Intrinsics.X86.Sse.Prefetch0(next + b * prefetchStride + line);
            int at = b * TFormat.Bytes;
            for (int r = 0; r < 4; r++)
            {
                byte* block = w + r * rowBytes + at;
                (v[5 * r], v[5 * r + 1], v[5 * r + 2], v[5 * r + 3]) = TFormat.StoredValues8(block);
                v[5 * r + 4] = Vector256.Create(HalfTable.ToSingle(halves, ref *block));
            }
            float* xb = x + b * 32;
            Vector256<float>* a = acc;
            for (int i = 0; i < nBatch; i++, xb += n, a += 4)
            {
                var x0 = Vector256.Load(xb);
                var x1 = Vector256.Load(xb + 8);
                var x2 = Vector256.Load(xb + 16);
                var x3 = Vector256.Load(xb + 24);
                Vector256<float> offset = TFormat.Offset(x0 + x1 + x2 + x3);
                a[0] = BlockTimes(v, x0, x1, x2, x3, offset, a[0]);
                a[1] = BlockTimes(v + 5, x0, x1, x2, x3, offset, a[1]);
                a[2] = BlockTimes(v + 10, x0, x1, x2, x3, offset, a[2]);
                a[3] = BlockTimes(v + 15, x0, x1, x2, x3, offset, a[3]);
            }
        }
        for (int i = 0; i < nBatch; i++)
        {
            float* yi = y + i * yStride;
            yi[0] = Vector256.Sum(acc[4 * i]); yi[1] = Vector256.Sum(acc[4 * i + 1]); yi[2] = Vector256.Sum(acc[4 * i + 2]); yi[3] = Vector256.Sum(acc[4 * i + 3]);
        }
    }

    /// <summary>
    /// The chain of <see cref="BlockTimes{TFormat}(byte*, Vector512{float}, Vector512{float}, Vector512{float}, float*, Vector512{float})"/>
    /// on values already unpacked; the two must stay the same expression (the batched tests compare bit for bit).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> BlockTimes(Vector512<float> lower, Vector512<float> upper, Vector512<float> d, Vector512<float> x0, Vector512<float> x1,
                                              Vector512<float> offset, Vector512<float> total)
    {
        Vector512<float> sum = Vector512.FusedMultiplyAdd(upper, x1, Vector512.FusedMultiplyAdd(lower, x0, offset));
        return Vector512.FusedMultiplyAdd(sum, d, total);
    }

    /// <summary>The 8-lane chain of the AVX2 BlockTimes on a row's unpacked values v[0…3] and scale v[4].</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> BlockTimes(Vector256<float>* v, Vector256<float> x0, Vector256<float> x1, Vector256<float> x2, Vector256<float> x3,
                                              Vector256<float> offset, Vector256<float> total)
    {
        Vector256<float> even = Vector256.FusedMultiplyAdd(v[2], x2, Vector256.FusedMultiplyAdd(v[0], x0, offset));
        Vector256<float> odd = Vector256.FusedMultiplyAdd(v[3], x3, v[1] * x1);
        return Vector256.FusedMultiplyAdd(even + odd, v[4], total);
    }
}
