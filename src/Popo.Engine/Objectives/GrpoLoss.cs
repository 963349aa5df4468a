using TorchSharp;
using static TorchSharp.torch;

namespace Popo.Engine.Objectives;

/// <summary>The GRPO loss of one micro-batch with its diagnostics.</summary>
internal sealed record GrpoLossTerms(Tensor Total, Tensor ClipFraction, Tensor Kl) : IDisposable
{
    public void Dispose() { Total.Dispose(); ClipFraction.Dispose(); Kl.Dispose(); }
}

/// <summary>
/// The GRPO-family clipped surrogate (docs/design.md §3):
///   rho = exp(l - l_old);  per-token = -min(rho A, clip(rho, 1 - eps_low, 1 + eps_high) A) + beta k3,
///   k3 = exp(ref - l) - (ref - l) - 1;
///   grpo: mean_i (sum_t / |y_i|);  bnpo: sum / tokens in B;  dr_grpo: sum / (B L_max);  dapo: sum / T_batch.
/// grpo, bnpo and dr_grpo are divided by gradAccumSteps; dapo's normaliser already spans the whole
/// accumulated batch (as TRL does).
/// </summary>
internal static class GrpoLoss
{
    /// <param name="logProbs">l [B,N] under the current policy (differentiable).</param>
    /// <param name="oldLogProbs">l_old [B,N] of the policy that sampled.</param>
    /// <param name="refLogProbs">reference policy log-probs [B,N], or null when beta = 0.</param>
    /// <param name="mask">completion mask [B,N].</param>
    /// <param name="advantages">A [B].</param>
    /// <param name="maxCompletionLength">L_max for dr_grpo.</param>
    /// <param name="batchTokens">completion tokens in the whole accumulated batch, for dapo.</param>
    public static GrpoLossTerms Compute(Tensor logProbs, Tensor oldLogProbs, Tensor? refLogProbs, Tensor mask,
                                        Tensor advantages, GrpoOptions options, int maxCompletionLength,
                                        double batchTokens, int gradAccumSteps)
    {
        using var scope = NewDisposeScope();
        var m = mask.to(logProbs.dtype);
        var a = advantages.to(logProbs.dtype).unsqueeze(1);                                 // [B,1]
        var rho = (logProbs - oldLogProbs).exp();
        var clipped = rho.clamp(1.0 - options.EpsilonLow, 1.0 + options.EpsilonHigh);
        var perToken = -minimum(rho * a, clipped * a);
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
            LossType.Dapo => masked.sum() / Math.Max(batchTokens, 1.0),
            _ => throw new ArgumentOutOfRangeException(nameof(options), options.LossType, "unknown loss type"),
        };

        using var noGrad = no_grad();
        var isClipped = ((rho < 1.0 - options.EpsilonLow) & (a < 0)) | ((rho > 1.0 + options.EpsilonHigh) & (a > 0));
        var tokens = m.sum().clamp_min(1.0);
        var clipFraction = (isClipped.to(m.dtype) * m).sum() / tokens;
        var meanKl = (kl * m).sum() / tokens;
        return new GrpoLossTerms(loss.MoveToOuterDisposeScope(), clipFraction.MoveToOuterDisposeScope(),
                                 meanKl.detach().MoveToOuterDisposeScope());
    }
}
