using System.Diagnostics;
using TorchSharp;
using static TorchSharp.torch;

namespace Popo.Engine.Runtime;

/// <summary>
/// How fast this CPU multiplies matrices in a dtype. bf16 = true pays only where the CPU multiplies bfloat16 natively
/// (AVX512_BF16 or AMX: twice float32 on Zen 4); elsewhere libtorch's bfloat16 GEMM is a scalar loop (0.26 GFLOP/s
/// against float32's 67 on Zen 3), so a run is told before it starts.
/// </summary>
internal static class MatmulRate
{
    /// <summary>GFLOP/s of an n x n by n x n product: the best of <paramref name="rounds"/> after one warm-up.</summary>
    public static double Gflops(int n, ScalarType dtype, int rounds)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var a = randn(n, n).to(dtype);
        var b = randn(n, n).to(dtype);
        a.matmul(b).Dispose();
        var best = double.MaxValue;
        for (int i = 0; i < rounds; i++)
        {
            var clock = Stopwatch.StartNew();
            a.matmul(b).Dispose();
            best = Math.Min(best, clock.Elapsed.TotalSeconds);
        }
        return 2.0 * n * n * (double)n / 1e9 / best;
    }

    /// <summary>The largest n (a power of two, at least 256 and at most <paramref name="largest"/>) whose product takes about <paramref name="seconds"/> or less at the rate a 256 probe shows.</summary>
    public static int AffordableSize(ScalarType dtype, int largest, double seconds)
    {
        var rate = Gflops(256, dtype, 1);
        var n = 256;
        while (n * 2 <= largest && 2.0 * Math.Pow(n * 2, 3) / 1e9 / rate <= seconds) n *= 2;
        return n;
    }

    /// <summary>A warning when bfloat16 matmuls run slower than float32 ones on the CPU (null when they do not, or off the CPU).</summary>
    public static string? Bf16Warning(Device device)
    {
        if (device.type != DeviceType.CPU) return null;
        double f32 = Gflops(256, ScalarType.Float32, 3), bf16 = Gflops(256, ScalarType.BFloat16, 1);
        return bf16 >= f32 ? null
            : $"warning: bf16 = true, but this CPU multiplies bfloat16 at {bf16:G3} GFLOP/s against {f32:G3} for float32 " +
              "(no native bf16 GEMM: AVX512_BF16 or AMX); this run would be faster with bf16 = false";
    }
}
