using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using NextToken.Tensors;

namespace NextToken.Kernels;

/// <summary>
/// The prompt matmul with AVX-512 or AVX2, weights as the vector operand (as BLIS's and llamafile's kernels): per block of
/// <see cref="RowBlock"/> weight rows and slice of <see cref="KSlice"/> values of k, the rows are converted to float32 once
/// and turned into <c>[k, RowBlock]</c> (kept in L1); the batch is packed once per matmul into tiles of
/// <see cref="InputTile"/> inputs (<c>[nIn, InputTile]</c>), and each tile walks its slice broadcasting one input per row
/// pair: with AVX-512 32 rows × 12 inputs in 24 accumulators (per k 2 weight loads, 12 broadcasts, 24 FMAs), with AVX2
/// 16 × 6 in 12. Results land as y's own rows, so nothing is turned around at the end.
/// </summary>
/// <remarks>
/// Issue #13, sixteenth session, on an AMD EPYC Zen 4 (512-bit FMAs at the 256-bit rate, 111 GFLOP/s per core both ways;
/// 32 KB L1): the earlier layout — 6 weight rows broadcast against 64 (AVX2: 16) packed inputs, streaming a 128 KB (32 KB)
/// input panel from L2 per tile, 256 (64) bytes per k — against this one's 48 (24) bytes per k, <c>bench -- --panel-rate</c>
/// (one thread, CPU time, 128 inputs; 1.1B's 2048 → 5632, 5632 → 2048 and GPT-2's 768 → 3072, F32 and F16): AVX2 77–93 →
/// 79–95 GFLOP/s, faster in 12 of 12 alternating pairs (F16 2048 → 5632: 88.9 / 86.4 → 94.9 / 92.0); AVX-512 even (90–97
/// both, the FMA pipes' 85%). A slice of 128 k for AVX-512 (16 KB) against 256 (32 KB, the whole L1 here): even (K-quant rows need 256).
/// Each output is one FMA chain over k in order, as in every other float path, so results are bit-identical to them.
/// </remarks>
internal static unsafe class PanelMatMul
{
    /// <summary>Output rows per tile.</summary>
    public static int RowTile => RowBlock;

    /// <summary>Weight rows per vector tile: two vectors of rows, 32 with AVX-512, 16 with AVX2.</summary>
    private static int RowBlock => Vector512.IsHardwareAccelerated ? 32 : 16;

    /// <summary>Inputs per vector tile, each broadcast: 12 with AVX-512 (24 accumulators of 32), 6 with AVX2 (12 of 16).</summary>
    private static int InputTile => Vector512.IsHardwareAccelerated ? 12 : 6;

    /// <summary>
    /// Values of k per weight slice: 256, the largest quantization block, so a slice of a stored row converts on its own;
    /// its packed weights ([KSlice, RowBlock], 32 KB with AVX-512, 16 KB with AVX2) stay in L1.
    /// </summary>
    private const int KSlice = 256;

    /// <summary>Fewer inputs than this are served better by the 4×4 tile and row-dot kernels (packing would not pay).</summary>
    public const int MinBatch = 16;

    /// <summary>AVX-512 tiles of 32 × 12, or AVX2 tiles of 16 × 6.</summary>
    public static bool IsSupported => Vector512.IsHardwareAccelerated ||
        (Vector256.IsHardwareAccelerated && System.Runtime.Intrinsics.X86.Avx2.IsSupported && System.Runtime.Intrinsics.X86.Fma.IsSupported);

    /// <summary>Inputs rounded up to whole tiles.</summary>
    public static int Padded(int nBatch) => (nBatch + InputTile - 1) / InputTile * InputTile;

    /// <summary>x [nBatch, nIn] → tiles of <see cref="InputTile"/> inputs, each <c>[nIn, InputTile]</c>, padding inputs zero.</summary>
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
        // Tiles of InputTile inputs, [nIn, InputTile] each: the k-th step of a tile broadcasts InputTile consecutive floats.
        int width = InputTile;
        for (int t0 = 0; t0 < padded; t0 += width)
        {
            float* tile = packed + (long)t0 * nIn;
            for (int j = 0; j < width; j++)
            {
                int t = t0 + j;
                float* column = tile + j;
                if (t < nBatch)
                {
                    float* source = x + (long)t * nIn;
                    for (int k = kStart; k < kStop; k++) column[(long)k * width] = source[k];
                }
                else
                    for (int k = kStart; k < kStop; k++) column[(long)k * width] = 0;
            }
        }
    }

    [ThreadStatic] private static float[]? _sliceRows, _sliceVectors, _outputTile;

    /// <summary>
    /// Output rows [rowStart, rowEnd) with the weights as the vector operand: per block of <see cref="RowBlock"/> rows and
    /// slice of <see cref="KSlice"/> k, the weights are converted once into <c>[k, RowBlock]</c> (L1-resident), and each tile of
    /// <see cref="InputTile"/> inputs streams its <c>[k, InputTile]</c> panel, broadcasting each input. Per k a tile loads two
    /// weight vectors and broadcasts 12 (6) inputs for 24 (12) FMAs, so the stream from L2 is 48 (24) bytes per k instead of
    /// 256 (64) when six broadcast weight rows met 64 (16) packed inputs, and the results land as y's rows (<c>[input, row]</c>), with nothing to turn around.
    /// Each output is the same FMA chain over k in order as every other float path, so results are bit-identical to them.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Forward(in TensorData weight, float* packed, int nBatch, float* y, int rowStart, int rowEnd)
    {
        int nIn = weight.RowLength, nOut = weight.RowCount, padded = Padded(nBatch), block = RowBlock, width = InputTile;
        long rowBytes = weight.RowBytes;
        float[] sliceRows = _sliceRows is { } a && a.Length >= block * KSlice ? a : _sliceRows = new float[block * KSlice];
        float[] sliceVectors = _sliceVectors is { } b && b.Length >= block * KSlice ? b : _sliceVectors = new float[block * KSlice];
        float[] outputTile = _outputTile is { } c && c.Length >= padded * block ? c : _outputTile = new float[padded * block];
        bool wide = Vector512.IsHardwareAccelerated;
        fixed (float* rowsBuffer = sliceRows)
        fixed (float* w = sliceVectors)
        fixed (float* results = outputTile)
        {
            for (int o = rowStart; o < rowEnd; o += block)
            {
                int rows = Math.Min(block, rowEnd - o);
                for (int k0 = 0; k0 < nIn; k0 += KSlice)
                {
                    int kLength = Math.Min(KSlice, nIn - k0);
                    PackWeights(weight, o, rows, k0, kLength, rowsBuffer, w);
                    // The next slice's stored rows are fetched while this one computes, a share per tile (the hardware
                    // prefetcher stops at the 4 KB pages of the mapped file and would not cross from row to row).
                    (int nextO, int nextK) = k0 + KSlice < nIn ? (o, k0 + KSlice) : (o + block, 0);
                    int nextRows = Math.Min(block, rowEnd - nextO);
                    long nextOffset = GgmlTypeInfo.RowBytes(weight.Type, nextK), nextBytes = GgmlTypeInfo.RowBytes(weight.Type, Math.Min(KSlice, nIn - nextK));
                    int tiles = padded / width, linesPerRow = (int)((nextBytes + 63) / 64), lines = nextRows > 0 ? nextRows * linesPerRow : 0;
                    int line = 0, linesPerTile = (lines + tiles - 1) / tiles;
                    bool accumulate = k0 > 0;
                    for (int t0 = 0; t0 < padded; t0 += width)
                    {
                        if (Sse.IsSupported)
                            for (int end = Math.Min(lines, line + linesPerTile); line < end; line++)
                                Sse.Prefetch0(weight.Data + (nextO + line / linesPerRow) * rowBytes + nextOffset + (line % linesPerRow) * 64L);
                        float* x = packed + (long)t0 * nIn + (long)k0 * width;
                        if (wide) Tile32x12(w, x, kLength, results + t0 * block, accumulate);
                        else Tile16x6(w, x, kLength, results + t0 * block, accumulate);
                    }
                }
                for (int t = 0; t < nBatch; t++)
                    new ReadOnlySpan<float>(results + t * block, rows).CopyTo(new Span<float>(y + (long)t * nOut + o, rows));
            }
        }
    }

    /// <summary>
    /// Rows o … o + rows − 1, values k0 … k0 + kLength − 1, as <c>[kLength, RowBlock]</c> floats at <paramref name="w"/> (rows past
    /// <paramref name="rows"/> zero): converted row by row into <paramref name="rowsBuffer"/> (float32 read in place when the block
    /// is whole), then turned around in 16 × 16 squares.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void PackWeights(in TensorData weight, int o, int rows, int k0, int kLength, float* rowsBuffer, float* w)
    {
        int block = RowBlock;
        long rowBytes = weight.RowBytes, sliceOffset = GgmlTypeInfo.RowBytes(weight.Type, k0), sliceBytes = GgmlTypeInfo.RowBytes(weight.Type, kLength);
        float* source;
        long stride;
        if (weight.Type == GgmlType.F32 && rows == block)
        {
            source = (float*)(weight.Data + o * rowBytes + sliceOffset);
            stride = rowBytes / sizeof(float);
        }
        else
        {
            source = rowsBuffer;
            stride = KSlice;
            for (int r = 0; r < block; r++)
            {
                var destination = new Span<float>(rowsBuffer + r * KSlice, kLength);
                if (r < rows) RowConvert.ToSingle(weight.Type, new ReadOnlySpan<byte>(weight.Data + (o + r) * rowBytes + sliceOffset, (int)sliceBytes), destination);
                else destination.Clear();
            }
        }
        int whole = Avx512F.IsSupported || Avx.IsSupported ? kLength & ~15 : 0;
        for (int r0 = 0; r0 < block; r0 += 16)
            for (int k = 0; k < whole; k += 16)
                Transpose16(source + r0 * stride + k, stride, w + (long)k * block + r0, block);
        for (int k = whole; k < kLength; k++)
            for (int r = 0; r < block; r++)
                w[(long)k * block + r] = source[r * stride + k];
    }

    /// <summary>c[t·32 + r] (+)= Σ_k w[k·32 + r] · x[k·12 + t] for 32 rows and 12 inputs: per k two weight loads and 12 broadcasts for 24 FMAs.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Tile32x12(float* w, float* x, int n, float* c, bool accumulate)
    {
        Vector512<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default, c30 = default, c31 = default;
        Vector512<float> c40 = default, c41 = default, c50 = default, c51 = default, c60 = default, c61 = default, c70 = default, c71 = default;
        Vector512<float> c80 = default, c81 = default, c90 = default, c91 = default, ca0 = default, ca1 = default, cb0 = default, cb1 = default;
        if (accumulate)
        {
            c00 = Vector512.Load(c); c01 = Vector512.Load(c + 16); c10 = Vector512.Load(c + 32); c11 = Vector512.Load(c + 48);
            c20 = Vector512.Load(c + 64); c21 = Vector512.Load(c + 80); c30 = Vector512.Load(c + 96); c31 = Vector512.Load(c + 112);
            c40 = Vector512.Load(c + 128); c41 = Vector512.Load(c + 144); c50 = Vector512.Load(c + 160); c51 = Vector512.Load(c + 176);
            c60 = Vector512.Load(c + 192); c61 = Vector512.Load(c + 208); c70 = Vector512.Load(c + 224); c71 = Vector512.Load(c + 240);
            c80 = Vector512.Load(c + 256); c81 = Vector512.Load(c + 272); c90 = Vector512.Load(c + 288); c91 = Vector512.Load(c + 304);
            ca0 = Vector512.Load(c + 320); ca1 = Vector512.Load(c + 336); cb0 = Vector512.Load(c + 352); cb1 = Vector512.Load(c + 368);
        }
        for (int k = 0; k < n; k++, w += 32, x += 12)
        {
            Vector512<float> a0 = Vector512.Load(w), a1 = Vector512.Load(w + 16);
            Vector512<float> b = Vector512.Create(x[0]);
            c00 = Vector512.FusedMultiplyAdd(a0, b, c00); c01 = Vector512.FusedMultiplyAdd(a1, b, c01);
            b = Vector512.Create(x[1]);
            c10 = Vector512.FusedMultiplyAdd(a0, b, c10); c11 = Vector512.FusedMultiplyAdd(a1, b, c11);
            b = Vector512.Create(x[2]);
            c20 = Vector512.FusedMultiplyAdd(a0, b, c20); c21 = Vector512.FusedMultiplyAdd(a1, b, c21);
            b = Vector512.Create(x[3]);
            c30 = Vector512.FusedMultiplyAdd(a0, b, c30); c31 = Vector512.FusedMultiplyAdd(a1, b, c31);
            b = Vector512.Create(x[4]);
            c40 = Vector512.FusedMultiplyAdd(a0, b, c40); c41 = Vector512.FusedMultiplyAdd(a1, b, c41);
            b = Vector512.Create(x[5]);
            c50 = Vector512.FusedMultiplyAdd(a0, b, c50); c51 = Vector512.FusedMultiplyAdd(a1, b, c51);
            b = Vector512.Create(x[6]);
            c60 = Vector512.FusedMultiplyAdd(a0, b, c60); c61 = Vector512.FusedMultiplyAdd(a1, b, c61);
            b = Vector512.Create(x[7]);
            c70 = Vector512.FusedMultiplyAdd(a0, b, c70); c71 = Vector512.FusedMultiplyAdd(a1, b, c71);
            b = Vector512.Create(x[8]);
            c80 = Vector512.FusedMultiplyAdd(a0, b, c80); c81 = Vector512.FusedMultiplyAdd(a1, b, c81);
            b = Vector512.Create(x[9]);
            c90 = Vector512.FusedMultiplyAdd(a0, b, c90); c91 = Vector512.FusedMultiplyAdd(a1, b, c91);
            b = Vector512.Create(x[10]);
            ca0 = Vector512.FusedMultiplyAdd(a0, b, ca0); ca1 = Vector512.FusedMultiplyAdd(a1, b, ca1);
            b = Vector512.Create(x[11]);
            cb0 = Vector512.FusedMultiplyAdd(a0, b, cb0); cb1 = Vector512.FusedMultiplyAdd(a1, b, cb1);
        }
        c00.Store(c); c01.Store(c + 16); c10.Store(c + 32); c11.Store(c + 48);
        c20.Store(c + 64); c21.Store(c + 80); c30.Store(c + 96); c31.Store(c + 112);
        c40.Store(c + 128); c41.Store(c + 144); c50.Store(c + 160); c51.Store(c + 176);
        c60.Store(c + 192); c61.Store(c + 208); c70.Store(c + 224); c71.Store(c + 240);
        c80.Store(c + 256); c81.Store(c + 272); c90.Store(c + 288); c91.Store(c + 304);
        ca0.Store(c + 320); ca1.Store(c + 336); cb0.Store(c + 352); cb1.Store(c + 368);
    }

    /// <summary>As <see cref="Tile32x12"/> with AVX2: 16 rows and 6 inputs, per k two weight loads and 6 broadcasts for 12 FMAs.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Tile16x6(float* w, float* x, int n, float* c, bool accumulate)
    {
        Vector256<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default;
        Vector256<float> c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default;
        if (accumulate)
        {
            c00 = Vector256.Load(c); c01 = Vector256.Load(c + 8); c10 = Vector256.Load(c + 16); c11 = Vector256.Load(c + 24);
            c20 = Vector256.Load(c + 32); c21 = Vector256.Load(c + 40); c30 = Vector256.Load(c + 48); c31 = Vector256.Load(c + 56);
            c40 = Vector256.Load(c + 64); c41 = Vector256.Load(c + 72); c50 = Vector256.Load(c + 80); c51 = Vector256.Load(c + 88);
        }
        for (int k = 0; k < n; k++, w += 16, x += 6)
        {
            Vector256<float> a0 = Vector256.Load(w), a1 = Vector256.Load(w + 8);
            Vector256<float> b = Vector256.Create(x[0]);
            c00 = Vector256.FusedMultiplyAdd(a0, b, c00); c01 = Vector256.FusedMultiplyAdd(a1, b, c01);
            b = Vector256.Create(x[1]);
            c10 = Vector256.FusedMultiplyAdd(a0, b, c10); c11 = Vector256.FusedMultiplyAdd(a1, b, c11);
            b = Vector256.Create(x[2]);
            c20 = Vector256.FusedMultiplyAdd(a0, b, c20); c21 = Vector256.FusedMultiplyAdd(a1, b, c21);
            b = Vector256.Create(x[3]);
            c30 = Vector256.FusedMultiplyAdd(a0, b, c30); c31 = Vector256.FusedMultiplyAdd(a1, b, c31);
            b = Vector256.Create(x[4]);
            c40 = Vector256.FusedMultiplyAdd(a0, b, c40); c41 = Vector256.FusedMultiplyAdd(a1, b, c41);
            b = Vector256.Create(x[5]);
            c50 = Vector256.FusedMultiplyAdd(a0, b, c50); c51 = Vector256.FusedMultiplyAdd(a1, b, c51);
        }
        c00.Store(c); c01.Store(c + 8); c10.Store(c + 16); c11.Store(c + 24);
        c20.Store(c + 32); c21.Store(c + 40); c30.Store(c + 48); c31.Store(c + 56);
        c40.Store(c + 64); c41.Store(c + 72); c50.Store(c + 80); c51.Store(c + 88);
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
}
