using Popo.Engine.Configuration;
using Popo.Engine.Data;
using Popo.Engine.Tasks;

namespace Popo.Engine.Training;

/// <summary>The task a run trains and evaluates on: a JSONL or Parquet dataset, or a built-in generated task.</summary>
public static class TaskFactory
{
    /// <summary>The task the configuration names (<c>dataset</c>, else <c>task</c> and <c>difficulty</c>).</summary>
    /// <param name="c">The run's configuration.</param>
    /// <param name="answerRequired">every dataset row must carry its gold answer (the run's reward functions include accuracy, or the caller evaluates by it).</param>
    public static ITask Create(TrainConfig c, bool answerRequired = true) => string.IsNullOrEmpty(c.Dataset)
        ? TaskRegistry.Create(c.Task, new TaskOptions { Seed = c.TaskSeed, Difficulty = c.Difficulty == "default" ? null : c.Difficulty })
        : TaskRegistry.Create("jsonl", new TaskOptions
        {
            Seed = c.TaskSeed,
            DatasetPath = c.Dataset,
            Dataset = new DatasetOptions
            {
                AnswerField = c.AnswerField == "" ? null : c.AnswerField, SkipBadLines = c.SkipBadLines, AnswerRequired = answerRequired,
                // qwen_math: the instruction is the system prompt (ConfigLoader sets it), so the user turn is the question alone.
                PromptTemplate = c.PromptTemplate == "qwen_math" ? "{question}" : null,
            },
            TrainFraction = c.TrainFraction > 0 ? c.TrainFraction : null,
            AnswerFormat = Popo.MathVerify.AnswerFormats.Parse(c.AnswerFormat),
        });
}
