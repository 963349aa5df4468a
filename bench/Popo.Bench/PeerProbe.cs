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
/// OpenBLAS picks its kernels from CPUID, and a VM that hides the CPU model gets the fallback ("Prescott": SSE3,
/// 20 GFLOP/s where the AVX-512 kernels do 98): the peer then runs with the core its CPU flags support
/// (OPENBLAS_CORETYPE), unless that variable is already set.
/// </summary>
internal static class PeerProbe
{
    public const string Python = "/usr/bin/python3";

    /// <summary>Why the peer cannot run here, or null when it can.</summary>
    public static string? Unavailable()
    {
        if (Script() is null) return "bench/peer/qwen2_update.py not found above the working folder";
        if (!File.Exists(Python)) return $"{Python} not found";
        var (code, output, _) = Exec(["-c", "import torch"], 1);
        return code == 0 ? null : $"{Python} has no torch (apt-get install -y python3-torch libopenblas0-pthread): {output.Trim().Split('\n').LastOrDefault()}";
    }

    /// <summary>Best step seconds of the peer (wall and process CPU) for the same layout and batch, or NaN when it failed.</summary>
    public static (Span Step, string Version) UpdateStep(ModelConfig c, int batch, int sequence, int rounds, int threads)
    {
        string[] args =
        [
            Script()!, "--vocab", c.VocabSize.ToString(CultureInfo.InvariantCulture), "--hidden", c.HiddenSize.ToString(CultureInfo.InvariantCulture),
            "--intermediate", c.IntermediateSize.ToString(CultureInfo.InvariantCulture), "--layers", c.NumHiddenLayers.ToString(CultureInfo.InvariantCulture),
            "--heads", c.NumAttentionHeads.ToString(CultureInfo.InvariantCulture), "--kv-heads", c.NumKeyValueHeads.ToString(CultureInfo.InvariantCulture),
            "--batch", batch.ToString(CultureInfo.InvariantCulture), "--seq", sequence.ToString(CultureInfo.InvariantCulture),
            "--rounds", rounds.ToString(CultureInfo.InvariantCulture), "--threads", threads.ToString(CultureInfo.InvariantCulture),
            .. c.TieWordEmbeddings ? new[] { "--tied" } : [],
        ];
        var (code, output, _) = Exec(args, threads, OpenBlasCore().Forced is string core ? [("OPENBLAS_CORETYPE", core)] : []);
        if (code != 0) return (new Span(double.NaN, double.NaN), "failed: " + output.Trim().Split('\n').LastOrDefault());
        var json = JsonNode.Parse(output.Trim().Split('\n').Last())!;
        return (new Span(json["step_s"]!.GetValue<double>(), json["step_cpu_s"]!.GetValue<double>()), json["torch"]!.GetValue<string>());
    }

    private static (string Detected, string? Forced)? openBlasCore;

    /// <summary>OpenBLAS's own choice of kernels, and the core type the peer runs with (null = OpenBLAS's choice stands); probed once.</summary>
    public static (string Detected, string? Forced) OpenBlasCore() => openBlasCore ??= ProbeOpenBlasCore();

    private static (string Detected, string? Forced) ProbeOpenBlasCore()
    {
        if (Environment.GetEnvironmentVariable("OPENBLAS_CORETYPE") is { Length: > 0 } set) return (set + " (set by the caller)", null);
        var (_, _, verbose) = Exec(["-c", "import torch; torch.ones(2, 2) @ torch.ones(2, 2)"], 1, ("OPENBLAS_VERBOSE", "2"));   // OpenBLAS says "Core: X" on stderr
        var detected = verbose.Split('\n').Select(l => l.Trim()).FirstOrDefault(l => l.StartsWith("Core: ", StringComparison.Ordinal))?[6..] ?? "unknown";
        static bool Has(string flag) => Popo.Kernels.CpuFlags.Has(flag);
        string? wanted = Has("avx512f") && Has("avx512bw") && Has("avx512vl") ? (Has("avx512_bf16") ? "Cooperlake" : "SkylakeX")
            : Has("avx2") && Has("fma") ? "Haswell" : null;
        // Only a fallback is overridden: a core OpenBLAS recognised (a Zen, say) keeps the kernels it chose.
        string[] fallbacks = ["Prescott", "Katmai", "Coppermine", "Northwood", "Banias", "Core2", "Penryn", "Dunnington", "Nehalem", "Atom", "unknown"];
        return (detected, wanted is not null && fallbacks.Contains(detected) ? wanted : null);
    }

    private static string? Script()
    {
        for (var dir = new DirectoryInfo(Directory.GetCurrentDirectory()); dir is not null; dir = dir.Parent)
        {
            var path = Path.Combine(dir.FullName, "bench", "peer", "qwen2_update.py");
            if (File.Exists(path)) return path;
        }
        return null;
    }

    /// <summary>Runs the peer's python: exit code, stdout (with stderr appended when it failed), and stderr alone.</summary>
    private static (int Code, string Output, string Errors) Exec(string[] args, int threads, params (string Key, string Value)[] environment)
    {
        var info = new ProcessStartInfo(Python) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) info.ArgumentList.Add(a);
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
