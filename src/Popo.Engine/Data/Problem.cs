using System.Text.Json.Nodes;

namespace Popo.Engine.Data;

/// <summary>
/// One verifiable problem. <c>Answer</c> is the gold answer the task's check compares against (for countdown,
/// one valid expression: any other valid one also earns the reward); null for a dataset without an answer column,
/// which only reward functions that do not need it can score. <c>Solution</c> is a worked
/// solution ending in the final answer, for supervised warm-up, or null when the source has none.
/// <c>Messages</c> is the whole conversation of a TRL conversational prompt (system message kept; its last
/// user message is <c>Prompt</c>), rendered by the model's chat template; null for a plain prompt.
/// <c>Columns</c> is every column of the row as read (nested JSON kept), what reward functions receive; a built-in task's
/// row carries its own fields (id, prompt, answer and the task's, such as numbers and target). Two problems are equal
/// when their fields are, the conversation and the columns compared by content.
/// </summary>
public sealed record Problem(string Id, string Prompt, string? Answer, string? Solution, IReadOnlyList<Popo.Engine.Tokenizers.ChatMessage>? Messages = null,
                             JsonObject? Columns = null)
{
    /// <inheritdoc />
    public bool Equals(Problem? other) =>
        other is not null && Id == other.Id && Prompt == other.Prompt && Answer == other.Answer && Solution == other.Solution
        && (ReferenceEquals(Messages, other.Messages) || (Messages is not null && other.Messages is not null && Messages.SequenceEqual(other.Messages)))
        && JsonNode.DeepEquals(Columns, other.Columns);

    /// <inheritdoc />
    public override int GetHashCode() => HashCode.Combine(Id, Prompt, Answer, Solution);

    /// <summary>The columns a reward function sees: <see cref="Columns"/>, or for a problem built without them its id, prompt and answer.</summary>
    public JsonObject RewardColumns() =>
        Columns?.DeepClone().AsObject() ?? new JsonObject { ["id"] = Id, ["prompt"] = Prompt, ["answer"] = Answer };
}

/// <summary>Training or held-out problems; a task's two splits never share a problem.</summary>
public enum Split
{
    /// <summary>The problems the run trains on.</summary>
    Train,
    /// <summary>The held-out problems evaluation uses.</summary>
    Test,
}
