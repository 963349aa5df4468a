using TorchSharp;
using static TorchSharp.torch;

namespace Popo.Engine.Objectives;

/// <summary>The POPO loss terms of one micro-batch, kept apart for logging.</summary>
internal sealed record PopoLossTerms(Tensor Total, Tensor Nll, Tensor Similarity, Tensor Entropy) : IDisposable
{
    public void Dispose() { Total.Dispose(); Nll.Dispose(); Similarity.Dispose(); Entropy.Dispose(); }
}

/// <summary>
/// POPO's micro-batch loss (docs/design.md §2.3-2.7):
///   L_nll = (1/N+) sum_i w_i sum_t -l_{i,t}       (N+ = completion tokens of rows with w_i > 0, at least 1)
///   L_sim = -sum_i w_i cos(u_i, z_i) / max(sum_i w_i, 1e-8)   (u = predictor output, z = noisy target feature;
///           a row with w_i = 0 adds exactly 0, so u and z are passed for the positive rows only)
///   L_ent = -(1/N) sum_{i,t} H_{i,t}              (over all rows, or positive rows with EntropyScope.Positive)
///   L     = (L_nll + alpha L_sim + beta_ent L_ent) / gradAccumSteps, and exactly 0 with no positive.
/// Departures from the authors' code: none; cos is u.z / (|u| |z|) without torch's eps clamp, as in the spec.
/// </summary>
internal static class PopoLoss
{
    /// <summary>The indices of the rows with w_i &gt; 0 (int64, on w's device): the only rows L_sim reads.</summary>
    public static Tensor PositiveRows(Tensor weights) => nonzero(weights > 0).view(-1);

    /// <param name="logProbs">l [B,N] (differentiable).</param>
    /// <param name="entropy">H [B,N] (differentiable), or null when beta_ent = 0.</param>
    /// <param name="mask">completion mask [B,N], 1 for real completion tokens.</param>
    /// <param name="weights">w [B], no gradient.</param>
    /// <param name="predicted">u = h(f_theta) [B+,D] of the rows <see cref="PositiveRows"/> selects, or null when alpha = 0.</param>
    /// <param name="target">z = f_xi + noise [B+,D] of the same rows, no gradient, or null when alpha = 0.</param>
    /// <param name="tokenWeights">per-token weights c [B,N] of the NLL terms (the importance correction), or null; proofs/importance-correction.md.</param>
    public static PopoLossTerms Compute(Tensor logProbs, Tensor? entropy, Tensor mask, Tensor weights,
                                        Tensor? predicted, Tensor? target, PopoOptions options, int gradAccumSteps,
                                        Tensor? tokenWeights = null)
    {
        using var scope = NewDisposeScope();
        var m = mask.to(logProbs.dtype);
        var w = weights.to(logProbs.dtype);
        var positiveRows = (w > 0).to(logProbs.dtype);                                   // [B]
        var nPlus = (m * positiveRows.unsqueeze(1)).sum().clamp_min(1.0);
        var weighted = tokenWeights is null ? logProbs : logProbs * tokenWeights;         // c_{i,t} l_{i,t}
        var nll = -(w.unsqueeze(1) * weighted * m).sum() / nPlus;

        var sim = zeros_like(nll);
        if (options.UsesSimilarity)
        {
            if (predicted is null || target is null)
                throw new ArgumentException("alpha != 0 needs the predictor outputs and the target features");
            var wPlus = w.index_select(0, PositiveRows(weights));                          // [B+]
            var cos = (predicted * target).sum(-1) / (predicted.norm(1) * target.norm(1)); // [B+]
            sim = -(wPlus * cos).sum() / wPlus.sum().clamp_min(1e-8);
        }

        var ent = zeros_like(nll);
        if (options.BetaEntropy != 0.0)
        {
            if (entropy is null) throw new ArgumentException("beta_ent != 0 needs the token entropies");
            var scopeMask = options.EntropyScope == EntropyScope.All ? m : m * positiveRows.unsqueeze(1);
            ent = -(entropy * scopeMask).sum() / scopeMask.sum().clamp_min(1.0);
        }

        // A micro-batch without positives contributes exactly 0: multiplying by the indicator keeps the
        // gradient an exact zero (every term is finite) rather than dropping the graph.
        var hasPositive = positiveRows.max();
        var total = (nll + options.Alpha * sim + options.BetaEntropy * ent) * hasPositive / gradAccumSteps;
        return new PopoLossTerms(total.MoveToOuterDisposeScope(), nll.detach().MoveToOuterDisposeScope(),
                                 sim.detach().MoveToOuterDisposeScope(), ent.detach().MoveToOuterDisposeScope());
    }
}
