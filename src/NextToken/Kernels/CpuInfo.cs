using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace NextToken.Kernels;

/// <summary>
/// What the instruction-set flags do not tell: whether this CPU runs 512-bit vector operations at full width. AMD Zen 4
/// (family 19h with AVX-512) splits each into two 256-bit halves, so a 512-bit kernel there does the work of two 256-bit
/// ones and its extra permutes and mask operations cost rather than pay (Zen 5, family 1Ah, and Intel's AVX-512 parts
/// run them whole).
/// </summary>
internal static class CpuInfo
{
    /// <summary>
    /// True on a CPU with AVX-512 whose 512-bit operations are split in two (Zen 4). <c>NEXTTOKEN_SPLIT_WIDE=0</c> or <c>1</c>
    /// overrides the detection (to compare both paths on one machine); any other value leaves it to the detection.
    /// </summary>
    public static bool SplitsWideVectors { get; } = Detect();

    private static bool Detect()
    {
        string? forced = Environment.GetEnvironmentVariable("NEXTTOKEN_SPLIT_WIDE");
        if (forced is "0" or "1") return forced == "1";
        if (!X86Base.IsSupported || !Vector512.IsHardwareAccelerated) return false;
        (_, int ebx, int ecx, int edx) = X86Base.CpuId(0, 0);
        bool amd = ebx == 0x68747541 && edx == 0x69746e65 && ecx == 0x444d4163; // "AuthenticAMD"
        if (!amd) return false;
        (int eax, _, _, _) = X86Base.CpuId(1, 0);
        int family = (eax >> 8) & 0xF;
        if (family == 0xF) family += (eax >> 20) & 0xFF;
        return family == 0x19;
    }
}
