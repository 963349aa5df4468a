using System.CommandLine;
using Popo.Engine.Configuration;

namespace Popo.Cli.Commands;

/// <summary>
/// One command-line flag per configuration key (--kebab-case of the key), generated from the schema so
/// every key a config file accepts can be overridden on the command line, plus --config FILE.
/// </summary>
internal sealed class ConfigOptions
{
    private readonly List<(ConfigEntry Entry, Option Option)> options = [];

    public Option<string?> ConfigFile { get; } = new("--config") { Description = "TOML or JSON file of configuration keys (flags override it)" };

    public ConfigOptions(Command command, Func<ConfigEntry, bool>? include = null)
    {
        command.Options.Add(ConfigFile);
        foreach (var entry in ConfigSchema.Entries.Where(include ?? (_ => true)))
        {
            Option option = entry.Type == typeof(bool)
                ? new Option<bool>(entry.Flag) { Description = $"{entry.Help} ({Defaults(entry)})" }
                : new Option<string>(entry.Flag) { Description = $"{entry.Help} ({entry.Describe()}; {Defaults(entry)})", HelpName = entry.Key };
            command.Options.Add(option);
            options.Add((entry, option));
        }
    }

    private static readonly TrainConfig BuiltIn = new();

    /// <summary>"default X" for the built-in run, plus "with --model: Y (source)" where a pretrained run differs or follows TRL.</summary>
    public static string Defaults(ConfigEntry entry)
    {
        var text = "default " + Show(entry.Property.GetValue(BuiltIn));
        if (RunKindDefaults.PretrainedDefault(entry.Key) is { } d)
            text += $"; with --model: {Show(d.Value)} ({d.Source})";
        return text;
    }

    private static string Show(object? value) => value switch
    {
        string { Length: 0 } => "''",
        bool b => b ? "true" : "false",
        IFormattable f => f.ToString(null, System.Globalization.CultureInfo.InvariantCulture),
        _ => value?.ToString() ?? "",
    };

    /// <summary>The flags the user gave, as (key, raw value); values are checked by <see cref="ConfigLoader"/>.</summary>
    public List<(string Key, string Value)> Given(ParseResult parse)
    {
        var given = new List<(string, string)>();
        foreach (var (entry, option) in options)
        {
            var result = parse.GetResult(option);
            if (result is null || result.Implicit) continue;
            var value = option is Option<bool> b ? (parse.GetValue(b) ? "true" : "false") : parse.GetValue((Option<string>)option) ?? "";
            given.Add((entry.Key, value));
        }
        return given;
    }

    public TrainConfig Resolve(ParseResult parse, params (string Key, string Value)[] forced) =>
        ConfigLoader.Resolve(parse.GetValue(ConfigFile), [.. Given(parse), .. forced]);
}
