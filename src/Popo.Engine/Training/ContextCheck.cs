using Popo.Engine.Data;
using Popo.Engine.Tasks;

namespace Popo.Engine.Training;

/// <summary>A prompt plus max_new_tokens does not fit the model's context (max_position_embeddings).</summary>
public sealed class ContextLengthException(string message) : Exception(message);

/// <summary>
/// Every prompt plus max_new_tokens must fit the model's context: rotary positions past
/// max_position_embeddings run without error but on positions the model never learned. The preflight
/// checks a dataset whole (<see cref="PromptLimit"/>); each rollout prompt is checked again as it is drawn.
/// </summary>
internal static class ContextCheck
{
    public static void Prompt(ITask task, Problem problem, int promptTokens, int maxNewTokens, int context, string contextSource)
    {
        if (promptTokens + maxNewTokens <= context) return;
        var source = task is DatasetTask d ? d.Data.Path : $"task {task.Name}";
        throw new ContextLengthException(
            $"{source}: problem {problem.Id}: the prompt is {promptTokens} tokens; with max_new_tokens = {maxNewTokens} it needs " +
            $"{promptTokens + maxNewTokens} positions, more than the model's context of {context} ({contextSource}); " +
            "lower max_new_tokens or drop the long problems");
    }
}
