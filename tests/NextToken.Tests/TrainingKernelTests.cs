using NextToken.Training;
using Xunit.Abstractions;

namespace NextToken.Tests;

/// <summary>The training matmul (vector four-row kernel and scalar tails) against its scalar reference.</summary>
public class TrainingKernelTests(ITestOutputHelper output)
{
    private static float[] RandomVector(int n, int seed)
    {
        var random = new Random(seed);
        var v = new float[n];
        for (int i = 0; i < n; i++) v[i] = (float)(random.NextDouble() * 2 - 1);
        return v;
    }

    public static TheoryData<int, int, int, bool, int> Shapes()
    {
        var data = new TheoryData<int, int, int, bool, int>();
        foreach (int width in new[] { 0, 256, 512 })
        {
            data.Add(1, 1, 1, false, width);
            data.Add(4, 16, 16, false, width);
            data.Add(7, 33, 45, true, width);      // row and column tails
            data.Add(64, 300, 192, true, width);   // several K blocks
            data.Add(130, 64, 560, false, width);  // 512-bit blocks, then a 256-bit block, then a tail
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void MatMul_MatchesScalarReference(int m, int k, int n, bool accumulate, int width)
    {
        // A kernel this CPU cannot run is reported as such, not passed.
        if (width == 512 && !System.Runtime.Intrinsics.Vector512.IsHardwareAccelerated || width == 256 && !System.Runtime.Intrinsics.Vector256.IsHardwareAccelerated)
        {
            Assert.Throws<PlatformNotSupportedException>(() => TrainingKernels.MatMul(new float[1], new float[1], new float[1], 1, 1, 1, false, 1, width));
            output.WriteLine($"{width}-bit kernel not available on this CPU: not tested here");
            return;
        }
        float[] a = RandomVector(m * k, 1), b = RandomVector(k * n, 2), start = RandomVector(m * n, 3);
        float[] expected = (float[])start.Clone(), actual = (float[])start.Clone();
        TrainingKernels.MatMulReference(a, b, expected, m, k, n, accumulate);
        TrainingKernels.MatMul(a, b, actual, m, k, n, accumulate, threads: 2, width);
        double maxDiff = 0;
        for (int i = 0; i < expected.Length; i++) maxDiff = Math.Max(maxDiff, Math.Abs(expected[i] - actual[i]));
        output.WriteLine($"width {width} [{m},{k}]x[{k},{n}] accumulate={accumulate}: max |diff| {maxDiff:E2}");
        Assert.True(maxDiff <= 1e-5 * Math.Sqrt(k), $"max diff {maxDiff}");
    }

    [Fact]
    public void MatMul_IsTheSameForAnyThreadCount()
    {
        int m = 96, k = 80, n = 72;
        float[] a = RandomVector(m * k, 4), b = RandomVector(k * n, 5);
        float[] one = new float[m * n], two = new float[m * n];
        TrainingKernels.MatMul(a, b, one, m, k, n, false, threads: 1);
        TrainingKernels.MatMul(a, b, two, m, k, n, false, threads: 2);
        Assert.Equal(one, two);
    }

    [Fact]
    public void GeluBackward_MatchesScalarReference()
    {
        float[] x = RandomVector(1003, 7), d = RandomVector(1003, 8);
        for (int i = 0; i < x.Length; i++) x[i] *= 12; // into both saturated tails
        x[0] = 0; x[1] = 80; x[2] = -80;
        float[] expected = (float[])d.Clone(), actual = (float[])d.Clone();
        TrainingKernels.GeluBackwardReference(x, expected);
        TrainingKernels.GeluBackward(x, actual);
        double maxDiff = 0;
        for (int i = 0; i < x.Length; i++) maxDiff = Math.Max(maxDiff, Math.Abs(expected[i] - actual[i]));
        output.WriteLine($"GELU backward, vector ({TrainingKernels.BestWidth}-bit) vs scalar: max |diff| {maxDiff:E2}");
        // The exp form of tanh rounds differently near 0 (1 − 2/(1 + e^2u) cancels); x·sech² (|x| up to 12 here) scales that.
        Assert.True(maxDiff <= 4e-6, $"max diff {maxDiff}");
    }

    [Fact]
    public void Transpose_SwapsRowsAndColumns()
    {
        float[] src = RandomVector(37 * 45, 6), dst = new float[37 * 45];
        TrainingKernels.Transpose(src, 37, 45, dst);
        for (int r = 0; r < 37; r++)
            for (int c = 0; c < 45; c++) Assert.Equal(src[r * 45 + c], dst[c * 37 + r]);
    }
}
