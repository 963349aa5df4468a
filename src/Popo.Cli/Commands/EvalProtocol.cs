namespace Popo.Cli.Commands;

/// <summary>
/// A published evaluation protocol for `popo eval --protocol NAME`: samples per problem and the sampling keys it fixes
/// (each overridden by the flag of the same key). Scores are avg@n (the mean correctness of all n samples) and the
/// unbiased pass@k estimator (Popo.MathVerify's PassAtK) at k = 1, 2, 4, ... up to n.
/// </summary>
public sealed record EvalProtocol(string Name, int Samples, IReadOnlyList<(string Key, string Value)> Keys)
{
    /// <summary>The POPO authors' AIME protocol: 128 samples at temperature 0.7, top_p 0.95, up to 4096 new tokens.</summary>
    public static readonly EvalProtocol Aime = new("aime", 128, [("temperature", "0.7"), ("top_p", "0.95"), ("max_new_tokens", "4096")]);

    public static EvalProtocol Get(string name) => name switch
    {
        "aime" => Aime,
        _ => throw new Popo.Engine.Runtime.ConfigException($"--protocol: unknown protocol '{name}'; expected aime"),
    };

    /// <summary>1, 2, 4, ... up to n, and n itself when it is not a power of two.</summary>
    public static IEnumerable<int> PowersOfTwo(int n)
    {
        int k = 1;
        for (; k <= n; k *= 2) yield return k;
        if (k / 2 != n) yield return n;
    }
}
