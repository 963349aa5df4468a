using System.CommandLine;
using Popo.Engine.Training;

namespace Popo.Cli.Commands;

/// <summary>`popo sft`: the supervised warm-up alone; the model lands in OUT/checkpoints/warmup/model.</summary>
public static class SftCommand
{
    public static Command Create()
    {
        var command = new Command("sft", "Supervised warm-up on worked solutions only (the RL steps are skipped)");
        var config = new ConfigOptions(command, e => e.Key != "steps");
        command.SetAction(parse => CommandRunner.Run(() =>
        {
            using var observer = new ProgressObserver();
            var summary = Trainer.Start(config.Resolve(parse, ("steps", "0")), observer);
            Console.Error.WriteLine($"done: warm-up model in {summary.FinalCheckpoint}/model; held-out pass@1 {summary.Warmup.Pass1:F3} (greedy {summary.Warmup.Greedy:F3})");
            return 0;
        }));
        return command;
    }
}
