using System.CommandLine;
using Popo.Engine.Runtime;

namespace Popo.Cli;

public static class Program
{
    public static int Main(string[] args)
    {
        var root = new RootCommand("popo: Positive-Only Policy Optimization (and GRPO baselines) on TorchSharp");
        var device = new Option<string>("--device") { Description = "cpu or cuda[:N]", DefaultValueFactory = _ => "cpu" };
        var train = new Command("train", "Train on the built-in default (the trainer is not built yet: runs the engine smoke check)")
        {
            device
        };
        train.SetAction(parse => Smoke(parse.GetValue(device)!));
        root.Subcommands.Add(train);
        var threads = new Option<int?>("--threads") { Description = "torch intra-op threads (default: libtorch's choice)" };
        var quick = new Option<bool>("--quick") { Description = "one small size and batch only (a smoke run)" };
        var bench = new Command("bench", "Engine throughput: prefill and decode tokens/s against the measured float32 matmul rate") { threads, quick };
        bench.SetAction(parse => Popo.Bench.ModelBench.Run(parse.GetValue(threads), parse.GetValue(quick), Console.Out));
        root.Subcommands.Add(bench);
        return root.Parse(args).Invoke();
    }

    private static int Smoke(string deviceName)
    {
        Console.Error.WriteLine("popo train: the RL trainer is not implemented yet; running the engine smoke check instead.");
        Console.WriteLine($"TorchSharp {TorchRuntime.TorchSharpVersion}, libtorch {TorchRuntime.LibTorchVersion}");
        var device = TorchRuntime.ResolveDevice(deviceName);
        var grad = TorchRuntime.SmokeGradient(device);
        Console.WriteLine($"forward/backward on {device}: dy/dW = [{string.Join(", ", grad)}] (expected [6, 6, 14, 14])");
        return grad.SequenceEqual(new double[] { 6, 6, 14, 14 }) ? 0 : 1;
    }
}
