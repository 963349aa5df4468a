/// `popo bench --only scale --quick` end to end on a few rows: the section exists with positive timings and peaks,
/// the drawn completion lengths are long-tailed within [8, cap], and the memory target column is filled for update rows.
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
                                             "--rows"; "popo float32 none,grpo bf16 chunked head + checkpointing,head float32" |])
                finally Console.SetOut saved
            Expect.equal code 0 "exit code"
            let root = JsonDocument.Parse(File.ReadAllText path).RootElement
            Directory.Delete(dir, true)
            let scale = root.GetProperty("sections").GetProperty("scale")
            let rows = scale.GetProperty("rows").EnumerateArray() |> Seq.toList
            let labels = rows |> List.map (fun r -> r.GetProperty("row").GetString())
            Expect.equal rows.Length 4 $"popo float32 none, grpo bf16 all features, two head rows: {labels}"
            for r in rows do
                Expect.isGreaterThan (r.GetProperty("seconds").GetDouble()) 0.0 "seconds"
                Expect.isGreaterThan (r.GetProperty("peak_rss_mib").GetDouble()) 0.0 "peak RSS"
            for r in rows |> List.filter (fun r -> r.GetProperty("phase").GetString() <> "head") do
                Expect.isGreaterThan (r.GetProperty("target_mib").GetDouble()) (r.GetProperty("states_mib").GetDouble()) "target above the states"
            let lengths = scale.GetProperty("facts").GetProperty("completion_lengths").GetString().Split(' ') |> Array.map int
            Expect.isTrue (lengths |> Array.forall (fun l -> l >= 8 && l <= 48)) $"lengths within [8, cap]: {lengths}"
            Expect.isGreaterThan (Array.max lengths) (2 * (Array.sort lengths).[lengths.Length / 2]) "a long tail: the longest is over twice the median"
    ]
