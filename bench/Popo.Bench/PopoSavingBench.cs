using Popo.Engine.Model;
using Popo.Engine.Objectives;
using Popo.Engine.Policy;
using Popo.Engine.Rollout;
using Popo.Engine.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Popo.Bench;

/// <summary>
/// POPO's compute saving made measurable: the update phase (Prepare, micro-batch forward/backward, grad clip,
/// AdamW, EMA update: what the trainer runs after rollout) of POPO with entropy_scope = positive against GRPO on
/// the same sampled rollouts, with rewards set so that exactly 10%, 25% or 50% of the rollouts pass. Rollouts all
/// have the same length (no stop token), so the positive tokens are exactly that fraction of all tokens.
/// </summary>
internal static class PopoSavingBench
{
    public sealed record Setup(BenchModels.Size Size, int Prompts, int GroupSize, int PromptLength, int NewTokens, int MicroBatch, int Rounds);

    public static readonly Setup Full = new(BenchModels.Small, 20, 8, 16, 48, 128, 3);
    public static readonly Setup Quick = new(BenchModels.Tiny, 5, 8, 8, 8, 128, 1);

    public static readonly double[] PassRates = [0.10, 0.25, 0.50];

    public static BenchSection Run(Setup setup)
    {
        var rows = setup.Prompts * setup.GroupSize;
        var s = new BenchSection("popo", $"POPO's saving: update time of POPO (entropy_scope = positive) vs GRPO on the same rollouts ({setup.Size.Name}, {rows} rollouts x {setup.NewTokens} tokens)");
        torch.manual_seed(0);
        using var model = new Qwen2ForCausalLM(setup.Size.Config, torch.CPU, ScalarType.Float32);
        var policy = new Qwen2Policy(model);
        var prompts = GroupedPrompts(setup);
        var sampling = new SamplerOptions { MaxNewTokens = setup.NewTokens, Seed = 1 };
        model.eval();
        var rollout = BenchClock.Best(setup.Rounds, () => Sampler.Generate(model, prompts, sampling).Dispose());
        s.Facts["rollout_s"] = rollout.Wall;
        s.Facts["micro_batch"] = setup.MicroBatch;

        var popoOptions = new PopoOptions { EntropyScope = EntropyScope.Positive };
        foreach (var passRate in PassRates)
        {
            using var batch = Batch(model, prompts, sampling, setup.GroupSize, passRate);
            using var grpoUpdate = new Updater(new GrpoObjective("grpo", policy, policy.FrozenClone, new GrpoOptions { MaxCompletionLength = setup.NewTokens }, 1.0), model);
            using var popoUpdate = new Updater(new PopoObjective("popo", policy, policy.FrozenClone, setup.Size.Config.HiddenSize, popoOptions, 1.0, torch.CPU, ScalarType.Float32, 0), model);
            // Interleaved rounds after one warm-up each, best of each: a burst of load spoils one round of one side, not the ratio.
            model.train();
            grpoUpdate.Run(batch, setup.MicroBatch);
            popoUpdate.Run(batch, setup.MicroBatch);
            Span grpo = Span.Infinite, popo = Span.Infinite;
            for (var round = 0; round < setup.Rounds; round++)
            {
                grpo = Span.Min(grpo, BenchClock.Time(() => grpoUpdate.Run(batch, setup.MicroBatch)));
                popo = Span.Min(popo, BenchClock.Time(() => popoUpdate.Run(batch, setup.MicroBatch)));
            }
            model.eval();
            var ratio = popo.Wall / grpo.Wall;
            s.Rows.Add(new()
            {
                ["pass_rate"] = passRate,
                ["positive_tokens"] = batch.Rewards.Select((r, i) => r > 0 ? batch.CompletionLengths[i] : 0).Sum(),
                ["grpo_update_s"] = grpo.Wall,
                ["popo_update_s"] = popo.Wall,
                ["update_ratio"] = ratio,
                ["update_ratio_cpu"] = popo.Cpu / grpo.Cpu,
                ["target_max"] = passRate + 0.1,
                ["met"] = ratio <= passRate + 0.1 ? "yes" : "no",
                ["step_ratio"] = (rollout.Wall + popo.Wall) / (rollout.Wall + grpo.Wall),
            });
        }
        s.Notes.Add("update_ratio = POPO / GRPO update seconds (wall; _cpu on the process CPU clock); step_ratio adds the measured rollout time to both.");
        s.Notes.Add("POPO: alpha 0.1, beta_ent 0.01, entropy over positives, EMA target + predictor (H 1024); GRPO: defaults (beta 0, mu 1, loss grpo).");
        return s;
    }

    /// <summary>setup.Prompts random prompts (seeded), each repeated GroupSize times.</summary>
    internal static List<int[]> GroupedPrompts(Setup setup)
    {
        var random = new Random(0);
        return Enumerable.Range(0, setup.Prompts)
            .Select(_ => Enumerable.Range(0, setup.PromptLength).Select(_ => random.Next(setup.Size.Config.VocabSize)).ToArray())
            .SelectMany(p => Enumerable.Repeat(p, setup.GroupSize)).ToList();
    }

    /// <summary>Samples the rollouts and sets rewards: row i passes iff floor((i+1) k / B) > floor(i k / B), k = pass rate x B (exactly k positives, spread evenly).</summary>
    internal static GenerationBatch Batch(Qwen2ForCausalLM model, List<int[]> prompts, SamplerOptions sampling, int groupSize, double passRate)
    {
        var sample = Sampler.Generate(model, prompts, sampling);
        int b = prompts.Count, k = (int)Math.Round(passRate * b);
        return sample.WithRewards(Enumerable.Range(0, b).Select(i => (i + 1) * k / b > i * k / b ? 1.0 : 0.0).ToArray(), groupSize);
    }

    /// <summary>An objective with its own AdamW over the policy's and the objective's parameters.</summary>
    private sealed class Updater : IDisposable
    {
        private readonly IObjective objective;
        private readonly List<Parameter> parameters;
        private readonly AdamW optimizer;

        public Updater(IObjective objective, Qwen2ForCausalLM model)
        {
            this.objective = objective;
            parameters = model.parameters().Concat(objective.ExtraParameters).ToList();
            optimizer = new Optimizers.AdamW(parameters, 1e-6, 0.01);
        }

        public void Run(GenerationBatch batch, int microBatch) => UpdateOnce(objective, optimizer, parameters, batch, microBatch);

        public void Dispose() { optimizer.Dispose(); objective.Dispose(); }
    }

    internal static void UpdateOnce(IObjective objective, AdamW optimizer, List<Parameter> parameters, GenerationBatch batch, int microBatch)
    {
        var metrics = new StepMetrics();
        using var prepared = objective.Prepare(batch, metrics);
        var micro = prepared.TrainRows.Chunk(microBatch).ToList();
        using (torch.NewDisposeScope()) optimizer.zero_grad();
        var learned = false;
        foreach (var rows in micro) learned |= objective.Backward(prepared, rows, micro.Count, metrics);
        if (!learned) return;
        nn.utils.clip_grad_norm_(parameters, 1.0);
        optimizer.step();
        objective.AfterOptimizerStep();
    }
}
