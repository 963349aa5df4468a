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

    /// <summary>
    /// How many times slower than float32 a bf16 product must run for <see cref="Bf16Warning"/>: a bf16 GEMM without
    /// native support is a scalar loop, hundreds of times slower (0.26 against 67 GFLOP/s on Zen 3); one with it runs
    /// at about twice float32, and a single timed round of a 256^3 product on a shared machine measured it anywhere
    /// from 0.003 to 0.98 x float32 on Zen 4 (AVX512_BF16), which a plain "slower than float32" turned into a false warning.
    /// </summary>
    public const double Bf16WarningFactor = 4.0;

    /// <summary>A warning when bfloat16 matmuls run <see cref="Bf16WarningFactor"/> times slower than float32 ones on the CPU, each rate the best of five rounds (null when they do not, or off the CPU).</summary>
    public static string? Bf16Warning(Device device)
    {
        if (device.type != DeviceType.CPU) return null;
        double f32 = Gflops(256, ScalarType.Float32, 5), bf16 = Gflops(256, ScalarType.BFloat16, 5);
        return bf16 * Bf16WarningFactor >= f32 ? null
            : $"warning: bf16 = true, but this CPU multiplies bfloat16 at {bf16:G3} GFLOP/s against {f32:G3} for float32 " +
              "(no native bf16 GEMM: AVX512_BF16 or AMX); this run would be faster with bf16 = false";
    }
}
