using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace NextToken.Kernels;

// Shared by the 8-bit (KQuantActivations) and 24-bit (KQuantPlanes) integer kernels: where a Q4_K or Q5_K value's
// bits lie in its super-block, as 32 unsigned bytes ready for vpmaddubsw.

/// <summary>Q4_K (no fifth bits, nibbles at 16) or Q5_K (fifth bits at 16, nibbles at 48).</summary>
internal unsafe interface IFifthBit
{
    static abstract int Nibbles { get; }
    static abstract Vector256<byte> Low(byte* block, int g, Vector256<byte> nibbles);
    static abstract Vector256<byte> High(byte* block, int g, Vector256<byte> nibbles);
}

internal readonly unsafe struct NoFifthBit : IFifthBit
{
    public static int Nibbles => 16;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<byte> Low(byte* block, int g, Vector256<byte> nibbles) => nibbles;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<byte> High(byte* block, int g, Vector256<byte> nibbles) => nibbles;
}

internal readonly unsafe struct FifthBit : IFifthBit
{
    public static int Nibbles => 48;

    // Bit 2g (low nibbles) or 2g + 1 (high) of each of the 32 bytes at 16, moved to bit 4 by one
    // 16-bit shift: bits crossing from the neighbouring byte land below bit 4 (left shifts) or
    // above it (right shifts), so the mask keeps only the wanted bit. g is a constant after inlining.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<byte> Low(byte* block, int g, Vector256<byte> nibbles) => nibbles | Bit(Vector256.Load((ushort*)(block + 16)), 4 - 2 * g);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<byte> High(byte* block, int g, Vector256<byte> nibbles) => nibbles | Bit(Vector256.Load((ushort*)(block + 16)), 3 - 2 * g);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<byte> Bit(Vector256<ushort> bits, int left) =>
        (left >= 0 ? Vector256.ShiftLeft(bits, left) : Vector256.ShiftRightLogical(bits, -left)).AsByte() & Vector256.Create((byte)0x10);
}
