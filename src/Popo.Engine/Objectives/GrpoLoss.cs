using TorchSharp;
using static TorchSharp.torch;

namespace Popo.Engine.Objectives;

/// <summary>The GRPO loss of one micro-batch with its diagnostics.</summary>
/// <param name="ClipFraction">Share of tokens whose ratio is clipped (TRL's clip_ratio/region_mean; under CISPO its cispo_clip_ratio).</param>
/// <param name="ClipLow">Share clipped below 1 - eps_low with A &lt; 0 (TRL's clip_ratio/low_mean); zero under CISPO.</param>
/// <param name="ClipHigh">Share clipped above 1 + eps_high with A &gt; 0 (TRL's clip_ratio/high_mean); zero under CISPO.</param>
/// <param name="EntropyKept">Share of the masked-in tokens that carry the policy term (1 unless top_entropy_quantile &lt; 1).</param>
internal sealed record GrpoLossTerms(Tensor Total, Tensor ClipFraction, Tensor Kl, Tensor ClipLow, Tensor ClipHigh, Tensor EntropyKept) : IDisposable
{
    public void Dispose() { Total.Dispose(); ClipFraction.Dispose(); Kl.Dispose(); ClipLow.Dispose(); ClipHigh.Dispose(); EntropyKept.Dispose(); }
}

/// <summary>
/// The GRPO-family clipped surrogate (docs/design.md §3):
///   rho = exp(l - l_old);  per-token = -min(rho A, clip(rho, 1 - eps_low, 1 + eps_high) A) + beta k3,
///   k3 = exp(ref - l) - (ref - l) - 1;
///   grpo: mean_i (sum_t / |y_i|);  bnpo: sum / tokens in B;  dr_grpo: sum / (B L_max);  dapo: sum / T_batch.
/// grpo, bnpo and dr_grpo are divided by gradAccumSteps; dapo's normaliser already spans the whole
/// accumulated batch (as TRL does). §3.1's options (<see cref="PolicySurrogate"/>): the ratio per rollout (GSPO),
/// delta, CISPO's surrogate (aggregated as dapo, as TRL), and the top-entropy token mask on the policy term.
/// </summary>
internal static class GrpoLoss
{
    /// <param name="logProbs">l [B,N] under the current policy (differentiable).</param>
    /// <param name="oldLogProbs">l_old [B,N] of the policy that sampled.</param>
    /// <param name="refLogProbs">reference policy log-probs [B,N], or null when beta = 0.</param>
    /// <param name="mask">completion mask [B,N].</param>
    /// <param name="advantages">A [B].</param>
    /// <param name="maxCompletionLength">L_max for dr_grpo.</param>
    /// <param name="batchTokens">completion tokens in the whole accumulated batch, for dapo and cispo.</param>
    /// <param name="tokenWeights">per-token weights [B,N] of the surrogate (the importance correction), or null; the KL term is not weighted (as TRL).</param>
    /// <param name="entropy">token entropies [B,N] for top_entropy_quantile &lt; 1 (not differentiated), else unread.</param>
    public static GrpoLossTerms Compute(Tensor logProbs, Tensor oldLogProbs, Tensor? refLogProbs, Tensor mask,
                                        Tensor advantages, GrpoOptions options, int maxCompletionLength,
                                        double batchTokens, int gradAccumSteps, Tensor? entropy = null,
                                        Tensor? tokenWeights = null)
    {
        using var scope = NewDisposeScope();
        var m = mask.to(logProbs.dtype);
        var a = advantages.to(logProbs.dtype).unsqueeze(1);                                 // [B,1]
        var rho = PolicySurrogate.LogWeights(logProbs, oldLogProbs, m, options.ImportanceLevel).exp();   // [B,N] or [B,1]
        var perToken = PolicySurrogate.PerToken(rho, a, logProbs, options);
        if (tokenWeights is not null) perToken = perToken * tokenWeights;
        var kept = ones_like(m);
        if (options.TopEntropyQuantile < 1.0)
        {
            if (entropy is null) throw new ArgumentException("top_entropy_quantile < 1 needs the token entropies");
            kept = PolicySurrogate.HighEntropy(entropy, m, options.TopEntropyQuantile).to(m.dtype);
            perToken = perToken * kept;
        }
        var kl = zeros_like(perToken);
        if (options.Beta != 0.0)
        {
            if (refLogProbs is null) throw new ArgumentException("beta != 0 needs reference log-probs");
            var d = refLogProbs - logProbs;
            kl = d.exp() - d - 1.0;
            perToken = perToken + options.Beta * kl;
        }

        long rows = logProbs.shape[0];
        var masked = perToken * m;
        Tensor loss = options.LossType switch
        {
            LossType.Grpo => (masked.sum(1) / m.sum(1).clamp_min(1.0)).sum() / rows / gradAccumSteps,
            LossType.Bnpo => masked.sum() / m.sum().clamp_min(1.0) / gradAccumSteps,
            LossType.DrGrpo => masked.sum() / ((double)rows * maxCompletionLength) / gradAccumSteps,
            LossType.Dapo or LossType.Cispo => masked.sum() / Math.Max(batchTokens, 1.0),
            _ => throw new ArgumentOutOfRangeException(nameof(options), options.LossType, "unknown loss type"),
        };

        using var noGrad = no_grad();
        var tokens = m.sum().clamp_min(1.0);
        Tensor Share(Tensor flags) => (flags.to(m.dtype) * m).sum() / tokens;
        var low = options.LossType == LossType.Cispo ? zeros_like(rho, dtype: ScalarType.Bool) : (rho < 1.0 - options.EpsilonLow) & (a < 0);
        var high = options.LossType == LossType.Cispo ? (rho > options.EpsilonHigh) & (a > 0) : (rho > 1.0 + options.EpsilonHigh) & (a > 0);
        var clipFraction = Share(low | high);
        var meanKl = (kl * m).sum() / tokens;
        var cispo = options.LossType == LossType.Cispo;
        return new GrpoLossTerms(loss.MoveToOuterDisposeScope(), clipFraction.MoveToOuterDisposeScope(),
                                 meanKl.detach().MoveToOuterDisposeScope(), Share(low).MoveToOuterDisposeScope(),
                                 (cispo ? zeros_like(tokens) : Share(high)).MoveToOuterDisposeScope(), Share(kept).MoveToOuterDisposeScope());
    }
}
