/// Numerical faults (issue 10): non-finite logits, from the first step (a checkpoint whose finite weights
/// overflow float32; a NaN or Inf weight itself is refused at load, issue 35) or appearing mid-run, are detected at the step they appear; the step is skipped (no weight
/// changes), logged and marked in the metrics, and after max_bad_steps the run stops with a clear error
/// and exit code 1. Every objective gives finite losses and gradients on all-negative, all-positive,
/// single-token and empty completions.
module Popo.Tests.Reliability.Numerics

open System
open System.IO
open System.Text.Json
open Expecto
open FsCheck
open FsCheck.FSharp
open TorchSharp
open Popo.Engine.Checkpoints
open Popo.Engine.Configuration
open Popo.Engine.Model
open Popo.Engine.Objectives
open Popo.Engine.Policy
open Popo.Engine.Rollout
open Popo.Engine.Tokenizers
open Popo.Engine.Training
open Popo.Tests.Engine.ModelFixtures
open Popo.Tests.Engine.ObjectiveFixtures
open Popo.Tests.Reliability.Harness

let private smallFlags (out: string) =
    [ [ "--out"; out ]; [ "--hidden-size"; "16" ]; [ "--layers"; "1" ]; [ "--heads"; "2" ]; [ "--kv-heads"; "1" ]
      [ "--intermediate-size"; "32" ]; [ "--sft-steps"; "0" ]; [ "--steps"; "5" ]; [ "--prompts-per-step"; "2" ]
      [ "--group-size"; "4" ]; [ "--max-new-tokens"; "6" ]; [ "--eval-problems"; "4" ]; [ "--save-every"; "1" ]
      [ "--predictor-hidden"; "16" ]; [ "--threads"; "1" ]; [ "--difficulty"; "tiny" ]; [ "--max-bad-steps"; "2" ] ]

/// metrics.jsonl rows as (step, skipped_update, non_finite).
let private marks (run: string) =
    File.ReadAllLines(Path.Combine(run, "metrics.jsonl"))
    |> Array.map (fun l ->
        let r = JsonDocument.Parse(l).RootElement
        r.GetProperty("step").GetInt32(), r.GetProperty("skipped_update").GetDouble(), r.GetProperty("non_finite").GetDouble())

/// Sets model.norm.weight to `value` in a saved model.safetensors. A NaN or infinite weight is refused at load
/// (issue 35, Reliability/UntrustedInputs.fs), so the faults here are finite weights that overflow float32: every
/// position's final hidden state, hence every logit, becomes non-finite in the forward pass.
let private poison (modelFolder: string) (value: float32) =
    let file = Path.Combine(modelFolder, HfCheckpoint.SingleFile)
    let st = SafeTensorsFile.Open file
    let tensors = st.Tensors.Keys |> Seq.map (fun k -> k, st.Read k) |> List.ofSeq
    let norm = tensors |> List.find (fun (k, _) -> k = "model.norm.weight") |> snd
    norm.fill_(value.ToScalar()) |> ignore
    SafeTensorsFile.Write(file, tensors |> List.map (fun (k, t) -> struct (k, t)), readOnlyDict [ "format", "pt" ])

let private nonFiniteStart (value: float32) =
    withTemp (fun root ->
        let modelFolder = Path.Combine(root, "model")
        let config = flagConfig (smallFlags (Path.Combine(root, "unused")))
        let struct (model, tokenizer) = ModelFactory.Create(config, torch.CPU)
        do use _ = model in ModelFactory.Save(model, tokenizer, modelFolder, null)
        poison modelFolder value
        let before = tensorBytes (Path.Combine(modelFolder, HfCheckpoint.SingleFile))
        let run = Path.Combine(root, "run")
        let args = "train" :: "--model" :: modelFolder :: (smallFlags run |> List.tail |> List.concat) @ [ "--out"; run ]
        let code, stderr = runPopo 120_000 args
        Expect.equal code 1 $"exit code 1: {stderr}"
        for step in 1 .. 3 do
            Expect.stringContains stderr $"step {step}: non-finite logits during rollout; update skipped" "each bad step is logged when it happens"
        Expect.stringContains stderr "step 3: 3 steps had non-finite logits, loss or gradient (max_bad_steps = 2); stopping" "a clear final error"
        Expect.sequenceEqual (marks run) [ 1, 1.0, 1.0; 2, 1.0, 1.0; 3, 1.0, 1.0 ] "every bad step has its metrics row, marked skipped and non-finite"
        for step in 1 .. 2 do
            let saved = tensorBytes (Path.Combine(TrainingCheckpoint.FolderFor(run, step), "model", HfCheckpoint.SingleFile))
            Expect.isTrue (saved = before) $"step-{step} holds the starting weights: no update was applied"
        Expect.isFalse (Directory.Exists(TrainingCheckpoint.FolderFor(run, 3))) "no checkpoint after the stopping step")

/// Objectives built as the trainer builds them, for an algorithm preset.
let private objectiveFor (algo: string) (policy: Qwen2Policy) (model: Qwen2ForCausalLM) =
    let config = ConfigLoader.Resolve(null, ResizeArray [ struct ("algo", algo); struct ("predictor_hidden", "8") ])
    ObjectiveRegistry.Create(algo, ObjectiveContext(policy, Func<IPolicy>(fun () -> policy.FrozenClone() :> IPolicy), model.Config.HiddenSize,
                                                    config, torch.CPU, model.Dtype))

type private Group = AllNegative | AllPositive | SingleToken | Empty | Mixed

/// 1-3 groups of G = 1-4, each all-negative, all-positive, single-token (one non-stop token), empty (the stop
/// token alone: empty text) or mixed; a float32 or float64 policy; an algorithm.
let private edgeCase =
    gen {
        let! g = Gen.choose (1, 4)
        let! kinds = Gen.choose (1, 3) |> Gen.bind (fun n -> Gen.listOfLength n (Gen.elements [ AllNegative; AllPositive; SingleToken; Empty; Mixed ]))
        let! algo = Gen.elements (List.ofSeq ObjectiveRegistry.Names)
        let! dtype = Gen.elements [ ScalarType.Float32; ScalarType.Float64 ]
        let! seed = Gen.choose (0, 10_000)
        let! lengths = Gen.listOfLength (g * kinds.Length) (Gen.choose (1, 5))
        let! rewardBits = Gen.listOfLength (g * kinds.Length) (Gen.elements [ 0.0; 1.0 ])
        return g, kinds, algo, dtype, seed, lengths, rewardBits
    }

let private stop = 5

let private finiteStep (g, kinds: Group list, algo, dtype, seed, lengths: int list, rewardBits: float list) =
    use scope = torch.NewDisposeScope()
    let config = ModelConfig(VocabSize = 6, HiddenSize = 8, IntermediateSize = 12, NumHiddenLayers = 1, NumAttentionHeads = 2,
                             NumKeyValueHeads = 1, MaxPositionEmbeddings = 32)
    use model = randomModel config seed dtype
    let policy = Qwen2Policy(model)
    use objective = objectiveFor algo policy model
    let rows = kinds |> List.collect (fun k -> List.replicate g k) |> Array.ofList
    let completions =
        rows |> Array.mapi (fun i kind ->
            match kind with
            | SingleToken -> [| 1 + i % 4 |]
            | Empty -> [| stop |]
            | _ -> Array.init lengths.[i] (fun t -> if t = lengths.[i] - 1 then stop else (i + t) % 5))
    let rewards =
        rows |> Array.mapi (fun i kind ->
            match kind with
            | AllNegative -> 0.0
            | AllPositive -> 1.0
            | _ -> rewardBits.[i])
    use batch = batchOf policy [| 1; 2 |] completions rewards g
    let metrics = StepMetrics()
    use prepared = objective.Prepare(batch, metrics)
    let parameters = Seq.append policy.Parameters objective.ExtraParameters |> Array.ofSeq
    let micro = prepared.TrainRows |> Array.chunkBySize 2
    for rows in micro do objective.Backward(prepared, rows, micro.Length, metrics) |> ignore
    let finite (xs: float seq) = xs |> Seq.forall Double.IsFinite
    let values = metrics.ToDictionary()
    let loss = match values.TryGetValue "loss" with | true, v -> v | _ -> 0.0
    (finite (Popo.Tests.Engine.ObjectiveFixtures.values prepared.PerRow)
     && Double.IsFinite loss
     && parameters |> Array.forall (fun p -> finite (gradValues p)))
    |> Prop.classify true algo
    |> Prop.classify (prepared.TrainRows.Length = 0) "nothing to train"

[<Tests>]
let tests =
    testSequenced <| testList "reliability/numerics" [
        testCase "weights overflowing to NaN logits: every step is detected, skipped, logged and marked; after max_bad_steps popo exits 1" <| fun () ->
            nonFiniteStart 3e38f
        testCase "weights overflowing to -Inf logits: every step is detected, skipped, logged and marked; after max_bad_steps popo exits 1" <| fun () ->
            nonFiniteStart -3e38f

        testCase "overflowing weights during the supervised warm-up: each step is skipped and logged; after max_bad_steps popo exits 1" <| fun () ->
            withTemp (fun root ->
                let modelFolder = Path.Combine(root, "model")
                let struct (model, tokenizer) = ModelFactory.Create(flagConfig (smallFlags root), torch.CPU)
                do use _ = model in ModelFactory.Save(model, tokenizer, modelFolder, null)
                poison modelFolder 3e38f
                let run = Path.Combine(root, "run")
                let flags = smallFlags run |> List.map (function [ "--sft-steps"; _ ] -> [ "--sft-steps"; "5" ] | p -> p) |> List.concat
                let code, stderr = runPopo 120_000 ("train" :: "--model" :: modelFolder :: flags)
                Expect.equal code 1 $"exit code 1: {stderr}"
                for step in 1 .. 3 do
                    Expect.stringContains stderr $"warm-up step {step}: non-finite loss or gradient (loss " "each bad step is logged"
                Expect.stringContains stderr "warm-up step 3: 3 steps had a non-finite loss or gradient (max_bad_steps = 2); stopping" "a clear final error"
                Expect.isFalse (stderr.Contains "warm-up step 4") "stopped at the third bad step")

        testCase "overflowing weights appearing mid-run are detected at the step they appear, and training stops after max_bad_steps" <| fun () ->
            withTemp (fun root ->
                let run = Path.Combine(root, "run")
                let flags = smallFlags run |> List.map (function [ "--max-bad-steps"; _ ] -> [ "--max-bad-steps"; "1" ] | p -> p)
                Expect.throws (fun () -> Trainer.Start(flagConfig flags, Recorder(crashAt = 3)) |> ignore) "stopped after step 2"
                poison (Path.Combine(TrainingCheckpoint.FolderFor(run, 2), "model")) 3e38f
                let log = Recorder()
                let e = Expect.throwsT<TrainingDivergedException> (fun () -> Trainer.Resume(run, log) |> ignore) "diverged"
                let bad = log.Lines |> Seq.filter (fun l -> l.Contains "non-finite") |> List.ofSeq
                Expect.equal bad.Length 2 "two bad steps logged"
                Expect.stringStarts bad.[0] "step 3: non-finite logits" "the first bad step is the one after the poisoned checkpoint"
                Expect.stringStarts bad.[1] "step 4: non-finite logits" "then step 4"
                let rows = marks run
                Expect.sequenceEqual (rows |> Array.map (fun (s, _, nf) -> s, nf)) [ 1, 0.0; 2, 0.0; 3, 1.0; 4, 1.0 ] "non_finite marks steps 3 and 4 only"
                Expect.isTrue (rows |> Array.forall (fun (s, skipped, _) -> s < 3 || skipped = 1.0)) "bad steps are skipped updates")

        testPropertyWithConfig { FsCheckConfig.defaultConfig with maxTest = 60 }
            "every objective's loss, weights or advantages and gradients are finite on all-negative, all-positive, single-token and empty completions" <|
            Prop.forAll (Arb.fromGen edgeCase) finiteStep
    ]
