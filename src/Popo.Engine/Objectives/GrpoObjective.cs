using Popo.Engine.Rollout;
using Popo.Engine.Policy;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Popo.Engine.Objectives;

/// <summary>
/// The GRPO family (docs/design.md §3): group-normalised advantages and a clipped surrogate, with the grpo,
/// bnpo, dr_grpo and dapo aggregations; k3 KL to a frozen reference when beta &gt; 0 (no reference model
/// exists otherwise). DAPO's dynamic sampling drops all-equal groups from the loss (it does not resample
/// to refill the batch, unlike the DAPO paper: the rollout budget stays equal across algorithms);
/// its overlong penalty is added to the rewards before the advantages.
/// Old log-probs are the sampler's (same weights, same temperature), so with mu = 1 rho = 1.
/// </summary>
internal sealed class GrpoObjective : IObjective
{
    /// <summary>The metric columns this objective writes (the trainer refuses any other).</summary>
    public static readonly IReadOnlyList<string> Columns = ["loss", "clip_fraction", "kl_ref", "entropy", "kept_rows"];

    private readonly IPolicy policy;
    private readonly IPolicy? reference;
    private readonly GrpoOptions options;
    private readonly double temperature;

    public string Name { get; }
    public int Iterations => options.NumIterations;
    public IEnumerable<Parameter> ExtraParameters => [];

    /// <param name="newReference">Builds the frozen reference: a copy of theta_0, or under LoRA the base with the adapters off (TRL with PEFT).</param>
    public GrpoObjective(string name, IPolicy policy, Func<IPolicy> newReference, GrpoOptions options, double temperature)
    {
        Name = name;
        this.policy = policy;
        this.options = options;
        this.temperature = temperature;
        if (options.Beta != 0) reference = newReference();   // never updated
    }

    public PreparedBatch Prepare(GenerationBatch batch, StepMetrics metrics)
    {
        using var scope = NewDisposeScope();
        var rewards = batch.Rewards.Select((r, i) => r + OverlongPenalty(batch.CompletionLengths[i], options.MaxCompletionLength)).ToArray();
        var advantages = Advantages.Compute(rewards, batch.GroupSize, options.ScaleRewards);
        var rows = Enumerable.Range(0, batch.Rows)
            .Where(i => !options.DynamicSampling || !GroupIsFlat(rewards, i / batch.GroupSize, batch.GroupSize))
            .Select(i => (long)i).ToArray();
        metrics.Set("kept_rows", rows.Length);

        Tensor? refLogProbs = null;
        if (reference is not null && rows.Length > 0)
        {
            using var noGrad = no_grad();
            var all = tensor(Enumerable.Range(0, batch.Rows).Select(i => (long)i).ToArray(), device: batch.InputIds.device);
            using var outputs = CompletionForward.Run(reference, batch, all);
            var l = outputs.Statistics(temperature, EntropyNeed.None).LogProbs;
            refLogProbs = nn.functional.pad(l, [0, batch.CompletionColumns - l.shape[1]]).MoveToOuterDisposeScope();   // [B,N]
        }
        var perRow = tensor(advantages, device: batch.InputIds.device).MoveToOuterDisposeScope();
        return new PreparedBatch(batch, rows, perRow, refLogProbs, rows.Sum(r => (double)batch.CompletionLengths[r]));
    }

    public bool Backward(PreparedBatch prepared, long[] rows, int gradAccumSteps, StepMetrics metrics)
    {
        using var scope = NewDisposeScope();
        var batch = prepared.Batch;
        var index = tensor(rows, device: batch.InputIds.device);
        var outputs = CompletionForward.Run(policy, batch, index);
        long n = outputs.Ids.shape[1];
        var (l, entropy) = outputs.Statistics(temperature, EntropyNeed.Value);          // the entropy is a metric here
        var old = batch.OldLogProbs.index_select(0, index)[.., ..(int)n].to(l.dtype);
        var reference = prepared.Reference?.index_select(0, index)[.., ..(int)n].to(l.dtype);
        using var terms = GrpoLoss.Compute(l, old, reference, outputs.Mask, prepared.PerRow.index_select(0, index),
                                           options, options.MaxCompletionLength, prepared.TrainTokens, gradAccumSteps);
        terms.Total.backward();
        metrics.Add("loss", terms.Total.ToDouble() * (options.LossType == LossType.Dapo ? 1 : gradAccumSteps));
        metrics.Add("clip_fraction", terms.ClipFraction.ToDouble());
        if (reference is not null) metrics.Add("kl_ref", terms.Kl.ToDouble());
        using (no_grad())
            metrics.Add("entropy", ((entropy! * outputs.Mask).sum() / outputs.Mask.sum().clamp_min(1)).ToDouble());
        return true;
    }

    /// <summary>DAPO's soft overlong punishment: 0 up to L_max - L_cache, then linear down to -1 at L_max.</summary>
    private double OverlongPenalty(int length, int maxLength)
    {
        if (options.OverlongBuffer <= 0) return 0;
        int free = maxLength - options.OverlongBuffer;
        if (length <= free) return 0;
        return options.OverlongPenaltyFactor * Math.Max(-1.0, (free - length) / (double)options.OverlongBuffer);
    }

    private static bool GroupIsFlat(double[] rewards, int group, int size)
    {
        for (int i = group * size + 1; i < (group + 1) * size; i++)
            if (rewards[i] != rewards[group * size]) return false;
        return true;
    }

    public void AfterOptimizerStep() { }

    public IReadOnlyDictionary<string, Tensor> State() =>
        reference is null ? new Dictionary<string, Tensor>()
        : reference.Module.named_parameters().ToDictionary(p => "reference." + p.name, p => (Tensor)p.parameter);

    public void LoadState(IReadOnlyDictionary<string, Tensor> state)
    {
        if (reference is null) return;
        using var noGrad = no_grad();
        foreach (var (name, p) in reference.Module.named_parameters()) p.copy_(PopoObjective.Require(state, "reference." + name));
    }

    public void Dispose() => reference?.Module.Dispose();
}
