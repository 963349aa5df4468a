/// The `popo` executable end to end, in process: every output file and field of a short run, resume
/// equality after a crash, and refusal of invalid options before any output folder is touched.
module Popo.Tests.Cli.TrainCli

open System
open System.IO
open System.Text.Json
open Expecto
open Popo.Engine.Configuration
open Popo.Engine.Training
open Popo.Engine.Runtime

let private tempRoot () =
    let dir = Path.Combine(Path.GetTempPath(), "popo-cli-" + Guid.NewGuid().ToString("N"))
    Directory.CreateDirectory dir |> ignore
    dir

/// A tiny, fast configuration: one small layer, few prompts, short completions.
let tinyFlags (out: string) =
    [ "--out"; out; "--hidden-size"; "16"; "--layers"; "1"; "--heads"; "2"; "--kv-heads"; "1"
      "--intermediate-size"; "32"; "--sft-steps"; "3"; "--sft-batch-size"; "8"; "--steps"; "4"
      "--prompts-per-step"; "2"; "--group-size"; "4"; "--max-new-tokens"; "8"; "--eval-problems"; "4"
      "--eval-every"; "2"; "--save-every"; "2"; "--predictor-hidden"; "16"; "--threads"; "1"; "--difficulty"; "tiny" ]

let popo (args: string list) = Popo.Cli.Program.Main(Array.ofList args)

/// Runs popo and returns its exit code and what it wrote to stderr.
let popoStderr (args: string list) =
    let stderr = new StringWriter()
    let saved = Console.Error
    Console.SetError stderr
    let code = try popo args finally Console.SetError saved
    code, stderr.ToString()

let private readRows (path: string) =
    File.ReadAllLines path
    |> Array.filter (fun l -> l.Length > 0)
    |> Array.map (fun l -> JsonSerializer.Deserialize<Collections.Generic.Dictionary<string, Nullable<float>>>(l))

/// Metrics that depend on the clock, not on the computation.
let private timing = set Trainer.WallClockColumns

/// An observer that crashes the run after a given step, as a kill would.
type CrashAfter(step: int) =
    let mutable phase = ""
    interface ITrainingObserver with
        member _.Phase(name, _, _) = phase <- name
        member _.Log _ = ()
        member _.Step(s, _) = if phase = "rl" && s = step then failwith "simulated crash"

/// An observer that prints nothing.
type Quiet() =
    interface ITrainingObserver with
        member _.Phase(_, _, _) = ()
        member _.Log _ = ()
        member _.Step(_, _) = ()

[<Tests>]
let tests =
    testSequenced <| testList "cli/train" [
        testCase "a short run writes every output file with every metrics field" <| fun () ->
            let root = tempRoot ()
            let out = Path.Combine(root, "run")
            try
                Expect.equal (popo ("train" :: tinyFlags out)) 0 "exit code"
                for file in [ "config.json"; "metrics.jsonl"; "metrics.csv"; "samples.jsonl"; "summary.json" ] do
                    Expect.isTrue (File.Exists(Path.Combine(out, file))) file
                let rows = readRows (Path.Combine(out, "metrics.jsonl"))
                Expect.equal rows.Length 4 "one metrics row per step"
                for row in rows do
                    Expect.sequenceEqual (row.Keys |> Seq.toList) (List.ofArray (Trainer.ColumnsFor [ "rewards/accuracy/mean"; "rewards/accuracy/std" ])) "metrics columns"
                for key in [ "reward_mean"; "pass_rate"; "zero_positive_groups"; "loss"; "entropy"; "completion_len_mean"; "grad_norm"; "step_time"; "rollout_time"; "update_time"; "lr" ] do
                    Expect.isTrue (rows |> Array.forall (fun r -> r.[key].HasValue || key = "loss" || key = "grad_norm" || key = "entropy")) key
                Expect.isTrue rows.[1].["eval_pass1"].HasValue "evaluated at step 2"
                Expect.isFalse rows.[0].["eval_pass1"].HasValue "not evaluated at step 1"
                let csv = File.ReadAllLines(Path.Combine(out, "metrics.csv"))
                Expect.equal csv.Length 5 "header + 4 rows"
                Expect.equal (csv.[0].Split ',') (Trainer.ColumnsFor [ "rewards/accuracy/mean"; "rewards/accuracy/std" ]) "csv header"
                let config = JsonDocument.Parse(File.ReadAllText(Path.Combine(out, "config.json"))).RootElement
                for entry in ConfigSchema.Entries do
                    Expect.isTrue (config.TryGetProperty(entry.Key) |> fst) $"config.json has {entry.Key}"
                Expect.equal (config.GetProperty("hidden_size").GetInt32()) 16 "flag value resolved"
                let summary = JsonDocument.Parse(File.ReadAllText(Path.Combine(out, "summary.json"))).RootElement
                Expect.equal (summary.GetProperty("Steps").GetInt32()) 4 "summary steps"
                Expect.equal (summary.GetProperty("Rollouts").GetInt64()) 32L "2 prompts x 4 rollouts x 4 steps"
                for step in [ 2; 4 ] do
                    let ck = TrainingCheckpoint.FolderFor(out, step)
                    for file in [ "model/config.json"; "model/model.safetensors"; "model/popo_tokenizer.json"; "optimizer.bin"; "objective.safetensors"; "rng.safetensors"; "trainer_state.json" ] do
                        Expect.isTrue (File.Exists(Path.Combine(ck, file))) $"step-{step}/{file}"
                Expect.isTrue (File.Exists(Path.Combine(out, "checkpoints", "warmup", "model", "model.safetensors"))) "warm-up model"
                let samples = File.ReadAllLines(Path.Combine(out, "samples.jsonl"))
                Expect.isGreaterThan samples.Length 0 "samples written"
                let sample = JsonDocument.Parse(samples.[0]).RootElement
                for key in [ "step"; "prompt"; "completion"; "reward"; "weight_or_advantage" ] do
                    Expect.isTrue (sample.TryGetProperty(key) |> fst) $"sample has {key}"
                Expect.isFalse (Directory.GetDirectories(Path.Combine(out, "checkpoints")) |> Array.exists (fun d -> Path.GetFileName(d).StartsWith AtomicFolder.TempPrefix)) "no temp folders left"
            finally Directory.Delete(root, true)

        testCase "a run crashed after its checkpoint and resumed gives the same metrics as an uninterrupted run" <| fun () ->
            let root = tempRoot ()
            try
                let config dir = ConfigLoader.Resolve(null, tinyFlags dir |> List.chunkBySize 2 |> List.map (fun p -> struct (p.[0].TrimStart('-').Replace('-', '_'), p.[1])) |> ResizeArray)
                let whole = Path.Combine(root, "whole")
                Trainer.Start(config whole, Quiet()) |> ignore
                let crashed = Path.Combine(root, "crashed")
                Expect.throws (fun () -> Trainer.Start(config crashed, CrashAfter 3) |> ignore) "crash after step 3"
                Expect.equal (readRows (Path.Combine(crashed, "metrics.jsonl"))).Length 3 "step 3 was logged past the step-2 checkpoint"
                Trainer.Resume(crashed, Quiet()) |> ignore
                let strip (rows: Collections.Generic.Dictionary<string, Nullable<float>>[]) =
                    rows |> Array.map (fun r -> r |> Seq.filter (fun kv -> not (timing.Contains kv.Key)) |> Seq.map (fun kv -> kv.Key, kv.Value) |> List.ofSeq)
                Expect.sequenceEqual (strip (readRows (Path.Combine(crashed, "metrics.jsonl")))) (strip (readRows (Path.Combine(whole, "metrics.jsonl")))) "metrics equal"
                let weights dir =
                    let f = Popo.Engine.Checkpoints.SafeTensorsFile.Open(Path.Combine(TrainingCheckpoint.FolderFor(dir, 4), "model", "model.safetensors"))
                    f.Tensors.Keys |> Seq.sort |> Seq.map (fun k -> k, f.Read(k).to_type(TorchSharp.torch.ScalarType.Float64).data<float>().ToArray()) |> List.ofSeq
                Expect.sequenceEqual (weights crashed) (weights whole) "final model equal"
            finally Directory.Delete(root, true)

        testList "invalid options are refused before the output folder is touched" [
            for (name, flags, fragment) in
                [ "group size 0", [ "--group-size"; "0" ], "group_size"
                  "unknown algorithm", [ "--algo"; "ppo" ], "algo"
                  "temperature not a number", [ "--temperature"; "hot" ], "temperature"
                  "negative learning rate", [ "--lr"; "-1" ], "lr"
                  "heads not dividing width", [ "--hidden-size"; "30"; "--heads"; "4" ], "heads"
                  "missing dataset", [ "--dataset"; "/nonexistent/data.jsonl" ], "data.jsonl"
                  "missing model folder", [ "--model"; "/nonexistent/model" ], "/nonexistent/model" ] ->
                testCase name <| fun () ->
                    let root = tempRoot ()
                    try
                        let fresh = Path.Combine(root, "fresh")
                        let code, stderr = popoStderr ([ "train"; "--out"; fresh ] @ flags)
                        Expect.notEqual code 0 "non-zero exit"
                        Expect.stringContains stderr fragment "error names the key or file"
                        Expect.isFalse (Directory.Exists fresh) "no output folder created"
                        let existing = Path.Combine(root, "existing")
                        Directory.CreateDirectory existing |> ignore
                        File.WriteAllText(Path.Combine(existing, "keep.txt"), "precious")
                        Expect.notEqual (popo ([ "train"; "--out"; existing ] @ flags)) 0 "non-zero exit"
                        Expect.equal (Directory.GetFileSystemEntries existing).Length 1 "existing folder untouched"
                        Expect.equal (File.ReadAllText(Path.Combine(existing, "keep.txt"))) "precious" "file intact"
                    finally Directory.Delete(root, true)
        ]

        testCase "an output folder holding another run is refused with a hint to resume" <| fun () ->
            let root = tempRoot ()
            try
                File.WriteAllText(Path.Combine(root, "config.json"), "{}")
                let code, stderr = popoStderr [ "train"; "--out"; root ]
                Expect.notEqual code 0 "non-zero exit"
                Expect.stringContains stderr "--resume" "hint"
                Expect.equal (File.ReadAllText(Path.Combine(root, "config.json"))) "{}" "untouched"
            finally Directory.Delete(root, true)

        testCase "sft, eval and compare write their results" <| fun () ->
            let root = tempRoot ()
            try
                let flags out = tinyFlags out |> List.chunkBySize 2 |> List.filter (fun p -> p.[0] <> "--steps" && p.[0] <> "--out") |> List.concat |> fun f -> [ "--out"; out ] @ f
                let warm = Path.Combine(root, "warm")
                Expect.equal (popo ("sft" :: flags warm)) 0 "sft exit code"
                let model = Path.Combine(warm, "checkpoints", "warmup", "model")
                Expect.isTrue (File.Exists(Path.Combine(model, "model.safetensors"))) "warm-up model"
                let evalOut = Path.Combine(root, "eval")
                Expect.equal (popo [ "eval"; "--model"; model; "--difficulty"; "tiny"; "--samples"; "3"; "--eval-problems"; "4"; "--max-new-tokens"; "8"; "--out"; evalOut ]) 0 "eval exit code"
                let result = JsonDocument.Parse(File.ReadAllText(Path.Combine(evalOut, "eval.json"))).RootElement
                for key in [ "pass_at_1"; "pass_at_k"; "mean_at_k"; "greedy" ] do
                    let v = result.GetProperty(key).GetDouble()
                    Expect.isTrue (v >= 0.0 && v <= 1.0) key
                Expect.isGreaterThanOrEqual (result.GetProperty("pass_at_k").GetDouble()) (result.GetProperty("pass_at_1").GetDouble()) "pass@k >= pass@1"
                Expect.notEqual (popo [ "eval"; "--model"; model; "--difficulty"; "tiny"; "--out"; evalOut ]) 0 "an existing eval.json is not overwritten"
                let cmp = Path.Combine(root, "cmp")
                let arms = [ "--algos"; "popo,grpo"; "--variant"; "popo_uniform:algo=popo,weights=uniform"; "--passk"; "3" ]
                Expect.equal (popo ([ "compare" ] @ arms @ [ "--seeds"; "1"; "--steps"; "2" ] @ flags cmp)) 0 "compare exit code"
                for file in [ "report.md"; "compare.json"; "reward_vs_rollouts.png"; "reward_vs_time.png"; "pass1_vs_rollouts.png"; "pass1_vs_time.png"; "passk.png" ] do
                    Expect.isTrue (File.Exists(Path.Combine(cmp, file))) file
                let report = File.ReadAllText(Path.Combine(cmp, "report.md"))
                Expect.stringContains report "| popo | preset | 1 |" "popo row"
                Expect.stringContains report "| grpo | preset | 1 |" "grpo row"
                Expect.stringContains report "| popo_uniform | algo=popo, weights=uniform | 1 |" "variant row"
                let arm = JsonDocument.Parse(File.ReadAllText(Path.Combine(cmp, "compare.json"))).RootElement.GetProperty("arms").[2]
                let curve = arm.GetProperty("runs").[0].GetProperty("pass_curve").EnumerateArray() |> Seq.map (fun v -> v.GetDouble()) |> Array.ofSeq
                Expect.equal curve.Length 3 "pass@1..pass@3"
                Expect.isTrue (curve |> Array.pairwise |> Array.forall (fun (a, b) -> a <= b + 1e-12)) "pass@k never falls with k"
                let uniform = JsonDocument.Parse(File.ReadAllText(Path.Combine(cmp, "popo_uniform-seed1", "config.json"))).RootElement
                Expect.equal (uniform.GetProperty("weights").GetString()) "uniform" "the variant's key reached its run"
                // A built-in comparison stays a built-in run although each arm loads the warm-up checkpoint as its model.
                let defaults = TrainConfig()
                for key, expected in [ "lr", defaults.Lr; "weight_decay", defaults.WeightDecay ] do
                    Expect.equal (uniform.GetProperty(key: string).GetDouble()) expected $"{key}: the built-in default, not the pretrained-run one"
                let badVariant = popo ([ "compare"; "--variant"; "oops:group_sise=4"; "--seeds"; "1" ] @ flags (Path.Combine(root, "bad")))
                Expect.notEqual badVariant 0 "a misspelt variant key is refused"
                Expect.isFalse (Directory.Exists(Path.Combine(root, "bad"))) "before anything is written"
            finally Directory.Delete(root, true)

        testCase "a config file key that does not exist gets a did-you-mean" <| fun () ->
            let root = tempRoot ()
            try
                let file = Path.Combine(root, "run.toml")
                File.WriteAllText(file, "group_sise = 8\n")
                let message =
                    try ConfigLoader.Resolve(file, ResizeArray()) |> ignore; "" with :? ConfigException as e -> e.Message
                Expect.stringContains message "did you mean 'group_size'" "did you mean"
                Expect.stringContains message file "names the file"
            finally Directory.Delete(root, true)

        testCase "flags override the config file, which overrides the algorithm preset" <| fun () ->
            let root = tempRoot ()
            try
                let file = Path.Combine(root, "run.toml")
                File.WriteAllText(file, "algo = \"dapo\"\neps_high = 0.3\ngroup_size = 6\n")
                let c = ConfigLoader.Resolve(file, ResizeArray [ struct ("group_size", "12") ])
                Expect.equal c.LossType "dapo" "preset applied"
                Expect.isTrue c.DynamicSampling "preset applied"
                Expect.equal c.EpsHigh 0.3 "file beats preset"
                Expect.equal c.GroupSize 12 "flag beats file"
            finally Directory.Delete(root, true)
    ]

[<Tests>]
let warmupTests =
    testList "engine/training/warm-up" [
        testCase "imperfect demonstrations are a pure function of seed and problem id, the same in every process" <| fun () ->
            let options = SupervisedWarmup.Options(1, 1, 1e-3, 0.0, 1.0, 0.0, 1.0, 7L)
            let corrupted = SupervisedWarmup.Corrupt("7+8=15 4+3+1=8\n#### 85", options, "arithmetic/train/12")
            // pinned: a per-process salted hash would change it from run to run
            Expect.equal corrupted (SupervisedWarmup.Corrupt("7+8=15 4+3+1=8\n#### 85", options, "arithmetic/train/12")) "stable within a process"
            Expect.equal corrupted "6+8=15 4+3+1=8\n#### 85" "stable across processes"
            Expect.equal (corrupted |> Seq.filter System.Char.IsDigit |> Seq.length) 10 "digits stay digits"
            Expect.equal (Seq.zip corrupted "7+8=15 4+3+1=8\n#### 85" |> Seq.filter (fun (a, b) -> a <> b) |> Seq.length) 1 "exactly one digit changed"
        testCase "without noise the demonstration is untouched" <| fun () ->
            let options = SupervisedWarmup.Options(1, 1, 1e-3, 0.0, 1.0, 0.0, 0.0, 7L)
            Expect.equal (SupervisedWarmup.Corrupt("12+3=15", options, "p")) "12+3=15" "unchanged"
    ]
