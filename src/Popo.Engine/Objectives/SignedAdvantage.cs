namespace Popo.Engine.Objectives;

/// <summary>
/// RLVR-Decomposed's advantages (docs/design.md §3.1): A_i = PositiveWeight when r_i &gt; 0, -NegativeWeight otherwise,
/// no group baseline and no std (its compute_psr_nsr_outcome_advantage with rewards {1, 0}: "positive" r,
/// "negative" r - 1, "weighted" lambda r or r - 1). Positive means r &gt; 0, as POPO's S+.
/// </summary>
internal sealed record SignedAdvantage(double PositiveWeight, double NegativeWeight)
{
    /// <summary>PSR: positives at +1, negatives not reinforced.</summary>
    public static SignedAdvantage Psr { get; } = new(1.0, 0.0);

    /// <summary>NSR: negatives at -1, positives not reinforced.</summary>
    public static SignedAdvantage Nsr { get; } = new(0.0, 1.0);

    /// <summary>W-REINFORCE: lambda PSR + NSR, positives at +lambda and negatives at -1.</summary>
    public static SignedAdvantage WReinforce(double lambda) => new(lambda, 1.0);
}
