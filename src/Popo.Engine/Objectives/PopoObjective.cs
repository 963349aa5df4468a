using Popo.Engine.Rollout;
using Popo.Engine.Policy;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Popo.Engine.Objectives;

/// <summary>
/// POPO (docs/design.md §2): learn from the positives only, weighted by bounded importance weights, with a
/// siamese predictor pulled towards an EMA target's features instead of a KL penalty.
/// Departures from the authors' code: none by default. With entropy_scope = positive or beta_ent = 0 the
/// negatives are not forwarded at all (they could not change the loss); micro-batches without a
/// positive are skipped for the same reason (their loss is exactly 0). The EMA target forwards the
/// positive rows only: L_sim weighs row i by w_i, so a negative's target feature cannot change the loss.
/// RFT is this objective with uniform weights, alpha = beta_ent = 0.
/// </summary>
internal sealed class PopoObjective : IObjective
{
    /// <summary>The metric columns this objective writes (the trainer refuses any other).</summary>
    public static readonly IReadOnlyList<string> Columns =
        ["zero_positive_groups", "positive_tokens", "loss", "loss_nll", "loss_sim", "loss_ent", "weight_entropy", "kl_target", "entropy"];

    private readonly IPolicy policy;
    private readonly PopoOptions options;
    private readonly double temperature;
    private readonly Predictor? predictor;
    private readonly IPolicy? target;
    private readonly EmaTarget? ema;
    private readonly Generator noise;

    public string Name { get; }
    public int Iterations => 1;
    public IEnumerable<Parameter> ExtraParameters => predictor?.parameters() ?? [];

    /// <param name="newTarget">Builds a fresh policy of the same architecture in float32 or wider (for the EMA target).</param>
    public PopoObjective(string name, IPolicy policy, Func<IPolicy> newTarget, int hiddenSize, PopoOptions options,
                         double temperature, Device device, ScalarType dtype, long seed)
    {
        Name = name;
        this.policy = policy;
        this.options = options;
        this.temperature = temperature;
        noise = new Generator((ulong)seed, device);
        if (options.UsesSimilarity)
        {
            predictor = new Predictor(hiddenSize, options.PredictorHidden, options.PredictorDepth, device, dtype, seed);
            target = newTarget();
            ema = new EmaTarget(policy.Module, target.Module);
        }
    }

    public PreparedBatch Prepare(GenerationBatch batch, StepMetrics metrics)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var mask = batch.CompletionMask.to(ScalarType.Float64);
        // s_i = mean_t l_{i,t} under the generating policy: the sampler's log-probs, as the authors' code uses the
        // generation-time ones (a server's own when remote; proofs/importance-correction.md).
        var scores = ((batch.GenerationLogProbs.to(ScalarType.Float64) * mask).sum(1) / mask.sum(1).clamp_min(1.0))
            .cpu().data<double>().ToArray();
        var w = PopoWeights.Compute(scores, batch.CompletionLengths, batch.Rewards, batch.GroupSize, options);
        var rows = Enumerable.Range(0, batch.Rows)
            .Where(i => !options.NegativesSkipped || w[i] > 0).Select(i => (long)i).ToArray();

        LogWeights(batch, w, metrics);
        var weights = tensor(w, device: batch.CompletionMask.device).MoveToOuterDisposeScope();
        return new PreparedBatch(batch, rows, weights, null, rows.Sum(r => (double)batch.CompletionLengths[r]));
    }

    public bool Backward(PreparedBatch prepared, long[] rows, int gradAccumSteps, StepMetrics metrics)
    {
        using var scope = NewDisposeScope();
        var batch = prepared.Batch;
        var index = tensor(rows, device: batch.InputIds.device);
        var w = prepared.PerRow.index_select(0, index);
        if (w.max().ToDouble() <= 0) return false;   // no positive: the loss is exactly 0

        var outputs = CompletionForward.Run(policy, batch, index);
        var (l, entropy) = outputs.Statistics(temperature, options.BetaEntropy != 0 ? EntropyNeed.Differentiable : EntropyNeed.None);
        Tensor? u = null, z = null;
        if (options.UsesSimilarity)
        {
            var positive = PopoLoss.PositiveRows(w);
            u = predictor!.forward(TokenStatistics.PoolFeatures(outputs.Hidden.index_select(0, positive), outputs.Mask.index_select(0, positive), options.Pooling));
            z = TargetFeatures(batch, index.index_select(0, positive), metrics, l.index_select(0, positive)).to(u.dtype);
        }
        using var terms = PopoLoss.Compute(l, entropy, outputs.Mask, w, u, z, options, gradAccumSteps,
                                           prepared.TokenWeightsOf(index, l.shape[1], l.dtype));
        terms.Total.backward();

        metrics.Add("loss", terms.Total.ToDouble() * gradAccumSteps);
        metrics.Add("loss_nll", terms.Nll.ToDouble());
        metrics.Add("loss_sim", terms.Similarity.ToDouble());
        metrics.Add("loss_ent", terms.Entropy.ToDouble());
        if (entropy is not null)
            metrics.Add("entropy", ((entropy.detach() * outputs.Mask).sum() / outputs.Mask.sum().clamp_min(1)).ToDouble());
        return true;
    }

    /// <summary>
    /// f_xi + N(0, sigma^2 I): the EMA target's pooled features of the batch rows <paramref name="index"/> (the positives), no gradient.
    /// Also logs KL(policy || target) on their sampled tokens (<paramref name="onlineLogProbs"/>: the policy's l of the same rows).
    /// </summary>
    private Tensor TargetFeatures(GenerationBatch batch, Tensor index, StepMetrics metrics, Tensor onlineLogProbs)
    {
        using var noGrad = no_grad();
        using var targetOut = CompletionForward.Run(target!, batch, index);
        var features = TokenStatistics.PoolFeatures(targetOut.Hidden, targetOut.Mask, options.Pooling);
        var targetLogProbs = targetOut.Statistics(temperature, EntropyNeed.None).LogProbs.to(onlineLogProbs.dtype);
        var mask = targetOut.Mask;   // these rows' columns: fewer than the micro-batch's when its longest rows are negatives
        var d = targetLogProbs - onlineLogProbs.detach().narrow(1, 0, mask.shape[1]);
        var k3 = ((d.exp() - d - 1) * mask).sum() / mask.sum().clamp_min(1);
        metrics.Add("kl_target", k3.ToDouble());
        if (options.FeatureNoise > 0)
            features = features + options.FeatureNoise * randn(features.shape, dtype: features.dtype, device: features.device, generator: noise);
        return features;
    }

    public void AfterOptimizerStep() => ema?.Update(options.Tau);

    private static void LogWeights(GenerationBatch batch, double[] w, StepMetrics metrics)
    {
        int groups = batch.Rows / batch.GroupSize, empty = 0;
        double entropySum = 0; int withPositives = 0; double positiveTokens = 0;
        for (int g = 0; g < groups; g++)
        {
            bool any = false; double h = 0;
            for (int i = g * batch.GroupSize; i < (g + 1) * batch.GroupSize; i++)
                if (w[i] > 0) { any = true; h -= w[i] * Math.Log(w[i]); positiveTokens += batch.CompletionLengths[i]; }
            if (any) { withPositives++; entropySum += h; } else empty++;
        }
        metrics.Set("zero_positive_groups", groups == 0 ? 0 : (double)empty / groups);
        metrics.Set("weight_entropy", withPositives == 0 ? 0 : entropySum / withPositives);
        metrics.Set("positive_tokens", positiveTokens);
    }

    public IReadOnlyDictionary<string, Tensor> State()
    {
        var state = new Dictionary<string, Tensor> { ["noise_rng"] = noise.get_state() };
        if (predictor is not null)
            foreach (var (name, p) in predictor.named_parameters()) state["predictor." + name] = p;
        if (target is not null)
            foreach (var (name, p) in target.Module.named_parameters()) state["ema." + name] = p;
        return state;
    }

    public void LoadState(IReadOnlyDictionary<string, Tensor> state)
    {
        using var noGrad = no_grad();
        noise.set_state(Require(state, "noise_rng"));
        if (predictor is not null)
            foreach (var (name, p) in predictor.named_parameters()) p.copy_(Require(state, "predictor." + name));
        if (target is not null)
            foreach (var (name, p) in target.Module.named_parameters()) p.copy_(Require(state, "ema." + name));
    }

    internal static Tensor Require(IReadOnlyDictionary<string, Tensor> state, string key) =>
        state.TryGetValue(key, out var t) ? t : throw new KeyNotFoundException($"objective state has no '{key}'");

    public void Dispose()
    {
        predictor?.Dispose();
        ema?.Dispose();
        noise.Dispose();
    }
}
