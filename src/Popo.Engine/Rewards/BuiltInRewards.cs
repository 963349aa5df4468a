using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Popo.Engine.Tasks;
using Popo.Rewards;

namespace Popo.Engine.Rewards;

/// <summary>
/// <c>accuracy</c>: the task's own check (<see cref="ITask.Judge"/>: the math verifier on a dataset, the arithmetic or
/// countdown check on the built-in tasks), 1 or 0. It reads the verdicts the <see cref="RewardSet"/> judged once per
/// rollout (their routes and errors feed the route-share metrics and verifier_errors), so it scores only the samples of
/// the set it belongs to.
/// </summary>
internal sealed class AccuracyReward : IRewardFunction
{
    private readonly System.Runtime.CompilerServices.ConditionalWeakTable<RewardSample, Judgement> verdicts = new();

    public string Name => "accuracy";

    /// <summary>Records the task's verdict on <paramref name="sample"/> before a call.</summary>
    internal void Attach(RewardSample sample, Judgement verdict) => verdicts.AddOrUpdate(sample, verdict);

    public ValueTask<IReadOnlyList<double?>> ScoreAsync(IReadOnlyList<RewardSample> samples, CancellationToken cancellation) =>
        ValueTask.FromResult<IReadOnlyList<double?>>(samples
            .Select(s => verdicts.TryGetValue(s, out var j) ? (double?)j.Reward
                         : throw new InvalidOperationException("accuracy scores the rollouts of its own run only (the task's verdicts are judged by the run)"))
            .ToArray());
}

/// <summary>
/// <c>format</c>: 1 when the completion is its reasoning in &lt;think&gt;...&lt;/think&gt; followed by its answer in
/// &lt;answer&gt;...&lt;/answer&gt; and nothing else (the format reward of TRL's GRPO examples; whitespace around and
/// between the two blocks allowed), else 0. Applies to every rollout.
/// </summary>
internal sealed partial class FormatReward : RewardFunction
{
    [GeneratedRegex(@"^\s*<think>.*?</think>\s*<answer>.*?</answer>\s*$", RegexOptions.Singleline)]
    private static partial Regex Tags();

    public override string Name => "format";

    public override double? Score(RewardSample sample) => Tags().IsMatch(sample.Completion) ? 1.0 : 0.0;
}

/// <summary>
/// <c>overlong</c>: DAPO's soft overlong punishment of a completion of length L (tokens, the stop token included) with
/// L_max = max_new_tokens and L_cache = overlong_buffer: 0 up to L_max - L_cache, then linear down to -1 at L_max, times
/// overlong_penalty. Applies to every rollout.
/// </summary>
internal sealed class OverlongReward(int buffer, double factor, int maxLength) : RewardFunction
{
    public override string Name => "overlong";

    public override double? Score(RewardSample sample) => Penalty(sample.CompletionIds.Count, buffer, factor, maxLength);

    /// <summary>The penalty of a completion of <paramref name="length"/> tokens.</summary>
    internal static double Penalty(int length, int buffer, double factor, int maxLength)
    {
        if (buffer <= 0) return 0;
        int free = maxLength - buffer;
        if (length <= free) return 0;
        return factor * Math.Max(-1.0, (free - length) / (double)buffer);
    }
}

/// <summary>
/// <c>arithmetic</c>: the arithmetic task's check (any answer marker, else the last number, equal to the row's
/// <c>answer</c> column), 1 or 0; not applicable (null) to a row without an <c>answer</c> column.
/// </summary>
internal sealed class ArithmeticReward : RewardFunction
{
    public override string Name => "arithmetic";

    public override double? Score(RewardSample sample)
    {
        var answer = sample.Columns["answer"] switch
        {
            null => null,
            JsonValue v when v.TryGetValue<string>(out var s) => s,
            JsonValue v => v.ToJsonString(),
            var other => throw new FormatException($"column 'answer': expected a string or a number, got {other.ToJsonString()}"),
        };
        return answer is null ? null : ArithmeticTask.Check(answer, sample.Completion, sample.Finished).Reward;
    }
}

/// <summary>
/// <c>countdown</c>: the countdown check (the marked answer, else the last line, an expression over the row's
/// <c>numbers</c>, each at most once, with its <c>operators</c>, default "+-*/", that reaches its <c>target</c>), 1 or 0;
/// not applicable (null) to a row without <c>numbers</c> and <c>target</c> columns.
/// </summary>
internal sealed class CountdownReward : RewardFunction
{
    public override string Name => "countdown";

    public override double? Score(RewardSample sample)
    {
        if (sample.Columns["numbers"] is not JsonArray numbers || sample.Columns["target"] is not JsonValue target) return null;
        var values = numbers.Select(n => n is JsonValue v && v.TryGetValue<long>(out var x) ? x
                                         : throw new FormatException($"column 'numbers': expected whole numbers, got {numbers.ToJsonString()}")).ToArray();
        if (!target.TryGetValue<long>(out var t)) throw new FormatException($"column 'target': expected a whole number, got {target.ToJsonString()}");
        var operators = sample.Columns["operators"] is JsonValue o && o.TryGetValue<string>(out var ops) ? ops : "+-*/";
        return CountdownTask.Check(values, t, operators, sample.Completion).Reward;
    }
}

/// <summary>The built-in reward functions by name (README, "Bring your own reward").</summary>
internal static class BuiltInRewards
{
    /// <summary>The names a <c>reward_funcs</c> entry may use for a built-in; any other entry is a spec for <see cref="RewardSources.Load"/>.</summary>
    public static IReadOnlyList<string> Names { get; } = ["accuracy", "format", "overlong", "arithmetic", "countdown"];

    /// <summary>The built-in <paramref name="name"/> (one of <see cref="Names"/>) for a run with these keys.</summary>
    internal static IRewardFunction Create(string name, Runtime.IRunKeys keys) => name switch
    {
        "accuracy" => new AccuracyReward(),
        "format" => new FormatReward(),
        "overlong" => keys.Get<int>("overlong_buffer") > 0
            ? new OverlongReward(keys.Get<int>("overlong_buffer"), keys.Get<double>("overlong_penalty"), keys.Get<int>("max_new_tokens"))
            : throw new RewardLoadException("reward function 'overlong': needs overlong_buffer > 0 (the length of the penalty's window in tokens)"),
        "arithmetic" => new ArithmeticReward(),
        "countdown" => new CountdownReward(),
        _ => throw new ArgumentException($"no built-in reward function '{name}'"),
    };
}
