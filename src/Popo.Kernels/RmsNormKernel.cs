using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using TorchSharp;
using static TorchSharp.torch;

namespace Popo.Kernels;

/// <summary>
/// RMSNorm over rows of a float32 or bf16 tensor on an AVX-512 CPU, one pass over a row each way:
///   forward  r = 1 / sqrt(mean(x^2) + eps) (float32),  n = x r rounded to x's type,  y = n w rounded;
///   backward dx = r (dy w) - x r^3 mean(dy w x),  dw = sum over rows of dy n.
/// This is HF's Qwen2RMSNorm (statistics in float32, the normalised row cast back before the weight). Through
/// libtorch's ops the forward is six passes over the row and autograd's backward about twelve: a large-80M norm of
/// 1,024 x 768 bf16 took 4.3 ms forward and backward, one thread. All arithmetic is float32, the rounding to bf16 done
/// once per stored value (dy w and the partial products of the backward are not rounded, as autograd's bf16 ops would).
/// Each row is one thread's fixed sequence of operations, and dw sums fixed blocks of rows in order, so the bits do not
/// depend on the number of threads.
/// </summary>
internal static class RmsNormKernel
{
    /// <summary>Rows per block of the weight gradient's partial sums.</summary>
    private const int BlockRows = 64;

    /// <summary>Whether x [..., H] and w [H] take the kernel: AVX-512, CPU, both float32 or both bf16, contiguous, H a multiple of 16.</summary>
    public static bool Applies(Tensor x, Tensor w) =>
        Avx512F.IsSupported && x.device.type == DeviceType.CPU && w.device.type == DeviceType.CPU
        && x.dtype is ScalarType.Float32 or ScalarType.BFloat16 && w.dtype == x.dtype && w.dim() == 1
        && x.shape[^1] == w.shape[0] && w.shape[0] % 16 == 0 && x.is_contiguous() && w.is_contiguous();

    /// <summary>y like x, and r [rows] float32 (the reciprocal root mean square of each row, for the backward).</summary>
    public static unsafe (Tensor Y, Tensor InvRms) Forward(Tensor x, Tensor w, double eps, int threads)
    {
        Check(x, w);
        int width = (int)w.shape[0];
        long rows = x.numel() / width;
        var y = empty_like(x);
        var invRms = empty([rows], dtype: ScalarType.Float32, device: x.device);
        var epsilon = (float)eps;
        fixed (byte* xb = x.bytes, wb = w.bytes, yb = y.bytes, rb = invRms.bytes)
        {
            nint xp = (nint)xb, wp = (nint)wb, yp = (nint)yb, rp = (nint)rb;
            var bf16 = x.dtype == ScalarType.BFloat16;
            LaneMath.Pieces(Blocks(rows), threads, block =>
            {
                for (long row = (long)block * BlockRows, end = Math.Min(rows, row + BlockRows); row < end; row++)
                    if (bf16) ForwardRow<Bf16Lanes>((void*)xp, (void*)wp, (void*)yp, (float*)rp, row, width, epsilon);
                    else ForwardRow<Fp32Lanes>((void*)xp, (void*)wp, (void*)yp, (float*)rp, row, width, epsilon);
            });
        }
        return (y, invRms);
    }

    /// <summary>dx like x; dw [H] in w's type when asked for (else null).</summary>
    public static unsafe (Tensor Dx, Tensor? Dw) Backward(Tensor dy, Tensor x, Tensor w, Tensor invRms, bool weightGradient, int threads)
    {
        Check(x, w);
        if (dy.dtype != x.dtype || !dy.is_contiguous() || dy.numel() != x.numel()) throw new ArgumentException("RMSNorm kernel: the output gradient must be contiguous, of x's type and size");
        int width = (int)w.shape[0];
        long rows = x.numel() / width;
        int blocks = Blocks(rows);
        var dx = empty_like(x);
        using var partial = weightGradient ? empty([blocks, width], dtype: ScalarType.Float32, device: x.device) : null;
        fixed (byte* gb = dy.bytes, xb = x.bytes, wb = w.bytes, rb = invRms.bytes, db = dx.bytes)
        fixed (byte* pb = partial is null ? default : partial.bytes)
        {
            nint gp = (nint)gb, xp = (nint)xb, wp = (nint)wb, rp = (nint)rb, dp = (nint)db, pp = (nint)pb;
            var bf16 = x.dtype == ScalarType.BFloat16;
            LaneMath.Pieces(blocks, threads, block =>
            {
                var acc = weightGradient ? (float*)pp + (long)block * width : null;
                if (acc is not null) new Span<float>(acc, width).Clear();
                for (long row = (long)block * BlockRows, end = Math.Min(rows, row + BlockRows); row < end; row++)
                    if (bf16) BackwardRow<Bf16Lanes>((void*)gp, (void*)xp, (void*)wp, (float*)rp, (void*)dp, acc, row, width);
                    else BackwardRow<Fp32Lanes>((void*)gp, (void*)xp, (void*)wp, (float*)rp, (void*)dp, acc, row, width);
            });
        }
        if (partial is null) return (dx, null);
        using var total = SumBlocks(partial);
        return (dx, total.to(w.dtype));
    }

    private static int Blocks(long rows) => (int)((rows + BlockRows - 1) / BlockRows);

    private static void Check(Tensor x, Tensor w)
    {
        if (!Applies(x, w)) throw new InvalidOperationException("the RMSNorm kernel needs AVX-512 and contiguous float32 or bf16 x [..., H], w [H] on the CPU, H a multiple of 16");
    }

    // Straight to optimised code: tier 0 of a vector loop runs 4-5x slower for its first 30-odd calls.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void ForwardRow<T>(void* x, void* w, void* y, float* invRms, long row, int width, float eps) where T : struct, ILanes
    {
        long at = row * width;
        Vector512<float> s0 = default, s1 = default;
        int d = 0;
        for (; d + 32 <= width; d += 32)
        {
            var a = T.Load(x, at + d);
            var b = T.Load(x, at + d + 16);
            s0 = Avx512F.FusedMultiplyAdd(a, a, s0);
            s1 = Avx512F.FusedMultiplyAdd(b, b, s1);
        }
        if (d < width) { var a = T.Load(x, at + d); s0 = Avx512F.FusedMultiplyAdd(a, a, s0); }
        var r = 1f / MathF.Sqrt(LaneMath.Sum(s0 + s1) / width + eps);
        invRms[row] = r;
        var rv = Vector512.Create(r);
        for (d = 0; d < width; d += 16)
            T.Store(y, at + d, T.Round(T.Load(x, at + d) * rv) * T.Load(w, d));
    }

    // Straight to optimised code: tier 0 of a vector loop runs 4-5x slower for its first 30-odd calls.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void BackwardRow<T>(void* dy, void* x, void* w, float* invRms, void* dx, float* acc, long row, int width) where T : struct, ILanes
    {
        long at = row * width;
        var r = invRms[row];
        Vector512<float> s0 = default;
        for (var d = 0; d < width; d += 16)
            s0 = Avx512F.FusedMultiplyAdd(T.Load(dy, at + d) * T.Load(w, d), T.Load(x, at + d), s0);
        var c = Vector512.Create(-r * r * r * LaneMath.Sum(s0) / width);
        var rv = Vector512.Create(r);
        for (var d = 0; d < width; d += 16)
        {
            Vector512<float> g = T.Load(dy, at + d), xv = T.Load(x, at + d);
            T.Store(dx, at + d, Avx512F.FusedMultiplyAdd(xv, c, g * T.Load(w, d) * rv));
            if (acc is not null)
                Avx512F.FusedMultiplyAdd(g, T.Round(xv * rv), Vector512.Load(acc + d)).Store(acc + d);
        }
    }

    /// <summary>The blocks' partial sums [blocks, H] added in block order: [H] float32.</summary>
    private static unsafe Tensor SumBlocks(Tensor partial)
    {
        int blocks = (int)partial.shape[0], width = (int)partial.shape[1];
        var total = zeros([width], dtype: ScalarType.Float32, device: partial.device);
        fixed (byte* pb = partial.bytes, tb = total.bytes)
        {
            float* p = (float*)pb, t = (float*)tb;
            for (var b = 0; b < blocks; b++)
                for (var d = 0; d < width; d += 16)
                    (Vector512.Load(t + d) + Vector512.Load(p + (long)b * width + d)).Store(t + d);
        }
        return total;
    }
}
