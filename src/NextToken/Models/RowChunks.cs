using NextToken.Kernels;

namespace NextToken.Models;

/// <summary>
/// Row-wise work of a prompt split for the worker pool: two chunks per thread from <see cref="ParallelRows"/> rows,
/// else one chunk on the calling thread (decode). Each row is computed by the same calls whatever the split, so the
/// results do not depend on the thread count.
/// </summary>
internal abstract class RowChunks : IParallelWork
{
    /// <summary>Fewer rows than this run on the calling thread: a parallel region costs microseconds, a row well under one.</summary>
    private const int ParallelRows = 16;

    private int _rows, _chunks, _rowsPerChunk, _threads;

    protected void Split(int rows, int threads)
    {
        _rows = rows;
        _threads = threads;
        int usable = Math.Min(threads, WorkerPool.Shared.Threads);
        // Two chunks per thread, so a thread that lost its core for a while leaves less for the others to wait on.
        _chunks = rows < ParallelRows || usable <= 1 ? 1 : Math.Min(rows, 2 * usable);
        _rowsPerChunk = (rows + _chunks - 1) / _chunks;
        _chunks = (rows + _rowsPerChunk - 1) / _rowsPerChunk;
    }

    protected void RunChunks()
    {
        if (_chunks == 1) Execute(0);
        else WorkerPool.Shared.Run(this, _chunks, _threads);
    }

    public void Execute(int chunk)
    {
        int from = chunk * _rowsPerChunk, to = Math.Min(_rows, from + _rowsPerChunk);
        if (from < to) Rows(from, to);
    }

    /// <summary>Rows [from, to).</summary>
    protected abstract void Rows(int from, int to);
}
