using static TorchSharp.torch;

namespace Popo.Engine.Objectives;

/// <summary>
/// The per-token policy terms of the GRPO family beside TRL's default (docs/design.md §3.1): GSPO's sequence-level
/// ratio, INTELLECT-2's two-sided clip delta, CISPO's clipped stop-gradient weight, and the top-entropy token mask.
/// Each mirrors TRL's GRPOTrainer._compute_loss and get_high_entropy_mask.
/// </summary>
internal static class PolicySurrogate
{
    /// <summary>
    /// Log importance weights: l - l_old [B,N] per token, or per rollout (GSPO) the masked mean over its tokens [B,1]
    /// (a rollout with no token gets 0, as TRL's clamp(min = 1) of the count); GSPO-token: that mean detached plus
    /// l - sg(l) [B,N], the same value with each token's own gradient.
    /// </summary>
    public static Tensor LogWeights(Tensor logProbs, Tensor oldLogProbs, Tensor mask, ImportanceLevel level)
    {
        var logRatio = logProbs - oldLogProbs;
        if (level == ImportanceLevel.Token) return logRatio;
        var sequence = ((logRatio * mask).sum(1) / mask.sum(1).clamp_min(1.0)).unsqueeze(1);
        return level == ImportanceLevel.Sequence ? sequence : sequence.detach() + (logProbs - logProbs.detach());
    }

    /// <summary>
    /// The per-token policy term before any mask. Clipped: -min(min(r, delta) A, clip(r, 1 - eps_low, 1 + eps_high) A);
    /// CISPO: -sg(min(r, eps_high)) A l, TRL's cispo (eps_high is then the cap eps_max itself, not 1 + eps).
    /// </summary>
    /// <param name="ratio">r [B,N] or [B,1].</param>
    /// <param name="advantages">A [B,1].</param>
    /// <param name="logProbs">l [B,N] (CISPO's REINFORCE factor).</param>
    public static Tensor PerToken(Tensor ratio, Tensor advantages, Tensor logProbs, GrpoOptions options)
    {
        if (options.LossType == LossType.Cispo)
            return -ratio.clamp_max(options.EpsilonHigh).detach() * advantages * logProbs;
        var clipped = ratio.clamp(1.0 - options.EpsilonLow, 1.0 + options.EpsilonHigh);
        var capped = options.Delta is { } delta ? ratio.clamp_max(delta) : ratio;
        return -minimum(capped * advantages, clipped * advantages);
    }

    /// <summary>
    /// TRL's top_entropy_quantile mask [B,N]: true where the mask is on and the token's entropy is at least the
    /// (1 - q) quantile (linear interpolation, torch.quantile's) of the masked-in entropies of this micro-batch;
    /// all false when none is masked in. Taken on the host in float64 (one sync per micro-batch, only when q &lt; 1).
    /// </summary>
    public static Tensor HighEntropy(Tensor entropy, Tensor mask, double quantile)
    {
        using var noGrad = no_grad();
        var on = mask > 0;
        var values = entropy.detach().masked_select(on).to(ScalarType.Float64).cpu().data<double>().ToArray();
        if (values.Length == 0) return zeros_like(on);
        Array.Sort(values);
        double position = (1.0 - quantile) * (values.Length - 1);
        int lo = (int)Math.Floor(position);
        int hi = Math.Min(lo + 1, values.Length - 1);
        double threshold = values[lo] + (position - lo) * (values[hi] - values[lo]);
        return (entropy.detach().to(ScalarType.Float64) >= threshold) & on;
    }
}
