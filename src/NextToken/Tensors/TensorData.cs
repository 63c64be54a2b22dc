namespace NextToken.Tensors;

/// <summary>
/// A read-only view of one tensor's bytes inside a memory-mapped weight file. Dimensions are in
/// ggml order: <c>Dims[0]</c> is the innermost (contiguous) axis, so a matrix stored
/// <c>[out][in]</c> row-major has <c>Dims = [in, out]</c>.
/// </summary>
public readonly unsafe struct TensorData
{
    public TensorData(string name, GgmlType type, long[] dims, byte* data, long byteLength, bool transposed = false)
        : this(name, type, dims, data, byteLength, transposed, type == GgmlType.F16 ? new HalfScan(data, byteLength) : null)
    {
    }

    private TensorData(string name, GgmlType type, long[] dims, byte* data, long byteLength, bool transposed, HalfScan? halves)
    {
        Name = name;
        Type = type;
        Dims = dims;
        Data = data;
        ByteLength = byteLength;
        Transposed = transposed;
        _halves = halves;
    }

    // The scan of the whole tensor, shared by every copy and view of it (a view of a finite tensor is finite).
    private readonly HalfScan? _halves;

    /// <summary>
    /// For float16 data: true when no stored value is an infinity or a NaN, so decode may skip its per-value check
    /// (<see cref="Kernels.HalfRows"/>). The whole tensor is scanned once, on the first ask, for it and every view taken
    /// from it (<see cref="Matrix"/>, <see cref="Rows"/>); false for other types and when a value is not finite.
    /// </summary>
    public bool HalvesAllFinite => _halves?.AllFinite ?? false;

    /// <summary>
    /// A matrix whose <see cref="Dims"/> are [in, out] as usual but whose bytes are stored
    /// [in][out] (Hugging Face GPT-2's Conv1D layout) rather than [out][in]. Only
    /// <see cref="Kernels.MatMul"/> reads such a tensor; rows cannot be taken from it.
    /// </summary>
    public bool Transposed { get; }

    public string Name { get; }
    public GgmlType Type { get; }
    public long[] Dims { get; }
    public byte* Data { get; }
    public long ByteLength { get; }

    public long ElementCount
    {
        get
        {
            long n = 1;
            foreach (long d in Dims) n *= d;
            return n;
        }
    }

    /// <summary>Elements in one row (the innermost axis).</summary>
    public int RowLength => (int)Dims[0];

    /// <summary>Number of rows: the product of every axis but the innermost.</summary>
    public int RowCount => (int)(ElementCount / Dims[0]);

    public long RowBytes => GgmlTypeInfo.RowBytes(Type, Dims[0]);

    public ReadOnlySpan<byte> Row(int row) => Transposed
        ? throw new InvalidOperationException($"tensor '{Name}' is stored transposed; its rows are not contiguous")
        : new(Data + row * RowBytes, checked((int)RowBytes));

    /// <summary>Matrix <paramref name="index"/> of a 3-D tensor (e.g. one expert's weights) as a 2-D view.</summary>
    public TensorData Matrix(int index)
    {
        if (Dims.Length != 3 || (uint)index >= (uint)Dims[2])
            throw new ArgumentOutOfRangeException(nameof(index), $"tensor '{Name}' {ShapeText} has no matrix {index}");
        long bytes = RowBytes * Dims[1];
        return new TensorData($"{Name}[{index}]", Type, [Dims[0], Dims[1]], Data + index * bytes, bytes, false, _halves);
    }

    /// <summary>
    /// Rows <paramref name="first"/> … first+count−1 of a matrix as a matrix of their own: the parts
    /// of a fused tensor (Phi-3's q/k/v in <c>attn_qkv</c>, gate and up in <c>ffn_up</c>), left in place.
    /// </summary>
    public TensorData Rows(int first, int count)
    {
        if (Dims.Length != 2 || Transposed || first < 0 || count < 1 || (long)first + count > Dims[1])
            throw new ArgumentOutOfRangeException(nameof(first), $"tensor '{Name}' {ShapeText} has no rows {first}…{first + count - 1}");
        return new TensorData($"{Name}[{first}:{first + count}]", Type, [Dims[0], count], Data + first * RowBytes, count * RowBytes, false, _halves);
    }

    public string ShapeText => "[" + string.Join(", ", Dims) + "]";
}
