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
/// its overlong penalty is the reward function `overlong` (Rewards stage), already in the batch's rewards.
/// Old log-probs are the sampler's (same weights, same temperature), so with mu = 1 rho = 1.
/// </summary>
internal sealed class GrpoObjective : IObjective
{
    /// <summary>The metric columns this objective writes (the trainer refuses any other).</summary>
    public static readonly IReadOnlyList<string> Columns =
        ["loss", "clip_fraction", "kl_ref", "entropy", "kept_rows", "clip_ratio/low_mean", "clip_ratio/high_mean", "cispo_clip_ratio",
         "truncated_masked", "entropy_kept"];

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
        var rewards = batch.Rewards;
        var advantages = options.Signed is { } signed ? Advantages.Signed(rewards, signed, options.RewardThreshold) : Advantages.Compute(rewards, batch.GroupSize, options.ScaleRewards);
        if (options.MaskTruncatedCompletions) metrics.Set("truncated_masked", TruncatedRows(batch).Count(t => t));
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
        var mask = options.MaskTruncatedCompletions ? outputs.Mask * KeptRows(batch, rows, outputs.Mask) : outputs.Mask;
        using var terms = GrpoLoss.Compute(l, old, reference, mask, prepared.PerRow.index_select(0, index),
                                           options, options.MaxCompletionLength, prepared.TrainTokens, gradAccumSteps, entropy,
                                           prepared.TokenWeightsOf(index, n, l.dtype));
        terms.Total.backward();
        metrics.Add("loss", terms.Total.ToDouble() * (options.LossType is LossType.Dapo or LossType.Cispo ? 1 : gradAccumSteps));
        metrics.Add("clip_fraction", terms.ClipFraction.ToDouble());
        if (options.LossType == LossType.Cispo) metrics.Add("cispo_clip_ratio", terms.ClipFraction.ToDouble());
        else
        {
            metrics.Add("clip_ratio/low_mean", terms.ClipLow.ToDouble());
            metrics.Add("clip_ratio/high_mean", terms.ClipHigh.ToDouble());
        }
        if (options.TopEntropyQuantile < 1.0) metrics.Add("entropy_kept", terms.EntropyKept.ToDouble());
        if (reference is not null) metrics.Add("kl_ref", terms.Kl.ToDouble());
        using (no_grad())
            metrics.Add("entropy", ((entropy! * outputs.Mask).sum() / outputs.Mask.sum().clamp_min(1)).ToDouble());
        return true;
    }

    /// <summary>
    /// The rows that hit max_new_tokens without a stop token (TRL's mask_truncated_completions). They stay in the
    /// advantages, in grpo's and dr_grpo's row count B and in dapo's token total, as TRL counts them; only their tokens
    /// leave the loss.
    /// </summary>
    private static bool[] TruncatedRows(GenerationBatch batch) =>
        batch.Truncated.Length == batch.Rows ? batch.Truncated
        : throw new InvalidOperationException($"mask_truncated_completions needs the sampler's truncation flags: {batch.Truncated.Length} for {batch.Rows} rows");

    /// <summary>[R,1] 0 for a truncated row of <paramref name="rows"/>, else 1, in the mask's dtype and device.</summary>
    private static Tensor KeptRows(GenerationBatch batch, long[] rows, Tensor mask)
    {
        var truncated = TruncatedRows(batch);
        return tensor(rows.Select(r => truncated[r] ? 0.0 : 1.0).ToArray(), dtype: mask.dtype, device: mask.device).unsqueeze(1);
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
