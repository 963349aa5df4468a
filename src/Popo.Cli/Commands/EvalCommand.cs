using System.CommandLine;
using System.Text.Json;
using Popo.Engine.Configuration;
using Popo.Engine.Training;

namespace Popo.Cli.Commands;

/// <summary>`popo eval`: pass@1, pass@k and mean@k of a model folder on a held-out split, written to OUT/eval.json.</summary>
public static class EvalCommand
{
    private static readonly HashSet<string> Keys =
    [
        "model", "task", "difficulty", "dataset", "answer_field", "train_fraction", "skip_bad_lines", "task_seed",
        "eval_problems", "max_new_tokens", "temperature", "top_p", "top_k", "seed", "device", "dtype", "threads", "out",
    ];

    public static Command Create()
    {
        var command = new Command("eval", "Evaluate a model folder on a task's held-out split (pass@1, pass@k, mean@k)");
        var samples = new Option<int>("--samples") { Description = "k: samples per problem", DefaultValueFactory = _ => 4 };
        command.Options.Add(samples);
        var config = new ConfigOptions(command, e => Keys.Contains(e.Key));
        command.SetAction(parse => CommandRunner.Run(() =>
        {
            int k = parse.GetValue(samples);
            if (k < 1 || k > 1024) throw new ConfigException($"--samples: expected an integer in [1, 1024], got {k}");
            var c = config.Resolve(parse);
            var outFile = Path.Combine(c.Out, "eval.json");
            if (File.Exists(outFile)) throw new ConfigException($"key 'out': {outFile} already exists; choose another --out");
            var result = FolderEvaluation.Run(c, k);
            Directory.CreateDirectory(c.Out);
            Popo.Engine.Checkpoints.AtomicFile.WriteAllText(outFile, JsonSerializer.Serialize(new
            {
                model = c.Model, task = string.IsNullOrEmpty(c.Dataset) ? c.Task : c.Dataset, problems = result.Problems, k = result.Samples,
                pass_at_1 = result.Pass1, pass_at_k = result.PassK, mean_at_k = result.MeanK, greedy = result.Greedy,
            }, new JsonSerializerOptions { WriteIndented = true }));
            Console.Error.WriteLine($"pass@1 {result.Pass1:F3}  pass@{k} {result.PassK:F3}  mean@{k} {result.MeanK:F3}  greedy {result.Greedy:F3}  ({result.Problems} problems) -> {outFile}");
            return 0;
        }));
        return command;
    }
}
