using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace NextToken.Kernels;

/// <summary>
/// What the instruction-set flags do not tell: whether this CPU runs 512-bit vector operations at full width, and which
/// cache level a streaming kernel should prefetch into. AMD Zen 4 (family 19h with AVX-512) splits each 512-bit operation
/// into two 256-bit halves, so a 512-bit kernel there does the work of two 256-bit ones and its extra permutes and mask
/// operations cost rather than pay (Zen 5, family 1Ah, and Intel's AVX-512 parts run them whole).
/// </summary>
internal static class CpuInfo
{
    /// <summary>
    /// True on a CPU with AVX-512 whose 512-bit operations are split in two (Zen 4). <c>NEXTTOKEN_SPLIT_WIDE=0</c> or <c>1</c>
    /// overrides the detection (to compare both paths on one machine); any other value leaves it to the detection.
    /// </summary>
    public static bool SplitsWideVectors { get; } = Detect();

    /// <summary>
    /// True where the streaming decode kernels (F32, F16, BF16 rows) should prefetch into L2 (<c>prefetcht1</c>) rather than
    /// L1 (<c>prefetcht0</c>): AMD family 19h (Zen 3 and Zen 4), whatever vector width is enabled. On a Zen 4 a stream
    /// prefetched into L1 was held to ~13 GB/s per thread by L1's few outstanding misses, into L2 21–24 (sixteenth
    /// session); on a Zen 5 (family 1Ah) L1 is the faster of the two (twentieth session, alternating runs of one build with
    /// this override, GPT-2 F32/F16, Llama 135M F32 and 1.1B F16 generation, 1 and 2 threads, AVX-512 and AVX2: L1 faster in
    /// 43 of 48 pairs, the best runs 1.01–1.56× those with L2), and the Intel parts were measured with L1. Zen 3 (no
    /// AVX-512, not measured) is taken with Zen 4, its family.
    /// <c>NEXTTOKEN_PREFETCH_L2=0</c> or <c>1</c> overrides the detection.
    /// </summary>
    public static bool PrefetchesToL2 { get; } = Override("NEXTTOKEN_PREFETCH_L2") ?? (X86Base.IsSupported && AmdFamily() == 0x19);

    private static bool Detect() =>
        Override("NEXTTOKEN_SPLIT_WIDE") ?? (X86Base.IsSupported && Vector512.IsHardwareAccelerated && AmdFamily() == 0x19);

    private static bool? Override(string variable) => Environment.GetEnvironmentVariable(variable) switch
    {
        "0" => false,
        "1" => true,
        _ => null,
    };

    /// <summary>The CPU's family (with the extended family added) if it is an AMD one, else −1.</summary>
    private static int AmdFamily()
    {
        (_, int ebx, int ecx, int edx) = X86Base.CpuId(0, 0);
        bool amd = ebx == 0x68747541 && edx == 0x69746e65 && ecx == 0x444d4163; // "AuthenticAMD"
        if (!amd) return -1;
        (int eax, _, _, _) = X86Base.CpuId(1, 0);
        int family = (eax >> 8) & 0xF;
        if (family == 0xF) family += (eax >> 20) & 0xFF;
        return family;
    }
}
