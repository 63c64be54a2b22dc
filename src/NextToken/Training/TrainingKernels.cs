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

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void MatMul(float* a, float* b, float* c, int m, int k, int n, bool accumulate, int threads)
    {
        var job = MatMulJob.ForThisThread;
        job.A = a; job.B = b; job.C = c; job.M = m; job.K = k; job.N = n; job.Accumulate = accumulate;
        int blocks = (m + RowBlock - 1) / RowBlock;
        // Enough chunks to balance two to a few threads, each still several rows of work.
        int chunks = Math.Min(blocks, Math.Max(1, threads) * 8);
        job.BlocksPerChunk = (blocks + chunks - 1) / chunks;
        chunks = (blocks + job.BlocksPerChunk - 1) / job.BlocksPerChunk;
        WorkerPool.Shared.Run(job, chunks, threads);
    }

    public static void MatMul(float[] a, float[] b, float[] c, int m, int k, int n, bool accumulate, int threads)
    {
        if (a.Length < (long)m * k || b.Length < (long)k * n || c.Length < (long)m * n)
            throw new ArgumentException($"matmul [{m},{k}]·[{k},{n}]: operands of {a.Length}, {b.Length}, {c.Length} values");
        fixed (float* pa = a, pb = b, pc = c) MatMul(pa, pb, pc, m, k, n, accumulate, threads);
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
        public int M, K, N, BlocksPerChunk;
        public bool Accumulate;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Execute(int chunk)
        {
            int rowStart = chunk * BlocksPerChunk * RowBlock;
            int rowEnd = Math.Min(M, rowStart + BlocksPerChunk * RowBlock);
            for (int i = rowStart; i < rowEnd; i += RowBlock)
            {
                int rows = Math.Min(RowBlock, rowEnd - i);
                if (rows == RowBlock && Vector256.IsHardwareAccelerated) FourRows(i);
                else for (int r = i; r < i + rows; r++) OneRow(r);
            }
        }

        /// <summary>Four rows of C, 16 columns at a time in eight accumulators: each B load serves four rows.</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private void FourRows(int i)
        {
            int k = K, n = N;
            float* a0 = A + (long)i * k, a1 = a0 + k, a2 = a1 + k, a3 = a2 + k;
            float* c0 = C + (long)i * n, c1 = c0 + n, c2 = c1 + n, c3 = c2 + n;
            int j = 0;
            for (; j + 16 <= n; j += 16)
            {
                Vector256<float> s00, s01, s10, s11, s20, s21, s30, s31;
                if (Accumulate)
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
                float* bp = B + j;
                for (int p = 0; p < k; p++, bp += n)
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
            if (j < n)
                for (int r = 0; r < RowBlock; r++) Tail(i + r, j);
        }

        private void OneRow(int i) => Tail(i, 0);

        /// <summary>Columns [j0, N) of row i, scalar.</summary>
        private void Tail(int i, int j0)
        {
            float* a = A + (long)i * K, c = C + (long)i * N;
            for (int j = j0; j < N; j++)
            {
                float sum = Accumulate ? c[j] : 0f;
                float* bp = B + j;
                for (int p = 0; p < K; p++, bp += N) sum = MathF.FusedMultiplyAdd(a[p], *bp, sum);
                c[j] = sum;
            }
        }
    }
}
