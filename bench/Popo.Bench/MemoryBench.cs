using Popo.Engine.Model;
using Popo.Engine.Objectives;
using Popo.Engine.Policy;
using Popo.Engine.Rollout;
using Popo.Engine.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Popo.Bench;

/// <summary>
/// Memory over a long run: resident memory sampled after each of many full RL steps (rollout, then the POPO and
/// the GRPO update phase alternately on the same model), to show that nothing accumulates per step (tensors
/// left outside a dispose scope, growing caches). Growth is measured after a warm-up of 10% of the steps, on the raw
/// RSS and, every 10 steps, on the RSS after a full garbage collection and malloc_trim (what is still reachable:
/// a real leak grows that one too; the raw figure also moves with the GC's and the allocator's timing).
/// </summary>
internal static class MemoryBench
{
    public sealed record Setup(BenchModels.Size Size, int Prompts, int GroupSize, int PromptLength, int NewTokens, int Steps);

    public static readonly Setup Full = new(BenchModels.Tiny, 4, 8, 16, 32, 200);
    public static readonly Setup Quick = new(BenchModels.Tiny, 2, 4, 8, 8, 20);

    public static BenchSection Run(Setup setup)
    {
        var s = new BenchSection("memory", $"Memory: resident set across {setup.Steps} RL steps ({setup.Size.Name}, {setup.Prompts * setup.GroupSize} rollouts x {setup.NewTokens} tokens, POPO and GRPO alternating)");
        torch.manual_seed(0);
        ResidentMemory.ResetPeak();
        using var model = new Qwen2ForCausalLM(setup.Size.Config, torch.CPU, ScalarType.Float32);
        var policy = new Qwen2Policy(model);
        using var popo = new PopoObjective("popo", policy, policy.FrozenClone, setup.Size.Config.HiddenSize, new PopoOptions(), 1.0, torch.CPU, ScalarType.Float32, 0);
        using var grpo = new GrpoObjective("grpo", policy, policy.FrozenClone, new GrpoOptions { MaxCompletionLength = setup.NewTokens }, 1.0);
        var parameters = model.parameters().Concat(popo.ExtraParameters).ToList();
        using var optimizer = new Optimizers.AdamW(parameters, 1e-4, 0.01);
        var random = new Random(0);
        using var generator = new Generator(1, torch.CPU);
        var rss = new double[setup.Steps];
        var settled = new List<double>();
        for (var step = 0; step < setup.Steps; step++)
        {
            var prompts = Enumerable.Range(0, setup.Prompts)
                .Select(_ => Enumerable.Range(0, setup.PromptLength).Select(_ => random.Next(setup.Size.Config.VocabSize)).ToArray())
                .SelectMany(p => Enumerable.Repeat(p, setup.GroupSize)).ToList();
            model.eval();
            using var batch = PopoSavingBench.Batch(model, prompts, new SamplerOptions { MaxNewTokens = setup.NewTokens, Generator = generator }, setup.GroupSize, 0.25);
            model.train();
            PopoSavingBench.UpdateOnce(step % 2 == 0 ? popo : grpo, optimizer, parameters, batch, 128);
            rss[step] = ResidentMemory.CurrentMiB();
            if ((step + 1) % 10 == 0 && step + 1 >= setup.Steps / 10)
            {
                ResidentMemory.ResetPeak();   // full GC + malloc_trim
                settled.Add(ResidentMemory.CurrentMiB());
            }
        }
        var warm = Math.Max(1, setup.Steps / 10);
        s.Facts["steps"] = setup.Steps;
        s.Facts["rss_after_warmup_mib"] = rss[warm - 1];
        s.Facts["rss_end_mib"] = rss[^1];
        s.Facts["growth_mib"] = rss[^1] - rss[warm - 1];
        s.Facts["slope_mib_per_100_steps"] = 100 * Slope(rss.AsSpan(warm));
        s.Facts["settled_rss_first_mib"] = settled[0];
        s.Facts["settled_rss_last_mib"] = settled[^1];
        s.Facts["settled_growth_mib"] = settled[^1] - settled[0];
        s.Facts["peak_rss_mib"] = rss.Max();   // sampled after each step (VmHWM is reset by the settling above)
        return s;
    }

    /// <summary>Least-squares slope of y against its index.</summary>
    private static double Slope(ReadOnlySpan<double> y)
    {
        if (y.Length < 2) return 0;
        double n = y.Length, mx = (n - 1) / 2, my = 0;
        foreach (var v in y) my += v;
        my /= n;
        double sxy = 0, sxx = 0;
        for (var i = 0; i < y.Length; i++) { sxy += (i - mx) * (y[i] - my); sxx += (i - mx) * (i - mx); }
        return sxy / sxx;
    }
}
