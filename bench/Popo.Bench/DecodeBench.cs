using Popo.Engine.Model;
using Popo.Engine.Rollout;
using TorchSharp;
using static TorchSharp.torch;

namespace Popo.Bench;

/// <summary>
/// Rollout throughput: the sampler's decode tokens/s with the KV cache, against two limits of this machine
/// measured in the same run. Bandwidth bound: a decode step must read every weight once plus the cached keys and
/// values of each row, so it cannot beat B / (those bytes / the copy rate) tokens/s. Compute bound: decode FLOPs
/// over the peak matmul rate. Prompts of P random tokens, N new tokens sampled at T = 1 with no stop token.
/// </summary>
internal static class DecodeBench
{
    public sealed record Setup(BenchModels.Size Size, int[] Batches, int PromptLength, int NewTokens, int Rounds);

    public static readonly Setup Full = new(BenchModels.Medium, [1, 4, 16, 64, 256], 32, 32, 3);
    public static readonly Setup Quick = new(BenchModels.Tiny, [1, 4], 16, 8, 2);

    public static BenchSection Run(Setup setup, PeakResult peak)
    {
        var s = new BenchSection("decode", $"Decode: tokens/s with the KV cache ({setup.Size.Name}, prompt {setup.PromptLength}, {setup.NewTokens} new tokens)");
        torch.manual_seed(0);
        using var model = new Qwen2ForCausalLM(setup.Size.Config, torch.CPU, ScalarType.Float32);
        model.eval();
        var config = setup.Size.Config;
        s.Facts["model"] = setup.Size.Name;
        s.Facts["params_M"] = model.parameters().Sum(p => p.numel()) / 1e6;
        s.Facts["weights_read_per_step_MiB"] = BenchModels.DecodeBytesPerStep(config, 0, 0) / (1024.0 * 1024);
        foreach (var b in setup.Batches)
        {
            ResidentMemory.ResetPeak();
            var random = new Random(b);
            var prompts = Enumerable.Range(0, b).Select(_ => Enumerable.Range(0, setup.PromptLength).Select(_ => random.Next(config.VocabSize)).ToArray()).ToList();
            var options = new SamplerOptions { MaxNewTokens = setup.NewTokens, Seed = 1 };
            Sampler.Generate(model, prompts, options with { MaxNewTokens = 2 }).Dispose(); // warm-up
            // Interleaved rounds, best of each: a burst of load from another process spoils one round, not a figure.
            Span prefill = Span.Infinite, generate = Span.Infinite;
            for (var round = 0; round < setup.Rounds; round++)
            {
                prefill = Span.Min(prefill, BenchClock.Time(() => Prefill(model, b, setup.PromptLength)));
                generate = Span.Min(generate, BenchClock.Time(() => Sampler.Generate(model, prompts, options).Dispose()));
            }
            var decode = generate - prefill;
            var steps = setup.NewTokens - 1;                                // the first token comes from the prefill's logits
            var context = setup.PromptLength + setup.NewTokens / 2.0;       // mean cached positions attended per step
            var tokens = (double)b * setup.NewTokens;
            var boundStep = BenchModels.DecodeBytesPerStep(config, b, context) / peak.CopyBytesPerSecond;
            var boundTokS = b / boundStep;
            var gflop = BenchModels.ForwardFlopsPerToken(config, context) * tokens / 1e9;
            s.Rows.Add(new()
            {
                ["batch"] = b,
                ["prefill_tok_s"] = b * setup.PromptLength / prefill.Wall,
                ["decode_tok_s"] = tokens / decode.Wall,
                ["ms_per_step"] = 1000 * decode.Wall / steps,
                ["bandwidth_bound_tok_s"] = boundTokS,
                ["x_of_bound"] = boundTokS / (tokens / decode.Wall),
                ["x_of_bound_cpu"] = b / (BenchModels.DecodeBytesPerStep(config, b, context) / peak.CopyBytesPerCpuSecond) / (tokens / decode.Cpu),
                ["pct_peak_wall"] = 100 * gflop / decode.Wall / peak.GflopsWall,
                ["pct_peak_cpu"] = 100 * gflop / decode.Cpu / peak.GflopsCpu,
                ["peak_rss_mib"] = ResidentMemory.PeakMiB(),
            });
        }
        s.Notes.Add("decode = the sampler's time minus a prefill of the same prompts; x_of_bound = bandwidth-bound tok/s over achieved (1 = at the bound; _cpu: both per CPU-second);");
        s.Notes.Add("bound bytes per step = 4 x (matmul weights + B x mean context x 2 x layers x kv heads x head dim); pct_peak = decode GFLOP/s over the peak matmul rate.");
        return s;
    }

    /// <summary>One cached forward pass over [B,P] random prompts and the last position's logits: the sampler's prefill.</summary>
    private static void Prefill(Qwen2ForCausalLM model, int batch, int promptLength)
    {
        using var noGrad = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        using var cache = model.NewCache(batch, promptLength + 1);
        var ids = torch.randint(model.Config.VocabSize, [batch, promptLength]);
        var hidden = model.ForwardHidden(ids, null, null, cache);
        model.LogitsOf(hidden.select(1, promptLength - 1)).Dispose();
    }
}
