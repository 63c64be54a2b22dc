using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using NextToken.Kernels;
using NextToken.Tensors;

namespace NextToken.Bench;

// Scratch ablations of the Q4_K plane kernel (not exact): which parts cost the cycles.
public readonly struct On;
public readonly struct Off;

public static unsafe class Kqa2Scratch
{
    // TCombine: per-block float combine; TScale: real scale unpack; TUnpack: the unpcklqdq/hqdq pairing.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float Row<TCombine, TScale, TUnpack>(byte* w, long ahead, sbyte* planes, float* scales, float* sums, int blocks)
    {
        float* halves = HalfTable.Pointer;
        Vector256<float> total = default;
        Vector256<int> a0 = default, a1 = default, a2 = default;
        for (int b = 0; b < blocks; b++)
        {
            byte* block = w + b * 144;
            Sse.Prefetch0(block + ahead); Sse.Prefetch0(block + ahead + 64); Sse.Prefetch0(block + ahead + 128);
            sbyte* xb = planes + 768 * b;
            Vector256<int> pairs, mins;
            if (typeof(TScale) == typeof(On))
            {
                (Vector256<int> sc, mins) = ChunkedQuant.ScalesK4Integers(block);
                pairs = sc | Vector256.ShiftLeft(sc, 16);
            }
            else { pairs = Vector256.Create(0x00030003); mins = pairs; }
            Vector256<int> i0 = default, i1 = default, i2 = default;
            Group<TScale, TUnpack>(block, xb, pairs, 0, ref i0, ref i1, ref i2);
            Group<TScale, TUnpack>(block, xb, pairs, 1, ref i0, ref i1, ref i2);
            Group<TScale, TUnpack>(block, xb, pairs, 2, ref i0, ref i1, ref i2);
            Group<TScale, TUnpack>(block, xb, pairs, 3, ref i0, ref i1, ref i2);
            if (typeof(TCombine) == typeof(On))
            {
                float d = HalfTable.ToSingle(halves, ref *block), dmin = HalfTable.ToSingle(halves, ref block[2]);
                total = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(mins) * Vector256.Create(-dmin), Vector256.Load(sums + 8 * b), total);
                Vector256<float> t = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(i1), Vector256.Create(256f), Vector256.ConvertToSingle(i2));
                t = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(i0), Vector256.Create(65536f), t);
                total = Vector256.FusedMultiplyAdd(t * Vector256.Create(scales[b]), Vector256.Create(d), total);
            }
            else { a0 += i0 + mins; a1 += i1; a2 += i2; }
        }
        return Vector256.Sum(total) + Vector256.Sum(a0 + a1 + a2);
    }


    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Group<TScale, TUnpack>(byte* block, sbyte* xb, Vector256<int> pairs, int g, ref Vector256<int> i0, ref Vector256<int> i1, ref Vector256<int> i2)
    {
                Vector256<byte> packed = Vector256.Load(block + 16 + 32 * g), mask = Vector256.Create((byte)0x0F);
                Vector256<byte> low = packed & mask, high = Vector256.ShiftRightLogical(packed.AsUInt16(), 4).AsByte() & mask;
                Vector256<byte> first = low, second = high;
                if (typeof(TUnpack) == typeof(On)) { first = Avx2.UnpackLow(low.AsUInt64(), high.AsUInt64()).AsByte(); second = Avx2.UnpackHigh(low.AsUInt64(), high.AsUInt64()).AsByte(); }
                Vector256<short> scale = typeof(TScale) == typeof(On)
                    ? Avx2.PermuteVar8x32(pairs, Vector256.Create(2 * g, 2 * g, 2 * g + 1, 2 * g + 1, 2 * g, 2 * g, 2 * g + 1, 2 * g + 1)).AsInt16()
                    : pairs.AsInt16();
                sbyte* x = xb + 64 * g;
                i0 += Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(first, Vector256.Load(x)) + Avx2.MultiplyAddAdjacent(second, Vector256.Load(x + 32)), scale);
                i1 += Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(first, Vector256.Load(x + 256)) + Avx2.MultiplyAddAdjacent(second, Vector256.Load(x + 256 + 32)), scale);
                i2 += Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(first, Vector256.Load(x + 512)) + Avx2.MultiplyAddAdjacent(second, Vector256.Load(x + 512 + 32)), scale);
                }

    public static void Run(int rounds)
    {
        const int NIn = 2048, Rows = 64, Passes = 8;
        GgmlType type = GgmlType.Q4_K;
        long rowBytes = GgmlTypeInfo.RowBytes(type, NIn), bytes = rowBytes * Rows;
        byte[] weights = GC.AllocateUninitializedArray<byte>((int)bytes, pinned: true);
        new Random(3).NextBytes(weights);
        float[] x = GC.AllocateArray<float>(NIn, pinned: true), y = GC.AllocateArray<float>(Rows, pinned: true);
        float[] sums = GC.AllocateArray<float>(NIn / 16, pinned: true), scales = GC.AllocateArray<float>(NIn / 256, pinned: true);
        sbyte[] planes = GC.AllocateArray<sbyte>(3 * NIn, pinned: true);
        for (int i = 0; i < NIn; i++) x[i] = MathF.Sin(i);
        for (int i = 0; i < bytes; i += 144) { weights[i] = 0; weights[i + 1] = 0x3C; weights[i + 2] = 0; weights[i + 3] = 0x3C; }
        fixed (byte* w = weights) fixed (float* px = x, py = y, ps = sums, psc = scales) fixed (sbyte* pp = planes)
        {
            byte* wp = w; float* yp = py, sp = ps, scp = psc; sbyte* plp = pp;
            KQuantPlanes.Split(px, NIn, pp, psc);
            KQuantPlanes.SubBlockSums(px, NIn, 32, ps);
            var variants = new (string, Func<long, float>)[]
            {
                ("full", r => Row<On, On, On>(wp + r * rowBytes, 4 * rowBytes, plp, scp, sp, 8)),
                ("no combine", r => Row<Off, On, On>(wp + r * rowBytes, 4 * rowBytes, plp, scp, sp, 8)),
                ("no scale", r => Row<On, Off, On>(wp + r * rowBytes, 4 * rowBytes, plp, scp, sp, 8)),
                ("no unpack", r => Row<On, On, Off>(wp + r * rowBytes, 4 * rowBytes, plp, scp, sp, 8)),
                ("mults only", r => Row<Off, Off, Off>(wp + r * rowBytes, 4 * rowBytes, plp, scp, sp, 8)),
            };
            foreach ((string name, Func<long, float> f) in variants)
            {
                void Full() { for (int p = 0; p < Passes; p++) for (int r = 0; r < Rows; r++) yp[r] = Row<On, On, On>(wp + r * rowBytes, 4 * rowBytes, plp, scp, sp, 8); }
                void V() { for (int p = 0; p < Passes; p++) for (int r = 0; r < Rows; r++) yp[r] = f(r); }
                (double a, double b, double ghz) = AlternatingClock.Time(Full, V, rounds);
                double units = (double)Passes * Rows * NIn / 32;
                Console.WriteLine($"{name,-12} full {a * 1e3 * ghz / units:F2} variant {b * 1e3 * ghz / units:F2} cyc/32/row ({ghz:F2} GHz)");
            }
        }
    }
}

public static class Kqa2Micro
{
    static Vector256<byte> s_q = Vector256.Create((byte)7);
    static Vector256<sbyte> s_x = Vector256.Create((sbyte)-3);
    static Vector256<short> s_s = Vector256.Create((short)5);

    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    public static int Ubsw()
    {
        Vector256<byte> q = s_q; Vector256<sbyte> x = s_x;
        Vector256<short> a0 = default, a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
        for (int i = 0; i < 1024; i++)
        {
            a0 = Avx2.MultiplyAddAdjacent(q, (x.AsInt16() + a0).AsSByte()); a1 = Avx2.MultiplyAddAdjacent(q, (x.AsInt16() + a1).AsSByte());
            a2 = Avx2.MultiplyAddAdjacent(q, (x.AsInt16() + a2).AsSByte()); a3 = Avx2.MultiplyAddAdjacent(q, (x.AsInt16() + a3).AsSByte());
            a4 = Avx2.MultiplyAddAdjacent(q, (x.AsInt16() + a4).AsSByte()); a5 = Avx2.MultiplyAddAdjacent(q, (x.AsInt16() + a5).AsSByte());
            a6 = Avx2.MultiplyAddAdjacent(q, (x.AsInt16() + a6).AsSByte()); a7 = Avx2.MultiplyAddAdjacent(q, (x.AsInt16() + a7).AsSByte());
        }
        return (a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7).AsInt32().ToScalar();
    }

    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    public static int Wd()
    {
        Vector256<short> s = s_s, x = s_x.AsInt16();
        Vector256<int> a0 = default, a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
        for (int i = 0; i < 1024; i++)
        {
            a0 = Avx2.MultiplyAddAdjacent(s, (x + a0.AsInt16())); a1 = Avx2.MultiplyAddAdjacent(s, (x + a1.AsInt16()));
            a2 = Avx2.MultiplyAddAdjacent(s, (x + a2.AsInt16())); a3 = Avx2.MultiplyAddAdjacent(s, (x + a3.AsInt16()));
            a4 = Avx2.MultiplyAddAdjacent(s, (x + a4.AsInt16())); a5 = Avx2.MultiplyAddAdjacent(s, (x + a5.AsInt16()));
            a6 = Avx2.MultiplyAddAdjacent(s, (x + a6.AsInt16())); a7 = Avx2.MultiplyAddAdjacent(s, (x + a7.AsInt16()));
        }
        return (a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7).ToScalar();
    }

    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    public static int PureMix()
    {
        Vector256<byte> q = s_q; Vector256<short> s = s_s;
        Vector256<sbyte> a0 = s_x, a1 = s_x, a2 = s_x, a3 = s_x, a4 = s_x, a5 = s_x, a6 = s_x, a7 = s_x, a8 = s_x, a9 = s_x, a10 = s_x, a11 = s_x, a12 = s_x, a13 = s_x;
        for (int i = 0; i < 1024; i++)
        {
            a0 = Avx2.MultiplyAddAdjacent(q, a0).AsSByte();
            a1 = Avx2.MultiplyAddAdjacent(q, a1).AsSByte();
            a2 = Avx2.MultiplyAddAdjacent(a2.AsInt16(), s).AsSByte();
            a3 = Avx2.MultiplyAddAdjacent(q, a3).AsSByte();
            a4 = Avx2.MultiplyAddAdjacent(q, a4).AsSByte();
            a5 = Avx2.MultiplyAddAdjacent(a5.AsInt16(), s).AsSByte();
            a6 = Avx2.MultiplyAddAdjacent(q, a6).AsSByte();
            a7 = Avx2.MultiplyAddAdjacent(q, a7).AsSByte();
            a8 = Avx2.MultiplyAddAdjacent(a8.AsInt16(), s).AsSByte();
            a9 = Avx2.MultiplyAddAdjacent(q, a9).AsSByte();
            a10 = Avx2.MultiplyAddAdjacent(q, a10).AsSByte();
            a11 = Avx2.MultiplyAddAdjacent(a11.AsInt16(), s).AsSByte();
            a12 = Avx2.MultiplyAddAdjacent(q, a12).AsSByte();
            a13 = Avx2.MultiplyAddAdjacent(q, a13).AsSByte();
        }
        return (a0.AsInt32() + a1.AsInt32() + a2.AsInt32() + a3.AsInt32() + a4.AsInt32() + a5.AsInt32() + a6.AsInt32() + a7.AsInt32() + a8.AsInt32() + a9.AsInt32() + a10.AsInt32() + a11.AsInt32() + a12.AsInt32() + a13.AsInt32()).ToScalar();
    }

    public static void Run()
    {
        long sink = 0;
        for (int w = 0; w < 300; w++) { sink += Ubsw() + Wd() + PureMix() + (long)AlternatingClock.MultiplyChain(); }
        double u = double.MaxValue, d = double.MaxValue, m = double.MaxValue, c = double.MaxValue;
        for (int r = 0; r < 2000; r++)
        {
            long t0 = System.Diagnostics.Stopwatch.GetTimestamp(); sink += Ubsw();
            long t1 = System.Diagnostics.Stopwatch.GetTimestamp(); sink += Wd();
            long t2 = System.Diagnostics.Stopwatch.GetTimestamp(); sink += PureMix();
            long t3 = System.Diagnostics.Stopwatch.GetTimestamp(); sink += (long)AlternatingClock.MultiplyChain();
            long t4 = System.Diagnostics.Stopwatch.GetTimestamp();
            u = Math.Min(u, t1 - t0); d = Math.Min(d, t2 - t1); m = Math.Min(m, t3 - t2); c = Math.Min(c, t4 - t3);
        }
        double cyc = 12288 / c; // cycles per tick
        Console.WriteLine($"ubsw+add: {u * cyc / 8192:F3} cyc/op pair; wd+add: {d * cyc / 8192:F3}; pure 14 chains (10 ubsw 4 wd): {m * cyc / 1024:F2} cyc/iter {sink & 1}");
    }
}
