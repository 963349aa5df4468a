using TorchSharp;
using static TorchSharp.torch;

namespace Popo.Bench;

/// <summary>The machine's limits, measured through TorchSharp in the same run as the figures compared with them.</summary>
internal sealed record PeakResult(int MatmulSize, Span Matmul, long CopyBytes, Span Copy)
{
    private double MatmulGflop => 2.0 * MatmulSize * MatmulSize * (double)MatmulSize / 1e9;
    /// <summary>float32 GFLOP/s of a large square matmul, wall clock.</summary>
    public double GflopsWall => MatmulGflop / Matmul.Wall;
    /// <summary>float32 GFLOP per CPU-second of the same matmul.</summary>
    public double GflopsCpu => MatmulGflop / Matmul.Cpu;
    /// <summary>Memory copy rate, bytes read + bytes written per wall second.</summary>
    public double CopyBytesPerSecond => 2.0 * CopyBytes / Copy.Wall;
    public double CopyBytesPerCpuSecond => 2.0 * CopyBytes / Copy.Cpu;
}

internal static class Peak
{
    /// <summary>C = A B for n x n float32 matrices, best of 10; then dst.copy_(src) of <paramref name="copyMiB"/> MiB, best of 10.</summary>
    public static PeakResult Measure(int n, int copyMiB)
    {
        using var scope = torch.NewDisposeScope();
        var a = torch.randn(n, n);
        var b = torch.randn(n, n);
        var matmul = BenchClock.Best(10, () => a.matmul(b).Dispose());
        long elements = copyMiB * 1024L * 1024 / 4;
        var src = torch.randn(elements);
        var dst = torch.empty(elements);
        var copy = BenchClock.Best(10, () => dst.copy_(src));
        return new PeakResult(n, matmul, elements * 4, copy);
    }

    public static BenchSection Section(PeakResult peak)
    {
        var s = new BenchSection("peak", "Peak: float32 matmul and memory copy (the limits every ratio below uses)");
        s.Facts["matmul_n"] = peak.MatmulSize;
        s.Facts["matmul_gflops"] = peak.GflopsWall;
        s.Facts["matmul_gflops_per_cpu_s"] = peak.GflopsCpu;
        s.Facts["copy_mib"] = peak.CopyBytes / (1024.0 * 1024);
        s.Facts["copy_gb_s"] = peak.CopyBytesPerSecond / 1e9;
        s.Facts["copy_gb_per_cpu_s"] = peak.CopyBytesPerCpuSecond / 1e9;
        s.Notes.Add("copy rate = bytes read + bytes written per second of dst.copy_(src); the end-of-run figures (meta) show the drift.");
        return s;
    }
}
