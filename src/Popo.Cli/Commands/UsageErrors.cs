using System.CommandLine;
using System.CommandLine.Parsing;

namespace Popo.Cli.Commands;

/// <summary>
/// Parse errors (unknown flags, missing or malformed arguments) as one `popo: error:` line each, with a
/// did-you-mean for an unknown flag, and the usage exit code <see cref="CommandRunner.Usage"/> for all of them.
/// </summary>
public static class UsageErrors
{
    public static int Report(ParseResult parse)
    {
        var command = parse.CommandResult.Command;
        var name = command.Parents.Any() ? $"popo {command.Name}" : "popo";
        var unknown = parse.UnmatchedTokens.ToHashSet();
        foreach (var token in parse.UnmatchedTokens)
            Console.Error.WriteLine(token.StartsWith('-')
                ? $"popo: error: unknown flag '{token}' for `{name}`{Suggest(token, command)}"
                : $"popo: error: unexpected argument '{token}' for `{name}`; see `{name} --help`");
        foreach (var error in parse.Errors.Where(e => !unknown.Any(t => e.Message.Contains($"'{t}'", StringComparison.Ordinal))))
            Console.Error.WriteLine($"popo: error: {error.Message} (see `{name} --help`)");
        return CommandRunner.Usage;
    }

    /// <summary>TRL GRPOConfig / TrainingArguments names a TRL user types, and popo's flag for each.</summary>
    private static readonly Dictionary<string, string> TrlNames = new()
    {
        ["--learning-rate"] = "--lr", ["--num-generations"] = "--group-size", ["--max-completion-length"] = "--max-new-tokens",
        ["--per-device-train-batch-size"] = "--micro-batch-size", ["--epsilon"] = "--eps-low", ["--epsilon-high"] = "--eps-high",
        ["--max-steps"] = "--steps", ["--output-dir"] = "--out", ["--max-grad-norm"] = "--grad-clip", ["--save-steps"] = "--save-every",
        ["--model-name-or-path"] = "--model",
    };

    private static string Suggest(string token, Command command)
    {
        var flag = token.Split('=')[0];
        if (TrlNames.TryGetValue(flag.Replace('_', '-'), out var ours) && command.Options.Any(o => o.Name == ours))
            return $"; did you mean '{ours}' (TRL's {flag.TrimStart('-').Replace('-', '_')})?";
        var names = command.Options.SelectMany(o => o.Aliases.Prepend(o.Name)).Concat(command.Subcommands.Select(s => s.Name)).Distinct().ToList();
        if (names.Count == 0) return "";
        var best = names.Select(n => (n, d: Popo.Engine.Configuration.ConfigSchema.Levenshtein(flag, n))).MinBy(x => x.d);
        return best.d <= Math.Max(2, flag.Length / 3) ? $"; did you mean '{best.n}'?" : $"; see `{(command.Parents.Any() ? "popo " + command.Name : "popo")} --help` for the flags";
    }
}
