namespace Popo.Engine.Configuration;

/// <summary>
/// Declares a configuration key: its name in config files (snake_case; the flag is --kebab-case),
/// its help text and its allowed values. The schema is read off these attributes, so a key, its flag,
/// its validation and its documentation cannot drift apart.
/// </summary>
[AttributeUsage(AttributeTargets.Property)]
public sealed class ConfigKeyAttribute(string key, string help) : Attribute
{
    /// <summary>The key's name in config files (snake_case).</summary>
    public string Key { get; } = key;
    /// <summary>The help text <c>popo train --help</c> shows.</summary>
    public string Help { get; } = help;
    /// <summary>Inclusive lower bound for numbers (NaN = none).</summary>
    public double Min { get; init; } = double.NaN;
    /// <summary>Inclusive upper bound for numbers (NaN = none).</summary>
    public double Max { get; init; } = double.NaN;
    /// <summary>Exclusive lower bound for numbers (NaN = none).</summary>
    public double Above { get; init; } = double.NaN;
    /// <summary>Allowed words for string keys (null = any).</summary>
    public string[]? OneOf { get; init; }
    /// <summary>The allowed words are the registered algorithms' names (<see cref="Objectives.ObjectiveRegistry"/>), listed nowhere else.</summary>
    public bool OneOfAlgorithms { get; init; }
    /// <summary>`popo train --resume` may change this key: it leaves the trajectory so far as it was (see ResumeChanges).</summary>
    public bool Resumable { get; init; }
}
