using System.CommandLine;

namespace Popo.Cli.Commands;

/// <summary>`popo bench`: engine throughput against the machine's measured limits (programs in bench/).</summary>
public static class BenchCommand
{
    public static Command Create()
    {
        var threads = new Option<int?>("--threads") { Description = "torch intra-op threads (default: libtorch's choice)" };
        var quick = new Option<bool>("--quick") { Description = "one small size and batch only (a smoke run)" };
        var bench = new Command("bench", "Engine throughput: prefill and decode tokens/s against the measured float32 matmul rate") { threads, quick };
        bench.SetAction(parse => Popo.Bench.ModelBench.Run(parse.GetValue(threads), parse.GetValue(quick), Console.Out));
        return bench;
    }
}
