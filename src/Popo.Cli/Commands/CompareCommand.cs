using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using System.Text.RegularExpressions;
using Popo.Cli.Reports;
using Popo.Engine.Configuration;
using Popo.Engine.Training;
using Popo.Engine.Runtime;

namespace Popo.Cli.Commands;

/// <summary>
/// `popo compare`: one warm-up, then every arm (an algorithm, or a named variant: a preset plus key
/// overrides) x seed from that same checkpoint, then a final pass@k evaluation of each run, then
/// OUT/report.md (tables and plots) and OUT/compare.json (every number behind them).
/// </summary>
public static partial class CompareCommand
{
    public static Command Create()
    {
        var command = new Command("compare", "Train several algorithms or variants from one warm-up checkpoint with equal budgets and write report.md");
        var algos = new Option<string>("--algos") { Description = "comma-separated algorithms (default popo,grpo when no --variant is given)" };
        var variants = new Option<string[]>("--variant")
        {
            Description = "NAME:key=value,key=value (repeatable): an arm with its own keys over the shared ones, e.g. no_sim:algo=popo,alpha=0",
            AllowMultipleArgumentsPerToken = false,
        };
        var seeds = new Option<int>("--seeds") { Description = "seeds per arm (1..N)", DefaultValueFactory = _ => 3 };
        var target = new Option<double?>("--target") { Description = "pass@1 to reach for the rollouts/time column (default: 90% of the best final mean)" };
        var passk = new Option<int>("--passk") { Description = "samples per problem of the final pass@k evaluation (k = 1..N; 0 = none)", DefaultValueFactory = _ => 16 };
        command.Options.Add(algos);
        command.Options.Add(variants);
        command.Options.Add(seeds);
        command.Options.Add(target);
        command.Options.Add(passk);
        var config = new ConfigOptions(command, e => e.Key is not ("algo" or "seed"));
        command.SetAction(parse => CommandRunner.Run(() =>
        {
            var arms = Arms(parse.GetValue(algos), parse.GetValue(variants) ?? []);
            int n = parse.GetValue(seeds);
            if (n is < 1 or > 100) throw new ConfigException($"--seeds: expected an integer in [1, 100], got {n}");
            int k = parse.GetValue(passk);
            if (k is < 0 or > 1024) throw new ConfigException($"--passk: expected an integer in [0, 1024], got {k}");
            var flags = config.Given(parse);
            var baseConfig = config.Resolve(parse);
            var root = baseConfig.Out;
            if (Directory.Exists(root) && Directory.EnumerateFileSystemEntries(root).Any())
                throw new ConfigException($"key 'out': {root} already holds files; choose another --out");
            var warmModel = Path.Combine(root, "warmup", "checkpoints", "warmup", "model");
            var runConfigs = arms.SelectMany(a => Enumerable.Range(1, n).Select(s => (Arm: a, Seed: s))).Select(r =>
                (r.Arm, r.Seed, Config: Resolve(config.Files(parse), r.Arm, baseConfig.Model, [.. flags, .. r.Arm.Overrides,
                    ("seed", r.Seed.ToString()), ("sft_steps", "0"), ("model", warmModel),
                    ("out", Path.Combine(root, $"{r.Arm.Name}-seed{r.Seed}"))]))).ToList();   // all checked before any work

            var clock = Stopwatch.StartNew();
            using var observer = new ProgressObserver();
            observer.Log("warm-up (shared by every run)");
            var warm = Trainer.Start(baseConfig with { Steps = 0, Out = Path.Combine(root, "warmup") }, observer);
            var warmFinal = k > 0 ? FolderEvaluation.Run(baseConfig with { Model = warmModel }, k) : warm.Warmup;
            var results = new List<RunResult>();
            foreach (var (arm, seed, runConfig) in runConfigs)
            {
                observer.Log($"{arm.Name}, seed {seed}");
                var summary = Trainer.Start(runConfig, observer);
                // The final evaluation with k samples per problem measures pass@1 more precisely than the trainer's.
                var finalConfig = summary.FinalAdapter ? runConfig with { Adapter = summary.FinalCheckpoint } : runConfig with { Model = Path.Combine(summary.FinalCheckpoint, "model") };
                var final = k > 0 ? FolderEvaluation.Run(finalConfig, k) : summary.Final;
                results.Add(new RunResult(arm.Name, seed, ReadMetrics(Path.Combine(runConfig.Out, "metrics.jsonl")),
                    final.Pass1, final.Greedy, summary.Rollouts, k > 0 ? final.PassCurve : null));
            }
            double goal = parse.GetValue(target) ?? 0.9 * results.GroupBy(r => r.Arm).Max(g => g.Average(r => r.FinalPass1));
            var commandLine = "popo compare " + string.Join(' ', Environment.GetCommandLineArgs().Skip(2).Select(Quote));
            CompareReport.Write(root, new Comparison(commandLine, arms, warmFinal.Pass1, k > 0 ? warmFinal.PassCurve : null, results, goal, clock.Elapsed.TotalSeconds));
            Console.Error.WriteLine($"done in {clock.Elapsed.TotalMinutes:F1} min: {Path.Combine(root, "report.md")}");
            return 0;
        }));
        return command;
    }

    /// <summary>The arms: each --algos name is its preset; each --variant is NAME:key=value,...</summary>
    private static List<Arm> Arms(string? algos, string[] variants)
    {
        var arms = new List<Arm>();
        var names = algos ?? (variants.Length == 0 ? "popo,grpo" : "");
        foreach (var a in names.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (!ConfigLoader.Presets.ContainsKey(a))
                throw new ConfigException($"--algos: unknown algorithm '{a}'; valid: {string.Join(", ", ConfigLoader.Presets.Keys)}");
            arms.Add(new Arm(a, [("algo", a)]));
        }
        foreach (var v in variants)
        {
            var colon = v.IndexOf(':');
            var name = colon < 0 ? v : v[..colon];
            if (colon < 0 || !ArmName().IsMatch(name))
                throw new ConfigException($"--variant '{v}': expected NAME:key=value,key=value with NAME of letters, digits, '_', '-' or '.'");
            var overrides = v[(colon + 1)..].Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(pair =>
            {
                var eq = pair.IndexOf('=');
                if (eq <= 0) throw new ConfigException($"--variant '{v}': '{pair}' is not key=value");
                var key = pair[..eq].Trim();
                if (key is "seed" or "out" or "model" or "sft_steps")
                    throw new ConfigException($"--variant '{v}': key '{key}' is set by compare itself");
                return (key, pair[(eq + 1)..].Trim());
            }).ToArray();
            arms.Add(new Arm(name, overrides));
        }
        if (arms.Count == 0) throw new ConfigException("--algos/--variant: nothing to compare");
        var twice = arms.GroupBy(a => a.Name).FirstOrDefault(g => g.Count() > 1);
        if (twice is not null) throw new ConfigException($"--algos/--variant: arm '{twice.Key}' is named twice");
        return arms;
    }

    /// <summary>An arm's keys: the run kind (built-in or pretrained defaults) is the comparison's, not that of the warm-up checkpoint it starts from.</summary>
    private static TrainConfig Resolve(IReadOnlyList<string> files, Arm arm, string runKindModel, List<(string Key, string Value)> flags)
    {
        try { return ConfigLoader.ResolveLayered(files, flags, runKindModel); }
        catch (ConfigException e) { throw new ConfigException($"arm '{arm.Name}': {e.Message}"); }
    }

    private static string Quote(string arg) => arg.Length > 0 && arg.All(c => char.IsLetterOrDigit(c) || "-_.,:=/".Contains(c)) ? arg : $"'{arg}'";

    private static List<IReadOnlyDictionary<string, double>> ReadMetrics(string path) =>
        File.ReadAllLines(path).Where(l => l.Length > 0).Select(l =>
            (IReadOnlyDictionary<string, double>)JsonSerializer.Deserialize<Dictionary<string, double?>>(l)!
                .ToDictionary(kv => kv.Key, kv => kv.Value ?? double.NaN)).ToList();

    [GeneratedRegex("^[A-Za-z0-9_.-]+$")]
    private static partial Regex ArmName();
}
