using Popo.Engine.Model;
using Popo.Engine.Objectives;
using Popo.Engine.Policy;
using Popo.Engine.Rollout;
using Popo.Engine.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Popo.Bench;

/// <summary>
/// Where the time goes, by subtraction and by substitution (no profiler is available here):
/// the fixed cost of one tensor op through TorchSharp; a cached decode step of the decode model against the same
/// step on a "hollow" model (same layers and heads, hidden size 64, so its weights cost nothing: what remains is
/// per-op overhead) and against the sampler (whose extra is sampling and bookkeeping); and POPO's update split into
/// the policy's forward + backward over the positives, the EMA target's forward, and the optimizer + EMA update.
/// </summary>
internal static class ProfileBench
{
    public static BenchSection Run(DecodeBench.Setup decode, PopoSavingBench.Setup popo)
    {
        var s = new BenchSection("profile", "Profile: where the time goes");
        s.Facts["us_per_small_op"] = 1e6 * OpCost();
        MatrixVector(s);
        var hollowConfig = decode.Size.Config with { HiddenSize = 64, IntermediateSize = 64, VocabSize = 64 };
        torch.manual_seed(0);
        using var model = new Qwen2ForCausalLM(decode.Size.Config, torch.CPU, ScalarType.Float32);
        using var hollow = new Qwen2ForCausalLM(hollowConfig, torch.CPU, ScalarType.Float32);
        model.eval();
        hollow.eval();
        foreach (var b in new[] { decode.Batches[0], decode.Batches[^1] / 4 })
        {
            var steps = decode.NewTokens - 1;
            var forward = BenchClock.Best(decode.Rounds, () => Steps(model, b, decode.PromptLength, steps)) - BenchClock.Best(decode.Rounds, () => Steps(model, b, decode.PromptLength, 0));
            var floor = BenchClock.Best(decode.Rounds, () => Steps(hollow, b, decode.PromptLength, steps)) - BenchClock.Best(decode.Rounds, () => Steps(hollow, b, decode.PromptLength, 0));
            var prompts = Enumerable.Range(0, b).Select(_ => new int[decode.PromptLength]).ToList();
            var options = new SamplerOptions { MaxNewTokens = decode.NewTokens, Seed = 1 };
            var generate = BenchClock.Best(decode.Rounds, () => Sampler.Generate(model, prompts, options).Dispose())
                         - BenchClock.Best(decode.Rounds, () => Steps(model, b, decode.PromptLength, 0));
            s.Rows.Add(new()
            {
                ["part"] = $"decode step, batch {b}",
                ["ms"] = 1000 * generate.Wall / steps,
                ["forward_ms"] = 1000 * forward.Wall / steps,
                ["op_overhead_ms"] = 1000 * floor.Wall / steps,
                ["sampling_ms"] = 1000 * Math.Max(0, generate.Wall - forward.Wall) / steps,
            });
        }
        PopoParts(s, popo);
        s.Notes.Add("decode: ms = sampler time per step; forward_ms = the model's cached forward + head alone; op_overhead_ms = the same forward on the hollow model (per-op fixed cost).");
        s.Notes.Add("popo: the update at 50% pass rate split by running its parts alone on the positive rows.");
        return s;
    }

    /// <summary>
    /// Weight bytes read per second when one row multiplies float32 weights (batch-1 decode): a 64 MiB matrix through
    /// linear (a GEMM with M = 1) and mv (a GEMV); 32 matrices of each medium-model shape in turn; and four rows.
    /// </summary>
    private static void MatrixVector(BenchSection s)
    {
        using var scope = torch.NewDisposeScope();
        var w = torch.randn(4096, 4096);
        var x = torch.randn(1, 4096);
        var bytes = 4096.0 * 4096 * 4;
        s.Facts["linear_1row_gb_s"] = bytes / BenchClock.Best(5, () => nn.functional.linear(x, w).Dispose()).Wall / 1e9;
        s.Facts["mv_gb_s"] = bytes / BenchClock.Best(5, () => torch.mv(w, x.view(-1)).Dispose()).Wall / 1e9;
        foreach (var (o, i) in new[] { (512, 512), (1408, 512), (512, 1408) })
        {
            // 32 such matrices (> any cache, like a model's layers) read in turn by one row.
            var ws = Enumerable.Range(0, 32).Select(_ => torch.randn(o, i)).ToArray();
            var xi = torch.randn(1, i);
            s.Facts[$"linear_1row_{o}x{i}_gb_s"] = 32.0 * o * i * 4 / BenchClock.Best(5, () => { foreach (var m in ws) nn.functional.linear(xi, m).Dispose(); }).Wall / 1e9;
        }
        var x4 = torch.randn(4, 4096);
        s.Facts["linear_4rows_gb_s"] = bytes / BenchClock.Best(5, () => nn.functional.linear(x4, w).Dispose()).Wall / 1e9;
    }

    /// <summary>Seconds per op of an in-place add on a one-element tensor: TorchSharp's and libtorch's fixed cost per op.</summary>
    private static double OpCost()
    {
        using var x = torch.zeros(1);
        const int n = 20000;
        return BenchClock.Best(3, () => { for (var i = 0; i < n; i++) x.add_(1); }).Wall / n;
    }

    /// <summary>A prefill over [B,P] then <paramref name="steps"/> single-token cached steps, forward and last-position logits only.</summary>
    internal static void Steps(Qwen2ForCausalLM model, int batch, int promptLength, int steps)
    {
        using var noGrad = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        using var cache = model.NewCache(batch, promptLength + steps + 1);
        var ids = torch.zeros(batch, promptLength, dtype: ScalarType.Int64);
        var mask = torch.ones(batch, promptLength + steps + 1, dtype: ScalarType.Int64);
        var hidden = model.ForwardHidden(ids, mask.narrow(1, 0, promptLength), null, cache);
        model.LogitsOf(hidden.select(1, promptLength - 1)).Dispose();
        var next = torch.zeros(batch, 1, dtype: ScalarType.Int64);
        for (var s = 0; s < steps; s++)
        {
            using var stepScope = torch.NewDisposeScope();
            var position = torch.full(batch, 1, promptLength + s, dtype: ScalarType.Int64);
            var h = model.ForwardHidden(next, mask.narrow(1, 0, promptLength + s + 1), position, cache);
            model.LogitsOf(h.select(1, 0)).Dispose();
        }
    }

    private static void PopoParts(BenchSection s, PopoSavingBench.Setup setup)
    {
        torch.manual_seed(0);
        using var model = new Qwen2ForCausalLM(setup.Size.Config, torch.CPU, ScalarType.Float32);
        var policy = new Qwen2Policy(model);
        var prompts = PopoSavingBench.GroupedPrompts(setup);
        model.eval();
        using var batch = PopoSavingBench.Batch(model, prompts, new SamplerOptions { MaxNewTokens = setup.NewTokens, Seed = 1 }, setup.GroupSize, 0.5);
        using var positives = torch.tensor(Enumerable.Range(0, batch.Rows).Where(i => batch.Rewards[i] > 0).Select(i => (long)i).ToArray());
        using var all = torch.arange(batch.Rows, dtype: ScalarType.Int64);
        var target = policy.FrozenClone();
        using var targetModule = target.Module;
        using var objective = new PopoObjective("popo", policy, policy.FrozenClone, setup.Size.Config.HiddenSize, new PopoOptions { EntropyScope = EntropyScope.Positive }, 1.0, torch.CPU, ScalarType.Float32, 0);
        var parameters = model.parameters().Concat(objective.ExtraParameters).ToList();
        using var optimizer = new Optimizers.AdamW(parameters, 1e-6, 0.01);
        model.train();
        var update = BenchClock.Best(setup.Rounds, () => PopoSavingBench.UpdateOnce(objective, optimizer, parameters, batch, setup.MicroBatch));
        Span FwdBwd(Tensor rows) => BenchClock.Best(setup.Rounds, () =>
        {
            using var scope = torch.NewDisposeScope();
            var o = CompletionForward.Run(policy, batch, rows);
            (-TokenStatistics.Gather(TokenStatistics.LogSoftmax(o.Logits, 1.0), o.Ids).mean()).backward();
        });
        var online = FwdBwd(positives);
        var grpoLike = FwdBwd(all);
        var targetForward = BenchClock.Best(setup.Rounds, () =>
        {
            using var noGrad = torch.no_grad();
            using var o = CompletionForward.Run(target, batch, positives);
        });
        var step = BenchClock.Best(setup.Rounds, () => { optimizer.step(); objective.AfterOptimizerStep(); });
        void Row(string part, Span span) => s.Rows.Add(new() { ["part"] = part, ["ms"] = 1000 * span.Wall, ["forward_ms"] = double.NaN, ["op_overhead_ms"] = double.NaN, ["sampling_ms"] = double.NaN });
        Row("popo update at 50% (whole)", update);
        Row("  policy forward+backward, positives", online);
        Row("  EMA target forward, positives", targetForward);
        Row("  AdamW step + EMA update", step);
        Row("grpo-like forward+backward, all rows", grpoLike);
    }
}
