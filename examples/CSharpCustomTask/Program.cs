// Trains Popo's built-in small model on a task Popo does not know: "what is a + b?" problems made here, written as a
// JSONL dataset (any columns, here with the operands as extra columns), scored by a continuous reward defined here.
// Usage: dotnet run -- OUT_FOLDER [STEPS]
using System.Text.Json;
using Popo.Engine.Configuration;
using Popo.Engine.Training;
using Popo.Rewards;

var output = Path.GetFullPath(args.Length > 0 ? args[0] : "runs/csharp-custom-task");
var steps = args.Length > 1 ? args[1] : "4";
Directory.CreateDirectory(output);

// The task: 64 additions, each a MATH-shaped record (problem, answer, a worked solution for the warm-up).
var dataset = Path.Combine(output, "additions.jsonl");
var random = new Random(7);
File.WriteAllLines(dataset, Enumerable.Range(1, 64).Select(i =>
{
    int a = random.Next(10), b = random.Next(10);
    return JsonSerializer.Serialize(new
    {
        id = $"add-{i}", problem = $"{a}+{b}", answer = $"{a + b}", solution = $"{a}+{b}=\\boxed{{{a + b}}}", a, b,
    });
}));

// The same keys as `popo train` flags and config files; the built-in small model (no `model` key), a few steps.
var config = ConfigLoader.Resolve(null,
[
    ("dataset", dataset), ("out", Path.Combine(output, "run")), ("steps", steps),
    ("hidden_size", "32"), ("layers", "1"), ("heads", "2"), ("kv_heads", "1"), ("intermediate_size", "64"),
    ("sft_steps", "20"), ("sft_batch_size", "16"), ("prompts_per_step", "4"), ("group_size", "4"),
    ("max_new_tokens", "12"), ("eval_problems", "8"), ("eval_every", steps), ("save_every", steps),
    ("predictor_hidden", "16"), ("threads", "1"), ("seed", "1"),
]);

var summary = Trainer.Start(config, new ConsoleObserver(), [new Closeness()]);
Console.WriteLine($"done: {summary.Steps} steps, held-out pass@1 {summary.Warmup.Pass1:F3} -> {summary.Final.Pass1:F3}; metrics in {config.Out}/metrics.jsonl");

/// <summary>
/// A continuous reward: 1 for the right sum, less the further the completion's last number is from it, null when the
/// completion holds no number (the function does not apply). It reads the row's own columns (a and b).
/// </summary>
sealed class Closeness : RewardFunction
{
    public override string Name => "closeness";

    public override double? Score(RewardSample sample)
    {
        var digits = new string(sample.Completion.Reverse().SkipWhile(c => !char.IsDigit(c)).TakeWhile(char.IsDigit).Reverse().ToArray());
        if (digits.Length == 0 || !long.TryParse(digits, out var guess)) return null;
        var gold = sample.Columns["a"]!.GetValue<int>() + sample.Columns["b"]!.GetValue<int>();
        return 1.0 / (1.0 + Math.Abs(guess - gold));
    }
}

/// <summary>Prints each phase and every step's mean reward.</summary>
sealed class ConsoleObserver : ITrainingObserver
{
    public void Phase(string name, int totalSteps, int startStep) => Console.WriteLine($"{name}: {totalSteps} steps");
    public void Step(int step, IReadOnlyDictionary<string, double> metrics) =>
        Console.WriteLine(metrics.TryGetValue("reward_mean", out var r) ? $"  step {step}: reward_mean {r:F3}" : $"  step {step}");
    public void Log(string message) => Console.WriteLine(message);
}
