using System.Diagnostics;
using System.Runtime.InteropServices;
using Popo.Engine.Model;
using Popo.Engine.Rollout;
using TorchSharp;
using static TorchSharp.torch;

namespace Popo.Bench;

/// <summary>
/// Prefill and decode throughput of the Qwen2 engine for several model and batch sizes, next to the float32
/// matmul rate measured in the same run, as achieved GFLOP/s (2 x weight parameters per token plus attention)
/// over the matmul's GFLOP/s. Every figure is taken both on the wall clock and on the process's CPU clock:
/// on a shared machine the wall clock counts other processes' time slices, the CPU clock (GFLOP per
/// CPU-second on both sides of the ratio) does not.
/// </summary>
public static class ModelBench
{
    public sealed record Size(string Name, ModelConfig Config);

    public static readonly Size[] Sizes =
    [
        new("tiny-0.4M", new ModelConfig { VocabSize = 100, HiddenSize = 128, IntermediateSize = 352, NumHiddenLayers = 2, NumAttentionHeads = 4, NumKeyValueHeads = 2, TieWordEmbeddings = true }),
        new("small-3M", new ModelConfig { VocabSize = 100, HiddenSize = 256, IntermediateSize = 704, NumHiddenLayers = 4, NumAttentionHeads = 8, NumKeyValueHeads = 4, TieWordEmbeddings = true }),
        new("medium-24M", new ModelConfig { VocabSize = 1000, HiddenSize = 512, IntermediateSize = 1408, NumHiddenLayers = 8, NumAttentionHeads = 8, NumKeyValueHeads = 2 }),
    ];

    /// <summary>Seconds on the wall clock and on this process's CPU clock (all threads).</summary>
    public readonly record struct Span(double Wall, double Cpu)
    {
        public static Span Min(Span a, Span b) => new(Math.Min(a.Wall, b.Wall), Math.Min(a.Cpu, b.Cpu));
        public static Span operator -(Span a, Span b) => new(Math.Max(a.Wall - b.Wall, 1e-9), Math.Max(a.Cpu - b.Cpu, 1e-9));
        public static readonly Span Infinite = new(double.MaxValue, double.MaxValue);
    }

    public static int Run(int? threads, bool quick, TextWriter output)
    {
        if (threads is int t) torch.set_num_threads(t);
        torch.manual_seed(0);
        var device = torch.CPU;
        var batches = quick ? new[] { 16 } : new[] { 16, 64, 256 };
        const int promptLength = 32, newTokens = 64;
        var matmulSize = quick ? 512 : 2048;
        var matmul = Matmul(matmulSize, device);
        var matmulGflop = 2.0 * matmulSize * matmulSize * (double)matmulSize / 1e9;

        output.WriteLine($"TorchSharp {typeof(torch).Assembly.GetName().Version}, libtorch {torch.__version__}, {torch.get_num_threads()} threads, {Environment.ProcessorCount} logical CPUs");
        output.WriteLine($"load average at start: {LoadAverage()}");
        output.WriteLine($"float32 matmul {matmulSize}^3: {matmulGflop / matmul.Wall:F1} GFLOP/s wall, {matmulGflop / matmul.Cpu:F1} GFLOP per CPU-second");
        output.WriteLine($"prompt {promptLength} tokens, {newTokens} new tokens, float32, sampling at T = 1; best of 5 interleaved rounds");
        output.WriteLine();
        output.WriteLine("| model | params | batch | prefill tok/s | decode tok/s | prefill % matmul (wall / CPU) | decode % matmul (wall / CPU) | decode forward ms/step | sampling share of decode CPU |");
        output.WriteLine("|---|---|---|---|---|---|---|---|---|");
        foreach (var size in quick ? Sizes.Take(1) : Sizes)
        {
            using var model = new Qwen2ForCausalLM(size.Config, device, ScalarType.Float32);
            var parameters = model.NamedParameters().Sum(p => p.Parameter.numel());
            foreach (var b in batches)
            {
                var r = Measure(model, b, promptLength, newTokens);
                var prefillGflop = FlopsPerToken(size.Config, promptLength / 2.0) * b * promptLength / 1e9;
                var decodeGflop = FlopsPerToken(size.Config, promptLength + newTokens / 2.0) * b * newTokens / 1e9;
                string Percent(double gflop, Span s) =>
                    $"{100 * gflop / s.Wall / (matmulGflop / matmul.Wall):F0}% / {100 * gflop / s.Cpu / (matmulGflop / matmul.Cpu):F0}%";
                output.WriteLine($"| {size.Name} | {parameters / 1e6:F2}M | {b} | {b * promptLength / r.Prefill.Wall:F0} | {b * newTokens / r.Decode.Wall:F0} | " +
                    $"{Percent(prefillGflop, r.Prefill)} | {Percent(decodeGflop, r.Decode)} | {1000 * r.DecodeForward.Wall / (newTokens - 1):F2} | " +
                    $"{100 * Math.Clamp(1 - r.DecodeForward.Cpu / r.Decode.Cpu, 0, 1):F0}% |");
            }
        }
        var end = Matmul(matmulSize, device);
        output.WriteLine();
        output.WriteLine($"float32 matmul {matmulSize}^3 at end: {matmulGflop / end.Wall:F1} GFLOP/s wall, {matmulGflop / end.Cpu:F1} GFLOP per CPU-second");
        output.WriteLine($"load average at end: {LoadAverage()}");
        return 0;
    }

    /// <summary>C = A B for n x n float32 matrices: best of 10 after a warm-up.</summary>
    public static Span Matmul(int n, Device device)
    {
        using var scope = torch.NewDisposeScope();
        var a = torch.randn(n, n, device: device);
        var b = torch.randn(n, n, device: device);
        a.matmul(b).Dispose();
        var best = Span.Infinite;
        for (var i = 0; i < 10; i++) best = Span.Min(best, Time(() => a.matmul(b).Dispose()));
        return best;
    }

    /// <summary>Forward FLOPs per token: 2 x (projection + MLP + head weights) + 4 x layers x context x hidden (scores and values).</summary>
    public static double FlopsPerToken(ModelConfig c, double context)
    {
        long d = c.HiddenSize, kv = c.NumKeyValueHeads * c.HeadDim;
        var perLayer = d * d + 2 * d * kv + d * d + 3 * d * c.IntermediateSize;
        var weights = c.NumHiddenLayers * perLayer + (long)c.VocabSize * d;
        return 2.0 * weights + 4.0 * c.NumHiddenLayers * context * d;
    }

    /// <summary>Prefill over B x P tokens; decode (the sampler's time minus its prefill) over B x N; the same cached forward steps alone.</summary>
    public sealed record Result(Span Prefill, Span Decode, Span DecodeForward);

    public static Result Measure(Qwen2ForCausalLM model, int batch, int promptLength, int newTokens)
    {
        var vocab = model.Config.VocabSize;
        var random = new Random(batch);
        var prompts = Enumerable.Range(0, batch).Select(_ => Enumerable.Range(0, promptLength).Select(_ => random.Next(vocab)).ToArray()).ToList();
        var options = new SamplerOptions { MaxNewTokens = newTokens, Seed = 1 };
        Sampler.Generate(model, prompts.Take(Math.Min(batch, 4)).ToList(), options with { MaxNewTokens = 4 }).Dispose(); // warm-up

        // Interleaved rounds, best of each: a burst of load from another process spoils one round, not a figure.
        Span prefill = Span.Infinite, generate = Span.Infinite, forwardOnly = Span.Infinite;
        for (var round = 0; round < 5; round++)
        {
            prefill = Span.Min(prefill, Time(() => ForwardSteps(model, batch, promptLength, 0)));
            forwardOnly = Span.Min(forwardOnly, Time(() => ForwardSteps(model, batch, promptLength, newTokens - 1)));
            generate = Span.Min(generate, Time(() =>
            {
                using var r = Sampler.Generate(model, prompts, options);
            }));
        }
        return new Result(prefill, generate - prefill, forwardOnly - prefill);
    }

    /// <summary>A prefill over [B,P] then <paramref name="steps"/> single-token cached steps, forward and last-position logits only.</summary>
    private static void ForwardSteps(Qwen2ForCausalLM model, int batch, int promptLength, int steps)
    {
        using var noGrad = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var device = model.Device;
        using var cache = model.NewCache(batch, promptLength + steps + 1);
        var ids = torch.randint(model.Config.VocabSize, [batch, promptLength], device: device);
        var mask = torch.ones(batch, promptLength + steps + 1, dtype: ScalarType.Int64, device: device);
        var hidden = model.ForwardHidden(ids, mask.narrow(1, 0, promptLength), null, cache);
        model.LogitsOf(hidden.select(1, promptLength - 1)).Dispose();
        var next = torch.zeros(batch, 1, dtype: ScalarType.Int64, device: device);
        for (var s = 0; s < steps; s++)
        {
            using var stepScope = torch.NewDisposeScope();
            var position = torch.full(batch, 1, promptLength + s, dtype: ScalarType.Int64, device: device);
            var h = model.ForwardHidden(next, mask.narrow(1, 0, promptLength + s + 1), position, cache);
            model.LogitsOf(h.select(1, 0)).Dispose();
        }
    }

    /// <summary>The 1/5/15-minute load averages (Linux), to tell a quiet machine from a shared one.</summary>
    private static string LoadAverage() =>
        File.Exists("/proc/loadavg") ? string.Join(" ", File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "n/a";

    private static Span Time(Action action)
    {
        var cpu = ProcessCpuSeconds();
        var watch = Stopwatch.StartNew();
        action();
        var wall = watch.Elapsed.TotalSeconds;
        return new Span(wall, ProcessCpuSeconds() - cpu);
    }

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
    private static double ProcessCpuSeconds()
    {
        const int ClockProcessCpuTimeId = 2;
        if (OperatingSystem.IsLinux() && ClockGetTime(ClockProcessCpuTimeId, out var t) == 0) return t.Seconds + t.Nanoseconds * 1e-9;
        using var process = Process.GetCurrentProcess();
        return process.TotalProcessorTime.TotalSeconds;
    }
}
