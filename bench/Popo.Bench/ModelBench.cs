using System.Diagnostics;
using Popo.Engine.Model;
using Popo.Engine.Rollout;
using TorchSharp;
using static TorchSharp.torch;

namespace Popo.Bench;

/// <summary>
/// Prefill and decode throughput of the Qwen2 engine for several model and batch sizes, next to the float32
/// matmul rate measured in the same run. Throughput is also expressed as achieved GFLOP/s (2 x matmul
/// parameters per token, plus attention) and as a fraction of the matmul rate.
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

    public static int Run(int? threads, bool quick, TextWriter output)
    {
        if (threads is int t) torch.set_num_threads(t);
        torch.manual_seed(0);
        var device = torch.CPU;
        var batches = quick ? new[] { 16 } : new[] { 16, 64, 256 };
        const int promptLength = 32, newTokens = 64;

        var matmulSize = quick ? 512 : 2048;
        var matmul = MatmulGflops(matmulSize, device);
        output.WriteLine($"TorchSharp {typeof(torch).Assembly.GetName().Version}, libtorch {torch.__version__}, {torch.get_num_threads()} threads, {Environment.ProcessorCount} logical CPUs");
        output.WriteLine($"float32 matmul {matmulSize}^3 at start: {matmul:F1} GFLOP/s (percentages below are of this figure)");
        output.WriteLine($"prompt {promptLength} tokens, {newTokens} new tokens, float32, sampling at T = 1");
        output.WriteLine();
        output.WriteLine("| model | params | batch | prefill tok/s | prefill % matmul | decode tok/s | decode % matmul | decode step forward ms | sampling share |");
        output.WriteLine("|---|---|---|---|---|---|---|---|---|");
        foreach (var size in quick ? Sizes.Take(1) : Sizes)
        {
            using var model = new Qwen2ForCausalLM(size.Config, device, ScalarType.Float32);
            var parameters = model.NamedParameters().Sum(p => p.Parameter.numel());
            foreach (var b in batches)
            {
                var r = Measure(model, b, promptLength, newTokens);
                var prefillFlops = FlopsPerToken(size.Config, promptLength / 2.0) * r.PrefillTokensPerSecond / 1e9;
                var decodeFlops = FlopsPerToken(size.Config, promptLength + newTokens / 2.0) * r.DecodeTokensPerSecond / 1e9;
                output.WriteLine($"| {size.Name} | {parameters / 1e6:F2}M | {b} | {r.PrefillTokensPerSecond:F0} | {100 * prefillFlops / matmul:F0}% | " +
                    $"{r.DecodeTokensPerSecond:F0} | {100 * decodeFlops / matmul:F0}% | {r.DecodeForwardMsPerStep:F2} | {100 * r.SamplingShare:F0}% |");
            }
        }
        output.WriteLine();
        output.WriteLine($"float32 matmul {matmulSize}^3 at end: {MatmulGflops(matmulSize, device):F1} GFLOP/s (a drift from the start figure means the machine was shared)");
        return 0;
    }

    /// <summary>C = A B for n x n float32 matrices, best of several runs after a warm-up: 2 n^3 / t.</summary>
    public static double MatmulGflops(int n, Device device)
    {
        using var scope = torch.NewDisposeScope();
        var a = torch.randn(n, n, device: device);
        var b = torch.randn(n, n, device: device);
        a.matmul(b).Dispose();
        var best = double.MaxValue;
        for (var i = 0; i < 10; i++)
        {
            var watch = Stopwatch.StartNew();
            a.matmul(b).Dispose();
            best = Math.Min(best, watch.Elapsed.TotalSeconds);
        }
        return 2.0 * n * n * n / best / 1e9;
    }

    /// <summary>Forward FLOPs per token: 2 x (projection + MLP + head weights) + 4 x layers x context x hidden (scores and values).</summary>
    public static double FlopsPerToken(ModelConfig c, double context)
    {
        long d = c.HiddenSize, kv = c.NumKeyValueHeads * c.HeadDim;
        var perLayer = d * d + 2 * d * kv + d * d + 3 * d * c.IntermediateSize;
        var weights = c.NumHiddenLayers * perLayer + (long)c.VocabSize * d;
        return 2.0 * weights + 4.0 * c.NumHiddenLayers * context * d;
    }

    public sealed record Result(double PrefillTokensPerSecond, double DecodeTokensPerSecond, double DecodeForwardMsPerStep, double SamplingShare);

    /// <summary>
    /// Prefill: one forward over [B,P] with a cache. Decode: <see cref="Sampler.Generate"/> minus its prefill,
    /// over B x N tokens. The sampling share is the part of decode time outside the model's forward passes
    /// (softmax, multinomial, bookkeeping), from timing the same cached forward steps alone.
    /// </summary>
    public static Result Measure(Qwen2ForCausalLM model, int batch, int promptLength, int newTokens)
    {
        var vocab = model.Config.VocabSize;
        var random = new Random(batch);
        var prompts = Enumerable.Range(0, batch).Select(_ => Enumerable.Range(0, promptLength).Select(_ => random.Next(vocab)).ToArray()).ToList();
        var options = new SamplerOptions { MaxNewTokens = newTokens, Seed = 1 };
        Sampler.Generate(model, prompts.Take(Math.Min(batch, 4)).ToList(), options with { MaxNewTokens = 4 }).Dispose(); // warm-up

        // Interleaved rounds, best of each: a burst of load from another process spoils one round, not a figure.
        double prefill = double.MaxValue, generate = double.MaxValue, forwardOnly = double.MaxValue;
        for (var round = 0; round < 5; round++)
        {
            prefill = Math.Min(prefill, Time(() => ForwardSteps(model, batch, promptLength, 0)));
            forwardOnly = Math.Min(forwardOnly, Time(() => ForwardSteps(model, batch, promptLength, newTokens - 1)));
            generate = Math.Min(generate, Time(() =>
            {
                using var r = Sampler.Generate(model, prompts, options);
            }));
        }
        var decode = Math.Max(generate - prefill, 1e-9);
        var decodeForward = Math.Max(forwardOnly - prefill, 1e-9);
        return new Result(
            batch * (double)promptLength / prefill,
            batch * (double)newTokens / decode,
            1000 * decodeForward / (newTokens - 1),
            Math.Clamp(1 - decodeForward / decode, 0, 1));
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

    private static double Time(Action action)
    {
        var watch = Stopwatch.StartNew();
        action();
        return watch.Elapsed.TotalSeconds;
    }
}
