using System.CommandLine;
using System.Text.Json;
using Popo.Cli.Reports;
using Popo.Engine.Configuration;
using Popo.Engine.Training;

namespace Popo.Cli.Commands;

/// <summary>
/// `popo compare`: one warm-up, then every algorithm x seed from that same checkpoint with the same
/// budget (steps x prompts x group size), then OUT/report.md with a table and plots.
/// </summary>
public static class CompareCommand
{
    public static Command Create()
    {
        var command = new Command("compare", "Train several algorithms from one warm-up checkpoint with equal budgets and write report.md");
        var algos = new Option<string>("--algos") { Description = "comma-separated algorithms", DefaultValueFactory = _ => "popo,grpo" };
        var seeds = new Option<int>("--seeds") { Description = "seeds per algorithm (1..N)", DefaultValueFactory = _ => 3 };
        var target = new Option<double?>("--target") { Description = "pass@1 to reach for the rollouts/time column (default: 90% of the best final mean)" };
        command.Options.Add(algos);
        command.Options.Add(seeds);
        command.Options.Add(target);
        var config = new ConfigOptions(command, e => e.Key is not ("algo" or "seed"));
        command.SetAction(parse => CommandRunner.Run(() =>
        {
            var names = parse.GetValue(algos)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            foreach (var a in names)
                if (!ConfigLoader.Presets.ContainsKey(a))
                    throw new ConfigException($"--algos: unknown algorithm '{a}'; valid: {string.Join(", ", ConfigLoader.Presets.Keys)}");
            int n = parse.GetValue(seeds);
            if (n is < 1 or > 100) throw new ConfigException($"--seeds: expected an integer in [1, 100], got {n}");
            var flags = config.Given(parse);
            var baseConfig = config.Resolve(parse);
            var root = baseConfig.Out;
            if (Directory.Exists(root) && Directory.EnumerateFileSystemEntries(root).Any())
                throw new ConfigException($"key 'out': {root} already holds files; choose another --out");
            var runConfigs = names.SelectMany(a => Enumerable.Range(1, n).Select(s => (Algo: a, Seed: s))).Select(r =>
                (r.Algo, r.Seed, Config: ConfigLoader.Resolve(parse.GetValue(config.ConfigFile), [.. flags,
                    ("algo", r.Algo), ("seed", r.Seed.ToString()), ("sft_steps", "0"),
                    ("model", Path.Combine(root, "warmup", "checkpoints", "warmup", "model")),
                    ("out", Path.Combine(root, $"{r.Algo}-seed{r.Seed}"))]))).ToList();   // all checked before any work

            using var observer = new ProgressObserver();
            observer.Log("warm-up (shared by every run)");
            var warm = Trainer.Start(baseConfig with { Steps = 0, Out = Path.Combine(root, "warmup") }, observer);
            var results = new List<RunResult>();
            foreach (var (algo, seed, runConfig) in runConfigs)
            {
                observer.Log($"{algo}, seed {seed}");
                var summary = Trainer.Start(runConfig, observer);
                results.Add(new RunResult(algo, seed, ReadMetrics(Path.Combine(runConfig.Out, "metrics.jsonl")), summary.Final.Pass1, warm.Warmup.Pass1));
            }
            double goal = parse.GetValue(target) ?? 0.9 * results.GroupBy(r => r.Algo).Max(g => g.Average(r => r.FinalPass1));
            CompareReport.Write(root, results, goal, "popo compare " + string.Join(' ', Environment.GetCommandLineArgs().Skip(2)));
            Console.Error.WriteLine($"done: {Path.Combine(root, "report.md")}");
            return 0;
        }));
        return command;
    }

    private static List<IReadOnlyDictionary<string, double>> ReadMetrics(string path) =>
        File.ReadAllLines(path).Where(l => l.Length > 0).Select(l =>
            (IReadOnlyDictionary<string, double>)JsonSerializer.Deserialize<Dictionary<string, double?>>(l)!
                .ToDictionary(kv => kv.Key, kv => kv.Value ?? double.NaN)).ToList();
}
