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

    public Option<string[]> ConfigFile { get; } = new("--config")
    {
        Description = "a file of configuration keys: TOML, JSON or YAML, Popo's keys or TRL's GRPOConfig / the POPO authors' (see \"TRL keys\" below); " +
                      "may be given several times, later files winning, and flags win over them",
        Arity = ArgumentArity.OneOrMore, AllowMultipleArgumentsPerToken = false,
    };

    /// <summary>--preset NAME (<see cref="RecipePresets"/>); added to commands that train.</summary>
    public Option<string?> Preset { get; } = new("--preset") { Description = $"a published recipe's values, under the config files and flags: {string.Join(", ", RecipePresets.All.Keys)}" };

    private readonly bool presets;

    public ConfigOptions(Command command, Func<ConfigEntry, bool>? include = null, bool presets = false)
    {
        command.Options.Add(ConfigFile);
        this.presets = presets;
        if (presets) command.Options.Add(Preset);
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

    /// <summary>The "TRL keys" section of `popo train --help`: what each foreign key of a --config file becomes.</summary>
    public static string ForeignKeysHelp() =>
        "TRL keys (and the POPO authors'), accepted in --config files: a file holding one of them is read as TRL's; each key maps onto " +
        "Popo's, is ignored (it does not change the math here) or is refused, with the reason:\n" +
        string.Join("\n", ForeignKeys.All.GroupBy(k => k.Origin).Select(g => $"  [{g.Key}]\n" + string.Join("\n", g.Select(k => $"    {k.Name} -> {k.Help}"))));

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
        _ => value?.ToString() is { Length: > 0 } text ? text : "''",   // an empty list key
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

    /// <summary>The --config files in the order given.</summary>
    public IReadOnlyList<string> Files(ParseResult parse) => parse.GetValue(ConfigFile) ?? [];

    public TrainConfig Resolve(ParseResult parse, params (string Key, string Value)[] forced) =>
        ConfigLoader.ResolveLayered(Files(parse), [.. Given(parse), .. forced], preset: presets ? parse.GetValue(Preset) : null, log: Console.Error.WriteLine);
}
