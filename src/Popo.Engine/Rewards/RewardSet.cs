using Popo.Engine.Data;
using Popo.Engine.Runtime;
using Popo.Engine.Tasks;
using Popo.Rewards;

namespace Popo.Engine.Rewards;

/// <summary>
/// The rewards of one batch: <see cref="Totals"/> (the weighted combination), the task's verdicts (<see cref="Judgements"/>:
/// routes and verifier errors), each function's values after fault handling (<see cref="PerFunction"/>, null = not
/// applicable) and how many values were faults (<see cref="Errors"/>).
/// </summary>
internal sealed record RewardScores(double[] Totals, Judgement[] Judgements, IReadOnlyList<double?[]> PerFunction, int Errors);

/// <summary>
/// A run's reward functions with their weights (README, "Bring your own reward"). Built once in the preflight:
/// <c>reward_funcs</c> in order (built-in names, else specs loaded by <see cref="RewardSources.Load"/>), then the functions
/// a library caller passes as objects; with neither, the task's own check (<c>accuracy</c>) alone, as before reward
/// functions existed. <c>overlong_buffer</c> &gt; 0 adds the built-in <c>overlong</c> (weight 1) when it is not listed.
/// Each batch is judged once by the task (<see cref="ITask.Judge"/>), then scored by each function with reward_timeout
/// per call; faults follow reward_errors.
/// </summary>
internal sealed class RewardSet : IDisposable
{
    private readonly ITask task;
    private readonly IReadOnlyList<IRewardFunction> functions;
    private readonly IReadOnlyList<IRewardFunction> owned;
    private readonly RewardErrorMode errors;
    private readonly TimeSpan timeout;
    private readonly Action<string> log;
    private bool unscoredLogged;

    /// <summary>The functions, in order (their names are unique).</summary>
    public IReadOnlyList<IRewardFunction> Functions => functions;

    /// <summary>One weight per function.</summary>
    public IReadOnlyList<double> Weights { get; }

    /// <summary>The metric columns the functions add: rewards/NAME/mean and rewards/NAME/std, in order.</summary>
    public IReadOnlyList<string> Columns => functions.SelectMany(f => new[] { $"rewards/{f.Name}/mean", $"rewards/{f.Name}/std" }).ToList();

    private RewardSet(ITask task, IReadOnlyList<IRewardFunction> functions, IReadOnlyList<IRewardFunction> owned, IReadOnlyList<double> weights,
                      RewardErrorMode errors, TimeSpan timeout, Action<string> log)
    {
        this.task = task;
        this.functions = functions;
        this.owned = owned;
        Weights = weights;
        this.errors = errors;
        this.timeout = timeout;
        this.log = log;
    }

    /// <summary>Whether a run with these specs and <paramref name="objects"/> library functions needs every row's gold answer (its functions include accuracy).</summary>
    public static bool NeedsAnswer(IReadOnlyList<string> specs, int objects) =>
        specs.Contains("accuracy") || (specs.Count == 0 && objects == 0);

    /// <summary>
    /// The run's functions from its keys (reward_funcs, reward_weights, reward_errors, reward_timeout, reward_workers,
    /// overlong_*) and <paramref name="objects"/>; a spec that cannot be loaded throws <see cref="RewardLoadException"/>.
    /// </summary>
    public static RewardSet Create(IRunKeys keys, ITask task, IReadOnlyList<IRewardFunction>? objects, string baseDirectory, Action<string> log)
    {
        objects ??= [];
        var specs = keys.Get<IReadOnlyList<string>>("reward_funcs");
        var weights = keys.Get<IReadOnlyList<double>>("reward_weights");
        var timeout = TimeSpan.FromSeconds(keys.Get<double>("reward_timeout"));
        if (weights.Count > 0 && weights.Count != specs.Count && weights.Count != specs.Count + objects.Count)
            throw new ConfigException($"key 'reward_weights': {weights.Count} weights for {specs.Count} reward function{(specs.Count == 1 ? "" : "s")} " +
                                      $"(reward_funcs = [{string.Join(", ", specs)}]){(objects.Count > 0 ? $" and {objects.Count} given as objects" : "")}; " +
                                      "give one weight per function, or none for 1 each");
        var sourceOptions = new RewardSourceOptions(baseDirectory, timeout, keys.Get<int>("reward_workers"), log);
        var functions = new List<IRewardFunction>();
        var owned = new List<IRewardFunction>();
        try
        {
            foreach (var spec in specs)
            {
                var f = BuiltInRewards.Names.Contains(spec) ? BuiltInRewards.Create(spec, keys) : RewardSources.Load(spec, sourceOptions);
                functions.Add(f);
                owned.Add(f);
            }
            functions.AddRange(objects);
            if (functions.Count == 0) functions.Add(new AccuracyReward());
            var w = Enumerable.Range(0, functions.Count).Select(i => i < weights.Count ? weights[i] : 1.0).ToList();
            if (keys.Get<int>("overlong_buffer") > 0 && !functions.Any(f => f is OverlongReward))
            {
                functions.Add(BuiltInRewards.Create("overlong", keys));
                w.Add(1.0);
            }
            if (functions.GroupBy(f => f.Name).FirstOrDefault(g => g.Count() > 1) is { } twice)
                throw new RewardLoadException($"reward functions: two are named '{twice.Key}'; each needs its own name (its metrics are rewards/NAME/mean and /std)");
            if (functions.FirstOrDefault(f => string.IsNullOrWhiteSpace(f.Name)) is { } nameless)
                throw new RewardLoadException($"reward function of type {nameless.GetType().FullName}: its Name is empty");
            return new RewardSet(task, functions, owned, w, ParseMode(keys.Get<string>("reward_errors")), timeout, log);
        }
        catch
        {
            foreach (var f in owned) (f as IDisposable)?.Dispose();
            throw;
        }
    }

    private static RewardErrorMode ParseMode(string word) => word switch
    {
        "zero" => RewardErrorMode.Zero,
        "skip" => RewardErrorMode.Skip,
        _ => RewardErrorMode.Fail,
    };

    /// <summary>
    /// Scores rows in groups of <paramref name="groupSize"/> (row i answers <paramref name="problems"/>[i]): judges each
    /// once by the task, runs every function, handles faults, combines. Throws <see cref="RewardFunctionException"/> on a
    /// fault under reward_errors = fail.
    /// </summary>
    public RewardScores Score(IReadOnlyList<Problem> problems, IReadOnlyList<string> completions, IReadOnlyList<int[]> completionIds,
                              IReadOnlyList<bool> finished, int groupSize)
    {
        int n = completions.Count;
        var judgements = new Judgement[n];
        var samples = new RewardSample[n];
        Data.Problem? last = null;
        System.Text.Json.Nodes.JsonObject? columns = null;
        for (int i = 0; i < n; i++)
        {
            judgements[i] = task.Judge(problems[i], completions[i], finished[i]);
            // one copy of the row per group: functions see the columns as read, whatever an earlier call did to its copy
            if (!ReferenceEquals(problems[i], last)) { last = problems[i]; columns = problems[i].RewardColumns(); }
            samples[i] = new RewardSample(i / groupSize, problems[i].Prompt, completions[i], completionIds[i], finished[i], columns!);
        }
        foreach (var f in functions.OfType<AccuracyReward>())
            for (int i = 0; i < n; i++) f.Attach(samples[i], judgements[i]);

        int faults = 0;
        var perFunction = new List<double?[]>(functions.Count);
        foreach (var f in functions)
        {
            var (values, count) = Call(f, samples, problems, groupSize);
            perFunction.Add(values);
            faults += count;
        }
        var totals = RewardCombination.Combine(perFunction, Weights, n);
        if (!unscoredLogged && Enumerable.Range(0, n).FirstOrDefault(i => RewardCombination.Unscored(perFunction, i), -1) is var u and >= 0)
        {
            log($"reward: no reward function applies to problem {problems[u].Id} rollout {u % groupSize}; its reward is 0 (TRL's nansum; logged once)");
            unscoredLogged = true;
        }
        return new RewardScores(totals, judgements, perFunction, faults);
    }

    /// <summary>One call of <paramref name="f"/> on the batch, bounded by reward_timeout; its values after fault handling, and the faults.</summary>
    private (double?[] Values, int Faults) Call(IRewardFunction f, RewardSample[] samples, IReadOnlyList<Problem> problems, int groupSize)
    {
        string Row(int i) => $"problem {problems[i].Id} rollout {i % groupSize}";
        var values = new double?[samples.Length];
        string? callError = null;
        Exception? inner = null;
        var cancel = new CancellationTokenSource();
        // On a worker thread: a synchronous function that never returns is abandoned at the deadline, never waited for.
        var call = Task.Run(async () => await f.ScoreAsync(samples, cancel.Token).ConfigureAwait(false));
        try
        {
            if (!call.Wait(timeout))
            {
                cancel.Cancel();   // an asynchronous function stops; the call is abandoned either way
                callError = $"no answer within reward_timeout = {timeout.TotalSeconds:G} s";
            }
            else
            {
                var result = call.Result;
                if (result is null || result.Count != samples.Length)
                    callError = $"returned {(result is null ? "null" : $"{result.Count} values")} for {samples.Length} rollouts";
                else
                    for (int i = 0; i < samples.Length; i++) values[i] = result[i];
            }
        }
        catch (AggregateException e)
        {
            inner = e.InnerException ?? e;
            callError = $"{inner.GetType().Name}: {inner.Message}";
        }
        if (callError is null) cancel.Dispose();

        var faulty = new List<int>();
        if (callError is not null) faulty.AddRange(Enumerable.Range(0, samples.Length));
        else
            for (int i = 0; i < samples.Length; i++)
                if (values[i] is double v && !double.IsFinite(v)) faulty.Add(i);
        if (faulty.Count == 0) return (values, 0);

        var first = faulty[0];
        var what = callError is not null
            ? $"reward function '{f.Name}' failed on {Row(first)} (the call scored {samples.Length} rollouts): {callError}"
            : $"reward function '{f.Name}' returned {values[first]} for {Row(first)}" + (faulty.Count > 1 ? $" ({faulty.Count} non-finite values in this call)" : "");
        if (errors == RewardErrorMode.Fail)
            throw new RewardFunctionException($"{what}; reward_errors = fail stops the run (zero or skip would count the value as 0 or not applicable)", inner);
        log($"{what}; reward_errors = {(errors == RewardErrorMode.Zero ? "zero: counted as 0" : "skip: counted as not applicable")}");
        foreach (var i in faulty) values[i] = errors == RewardErrorMode.Zero ? 0.0 : null;
        return (values, faulty.Count);
    }

    /// <summary>Disposes the functions this set loaded from specs (a library caller's objects stay the caller's).</summary>
    public void Dispose()
    {
        foreach (var f in owned) (f as IDisposable)?.Dispose();
    }
}
