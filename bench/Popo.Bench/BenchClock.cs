using System.Diagnostics;
using System.Runtime.InteropServices;

namespace Popo.Bench;

/// <summary>Seconds on the wall clock and on this process's CPU clock (all threads).</summary>
internal readonly record struct Span(double Wall, double Cpu)
{
    public static Span Min(Span a, Span b) => new(Math.Min(a.Wall, b.Wall), Math.Min(a.Cpu, b.Cpu));
    public static Span operator -(Span a, Span b) => new(Math.Max(a.Wall - b.Wall, 1e-9), Math.Max(a.Cpu - b.Cpu, 1e-9));
    public static Span operator +(Span a, Span b) => new(a.Wall + b.Wall, a.Cpu + b.Cpu);
    public static readonly Span Infinite = new(double.MaxValue, double.MaxValue);
}

/// <summary>
/// Wall and process-CPU timing. On a shared machine the wall clock counts other processes' time slices, the CPU
/// clock does not: every ratio is reported on both, each side of it taken on the same clock.
/// </summary>
internal static class BenchClock
{
    public static Span Time(Action action)
    {
        var cpu = ProcessCpuSeconds();
        var watch = Stopwatch.StartNew();
        action();
        var wall = watch.Elapsed.TotalSeconds;
        return new Span(wall, ProcessCpuSeconds() - cpu);
    }

    /// <summary>The best (per clock) of <paramref name="rounds"/> timed runs after one untimed warm-up.</summary>
    public static Span Best(int rounds, Action action)
    {
        action();
        var best = Span.Infinite;
        for (var i = 0; i < rounds; i++) best = Span.Min(best, Time(action));
        return best;
    }

    /// <summary>The 1/5/15-minute load averages (Linux), to tell a quiet machine from a shared one.</summary>
    public static string LoadAverage() =>
        File.Exists("/proc/loadavg") ? string.Join(" ", File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "n/a";

    [StructLayout(LayoutKind.Sequential)]
    private struct Timespec
    {
        public long Seconds;
        public long Nanoseconds;
    }

    [DllImport("libc", EntryPoint = "clock_gettime")]
    private static extern int ClockGetTime(int clock, out Timespec time);

    /// <summary>
    /// CPU time of all threads of this process. On Linux clock_gettime(CLOCK_PROCESS_CPUTIME_ID) has nanosecond
    /// resolution; Process.TotalProcessorTime (the fallback) ticks in 10 ms, too coarse for one decode step.
    /// </summary>
    public static double ProcessCpuSeconds()
    {
        const int ClockProcessCpuTimeId = 2;
        if (OperatingSystem.IsLinux() && ClockGetTime(ClockProcessCpuTimeId, out var t) == 0) return t.Seconds + t.Nanoseconds * 1e-9;
        using var process = Process.GetCurrentProcess();
        return process.TotalProcessorTime.TotalSeconds;
    }
}
