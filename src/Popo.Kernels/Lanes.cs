using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Popo.Kernels;

/// <summary>
/// 16 float32 lanes read from and written to a float32 or bf16 tensor, the element type a type parameter so that a
/// kernel is written once and compiled for each (the elementwise kernels, and FewRowProduct's weight reads). bf16 is
/// the high half of a float32: it widens exactly, and it narrows by rounding to nearest, ties to even, NaN as 0xFFFF,
/// which is libtorch's vectorised cast, so a kernel that computes in float32 and stores once rounds as libtorch's
/// float32 result cast to bf16 would.
/// </summary>
internal interface ILanes
{
    static abstract unsafe Vector512<float> Load(void* p, long index);
    static abstract unsafe void Store(void* p, long index, Vector512<float> v);
    /// <summary>v rounded to the element type and widened back (float32: v itself).</summary>
    static abstract Vector512<float> Round(Vector512<float> v);
}

internal struct Fp32Lanes : ILanes
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe Vector512<float> Load(void* p, long index) => Vector512.Load((float*)p + index);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe void Store(void* p, long index, Vector512<float> v) => v.Store((float*)p + index);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Round(Vector512<float> v) => v;
}

internal struct Bf16Lanes : ILanes
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe Vector512<float> Load(void* p, long index) =>
        Avx512F.ShiftLeftLogical(Avx512F.ConvertToVector512UInt32(Vector256.Load((ushort*)p + index)), 16).AsSingle();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe void Store(void* p, long index, Vector512<float> v) =>
        Avx512F.ConvertToVector256UInt16(Nearest(v) >> 16).Store((ushort*)p + index);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Round(Vector512<float> v) => (Nearest(v) & Vector512.Create(0xFFFF0000u)).AsSingle();

    /// <summary>The float32 bits rounded so that their high half is the nearest bf16 (ties to even); NaN becomes 0xFFFF, as libtorch's vectorised cast writes it.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<uint> Nearest(Vector512<float> v)
    {
        var bits = v.AsUInt32();
        var rounded = bits + Vector512.Create(0x7FFFu) + ((bits >> 16) & Vector512<uint>.One);
        return Vector512.ConditionalSelect(Vector512.Equals(v, v).AsUInt32(), rounded, Vector512.Create(0xFFFF0000u));
    }
}

/// <summary>Vector math the elementwise kernels share.</summary>
internal static class LaneMath
{
    /// <summary>
    /// e^x in float32 to about 2 ulp for x in [-87, 88] (inputs outside are clamped there): x = n ln 2 + r with |r| &lt;= ln2/2,
    /// e^r by its degree-7 Taylor polynomial (truncation below 2e-9 relative), times 2^n built in the exponent bits.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Exp(Vector512<float> x)
    {
        // vmaxps/vminps: a NaN input comes out as a bound, and the callers' g s (SwiGLU) still carries the NaN.
        x = Avx512F.Min(Avx512F.Max(x, Vector512.Create(-87f)), Vector512.Create(88f));
        var n = Avx512F.RoundScale(x * Vector512.Create(1.44269504088896341f), 0);   // nearest integer
        var r = Avx512F.FusedMultiplyAdd(n, Vector512.Create(-0.693359375f), x);   // ln 2 split in two: the high part exact in n * it
        r = Avx512F.FusedMultiplyAdd(n, Vector512.Create(2.12194440e-4f), r);
        var p = Vector512.Create(1f / 5040);
        p = Avx512F.FusedMultiplyAdd(p, r, Vector512.Create(1f / 720));
        p = Avx512F.FusedMultiplyAdd(p, r, Vector512.Create(1f / 120));
        p = Avx512F.FusedMultiplyAdd(p, r, Vector512.Create(1f / 24));
        p = Avx512F.FusedMultiplyAdd(p, r, Vector512.Create(1f / 6));
        p = Avx512F.FusedMultiplyAdd(p, r, Vector512.Create(0.5f));
        p = Avx512F.FusedMultiplyAdd(p, r, Vector512<float>.One);
        p = Avx512F.FusedMultiplyAdd(p, r, Vector512<float>.One);
        var scale = ((Avx512F.ConvertToVector512Int32(n) + Vector512.Create(127)) << 23).AsSingle();
        return p * scale;
    }

    /// <summary>1 / (1 + e^-x).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Sigmoid(Vector512<float> x) => Vector512<float>.One / (Vector512<float>.One + Exp(-x));

    /// <summary>The lane sum, in a fixed order.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Sum(Vector512<float> v)
    {
        var h = v.GetLower() + v.GetUpper();
        var q = h.GetLower() + h.GetUpper();
        return Vector128.Sum(q);
    }

    /// <summary>Runs <paramref name="piece"/>(i) for i in [0, pieces), on up to <paramref name="threads"/> threads.</summary>
    public static void Pieces(int pieces, int threads, Action<int> piece)
    {
        if (threads <= 1 || pieces <= 1) for (var i = 0; i < pieces; i++) piece(i);
        else Parallel.For(0, pieces, new ParallelOptions { MaxDegreeOfParallelism = threads }, piece);
    }
}
