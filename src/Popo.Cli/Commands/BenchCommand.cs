using System.CommandLine;
using Popo.Bench;
using Popo.Engine.Runtime;

namespace Popo.Cli.Commands;

/// <summary>`popo bench`: engine throughput against the machine's measured limits (programs in bench/).</summary>
public static class BenchCommand
{
    public static Command Create()
    {
        var threads = new Option<int?>("--threads") { Description = "torch intra-op threads (default: libtorch's choice; 1 on a shared machine)" };
        var quick = new Option<bool>("--quick") { Description = "tiny sizes, few rounds: a smoke run of every section (seconds)" };
        var only = new Option<string?>("--only") { Description = $"comma-separated sections to run: {string.Join(",", BenchRunner.SectionNames)} (default: all; the peak is always measured)" };
        var layers = new Option<int?>("--layers") { Description = "rollout and scale sections: decoder layers of the Qwen2.5-0.5B layout (default 24, the real depth; run that under flock /tmp/popo-bigmem.lock)" };
        var rows = new Option<string?>("--rows") { Description = "comma-separated substrings selecting rows of the scale section (e.g. 'bf16 chunked head + checkpointing,head') and rows of the update section by 'size precision' (e.g. 'small,medium' or 'float32')" };
        var heap = new Option<string>("--native-heap") { Description = $"the C heap's setting for the rollout and scale sections: {string.Join(" | ", NativeHeap.FixedModes)}, the two that the trainer's native_heap = auto picks between", DefaultValueFactory = _ => NativeHeap.ModeLean };
        heap.AcceptOnlyFromAmong(NativeHeap.FixedModes);
        var scaleSetup = new Option<string>("--scale-setup") { Description = "the scale section's step: default (4 prompts x G = 8, up to 512 new tokens) | trl (TRL's GRPOConfig defaults: 1 prompt x G = 8, up to 256 new tokens)", DefaultValueFactory = _ => ScaleBench.DefaultSetup };
        scaleSetup.AcceptOnlyFromAmong([.. ScaleBench.Setups.Keys]);
        var output = new Option<string>("--out") { Description = "where to write the JSON results", DefaultValueFactory = _ => "bench.json" };
        var bench = new Command("bench", "Engine performance against this machine's measured limits: peak matmul and copy rate, update MFU, decode tok/s, POPO's saving over GRPO, memory")
            { threads, quick, only, output, layers, rows, heap, scaleSetup };
        bench.SetAction(parse =>
        {
            var sections = parse.GetValue(only)?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            var rowFilter = parse.GetValue(rows)?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            return BenchRunner.Run(parse.GetValue(threads), parse.GetValue(quick), sections, parse.GetValue(output)!, Console.Out, parse.GetValue(layers), rowFilter, parse.GetValue(heap)!, parse.GetValue(scaleSetup)!);
        });
        return bench;
    }
}
