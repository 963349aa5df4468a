using System.Globalization;
using System.Text;
using ScottPlot;

namespace Popo.Cli.Reports;

/// <summary>One finished training run of a comparison: its algorithm, seed and per-step metrics.</summary>
public sealed record RunResult(string Algo, int Seed, IReadOnlyList<IReadOnlyDictionary<string, double>> Rows, double FinalPass1, double WarmupPass1);

/// <summary>
/// `popo compare`'s report: a Markdown table (final held-out pass@1 mean and spread per algorithm,
/// rollouts and wall time to reach a target pass rate) and PNG plots of training reward and held-out
/// pass@1 against rollouts and wall time.
/// </summary>
public static class CompareReport
{
    public static void Write(string folder, IReadOnlyList<RunResult> runs, double targetPass1, string command)
    {
        var plots = new[]
        {
            Plot(folder, runs, "reward_vs_rollouts.png", "rollouts", "reward_mean", "Training reward against rollouts"),
            Plot(folder, runs, "reward_vs_time.png", "wall_time", "reward_mean", "Training reward against wall time (s)"),
            Plot(folder, runs, "pass1_vs_rollouts.png", "rollouts", "eval_pass1", "Held-out pass@1 against rollouts"),
            Plot(folder, runs, "pass1_vs_time.png", "wall_time", "eval_pass1", "Held-out pass@1 against wall time (s)"),
        };

        var md = new StringBuilder();
        md.AppendLine("# Comparison").AppendLine();
        md.AppendLine($"Command: `{command}`").AppendLine();
        md.AppendLine($"Every algorithm starts from the same warm-up checkpoint (held-out pass@1 {F(runs.Average(r => r.WarmupPass1))}) with the same rollout budget.").AppendLine();
        md.AppendLine($"| algorithm | seeds | final pass@1 (mean ± std) | min | max | rollouts to pass@1 ≥ {F(targetPass1)} | wall time to it (s) |");
        md.AppendLine("| --- | --- | --- | --- | --- | --- | --- |");
        foreach (var group in runs.GroupBy(r => r.Algo))
        {
            var finals = group.Select(r => r.FinalPass1).ToArray();
            var reach = group.Select(r => FirstReaching(r.Rows, targetPass1)).ToArray();
            var reached = reach.Where(x => x is not null).Select(x => x!.Value).ToArray();
            string Reach(Func<(double Rollouts, double Time), double> pick) =>
                reached.Length == 0 ? "not reached" : $"{F(reached.Average(pick), 0)} ({reached.Length}/{reach.Length} seeds)";
            md.AppendLine($"| {group.Key} | {finals.Length} | {F(finals.Average())} ± {F(Std(finals))} | {F(finals.Min())} | {F(finals.Max())} | {Reach(x => x.Rollouts)} | {Reach(x => x.Time)} |");
        }
        md.AppendLine();
        foreach (var p in plots) md.AppendLine($"![{p}]({p})");
        File.WriteAllText(Path.Combine(folder, "report.md"), md.ToString());
    }

    /// <summary>Rollouts and wall time at the first evaluation whose pass@1 reaches the target.</summary>
    public static (double Rollouts, double Time)? FirstReaching(IReadOnlyList<IReadOnlyDictionary<string, double>> rows, double target)
    {
        foreach (var row in rows)
            if (row.TryGetValue("eval_pass1", out var p) && double.IsFinite(p) && p >= target)
                return (row["rollouts"], row["wall_time"]);
        return null;
    }

    private static string Plot(string folder, IReadOnlyList<RunResult> runs, string file, string xKey, string yKey, string title)
    {
        var plot = new Plot();
        var palette = new ScottPlot.Palettes.Category10();
        var algos = runs.Select(r => r.Algo).Distinct().ToList();
        foreach (var run in runs)
        {
            var points = run.Rows.Where(r => r.TryGetValue(yKey, out var y) && double.IsFinite(y) && r.ContainsKey(xKey))
                                 .Select(r => (X: r[xKey], Y: r[yKey])).ToList();
            if (yKey == "eval_pass1") points.Insert(0, (0, run.WarmupPass1));   // every run starts at the shared warm-up
            if (points.Count == 0) continue;
            var line = plot.Add.Scatter(points.Select(p => p.X).ToArray(), points.Select(p => p.Y).ToArray());
            line.Color = palette.GetColor(algos.IndexOf(run.Algo));
            line.MarkerSize = yKey == "eval_pass1" ? 5 : 0;
            line.LegendText = run.Seed == runs.Where(r => r.Algo == run.Algo).Min(r => r.Seed) ? run.Algo : "";
        }
        plot.Title(title);
        plot.XLabel(xKey == "wall_time" ? "wall time (s)" : "rollouts");
        plot.YLabel(yKey == "eval_pass1" ? "held-out pass@1" : "mean reward");
        plot.ShowLegend();
        plot.SavePng(Path.Combine(folder, file), 900, 540);
        return file;
    }

    private static double Std(double[] xs)
    {
        if (xs.Length < 2) return 0;
        double m = xs.Average();
        return Math.Sqrt(xs.Sum(x => (x - m) * (x - m)) / (xs.Length - 1));
    }

    private static string F(double v, int digits = 3) => v.ToString("F" + digits, CultureInfo.InvariantCulture);
}
