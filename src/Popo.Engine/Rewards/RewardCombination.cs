namespace Popo.Engine.Rewards;

/// <summary>
/// TRL's combination of reward functions: each sample's reward is the weighted sum of the values of the functions that
/// apply to it (null = not applicable; TRL's nansum), and 0 when none applies. The per-function statistics are over the
/// samples a function applies to (TRL's nanmean, nanstd with Bessel's correction), NaN when it applies to none.
/// </summary>
internal static class RewardCombination
{
    /// <summary>The rewards: <c>perFunction[f][i]</c> is function f's value for sample i; <paramref name="weights"/> one per function.</summary>
    public static double[] Combine(IReadOnlyList<double?[]> perFunction, IReadOnlyList<double> weights, int samples)
    {
        if (perFunction.Count != weights.Count) throw new ArgumentException($"{perFunction.Count} functions with {weights.Count} weights");
        var total = new double[samples];
        for (int i = 0; i < samples; i++)
        {
            double sum = 0;
            for (int f = 0; f < perFunction.Count; f++)
                if (perFunction[f][i] is double v) sum += weights[f] * v;
            total[i] = sum;
        }
        return total;
    }

    /// <summary>Whether no function applies to sample <paramref name="i"/>.</summary>
    public static bool Unscored(IReadOnlyList<double?[]> perFunction, int i) => perFunction.All(f => f[i] is null);

    /// <summary>Mean and sample standard deviation of the non-null values (NaN when there are none; std NaN for one).</summary>
    public static (double Mean, double Std) Statistics(IReadOnlyList<double?> values)
    {
        var v = values.Where(x => x is not null).Select(x => x!.Value).ToArray();
        if (v.Length == 0) return (double.NaN, double.NaN);
        double mean = v.Average();
        if (v.Length == 1) return (mean, double.NaN);
        double ss = v.Sum(x => (x - mean) * (x - mean));
        return (mean, Math.Sqrt(ss / (v.Length - 1)));
    }
}
