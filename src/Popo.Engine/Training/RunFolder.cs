using Popo.Engine.Configuration;
using Popo.Engine.Runtime;

namespace Popo.Engine.Training;

/// <summary>
/// The output folder of a run: created only for a new run (never over another run's files), holding
/// config.json (the resolved configuration) from the start.
/// </summary>
internal static class RunFolder
{
    public const string ConfigFile = "config.json";

    public static void CreateNew(TrainConfig config)
    {
        var folder = config.Out;
        if (File.Exists(folder)) throw new ConfigException($"key 'out': {folder} is a file, not a folder");
        // A run killed while writing config.json leaves only a temp file: the folder holds no run yet.
        if (Directory.Exists(folder) && Directory.EnumerateFileSystemEntries(folder).Any(e => !Checkpoints.AtomicFile.IsTemp(e)))
            throw new ConfigException($"key 'out': {folder} already holds files; use --resume {folder} to continue that run, or choose another --out");
        Directory.CreateDirectory(folder);
        AtomicFolder.CleanLeftovers(folder);
        Checkpoints.AtomicFile.WriteAllText(Path.Combine(folder, ConfigFile), ConfigLoader.ToJson(config));
    }

    /// <summary>Rewrites config.json of an existing run (after --resume changed keys that leave its trajectory so far intact).</summary>
    public static void Rewrite(TrainConfig config) =>
        Checkpoints.AtomicFile.WriteAllText(Path.Combine(config.Out, ConfigFile), ConfigLoader.ToJson(config with { Out = config.Out }));

    /// <summary>The configuration a run was started with, read back from its folder.</summary>
    public static TrainConfig ReadConfig(string folder)
    {
        var path = Path.Combine(folder, ConfigFile);
        if (!File.Exists(path)) throw new ConfigException($"{path}: not found; --resume needs the folder of a run started with `popo train`");
        var config = ConfigLoader.Resolve(path, []);
        return config with { Out = folder };
    }
}
