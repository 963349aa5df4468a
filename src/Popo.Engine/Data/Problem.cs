namespace Popo.Engine.Data;

/// <summary>
/// One verifiable problem. <c>Answer</c> is the gold answer the reward compares against (for countdown,
/// one valid expression: any other valid one also earns the reward). <c>Solution</c> is a worked
/// solution ending in the final answer, for supervised warm-up, or null when the source has none.
/// <c>Messages</c> is the whole conversation of a TRL conversational prompt (system message kept; its last
/// user message is <c>Prompt</c>), rendered by the model's chat template; null for a plain prompt.
/// </summary>
public sealed record Problem(string Id, string Prompt, string Answer, string? Solution, IReadOnlyList<Popo.Engine.Tokenizers.ChatMessage>? Messages = null);

/// <summary>Training or held-out problems; a task's two splits never share a problem.</summary>
public enum Split
{
    /// <summary>The problems the run trains on.</summary>
    Train,
    /// <summary>The held-out problems evaluation uses.</summary>
    Test,
}
