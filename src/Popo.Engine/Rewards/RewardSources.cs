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
    /// <summary>The prefix of an external command's spec.</summary>
    public const string CommandPrefix = "command:";

    /// <summary>The function <paramref name="spec"/> names; a <see cref="RewardLoadException"/> when it cannot be loaded.
    /// A command's function owns processes: dispose it (it is <see cref="IAsyncDisposable"/>) when the run ends.</summary>
    public static IRewardFunction Load(string spec, RewardSourceOptions options)
    {
        ArgumentNullException.ThrowIfNull(spec);
        ArgumentNullException.ThrowIfNull(options);
        var trimmed = spec.Trim();
        if (trimmed.StartsWith(CommandPrefix, StringComparison.Ordinal))
            return CommandReward.Start(trimmed[CommandPrefix.Length..], options);
        int dll = trimmed.LastIndexOf(".dll:", StringComparison.OrdinalIgnoreCase);
        if (dll > 0)
            return AssemblyRewards.Load(trimmed[..(dll + 4)], trimmed[(dll + 5)..], options);
        if (trimmed.EndsWith(".dll", StringComparison.OrdinalIgnoreCase))
            return AssemblyRewards.Load(trimmed, null, options);
        if (trimmed.EndsWith(".fsx", StringComparison.OrdinalIgnoreCase))
            return ScriptRewards.Load(trimmed, options);
        throw new RewardLoadException(
            $"reward function '{spec}': expected a built-in name, FILE.dll:Namespace.Type (a class in a .NET assembly), " +
            $"FILE.fsx (an F# script) or {CommandPrefix}PROGRAM ARGS (an external command)");
    }

    /// <summary>An absolute path: <paramref name="path"/> as given when rooted, else under the options' base directory.</summary>
    internal static string Resolve(string path, RewardSourceOptions options) =>
        Path.GetFullPath(Path.IsPathRooted(path) ? path : Path.Combine(options.BaseDirectory, path));
}
