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
