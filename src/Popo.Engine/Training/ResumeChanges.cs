using Popo.Engine.Configuration;
using Popo.Engine.Runtime;

namespace Popo.Engine.Training;

/// <summary>
/// Keys `popo train --resume DIR` may change: those that leave the trajectory so far as it was. `steps`
/// extends or shortens the run (the learning-rate schedule then follows the new total from the resumed step
/// on); `threads` and `device` change where it runs (results equal up to floating-point reordering);
/// `save_every`, `eval_every`, `save_total_limit`, `memory_check` only what is written or checked. Any other
/// key would make the resumed run a different run than the one its checkpoints came from, and is refused.
/// </summary>
internal static class ResumeChanges
{
    /// <summary>The keys marked resumable where they are declared (<see cref="ConfigKeyAttribute.Resumable"/>).</summary>
    public static readonly IReadOnlyList<string> Allowed = ConfigSchema.Entries.Where(e => e.Rules.Resumable).Select(e => e.Key).ToList();

    /// <summary>The resumable keys as flags, for the help and the refusal.</summary>
    public static string Flags => string.Join(", ", Allowed.Order().Select(k => "--" + k.Replace('_', '-')));

    public static TrainConfig Apply(TrainConfig saved, IReadOnlyList<(string Key, string Value)> changes)
    {
        var refused = changes.Select(c => c.Key).Where(k => !Allowed.Contains(k)).Distinct().ToList();
        if (refused.Count > 0)
            throw new ConfigException(
                $"--resume: {string.Join(", ", refused.Select(k => "--" + k.Replace('_', '-')))} would change the run its checkpoints came from " +
                $"(the model, data, objective or sampling so far); a resumed run may change only {Flags}. " +
                "Start a new run (another --out) to change the others");
        var config = saved;
        foreach (var (key, value) in changes)
        {
            var entry = ConfigSchema.Find(key, "--" + key.Replace('_', '-'));
            var copy = config with { };
            entry.Property.SetValue(copy, entry.Convert(value, entry.Flag));
            config = copy;
        }
        ConfigLoader.Validate(config);
        if (TrainingCheckpoint.Latest(config.Out) is var (_, step) && config.Steps < step)
            throw new ConfigException($"--steps: {config.Steps} is below the step of the run's last checkpoint ({step})");
        return config;
    }
}
