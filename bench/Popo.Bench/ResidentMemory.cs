using System.Runtime.InteropServices;

namespace Popo.Bench;

/// <summary>
/// This process's resident memory from /proc/self/status: VmRSS (now) and VmHWM (the peak since start or since
/// the last <see cref="ResetPeak"/>). Figures are MiB; NaN where /proc is missing (not Linux).
/// </summary>
internal static class ResidentMemory
{
    public static double CurrentMiB() => Field("VmRSS:");

    public static double PeakMiB() => Field("VmHWM:");

    /// <summary>
    /// Returns freed heap to the system (glibc keeps freed blocks of earlier configurations resident otherwise), then
    /// resets VmHWM to the current RSS (writing 5 to /proc/self/clear_refs, Linux 4.0+): the next peak is one configuration's.
    /// </summary>
    public static void ResetPeak()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        if (!OperatingSystem.IsLinux()) return;
        MallocTrim(0);
        if (File.Exists("/proc/self/clear_refs")) File.WriteAllText("/proc/self/clear_refs", "5");
    }

    [DllImport("libc", EntryPoint = "malloc_trim")]
    private static extern int MallocTrim(nuint pad);

    private static double Field(string name)
    {
        if (!File.Exists("/proc/self/status")) return double.NaN;
        foreach (var line in File.ReadLines("/proc/self/status"))
            if (line.StartsWith(name, StringComparison.Ordinal))
                return long.Parse(line[name.Length..].Trim().Split(' ')[0]) / 1024.0;   // "VmRSS:   123456 kB"
        return double.NaN;
    }
}
