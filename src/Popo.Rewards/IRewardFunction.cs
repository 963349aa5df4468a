namespace Popo.Rewards;

/// <summary>
/// A reward function (TRL's <c>reward_funcs</c>): scores a batch of rollouts, groups contiguous, with one value per
/// sample, in order, or null where the function does not apply to that sample. Values may be any finite real; a run
/// combines several functions with <c>reward_weights</c>.
/// </summary>
public interface IRewardFunction
{
    /// <summary>The name the metrics carry (<c>rewards/NAME/mean</c>, <c>rewards/NAME/std</c>).</summary>
    string Name { get; }

    /// <summary>One value (or null) per sample of <paramref name="samples"/>, in the same order.</summary>
    ValueTask<IReadOnlyList<double?>> ScoreAsync(IReadOnlyList<RewardSample> samples, CancellationToken cancellation);
}

/// <summary>A reward function that scores each rollout on its own, synchronously: override <see cref="Score"/>.</summary>
public abstract class RewardFunction : IRewardFunction
{
    /// <inheritdoc />
    public virtual string Name => GetType().Name;

    /// <summary>The value of one rollout, or null where the function does not apply to it.</summary>
    public abstract double? Score(RewardSample sample);

    /// <inheritdoc />
    public ValueTask<IReadOnlyList<double?>> ScoreAsync(IReadOnlyList<RewardSample> samples, CancellationToken cancellation)
    {
        var values = new double?[samples.Count];
        for (int i = 0; i < samples.Count; i++)
        {
            cancellation.ThrowIfCancellationRequested();
            values[i] = Score(samples[i]);
        }
        return ValueTask.FromResult<IReadOnlyList<double?>>(values);
    }
}
