using Popo.Rewards;

namespace Popo.Engine.Rewards;

/// <summary>How user reward functions are loaded and run: specs are resolved against <paramref name="BaseDirectory"/>;
/// <paramref name="Timeout"/> bounds one call; <paramref name="Workers"/> bounds an external command's processes.</summary>
public sealed record RewardSourceOptions(string BaseDirectory, TimeSpan Timeout, int Workers, Action<string> Log);

/// <summary>A reward spec that cannot be loaded (file, type, compile error, command): the message names the spec and what was expected.</summary>
public sealed class RewardLoadException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// User reward functions from a spec (issue 30): <c>FILE.dll:Namespace.Type</c> (a class in a .NET assembly),
/// <c>FILE.fsx</c> (an F# script compiled in process once per run), <c>command:PROGRAM ARGS</c> (an external
/// process speaking JSON lines). Built-in names (accuracy, format, ...) are resolved before this is asked.
/// </summary>
public static class RewardSources
{
    /// <summary>The function <paramref name="spec"/> names; a <see cref="RewardLoadException"/> when it cannot be loaded.</summary>
    public static IRewardFunction Load(string spec, RewardSourceOptions options) =>
        throw new RewardLoadException($"reward function '{spec}': user reward functions are not wired yet");
}
