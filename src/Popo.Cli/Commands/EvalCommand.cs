using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Popo.Engine.Configuration;
using Popo.Engine.Training;
using Popo.MathVerify;
using Popo.Engine.Runtime;

namespace Popo.Cli.Commands;

/// <summary>
/// `popo eval`: pass@1, pass@k, mean@k and greedy accuracy of a model folder. With --dataset every problem of
/// the file is scored (train_fraction 0, all problems) unless those keys are given. Writes OUT/eval.json and
/// OUT/samples.jsonl (prompt, completion, extracted answer, gold, verdict per sample) into its own folder
/// (default runs/eval-TIMESTAMP; never a training run's folder) and prints the summary on stdout.
/// </summary>
public static class EvalCommand
{
    private static readonly HashSet<string> Keys =
    [
        "model", "adapter", "task", "difficulty", "dataset", "answer_field", "train_fraction", "skip_bad_lines", "task_seed",
        "eval_problems", "max_new_tokens", "max_prompt_length", "overlong_prompts", "prompt_template", "system_prompt", "temperature", "top_p", "top_k", "seed", "device", "dtype", "threads", "out",
    ];

    public static Command Create()
    {
        var command = new Command("eval", "Evaluate a model folder: every problem of --dataset FILE, or a built-in task's held-out split (pass@1, pass@k, mean@k, greedy)");
        var samples = new Option<int>("--samples") { Description = "k: samples per problem (default 4; with --protocol, the protocol's)" };
        command.Options.Add(samples);
        var protocol = new Option<string?>("--protocol")
        {
            Description = "a published evaluation protocol: aime (the POPO authors': 128 samples per problem at temperature 0.7, top_p 0.95, " +
                          "4096 new tokens; avg@128 and unbiased pass@k at k = 1, 2, 4, ..., 128); --samples and flags still win",
        };
        command.Options.Add(protocol);
        var config = new ConfigOptions(command, e => Keys.Contains(e.Key));
        command.SetAction(parse => CommandRunner.Run(() =>
        {
            var chosen = parse.GetValue(protocol) is { } name ? EvalProtocol.Get(name) : null;
            int k = parse.GetResult(samples) is { Implicit: false } ? parse.GetValue(samples) : chosen?.Samples ?? 4;
            if (k < 1 || k > 1024) throw new ConfigException($"--samples: expected an integer in [1, 1024], got {k}");
            var given = config.Given(parse);
            var forced = new List<(string, string)>();
            bool has(string key) => given.Any(g => g.Key == key);
            if (given.Any(g => g.Key == "dataset" && g.Value != ""))
            {
                if (!has("train_fraction")) forced.Add(("train_fraction", "0"));
                if (!has("eval_problems")) forced.Add(("eval_problems", "1000000"));
            }
            else if (!has("eval_problems") && (has("model") || has("adapter"))) forced.Add(("eval_problems", "256"));   // a --model run's default is no evaluation
            if (chosen is not null)
                foreach (var (key, value) in chosen.Keys)
                    if (!has(key)) forced.Add((key, value));
            if (!has("out")) forced.Add(("out", Path.Combine("runs", "eval-" + DateTime.UtcNow.ToString("yyyyMMdd-HHmmss", CultureInfo.InvariantCulture))));
            var c = config.Resolve(parse, [.. forced]);
            if (File.Exists(Path.Combine(c.Out, RunFolder.ConfigFile)) || Directory.Exists(Path.Combine(c.Out, "checkpoints")))
                throw new ConfigException($"key 'out': {c.Out} is a training run's folder; popo eval writes into its own folder (omit --out for runs/eval-TIMESTAMP)");
            var outFile = Path.Combine(c.Out, "eval.json");
            var samplesFile = Path.Combine(c.Out, "samples.jsonl");
            if (File.Exists(outFile) || File.Exists(samplesFile)) throw new ConfigException($"key 'out': {c.Out} already holds an evaluation; choose another --out");

            var records = new List<object>();
            var result = FolderEvaluation.Run(c, k, s => records.Add(new
            {
                problem = s.Problem.Id, sample = s.K < 0 ? "greedy" : s.K.ToString(CultureInfo.InvariantCulture), prompt = s.Problem.Prompt,
                completion = s.Completion, extracted = s.Judgement.Answer, gold = s.Problem.Answer, correct = s.Reward > 0,
            }));
            Directory.CreateDirectory(c.Out);
            Popo.Engine.Checkpoints.AtomicFile.WriteAllText(samplesFile, string.Concat(records.Select(r => JsonSerializer.Serialize(r) + "\n")));
            var summary = JsonSerializer.Serialize(new
            {
                model = c.Model, adapter = c.Adapter == "" ? null : c.Adapter, task = string.IsNullOrEmpty(c.Dataset) ? c.Task : c.Dataset, problems = result.Problems, k = result.Samples,
                pass_at_1 = result.Pass1, pass_at_k = result.PassK, mean_at_k = result.MeanK, greedy = result.Greedy,
                max_new_tokens = c.MaxNewTokens, temperature = c.Temperature, top_p = c.TopP, seed = c.Seed,
                protocol = chosen?.Name, avg_at_k = chosen is null ? (double?)null : result.MeanK,
                pass_at = chosen is null ? null : EvalProtocol.PowersOfTwo(result.Samples).ToDictionary(j => j.ToString(CultureInfo.InvariantCulture), j => result.PassCurve![j - 1]),
            }, new JsonSerializerOptions { WriteIndented = true });
            Popo.Engine.Checkpoints.AtomicFile.WriteAllText(outFile, summary);
            Console.Out.WriteLine(summary);
            if (chosen is not null)
                Console.Error.WriteLine($"{chosen.Name}: avg@{k} {result.MeanK:F4}; unbiased " +
                                        string.Join("  ", EvalProtocol.PowersOfTwo(result.Samples).Select(j => $"pass@{j} {result.PassCurve![j - 1]:F4}")));
            Console.Error.WriteLine($"pass@1 {result.Pass1:F3}  pass@{k} {result.PassK:F3}  mean@{k} {result.MeanK:F3}  greedy {result.Greedy:F3}  ({result.Problems} problems) -> {outFile}, {samplesFile}");
            return 0;
        }));
        return command;
    }
}
