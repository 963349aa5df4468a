/// The dataset loader's options and the configuration's cross-key checks (issue 28, group 8): answer_field is
/// read on every record shape (GSM8K, MATH/AIME/AMC, TRL prompt as text and as messages), through the run's own
/// wiring (TaskFactory); a cross-key violation is refused, exit 2, before any output folder exists, and the
/// boundary value of each check is accepted.
module Popo.Tests.Catch.Loader

open System
open System.IO
open Expecto
open Popo.Engine.Configuration
open Popo.Engine.Data
open Popo.Engine.Tasks
open Popo.Engine.Training
open Popo.Tests.Cli.TrainCli

let private withFile (lines: string list) (f: string -> unit) =
    let root = Path.Combine(Path.GetTempPath(), "popo-loader-" + Guid.NewGuid().ToString("N"))
    Directory.CreateDirectory root |> ignore
    let path = Path.Combine(root, "data.jsonl")
    File.WriteAllLines(path, lines)
    try f path finally Directory.Delete(root, true)

/// Each shape's record with a decoy "answer" (7) and the gold under "gold" (42).
let private shapes =
    [ "GSM8K", DatasetShape.Gsm8k, """{"question": "Q?", "answer": "#### 7", "gold": "6 * 7 = 42\n#### 42"}"""
      "MATH", DatasetShape.ProblemAnswer, """{"problem": "P?", "answer": "7", "gold": "42"}"""
      "MATH, a numeric answer", DatasetShape.ProblemAnswer, """{"problem": "P?", "answer": 7, "gold": 42}"""
      "TRL prompt", DatasetShape.Prompt, """{"prompt": "P?", "answer": "7", "gold": "42"}"""
      "TRL messages", DatasetShape.Prompt, """{"prompt": [{"role": "system", "content": "S"}, {"role": "user", "content": "P?"}], "answer": "7", "gold": "42"}""" ]

let private gold (config: TrainConfig) =
    // a one-line file: its only problem is in the training split
    [ (TaskFactory.Create(config).Get(Split.Train, 0L)).Answer ]

let private refusedBeforeWriting (args: string list) (fragment: string) =
    let root = Path.Combine(Path.GetTempPath(), "popo-crosskey-" + Guid.NewGuid().ToString("N"))
    let out = Path.Combine(root, "run")
    try
        let code, err = popoStderr ([ "train"; "--out"; out ] @ args)
        Expect.equal code 2 (sprintf "usage exit code for %A: %s" args err)
        Expect.stringContains err fragment (sprintf "%A names the conflict" args)
        Expect.isFalse (Directory.Exists out) (sprintf "%A: no output folder" args)
        Expect.isFalse (Directory.Exists root) (sprintf "%A: not even its parent" args)
    finally if Directory.Exists root then Directory.Delete(root, true)

[<Tests>]
let tests =
    testSequenced <| testList "catch/loader" [
        test "answer_field picks the gold on every record shape, through the run's task wiring" {
            for name, shape, line in shapes do
                withFile [ line ] (fun path ->
                    Expect.equal (JsonlDataset.Load(path).Shape) shape (sprintf "%s: detected shape" name)
                    Expect.equal (gold (TrainConfig(Dataset = path, AnswerField = "gold"))) [ "42" ] (sprintf "%s: answer_field = gold" name)
                    Expect.equal (gold (TrainConfig(Dataset = path))) [ "7" ] (sprintf "%s: the default field is answer" name))
        }

        test "a record without the answer_field is refused, naming the field and line" {
            for name, _, line in shapes do
                withFile [ line ] (fun path ->
                    Expect.throwsT<DatasetFormatException> (fun () -> JsonlDataset.Load(path, DatasetOptions(AnswerField = "final")) |> ignore) name)
            withFile [ """{"problem": "P?", "answer": "7"}""" ] (fun path ->
                try
                    JsonlDataset.Load(path, DatasetOptions(AnswerField = "final")) |> ignore
                    failtest "accepted a missing answer field"
                with :? DatasetFormatException as e ->
                    Expect.stringContains e.Message "final" "the field"
                    Expect.stringContains e.Message "1" "the line")
        }

        test "cross-key violations exit 2 before any output folder exists" {
            for args, fragment in
                [ [ "--weight-cap"; "0.2"; "--group-size"; "4" ], "weight_cap"
                  [ "--overlong-buffer"; "8"; "--max-new-tokens"; "8" ], "overlong_buffer"
                  [ "--algo"; "grpo"; "--group-size"; "1" ], "group_size"
                  [ "--algo"; "popo"; "--beta"; "0.1" ], "beta"
                  [ "--hidden-size"; "30"; "--heads"; "4" ], "heads"
                  [ "--heads"; "4"; "--kv-heads"; "3" ], "kv_heads"
                  [ "--hidden-size"; "36"; "--heads"; "4" ], "even"
                  [ "--bf16"; "true"; "--dtype"; "float64" ], "bf16"
                  [ "--async-rollouts"; "true" ], "async_rollouts" ] do
                refusedBeforeWriting args fragment
        }

        test "a cross-key violation in a config file is refused before any output folder exists" {
            withFile [] (fun data ->
                let toml = Path.Combine(Path.GetDirectoryName data, "run.toml")
                File.WriteAllLines(toml, [ "weight_cap = 0.1"; "group_size = 8" ])
                refusedBeforeWriting [ "--config"; toml ] "weight_cap")
        }

        test "each cross-key check accepts its boundary value" {
            for flags in [ [ "weight_cap", "0.25"; "group_size", "4" ]
                           [ "overlong_buffer", "7"; "max_new_tokens", "8" ]
                           [ "algo", "grpo"; "group_size", "2" ]
                           [ "algo", "grpo"; "beta", "0.1" ]
                           [ "hidden_size", "32"; "heads", "4"; "kv_heads", "2" ]
                           [ "async_rollouts", "true"; "rollout_engine", "server" ] ] do
                ConfigLoader.Resolve(null, ResizeArray [ for k, v in flags -> struct (k, v) ]) |> ignore
        }
    ]
