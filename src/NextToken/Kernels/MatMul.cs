using System.Buffers;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using NextToken.Tensors;

namespace NextToken.Kernels;

/// <summary>
/// y = x · Wᵀ for a weight matrix W stored <c>[out][in]</c> (ggml dims <c>[in, out]</c>) and a batch
/// of input rows. Output rows are split across threads; each weight row is read once per call and
/// applied to every input row, so a prompt batch reads the weights once.
/// </summary>
/// <remarks>
/// Hot kernel methods throughout <c>NextToken.Kernels</c> are marked
/// <see cref="MethodImplOptions.AggressiveOptimization"/>: tiered compilation would otherwise run a
/// first prompt (tens of calls per kernel) on unoptimized code before promoting it.
/// </remarks>
public static unsafe class MatMul
{
    /// <param name="weight">[nOut, nIn]</param>
    /// <param name="input">[nBatch, nIn]</param>
    /// <param name="output">[nBatch, nOut]</param>
    /// <param name="quantizeActivations">
    /// Quantize the activations (approximate, faster): decode with <see cref="QuantizedActivations"/>
    /// for IQ4_XS weights (its prompts keep the exact float kernels), decode and prompts with <see cref="KQuantActivations"/> for Q2_K … Q6_K, and decode and prompts with
    /// <see cref="InterleavedBlock32"/> for Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 and IQ4_NL weights when <paramref name="interleaved"/> gives a place to keep the repacked copies
    /// (without one, their decode takes <see cref="QuantizedActivations"/> and prompts the float kernels; rows past a matrix's last group of eight take <see cref="QuantizedActivations"/> too;
    /// Q8_0 and IQ4_NL prompts without VNNI keep the float kernels: <see cref="InterleavedBlock32.RepacksPrompts"/>).
    /// </param>
    /// <param name="independentRows">
    /// Compute every input row exactly as a batch of one would (the decode kernels, never the tiled
    /// or panel ones), so a row's result does not depend on what else is in the batch: several
    /// contexts decoded together (a server's streams) get the tokens each would get alone, while
    /// each weight row is still read from memory once for all of them.
    /// </param>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Forward(in TensorData weight, ReadOnlySpan<float> input, int nBatch, Span<float> output, int threads,
                               bool quantizeActivations = false, InterleavedBlock32.Cache? interleaved = null, bool independentRows = false)
    {
        CheckSizes(weight, input, nBatch, output.Length);
        if (weight.Transposed)
        {
            ForwardTransposed(weight, input, nBatch, output, threads);
            return;
        }
        RowJob job = RowJob.ForThisThread;
        fixed (float* y = output)
        {
            job.Clear();
            job.Add(weight, y);
            Run(job, input, nBatch, threads, quantizeActivations, interleaved, independentRows);
        }
    }

    /// <summary>
    /// Several matrices applied to the same input (Llama's q, k and v; gate and up): the input is
    /// prepared once (transposed or quantized) and all of them share one parallel region.
    /// </summary>
    /// <param name="weights">each [nOut_i, nIn], same nIn</param>
    /// <param name="outputs">each [nBatch, nOut_i]</param>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Forward(ReadOnlySpan<TensorData> weights, ReadOnlySpan<float> input, int nBatch, ReadOnlySpan<float[]> outputs, int threads,
                               bool quantizeActivations = false, InterleavedBlock32.Cache? interleaved = null, bool independentRows = false)
    {
        if (weights.Length != outputs.Length || weights.Length is 0 or > RowJob.MaxMatrices)
            throw new ArgumentException($"matmul: {weights.Length} weights and {outputs.Length} outputs (1 to {RowJob.MaxMatrices} pairs)");
        bool anyTransposed = false;
        for (int i = 0; i < weights.Length; i++)
        {
            CheckSizes(weights[i], input, nBatch, outputs[i].Length);
            if (weights[i].RowLength != weights[0].RowLength)
                throw new ArgumentException($"matmul: '{weights[i].Name}' takes {weights[i].RowLength} inputs, '{weights[0].Name}' {weights[0].RowLength}");
            anyTransposed |= weights[i].Transposed;
        }
        if (anyTransposed)
        {
            for (int i = 0; i < weights.Length; i++) Forward(weights[i], input, nBatch, outputs[i], threads, quantizeActivations, interleaved, independentRows);
            return;
        }
        RowJob job = RowJob.ForThisThread;
        job.Clear();
        try
        {
            for (int i = 0; i < weights.Length; i++) job.Add(weights[i], outputs[i]);
            Run(job, input, nBatch, threads, quantizeActivations, interleaved, independentRows);
        }
        finally
        {
            job.Unpin();
        }
    }

    private static void CheckSizes(in TensorData weight, ReadOnlySpan<float> input, int nBatch, int outputLength)
    {
        int nIn = weight.RowLength, nOut = weight.RowCount;
        if (input.Length < (long)nBatch * nIn || outputLength < (long)nBatch * nOut)
            throw new ArgumentException($"matmul '{weight.Name}': buffers too small for [{nBatch}, {nIn}] × [{nOut}, {nIn}]ᵀ");
    }

    /// <summary>Prepares the input for the job's matrices and runs their rows, split across threads.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Run(RowJob job, ReadOnlySpan<float> input, int nBatch, int threads, bool quantizeActivations, InterleavedBlock32.Cache? interleaved, bool independentRows)
    {
        int nIn = job.Weight(0).RowLength;
        bool quantized = false, kQuantized = false;
        // Independent rows take the path a batch of one takes, whatever the batch size.
        int rowsAsBatch = independentRows ? 1 : nBatch;
        job.IndependentRows = independentRows;
        for (int i = 0; i < job.Count; i++)
        {
            ref readonly TensorData weight = ref job.Weight(i);
            bool repack = quantizeActivations && interleaved != null && (rowsAsBatch < 4 ? InterleavedBlock32.Repacks(weight.Type) : InterleavedBlock32.RepacksPrompts(weight.Type)) &&
                          weight.RowCount >= 8 && InterleavedBlock32.IsSupported;
            job.SetInterleaved(i, repack ? interleaved!.For(weight) : null);
            bool repackK = quantizeActivations && interleaved != null && rowsAsBatch >= 4 && weight.Type == GgmlType.Q4_K && weight.RowCount >= 8 &&
                           InterleavedQ4K.IsSupported && TakesKQuantActivations(weight, rowsAsBatch, repacked: true);
            job.SetInterleavedK(i, repackK && !InterleavedQ4K.KeepRowKernel ? interleaved!.Q4K(weight) : null);
            job.SetKQuantRows(i, quantizeActivations && TakesKQuantActivations(weight, rowsAsBatch, repackK));
            quantized |= repack || (quantizeActivations && rowsAsBatch < 4 && QuantizedActivations.IsSupported(weight.Type));
            kQuantized |= job.KQuantRows(i);
        }
        if (quantized) job.QuantizeInputs(input, nBatch, nIn);
        if (kQuantized) job.QuantizeKInputs(input, nBatch, nIn);
        // Decode of Q2_K–Q6_K rows (DotRows) takes x split into 24-bit planes, once per call for all rows; AVX-512 Q4_K x
        // arranged for the permute tables (KQuantTablesWide) instead.
        bool split = false, arrange = false;
        if (rowsAsBatch < 4 && UsesPlanes(nIn))
            for (int i = 0; i < job.Count; i++)
                if (KQuantPlanes.Decodes(job.Weight(i).Type) && !job.KQuantRows(i))
                {
                    if (UsesTables(job.Weight(i).Type)) arrange = true;
                    else split = true;
                }
        if (split) job.SplitInputs(input, nBatch, nIn);
        if (arrange) job.ArrangeInputs(input, nBatch, nIn, sumsMade: split);
        // AVX2 decode of Q4_0 rows (DotRows) takes x placed for the nibbles, likewise once per call (it was made per chunk).
        bool placeQ4 = false;
        if (rowsAsBatch < 4 && !quantized && UsesPlacedQ4_0)
            for (int i = 0; i < job.Count; i++) placeQ4 |= job.Weight(i).Type == GgmlType.Q4_0 && job.Interleaved(i) == null;
        if (placeQ4) job.PlaceQ4_0Inputs(input, nBatch, nIn);
        // AVX2 decode of Q4_1, Q5_0, Q5_1 rows (DotRows) takes x split into planes per 32 values (Block32Planes), of IQ4_NL, IQ4_XS
        // rows x placed for the bytes in place (Block32Decode), once per call.
        bool placeBlock32 = false, splitBlock32 = false;
        if (rowsAsBatch < 4 && UsesPlacedQ4_0 && Block32Decode.IsSupported && nIn % 32 == 0)
            for (int i = 0; i < job.Count; i++)
            {
                GgmlType type = job.Weight(i).Type;
                if (!Block32Decode.Decodes(type) || job.KQuantRows(i) || (quantizeActivations && QuantizedActivations.IsSupported(type))) continue;
                if (Block32Planes.Decodes(type)) splitBlock32 = true;
                else placeBlock32 = true;
            }
        if (placeBlock32) job.PlaceBlock32Inputs(input, nBatch, nIn);
        if (splitBlock32) job.SplitBlock32Inputs(input, nBatch, nIn);
        bool anyFloatPath = false;
        for (int i = 0; i < job.Count; i++) anyFloatPath |= job.Interleaved(i) == null && !job.KQuantRows(i);
        bool panels = anyFloatPath && rowsAsBatch >= PanelMatMul.MinBatch && PanelMatMul.IsSupported;
        if (panels) job.EnsurePacked(nIn * PanelMatMul.Padded(nBatch));
        fixed (float* x = input)
        fixed (sbyte* qx = job.Quants)
        fixed (float* dx = job.Scales)
        fixed (int* sx = job.Sums)
        fixed (float* packed = job.Packed)
        fixed (sbyte* kqx = job.KQuants)
        fixed (float* kdx = job.KScales)
        fixed (short* ksx = job.KSums)
        fixed (sbyte* planes = job.Planes)
        fixed (float* planeScales = job.PlaneScales, planeSums16 = job.PlaneSums16, planeSums32 = job.PlaneSums32, placed = job.PlacedQ4_0, placed32 = job.PlacedBlock32)
        fixed (float* arranged = job.Arranged)
        fixed (byte* split32 = job.SplitBlock32)
        {
            var activations = new Activations(quantized ? qx : null, dx, sx, panels ? packed : null, kQuantized ? kqx : null, kdx, ksx, split ? planes : null, planeScales,
                                              planeSums16, planeSums32, placeQ4 ? placed : null, placeBlock32 ? placed32 : null, arrange ? arranged : null,
                                              splitBlock32 ? split32 : null);
            if (panels) PanelMatMul.PackInputs(x, nBatch, nIn, packed, threads);
            long work = 0;
            for (int i = 0; i < job.Count; i++) work += (long)job.Weight(i).RowCount * nIn * nBatch;
            if (threads <= 1 || work < 32_768)
            {
                for (int i = 0; i < job.Count; i++) Rows(job.Weight(i), job.Interleaved(i), job.InterleavedK(i), job.KQuantRows(i), x, job.Output(i), nBatch, 0, job.Weight(i).RowCount, activations, independentRows);
                return;
            }
            job.Start(x, nBatch, activations, threads);
            WorkerPool.Shared.Run(job, job.Chunks, threads);
        }
    }

    /// <summary>
    /// K-quant rows of whole super-blocks meet activations quantized to blocks of 256 (<see cref="KQuantActivations"/>):
    /// always with AVX2, and with AVX-512 up to 32 inputs — beyond that the exact 512-bit panels are faster than the
    /// 256-bit integer kernel (1.1B Q4_K, 128-token prompt, 2 threads: 100 tok/s exact, 67 quantized; at 16 inputs
    /// the quantized path is 1.8× the exact one). Q4_K matrices repacked into interleaved rows (<see cref="InterleavedQ4K"/>)
    /// take it at every prompt size: 1.1B Q4_K, 128 tokens, 2 threads, AVX-512, best of two alternating rounds at load 8–12:
    /// 38.4 tok/s against 27.8 through the panels (<c>Q4KInterleavedBenchmarks</c>, one thread: 24–30 ms against 42).
    /// </summary>
    private static bool TakesKQuantActivations(in TensorData weight, int rowsAsBatch, bool repacked) =>
        KQuantActivations.IsSupported(weight.Type) && weight.RowLength % KQuantActivations.BlockSize == 0 &&
        (repacked || rowsAsBatch <= 32 || !(Vector512.IsHardwareAccelerated && PanelMatMul.IsSupported));

    /// <summary>
    /// The input rows prepared for a kernel: quantized to 8-bit blocks of 32 when the quantized-activation
    /// path is on (Quants null otherwise), to blocks of 256 for K-quant rows (KQuants null otherwise),
    /// or transposed for <see cref="PanelMatMul"/> (Packed null otherwise).
    /// </summary>
    private readonly struct Activations(sbyte* quants, float* scales, int* sums, float* packed, sbyte* kQuants, float* kScales, short* kSums, sbyte* planes, float* planeScales,
                                        float* planeSums16, float* planeSums32, float* placedQ4_0, float* placedBlock32, float* arranged, byte* splitBlock32)
    {
        /// <summary>Each input as <see cref="Block32Planes.Prepare"/> makes it (its flag the last byte of each input's share: 1 split, 0 not), or null.</summary>
        public readonly byte* SplitBlock32 = splitBlock32;
        /// <summary>Each input as <see cref="KQuantTablesWide.Arrange"/> makes it (its sums of 32 in <see cref="PlaneSums32"/>), or null.</summary>
        public readonly float* Arranged = arranged;
        /// <summary>Each input as <see cref="Block32Decode.Prepare"/> makes it (its flag the last float of each input's share: 1 placed, 0 not), or null.</summary>
        public readonly float* PlacedBlock32 = placedBlock32;
        /// <summary>Each input as <see cref="Quantized.PrepareQ4_0"/> makes it for the AVX2 Q4_0 kernels (its flag the last float of each input's share), or null.</summary>
        public readonly float* PlacedQ4_0 = placedQ4_0;
        /// <summary>Each input as <see cref="KQuantPlanes"/> (3 bytes per value, one scale per 256), or null.</summary>
        public readonly sbyte* Planes = planes;
        public readonly float* PlaneScales = planeScales;
        /// <summary>With <see cref="Planes"/> (or <see cref="Arranged"/>, then of 32 only): each input's sums of 16 and of 32 values (<see cref="KQuantPlanes.SubBlockSums"/>), n/16 and n/32 per input.</summary>
        public readonly float* PlaneSums16 = planeSums16, PlaneSums32 = planeSums32;
        public readonly sbyte* Quants = quants;
        public readonly float* Scales = scales;
        public readonly int* Sums = sums;
        public readonly float* Packed = packed;
        public readonly sbyte* KQuants = kQuants;
        public readonly float* KScales = kScales;
        public readonly short* KSums = kSums;
    }

    /// <summary>One call's matrices and buffers, kept per calling thread so a call allocates nothing.</summary>
    private sealed class RowJob : IParallelWork
    {
        public const int MaxMatrices = 4;
        [ThreadStatic] private static RowJob? _forThisThread;
        private readonly TensorData[] _weights = new TensorData[MaxMatrices];
        private readonly nint[] _outputs = new nint[MaxMatrices];
        private readonly MemoryHandle[] _pins = new MemoryHandle[MaxMatrices];
        private readonly int[] _tileRows = new int[MaxMatrices], _tiles = new int[MaxMatrices], _firstChunk = new int[MaxMatrices + 1];
        private readonly InterleavedBlock32?[] _interleaved = new InterleavedBlock32?[MaxMatrices];
        private readonly InterleavedQ4K?[] _interleavedK = new InterleavedQ4K?[MaxMatrices];
        private readonly bool[] _kQuantRows = new bool[MaxMatrices];
        private float* _x;
        private int _nBatch;
        private Activations _activations;

        public static RowJob ForThisThread => _forThisThread ??= new RowJob();

        public int Count { get; private set; }

        /// <summary>The current call computes each input row as a batch of one would (see Forward).</summary>
        public bool IndependentRows { get; set; }
        public int Chunks => _guided ? _guidedChunks : _firstChunk[Count];
        private const int MaxChunks = 256;
        private readonly int[] _chunkMatrix = new int[MaxChunks], _chunkStart = new int[MaxChunks], _chunkEnd = new int[MaxChunks];
        private int _guidedChunks;
        private bool _guided;
        public sbyte[] Quants { get; private set; } = new sbyte[32];
        public float[] Scales { get; private set; } = new float[1];
        public int[] Sums { get; private set; } = new int[1];
        public float[] Packed { get; private set; } = new float[16];
        public sbyte[] KQuants { get; private set; } = new sbyte[KQuantActivations.BlockSize];
        public float[] KScales { get; private set; } = new float[1];
        public short[] KSums { get; private set; } = new short[KQuantActivations.BlockSize / 16];
        public sbyte[] Planes { get; private set; } = new sbyte[KQuantPlanes.BlockBytes];
        public float[] PlaneScales { get; private set; } = new float[1];
        public float[] PlaneSums16 { get; private set; } = new float[16];
        public float[] PlaneSums32 { get; private set; } = new float[8];
        public float[] Arranged { get; private set; } = new float[32];
        public float[] PlacedQ4_0 { get; private set; } = new float[Quantized.Q4_0PreparedFloats + 1];
        public float[] PlacedBlock32 { get; private set; } = new float[Block32Decode.PreparedFloats + 1];
        public byte[] SplitBlock32 { get; private set; } = new byte[Block32Planes.PreparedBytes + 1];

        /// <summary>Each input split for <see cref="Block32Planes"/> (an input holding an infinity or NaN keeps the float kernel: its flag, the last byte of its share, is 0).</summary>
        public void SplitBlock32Inputs(ReadOnlySpan<float> input, int nBatch, int nIn)
        {
            int perInput = Block32SplitBytes(nIn);
            if (SplitBlock32.Length < nBatch * perInput) SplitBlock32 = new byte[nBatch * perInput];
            fixed (float* x = input)
            fixed (byte* prepared = SplitBlock32)
                for (int b = 0; b < nBatch; b++)
                {
                    byte* p = prepared + b * perInput;
                    p[perInput - 1] = Block32Planes.Prepare(x + (long)b * nIn, nIn, p) ? (byte)1 : (byte)0;
                }
        }

        /// <summary>
        /// Each input placed for <see cref="Block32Decode"/> (an input it cannot scale exactly, or holding an infinity or NaN, keeps the
        /// float kernel: its flag, the last float of its share, is 0).
        /// </summary>
        public void PlaceBlock32Inputs(ReadOnlySpan<float> input, int nBatch, int nIn)
        {
            int perInput = Block32PlacedFloats(nIn);
            if (PlacedBlock32.Length < nBatch * perInput) PlacedBlock32 = new float[nBatch * perInput];
            fixed (float* x = input, prepared = PlacedBlock32)
                for (int b = 0; b < nBatch; b++)
                {
                    float* p = prepared + b * perInput;
                    p[perInput - 1] = Block32Decode.Prepare(x + (long)b * nIn, nIn, p) ? 1 : 0;
                }
        }

        /// <summary>
        /// Each input placed for the AVX2 Q4_0 kernels (<see cref="Quantized.PrepareQ4_0"/>; an input too small to scale exactly gets
        /// the shifting kernel's offsets, its flag the last float of its share: 1 placed, 0 not).
        /// </summary>
        public void PlaceQ4_0Inputs(ReadOnlySpan<float> input, int nBatch, int nIn)
        {
            int perInput = Q4_0PlacedFloats(nIn);
            if (PlacedQ4_0.Length < nBatch * perInput) PlacedQ4_0 = new float[nBatch * perInput];
            fixed (float* x = input, prepared = PlacedQ4_0)
                for (int b = 0; b < nBatch; b++)
                {
                    float* p = prepared + b * perInput;
                    bool placed = Quantized.PrepareQ4_0(x + (long)b * nIn, nIn, p);
                    if (!placed) Quantized.Q4_0Offsets(x + (long)b * nIn, nIn, p);
                    p[perInput - 1] = placed ? 1 : 0;
                }
        }

        public ref readonly TensorData Weight(int i) => ref _weights[i];
        public float* Output(int i) => (float*)_outputs[i];
        public InterleavedBlock32? Interleaved(int i) => _interleaved[i];
        public void SetInterleaved(int i, InterleavedBlock32? matrix) => _interleaved[i] = matrix;
        public InterleavedQ4K? InterleavedK(int i) => _interleavedK[i];
        public void SetInterleavedK(int i, InterleavedQ4K? matrix) => _interleavedK[i] = matrix;

        /// <summary>Matrix i meets the activations in 8-bit blocks of 256 (row by row, or repacked when <see cref="InterleavedK"/> is set).</summary>
        public bool KQuantRows(int i) => _kQuantRows[i];
        public void SetKQuantRows(int i, bool value) => _kQuantRows[i] = value;

        public void Clear() => Count = 0;

        public void Add(in TensorData weight, float* y)
        {
            _weights[Count] = weight;
            _outputs[Count++] = (nint)y;
        }

        /// <summary>Adds a matrix whose output array stays pinned until <see cref="Unpin"/>.</summary>
        public void Add(in TensorData weight, float[] y)
        {
            _pins[Count] = y.AsMemory().Pin();
            Add(weight, (float*)_pins[Count].Pointer);
        }

        public void Unpin()
        {
            for (int i = 0; i < _pins.Length; i++)
            {
                _pins[i].Dispose();
                _pins[i] = default;
            }
        }

        public void EnsurePacked(int length)
        {
            if (Packed.Length < length) Packed = new float[length];
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void QuantizeInputs(ReadOnlySpan<float> input, int nBatch, int nIn)
        {
            int blocks = nIn / 32;
            if (Quants.Length < nBatch * nIn) Quants = new sbyte[nBatch * nIn];
            if (Scales.Length < nBatch * blocks) (Scales, Sums) = (new float[nBatch * blocks], new int[nBatch * blocks]);
            for (int b = 0; b < nBatch; b++)
                QuantizedActivations.Quantize(input.Slice(b * nIn, nIn), Quants.AsSpan(b * nIn, nIn), Scales.AsSpan(b * blocks, blocks), Sums.AsSpan(b * blocks, blocks));
        }

        /// <summary>Each input row as 8-bit blocks of 256 with the sums of each 16 quants, for K-quant rows.</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void QuantizeKInputs(ReadOnlySpan<float> input, int nBatch, int nIn)
        {
            int blocks = nIn / KQuantActivations.BlockSize, sums = nIn / 16;
            if (KQuants.Length < nBatch * nIn) KQuants = new sbyte[nBatch * nIn];
            if (KScales.Length < nBatch * blocks) (KScales, KSums) = (new float[nBatch * blocks], new short[nBatch * sums]);
            for (int b = 0; b < nBatch; b++)
                KQuantActivations.Quantize(input.Slice(b * nIn, nIn), KQuants.AsSpan(b * nIn, nIn), KScales.AsSpan(b * blocks, blocks), KSums.AsSpan(b * sums, sums));
        }

        /// <summary>Each input row as <see cref="KQuantPlanes"/>: three 8-bit planes and a power-of-two scale per 256 values.</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void SplitInputs(ReadOnlySpan<float> input, int nBatch, int nIn)
        {
            if (Planes.Length < 3 * nBatch * nIn) Planes = new sbyte[3 * nBatch * nIn];
            if (PlaneScales.Length < nBatch * nIn / KQuantPlanes.BlockSize) PlaneScales = new float[nBatch * nIn / KQuantPlanes.BlockSize];
            if (PlaneSums16.Length < nBatch * nIn / 16) (PlaneSums16, PlaneSums32) = (new float[nBatch * nIn / 16], new float[nBatch * nIn / 32]);
            fixed (float* x = input)
            fixed (sbyte* planes = Planes)
            fixed (float* scales = PlaneScales, sums16 = PlaneSums16, sums32 = PlaneSums32)
                for (int b = 0; b < nBatch; b++)
                {
                    // The offsets' sub-block sums here too, once per call for every row and thread (they were made per chunk).
                    KQuantPlanes.Split(x + (long)b * nIn, nIn, planes + 3L * b * nIn, scales + b * (nIn / KQuantPlanes.BlockSize));
                    KQuantPlanes.SubBlockSums(x + (long)b * nIn, nIn, 16, sums16 + b * (nIn / 16));
                    KQuantPlanes.SubBlockSums(x + (long)b * nIn, nIn, 32, sums32 + b * (nIn / 32));
                }
        }

        /// <summary>
        /// Each input row arranged for <see cref="KQuantTablesWide"/>, with its sums of 32 values as <see cref="SplitInputs"/> makes
        /// them (skipped when <paramref name="sumsMade"/>: a call holding Q6_K beside Q4_K, as Q4_K_M's, split the input already).
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void ArrangeInputs(ReadOnlySpan<float> input, int nBatch, int nIn, bool sumsMade)
        {
            if (Arranged.Length < nBatch * nIn) Arranged = new float[nBatch * nIn];
            if (PlaneSums32.Length < nBatch * nIn / 32) (PlaneSums16, PlaneSums32) = (new float[nBatch * nIn / 16], new float[nBatch * nIn / 32]);
            fixed (float* x = input, arranged = Arranged, sums32 = PlaneSums32)
                for (int b = 0; b < nBatch; b++)
                {
                    KQuantTablesWide.Arrange(x + (long)b * nIn, nIn, arranged + (long)b * nIn);
                    if (!sumsMade) KQuantPlanes.SubBlockSums(x + (long)b * nIn, nIn, 32, sums32 + b * (nIn / 32));
                }
        }

        /// <summary>
        /// Splits every matrix into chunks of whole tiles — several per thread so uneven cores still
        /// finish together, shrinking towards the end (<see cref="Guide"/>) — numbered one matrix after another.
        /// One thread, or more chunks than <see cref="MaxChunks"/>: equal chunks in proportion to each matrix's rows.
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Start(float* x, int nBatch, Activations activations, int threads)
        {
            _x = x;
            _nBatch = nBatch;
            _activations = activations;
            long totalRows = 0;
            for (int i = 0; i < Count; i++) totalRows += _weights[i].RowCount;
            int budget = Math.Max(1, threads) * 8;
            long totalTiles = 0;
            for (int i = 0; i < Count; i++)
            {
                _tileRows[i] = _interleaved[i] != null || _interleavedK[i] != null ? 8 : activations.Packed != null ? PanelMatMul.RowTile : 4;
                _tiles[i] = (_weights[i].RowCount + _tileRows[i] - 1) / _tileRows[i];
                int chunks = (int)Math.Clamp(budget * _weights[i].RowCount / totalRows, 1, _tiles[i]);
                _firstChunk[i + 1] = _firstChunk[i] + chunks;
                totalTiles += _tiles[i];
            }
            _guided = threads > 1;
            if (_guided) _guided = Guide(totalTiles, threads);
        }

        /// <summary>
        /// Chunks that shrink as the region's work runs out — each 1/(2·threads) of the tiles left, at least 1/(32·threads)
        /// of all, never crossing into the next matrix — so the last chunks claimed are small and the threads finish close
        /// together. Equal chunks numbered matrix after matrix left up to a whole chunk to one thread at the end (for a
        /// prompt's q/k/v, all of v: a tenth of the region). Decode (and the other non-panel paths) caps them at the equal
        /// split's 1/(8·threads): with those, a thread waiting for the other's last chunk took about 5% of the two threads'
        /// time in a decode step (1.1B BF16, 2 threads, <c>bench --step-profile</c>). Rows are computed the same in any chunk, so
        /// results are bit-identical to the equal split's.
        /// </summary>
        private bool Guide(long totalTiles, int threads)
        {
            int smallest = (int)Math.Max(1, totalTiles / (32 * threads));
            // Decode: never larger than the equal split's chunks, so a thread that loses its core mid-chunk holds no more than before.
            long largest = _activations.Packed != null ? long.MaxValue : Math.Max(smallest, (totalTiles + 8 * threads - 1) / (8 * threads));
            long left = totalTiles;
            int n = 0, matrix = 0, tile = 0;
            while (left > 0)
            {
                if (n == MaxChunks) return false; // very many threads: the equal chunks instead
                int size = (int)Math.Min(_tiles[matrix] - tile, Math.Min(largest, Math.Max(smallest, (left + 2 * threads - 1) / (2 * threads))));
                // A chunk never crosses into the next matrix: a short piece at a boundary is a chunk of its own.
                _chunkMatrix[n] = matrix;
                _chunkStart[n] = tile * _tileRows[matrix];
                _chunkEnd[n] = Math.Min(_weights[matrix].RowCount, (tile + size) * _tileRows[matrix]);
                n++;
                tile += size;
                left -= size;
                if (tile == _tiles[matrix]) (matrix, tile) = (matrix + 1, 0);
            }
            _guidedChunks = n;
            return true;
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Execute(int chunk)
        {
            if (_guided)
            {
                int m = _chunkMatrix[chunk];
                Rows(_weights[m], _interleaved[m], _interleavedK[m], _kQuantRows[m], _x, (float*)_outputs[m], _nBatch, _chunkStart[chunk], _chunkEnd[chunk], _activations, IndependentRows);
                return;
            }
            int i = 0;
            while (chunk >= _firstChunk[i + 1]) i++;
            int local = chunk - _firstChunk[i], chunks = _firstChunk[i + 1] - _firstChunk[i];
            int nOut = _weights[i].RowCount, tiles = _tiles[i], tileRows = _tileRows[i];
            int start = (int)((long)tiles * local / chunks) * tileRows, end = Math.Min(nOut, (int)((long)tiles * (local + 1) / chunks) * tileRows);
            Rows(_weights[i], _interleaved[i], _interleavedK[i], _kQuantRows[i], _x, (float*)_outputs[i], _nBatch, start, end, _activations, IndependentRows);
        }
    }

    /// <summary>Output rows [rowStart, rowEnd) for every input row.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Rows(in TensorData weight, InterleavedBlock32? interleaved, InterleavedQ4K? interleavedK, bool kQuantRows, float* x, float* y, int nBatch, int rowStart, int rowEnd, Activations activations, bool independentRows)
    {
        int nIn = weight.RowLength;
        if (interleavedK != null)
        {
            // As for Q4_0 below: whole groups from the repacked copy, the last rows from the row-by-row kernel.
            int groupEnd = Math.Min(rowEnd, interleavedK.Groups * 8) / 8;
            if (rowStart / 8 < groupEnd) interleavedK.Multiply(activations.KQuants, activations.KScales, activations.KSums, nBatch, y, weight.RowCount, rowStart / 8, groupEnd);
            if (groupEnd * 8 < rowEnd) KQuantActivations.Rows(weight, activations.KQuants, activations.KScales, activations.KSums, y, nBatch, Math.Max(rowStart, groupEnd * 8), rowEnd);
            return;
        }
        if (interleaved != null)
        {
            // Whole groups of eight rows from the repacked copy; rows past the last group one at a time.
            int groupEnd = Math.Min(rowEnd, interleaved.Groups * 8) / 8;
            if (rowStart / 8 < groupEnd) interleaved.Multiply(activations.Quants, activations.Scales, activations.Sums, nBatch, y, weight.RowCount, rowStart / 8, groupEnd);
            if (groupEnd * 8 < rowEnd) QuantizedRows(weight, activations, y, nBatch, Math.Max(rowStart, groupEnd * 8), rowEnd);
        }
        else if (activations.Quants != null && (nBatch < 4 || independentRows) && QuantizedActivations.IsSupported(weight.Type))
            QuantizedRows(weight, activations, y, nBatch, rowStart, rowEnd);
        else if (kQuantRows)
            KQuantActivations.Rows(weight, activations.KQuants, activations.KScales, activations.KSums, y, nBatch, rowStart, rowEnd);
        else if (activations.Packed != null)
            PanelMatMul.Forward(weight, activations.Packed, nBatch, y, rowStart, rowEnd);
        else if (nBatch >= 4 && !independentRows && nIn % 8 == 0 && Vector256.IsHardwareAccelerated)
            TiledRows(weight, x, y, nBatch, rowStart, rowEnd);
        else
            DotRows(weight, x, y, nBatch, rowStart, rowEnd, activations);
    }

    /// <summary>
    /// Whether decode of K-quant rows (<see cref="KQuantPlanes.Decodes"/>) of this length takes the plane kernels: <see cref="KQuantPlanes"/>
    /// with AVX2 (there the float kernels are bound by the FMA ports), <see cref="KQuantPlanesWide"/> with AVX-512 (the 256-bit
    /// plane kernels lost to the 512-bit float kernels there; the 512-bit ones win, see that class). Where 512-bit operations
    /// are split in two (<see cref="CpuInfo.SplitsWideVectors"/>: Zen 4) the 256-bit plane kernels decode with AVX-512 too:
    /// side by side on a Zen 4 (sixteenth session) the process with AVX-512 off generated 1.1B Q4_K 31.1 tok/s against 26.5
    /// with it, Q6_K 24.1 against 18.7, Q4_K_M 29.9 against 26.6, Q5_K_M 24.6 against 20.5.
    /// </summary>
    private static bool UsesPlanes(int nIn) =>
        nIn % Quantized.QK_K == 0 && KQuantPlanes.IsSupported && Vector256.IsHardwareAccelerated &&
        (!(Vector512.IsHardwareAccelerated && System.Runtime.Intrinsics.X86.Avx512F.IsSupported) || KQuantPlanesWide.IsSupported);

    /// <summary>
    /// Whether decode of rows of this type takes <see cref="KQuantTablesWide"/> (with <see cref="UsesPlanes"/>): AVX-512 Q4_K, where
    /// its permute tables read the rows from memory in 0.91–0.95× the 512-bit plane kernel's time at moderate load (about
    /// equal at high load; slower resident, see that class); x's arrangement (2 permutes per 32 values) replaces its split.
    /// </summary>
    private static bool UsesTables(GgmlType type) => KQuantTablesWide.Handles(type) && KQuantTablesWide.IsSupported && WideKQuantDecode;

    /// <summary>Whether K-quant decode takes the 512-bit kernels (tables, planes): AVX-512 on a CPU that runs 512-bit operations whole.</summary>
    private static bool WideKQuantDecode =>
        Vector512.IsHardwareAccelerated && System.Runtime.Intrinsics.X86.Avx512F.IsSupported && !CpuInfo.SplitsWideVectors;

    /// <summary>Whether decode of Q4_0 rows takes the AVX2 kernels of <see cref="Quantized.PrepareQ4_0"/>: DotRows' narrow case.</summary>
    private static bool UsesPlacedQ4_0 =>
        Vector256.IsHardwareAccelerated && System.Runtime.Intrinsics.X86.Avx2.IsSupported && System.Runtime.Intrinsics.X86.Fma.IsSupported &&
        !(Vector512.IsHardwareAccelerated && System.Runtime.Intrinsics.X86.Avx512F.IsSupported);

    private static int Q4_0PlacedFloats(int nIn) => nIn / 32 * Quantized.Q4_0PreparedFloats + 1;

    private static int Block32PlacedFloats(int nIn) => nIn / 32 * Block32Decode.PreparedFloats + 1;

    private static int Block32SplitBytes(int nIn) => nIn / 32 * Block32Planes.PreparedBytes + 1;

    /// <summary>Rows against quantized activations, four rows at a time so each activation block is loaded once for four.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void QuantizedRows(in TensorData weight, Activations activations, float* y, int nBatch, int rowStart, int rowEnd)
    {
        int nIn = weight.RowLength, nOut = weight.RowCount, blocks = nIn / 32;
        long rowBytes = weight.RowBytes;
        for (int b = 0; b < nBatch; b++)
        {
            sbyte* quants = activations.Quants + (long)b * nIn;
            float* scales = activations.Scales + (long)b * blocks;
            int* sums = activations.Sums + (long)b * blocks;
            float* yb = y + (long)b * nOut;
            int o = rowStart;
            for (; o + 4 <= rowEnd; o += 4)
                QuantizedActivations.Dot4(weight.Type, weight.Data + o * rowBytes, rowBytes, quants, scales, sums, blocks, yb + o);
            for (; o < rowEnd; o++)
                yb[o] = QuantizedActivations.Dot(weight.Type, weight.Data + o * rowBytes, quants, scales, sums, blocks);
        }
    }

    /// <summary>One dot product per (row, input): the decode path, where each weight row is read once anyway.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void DotRows(in TensorData weight, float* x, float* y, int nBatch, int rowStart, int rowEnd, Activations activations)
    {
        int nIn = weight.RowLength, nOut = weight.RowCount;
        long rowBytes = weight.RowBytes;
        int o = rowStart;
        // Four rows at a time where a kernel exists (the quantized types; F16 and BF16 eight) at 512 or 256 bits; the rest row by row.
        bool wide = Vector512.IsHardwareAccelerated && System.Runtime.Intrinsics.X86.Avx512F.IsSupported;
        bool narrow = !wide && Vector256.IsHardwareAccelerated && System.Runtime.Intrinsics.X86.Avx2.IsSupported && System.Runtime.Intrinsics.X86.Fma.IsSupported;
        bool quantized = weight.Type is GgmlType.Q8_0 or GgmlType.Q4_0;
        if (activations.Arranged != null && UsesTables(weight.Type) && nIn % Quantized.QK_K == 0)
        {
            // x arranged and its sums of 32 made once per call; each input alone (bit-identity across batches holds trivially).
            for (; o < rowEnd; o += 4)
                for (int b = 0; b < nBatch; b++)
                    KQuantTablesWide.Dot4(weight.Type, weight.Data + o * rowBytes, rowBytes, Math.Min(4, rowEnd - o), activations.Arranged + (long)b * nIn,
                                          activations.PlaneSums32 + b * (nIn / 32), nIn, y + (long)b * nOut + o);
        }
        else if (activations.Planes != null && KQuantPlanes.Decodes(weight.Type) && nIn % Quantized.QK_K == 0)
        {
            // The split input and its sub-block sums, made once per call; each input alone: bit-identity across batches holds trivially.
            int width = KQuantRows.SumWidth(weight.Type), perInput = nIn / width;
            float* sums = width == 16 ? activations.PlaneSums16 : activations.PlaneSums32;
            for (; o < rowEnd; o += 4)
                for (int b = 0; b < nBatch; b++)
                    if (WideKQuantDecode) // AVX-512: the 512-bit plane kernel (KQuantPlanesWide: 2 integer multiplies per cycle on Zen 5)
                        KQuantPlanesWide.Dot4(weight.Type, weight.Data + o * rowBytes, rowBytes, Math.Min(4, rowEnd - o), activations.Planes + 3L * b * nIn,
                                              activations.PlaneScales + b * (nIn / KQuantPlanes.BlockSize), sums + b * perInput, nIn, y + (long)b * nOut + o);
                    else
                        KQuantPlanes.Dot4(weight.Type, weight.Data + o * rowBytes, rowBytes, Math.Min(4, rowEnd - o), activations.Planes + 3L * b * nIn,
                                          activations.PlaneScales + b * (nIn / KQuantPlanes.BlockSize), sums + b * perInput, nIn, y + (long)b * nOut + o);
        }
        else if ((wide || narrow) && KQuantRows.Handles(weight.Type) && nIn % Quantized.QK_K == 0)
        {
            // Each input's sub-block sums once per call, shared by all rows; the last group may be 1–3 rows.
            int width = KQuantRows.SumWidth(weight.Type), perInput = nIn / width;
            float[] buffer = _subBlockSums is { } kept && kept.Length >= nBatch * perInput ? kept : _subBlockSums = new float[nBatch * perInput];
            fixed (float* sums = buffer)
            {
                for (int b = 0; b < nBatch; b++) KQuantRows.SubBlockSums(x + (long)b * nIn, nIn, width, sums + b * perInput);
                for (; o < rowEnd; o += 4)
                    if (nBatch >= 2 && KQuantRows.HandlesBatch(weight.Type)) // each super-block unpacked once for all inputs, bit-identical per input
                        KQuantRows.Dot4Batch(weight.Type, wide, weight.Data + o * rowBytes, rowBytes, Math.Min(4, rowEnd - o), x, sums, perInput, nIn, nBatch, y + o, nOut);
                    else
                        for (int b = 0; b < nBatch; b++)
                            KQuantRows.Dot4(weight.Type, wide, weight.Data + o * rowBytes, rowBytes, Math.Min(4, rowEnd - o), x + (long)b * nIn, sums + b * perInput, nIn, y + (long)b * nOut + o);
            }
        }
        else if ((nBatch >= 2 || weight.Type == GgmlType.F32) && BatchedDecode.Handles(weight.Type, nIn, wide, narrow))
            o = BatchedDecode.Rows(weight, wide, x, y, nBatch, rowStart, rowEnd); // each block unpacked once for all inputs, bit-identical per input
        else if (narrow && weight.Type == GgmlType.Q4_0)
        {
            // Each input placed for the nibbles in place (PrepareQ4_0), shared by all rows (AVX2 is bound by its FMA ports): by Run once
            // per call, or here when the call's activations lack it; an input too small to scale exactly keeps the shifting kernel,
            // its flag the last float of its share.
            int perInput = Q4_0PlacedFloats(nIn);
            float[] buffer = _subBlockSums is { } kept && kept.Length >= nBatch * perInput ? kept : _subBlockSums = new float[nBatch * perInput];
            fixed (float* local = buffer)
            {
                float* prepared = activations.PlacedQ4_0;
                if (prepared == null)
                {
                    prepared = local;
                    for (int b = 0; b < nBatch; b++)
                    {
                        float* p = prepared + b * perInput;
                        bool placed = Quantized.PrepareQ4_0(x + (long)b * nIn, nIn, p);
                        if (!placed) Quantized.Q4_0Offsets(x + (long)b * nIn, nIn, p);
                        p[perInput - 1] = placed ? 1 : 0;
                    }
                }
                for (; o + 4 <= rowEnd; o += 4)
                    for (int b = 0; b < nBatch; b++)
                    {
                        float* p = prepared + b * perInput;
                        if (p[perInput - 1] != 0) Quantized.Dot4RowsNarrowQ4_0Placed(weight.Data + o * rowBytes, rowBytes, p, nIn, y + (long)b * nOut + o);
                        else Quantized.Dot4RowsNarrowQ4_0(weight.Data + o * rowBytes, rowBytes, x + (long)b * nIn, p, nIn, y + (long)b * nOut + o);
                    }
            }
        }
        else if (wide && Block32DecodeWide.Handles(weight.Type) && nIn % Block32DecodeWide.BlockSize(weight.Type) == 0 && Block32DecodeWide.IsSupported)
            for (; o < rowEnd; o += 4) // AVX-512: the block-32 kernels (fewer operations per value than ChunkedQuant's); the last group may be 1–3 rows
                for (int b = 0; b < nBatch; b++)
                    Block32DecodeWide.Dot4(weight.Type, weight.Data + o * rowBytes, rowBytes, Math.Min(4, rowEnd - o), x + (long)b * nIn, nIn, y + (long)b * nOut + o);
        else if (narrow && activations.SplitBlock32 != null && Block32Planes.Decodes(weight.Type))
        {
            // x split once per call by Run (Block32Planes.Prepare); an input holding an infinity or NaN takes the float kernel.
            int perInput = Block32SplitBytes(nIn);
            for (; o + 4 <= rowEnd; o += 4)
                for (int b = 0; b < nBatch; b++)
                {
                    byte* p = activations.SplitBlock32 + (long)b * perInput;
                    if (p[perInput - 1] != 0) Block32Planes.Dot4(weight.Type, weight.Data + o * rowBytes, rowBytes, p, nIn, y + (long)b * nOut + o);
                    else ChunkedQuant.Dot4(weight.Type, false, weight.Data + o * rowBytes, rowBytes, x + (long)b * nIn, nIn, y + (long)b * nOut + o);
                }
        }
        else if (narrow && activations.PlacedBlock32 != null && Block32Decode.Decodes(weight.Type))
        {
            // x placed once per call by Run (Block32Decode.Prepare); an input it could not place takes the float kernel.
            int perInput = Block32PlacedFloats(nIn);
            for (; o + 4 <= rowEnd; o += 4)
                for (int b = 0; b < nBatch; b++)
                {
                    float* p = activations.PlacedBlock32 + (long)b * perInput;
                    if (p[perInput - 1] != 0) Block32Decode.Dot4(weight.Type, weight.Data + o * rowBytes, rowBytes, p, nIn, y + (long)b * nOut + o);
                    else ChunkedQuant.Dot4(weight.Type, false, weight.Data + o * rowBytes, rowBytes, x + (long)b * nIn, nIn, y + (long)b * nOut + o);
                }
        }
        else if ((wide || narrow) && ChunkedQuant.Handles(weight.Type))
            for (; o + 4 <= rowEnd; o += 4)
                for (int b = 0; b < nBatch; b++)
                    ChunkedQuant.Dot4(weight.Type, wide, weight.Data + o * rowBytes, rowBytes, x + (long)b * nIn, nIn, y + (long)b * nOut + o);
        else if (weight.Type is GgmlType.F16 or GgmlType.BF16 && (HalfRows.Wide || HalfRows.Narrow) && HalfRows.Handles(nIn))
        {
            // Eight rows at a time, then a last four (ranges are whole groups of four).
            bool halfWide = HalfRows.Wide, brain = weight.Type == GgmlType.BF16;
            bool finite = !brain && weight.HalvesAllFinite; // float16 rows known free of infinities and NaNs skip the kernels' check
            if (nBatch >= 2)
            {
                // Several inputs (a server's streams): each row converted once for a few of them, bit-identical per input.
                int rows = (rowEnd - o) & ~3;
                if (brain) HalfRows.BrainBatch(halfWide, (ushort*)(weight.Data + o * rowBytes), nIn, rows, x, nIn, nBatch, y + o, nOut);
                else HalfRows.Batch(halfWide, (ushort*)(weight.Data + o * rowBytes), nIn, rows, x, nIn, nBatch, y + o, nOut, finite);
                o += rows;
            }
            else if (RowStreams.Stretch(rowEnd - o, 8) is int q and > 0)
            {
                // A lone input: eight rows per pass from eight stretches of the range (RowStreams), each row's result as in a group of consecutive rows.
                float* pass = stackalloc float[8];
                for (int i = 0; i < q; i++)
                {
                    ushort* w = (ushort*)(weight.Data + (o + i) * rowBytes);
                    if (brain) HalfRows.BrainEight(halfWide, w, (long)q * nIn, x, nIn, pass);
                    else HalfRows.Eight(halfWide, w, (long)q * nIn, x, nIn, pass, finite);
                    RowStreams.Scatter(pass, 8, y + o + i, q);
                }
                o += 8 * q;
            }
            for (; o + 8 <= rowEnd; o += 8)
                for (int b = 0; b < nBatch; b++)
                {
                    ushort* w = (ushort*)(weight.Data + o * rowBytes);
                    if (brain) HalfRows.BrainEight(halfWide, w, nIn, x + (long)b * nIn, nIn, y + (long)b * nOut + o);
                    else HalfRows.Eight(halfWide, w, nIn, x + (long)b * nIn, nIn, y + (long)b * nOut + o, finite);
                }
            for (; o + 4 <= rowEnd; o += 4)
                for (int b = 0; b < nBatch; b++)
                {
                    ushort* w = (ushort*)(weight.Data + o * rowBytes);
                    if (brain) HalfRows.BrainFour(halfWide, w, nIn, x + (long)b * nIn, nIn, y + (long)b * nOut + o);
                    else HalfRows.Four(halfWide, w, nIn, x + (long)b * nIn, nIn, y + (long)b * nOut + o, finite);
                }
        }
        else if ((wide || narrow) && quantized)
            for (; o + 4 <= rowEnd; o += 4)
                for (int b = 0; b < nBatch; b++)
                {
                    byte* w = weight.Data + o * rowBytes;
                    float* xb = x + (long)b * nIn, yb = y + (long)b * nOut + o;
                    if (wide) Quantized.Dot4RowsWide(weight.Type, w, rowBytes, xb, nIn, yb);
                    else Quantized.Dot4RowsNarrow(weight.Type, w, rowBytes, xb, nIn, yb);
                }
        for (; o < rowEnd; o++)
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

    [ThreadStatic] private static float[]? _tileRows;
    [ThreadStatic] private static float[]? _subBlockSums;

    /// <summary>
    /// The prompt path: 4 weight rows × 4 input rows at a time, 16 accumulators in registers, so
    /// each loaded weight vector is used 4 times and each input vector 4 times. Rows of other
    /// types are expanded to float32 four at a time into a per-thread buffer first.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void TiledRows(in TensorData weight, float* x, float* y, int nBatch, int rowStart, int rowEnd)
    {
        int nIn = weight.RowLength, nOut = weight.RowCount;
        long rowBytes = weight.RowBytes;
        float[] scratch = _tileRows is { } buffer && buffer.Length >= 4 * nIn ? buffer : _tileRows = new float[4 * nIn];
        bool wide = Vector512.IsHardwareAccelerated && nIn % 16 == 0;
        fixed (float* expanded = scratch)
        {
            for (int o = rowStart; o < rowEnd; o += 4)
            {
                int rows = Math.Min(4, rowEnd - o);
                float* w;
                if (weight.Type == GgmlType.F32) w = (float*)(weight.Data + o * rowBytes);
                else
                {
                    for (int r = 0; r < rows; r++) RowConvert.Row(weight, o + r, new Span<float>(expanded + r * nIn, nIn));
                    w = expanded;
                }
                int b = 0;
                if (rows == 4 && wide)
                    for (; b + 4 <= nBatch; b += 4) Tile4x4Wide(w, nIn, x + (long)b * nIn, y + (long)b * nOut + o, nOut);
                else if (rows == 4)
                    for (; b + 4 <= nBatch; b += 4) Tile4x4(w, nIn, x + (long)b * nIn, y + (long)b * nOut + o, nOut);
                for (; b < nBatch; b++)
                    for (int r = 0; r < rows; r++)
                        y[(long)b * nOut + o + r] = TensorPrimitives.Dot(new ReadOnlySpan<float>(w + (long)r * nIn, nIn), new ReadOnlySpan<float>(x + (long)b * nIn, nIn));
            }
        }
    }

    /// <summary>y[b, r] = w[r] · x[b] for r, b in 0..3; rows of w and x are n floats apart, n a multiple of 8.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Tile4x4(float* w, int n, float* x, float* y, int yStride)
    {
        Vector256<float> a00 = default, a01 = default, a02 = default, a03 = default;
        Vector256<float> a10 = default, a11 = default, a12 = default, a13 = default;
        Vector256<float> a20 = default, a21 = default, a22 = default, a23 = default;
        Vector256<float> a30 = default, a31 = default, a32 = default, a33 = default;
        for (int k = 0; k < n; k += 8)
        {
            Vector256<float> x0 = Vector256.Load(x + k), x1 = Vector256.Load(x + n + k), x2 = Vector256.Load(x + 2 * n + k), x3 = Vector256.Load(x + 3 * n + k);
            Vector256<float> w0 = Vector256.Load(w + k);
            a00 = Vector256.FusedMultiplyAdd(w0, x0, a00); a01 = Vector256.FusedMultiplyAdd(w0, x1, a01);
            a02 = Vector256.FusedMultiplyAdd(w0, x2, a02); a03 = Vector256.FusedMultiplyAdd(w0, x3, a03);
            Vector256<float> w1 = Vector256.Load(w + n + k);
            a10 = Vector256.FusedMultiplyAdd(w1, x0, a10); a11 = Vector256.FusedMultiplyAdd(w1, x1, a11);
            a12 = Vector256.FusedMultiplyAdd(w1, x2, a12); a13 = Vector256.FusedMultiplyAdd(w1, x3, a13);
            Vector256<float> w2 = Vector256.Load(w + 2 * n + k);
            a20 = Vector256.FusedMultiplyAdd(w2, x0, a20); a21 = Vector256.FusedMultiplyAdd(w2, x1, a21);
            a22 = Vector256.FusedMultiplyAdd(w2, x2, a22); a23 = Vector256.FusedMultiplyAdd(w2, x3, a23);
            Vector256<float> w3 = Vector256.Load(w + 3 * n + k);
            a30 = Vector256.FusedMultiplyAdd(w3, x0, a30); a31 = Vector256.FusedMultiplyAdd(w3, x1, a31);
            a32 = Vector256.FusedMultiplyAdd(w3, x2, a32); a33 = Vector256.FusedMultiplyAdd(w3, x3, a33);
        }
        y[0] = Vector256.Sum(a00); y[yStride] = Vector256.Sum(a01); y[2 * yStride] = Vector256.Sum(a02); y[3 * yStride] = Vector256.Sum(a03);
        y[1] = Vector256.Sum(a10); y[yStride + 1] = Vector256.Sum(a11); y[2 * yStride + 1] = Vector256.Sum(a12); y[3 * yStride + 1] = Vector256.Sum(a13);
        y[2] = Vector256.Sum(a20); y[yStride + 2] = Vector256.Sum(a21); y[2 * yStride + 2] = Vector256.Sum(a22); y[3 * yStride + 2] = Vector256.Sum(a23);
        y[3] = Vector256.Sum(a30); y[yStride + 3] = Vector256.Sum(a31); y[2 * yStride + 3] = Vector256.Sum(a32); y[3 * yStride + 3] = Vector256.Sum(a33);
    }

    /// <summary>y[b, r] = w[r] · x[b] for r, b in 0..3; rows of w and x are n floats apart, n a multiple of 16 (AVX-512).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Tile4x4Wide(float* w, int n, float* x, float* y, int yStride)
    {
        Vector512<float> a00 = default, a01 = default, a02 = default, a03 = default;
        Vector512<float> a10 = default, a11 = default, a12 = default, a13 = default;
        Vector512<float> a20 = default, a21 = default, a22 = default, a23 = default;
        Vector512<float> a30 = default, a31 = default, a32 = default, a33 = default;
        for (int k = 0; k < n; k += 16)
        {
            Vector512<float> x0 = Vector512.Load(x + k), x1 = Vector512.Load(x + n + k), x2 = Vector512.Load(x + 2 * n + k), x3 = Vector512.Load(x + 3 * n + k);
            Vector512<float> w0 = Vector512.Load(w + k);
            a00 = Vector512.FusedMultiplyAdd(w0, x0, a00); a01 = Vector512.FusedMultiplyAdd(w0, x1, a01);
            a02 = Vector512.FusedMultiplyAdd(w0, x2, a02); a03 = Vector512.FusedMultiplyAdd(w0, x3, a03);
            Vector512<float> w1 = Vector512.Load(w + n + k);
            a10 = Vector512.FusedMultiplyAdd(w1, x0, a10); a11 = Vector512.FusedMultiplyAdd(w1, x1, a11);
            a12 = Vector512.FusedMultiplyAdd(w1, x2, a12); a13 = Vector512.FusedMultiplyAdd(w1, x3, a13);
            Vector512<float> w2 = Vector512.Load(w + 2 * n + k);
            a20 = Vector512.FusedMultiplyAdd(w2, x0, a20); a21 = Vector512.FusedMultiplyAdd(w2, x1, a21);
            a22 = Vector512.FusedMultiplyAdd(w2, x2, a22); a23 = Vector512.FusedMultiplyAdd(w2, x3, a23);
            Vector512<float> w3 = Vector512.Load(w + 3 * n + k);
            a30 = Vector512.FusedMultiplyAdd(w3, x0, a30); a31 = Vector512.FusedMultiplyAdd(w3, x1, a31);
            a32 = Vector512.FusedMultiplyAdd(w3, x2, a32); a33 = Vector512.FusedMultiplyAdd(w3, x3, a33);
        }
        y[0] = Vector512.Sum(a00); y[yStride] = Vector512.Sum(a01); y[2 * yStride] = Vector512.Sum(a02); y[3 * yStride] = Vector512.Sum(a03);
        y[1] = Vector512.Sum(a10); y[yStride + 1] = Vector512.Sum(a11); y[2 * yStride + 1] = Vector512.Sum(a12); y[3 * yStride + 1] = Vector512.Sum(a13);
        y[2] = Vector512.Sum(a20); y[yStride + 2] = Vector512.Sum(a21); y[2 * yStride + 2] = Vector512.Sum(a22); y[3 * yStride + 2] = Vector512.Sum(a23);
        y[3] = Vector512.Sum(a30); y[yStride + 3] = Vector512.Sum(a31); y[2 * yStride + 3] = Vector512.Sum(a32); y[3 * yStride + 3] = Vector512.Sum(a33);
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
