/// `popo bench --only scale --quick` end to end on a few rows: the section exists with positive timings and peaks,
/// the drawn completion lengths are long-tailed within [8, cap], the memory target column is filled for update rows, and a
/// LoRA row carries its speed-up over the full fine-tuning row with the same features, and every update row its counted
/// FLOPs, rate and share of this run's matmul peak.
module Popo.Tests.Bench.ScaleSmoke

open System
open System.IO
open System.Text.Json
open Expecto

[<Tests>]
let tests =
    testSequenced <| testList "bench/scale" [
        testCase "the quick scale section runs the selected rows with positive figures" <| fun () ->
            let dir = Path.Combine(Path.GetTempPath(), "popo-scale-" + Guid.NewGuid().ToString("N"))
            Directory.CreateDirectory dir |> ignore
            let path = Path.Combine(dir, "bench.json")
            let saved = Console.Out
            let code =
                try
                    Console.SetOut TextWriter.Null
                    Popo.Cli.Program.Main([| "bench"; "--quick"; "--threads"; "1"; "--only"; "scale"; "--out"; path
                                             "--rows"; "popo float32 none,grpo bf16 chunked head + checkpointing,head float32,popo bf16 chunked head + checkpointing,popo lora-r16 bf16 chunked head + checkpointing" |])
                finally Console.SetOut saved
            Expect.equal code 0 "exit code"
            let root = JsonDocument.Parse(File.ReadAllText path).RootElement
            Directory.Delete(dir, true)
            let scale = root.GetProperty("sections").GetProperty("scale")
            let rows = scale.GetProperty("rows").EnumerateArray() |> Seq.toList
            let labels = rows |> List.map (fun r -> r.GetProperty("row").GetString())
            Expect.equal rows.Length 6 $"popo float32 none, grpo and popo bf16 all features, the LoRA row, two head rows: {labels}"
            let lora = rows |> List.find (fun r -> r.GetProperty("row").GetString().Contains "lora-r16")
            Expect.isGreaterThan (lora.GetProperty("speedup_vs_full").GetDouble()) 0.0 "the LoRA row is set against full fine-tuning with the same features"
            for r in rows do
                Expect.isGreaterThan (r.GetProperty("seconds").GetDouble()) 0.0 "seconds"
                Expect.isGreaterThan (r.GetProperty("peak_rss_mib").GetDouble()) 0.0 "peak RSS"
            for r in rows |> List.filter (fun r -> r.GetProperty("phase").GetString() <> "head") do
                Expect.isGreaterThan (r.GetProperty("target_mib").GetDouble()) (r.GetProperty("states_mib").GetDouble()) "target above the states"
                for f in [ "gflop"; "gflops"; "pct_of_peak" ] do Expect.isGreaterThan (r.GetProperty(f).GetDouble()) 0.0 $"update row {f}"
            for f in [ "matmul_gflops_bf16"; "matmul_gflops_float32"; "copy_gb_s" ] do
                Expect.isGreaterThan (scale.GetProperty("facts").GetProperty(f).GetDouble()) 0.0 $"fact {f}"
            let lengths = scale.GetProperty("facts").GetProperty("completion_lengths").GetString().Split(' ') |> Array.map int
            Expect.isTrue (lengths |> Array.forall (fun l -> l >= 8 && l <= 48)) $"lengths within [8, cap]: {lengths}"
            Expect.isGreaterThan (Array.max lengths) (2 * (Array.sort lengths).[lengths.Length / 2]) "a long tail: the longest is over twice the median"
    ]
