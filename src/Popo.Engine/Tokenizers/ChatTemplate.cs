using System.Text;

namespace Popo.Engine.Tokenizers;

/// <summary>One message of a chat: role ("system", "user", "assistant") and content.</summary>
public sealed record ChatMessage(string Role, string Content);

/// <summary>
/// The Qwen (ChatML) prompt format: each message as "&lt;|im_start|&gt;{role}\n{content}&lt;|im_end|&gt;\n", then
/// "&lt;|im_start|&gt;assistant\n" when a generation prompt is asked for. No default system message is added.
/// </summary>
internal static class ChatTemplate
{
    public const string ImStart = "<|im_start|>";
    public const string ImEnd = "<|im_end|>";

    public static string Qwen(IEnumerable<ChatMessage> messages, bool addGenerationPrompt = true)
    {
        var text = new StringBuilder();
        foreach (var m in messages) text.Append(ImStart).Append(m.Role).Append('\n').Append(m.Content).Append(ImEnd).Append('\n');
        if (addGenerationPrompt) text.Append(ImStart).Append("assistant\n");
        return text.ToString();
    }

    /// <summary>A single user turn (after an optional system turn), ready for the assistant's reply.</summary>
    public static string QwenUserPrompt(string user, string? system = null) =>
        Qwen(system is null ? [new ChatMessage("user", user)] : [new ChatMessage("system", system), new ChatMessage("user", user)]);
}
