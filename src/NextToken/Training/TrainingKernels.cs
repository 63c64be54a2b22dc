using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using NextToken.Kernels;

namespace NextToken.Training;

/// <summary>
/// The dense float32 matrix product training needs in all three directions (forward, input
/// gradient, weight gradient), in one layout: C[M,N] (+)= A[M,K] · B[K,N], all row-major. The
/// callers transpose the smaller operand once (weights or activations, O(size)) rather than have
/// three kernels. Rows of C are split across <see cref="WorkerPool"/>; every element of C is summed
/// in the same order whatever the thread count, so training is deterministic.
/// </summary>
public static unsafe class TrainingKernels
{
    private const int RowBlock = 4;
    /// <summary>Rows of B per pass: a 32-column panel of 128 rows (16 KB) stays in L1 while a chunk's row blocks reuse it.</summary>
    private const int KBlock = 128;
    /// <summary>Multiply-adds below which one thread does the whole product (about 20 µs of work).</summary>
    private const long SerialBelow = 1 << 18;

    /// <summary>Widest vector kernel this CPU runs: 512, 256, or 0 (scalar).</summary>
    public static int BestWidth => Vector512.IsHardwareAccelerated ? 512 : Vector256.IsHardwareAccelerated ? 256 : 0;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void MatMul(float* a, float* b, float* c, int m, int k, int n, bool accumulate, int threads) =>
        MatMul(a, b, c, m, k, n, accumulate, threads, BestWidth);

    /// <param name="width">512, 256 or 0: the kernel to use (tests pin each one).</param>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void MatMul(float* a, float* b, float* c, int m, int k, int n, bool accumulate, int threads, int width)
    {
        if (width == 512 && !Vector512.IsHardwareAccelerated || width == 256 && !Vector256.IsHardwareAccelerated)
            throw new PlatformNotSupportedException($"no {width}-bit vectors on this CPU");
        // A parallel region costs microseconds (more when the machine is busy): small products run on the caller alone.
        if ((long)m * k * n < SerialBelow) threads = 1;
        var job = MatMulJob.ForThisThread;
        job.A = a; job.B = b; job.C = c; job.M = m; job.K = k; job.N = n; job.Accumulate = accumulate; job.Width = width;
        int blocks = (m + RowBlock - 1) / RowBlock;
        // Enough chunks to balance two to a few threads, each still several rows of work.
        int chunks = Math.Min(blocks, Math.Max(1, threads) * 8);
        job.BlocksPerChunk = (blocks + chunks - 1) / chunks;
        chunks = (blocks + job.BlocksPerChunk - 1) / job.BlocksPerChunk;
        WorkerPool.Shared.Run(job, chunks, threads);
    }

    /// <summary>The same product on the calling thread only (for work already split across threads, such as attention heads).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void MatMulSerial(float* a, float* b, float* c, int m, int k, int n, bool accumulate)
    {
        var job = MatMulJob.ForThisThread;
        job.A = a; job.B = b; job.C = c; job.M = m; job.K = k; job.N = n; job.Accumulate = accumulate; job.Width = BestWidth;
        job.BlocksPerChunk = (m + RowBlock - 1) / RowBlock;
        job.Execute(0);
    }

    public static void MatMul(float[] a, float[] b, float[] c, int m, int k, int n, bool accumulate, int threads) =>
        MatMul(a, b, c, m, k, n, accumulate, threads, BestWidth);

    internal static void MatMul(float[] a, float[] b, float[] c, int m, int k, int n, bool accumulate, int threads, int width)
    {
        if (a.Length < (long)m * k || b.Length < (long)k * n || c.Length < (long)m * n)
            throw new ArgumentException($"matmul [{m},{k}]·[{k},{n}]: operands of {a.Length}, {b.Length}, {c.Length} values");
        fixed (float* pa = a, pb = b, pc = c) MatMul(pa, pb, pc, m, k, n, accumulate, threads, width);
    }

    /// <summary>Scalar reference of <see cref="MatMul(float*, float*, float*, int, int, int, bool, int)"/>, summing over k in order.</summary>
    public static void MatMulReference(float[] a, float[] b, float[] c, int m, int k, int n, bool accumulate)
    {
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                float sum = accumulate ? c[i * n + j] : 0f;
                for (int p = 0; p < k; p++) sum += a[i * k + p] * b[p * n + j];
                c[i * n + j] = sum;
            }
    }

    private const float GeluS = 0.7978845608028654f, GeluK = 0.044715f;

    /// <summary>d ← d·gelu'(x) for GPT-2's tanh GELU, in place; tanh(u) computed as 1 − 2/(1 + e^(2u)), 16 or 8 values per step.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void GeluBackward(ReadOnlySpan<float> x, Span<float> d)
    {
        if (d.Length < x.Length) throw new ArgumentException("gradient shorter than x");
        int i = 0;
        fixed (float* px = x, pd = d)
        {
            if (Vector512.IsHardwareAccelerated)
                for (; i + 16 <= x.Length; i += 16)
                {
                    Vector512<float> v = Vector512.Load(px + i), v2 = v * v;
                    Vector512<float> u = Vector512.Create(GeluS) * Vector512.FusedMultiplyAdd(Vector512.Create(GeluK) * v2, v, v);
                    Vector512<float> th = Vector512<float>.One - Vector512.Create(2f) / (Vector512<float>.One + Vector512.Exp(u + u));
                    Vector512<float> sech2 = Vector512<float>.One - th * th;
                    Vector512<float> grad = Vector512.Create(0.5f) * (Vector512<float>.One + th)
                        + Vector512.Create(0.5f * GeluS) * v * sech2 * Vector512.FusedMultiplyAdd(Vector512.Create(3f * GeluK), v2, Vector512<float>.One);
                    (Vector512.Load(pd + i) * grad).Store(pd + i);
                }
            else if (Vector256.IsHardwareAccelerated)
                for (; i + 8 <= x.Length; i += 8)
                {
                    Vector256<float> v = Vector256.Load(px + i), v2 = v * v;
                    Vector256<float> u = Vector256.Create(GeluS) * Vector256.FusedMultiplyAdd(Vector256.Create(GeluK) * v2, v, v);
                    Vector256<float> th = Vector256<float>.One - Vector256.Create(2f) / (Vector256<float>.One + Vector256.Exp(u + u));
                    Vector256<float> sech2 = Vector256<float>.One - th * th;
                    Vector256<float> grad = Vector256.Create(0.5f) * (Vector256<float>.One + th)
                        + Vector256.Create(0.5f * GeluS) * v * sech2 * Vector256.FusedMultiplyAdd(Vector256.Create(3f * GeluK), v2, Vector256<float>.One);
                    (Vector256.Load(pd + i) * grad).Store(pd + i);
                }
        }
        GeluBackwardReference(x[i..], d[i..]);
    }

    /// <summary>Scalar reference of <see cref="GeluBackward"/>.</summary>
    public static void GeluBackwardReference(ReadOnlySpan<float> x, Span<float> d)
    {
        for (int i = 0; i < x.Length; i++)
        {
            float v = x[i];
            float th = MathF.Tanh(GeluS * (v + GeluK * v * v * v));
            d[i] *= 0.5f * (1f + th) + 0.5f * v * (1f - th * th) * GeluS * (1f + 3f * GeluK * v * v);
        }
    }

    /// <summary>dst[cols,rows] = srcᵀ for src[rows,cols].</summary>
    public static void Transpose(ReadOnlySpan<float> src, int rows, int cols, Span<float> dst)
    {
        const int Tile = 32;
        for (int r0 = 0; r0 < rows; r0 += Tile)
            for (int c0 = 0; c0 < cols; c0 += Tile)
            {
                int r1 = Math.Min(rows, r0 + Tile), c1 = Math.Min(cols, c0 + Tile);
                for (int r = r0; r < r1; r++)
                    for (int c = c0; c < c1; c++)
                        dst[c * rows + r] = src[r * cols + c];
            }
    }

    private sealed class MatMulJob : IParallelWork
    {
        [ThreadStatic] private static MatMulJob? _forThisThread;
        public static MatMulJob ForThisThread => _forThisThread ??= new MatMulJob();
        public float* A, B, C;
        public int M, K, N, BlocksPerChunk, Width;
        public bool Accumulate;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Execute(int chunk)
        {
            int rowStart = chunk * BlocksPerChunk * RowBlock;
            int rowEnd = Math.Min(M, rowStart + BlocksPerChunk * RowBlock);
            if (K == 0)
            {
                if (!Accumulate) for (int i = rowStart; i < rowEnd; i++) new Span<float>(C + (long)i * N, N).Clear();
                return;
            }
            for (int k0 = 0; k0 < K; k0 += KBlock)
            {
                int k1 = Math.Min(K, k0 + KBlock);
                bool accumulate = Accumulate || k0 > 0;
                for (int i = rowStart; i < rowEnd; i += RowBlock)
                {
                    int rows = Math.Min(RowBlock, rowEnd - i);
                    int j = 0;
                    if (rows == RowBlock)
                    {
                        if (Width == 512) j = FourRows512(i, k0, k1, accumulate);
                        if (Width >= 256) j = FourRows256(i, j, k0, k1, accumulate);
                    }
                    for (int r = i; r < i + rows; r++) Tail(r, j, k0, k1, accumulate);
                }
            }
        }

        /// <summary>Four rows of C, 32 columns at a time in eight 512-bit accumulators; returns the first column not done.</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private int FourRows512(int i, int k0, int k1, bool accumulate)
        {
            int k = K, n = N;
            float* a0 = A + (long)i * k, a1 = a0 + k, a2 = a1 + k, a3 = a2 + k;
            float* c0 = C + (long)i * n, c1 = c0 + n, c2 = c1 + n, c3 = c2 + n;
            int j = 0;
            for (; j + 32 <= n; j += 32)
            {
                Vector512<float> s00, s01, s10, s11, s20, s21, s30, s31;
                if (accumulate)
                {
                    s00 = Vector512.Load(c0 + j); s01 = Vector512.Load(c0 + j + 16);
                    s10 = Vector512.Load(c1 + j); s11 = Vector512.Load(c1 + j + 16);
                    s20 = Vector512.Load(c2 + j); s21 = Vector512.Load(c2 + j + 16);
                    s30 = Vector512.Load(c3 + j); s31 = Vector512.Load(c3 + j + 16);
                }
                else
                {
                    s00 = s01 = s10 = s11 = s20 = s21 = s30 = s31 = Vector512<float>.Zero;
                }
                float* bp = B + (long)k0 * n + j;
                for (int p = k0; p < k1; p++, bp += n)
                {
                    Vector512<float> b0 = Vector512.Load(bp), b1 = Vector512.Load(bp + 16);
                    Vector512<float> x = Vector512.Create(a0[p]);
                    s00 = Vector512.FusedMultiplyAdd(x, b0, s00); s01 = Vector512.FusedMultiplyAdd(x, b1, s01);
                    x = Vector512.Create(a1[p]);
                    s10 = Vector512.FusedMultiplyAdd(x, b0, s10); s11 = Vector512.FusedMultiplyAdd(x, b1, s11);
                    x = Vector512.Create(a2[p]);
                    s20 = Vector512.FusedMultiplyAdd(x, b0, s20); s21 = Vector512.FusedMultiplyAdd(x, b1, s21);
                    x = Vector512.Create(a3[p]);
                    s30 = Vector512.FusedMultiplyAdd(x, b0, s30); s31 = Vector512.FusedMultiplyAdd(x, b1, s31);
                }
                s00.Store(c0 + j); s01.Store(c0 + j + 16);
                s10.Store(c1 + j); s11.Store(c1 + j + 16);
                s20.Store(c2 + j); s21.Store(c2 + j + 16);
                s30.Store(c3 + j); s31.Store(c3 + j + 16);
            }
            return j;
        }

        /// <summary>Four rows of C from column j0, 16 columns at a time in eight 256-bit accumulators: each B load serves four rows.</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private int FourRows256(int i, int j0, int k0, int k1, bool accumulate)
        {
            int k = K, n = N;
            float* a0 = A + (long)i * k, a1 = a0 + k, a2 = a1 + k, a3 = a2 + k;
            float* c0 = C + (long)i * n, c1 = c0 + n, c2 = c1 + n, c3 = c2 + n;
            int j = j0;
            for (; j + 16 <= n; j += 16)
            {
                Vector256<float> s00, s01, s10, s11, s20, s21, s30, s31;
                if (accumulate)
                {
                    s00 = Vector256.Load(c0 + j); s01 = Vector256.Load(c0 + j + 8);
                    s10 = Vector256.Load(c1 + j); s11 = Vector256.Load(c1 + j + 8);
                    s20 = Vector256.Load(c2 + j); s21 = Vector256.Load(c2 + j + 8);
                    s30 = Vector256.Load(c3 + j); s31 = Vector256.Load(c3 + j + 8);
                }
                else
                {
                    s00 = s01 = s10 = s11 = s20 = s21 = s30 = s31 = Vector256<float>.Zero;
                }
                float* bp = B + (long)k0 * n + j;
                for (int p = k0; p < k1; p++, bp += n)
                {
                    Vector256<float> b0 = Vector256.Load(bp), b1 = Vector256.Load(bp + 8);
                    Vector256<float> x = Vector256.Create(a0[p]);
                    s00 = Vector256.FusedMultiplyAdd(x, b0, s00); s01 = Vector256.FusedMultiplyAdd(x, b1, s01);
                    x = Vector256.Create(a1[p]);
                    s10 = Vector256.FusedMultiplyAdd(x, b0, s10); s11 = Vector256.FusedMultiplyAdd(x, b1, s11);
                    x = Vector256.Create(a2[p]);
                    s20 = Vector256.FusedMultiplyAdd(x, b0, s20); s21 = Vector256.FusedMultiplyAdd(x, b1, s21);
                    x = Vector256.Create(a3[p]);
                    s30 = Vector256.FusedMultiplyAdd(x, b0, s30); s31 = Vector256.FusedMultiplyAdd(x, b1, s31);
                }
                s00.Store(c0 + j); s01.Store(c0 + j + 8);
                s10.Store(c1 + j); s11.Store(c1 + j + 8);
                s20.Store(c2 + j); s21.Store(c2 + j + 8);
                s30.Store(c3 + j); s31.Store(c3 + j + 8);
            }
            return j;
        }

        /// <summary>Columns [j0, N) of row i over k in [k0, k1), scalar.</summary>
        private void Tail(int i, int j0, int k0, int k1, bool accumulate)
        {
            float* a = A + (long)i * K, c = C + (long)i * N;
            for (int j = j0; j < N; j++)
            {
                float sum = accumulate ? c[j] : 0f;
                float* bp = B + (long)k0 * N + j;
                for (int p = k0; p < k1; p++, bp += N) sum = MathF.FusedMultiplyAdd(a[p], *bp, sum);
                c[j] = sum;
            }
        }
    }
}
