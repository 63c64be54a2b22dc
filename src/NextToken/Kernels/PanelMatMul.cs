using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using NextToken.Tensors;

namespace NextToken.Kernels;

/// <summary>
/// The prompt matmul with AVX-512 (or AVX2, with tiles of 6 × 16). The batch of inputs is transposed once per matmul into
/// panels of <see cref="PanelWidth"/> inputs, each <c>[nIn, width]</c>, so that for each k a tile's inputs sit in
/// consecutive vectors and a tile walks its panel front to back; a tile of 6 weight rows × 64 inputs then keeps 24
/// accumulators in registers, and every k costs 4 vector loads and 6 broadcasts of weights for 24 FMAs. Weight rows
/// are read in place (float32) or expanded once per tile (other types), and nothing is summed horizontally.
/// </summary>
internal static unsafe class PanelMatMul
{
    /// <summary>Output rows per tile.</summary>
    public const int RowTile = 6;

    /// <summary>Fewer inputs than this are served better by the 4×4 tile and row-dot kernels (packing would not pay).</summary>
    public const int MinBatch = 16;

    /// <summary>AVX-512 tiles of 6 × 64, or AVX2 tiles of 6 × 16 (12 accumulators in 16 registers, as BLIS's Haswell kernel).</summary>
    public static bool IsSupported => Vector512.IsHardwareAccelerated ||
        (Vector256.IsHardwareAccelerated && System.Runtime.Intrinsics.X86.Avx2.IsSupported && System.Runtime.Intrinsics.X86.Fma.IsSupported);

    /// <summary>Inputs rounded up to whole vectors.</summary>
    public static int Padded(int nBatch) => (nBatch + 15) & ~15;

    /// <summary>
    /// Inputs per packed panel: one tile's worth (64 with AVX-512, 16 with AVX2); the last panel holds the rest.
    /// Issue #13: with one <c>[nIn, nPadded]</c> matrix a tile's k steps were 512 bytes apart (128 inputs), which
    /// map to a few L1 sets and were refetched from L2 on every tile — the AVX2 kernel reached 69% of the FMA peak,
    /// 80% with its panel contiguous.
    /// </summary>
    private static int PanelWidth => Vector512.IsHardwareAccelerated ? 64 : 16;

    /// <summary>Where packed input <paramref name="b"/>'s panel starts, and that panel's width.</summary>
    private static (long Start, int Width) Panel(int b, int nIn, int padded)
    {
        int width = PanelWidth, first = b / width * width;
        return ((long)first * nIn, Math.Min(width, padded - first));
    }

    [ThreadStatic] private static float[]? _rows, _transposed;

    /// <summary>x [nBatch, nIn] → packed panels (<see cref="PanelWidth"/> inputs each, <c>[nIn, width]</c>), padding columns zero.</summary>
    public static void PackInputs(float* x, int nBatch, int nIn, float* packed, int threads)
    {
        int squares = (nIn + 15) / 16;
        if (threads <= 1 || squares < 8)
        {
            PackInputs(x, nBatch, nIn, packed, 0, nIn);
            return;
        }
        PackJob job = PackJob.ForThisThread;
        (job.X, job.NBatch, job.NIn, job.Packed, job.Squares, job.Chunks) = ((nint)x, nBatch, nIn, (nint)packed, squares, Math.Min(squares, threads * 4));
        WorkerPool.Shared.Run(job, job.Chunks, threads);
    }

    /// <summary>Columns k0 … kEnd−1 of the packed input, split across threads by <see cref="PackInputs(float*, int, int, float*, int)"/>.</summary>
    private sealed class PackJob : IParallelWork
    {
        [ThreadStatic] private static PackJob? _forThisThread;
        public static PackJob ForThisThread => _forThisThread ??= new PackJob();
        public nint X, Packed;
        public int NBatch, NIn, Squares, Chunks;

        public void Execute(int chunk)
        {
            int k0 = (int)((long)Squares * chunk / Chunks) * 16, kEnd = Math.Min(NIn, (int)((long)Squares * (chunk + 1) / Chunks) * 16);
            PackInputs((float*)X, NBatch, NIn, (float*)Packed, k0, kEnd);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void PackInputs(float* x, int nBatch, int nIn, float* packed, int kStart, int kStop)
    {
        int padded = Padded(nBatch);
        // 16 × 16 squares, so the 16 rows read and the 16 rows written stay in L1 (a plain
        // column-by-column transpose of a 3072-wide input misses on every read).
        for (int k0 = kStart; k0 < kStop; k0 += 16)
        {
            int kEnd = Math.Min(kStop, k0 + 16);
            for (int b0 = 0; b0 < padded; b0 += 16)
            {
                int bEnd = Math.Min(nBatch, b0 + 16);
                (long panelStart, int width) = Panel(b0, nIn, padded);
                float* square = packed + panelStart + (b0 - panelStart / nIn);
                if (kEnd - k0 == 16 && bEnd - b0 == 16 && (Avx512F.IsSupported || Avx.IsSupported))
                {
                    Transpose16(x + (long)b0 * nIn + k0, nIn, square + (long)k0 * width, width);
                    continue;
                }
                for (int k = k0; k < kEnd; k++)
                {
                    float* column = square + (long)k * width - b0;
                    int b = b0;
                    for (; b < bEnd; b++) column[b] = x[(long)b * nIn + k];
                    for (; b < b0 + 16; b++) column[b] = 0;
                }
            }
        }
    }

    /// <summary>
    /// Inputs are taken in slices of this many k so that the packed slice ([KBlock, 128] floats for a
    /// 128-token prompt, 256 KB) stays in L2 while every row tile passes over it. A multiple of 256,
    /// the largest quantization block, so a slice of a stored row converts on its own.
    /// </summary>
    private const int KBlock = 512;

    /// <summary>Output rows [rowStart, rowEnd) for every input, from inputs packed by <see cref="PackInputs"/>.</summary>
    /// <param name="y">[nBatch, nOut]</param>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Forward(in TensorData weight, float* packed, int nBatch, float* y, int rowStart, int rowEnd)
    {
        int nIn = weight.RowLength, nOut = weight.RowCount, padded = Padded(nBatch);
        int tiles = (rowEnd - rowStart + RowTile - 1) / RowTile;
        long rowBytes = weight.RowBytes;
        bool inPlace = weight.Type == GgmlType.F32;
        float[] rowBuffer = inPlace ? [] : _rows is { } b && b.Length >= RowTile * KBlock ? b : _rows = new float[RowTile * KBlock];
        // Results land transposed ([row][input], whole vectors) and are turned around once at the end:
        // scattering each tile straight into y would touch a new page per input when nOut is large.
        long transposedLength = (long)tiles * RowTile * padded;
        float[] transposedBuffer = _transposed is { } t && t.LongLength >= transposedLength ? t : _transposed = new float[transposedLength];
        float** w = stackalloc float*[RowTile];
        fixed (float* converted = rowBuffer)
        fixed (float* transposed = transposedBuffer)
        {
            for (int k0 = 0; k0 < nIn; k0 += KBlock)
            {
                int kLength = Math.Min(KBlock, nIn - k0);
                long sliceOffset = GgmlTypeInfo.RowBytes(weight.Type, k0), sliceBytes = GgmlTypeInfo.RowBytes(weight.Type, kLength);
                for (int o = rowStart; o < rowEnd; o += RowTile)
                {
                    int rows = Math.Min(RowTile, rowEnd - o);
                    for (int r = 0; r < RowTile; r++)
                    {
                        byte* source = weight.Data + (o + Math.Min(r, rows - 1)) * rowBytes + sliceOffset; // a short last tile repeats its last row; those outputs are dropped
                        if (inPlace) w[r] = (float*)source;
                        else
                        {
                            w[r] = converted + r * KBlock;
                            if (r < rows) RowConvert.ToSingle(weight.Type, new ReadOnlySpan<byte>(source, (int)sliceBytes), new Span<float>(w[r], kLength));
                        }
                    }
                    // The next tile's weights are fetched while this one computes (the hardware
                    // prefetcher stops at the 4 KB pages of the mapped file).
                    if (System.Runtime.Intrinsics.X86.Sse.IsSupported)
                        for (int r = 0; r < RowTile && o + RowTile + r < rowEnd; r++)
                            for (long line = 0; line < sliceBytes; line += 64)
                                System.Runtime.Intrinsics.X86.Sse.Prefetch0(weight.Data + (o + RowTile + r) * rowBytes + sliceOffset + line);
                    float* results = transposed + (long)(o - rowStart) * padded;
                    bool accumulate = k0 > 0;
                    for (int t0 = 0; t0 < padded;)
                    {
                        (long panelStart, int width) = Panel(t0, nIn, padded);
                        float* x = packed + panelStart + (long)k0 * width + (t0 - panelStart / nIn);
                        if (!Vector512.IsHardwareAccelerated)
                        {
                            Tile6x16Narrow(w[0], w[1], w[2], w[3], w[4], w[5], kLength, x, width, results + t0, padded, accumulate);
                            t0 += 16;
                        }
                        else if (width == 64)
                        {
                            Tile6x64(w[0], w[1], w[2], w[3], w[4], w[5], kLength, x, results + t0, padded, accumulate);
                            t0 += 64;
                        }
                        else
                        {
                            Tile6x16(w[0], w[1], w[2], w[3], w[4], w[5], kLength, x, width, results + t0, padded, accumulate);
                            t0 += 16;
                        }
                    }
                }
            }
            // 16 × 16 squares: turning the [row][input] results around a whole input at a time read 2 KB-apart
            // floats from a buffer larger than L1 (~5 ms of a 30 ms 5632 × 2048 × 128 matmul, issue #13).
            int rowCount = rowEnd - rowStart;
            for (int r0 = 0; r0 < rowCount; r0 += 16)
            {
                int rEnd = Math.Min(rowCount, r0 + 16);
                for (int i0 = 0; i0 < nBatch; i0 += 16)
                {
                    int iEnd = Math.Min(nBatch, i0 + 16);
                    if (rEnd - r0 == 16 && iEnd - i0 == 16 && (Avx512F.IsSupported || Avx.IsSupported))
                    {
                        Transpose16(transposed + (long)r0 * padded + i0, padded, y + (long)i0 * nOut + rowStart + r0, nOut);
                        continue;
                    }
                    for (int i = i0; i < iEnd; i++)
                    {
                        float* yi = y + (long)i * nOut + rowStart;
                        for (int r = r0; r < rEnd; r++) yi[r] = transposed[(long)r * padded + i];
                    }
                }
            }
        }
    }

    /// <summary>
    /// A 16 × 16 square of floats turned around in registers (destination row j = source column j): 32-bit and 64-bit
    /// interleaves put each column's four-row pieces into one 128-bit lane, two 128-bit lane shuffles gather them.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Transpose16(float* source, long sourceStride, float* destination, long destinationStride)
    {
        if (!Avx512F.IsSupported)
        {
            Transpose8(source, sourceStride, destination, destinationStride);
            Transpose8(source + 8, sourceStride, destination + 8 * destinationStride, destinationStride);
            Transpose8(source + 8 * sourceStride, sourceStride, destination + 8, destinationStride);
            Transpose8(source + 8 * sourceStride + 8, sourceStride, destination + 8 * destinationStride + 8, destinationStride);
            return;
        }
        (Vector512<float> u0, Vector512<float> u1, Vector512<float> u2, Vector512<float> u3) = Interleave4(source, sourceStride);
        (Vector512<float> u4, Vector512<float> u5, Vector512<float> u6, Vector512<float> u7) = Interleave4(source + 4 * sourceStride, sourceStride);
        (Vector512<float> u8, Vector512<float> u9, Vector512<float> u10, Vector512<float> u11) = Interleave4(source + 8 * sourceStride, sourceStride);
        (Vector512<float> u12, Vector512<float> u13, Vector512<float> u14, Vector512<float> u15) = Interleave4(source + 12 * sourceStride, sourceStride);
        Gather4(u0, u4, u8, u12, destination, destinationStride);
        Gather4(u1, u5, u9, u13, destination + destinationStride, destinationStride);
        Gather4(u2, u6, u10, u14, destination + 2 * destinationStride, destinationStride);
        Gather4(u3, u7, u11, u15, destination + 3 * destinationStride, destinationStride);
    }

    /// <summary>An 8 × 8 square turned around with AVX: the same interleaves in 128-bit lanes, then one lane exchange.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Transpose8(float* source, long sourceStride, float* destination, long destinationStride)
    {
        (Vector256<float> u0, Vector256<float> u1, Vector256<float> u2, Vector256<float> u3) = Interleave4Narrow(source, sourceStride);
        (Vector256<float> u4, Vector256<float> u5, Vector256<float> u6, Vector256<float> u7) = Interleave4Narrow(source + 4 * sourceStride, sourceStride);
        Avx.Permute2x128(u0, u4, 0x20).Store(destination);
        Avx.Permute2x128(u1, u5, 0x20).Store(destination + destinationStride);
        Avx.Permute2x128(u2, u6, 0x20).Store(destination + 2 * destinationStride);
        Avx.Permute2x128(u3, u7, 0x20).Store(destination + 3 * destinationStride);
        Avx.Permute2x128(u0, u4, 0x31).Store(destination + 4 * destinationStride);
        Avx.Permute2x128(u1, u5, 0x31).Store(destination + 5 * destinationStride);
        Avx.Permute2x128(u2, u6, 0x31).Store(destination + 6 * destinationStride);
        Avx.Permute2x128(u3, u7, 0x31).Store(destination + 7 * destinationStride);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static (Vector256<float>, Vector256<float>, Vector256<float>, Vector256<float>) Interleave4Narrow(float* r, long stride)
    {
        Vector256<float> r0 = Vector256.Load(r), r1 = Vector256.Load(r + stride), r2 = Vector256.Load(r + 2 * stride), r3 = Vector256.Load(r + 3 * stride);
        Vector256<double> t0 = Avx.UnpackLow(r0, r1).AsDouble(), t1 = Avx.UnpackHigh(r0, r1).AsDouble();
        Vector256<double> t2 = Avx.UnpackLow(r2, r3).AsDouble(), t3 = Avx.UnpackHigh(r2, r3).AsDouble();
        return (Avx.UnpackLow(t0, t2).AsSingle(), Avx.UnpackHigh(t0, t2).AsSingle(), Avx.UnpackLow(t1, t3).AsSingle(), Avx.UnpackHigh(t1, t3).AsSingle());
    }

    /// <summary>Rows 0–3 (<paramref name="stride"/> apart) as four vectors; vector j's 128-bit lane L holds column 4L + j.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static (Vector512<float>, Vector512<float>, Vector512<float>, Vector512<float>) Interleave4(float* r, long stride)
    {
        Vector512<float> r0 = Vector512.Load(r), r1 = Vector512.Load(r + stride), r2 = Vector512.Load(r + 2 * stride), r3 = Vector512.Load(r + 3 * stride);
        Vector512<double> t0 = Avx512F.UnpackLow(r0, r1).AsDouble(), t1 = Avx512F.UnpackHigh(r0, r1).AsDouble();
        Vector512<double> t2 = Avx512F.UnpackLow(r2, r3).AsDouble(), t3 = Avx512F.UnpackHigh(r2, r3).AsDouble();
        return (Avx512F.UnpackLow(t0, t2).AsSingle(), Avx512F.UnpackHigh(t0, t2).AsSingle(), Avx512F.UnpackLow(t1, t3).AsSingle(), Avx512F.UnpackHigh(t1, t3).AsSingle());
    }

    /// <summary>Columns j, 4 + j, 8 + j, 12 + j from the four row groups' vectors j (<see cref="Interleave4"/>), stored as destination rows 0, 4, 8, 12.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Gather4(Vector512<float> a, Vector512<float> b, Vector512<float> c, Vector512<float> d, float* destination, long stride)
    {
        Vector512<float> ab02 = Avx512F.Shuffle4x128(a, b, 0x88), ab13 = Avx512F.Shuffle4x128(a, b, 0xDD);
        Vector512<float> cd02 = Avx512F.Shuffle4x128(c, d, 0x88), cd13 = Avx512F.Shuffle4x128(c, d, 0xDD);
        Avx512F.Shuffle4x128(ab02, cd02, 0x88).Store(destination);
        Avx512F.Shuffle4x128(ab13, cd13, 0x88).Store(destination + 4 * stride);
        Avx512F.Shuffle4x128(ab02, cd02, 0xDD).Store(destination + 8 * stride);
        Avx512F.Shuffle4x128(ab13, cd13, 0xDD).Store(destination + 12 * stride);
    }

    /// <summary>
    /// y[r·stride + t] (+)= w_r · x_t over n values of k, for 6 weight rows and a panel of 64 packed inputs
    /// (k's 64 inputs consecutive, outputs' rows <paramref name="stride"/> apart); adds to y when <paramref name="accumulate"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Tile6x64(float* w0, float* w1, float* w2, float* w3, float* w4, float* w5, int nIn, float* x, float* y, int stride, bool accumulate)
    {
        Vector512<float> c00 = default, c01 = default, c02 = default, c03 = default;
        Vector512<float> c10 = default, c11 = default, c12 = default, c13 = default;
        Vector512<float> c20 = default, c21 = default, c22 = default, c23 = default;
        Vector512<float> c30 = default, c31 = default, c32 = default, c33 = default;
        Vector512<float> c40 = default, c41 = default, c42 = default, c43 = default;
        Vector512<float> c50 = default, c51 = default, c52 = default, c53 = default;
        if (accumulate)
        {
            float* yr = y;
            c00 = Vector512.Load(yr); c01 = Vector512.Load(yr + 16); c02 = Vector512.Load(yr + 32); c03 = Vector512.Load(yr + 48);
            yr += stride; c10 = Vector512.Load(yr); c11 = Vector512.Load(yr + 16); c12 = Vector512.Load(yr + 32); c13 = Vector512.Load(yr + 48);
            yr += stride; c20 = Vector512.Load(yr); c21 = Vector512.Load(yr + 16); c22 = Vector512.Load(yr + 32); c23 = Vector512.Load(yr + 48);
            yr += stride; c30 = Vector512.Load(yr); c31 = Vector512.Load(yr + 16); c32 = Vector512.Load(yr + 32); c33 = Vector512.Load(yr + 48);
            yr += stride; c40 = Vector512.Load(yr); c41 = Vector512.Load(yr + 16); c42 = Vector512.Load(yr + 32); c43 = Vector512.Load(yr + 48);
            yr += stride; c50 = Vector512.Load(yr); c51 = Vector512.Load(yr + 16); c52 = Vector512.Load(yr + 32); c53 = Vector512.Load(yr + 48);
        }
        for (int k = 0; k < nIn; k++, x += 64)
        {
            Vector512<float> x0 = Vector512.Load(x), x1 = Vector512.Load(x + 16), x2 = Vector512.Load(x + 32), x3 = Vector512.Load(x + 48);
            Vector512<float> v = Vector512.Create(w0[k]);
            c00 = Vector512.FusedMultiplyAdd(v, x0, c00); c01 = Vector512.FusedMultiplyAdd(v, x1, c01);
            c02 = Vector512.FusedMultiplyAdd(v, x2, c02); c03 = Vector512.FusedMultiplyAdd(v, x3, c03);
            v = Vector512.Create(w1[k]);
            c10 = Vector512.FusedMultiplyAdd(v, x0, c10); c11 = Vector512.FusedMultiplyAdd(v, x1, c11);
            c12 = Vector512.FusedMultiplyAdd(v, x2, c12); c13 = Vector512.FusedMultiplyAdd(v, x3, c13);
            v = Vector512.Create(w2[k]);
            c20 = Vector512.FusedMultiplyAdd(v, x0, c20); c21 = Vector512.FusedMultiplyAdd(v, x1, c21);
            c22 = Vector512.FusedMultiplyAdd(v, x2, c22); c23 = Vector512.FusedMultiplyAdd(v, x3, c23);
            v = Vector512.Create(w3[k]);
            c30 = Vector512.FusedMultiplyAdd(v, x0, c30); c31 = Vector512.FusedMultiplyAdd(v, x1, c31);
            c32 = Vector512.FusedMultiplyAdd(v, x2, c32); c33 = Vector512.FusedMultiplyAdd(v, x3, c33);
            v = Vector512.Create(w4[k]);
            c40 = Vector512.FusedMultiplyAdd(v, x0, c40); c41 = Vector512.FusedMultiplyAdd(v, x1, c41);
            c42 = Vector512.FusedMultiplyAdd(v, x2, c42); c43 = Vector512.FusedMultiplyAdd(v, x3, c43);
            v = Vector512.Create(w5[k]);
            c50 = Vector512.FusedMultiplyAdd(v, x0, c50); c51 = Vector512.FusedMultiplyAdd(v, x1, c51);
            c52 = Vector512.FusedMultiplyAdd(v, x2, c52); c53 = Vector512.FusedMultiplyAdd(v, x3, c53);
        }
        c00.Store(y); c01.Store(y + 16); c02.Store(y + 32); c03.Store(y + 48);
        y += stride; c10.Store(y); c11.Store(y + 16); c12.Store(y + 32); c13.Store(y + 48);
        y += stride; c20.Store(y); c21.Store(y + 16); c22.Store(y + 32); c23.Store(y + 48);
        y += stride; c30.Store(y); c31.Store(y + 16); c32.Store(y + 32); c33.Store(y + 48);
        y += stride; c40.Store(y); c41.Store(y + 16); c42.Store(y + 32); c43.Store(y + 48);
        y += stride; c50.Store(y); c51.Store(y + 16); c52.Store(y + 32); c53.Store(y + 48);
    }

    /// <summary>As <see cref="Tile6x64"/> for 16 packed inputs (the batch's last columns) of a panel <paramref name="width"/> wide.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Tile6x16(float* w0, float* w1, float* w2, float* w3, float* w4, float* w5, int nIn, float* x, int width, float* y, int stride, bool accumulate)
    {
        Vector512<float> c0 = default, c1 = default, c2 = default, c3 = default, c4 = default, c5 = default;
        if (accumulate)
        {
            c0 = Vector512.Load(y); c1 = Vector512.Load(y + stride); c2 = Vector512.Load(y + 2 * stride);
            c3 = Vector512.Load(y + 3 * stride); c4 = Vector512.Load(y + 4 * stride); c5 = Vector512.Load(y + 5 * stride);
        }
        for (int k = 0; k < nIn; k++, x += width)
        {
            Vector512<float> xk = Vector512.Load(x);
            c0 = Vector512.FusedMultiplyAdd(Vector512.Create(w0[k]), xk, c0);
            c1 = Vector512.FusedMultiplyAdd(Vector512.Create(w1[k]), xk, c1);
            c2 = Vector512.FusedMultiplyAdd(Vector512.Create(w2[k]), xk, c2);
            c3 = Vector512.FusedMultiplyAdd(Vector512.Create(w3[k]), xk, c3);
            c4 = Vector512.FusedMultiplyAdd(Vector512.Create(w4[k]), xk, c4);
            c5 = Vector512.FusedMultiplyAdd(Vector512.Create(w5[k]), xk, c5);
        }
        c0.Store(y); c1.Store(y + stride); c2.Store(y + 2 * stride); c3.Store(y + 3 * stride); c4.Store(y + 4 * stride); c5.Store(y + 5 * stride);
    }

    /// <summary>As <see cref="Tile6x16"/> with AVX2: per k, two loads of inputs and six broadcasts of weights for 12 FMAs.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Tile6x16Narrow(float* w0, float* w1, float* w2, float* w3, float* w4, float* w5, int nIn, float* x, int width, float* y, int stride, bool accumulate)
    {
        Vector256<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default;
        Vector256<float> c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default;
        if (accumulate)
        {
            float* yr = y;
            c00 = Vector256.Load(yr); c01 = Vector256.Load(yr + 8); yr += stride;
            c10 = Vector256.Load(yr); c11 = Vector256.Load(yr + 8); yr += stride;
            c20 = Vector256.Load(yr); c21 = Vector256.Load(yr + 8); yr += stride;
            c30 = Vector256.Load(yr); c31 = Vector256.Load(yr + 8); yr += stride;
            c40 = Vector256.Load(yr); c41 = Vector256.Load(yr + 8); yr += stride;
            c50 = Vector256.Load(yr); c51 = Vector256.Load(yr + 8);
        }
        for (int k = 0; k < nIn; k++, x += width)
        {
            Vector256<float> x0 = Vector256.Load(x), x1 = Vector256.Load(x + 8);
            Vector256<float> v = Vector256.Create(w0[k]);
            c00 = Vector256.FusedMultiplyAdd(v, x0, c00); c01 = Vector256.FusedMultiplyAdd(v, x1, c01);
            v = Vector256.Create(w1[k]);
            c10 = Vector256.FusedMultiplyAdd(v, x0, c10); c11 = Vector256.FusedMultiplyAdd(v, x1, c11);
            v = Vector256.Create(w2[k]);
            c20 = Vector256.FusedMultiplyAdd(v, x0, c20); c21 = Vector256.FusedMultiplyAdd(v, x1, c21);
            v = Vector256.Create(w3[k]);
            c30 = Vector256.FusedMultiplyAdd(v, x0, c30); c31 = Vector256.FusedMultiplyAdd(v, x1, c31);
            v = Vector256.Create(w4[k]);
            c40 = Vector256.FusedMultiplyAdd(v, x0, c40); c41 = Vector256.FusedMultiplyAdd(v, x1, c41);
            v = Vector256.Create(w5[k]);
            c50 = Vector256.FusedMultiplyAdd(v, x0, c50); c51 = Vector256.FusedMultiplyAdd(v, x1, c51);
        }
        c00.Store(y); c01.Store(y + 8); y += stride;
        c10.Store(y); c11.Store(y + 8); y += stride;
        c20.Store(y); c21.Store(y + 8); y += stride;
        c30.Store(y); c31.Store(y + 8); y += stride;
        c40.Store(y); c41.Store(y + 8); y += stride;
        c50.Store(y); c51.Store(y + 8);
    }
}
