using Popo.Engine.Data;

namespace Popo.Engine.Tasks;

/// <summary>A source of problems with a deterministic 0/1 reward (docs/design.md §7).</summary>
public interface ITask
{
    /// <summary>The task's name in logs and run summaries.</summary>
    string Name { get; }

    /// <summary>
    /// Problem number <paramref name="index"/> (&gt;= 0) of a split: a pure function of the task's
    /// configuration, split and index. Generated tasks have unbounded splits; a dataset's index wraps
    /// modulo <see cref="Count"/> (one pass over the data per epoch).
    /// </summary>
    Problem Get(Split split, long index);

    /// <summary>Number of distinct problems in a split; null for generated tasks (unbounded).</summary>
    long? Count(Split split);

    /// <summary>
    /// The judgement of a completion that <paramref name="finished"/> (ended with a stop token) or was cut at max_new_tokens
    /// (a task whose verdict depends on it reads a truncated completion's answer only from an explicit marker). Never throws.
    /// </summary>
    Judgement Judge(Problem problem, string completion, bool finished = true);
}

/// <summary>Rewards from a task's judgement.</summary>
public static class TaskRewards
{
    /// <summary>The reward of <see cref="ITask.Judge"/> alone.</summary>
    public static double Reward(this ITask task, Problem problem, string completion, bool finished = true) =>
        task.Judge(problem, completion, finished).Reward;
}
