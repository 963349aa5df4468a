using Popo.Engine.Data;
namespace Popo.Engine.Tasks;

/// <summary>
/// Determinism and splits for generated tasks. Instance i of a split is drawn from a SplitMix64 stream
/// seeded by (seed, split, index, attempt); the split an instance belongs to is a fixed hash of its
/// canonical text (the statement: "47+385", "nums 3 7 25 50 target 78"), independent of the seed, so train and test are disjoint by
/// construction, and stay disjoint across seeds. A draw that lands in the other split is rejected and
/// redrawn (attempt + 1).
/// </summary>
internal static class InstanceSpace
{
    /// <summary>Share of the instance space held out for <see cref="Split.Test"/>, in percent.</summary>
    public const int TestPercent = 20;

    private const int MaxAttempts = 10_000;

    /// <summary>SplitMix64 finaliser: a bijective 64-bit mix.</summary>
    public static ulong Mix(ulong z)
    {
        z += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>FNV-1a over the UTF-16 code units, then mixed: stable across runs and platforms.</summary>
    public static ulong Hash(string text)
    {
        ulong h = 0xCBF29CE484222325UL;
        foreach (char c in text) { h ^= c; h *= 0x100000001B3UL; }
        return Mix(h);
    }

    /// <summary>The split an instance belongs to, from its canonical text.</summary>
    public static Split SplitOf(string canonical) =>
        Hash(canonical) % 100 < TestPercent ? Split.Test : Split.Train;

    /// <summary>
    /// Draws instances from <paramref name="draw"/> until one falls in <paramref name="split"/>.
    /// </summary>
    /// <exception cref="InvalidOperationException">when the instance space has (almost) nothing in that split.</exception>
    public static T Draw<T>(string task, long seed, Split split, long index, Func<Rng, T> draw, Func<T, string> canonical)
    {
        if (index < 0) throw new ArgumentOutOfRangeException(nameof(index), $"{task}: problem index must be >= 0, got {index}");
        for (int attempt = 0; attempt < MaxAttempts; attempt++)
        {
            var rng = new Rng(Mix(Mix(Mix((ulong)seed) ^ (ulong)split) ^ (ulong)index) ^ (ulong)attempt * 0xD1B54A32D192ED03UL);
            var instance = draw(rng);
            if (SplitOf(canonical(instance)) == split) return instance;
        }
        throw new InvalidOperationException(
            $"{task}: no {split} instance found in {MaxAttempts} draws; the difficulty leaves too few distinct problems for a {TestPercent}% held-out split");
    }
}

/// <summary>A SplitMix64 random stream: deterministic across .NET versions (System.Random is not promised to be).</summary>
internal sealed class Rng(ulong state)
{
    private ulong _state = state;

    public ulong NextUInt64() => InstanceSpace.Mix(_state += 0x9E3779B97F4A7C15UL);

    /// <summary>Uniform integer in [lo, hi] (inclusive).</summary>
    public long Next(long lo, long hi)
    {
        if (hi < lo) throw new ArgumentOutOfRangeException(nameof(hi), $"empty range [{lo}, {hi}]");
        ulong span = (ulong)(hi - lo) + 1;
        return lo + (long)(NextUInt64() % span); // modulo bias < span / 2^64: negligible for task sizes
    }

    public T Pick<T>(IReadOnlyList<T> items) => items[(int)Next(0, items.Count - 1)];
}
