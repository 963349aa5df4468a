namespace Popo.MathVerify;

/// <summary>
/// Evaluation metrics over n sampled completions per problem, c of them correct (docs/design.md §9).
/// </summary>
internal static class PassAtK
{
    /// <summary>
    /// Unbiased pass@k (Chen et al. 2021, "Evaluating Large Language Models Trained on Code"):
    /// 1 - C(n-c, k) / C(n, k), the probability that k of the n samples drawn without replacement
    /// contain a correct one. Computed in the stable product form
    /// 1 - prod_{i=n-c+1}^{n} (1 - k/i), which never forms a binomial coefficient.
    /// Requires 0 &lt;= c &lt;= n and 1 &lt;= k &lt;= n.
    /// </summary>
    public static double Estimate(int n, int c, int k)
    {
        if (n < 1 || c < 0 || c > n || k < 1 || k > n)
            throw new ArgumentOutOfRangeException(nameof(k), $"pass@k needs 0 <= c <= n and 1 <= k <= n; got n={n}, c={c}, k={k}");
        if (n - c < k) return 1.0;
        double notPass = 1.0;
        for (int i = n - c + 1; i <= n; i++) notPass *= 1.0 - (double)k / i;
        return 1.0 - notPass;
    }

    /// <summary>Mean over problems of <see cref="Estimate"/>; each element is (n, c) for one problem.</summary>
    public static double Mean(IReadOnlyList<(int N, int C)> problems, int k)
    {
        if (problems.Count == 0) throw new ArgumentException("pass@k over zero problems is undefined", nameof(problems));
        return problems.Average(p => Estimate(p.N, p.C, k));
    }

    /// <summary>
    /// mean@k: the expected accuracy of one sample, averaged over problems, c/n per problem
    /// (with n = k samples per problem this is the usual avg@k).
    /// </summary>
    public static double MeanAtK(IReadOnlyList<(int N, int C)> problems)
    {
        if (problems.Count == 0) throw new ArgumentException("mean@k over zero problems is undefined", nameof(problems));
        foreach (var (n, c) in problems)
            if (n < 1 || c < 0 || c > n) throw new ArgumentOutOfRangeException(nameof(problems), $"mean@k needs 0 <= c <= n, n >= 1; got n={n}, c={c}");
        return problems.Average(p => (double)p.C / p.N);
    }
}
