/// `native_heap = reuse` (issue 34) changes only where libtorch's tensors come from, not what is computed: a run with it
/// writes the same checkpoints, metrics and samples as the default, bit for bit. In `popo` processes, since the
/// setting is process-wide.
module Popo.Tests.Reliability.NativeHeapMode

open System.IO
open Expecto
open Popo.Engine.Training
open Popo.Tests.Reliability.Harness

let private flags (out: string) =
    [ "train"; "--out"; out; "--hidden-size"; "48"; "--layers"; "2"; "--heads"; "2"; "--kv-heads"; "1"
      "--intermediate-size"; "96"; "--sft-steps"; "10"; "--sft-batch-size"; "16"; "--steps"; "2"; "--prompts-per-step"; "2"
      "--group-size"; "4"; "--max-new-tokens"; "10"; "--eval-problems"; "2"; "--save-every"; "1"; "--predictor-hidden"; "16"
      "--threads"; "1"; "--difficulty"; "tiny"; "--seed"; "7"; "--bf16"; "true" ]

[<Tests>]
let tests =
    testSequenced <| testList "reliability/native-heap" [
        testCase "native_heap = reuse: the same checkpoints, metrics and samples as the default" <| fun () ->
            withTemp (fun root ->
                let auto, reuse = Path.Combine(root, "auto"), Path.Combine(root, "reuse")
                for args in [ flags auto; flags reuse @ [ "--native-heap"; "reuse" ] ] do
                    let code, stderr = runPopo 300_000 args
                    Expect.equal code 0 $"popo train: {stderr}"
                for step in 1 .. 2 do
                    Expect.sequenceEqual (checkpointFiles (TrainingCheckpoint.FolderFor(reuse, step))) (checkpointFiles (TrainingCheckpoint.FolderFor(auto, step)))
                        $"step-{step}: model, optimizer, objective and RNG files, byte for byte"
                Expect.sequenceEqual (metricsRows reuse) (metricsRows auto) "metrics.jsonl, every column but the wall-clock ones"
                Expect.sequenceEqual (File.ReadAllLines(Path.Combine(reuse, "samples.jsonl"))) (File.ReadAllLines(Path.Combine(auto, "samples.jsonl"))) "samples.jsonl")

        testCase "the bench reports the mode it ran with, and refuses another" <| fun () ->
            Expect.equal (benchMeta [] "native_heap") "auto" "the default"
            let code, stderr = runPopo 60_000 [ "bench"; "--quick"; "--only"; "peak"; "--native-heap"; "never" ]
            Expect.notEqual code 0 "an unknown mode is refused"
            Expect.stringContains stderr "never" "the refusal names the value"
    ]
