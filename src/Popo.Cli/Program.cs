using Popo.Kernels;
using System.CommandLine;
using Popo.Cli.Commands;
using Popo.Engine.Runtime;

namespace Popo.Cli;

public static class Program
{
    public static int Main(string[] args)
    {
        NativeHeap.RequestHugePages();
        FixedThreading.Apply();
        var setup = CommandRunner.Run(() => { MklVendorCheck.Configure(); return 0; });
        if (setup != 0) return setup;
        var root = new RootCommand("popo: Positive-Only Policy Optimization (and GRPO baselines) on TorchSharp");
        root.Subcommands.Add(TrainCommand.Create());
        root.Subcommands.Add(SftCommand.Create());
        root.Subcommands.Add(EvalCommand.Create());
        root.Subcommands.Add(CompareCommand.Create());
        root.Subcommands.Add(BenchCommand.Create());
        root.Subcommands.Add(InitCommand.Create());
        root.Subcommands.Add(ExportCommand.Create());
        root.Subcommands.Add(ServeCommand.Create());
        var parse = root.Parse(args);
        return parse.Errors.Count > 0 ? UsageErrors.Report(parse) : parse.Invoke();
    }
}
