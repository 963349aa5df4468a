using Popo.Engine.Data;

namespace Popo.Engine.Tasks;

/// <summary>Options for <see cref="TaskRegistry.Create"/>; each applies only to the tasks named beside it.</summary>
public sealed record TaskOptions
{
    /// <summary>Seed of the generated instances (arithmetic, countdown) or of the train/test cut (jsonl).</summary>
    public long Seed { get; init; }

    /// <summary>arithmetic, countdown: a preset name or key=value pairs (see each task's difficulty record).</summary>
    public string? Difficulty { get; init; }

    /// <summary>jsonl: the dataset file (required).</summary>
    public string? DatasetPath { get; init; }

    /// <summary>jsonl: how to read the file.</summary>
    public DatasetOptions? Dataset { get; init; }

    /// <summary>jsonl: share of the file used for training; null = the whole file is the test split.</summary>
    public double? TrainFraction { get; init; }

    /// <summary>jsonl: the answer marker a completion must use (default: marked).</summary>
    public Popo.MathVerify.AnswerFormat? AnswerFormat { get; init; }
}

/// <summary>Tasks by name; an unknown name, or an option the task does not use, is an error that says so.</summary>
public static class TaskRegistry
{
    /// <summary>The task names <see cref="Create"/> knows.</summary>
    public static IReadOnlyList<string> Names { get; } = ["arithmetic", "countdown", "jsonl"];

    /// <summary>The named task with these options; an unknown name or an option the task does not use throws <see cref="ArgumentException"/>.</summary>
    public static ITask Create(string name, TaskOptions? options = null)
    {
        options ??= new TaskOptions();
        switch (name)
        {
            case "arithmetic":
                Unused(name, options, dataset: true);
                return new ArithmeticTask(options.Seed, ArithmeticDifficulty.Parse(options.Difficulty));
            case "countdown":
                Unused(name, options, dataset: true);
                return new CountdownTask(options.Seed, CountdownDifficulty.Parse(options.Difficulty));
            case "jsonl":
                if (options.Difficulty is not null)
                    throw new ArgumentException($"task jsonl has no difficulty (got '{options.Difficulty}')");
                if (string.IsNullOrWhiteSpace(options.DatasetPath))
                    throw new ArgumentException("task jsonl needs a dataset path");
                return DatasetTask.FromFile(options.DatasetPath, options.Dataset, options.TrainFraction, options.Seed,
                                            options.AnswerFormat ?? Popo.MathVerify.AnswerFormat.Marked);
            default:
                throw new ArgumentException($"unknown task '{name}'; valid tasks: {string.Join(", ", Names)}");
        }
    }

    private static void Unused(string name, TaskOptions options, bool dataset)
    {
        if (dataset && (options.DatasetPath is not null || options.Dataset is not null || options.TrainFraction is not null || options.AnswerFormat is not null))
            throw new ArgumentException($"task {name} is generated: dataset path, dataset options, train fraction and answer format do not apply");
    }
}
