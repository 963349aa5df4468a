using System.Runtime.InteropServices;

namespace Popo.Engine.Runtime;

/// <summary>
/// "Same seed, same result" under load (issue 35): a float32 reduction split over threads sums in an order set by
/// how many threads take part, so the thread count of every parallel kernel must not follow the machine's load.
/// MKL's default (MKL_DYNAMIC=TRUE) lets it run a GEMM on fewer threads than asked, and OpenMP's dynamic mode
/// (OMP_DYNAMIC; libgomp sizes a team by the load average when it is on) would let libtorch's parallel_for split its
/// work into fewer chunks. Both are switched off here, and MKL's conditional numerical reproducibility is asked for
/// (MKL_CBWR=AUTO: the code path of this CPU, but none that depends on data alignment or run-time conditions). The
/// variables are read once, when libtorch's MKL and libgomp load: call this before the first tensor. A variable the
/// environment already sets is left as it is. The process environment (setenv), not .NET's copy of it.
/// </summary>
internal static class FixedThreading
{
    public static readonly IReadOnlyList<(string Name, string Value)> Settings =
        [("MKL_DYNAMIC", "FALSE"), ("OMP_DYNAMIC", "FALSE"), ("MKL_CBWR", "AUTO")];

    public static void Apply()
    {
        if (!OperatingSystem.IsLinux()) return;
        try
        {
            // Too late once libtorch is loaded (a host that called into torch first, such as the test runner): its
            // libraries have read their environment, and setenv beside threads that call getenv is a race.
            if (dlopen("libtorch_cpu.so", RtldLazy | RtldNoLoad) != IntPtr.Zero) return;
            foreach (var (name, value) in Settings)
                if (string.IsNullOrEmpty(Marshal.PtrToStringAnsi(getenv(name)))) setenv(name, value, 1);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException) { }
    }

    /// <summary>The settings as the process environment holds them ("NAME=value, ..."; "unset" for one absent).</summary>
    public static string Describe() =>
        string.Join(", ", Settings.Select(s => $"{s.Name}={(OperatingSystem.IsLinux() ? Marshal.PtrToStringAnsi(getenv(s.Name)) : null) ?? "unset"}"));

    private const int RtldLazy = 1, RtldNoLoad = 4;

    [DllImport("libc", EntryPoint = "dlopen")]
    private static extern IntPtr dlopen(string file, int mode);

    [DllImport("libc", EntryPoint = "getenv")]
    private static extern IntPtr getenv(string name);

    [DllImport("libc", EntryPoint = "setenv")]
    private static extern int setenv(string name, string value, int overwrite);
}
