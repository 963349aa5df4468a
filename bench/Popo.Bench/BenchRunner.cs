using Popo.Engine.Runtime;
using Popo.Kernels;
using TorchSharp;

namespace Popo.Bench;

/// <summary>`popo bench`: runs the chosen sections, prints a table per section and writes bench.json.</summary>
internal static class BenchRunner
{
    public static readonly string[] SectionNames = ["peak", "update", "decode", "popo", "memory", "profile", "verify", "rollout", "scale"];

    /// <param name="only">Sections to run (null = all); the peak is always measured, every ratio needs it.</param>
    /// <param name="layers">Decoder layers of the Qwen2.5-0.5B layout in the rollout and scale sections (null = 24, the real depth).</param>
    /// <param name="rows">Substrings selecting the scale section's rows and the update section's rows ("size precision", e.g. "medium-24M float32"; null = all).</param>
    /// <param name="nativeHeap">The C heap's setting for the rollout and scale sections' 0.5B models: lean | reuse (<see cref="NativeHeap.FixedModes"/>).</param>
    /// <param name="scaleSetup">The scale section's step: a name of <see cref="ScaleBench.Setups"/>.</param>
    public static int Run(int? threads, bool quick, IReadOnlyCollection<string>? only, string outPath, TextWriter output,
                          int? layers = null, IReadOnlyCollection<string>? rows = null, string nativeHeap = NativeHeap.ModeLean, string scaleSetup = ScaleBench.DefaultSetup)    {
        if (!ScaleBench.Setups.ContainsKey(scaleSetup)) throw new ArgumentException($"--scale-setup: '{scaleSetup}'; valid: {string.Join(", ", ScaleBench.Setups.Keys)}");
        if (!NativeHeap.FixedModes.Contains(nativeHeap)) throw new ArgumentException($"--native-heap: '{nativeHeap}'; valid: {string.Join(", ", NativeHeap.FixedModes)}");
        var unknown = only?.Where(n => !SectionNames.Contains(n)).ToList() ?? [];
        if (unknown.Count > 0)
            throw new ArgumentException($"--only: unknown section(s) {string.Join(", ", unknown)}; valid: {string.Join(", ", SectionNames)}");
        bool Wants(string name) => only is null || only.Contains(name);
        if (threads is int t) torch.set_num_threads(t);
        var report = new BenchReport(output);
        report.Meta("torchsharp", typeof(torch).Assembly.GetName().Version?.ToString() ?? "?");
        report.Meta("libtorch", torch.__version__);
        report.Meta("threads", torch.get_num_threads());
        report.Meta("logical_cpus", Environment.ProcessorCount);
        report.Meta("quick", quick);
        report.Meta("mkl_vendor_check", Popo.Kernels.MklVendorCheck.Configure());
        report.Meta("huge_pages", NativeHeap.HugePagesSetting());
        report.Meta("native_heap", nativeHeap);
        report.Meta("threading", Popo.Engine.Runtime.FixedThreading.Describe());
        report.Meta("load_start", BenchClock.LoadAverage());
        report.Meta("started_utc", DateTime.UtcNow.ToString("yyyy-MM-ddTHH:mm:ssZ"));

        int matmulN = quick ? 512 : 2048, copyMiB = quick ? 32 : 256;
        var peak = Peak.Measure(matmulN, copyMiB);
        report.Add(Peak.Section(peak));
        if (Wants("update"))
        {
            report.Add(UpdateBench.Run(quick ? UpdateBench.Quick : UpdateBench.Full, rows, peak, quick ? 1 : 2, withPeer: !quick));
        }
        if (Wants("decode")) report.Add(DecodeBench.Run(quick ? DecodeBench.Quick : DecodeBench.Full, peak));
        if (Wants("popo")) report.Add(PopoSavingBench.Run(quick ? PopoSavingBench.Quick : PopoSavingBench.Full));
        if (only is not null && only.Contains("profile"))   // diagnostics: only on request
            report.Add(ProfileBench.Run(quick ? DecodeBench.Quick : DecodeBench.Full, quick ? PopoSavingBench.Quick : PopoSavingBench.Full));
        if (only is not null && only.Contains("rollout"))   // minutes at the 0.5B layout: only on request
            foreach (var section in RolloutBench.Run(quick ? RolloutBench.Quick : RolloutBench.Full(layers ?? 24), peak, nativeHeap)) report.Add(section);
        if (Wants("memory")) report.Add(MemoryBench.Run(quick ? MemoryBench.Quick : MemoryBench.Full));
        if (only is not null && only.Contains("verify"))     // the verifier has its own figures: only on request
            report.Add(VerifierBench.Run(quick));
        if (only is not null && only.Contains("scale"))   // real vocabulary, GBs of memory: only on request
            report.Add(ScaleBench.Run(quick ? ScaleBench.Quick(layers) : ScaleBench.Setups[scaleSetup](layers ?? 24), rows, peak, nativeHeap));
        var end = Peak.Measure(matmulN, copyMiB);
        report.Meta("matmul_gflops_end", end.GflopsWall);
        report.Meta("copy_gb_s_end", end.CopyBytesPerSecond / 1e9);
        report.Meta("load_end", BenchClock.LoadAverage());
        report.Write(outPath);
        return 0;
    }
}
