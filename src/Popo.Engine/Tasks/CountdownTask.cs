using Popo.Engine.Data;
using Popo.MathVerify;

namespace Popo.Engine.Tasks;

/// <summary>
/// What a countdown problem looks like: Numbers numbers drawn from 1..MaxNumber, a target in
/// MinTarget..MaxTarget reachable with Operators (a subset of "+-*/").
/// </summary>
internal sealed record CountdownDifficulty(int Numbers, int MaxNumber, int MinTarget, int MaxTarget, string Operators)
{
    /// <summary>
    /// tiny: 2 numbers 1-9, + and - (one step). easy: 3 numbers 1-10, target up to 30, + and -.
    /// medium (default): 4 numbers 1-20, target up to 100, + - * /. hard: 5 numbers 1-50, target 10-500.
    /// expert: 6 numbers 1-100, target 100-999. More numbers and larger targets make the search longer and
    /// the pass rate of a small model lower.
    /// </summary>
    public static readonly IReadOnlyDictionary<string, CountdownDifficulty> Presets = new Dictionary<string, CountdownDifficulty>
    {
        ["tiny"] = new(2, 9, 1, 18, "+-"),
        ["easy"] = new(3, 10, 1, 30, "+-"),
        ["medium"] = new(4, 20, 1, 100, "+-*/"),
        ["hard"] = new(5, 50, 10, 500, "+-*/"),
        ["expert"] = new(6, 100, 100, 999, "+-*/"),
    };

    public const string Default = "medium";

    /// <summary>A preset name, or key=value pairs (numbers, max, mintarget, target, ops) over medium.</summary>
    public static CountdownDifficulty Parse(string? text) =>
        DifficultySpec.Parse("countdown", text, Presets, Default, new Dictionary<string, Func<CountdownDifficulty, string, CountdownDifficulty>>
        {
            ["numbers"] = (d, v) => d with { Numbers = DifficultySpec.Int("countdown", "numbers", v, 2, 8) },
            ["max"] = (d, v) => d with { MaxNumber = DifficultySpec.Int("countdown", "max", v, 2, 1000) },
            ["mintarget"] = (d, v) => d with { MinTarget = DifficultySpec.Int("countdown", "mintarget", v, 1, 1_000_000) },
            ["target"] = (d, v) => d with { MaxTarget = DifficultySpec.Int("countdown", "target", v, 1, 1_000_000) },
            ["ops"] = (d, v) => d with { Operators = DifficultySpec.Operators("countdown", v, "+-*/") },
        }).Validated();

    private CountdownDifficulty Validated()
    {
        if (MinTarget > MaxTarget)
            throw new ArgumentException($"countdown: mintarget {MinTarget} exceeds target {MaxTarget}");
        if (!Operators.Contains('+') && !Operators.Contains('*'))
            throw new ArgumentException($"countdown: ops={Operators} needs + or * to reach targets above the numbers");
        return this;
    }
}

/// <summary>
/// Countdown (docs/design.md §7): reach the target from the given numbers, each used at most once, with the
/// allowed operators and parentheses. Prompt "Q: nums 3 7 25 50 target 78\nA: " (numbers in ascending
/// order); worked solution: the steps of a shortest solution found by search at generation time,
/// then "#### expression" (e.g. "25*3=75 75+7=82 82-4=78\n#### 25*3+7-4"). The reward accepts any valid
/// expression, checked exactly over the rationals: the marked answer (box, tags, "####", "the answer
/// is"), else the last non-empty line, optionally followed by "=target".
/// </summary>
internal sealed class CountdownTask : ITask
{
    private const int MaxDrawTries = 1000;

    private readonly long _seed;
    public CountdownDifficulty Difficulty { get; }

    public CountdownTask(long seed = 0, CountdownDifficulty? difficulty = null)
    {
        _seed = seed;
        Difficulty = difficulty ?? CountdownDifficulty.Presets[CountdownDifficulty.Default];
    }

    public string Name => "countdown";

    public long? Count(Split split) => null;

    private sealed record Instance(long[] Numbers, long Target, CountdownSolver.Node Construction);

    public Problem Get(Split split, long index)
    {
        var inst = InstanceSpace.Draw(Name, _seed, split, index, Draw, i => Statement(i.Numbers, i.Target));
        var solution = CountdownSolver.Solve(inst.Numbers, inst.Target, Difficulty.Operators, maxOps: inst.Construction.Steps.Count)
                       ?? inst.Construction;
        var id = $"countdown/{split.ToString().ToLowerInvariant()}/{index}";
        var prompt = $"Q: {Statement(inst.Numbers, inst.Target)}\nA: ";
        var columns = new System.Text.Json.Nodes.JsonObject
        {
            ["id"] = id, ["prompt"] = prompt, ["answer"] = solution.Text,
            ["numbers"] = new System.Text.Json.Nodes.JsonArray(inst.Numbers.Select(n => (System.Text.Json.Nodes.JsonNode?)n).ToArray()),
            ["target"] = inst.Target, ["operators"] = Difficulty.Operators,
        };
        return new Problem(id, prompt, solution.Text, $"{string.Join(' ', solution.Steps)}\n#### {solution.Text}", Columns: columns);
    }

    /// <summary>"nums 3 7 25 50 target 78": the canonical text of an instance.</summary>
    private static string Statement(long[] numbers, long target) => $"nums {string.Join(' ', numbers)} target {target}";

    /// <summary>Parses a prompt of this task back into its numbers and target; false for other text.</summary>
    public static bool TryParsePrompt(string prompt, out long[] numbers, out long target)
    {
        numbers = [];
        target = 0;
        var line = prompt.Split('\n')[0];
        if (line.StartsWith("Q: ", StringComparison.Ordinal)) line = line[3..];
        var words = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        int t = Array.IndexOf(words, "target");
        if (words.Length < 4 || words[0] != "nums" || t != words.Length - 2) return false;
        var parsed = new long[t - 1];
        for (int i = 1; i < t; i++) if (!long.TryParse(words[i], out parsed[i - 1])) return false;
        if (!long.TryParse(words[^1], out target)) return false;
        numbers = parsed;
        return true;
    }

    private Instance Draw(Rng rng)
    {
        var d = Difficulty;
        for (int tries = 0; tries < MaxDrawTries; tries++)
        {
            var numbers = new long[d.Numbers];
            for (int i = 0; i < numbers.Length; i++) numbers[i] = rng.Next(1, d.MaxNumber);
            Array.Sort(numbers);
            // a random expression tree over k >= 2 of the numbers gives a reachable target
            int k = (int)rng.Next(2, d.Numbers);
            var pool = numbers.OrderBy(_ => rng.NextUInt64()).Take(k).Select(CountdownSolver.Literal).ToList();
            while (pool.Count > 1)
            {
                int i = (int)rng.Next(0, pool.Count - 1);
                int j = (int)rng.Next(0, pool.Count - 2);
                if (j >= i) j++;
                var c = CountdownSolver.Combine(pool[i], d.Operators[(int)rng.Next(0, d.Operators.Length - 1)], pool[j]);
                if (c is null) break;
                pool = pool.Where((_, m) => m != i && m != j).Prepend(c).ToList();
            }
            if (pool.Count != 1) continue;
            long target = pool[0].Value;
            if (target < d.MinTarget || target > d.MaxTarget || Array.IndexOf(numbers, target) >= 0) continue;
            return new Instance(numbers, target, pool[0]);
        }
        throw new InvalidOperationException(
            $"countdown: no instance with a target in [{d.MinTarget}, {d.MaxTarget}] found in {MaxDrawTries} tries; widen the target range");
    }

    /// <summary>The marked answer, else the last line, as an expression that reaches the target (whether the completion finished does not change this reader).</summary>
    public Judgement Judge(Problem problem, string completion, bool finished = true) =>
        TryParsePrompt(problem.Prompt, out var numbers, out var target) ? Check(numbers, target, Difficulty.Operators, completion) : new Judgement(0.0);

    /// <summary>The countdown check: the marked answer, else the last line, is an expression over <paramref name="numbers"/> (each at most once) with <paramref name="operators"/> that reaches <paramref name="target"/>.</summary>
    public static Judgement Check(long[] numbers, long target, string operators, string completion)
    {
        if (string.IsNullOrEmpty(completion)) return new Judgement(0.0);
        var marked = AnswerExtractor.Find(completion, AnswerFormat.Marked, true, out var failed);
        var answer = marked?.Answer ?? LastLine(completion);
        var reward = answer is not null && CountdownExpression.Reaches(answer, numbers, target, operators) ? 1.0 : 0.0;
        return new Judgement(reward, marked?.Route ?? AnswerRoute.None, answer, MathVerifier.Describe(failed));
    }

    private static string? LastLine(string text)
    {
        var t = text.AsSpan().TrimEnd();
        var line = t[(t.LastIndexOf('\n') + 1)..].Trim();
        return line.IsEmpty ? null : line.ToString();
    }
}
