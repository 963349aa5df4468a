using System.CommandLine;
using Popo.Engine.Training;
using Popo.Engine.Objectives;
using Popo.Engine.Runtime;

namespace Popo.Cli.Commands;

/// <summary>`popo train`: supervised warm-up then RL; with no arguments, the built-in default.</summary>
public static class TrainCommand
{
    public static Command Create()
    {
        var command = new Command("train", $"Warm up then train with POPO (or --algo {string.Join("|", ObjectiveRegistry.Names.Where(n => n != "popo"))}); no arguments runs the built-in default\n\n" + ConfigOptions.ForeignKeysHelp());
        var resume = new Option<string?>("--resume") { Description = $"continue the run in this folder from its last complete checkpoint; may change {ResumeChanges.Flags}" };
        command.Options.Add(resume);
        var config = new ConfigOptions(command, presets: true);
        command.SetAction(parse => CommandRunner.Run(() =>
        {
            using var observer = new ProgressObserver();
            RunSummary summary;
            if (parse.GetValue(resume) is { } folder)
            {
                if (config.Files(parse).Count > 0 || parse.GetValue(config.Preset) is not null)
                    throw new ConfigException("--resume continues a run with the configuration saved in its folder; --config and --preset cannot be combined with it (flags such as --steps may change the keys that leave the run so far intact)");
                summary = Trainer.Resume(folder, observer, config.Given(parse));
            }
            else summary = Trainer.Start(config.Resolve(parse), observer);
            Report(summary);
            if (MemoryEstimate.PeakRss() is long peak) Console.Error.WriteLine($"memory: peak RSS {MemoryEstimate.Gb(peak)} (VmHWM)");
            return 0;
        }));
        return command;
    }

    public static void Report(RunSummary s) =>
        Console.Error.WriteLine($"done: {s.Algo}, {s.Steps} steps, {s.Rollouts} rollouts, {s.WallTime:F0} s; " +
                                (s.Final.Problems == 0 ? "no held-out evaluation (eval_problems = 0; score it with `popo eval`)"
                                    : $"held-out pass@1 {s.Warmup.Pass1:F3} -> {s.Final.Pass1:F3} (greedy {s.Warmup.Greedy:F3} -> {s.Final.Greedy:F3})") +
                                (s.FinalAdapter ? $"; final adapter: {s.FinalCheckpoint} (merge with `popo export --merge --checkpoint {s.FinalCheckpoint} --out DIR`)" : $"; final model: {s.FinalCheckpoint}/model"));
}
