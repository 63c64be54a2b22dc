using System.Runtime.Intrinsics;

namespace NextToken.Tensors;

/// <summary>
/// Whether a block of float16 values holds an infinity or a NaN (exponent bits all ones), found by one pass on first ask
/// and kept: a decode step then converts without checking each value (<see cref="TensorData.HalvesAllFinite"/>). Two
/// threads asking at once may both scan; they reach the same answer.
/// </summary>
internal sealed unsafe class HalfScan(byte* data, long byteLength)
{
    private const int Unknown = 0, Finite = 1, NotFinite = 2;
    private int _state;

    public bool AllFinite
    {
        get
        {
            int state = Volatile.Read(ref _state);
            if (state == Unknown) Volatile.Write(ref _state, state = Scan((ushort*)data, byteLength / 2) ? Finite : NotFinite);
            return state == Finite;
        }
    }

    /// <summary>True when no value of h[0..count) has all exponent bits set: h doubled (the sign shifted out) stays below 0xF800.</summary>
    private static bool Scan(ushort* h, long count)
    {
        long i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            Vector256<ushort> largest = default;
            for (; i + 16 <= count; i += 16)
            {
                Vector256<ushort> raw = Vector256.Load(h + i);
                largest = Vector256.Max(largest, raw + raw);
            }
            if (Vector256.GreaterThanOrEqualAny(largest, Vector256.Create((ushort)0xF800))) return false;
        }
        for (; i < count; i++)
            if ((h[i] & 0x7C00) == 0x7C00) return false;
        return true;
    }
}
