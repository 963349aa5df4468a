using System.Diagnostics;
using System.Text;
using System.Text.Json;
using Popo.MathVerify;

namespace Popo.Bench;

/// <summary>
/// `popo bench --only verify`: the math verifier's speed on realistic completions (GSM8K worked solutions
/// with their "#### N" line, and MATH-500 / AMC / AIME gold answers written as a model writes them: a short
/// derivation, then "so the answer is \boxed{X}", checked against the gold and against a wrong gold), and its
/// worst cases on adversarial inputs. The data is ../shared/data beside the repository or POPO_SHARED_DATA;
/// without it the realistic rows are skipped with a note.
/// </summary>
internal static class VerifierBench
{
    public static BenchSection Run(bool quick)
    {
        var s = new BenchSection("verify", "Math verifier: verifications per second on real completions, and adversarial worst cases");
        var cases = RealCases();
        if (cases.Count == 0) s.Notes.Add("real data absent (no ../shared/data and no POPO_SHARED_DATA): realistic rows skipped");
        else
        {
            int rounds = quick ? 1 : 5;
            foreach (var (format, name) in new[] { (AnswerFormat.Marked, "marked"), (AnswerFormat.Any, "any") })
            {
                foreach (var (c, g) in cases) MathVerifier.Verify(c, g, format); // warm-up
                var perCall = new double[cases.Count];
                Array.Fill(perCall, double.PositiveInfinity);
                var total = Stopwatch.StartNew();
                double cpu0 = BenchClock.ProcessCpuSeconds();
                int calls = 0, correct = 0;
                for (int r = 0; r < rounds; r++)
                    for (int i = 0; i < cases.Count; i++)
                    {
                        long t0 = Stopwatch.GetTimestamp();
                        var v = MathVerifier.Verify(cases[i].Completion, cases[i].Gold, format);
                        double us = Stopwatch.GetElapsedTime(t0).TotalMicroseconds;
                        perCall[i] = Math.Min(perCall[i], us);
                        calls++;
                        if (v.Correct && r == 0) correct++;
                    }
                double wall = total.Elapsed.TotalSeconds;
                double cpu = BenchClock.ProcessCpuSeconds() - cpu0;
                Array.Sort(perCall);
                s.Rows.Add(new Dictionary<string, object>
                {
                    ["input"] = $"real completions ({name})",
                    ["calls"] = calls,
                    ["verified_share"] = correct / (double)cases.Count,
                    ["per_s"] = calls / wall,
                    ["median_us"] = perCall[perCall.Length / 2],
                    ["p99_us"] = perCall[(int)(perCall.Length * 0.99)],
                    ["max_us"] = perCall[^1],
                    ["cpu_us_per_call"] = 1e6 * cpu / calls,
                });
            }
        }
        foreach (var (name, completion, gold, expect) in Adversarial())
        {
            var verdict = MathVerifier.Verify(completion, gold, AnswerFormat.Any);
            // warm-up: the steady state (tier-1 JIT) is what a training run sees after its first rollouts
            for (int w = 0; w < (quick ? 2 : 40); w++) MathVerifier.Verify(completion, gold, AnswerFormat.Any);
            var span = BenchClock.Best(quick ? 2 : 5, () => MathVerifier.Verify(completion, gold, AnswerFormat.Any));
            double best = span.Wall * 1e6;
            s.Rows.Add(new Dictionary<string, object>
            {
                ["input"] = $"{name} ({completion.Length} chars)",
                ["calls"] = 1,
                ["verified_share"] = verdict.Correct ? 1.0 : 0.0,
                ["per_s"] = 1e6 / best,
                ["median_us"] = best,
                ["p99_us"] = best,
                ["max_us"] = best,
                ["cpu_us_per_call"] = span.Cpu * 1e6,
            });
            if (verdict.Correct != expect) s.Notes.Add($"WRONG VERDICT on {name}: {verdict.Correct}, expected {expect}");
        }
        s.Notes.Add("realistic rows: per-call time is the best of the rounds for each completion; per_s is all calls over the wall time; cpu_us_per_call is process CPU time per call (the honest figure on a loaded machine). " +
                    "Adversarial rows: the best of 5 repeats after 40 warm-up calls (verified_share 1 = the verdict was EQUAL).");
        return s;
    }

    public static List<(string Completion, string Gold)> RealCases()
    {
        var dir = DataFolder();
        var cases = new List<(string, string)>();
        if (dir is null) return cases;
        foreach (var line in File.ReadLines(Path.Combine(dir, "gsm8k", "test.jsonl")))
        {
            if (string.IsNullOrWhiteSpace(line)) continue;
            using var doc = JsonDocument.Parse(line);
            var solution = doc.RootElement.GetProperty("answer").GetString()!;
            var gold = solution[(solution.LastIndexOf("####", StringComparison.Ordinal) + 4)..].Trim();
            cases.Add((solution, gold));
        }
        var golds = new List<string>();
        foreach (var name in new[] { "math500", "amc2023", "aime24", "aime25" })
            foreach (var line in File.ReadLines(Path.Combine(dir, name, "test.jsonl")))
            {
                if (string.IsNullOrWhiteSpace(line)) continue;
                using var doc = JsonDocument.Parse(line);
                var a = doc.RootElement.GetProperty("answer");
                golds.Add(a.ValueKind == JsonValueKind.String ? a.GetString()! : a.GetRawText());
            }
        for (int i = 0; i < golds.Count; i++)
        {
            var completion = $"Let me work through this. Expanding and simplifying step by step, $x = {i % 7} + {i % 5}$, " +
                             $"then substituting back gives the value below.\nSo the answer is $\\boxed{{{golds[i]}}}$.";
            cases.Add((completion, golds[i]));
            cases.Add((completion, golds[(i + 1) % golds.Count])); // a wrong gold: the "not equal" path
        }
        return cases;
    }

    private static string? DataFolder()
    {
        var env = Environment.GetEnvironmentVariable("POPO_SHARED_DATA");
        if (!string.IsNullOrWhiteSpace(env) && File.Exists(Path.Combine(env, "gsm8k", "test.jsonl"))) return env;
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "Popo.sln")))
            {
                var p = Path.Combine(d.FullName, "..", "shared", "data");
                return File.Exists(Path.Combine(p, "gsm8k", "test.jsonl")) ? p : null;
            }
        return null;
    }

    public static List<(string Name, string Completion, string Gold, bool Expect)> Adversarial()
    {
        const int mib = 1 << 20;
        var list = new List<(string, string, string, bool)>
        {
            ("1 MiB nested braces in \\boxed{, closed", "\\boxed{" + new string('{', mib / 2) + new string('}', mib / 2) + "}", "5", false),
            ("1 MiB nested braces in \\boxed{, unclosed", "\\boxed{" + new string('{', mib), "5", false),
            ("10^6 digits boxed", "\\boxed{" + new string('7', 1_000_000) + "}", "7", false),
            ("10^6 digits, no marker", "so it is " + new string('7', 1_000_000), "7", false),
            ("100,000-deep \\frac", "\\boxed{" + string.Concat(Enumerable.Repeat("\\frac{1}{", 100_000)) + "2" + new string('}', 100_000) + "}", "2", false),
        };
        var items = Enumerable.Range(1, 64).Select(i => $"\\frac{{{i}}}{{{i + 1}}}+\\sqrt{{{i}}}").ToArray();
        var shuffled = items.OrderBy(x => x.GetHashCode() ^ 0x5f3759df).ToArray();
        var rnd = new Random(3);
        for (int i = shuffled.Length - 1; i > 0; i--) { int j = rnd.Next(i + 1); (shuffled[i], shuffled[j]) = (shuffled[j], shuffled[i]); }
        list.Add(("64-element list permuted (EQUAL)", "so the answer is \\boxed{" + string.Join(", ", shuffled) + "}", string.Join(", ", items), true));
        var numbers = Enumerable.Range(1, 64).Select(i => (i * 37 % 101).ToString()).ToArray();
        list.Add(("64-element set of integers reversed (EQUAL)", "\\boxed{\\{" + string.Join(",", numbers.Reverse()) + "\\}}", "\\{" + string.Join(",", numbers) + "\\}", true));
        var sb = new StringBuilder();
        var r2 = new Random(5);
        for (int i = 0; i < mib; i++) sb.Append((char)r2.Next(32, 127));
        list.Add(("1 MiB random printable ASCII", sb.ToString(), "5", false));
        // the rules of issue 33 at their largest: a chain judged by its last side, a relation rearranged,
        // boxes linked by text, a set with repeats
        list.Add(("600-link chain of equalities (EQUAL)", "\\boxed{x = " + string.Join(" = ", Enumerable.Repeat("3+4", 599)) + " = 7}", "7", true));
        var terms = Enumerable.Range(1, 24).Select(i => $"{i}x_{{{i}}}").ToArray();
        list.Add(("24-variable linear equation negated and scaled (EQUAL)", "\\boxed{" + string.Join(" + ", terms) + " = 5}",
            string.Join(" ", Enumerable.Range(1, 24).Select(i => $"- {2 * i}x_{{{i}}}")) + " + 10 = 0", true));
        list.Add(("1 MiB of boxes linked by text", string.Concat(Enumerable.Repeat("\\boxed{1} for part (a) and ", mib / 27)), "2", false));
        list.Add(("64-element set with every element twice (EQUAL)", "\\boxed{\\{" + string.Join(",", numbers.Concat(numbers)) + "\\}}", "\\{" + string.Join(",", numbers) + "\\}", true));
        return list;
    }
}
