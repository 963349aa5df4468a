/// LoRA runs end to end through `popo`: checkpoints in PEFT's layout (no model/), resume bit for bit (adapters, AdamW,
/// EMA adapters, dropout generator), `--adapter` for eval and further training, `export --merge`, and bad keys refused
/// before any work, each error naming its key, file or field.
module Popo.Tests.Engine.LoraCli

open System
open System.IO
open System.Text.Json
open Expecto
open Popo.Engine.Checkpoints
open Popo.Engine.Configuration
open Popo.Engine.Lora
open Popo.Engine.Training
open Popo.Tests.Cli.TrainCli
open Popo.Tests.Reliability.Harness

/// A tiny run whose warm-up (150 steps, 24 new tokens) solves some problems, so RL steps after the resume point update
/// (checked), with LoRA on every linear (r = 4) and adapter dropout, so that resume must restore its generator too.
let private loraFlags (out: string) =
    [ "--out"; out; "--hidden-size"; "48"; "--layers"; "1"; "--heads"; "2"; "--kv-heads"; "1"; "--intermediate-size"; "96"
      "--sft-steps"; "150"; "--sft-batch-size"; "16"; "--sft-lr"; "0.01"; "--steps"; "4"; "--prompts-per-step"; "2"; "--group-size"; "4"
      "--max-new-tokens"; "24"; "--eval-problems"; "4"; "--eval-every"; "2"; "--save-every"; "2"; "--predictor-hidden"; "16"
      "--threads"; "1"; "--difficulty"; "tiny"; "--seed"; "3"
      "--lora-r"; "4"; "--lora-alpha"; "8"; "--lora-target-modules"; "all-linear"; "--lora-dropout"; "0.1"; "--lr"; "0.01" ]

let private configOf (flags: string list) =
    ConfigLoader.Resolve(null, flags |> List.chunkBySize 2 |> List.map (fun p -> struct (p.[0].TrimStart('-').Replace('-', '_'), p.[1])) |> ResizeArray)

/// Every tensor of a safetensors file, by name, as float64 values.
let private tensorsOf (path: string) =
    let f = SafeTensorsFile.Open path
    f.Tensors.Keys |> Seq.sort |> Seq.map (fun k -> use t = f.Read k in k, t.to_type(TorchSharp.torch.ScalarType.Float64).data<float>().ToArray()) |> List.ofSeq

[<Tests>]
let tests =
    testSequenced <| testList "engine/lora/cli" [
        testCase "a LoRA run writes PEFT adapter checkpoints, and a crashed run resumed ends bit for bit where the whole one does" <| fun () ->
            withTemp (fun root ->
                let whole = Path.Combine(root, "whole")
                Trainer.Start(configOf (loraFlags whole), Quiet()) |> ignore
                for step in [ 2; 4 ] do
                    let ck = TrainingCheckpoint.FolderFor(whole, step)
                    for file in [ PeftAdapterConfig.FileName; PeftAdapterFolder.WeightsFile; "optimizer.bin"; "objective.safetensors"; "rng.safetensors"; "trainer_state.json" ] do
                        Expect.isTrue (File.Exists(Path.Combine(ck, file))) $"step-{step}/{file}"
                    Expect.isFalse (Directory.Exists(Path.Combine(ck, "model"))) "no copy of the frozen base"
                let ck = TrainingCheckpoint.FolderFor(whole, 4)
                let struct (settings, baseModel) = PeftAdapterConfig.Read ck
                Expect.equal baseModel (Path.GetFullPath(Path.Combine(whole, "checkpoints", "warmup", "model"))) "the base is the warm-up's model"
                Expect.equal (settings.Rank, settings.TargetsKey) (4, "all-linear") "r and targets"
                Expect.isTrue (tensorsOf (Path.Combine(ck, "rng.safetensors")) |> List.exists (fun (k, _) -> k = "lora_dropout")) "the dropout generator is saved"
                let ema = tensorsOf (Path.Combine(ck, "objective.safetensors")) |> List.filter (fun (k, _) -> k.StartsWith "ema.")
                Expect.equal (ema |> List.sumBy (fun (_, v) -> int64 v.Length)) (Seq.sum (tensorsOf (Path.Combine(ck, PeftAdapterFolder.WeightsFile)) |> Seq.map (fun (_, v) -> int64 v.Length))) "the EMA target is adapter-sized"
                let crashed = Path.Combine(root, "crashed")
                Expect.throws (fun () -> Trainer.Start(configOf (loraFlags crashed), CrashAfter 3) |> ignore) "crash after step 3"
                Trainer.Resume(crashed, Quiet()) |> ignore
                let last = metricsRows whole |> Array.last
                Expect.equal (last |> List.find (fst >> (=) "skipped_update") |> snd) (Nullable 0.0) "the premise: step 4, after the resume point, updates the adapters"
                Expect.sequenceEqual (metricsRows crashed) (metricsRows whole) "metrics equal"
                for file in [ PeftAdapterFolder.WeightsFile; "objective.safetensors"; "rng.safetensors" ] do
                    Expect.sequenceEqual (tensorsOf (Path.Combine(TrainingCheckpoint.FolderFor(crashed, 4), file))) (tensorsOf (Path.Combine(ck, file))) $"{file} equal"
                Expect.equal (File.ReadAllBytes(Path.Combine(TrainingCheckpoint.FolderFor(crashed, 4), "optimizer.bin"))) (File.ReadAllBytes(Path.Combine(ck, "optimizer.bin"))) "AdamW state equal")

        testCase "--adapter evaluates a checkpoint and starts further training from it; export --merge gives a folder --model loads" <| fun () ->
            withTemp (fun root ->
                let run = Path.Combine(root, "run")
                Trainer.Start(configOf (loraFlags run), Quiet()) |> ignore
                let ck = TrainingCheckpoint.FolderFor(run, 4)
                let code, stderr = popoStderr [ "eval"; "--adapter"; ck; "--eval-problems"; "4"; "--samples"; "2"; "--threads"; "1"; "--difficulty"; "tiny"; "--max-new-tokens"; "8"; "--out"; Path.Combine(root, "eval") ]
                Expect.equal code 0 $"eval --adapter: {stderr}"
                let next = configOf [ "--adapter"; ck; "--out"; Path.Combine(root, "next"); "--difficulty"; "tiny" ]
                Expect.equal (next.LoraR, next.LoraTargetModules, next.LoraDropout, next.Model) (4, "all-linear", 0.1, Path.GetFullPath(Path.Combine(run, "checkpoints", "warmup", "model"))) "the adapter sets the LoRA keys and the base"
                let merged = Path.Combine(root, "merged")
                let code, stderr = popoStderr [ "export"; "--merge"; "--checkpoint"; ck; "--out"; merged ]
                Expect.equal code 0 $"export: {stderr}"
                let code, stderr = popoStderr [ "eval"; "--model"; merged; "--eval-problems"; "4"; "--samples"; "2"; "--threads"; "1"; "--difficulty"; "tiny"; "--max-new-tokens"; "8"; "--out"; Path.Combine(root, "eval-merged") ]
                Expect.equal code 0 $"eval --model merged: {stderr}"
                let code, stderr = popoStderr [ "export"; "--checkpoint"; ck; "--out"; Path.Combine(root, "m2") ]
                Expect.equal code 2 "export without --merge"
                Expect.stringContains stderr "--merge" "names the flag")

        testList "bad LoRA values are refused before the output folder is touched, naming the key, file or field" [
            for name, flags, fragment in
                [ "an unknown target module", [ "--lora-r"; "4"; "--lora-target-modules"; "q_proj,attn" ], "lora_target_modules"
                  "dropout 1", [ "--lora-r"; "4"; "--lora-dropout"; "1" ], "lora_dropout"
                  "a negative rank", [ "--lora-r"; "-1" ], "lora_r"
                  "alpha 0", [ "--lora-r"; "4"; "--lora-alpha"; "0" ], "lora_alpha"
                  "alpha not a number", [ "--lora-r"; "4"; "--lora-alpha"; "big" ], "lora_alpha"
                  "no adapter folder", [ "--adapter"; "/nonexistent/adapter" ], "adapter_config.json"
                  "bf16 on a bf16 base", [ "--lora-r"; "4"; "--dtype"; "bfloat16"; "--bf16" ], "drop --bf16" ] do
                testCase name <| fun () ->
                    withTemp (fun root ->
                        let fresh = Path.Combine(root, "fresh")
                        let code, stderr = popoStderr ([ "train"; "--out"; fresh ] @ flags)
                        Expect.notEqual code 0 "non-zero exit"
                        Expect.stringContains stderr fragment "the error names it"
                        Expect.isFalse (Directory.Exists fresh) "no output folder created")
            testCase "a key that contradicts the adapter's config" <| fun () ->
                withTemp (fun root ->
                    let adapter = Path.Combine(root, "adapter")
                    Directory.CreateDirectory adapter |> ignore
                    PeftAdapterConfig.Write(adapter, LoraSettings(8, 16.0, 0.0, [ "q_proj"; "v_proj" ], false), root)
                    let code, stderr = popoStderr [ "train"; "--out"; Path.Combine(root, "fresh"); "--adapter"; adapter; "--lora-r"; "4" ]
                    Expect.notEqual code 0 "non-zero exit"
                    Expect.stringContains stderr "'lora_r'" "names the key"
                    Expect.stringContains stderr "r = 8" "and the adapter's field")
        ]
    ]
