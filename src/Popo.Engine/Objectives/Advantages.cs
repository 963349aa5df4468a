namespace Popo.Engine.Objectives;

/// <summary>
/// GRPO advantages (docs/design.md §3): A_i = (r_i - mean_G r) / (std r + 1e-4), std Bessel-corrected
/// (divide by n-1), taken over the group (group), the whole batch (batch, as TRL) or not at all
/// (none = Dr. GRPO). Host arrays: one value per rollout.
/// </summary>
internal static class Advantages
{
    public const double Epsilon = 1e-4;

    public static double[] Compute(double[] rewards, int groupSize, RewardScaling scaling)
    {
        if (groupSize < 1 || rewards.Length % groupSize != 0)
            throw new ArgumentException($"{rewards.Length} rewards do not split into groups of {groupSize}");
        var advantages = new double[rewards.Length];
        double batchStd = scaling == RewardScaling.Batch ? BesselStd(rewards) : 0;
        for (int start = 0; start < rewards.Length; start += groupSize)
        {
            var group = rewards.AsSpan(start, groupSize);
            double mean = 0;
            foreach (var r in group) mean += r;
            mean /= groupSize;
            double scale = scaling switch
            {
                RewardScaling.Group => BesselStd(group) + Epsilon,
                RewardScaling.Batch => batchStd + Epsilon,
                _ => 1.0,
            };
            for (int i = 0; i < groupSize; i++) advantages[start + i] = (group[i] - mean) / scale;
        }
        return advantages;
    }

    /// <summary>
    /// RLVR-Decomposed's advantages (PSR, NSR, W-REINFORCE): one value per rollout from its reward alone. Positive means
    /// r &gt; <paramref name="threshold"/> (reward_threshold, POPO's tau_r; 0 for 0/1 rewards, RLVR-Decomposed's r == 1).
    /// </summary>
    public static double[] Signed(double[] rewards, SignedAdvantage weights, double threshold = 0.0)
    {
        if (rewards.Any(double.IsNaN)) throw new ArgumentException("a reward is NaN");
        return rewards.Select(r => r > threshold ? weights.PositiveWeight : -weights.NegativeWeight).ToArray();
    }

    /// <summary>Sample standard deviation (n - 1 in the denominator); 0 for a single value.</summary>
    public static double BesselStd(ReadOnlySpan<double> values)
    {
        if (values.Length < 2) return 0.0;
        double mean = 0;
        foreach (var v in values) mean += v;
        mean /= values.Length;
        double ss = 0;
        foreach (var v in values) ss += (v - mean) * (v - mean);
        return Math.Sqrt(ss / (values.Length - 1));
    }
}
