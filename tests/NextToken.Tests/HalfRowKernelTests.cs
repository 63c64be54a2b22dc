using NextToken.Kernels;
using NextToken.Tensors;
using Xunit.Abstractions;

namespace NextToken.Tests;

/// <summary>
/// The float16 and bfloat16 decode kernels (<see cref="HalfRows"/>), every group size and vector width, against
/// <see cref="ScalarReference.HalfRowDots"/>; a width this CPU lacks is skipped, never passed.
/// </summary>
public unsafe class HalfRowKernelTests(ITestOutputHelper output)
{
    public static TheoryData<int, int, int> Shapes()
    {
        var data = new TheoryData<int, int, int>();
        foreach (int bits in new[] { 512, 256 })
            foreach (int group in new[] { 8, 4 })
                foreach (int n in new[] { 16, 48, 96, 784, 1040 }) // 48, 784 and 1040 are not multiples of 32 / 64
                    data.Add(bits, group, n);
        return data;
    }

    public static TheoryData<int, int> Kernels()
    {
        var data = new TheoryData<int, int>();
        foreach (int bits in new[] { 512, 256 })
            foreach (int group in new[] { 8, 4 })
                data.Add(bits, group);
        return data;
    }

    private static void SkipUnlessAvailable(int bits) =>
        Skip.IfNot(bits == 512 ? HalfRows.Wide : HalfRows.Narrow,
            bits == 512 ? "an AVX-512 kernel; this CPU (or DOTNET_EnableAVX512=0) has no AVX-512" : "an AVX2+FMA kernel; this CPU (or DOTNET_EnableAVX2=0) has none");

    /// <summary>Runs the kernel on <paramref name="group"/> rows <paramref name="stride"/> halves apart.</summary>
    private static float[] Run(int bits, int group, ushort[] rows, int stride, float[] x, int n, bool brain = false)
    {
        var y = new float[group];
        fixed (ushort* w = rows)
        fixed (float* xp = x, yp = y)
        {
            if (brain && group == 8) HalfRows.BrainEight(bits == 512, w, stride, xp, n, yp);
            else if (brain) HalfRows.BrainFour(bits == 512, w, stride, xp, n, yp);
            else if (group == 8) HalfRows.Eight(bits == 512, w, stride, xp, n, yp);
            else HalfRows.Four(bits == 512, w, stride, xp, n, yp);
        }
        return y;
    }

    /// <summary>
    /// A row gets the same bits whether it runs in a group of eight or of four: row ranges split
    /// differently with the batch size, and a server's streams must each get what they would get
    /// alone. Row 5 holds an infinity, so the general-conversion redo is exercised too: it must
    /// touch only that row, never its neighbours.
    /// </summary>
    [SkippableTheory]
    [InlineData(512, false)]
    [InlineData(256, false)]
    [InlineData(512, true)]
    [InlineData(256, true)]
    public void EightAndFour_GiveEveryRowTheSameBits(int bits, bool brain)
    {
        SkipUnlessAvailable(bits);
        foreach (int n in new[] { 48, 784 })
        {
            ushort[] rows = brain ? RandomBrainRows(8 * n, n) : RandomRows(8 * n, n);
            if (!brain) rows[5 * n + 7] = 0x7C00; // +infinity in row 5
            var x = new float[n];
            var random = new Random(n + 1);
            for (int i = 0; i < n; i++) x[i] = (float)(random.NextDouble() * 2 - 1);
            float[] eight = Run(bits, 8, rows, n, x, n, brain);
            float[] low = Run(bits, 4, rows, n, x, n, brain);
            float[] high = Run(bits, 4, rows[(4 * n)..], n, x, n, brain);
            float[] fours = [.. low, .. high];
            output.WriteLine($"{bits} bits, {(brain ? "bf16" : "f16")}, n {n}: eight {string.Join(" ", eight)}");
            for (int r = 0; r < 8; r++)
                Assert.True(BitConverter.SingleToInt32Bits(eight[r]) == BitConverter.SingleToInt32Bits(fours[r]), $"row {r}: {eight[r]} in a group of 8, {fours[r]} in a group of 4");
        }
    }

    private static double Value(ushort bits, bool brain) =>
        brain ? BitConverter.UInt32BitsToSingle((uint)bits << 16) : (double)BitConverter.UInt16BitsToHalf(bits);

    /// <summary>Random bfloat16 values of about ±2 (float32 rounded to nearest even), one in 16 a random subnormal (or ±0).</summary>
    private static ushort[] RandomBrainRows(int count, int seed)
    {
        var random = new Random(seed);
        var rows = new ushort[count];
        for (int i = 0; i < count; i++)
        {
            uint single = BitConverter.SingleToUInt32Bits((float)(random.NextDouble() * 4 - 2));
            rows[i] = random.Next(16) == 0
                ? (ushort)(random.Next(0x80) | (random.Next(2) << 15))
                : (ushort)((single + 0x7FFF + ((single >> 16) & 1)) >> 16);
        }
        return rows;
    }

    /// <summary>Random halves of about ±2, one in 16 a random subnormal (or ±0).</summary>
    private static ushort[] RandomRows(int count, int seed)
    {
        var random = new Random(seed);
        var rows = new ushort[count];
        for (int i = 0; i < count; i++)
            rows[i] = random.Next(16) == 0
                ? (ushort)(random.Next(0x400) | (random.Next(2) << 15))
                : BitConverter.HalfToUInt16Bits((Half)(random.NextDouble() * 4 - 2));
        return rows;
    }

    private static float[] RandomVector(int n, int seed, double scale = 1)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, n).Select(_ => (float)((random.NextDouble() * 2 - 1) * scale)).ToArray();
    }

    /// <summary>
    /// |actual − expected| within 1e-5 of Σ|w·x| (float32 summation of n products, in any order, errs by
    /// well under that); NaN and infinities must match exactly. Returns the largest difference.
    /// </summary>
    private static double AssertMatches(ushort[] rows, int stride, int group, float[] x, int n, float[] actual, bool brain = false)
    {
        var expected = new float[group];
        ScalarReference.HalfRowDots(rows, stride, group, x, n, expected, brain);
        double maxDiff = 0;
        for (int r = 0; r < group; r++)
        {
            if (!float.IsFinite(expected[r]))
            {
                Assert.True(expected[r].Equals(actual[r]), $"row {r}: expected {expected[r]}, got {actual[r]}");
                continue;
            }
            double magnitude = 0;
            for (int i = 0; i < n; i++) magnitude += Math.Abs(Value(rows[r * stride + i], brain) * x[i]);
            double diff = Math.Abs(expected[r] - (double)actual[r]);
            maxDiff = Math.Max(maxDiff, diff);
            Assert.True(diff <= 1e-5 * magnitude, $"row {r}: expected {expected[r]}, got {actual[r]} (|diff| {diff:E2}, Σ|w·x| {magnitude:E2})");
        }
        return maxDiff;
    }

    [SkippableTheory]
    [MemberData(nameof(Shapes))]
    public void Rows_MatchScalarReference(int bits, int group, int n)
    {
        SkipUnlessAvailable(bits);
        int stride = n + 32; // rows apart by more than their length, as a strided view would be
        ushort[] rows = RandomRows(group * stride, n + group);
        float[] x = RandomVector(n, n);
        double maxDiff = AssertMatches(rows, stride, group, x, n, Run(bits, group, rows, stride, x, n));
        output.WriteLine($"{bits}-bit, {group} rows, n {n}: max |diff| to the float64 reference {maxDiff:E2} (tolerance 1e-5·Σ|w·x|)");
    }

    [SkippableTheory]
    [MemberData(nameof(Kernels))]
    public void NonFiniteWeights_TakeTheGeneralConversion(int bits, int group)
    {
        SkipUnlessAvailable(bits);
        const int n = 48; // the AVX-512 kernels' last 16 values are their tail
        foreach (int at in new[] { 5, 20, 40 })
        {
            ushort[] rows = RandomRows(group * n, at);
            float[] x = RandomVector(n, 7);
            rows[1 * n + at] = BitConverter.HalfToUInt16Bits(Half.PositiveInfinity);
            rows[2 * n + at] = BitConverter.HalfToUInt16Bits(Half.NegativeInfinity);
            rows[3 * n + at] = 0x7E01;                                          // a NaN with payload
            rows[0 * n + at] = BitConverter.HalfToUInt16Bits(Half.PositiveInfinity);
            rows[0 * n + (at + 1) % n] = BitConverter.HalfToUInt16Bits(x[at] * x[(at + 1) % n] > 0 ? Half.NegativeInfinity : Half.PositiveInfinity); // inf − inf = NaN
            float[] y = Run(bits, group, rows, n, x, n);
            Assert.True(float.IsNaN(y[0]) && float.IsNaN(y[3]), $"rows 0 and 3: {y[0]}, {y[3]}");
            Assert.Equal(x[at] > 0 ? float.PositiveInfinity : float.NegativeInfinity, y[1]);
            AssertMatches(rows, n, group, x, n, y);
        }
    }

    [SkippableTheory]
    [MemberData(nameof(Kernels))]
    public void LargeActivations_TakeTheGeneralConversion(int bits, int group)
    {
        // x·2¹¹² overflows float32 for |x| ≥ 2¹⁶; the result must still be the finite float32 one.
        SkipUnlessAvailable(bits);
        const int n = 64;
        ushort[] rows = RandomRows(group * n, 3);
        float[] x = RandomVector(n, 4);
        x[10] = 3e6f;
        x[33] = -70000f;
        float[] y = Run(bits, group, rows, n, x, n);
        Assert.All(y, v => Assert.True(float.IsFinite(v), $"{v}"));
        double maxDiff = AssertMatches(rows, n, group, x, n, y);
        output.WriteLine($"{bits}-bit, {group} rows, |x| up to 3e6: max |diff| {maxDiff:E2}");
    }

    [SkippableTheory]
    [MemberData(nameof(Kernels))]
    public void EveryBitPattern_ConvertsExactly(int bits, int group)
    {
        // Each of the 65,536 patterns alone in its row against x = e_j: the result is the value itself.
        SkipUnlessAvailable(bits);
        const int n = 32;
        var x = new float[n];
        var rows = new ushort[group * n];
        for (int start = 0; start < 65536; start += group)
        {
            int j = (start / group) % n;
            Array.Clear(rows);
            Array.Clear(x);
            x[j] = 1;
            for (int r = 0; r < group; r++) rows[r * n + j] = (ushort)(start + r);
            float[] y = Run(bits, group, rows, n, x, n);
            for (int r = 0; r < group; r++)
            {
                float expected = (float)BitConverter.UInt16BitsToHalf((ushort)(start + r));
                // == rather than bits: −0 sums to +0 (the accumulators start at +0), as in any dot product.
                Assert.True(float.IsNaN(expected) ? float.IsNaN(y[r]) : expected == y[r],
                    $"bits 0x{start + r:X4}: {y[r]} vs {expected}");
            }
        }
    }

    [SkippableTheory]
    [MemberData(nameof(Shapes))]
    public void BrainRows_MatchScalarReference(int bits, int group, int n)
    {
        SkipUnlessAvailable(bits);
        int stride = n + 32;
        ushort[] rows = RandomBrainRows(group * stride, n + group);
        float[] x = RandomVector(n, n);
        double maxDiff = AssertMatches(rows, stride, group, x, n, Run(bits, group, rows, stride, x, n, brain: true), brain: true);
        output.WriteLine($"bfloat16, {bits}-bit, {group} rows, n {n}: max |diff| to the float64 reference {maxDiff:E2} (tolerance 1e-5·Σ|w·x|)");
    }

    [SkippableTheory]
    [MemberData(nameof(Kernels))]
    public void BrainRows_NonFiniteWeights_GiveTheirFloat32Result(int bits, int group)
    {
        SkipUnlessAvailable(bits);
        const int n = 48;
        foreach (int at in new[] { 5, 20, 40 }) // the AVX-512 kernels' even and odd lanes, and their tail
        {
            ushort[] rows = RandomBrainRows(group * n, at);
            float[] x = RandomVector(n, 8);
            rows[1 * n + at] = 0x7F80;  // +inf
            rows[2 * n + at] = 0xFF80;  // −inf
            rows[3 * n + at] = 0x7FC1;  // NaN
            float[] y = Run(bits, group, rows, n, x, n, brain: true);
            Assert.True(float.IsNaN(y[3]), $"row 3: {y[3]}");
            Assert.Equal(x[at] > 0 ? float.PositiveInfinity : float.NegativeInfinity, y[1]);
            AssertMatches(rows, n, group, x, n, y, brain: true);
        }
    }

    [SkippableFact]
    public void ToSingle_EveryFiniteBitPattern_ConvertsExactly()
    {
        // The 63,488 finite patterns (+ 3, so a tail is left to the caller) in one row: the fast path
        // takes every whole vector and converts each value exactly, ±0 and subnormals included.
        Skip.IfNot(HalfRows.Wide || HalfRows.Narrow, "no 256- or 512-bit kernels on this CPU");
        ushort[] bits = Enumerable.Range(0, 65536).Select(i => (ushort)i).Where(b => Half.IsFinite(BitConverter.UInt16BitsToHalf(b))).Concat(new ushort[] { 1, 2, 3 }).ToArray();
        var converted = new float[bits.Length];
        int done;
        fixed (ushort* h = bits)
        fixed (float* d = converted)
            done = HalfRows.ToSingle(h, d, bits.Length);
        Assert.Equal(bits.Length / 16 * 16, done);
        for (int i = 0; i < done; i++)
        {
            float expected = (float)BitConverter.UInt16BitsToHalf(bits[i]);
            Assert.True(BitConverter.SingleToUInt32Bits(expected) == BitConverter.SingleToUInt32Bits(converted[i]), $"bits 0x{bits[i]:X4}: {converted[i]} vs {expected}");
        }
    }

    [SkippableTheory]
    [InlineData((ushort)0x7C00)]
    [InlineData((ushort)0xFC00)]
    [InlineData((ushort)0x7E00)]
    [InlineData((ushort)0xFFFF)]
    public void ToSingle_NonFiniteValue_LeavesTheRowToTheGeneralConversion(ushort special)
    {
        Skip.IfNot(HalfRows.Wide || HalfRows.Narrow, "no 256- or 512-bit kernels on this CPU");
        ushort[] bits = RandomRows(96, 5);
        bits[70] = special;
        var converted = new float[96];
        fixed (ushort* h = bits)
        fixed (float* d = converted)
            Assert.Equal(0, HalfRows.ToSingle(h, d, bits.Length));
        RowConvert.ToSingle(GgmlType.F16, System.Runtime.InteropServices.MemoryMarshal.AsBytes(bits.AsSpan()), converted);
        Assert.Equal(BitConverter.UInt16BitsToHalf(special) is var value && float.IsNaN((float)value) ? float.NaN : (float)value, converted[70]);
        Assert.Equal((float)BitConverter.UInt16BitsToHalf(bits[3]), converted[3]);
    }

    /// <summary>
    /// Rows known to hold no infinity or NaN skip the kernels' check; on such rows the unchecked kernels must give the
    /// checked ones' bits, every width and group size, at lengths with and without a last 16.
    /// </summary>
    [SkippableTheory]
    [MemberData(nameof(Kernels))]
    public void KnownFiniteRows_GiveTheCheckedKernelsBits(int bits, int group)
    {
        SkipUnlessAvailable(bits);
        foreach (int n in new[] { 48, 784, 2048 })
        {
            ushort[] rows = RandomRows(group * n, n + 3);
            float[] x = RandomVector(n, n);
            var checkedY = new float[group];
            var uncheckedY = new float[group];
            fixed (ushort* w = rows)
            fixed (float* xp = x, c = checkedY, u = uncheckedY)
            {
                if (group == 8) { HalfRows.Eight(bits == 512, w, n, xp, n, c); HalfRows.Eight(bits == 512, w, n, xp, n, u, finite: true); }
                else { HalfRows.Four(bits == 512, w, n, xp, n, c); HalfRows.Four(bits == 512, w, n, xp, n, u, finite: true); }
            }
            for (int r = 0; r < group; r++)
                Assert.True(BitConverter.SingleToInt32Bits(checkedY[r]) == BitConverter.SingleToInt32Bits(uncheckedY[r]), $"n {n}, row {r}: {checkedY[r]} checked, {uncheckedY[r]} unchecked");
        }
        output.WriteLine($"{bits} bits, groups of {group}: unchecked kernels bit-identical to checked at n = 48, 784, 2048");
    }

    /// <summary>
    /// <see cref="TensorData.HalvesAllFinite"/>: true for finite float16 data, false once any value (here the very last, past
    /// the vector loop's reach in a length that is not a multiple of 16, or one in the middle) is an infinity or a NaN — for the
    /// tensor and for every view of it, which share its one scan — and false for other types.
    /// </summary>
    [Theory]
    [InlineData(-1, (ushort)0)]
    [InlineData(777, (ushort)0x7C00)] // +infinity at the end: the scalar tail
    [InlineData(100, (ushort)0xFC00)] // −infinity
    [InlineData(5, (ushort)0x7E01)]   // a NaN
    public void HalvesAllFinite_AnyNonFiniteValue_MakesTheTensorAndItsViewsFalse(int at, ushort value)
    {
        ushort[] rows = RandomRows(778, 1);
        rows[0] = 0x7BFF; // the largest finite half: finite
        if (at >= 0) rows[at] = value;
        fixed (ushort* data = rows)
        {
            var tensor = new TensorData("w", GgmlType.F16, [2, 389], (byte*)data, rows.Length * 2L);
            bool expected = at < 0;
            Assert.Equal(expected, tensor.HalvesAllFinite);
            Assert.Equal(expected, tensor.Rows(0, 2).HalvesAllFinite); // a view shares the whole tensor's answer
            Assert.False(new TensorData("w", GgmlType.BF16, [2, 389], (byte*)data, rows.Length * 2L).HalvesAllFinite);
        }
    }

    /// <summary>
    /// A lone input's decode through MatMul takes rows from eight stretches of the range (<see cref="RowStreams"/>): every
    /// row must get the bits it gets in a group of consecutive rows (here 45 rows: five stretches of eight, a last four and one
    /// alone), and each result must land on its own row. Row 17 holds an infinity, so the general conversion's redo runs
    /// inside a strided pass too.
    /// </summary>
    [SkippableTheory]
    [InlineData(false)]
    [InlineData(true)]
    public void MatMul_LoneInputDecode_GivesEachRowItsConsecutiveGroupsBits(bool brain)
    {
        Skip.IfNot(HalfRows.Wide || HalfRows.Narrow, "no AVX-512 or AVX2 half kernel on this CPU");
        const int nIn = 784, nOut = 45;
        ushort[] rows = brain ? RandomBrainRows(nIn * nOut, 7) : RandomRows(nIn * nOut, 7);
        if (!brain) rows[17 * nIn + 3] = 0x7C00;
        float[] x = RandomVector(nIn, 5);
        var actual = new float[nOut];
        var expected = new float[nOut];
        fixed (ushort* data = rows)
        fixed (float* xp = x, e = expected)
        {
            MatMul.Forward(new TensorData("w", brain ? GgmlType.BF16 : GgmlType.F16, [nIn, nOut], (byte*)data, rows.Length * 2L), x, 1, actual, threads: 1);
            int o = 0;
            for (; o + 8 <= nOut; o += 8)
                if (brain) HalfRows.BrainEight(HalfRows.Wide, data + o * nIn, nIn, xp, nIn, e + o);
                else HalfRows.Eight(HalfRows.Wide, data + o * nIn, nIn, xp, nIn, e + o);
            for (; o + 4 <= nOut; o += 4)
                if (brain) HalfRows.BrainFour(HalfRows.Wide, data + o * nIn, nIn, xp, nIn, e + o);
                else HalfRows.Four(HalfRows.Wide, data + o * nIn, nIn, xp, nIn, e + o);
            if (brain) e[o] = Dot.BF16(new ReadOnlySpan<ushort>(data + o * nIn, nIn), x);
            else e[o] = Dot.F16(new ReadOnlySpan<Half>(data + o * nIn, nIn), x);
        }
        for (int r = 0; r < nOut; r++)
            Assert.True(BitConverter.SingleToInt32Bits(expected[r]) == BitConverter.SingleToInt32Bits(actual[r]), $"row {r}: {expected[r]} in consecutive groups, {actual[r]} through MatMul");
        output.WriteLine($"{(brain ? "bf16" : "f16")}, {nOut} × {nIn}, streams {RowStreams.Enabled}: {nOut} rows bit-identical to consecutive groups");
    }

    [Theory]
    [InlineData(1, 784, 44, false)]  // five groups of eight, one of four (two threads: uneven ranges)
    [InlineData(3, 1040, 20, false)] // a batch below 4 decodes row group by row group
    [InlineData(5, 96, 36, true)]    // independent rows: every input through the decode kernels
    [InlineData(1, 776, 13, false)]  // n not a multiple of 16 and rows past the last group: the row-by-row path
    public void MatMul_HalfDecode_MatchesScalarReference(int batch, int nIn, int nOut, bool independentRows)
    {
        foreach (GgmlType type in new[] { GgmlType.F16, GgmlType.BF16 }) MatMulDecode(type, batch, nIn, nOut, independentRows);
    }

    private void MatMulDecode(GgmlType type, int batch, int nIn, int nOut, bool independentRows)
    {
        ushort[] rows = type == GgmlType.BF16 ? RandomBrainRows(nIn * nOut, nIn) : RandomRows(nIn * nOut, nIn);
        float[] x = RandomVector(batch * nIn, 11);
        var expected = new float[batch * nOut];
        double maxDiff = 0;
        fixed (ushort* data = rows)
        {
            var weight = new TensorData("w", type, [nIn, nOut], (byte*)data, rows.Length * 2L);
            MatMul.Reference(weight, x, batch, expected);
            foreach (int threads in new[] { 1, 2 })
            {
                var actual = new float[batch * nOut];
                MatMul.Forward(weight, x, batch, actual, threads, independentRows: independentRows);
                for (int i = 0; i < actual.Length; i++)
                {
                    double diff = Math.Abs(expected[i] - (double)actual[i]);
                    maxDiff = Math.Max(maxDiff, diff);
                    Assert.True(diff <= 1e-4 * (1 + Math.Abs(expected[i])), $"threads {threads}, output {i}: expected {expected[i]}, got {actual[i]}");
                }
            }
        }
        output.WriteLine($"{type}, batch {batch}, {nOut} × {nIn}: max |diff| to the float64 reference {maxDiff:E2} (tolerance 1e-4 relative); AVX-512 {HalfRows.Wide}, AVX2 {HalfRows.Narrow}");
    }
}
