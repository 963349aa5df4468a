using System.Text.Json.Nodes;

namespace Popo.Rewards;

/// <summary>
/// One rollout as a reward function sees it: the prompt it answered, its decoded completion and token ids, whether it
/// ended with a stop token (<paramref name="Finished"/>; false when cut at the completion length), and every column of
/// its dataset row as read (nested JSON kept; a built-in task's row carries its id, prompt and answer).
/// <paramref name="Group"/> numbers the prompt within the batch: the G rollouts of one prompt share it and are contiguous.
/// </summary>
public sealed record RewardSample(int Group, string Prompt, string Completion, IReadOnlyList<int> CompletionIds, bool Finished, JsonObject Columns);
