namespace Popo.Kernels;

/// <summary>The instruction-set flags the kernel reports for this CPU (the "flags" line of /proc/cpuinfo; empty off Linux).</summary>
internal static class CpuFlags
{
    private static readonly Lazy<HashSet<string>> Flags = new(() =>
        File.Exists("/proc/cpuinfo") && File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("flags", StringComparison.Ordinal)) is { } line
            ? line.Split(' ').ToHashSet()
            : []);

    public static bool Has(string flag) => Flags.Value.Contains(flag);
}
