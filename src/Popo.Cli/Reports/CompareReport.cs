using System.Globalization;
using System.Text;
using System.Text.Json;
using ScottPlot;

namespace Popo.Cli.Reports;

/// <summary>One arm of a comparison: an algorithm preset, or a named variant with its key overrides.</summary>
public sealed record Arm(string Name, (string Key, string Value)[] Overrides);

/// <summary>One finished training run: its arm, seed, per-step metrics and final held-out results.</summary>
public sealed record RunResult(string Arm, int Seed, IReadOnlyList<IReadOnlyDictionary<string, double>> Rows,
                               double FinalPass1, double FinalGreedy, long Rollouts, double[]? PassCurve);

/// <summary>Everything a `popo compare` run produced.</summary>
public sealed record Comparison(string Command, IReadOnlyList<Arm> Arms, double WarmupPass1, double[]? WarmupCurve,
                                IReadOnlyList<RunResult> Runs, double TargetPass1, double WallTime);

/// <summary>
/// `popo compare`'s report: report.md with the final held-out pass@1 per arm (mean ± sample std over
/// seeds), the rollouts and wall time to a target pass rate, and pass@k at the end; PNG plots of
/// training reward and held-out pass@1 against rollouts and wall time, and of pass@k against k;
/// compare.json with every number behind them.
/// </summary>
public static class CompareReport
{
    public static void Write(string folder, Comparison c)
    {
        var runs = c.Runs;
        var plots = new List<string>
        {
            Plot(folder, c, "reward_vs_rollouts.png", "rollouts", "reward_mean", "Training reward against rollouts"),
            Plot(folder, c, "reward_vs_time.png", "wall_time", "reward_mean", "Training reward against wall time (s)"),
            Plot(folder, c, "pass1_vs_rollouts.png", "rollouts", "eval_pass1", "Held-out pass@1 against rollouts"),
            Plot(folder, c, "pass1_vs_time.png", "wall_time", "eval_pass1", "Held-out pass@1 against wall time (s)"),
        };
        if (c.WarmupCurve is not null) plots.Add(PassAtKPlot(folder, c, "passk.png"));

        var md = new StringBuilder();
        md.AppendLine("# Comparison").AppendLine();
        md.AppendLine($"Command: `{c.Command}`").AppendLine();
        md.AppendLine($"Wall time: {c.WallTime / 60:F1} min. Every arm starts from the same warm-up checkpoint (held-out pass@1 {F(c.WarmupPass1)}); " +
                      "mean ± sample standard deviation over seeds.").AppendLine();
        if (c.WarmupCurve is { } curve)
            md.AppendLine($"Final pass@1 and greedy come from the final evaluation with {curve.Length} samples per problem; the curves and " +
                          "the rollouts-to-target column from the evaluations during training.").AppendLine();
        md.AppendLine($"| arm | keys | seeds | rollouts | final pass@1 | min | max | greedy | rollouts to pass@1 ≥ {F(c.TargetPass1)} | wall time to it (s) |");
        md.AppendLine("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
        foreach (var arm in c.Arms)
        {
            var group = runs.Where(r => r.Arm == arm.Name).ToList();
            var finals = group.Select(r => r.FinalPass1).ToArray();
            var reach = group.Select(r => FirstReaching(r.Rows, c.TargetPass1)).ToArray();
            var reached = reach.Where(x => x is not null).Select(x => x!.Value).ToArray();
            string Reach(Func<(double Rollouts, double Time), double> pick) =>
                reached.Length == 0 ? "not reached" : $"{F(reached.Average(pick), 0)} ({reached.Length}/{reach.Length} seeds)";
            md.AppendLine($"| {arm.Name} | {Keys(arm)} | {finals.Length} | {group.Average(r => r.Rollouts):F0} | {F(finals.Average())} ± {F(Std(finals))} | " +
                          $"{F(finals.Min())} | {F(finals.Max())} | {F(group.Average(r => r.FinalGreedy))} | {Reach(x => x.Rollouts)} | {Reach(x => x.Time)} |");
        }
        md.AppendLine();
        if (c.WarmupCurve is { } warmCurve)
        {
            var ks = PowersOfTwo(warmCurve.Length);
            md.AppendLine($"Held-out pass@k at the end ({warmCurve.Length} samples per problem, unbiased estimator, mean over seeds):").AppendLine();
            md.AppendLine("| arm | " + string.Join(" | ", ks.Select(k => $"pass@{k}")) + " |");
            md.AppendLine("| --- |" + string.Concat(ks.Select(_ => " --- |")));
            md.AppendLine("| warm-up | " + string.Join(" | ", ks.Select(k => F(warmCurve[k - 1]))) + " |");
            foreach (var arm in c.Arms)
            {
                var armCurve = MeanCurve(runs, arm.Name);
                md.AppendLine($"| {arm.Name} | " + string.Join(" | ", ks.Select(k => F(armCurve[k - 1]))) + " |");
            }
            md.AppendLine();
        }
        foreach (var p in plots) md.AppendLine($"![{p}]({p})");
        File.WriteAllText(Path.Combine(folder, "report.md"), md.ToString());
        File.WriteAllText(Path.Combine(folder, "compare.json"), Json(c));
    }

    /// <summary>Rollouts and wall time at the first evaluation whose pass@1 reaches the target.</summary>
    public static (double Rollouts, double Time)? FirstReaching(IReadOnlyList<IReadOnlyDictionary<string, double>> rows, double target)
    {
        foreach (var row in rows)
            if (row.TryGetValue("eval_pass1", out var p) && double.IsFinite(p) && p >= target)
                return (row["rollouts"], row["wall_time"]);
        return null;
    }

    private static string Json(Comparison c) => JsonSerializer.Serialize(new
    {
        command = c.Command, wall_time = c.WallTime, target_pass1 = c.TargetPass1,
        warmup = new { pass1 = c.WarmupPass1, pass_curve = c.WarmupCurve },
        arms = c.Arms.Select(arm => new
        {
            name = arm.Name, keys = arm.Overrides.ToDictionary(o => o.Key, o => o.Value),
            runs = c.Runs.Where(r => r.Arm == arm.Name).Select(r => new
            {
                seed = r.Seed, final_pass1 = r.FinalPass1, final_greedy = r.FinalGreedy, rollouts = r.Rollouts, pass_curve = r.PassCurve,
                rollouts_to_target = FirstReaching(r.Rows, c.TargetPass1)?.Rollouts,
                eval = r.Rows.Where(row => double.IsFinite(row.GetValueOrDefault("eval_pass1", double.NaN)))
                             .Select(row => new { rollouts = row["rollouts"], wall_time = row["wall_time"], pass1 = row["eval_pass1"] }),
            }),
        }),
    }, new JsonSerializerOptions { WriteIndented = true });

    private static string Plot(string folder, Comparison c, string file, string xKey, string yKey, string title)
    {
        var plot = new Plot();
        var palette = new ScottPlot.Palettes.Category10();
        var names = c.Arms.Select(a => a.Name).ToList();
        foreach (var run in c.Runs)
        {
            var points = run.Rows.Where(r => r.TryGetValue(yKey, out var y) && double.IsFinite(y) && r.ContainsKey(xKey))
                                 .Select(r => (X: r[xKey], Y: r[yKey])).ToList();
            if (yKey == "eval_pass1") points.Insert(0, (0, c.WarmupPass1));   // every run starts at the shared warm-up
            if (points.Count == 0) continue;
            var line = plot.Add.Scatter(points.Select(p => p.X).ToArray(), points.Select(p => p.Y).ToArray());
            line.Color = palette.GetColor(names.IndexOf(run.Arm));
            line.MarkerSize = yKey == "eval_pass1" ? 5 : 0;
            line.LegendText = run.Seed == c.Runs.Where(r => r.Arm == run.Arm).Min(r => r.Seed) ? run.Arm : "";
        }
        plot.Title(title);
        plot.XLabel(xKey == "wall_time" ? "wall time (s)" : "rollouts");
        plot.YLabel(yKey == "eval_pass1" ? "held-out pass@1" : "mean reward");
        plot.ShowLegend();
        plot.SavePng(Path.Combine(folder, file), 900, 540);
        return file;
    }

    private static string PassAtKPlot(string folder, Comparison c, string file)
    {
        var plot = new Plot();
        var palette = new ScottPlot.Palettes.Category10();
        // k on a log2 axis: pass@k curves to k = 256 bend where k is small.
        var ks = Enumerable.Range(1, c.WarmupCurve!.Length).Select(k => Math.Log2(k)).ToArray();
        var ticks = new ScottPlot.TickGenerators.NumericManual();
        foreach (var k in PowersOfTwo(c.WarmupCurve.Length)) ticks.AddMajor(Math.Log2(k), k.ToString(CultureInfo.InvariantCulture));
        plot.Axes.Bottom.TickGenerator = ticks;
        var warm = plot.Add.Scatter(ks, c.WarmupCurve);
        warm.Color = Colors.Gray;
        warm.LinePattern = LinePattern.Dashed;
        warm.LegendText = "warm-up";
        for (int i = 0; i < c.Arms.Count; i++)
        {
            var line = plot.Add.Scatter(ks, MeanCurve(c.Runs, c.Arms[i].Name));
            line.Color = palette.GetColor(i);
            line.LegendText = c.Arms[i].Name;
        }
        plot.Title("Held-out pass@k at the end (mean over seeds)");
        plot.XLabel("k (log scale)");
        plot.YLabel("pass@k");
        plot.ShowLegend();
        plot.SavePng(Path.Combine(folder, file), 900, 540);
        return file;
    }

    private static double[] MeanCurve(IReadOnlyList<RunResult> runs, string arm)
    {
        var curves = runs.Where(r => r.Arm == arm).Select(r => r.PassCurve!).ToList();
        return Enumerable.Range(0, curves[0].Length).Select(j => curves.Average(cv => cv[j])).ToArray();
    }

    private static int[] PowersOfTwo(int max) =>
        Enumerable.Range(0, 31).Select(e => 1 << e).TakeWhile(k => k <= max).Append(max).Distinct().ToArray();

    private static string Keys(Arm arm) =>
        string.Join(", ", arm.Overrides.Where(o => !(o.Key == "algo" && o.Value == arm.Name)).Select(o => $"{o.Key}={o.Value}")) is { Length: > 0 } s ? s : "preset";

    private static double Std(double[] xs)
    {
        if (xs.Length < 2) return 0;
        double m = xs.Average();
        return Math.Sqrt(xs.Sum(x => (x - m) * (x - m)) / (xs.Length - 1));
    }

    private static string F(double v, int digits = 3) => v.ToString("F" + digits, CultureInfo.InvariantCulture);
}
