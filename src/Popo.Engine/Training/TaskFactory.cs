using Popo.Engine.Configuration;
using Popo.Engine.Tasks;

namespace Popo.Engine.Training;

/// <summary>The task a run trains and evaluates on: a JSONL dataset, or a built-in generated task.</summary>
public static class TaskFactory
{
    public static ITask Create(TrainConfig c) =>
        TaskRegistry.Create(c.Task, c.Difficulty == "default" ? null : c.Difficulty, c.Seed);
}
