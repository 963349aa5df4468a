namespace Popo.Engine.Objectives;

/// <summary>
/// POPO's bounded importance weights over the positive set ("Eq. 8", docs/design.md §2.2).
/// s_i = mean_t l_{i,t}; S+ = { i : r_i &gt; tau_r } (reward_threshold, default 0); w_i = softmax over S+ of s_i / T_w (or 1/|S+|), 0 off S+, all 0 when S+ is empty.
/// Computed once per generation batch from the pre-update policy's log-probs, without gradient, so
/// this works on host arrays: a group has at most a few dozen rollouts.
/// Departures: none from the authors' code; uniform, length normalisation and the cap are options.
/// </summary>
internal static class PopoWeights
{
    /// <param name="scores">Length-normalised sequence log-probs s_i, one per rollout, groups contiguous.</param>
    /// <param name="lengths">Completion lengths |y_i| (used by LengthNormalizeWeights).</param>
    /// <param name="rewards">r_i; S+ = { i : r_i > options.RewardThreshold }.</param>
    /// <param name="groupSize">G: rollouts per prompt.</param>
    public static double[] Compute(double[] scores, int[] lengths, double[] rewards, int groupSize, PopoOptions options)
    {
        if (scores.Length != rewards.Length || scores.Length != lengths.Length)
            throw new ArgumentException($"scores ({scores.Length}), lengths ({lengths.Length}) and rewards ({rewards.Length}) must have one entry per rollout");
        if (groupSize < 1 || scores.Length % groupSize != 0)
            throw new ArgumentException($"{scores.Length} rollouts do not split into groups of {groupSize}");
        var weights = new double[scores.Length];
        for (int start = 0; start < scores.Length; start += groupSize)
            GroupWeights(scores.AsSpan(start, groupSize), lengths.AsSpan(start, groupSize),
                         rewards.AsSpan(start, groupSize), options, weights.AsSpan(start, groupSize));
        return weights;
    }

    private static void GroupWeights(ReadOnlySpan<double> scores, ReadOnlySpan<int> lengths, ReadOnlySpan<double> rewards,
                                     PopoOptions options, Span<double> w)
    {
        int positives = 0;
        double maxScore = double.NegativeInfinity;
        for (int i = 0; i < w.Length; i++)
            if (rewards[i] > options.RewardThreshold) { positives++; maxScore = Math.Max(maxScore, scores[i] / options.WeightTemperature); }
        if (positives == 0) { w.Clear(); return; }

        for (int i = 0; i < w.Length; i++)
            w[i] = rewards[i] > options.RewardThreshold
                ? options.Weights == WeightMode.Uniform ? 1.0 : Math.Exp(scores[i] / options.WeightTemperature - maxScore)
                : 0.0;
        if (options.LengthNormalizeWeights)
            for (int i = 0; i < w.Length; i++) w[i] /= Math.Max(lengths[i], 1);
        Normalize(w);
        if (options.WeightCap is double cap) WaterFill(w, rewards, cap, options.RewardThreshold);
    }

    private static void Normalize(Span<double> w)
    {
        double sum = 0;
        foreach (var v in w) sum += v;
        for (int i = 0; i < w.Length; i++) w[i] /= sum;
    }

    /// <summary>
    /// Clip weights above c to c and rescale the unclipped positives so the group still sums to 1,
    /// repeating until none exceeds c; when |S+| c &lt; 1 every positive gets c.
    /// </summary>
    private static void WaterFill(Span<double> w, ReadOnlySpan<double> rewards, double cap, double threshold)
    {
        Span<bool> clipped = stackalloc bool[w.Length];
        int positives = 0;
        for (int i = 0; i < w.Length; i++) if (rewards[i] > threshold) positives++;
        if (positives * cap <= 1.0)
        {
            for (int i = 0; i < w.Length; i++) w[i] = rewards[i] > threshold ? cap : 0.0;
            return;
        }
        while (true)
        {
            bool changed = false;
            for (int i = 0; i < w.Length; i++)
                if (!clipped[i] && w[i] > cap) { clipped[i] = true; changed = true; }
            if (!changed) return;
            double freeMass = 0; int nClipped = 0;
            for (int i = 0; i < w.Length; i++)
                if (clipped[i]) nClipped++; else freeMass += w[i];
            double remaining = 1.0 - nClipped * cap;
            for (int i = 0; i < w.Length; i++)
                w[i] = clipped[i] ? cap : freeMass > 0 ? w[i] * remaining / freeMass : 0.0;
        }
    }
}
