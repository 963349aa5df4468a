using Popo.Kernels;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using Popo.Engine.Model;

namespace Popo.Bench;

/// <summary>
/// The PyTorch-eager peer of the update step: bench/peer/qwen2_update.py run with Debian's python3-torch
/// (/usr/bin/python3) and OPENBLAS_NUM_THREADS = the engine's thread count (torch.set_num_threads does not bind
/// OpenBLAS). Absent (null, with the reason) when that python has no torch or the script is not found.
/// The peer runs with the fastest OpenBLAS kernel that is correct here (<see cref="OpenBlasCore"/>), never with what the
/// environment happens to set: these machines set OPENBLAS_CORETYPE=Haswell (AVX2 kernels on an AVX-512 CPU) and
/// OPENBLAS_L2_SIZE, which handicapped the peer by up to 2x. The bf16 rows' peer is PyTorch's own CPU mixed precision
/// (`--bf16`: torch.autocast, oneDNN's bf16 matmuls), not the float32 peer.
/// </summary>
internal static class PeerProbe
{
    public const string Python = "/usr/bin/python3";

    /// <summary>Why the peer cannot run here, or null when it can.</summary>
    public static string? Unavailable()
    {
        if (Script("qwen2_update.py") is null) return "bench/peer/qwen2_update.py not found above the working folder";
        if (!File.Exists(Python)) return $"{Python} not found";
        var (code, output, _) = Exec(["-c", "import torch"], 1, null);
        return code == 0 ? null : $"{Python} has no torch (apt-get install -y python3-torch libopenblas0-pthread): {output.Trim().Split('\n').LastOrDefault()}";
    }

    /// <summary>
    /// Fresh peer processes per row; the row takes the best. One process's steps run at one speed, and that speed
    /// differs from process to process: the medium-24M bf16 step took 1.33, 1.67, 1.91 and 3.36 s in four processes
    /// started alike (2026-12-07), so the best of one process could make the engine look 2-3x faster than it is.
    /// </summary>
    public const int Processes = 3;

    /// <summary>Best step seconds of the peer (wall and process CPU) over <see cref="Processes"/> processes for the same layout and batch, or NaN when it failed; bf16 = under autocast.</summary>
    public static (Span Step, string Version) UpdateStep(ModelConfig c, int batch, int sequence, int rounds, int threads, bool bf16)
    {
        var runs = Enumerable.Range(0, Processes).Select(_ => UpdateStepOnce(c, batch, sequence, rounds, threads, bf16)).ToList();
        var ok = runs.Where(r => !double.IsNaN(r.Step.Wall)).ToList();
        return ok.Count == 0 ? runs[0] : (new Span(ok.Min(r => r.Step.Wall), ok.Min(r => r.Step.Cpu)), ok[0].Version);
    }

    private static (Span Step, string Version) UpdateStepOnce(ModelConfig c, int batch, int sequence, int rounds, int threads, bool bf16)
    {
        string[] args =
        [
            Script("qwen2_update.py")!, "--vocab", c.VocabSize.ToString(CultureInfo.InvariantCulture), "--hidden", c.HiddenSize.ToString(CultureInfo.InvariantCulture),
            "--intermediate", c.IntermediateSize.ToString(CultureInfo.InvariantCulture), "--layers", c.NumHiddenLayers.ToString(CultureInfo.InvariantCulture),
            "--heads", c.NumAttentionHeads.ToString(CultureInfo.InvariantCulture), "--kv-heads", c.NumKeyValueHeads.ToString(CultureInfo.InvariantCulture),
            "--batch", batch.ToString(CultureInfo.InvariantCulture), "--seq", sequence.ToString(CultureInfo.InvariantCulture),
            "--rounds", rounds.ToString(CultureInfo.InvariantCulture), "--threads", threads.ToString(CultureInfo.InvariantCulture),
            .. c.TieWordEmbeddings ? new[] { "--tied" } : [],
            .. bf16 ? new[] { "--bf16" } : [],
        ];
        var (code, output, _) = Exec(args, threads, OpenBlasCore(threads).Chosen);
        if (code != 0) return (new Span(double.NaN, double.NaN), "failed: " + output.Trim().Split('\n').LastOrDefault());
        var json = JsonNode.Parse(output.Trim().Split('\n').Last())!;
        return (new Span(json["step_s"]!.GetValue<double>(), json["step_cpu_s"]!.GetValue<double>()), json["torch"]!.GetValue<string>());
    }

    /// <summary>One OpenBLAS kernel candidate: its OPENBLAS_CORETYPE (null = OpenBLAS's own choice from CPUID), the core OpenBLAS
    /// reports it loaded, the float32 product's largest error relative to float64, and its float32 GFLOP per wall second and
    /// per process CPU-second (NaN when it failed).</summary>
    public sealed record Candidate(string? CoreType, string Loaded, double RelErr, double Gflops, double GflopsCpu)
    {
        /// <summary>float32's unit roundoff 6e-8 with room for the growth of a 512-term sum: a wrong kernel errs by O(1).</summary>
        public const double Tolerance = 1e-5;
        public bool Correct => RelErr <= Tolerance;
        public string Name => CoreType ?? "OpenBLAS's own choice";
    }

    private static (string? Chosen, IReadOnlyList<Candidate> Candidates)? openBlasCore;

    /// <summary>
    /// The OPENBLAS_CORETYPE the peer runs with (null = OpenBLAS's own choice), and every candidate tried; probed once.
    /// Candidates: OpenBLAS's choice, the environment's OPENBLAS_CORETYPE, and Haswell, SkylakeX and Cooperlake where the
    /// CPU flags support them; each is checked against float64 and timed (bench/peer/openblas_probe.py), always with
    /// OPENBLAS_L2_SIZE unset; the fastest correct one per process CPU-second wins (the wall clock of a shared machine
    /// ranks them by what else ran at the time).
    /// </summary>
    public static (string? Chosen, IReadOnlyList<Candidate> Candidates) OpenBlasCore(int threads) => openBlasCore ??= ProbeOpenBlasCore(threads);

    private static (string? Chosen, IReadOnlyList<Candidate> Candidates) ProbeOpenBlasCore(int threads)
    {
        static bool Has(string flag) => Popo.Kernels.CpuFlags.Has(flag);
        var types = new List<string?> { null, Environment.GetEnvironmentVariable("OPENBLAS_CORETYPE") is { Length: > 0 } set ? set : null };
        if (Has("avx2") && Has("fma")) types.Add("Haswell");
        if (Has("avx512f") && Has("avx512bw") && Has("avx512vl")) types.Add("SkylakeX");
        if (Has("avx512f") && Has("avx512bw") && Has("avx512vl") && Has("avx512_bf16")) types.Add("Cooperlake");
        var candidates = new List<Candidate>();
        foreach (var type in types.Distinct(StringComparer.OrdinalIgnoreCase))
        {
            var (code, output, errors) = Exec([Script("openblas_probe.py")!, "--threads", threads.ToString(CultureInfo.InvariantCulture)], threads, type, ("OPENBLAS_VERBOSE", "2"));
            // OpenBLAS says "Core: X" on stderr at load.
            var loaded = errors.Split('\n').Select(l => l.Trim()).FirstOrDefault(l => l.StartsWith("Core: ", StringComparison.Ordinal))?[6..] ?? "unknown";
            if (code != 0) { candidates.Add(new(type, loaded, double.NaN, double.NaN, double.NaN)); continue; }
            var json = JsonNode.Parse(output.Trim().Split('\n').Last())!;
            candidates.Add(new(type, loaded, json["rel_err"]!.GetValue<double>(), json["gflops"]!.GetValue<double>(), json["gflops_cpu"]!.GetValue<double>()));
        }
        var best = candidates.Where(c => c.Correct).OrderByDescending(c => c.GflopsCpu).FirstOrDefault();
        return (best?.CoreType, candidates);
    }

    private static string? Script(string name)
    {
        for (var dir = new DirectoryInfo(Directory.GetCurrentDirectory()); dir is not null; dir = dir.Parent)
        {
            var path = Path.Combine(dir.FullName, "bench", "peer", name);
            if (File.Exists(path)) return path;
        }
        return null;
    }

    /// <summary>
    /// Runs the peer's python with OPENBLAS_CORETYPE = <paramref name="coreType"/> (removed when null) and OPENBLAS_L2_SIZE
    /// removed: exit code, stdout (with stderr appended when it failed), and stderr alone.
    /// </summary>
    private static (int Code, string Output, string Errors) Exec(string[] args, int threads, string? coreType, params (string Key, string Value)[] environment)
    {
        var info = new ProcessStartInfo(Python) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) info.ArgumentList.Add(a);
        info.Environment.Remove("OPENBLAS_L2_SIZE");
        if (coreType is null) info.Environment.Remove("OPENBLAS_CORETYPE"); else info.Environment["OPENBLAS_CORETYPE"] = coreType;
        info.Environment["OPENBLAS_NUM_THREADS"] = threads.ToString(CultureInfo.InvariantCulture);
        info.Environment["OMP_NUM_THREADS"] = threads.ToString(CultureInfo.InvariantCulture);
        foreach (var (key, value) in environment) info.Environment[key] = value;
        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        process.WaitForExit();
        return (process.ExitCode, stdout.Result + (process.ExitCode == 0 ? "" : stderr.Result), stderr.Result);
    }
}
