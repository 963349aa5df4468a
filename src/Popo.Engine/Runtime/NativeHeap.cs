using System.Runtime.InteropServices;

namespace Popo.Engine.Runtime;

/// <summary>
/// glibc malloc settings for a process that trains at real scale. By default glibc raises its mmap threshold to
/// the size of every large block it frees (up to 32 MiB), so activations and gradients of a 0.5B model come from
/// the heap, and a freed block stays resident until a block of the same size class reuses it: a step's peak RSS
/// then carries the fragments of every earlier shape (1.4 GB between micro-batches of a 24-layer step). A fixed
/// threshold gives each tensor of 2 MiB or more its own mapping, returned to the system when the tensor is freed;
/// smaller ones keep the heap. 2 MiB, not 8: a micro-batch of shorter completions makes layer activations of 3-8 MiB,
/// and at 8 MiB those fragmented the heap by 500 MiB that stayed for the rest of the step (12-layer LoRA step: peak
/// 1,221 MiB above its base at 8 MiB, 720-750 at 1, 2 and 4 MiB, the same system time). Only for models of real
/// size: below it the fragments are small, and a fresh mapping's page faults cost more than they save (the
/// built-in model's few-MiB tensors mapped and unmapped at every step tripled its system time; 5% of a
/// 24M-parameter model's update). These are the <c>lean</c> settings; <see cref="Reuse"/> trades memory for the
/// page faults, and <c>auto</c> (the default) picks between them by the run's memory estimate (<see cref="Choose"/>).
/// Linux with glibc only; elsewhere nothing.
/// </summary>
internal static class NativeHeap
{
    public const int MmapThresholdBytes = 2 << 20;
    public const long RealScaleParameters = 100_000_000;
    private const int TrimThresholdBytes = 64 << 20;   // keeps sbrk from shrinking and growing around small blocks

    private const int M_TRIM_THRESHOLD = -1, M_MMAP_THRESHOLD = -3, M_MMAP_MAX = -4;

    /// <summary>The values of the <c>native_heap</c> key.</summary>
    public const string ModeAuto = "auto", ModeLean = "lean", ModeReuse = "reuse";
    public static readonly string[] Modes = [ModeAuto, ModeLean, ModeReuse];

    /// <summary>The modes that need no run's memory estimate: what <c>popo bench --native-heap</c> takes.</summary>
    public static readonly string[] FixedModes = [ModeLean, ModeReuse];

    /// <summary>What a mode comes to for one run: glibc's own settings, the real-scale settings above, or <see cref="Reuse"/>.</summary>
    public enum Setting { GlibcDefault, Lean, Reuse }

    /// <summary>
    /// What <c>auto</c> weighs: the memory preflight's estimated peak, the largest of its phases' own tensors (the
    /// activations, KV cache and head tensors that are made and freed while a step runs: the only memory a reused heap
    /// can fragment, since weights, gradients and optimizer state are made once), and the memory available.
    /// </summary>
    public readonly record struct Budget(long PeakBytes, long TransientBytes, long AvailableBytes)
    {
        /// <summary>The peak plus <see cref="ReuseHeadroom"/> x the transient tensors fits in the memory available.</summary>
        public bool FitsReuse => PeakBytes + ReuseHeadroom * TransientBytes <= AvailableBytes;
    }

    /// <summary>
    /// The fragments a reused heap may keep, as a multiple of the estimate's transient tensors. Measured in the scale bench
    /// (24-layer 0.5B layout, 32 rows of 640 positions, micro-batches of 8: 1.1 GiB of transient tensors by the estimate),
    /// reuse kept 1.1-1.8 GiB more than lean at the LoRA row (1.9 -> 3.0-3.7 GiB, the spread from one run to the next) and
    /// 0.6 GiB more at full fine-tuning (10.5 -> 11.1). Until 2026-12-07 auto wanted twice the whole estimate, which
    /// counted weights and optimizer state made once as if they could fragment, and left full fine-tuning of the 0.5B
    /// layout lean on a 24 GiB machine.
    /// </summary>
    public const double ReuseHeadroom = 2.0;

    /// <summary>
    /// The setting of <paramref name="mode"/> for a model of <paramref name="parameters"/> parameters: "reuse", always
    /// <see cref="Setting.Reuse"/>; "lean", <see cref="Setting.Lean"/> for a model of real size (glibc's own below it,
    /// where the fragments are small); "auto", reuse for a model of real size when the <paramref name="budget"/> fits
    /// reuse (<see cref="Budget.FitsReuse"/>), else as "lean". Without a budget (another device, no reading of the
    /// memory) auto is lean.
    /// </summary>
    public static Setting Choose(long parameters, string mode, Budget? budget = null) => mode switch
    {
        ModeReuse => Setting.Reuse,
        _ when parameters < RealScaleParameters => Setting.GlibcDefault,
        ModeAuto when budget is { FitsReuse: true } => Setting.Reuse,
        _ => Setting.Lean,
    };

    /// <summary>Applies a setting; true when glibc took it (nothing to take for glibc's own).</summary>
    public static bool Apply(Setting setting) => setting switch
    {
        Setting.Reuse => Reuse(),
        Setting.Lean => Configure(),
        _ => true,
    };

    /// <summary>Applies the real-scale settings; true when glibc took them.</summary>
    private static bool Configure() => Mallopt((M_MMAP_THRESHOLD, MmapThresholdBytes), (M_TRIM_THRESHOLD, TrimThresholdBytes));

    /// <summary>
    /// No mappings of its own for any block and no trimming: a freed tensor's memory stays in the heap for the next
    /// one, so a fresh tensor costs no page faults. Fresh mappings are what the real-scale step spends its time on in a
    /// virtual machine like these: one decoder layer of the 0.5B layout at 5,120 rows, bf16, forward + backward, took
    /// 1,167 ms with the real-scale settings and 718 ms this way (scripts/layer-op-cost.fsx: RMSNorm 101 -> 13 ms, RoPE
    /// 73 -> 6, attention 243 -> 159); the scale bench's LoRA update 156 -> 80 s and full fine-tuning 173 -> 103 s
    /// (BENCHMARKS.md). The price is the fragmentation the threshold avoids: peak RSS 1,984 -> 3,108 MiB and
    /// 10,513 -> 11,102 MiB.
    /// </summary>
    private static bool Reuse() => Mallopt((M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, int.MaxValue));

    private static bool Mallopt(params (int Param, int Value)[] settings)
    {
        if (!OperatingSystem.IsLinux()) return false;
        try { return settings.Aggregate(true, (ok, s) => mallopt(s.Param, s.Value) == 1 & ok); }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException) { return false; }   // musl: no mallopt
    }

    /// <summary>
    /// Asks libtorch's CPU allocator for transparent huge pages (`THP_MEM_ALLOC_ENABLE`: blocks of 2 MiB or more
    /// aligned to 2 MiB and advised MADV_HUGEPAGE, which kernels in THP's default `madvise` mode honour), unless the
    /// environment already sets it (`THP_MEM_ALLOC_ENABLE=0` opts out). Each fresh mapping then faults in 2 MiB pages
    /// instead of 4 KiB ones: a 12-layer 0.5B-layout LoRA step spent 73 of its 312 CPU-seconds in the kernel, 38 with
    /// huge pages, at the same peak RSS (1.19x on the wall with two such steps sharing the machine, 1% for one alone). libtorch reads the variable once, at its first
    /// allocation: call this before any tensor exists. The process environment (setenv), not .NET's copy of it.
    /// </summary>
    public static void RequestHugePages()
    {
        if (!OperatingSystem.IsLinux()) return;
        try { if (string.IsNullOrEmpty(Marshal.PtrToStringAnsi(getenv(HugePagesVariable)))) setenv(HugePagesVariable, "1", 1); }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException) { }
    }

    /// <summary>What libtorch's allocator reads: the variable in the process environment ("unset" when absent), and the kernel's THP mode.</summary>
    public static string HugePagesSetting()
    {
        if (!OperatingSystem.IsLinux()) return "not applicable";
        var value = Marshal.PtrToStringAnsi(getenv(HugePagesVariable));
        const string mode = "/sys/kernel/mm/transparent_hugepage/enabled";
        var kernel = File.Exists(mode) && File.ReadAllText(mode) is var m && m.IndexOf('[') is var i and >= 0 ? m[(i + 1)..m.IndexOf(']')] : "unknown";
        return $"{HugePagesVariable}={(string.IsNullOrEmpty(value) ? "unset" : value)}, kernel {kernel}";
    }

    private const string HugePagesVariable = "THP_MEM_ALLOC_ENABLE";

    [DllImport("libc", EntryPoint = "getenv")]
    private static extern IntPtr getenv(string name);

    [DllImport("libc", EntryPoint = "setenv")]
    private static extern int setenv(string name, string value, int overwrite);

    [DllImport("libc", EntryPoint = "mallopt")]
    private static extern int mallopt(int param, int value);
}
