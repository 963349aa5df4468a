/// The engine's 2026 GRPO-family options against Popo.Spec.GrpoFamily (docs/design.md §3.1): the loss and its
/// gradient for GSPO's sequence ratio, CISPO, delta, top_entropy_quantile and masked rollouts in float64 and float32;
/// RLVR-Decomposed's advantages; the sampler's truncation flags and mask_truncated_completions inside the objective;
/// the keys' refusals; and a short run of each new algorithm end to end.
module Popo.Tests.Engine.ObjectiveFamily

open System
open System.IO
open System.Text.Json
open Expecto
open FsCheck
open FsCheck.FSharp
open TorchSharp
open Popo.Engine.Configuration
open Popo.Engine.Model
open Popo.Engine.Objectives
open Popo.Engine.Policy
open Popo.Engine.Rollout
open Popo.Engine.Runtime
open Popo.Spec
open Popo.Spec.GrpoFamily
open Popo.Tests
open Popo.Tests.Engine.ModelFixtures
open Popo.Tests.Engine.ObjectiveFixtures
open Popo.Tests.Spec.GrpoFamily

let private property name gen body = testProperty name (Prop.forAll (Arb.fromGen gen) body)

/// The engine options of a spec case: CISPO is loss_type cispo (dapo's total, eps_high the cap).
let private familyOptions (config: FamilyConfig) =
    let lossType =
        match config.Surrogate, config.Grpo.LossType with
        | Surrogate.Cispo _, _ -> LossType.Cispo
        | _, Grpo.LossType.Grpo -> LossType.Grpo
        | _, Grpo.LossType.Bnpo -> LossType.Bnpo
        | _, Grpo.LossType.DrGrpo _ -> LossType.DrGrpo
        | _, Grpo.LossType.Dapo _ -> LossType.Dapo
    GrpoOptions(
        LossType = lossType, EpsilonLow = config.Grpo.EpsLow, Beta = config.Grpo.Beta,
        EpsilonHigh = (match config.Surrogate with Surrogate.Cispo e -> e | _ -> config.Grpo.EpsHigh),
        Delta = (match config.Surrogate with Surrogate.Clipped d when d < infinity -> Nullable d | _ -> Nullable()),
        ImportanceLevel =
            (match config.Level with
             | ImportanceLevel.Sequence -> Popo.Engine.Objectives.ImportanceLevel.Sequence
             | ImportanceLevel.SequenceToken -> Popo.Engine.Objectives.ImportanceLevel.SequenceToken
             | _ -> Popo.Engine.Objectives.ImportanceLevel.Token),
        TopEntropyQuantile = config.TopEntropyQuantile)

let private rounded (c: FamilyCase) : FamilyCase =
    let r (x: float[][]) = if isNull x then x else Array.map (Array.map round32) x
    let b = c.Batch.Batch
    { c with
        Batch =
            { c.Batch with
                Batch = { b with NewLogProbs = r b.NewLogProbs; OldLogProbs = r b.OldLogProbs; RefLogProbs = r b.RefLogProbs; Advantages = Array.map round32 b.Advantages }
                Entropies = r c.Batch.Entropies } }

/// The engine's loss and d loss / d l for a case: masked rollouts as a zeroed completion mask, as the objective does.
let private engine (dtype: ScalarType) (c: FamilyCase) =
    use scope = torch.NewDisposeScope()
    let b = c.Batch.Batch
    let lengths = b.NewLogProbs |> Array.map Array.length
    let l = (padded dtype b.NewLogProbs).requires_grad_(true)
    let reference = if c.Config.Grpo.Beta <> 0.0 then padded dtype b.RefLogProbs else null
    let keep = vectorTensor dtype (c.Batch.Masked |> Array.map (fun m -> if m then 0.0 else 1.0))
    let mask = maskOf dtype lengths * keep.unsqueeze(1L)
    let entropy = if c.Config.TopEntropyQuantile < 1.0 then padded dtype c.Batch.Entropies else null
    let lMax = match c.Config.Grpo.LossType with Grpo.LossType.DrGrpo m -> m | _ -> Array.max lengths
    let total = match c.Config.Grpo.LossType with Grpo.LossType.Dapo t -> float t | _ -> float (Array.sum lengths)
    use terms =
        GrpoLoss.Compute(l, padded dtype b.OldLogProbs, reference, mask, vectorTensor dtype b.Advantages,
                         familyOptions c.Config, lMax, total, 1, entropy)
    terms.Total.backward()
    let grads, pads = unpad lengths (gradValues l)
    terms.Total.ToDouble(), grads, pads

let private agreesWithSpec (dtype: ScalarType) (tol: float) (case: FamilyCase) =
    let c = if dtype = ScalarType.Float32 then rounded case else case
    let loss, grads, pads = engine dtype c
    (Accuracy.close tol loss (GrpoFamily.loss c.Config c.Batch)
     && raggedClose tol grads (GrpoFamily.grad c.Config c.Batch)
     && Array.forall ((=) 0.0) pads)
    |> Prop.classify (c.Config.Level = ImportanceLevel.Sequence) "sequence"
    |> Prop.classify (c.Config.Level = ImportanceLevel.SequenceToken) "sequence_token"
    |> Prop.classify (match c.Config.Surrogate with Surrogate.Cispo _ -> true | _ -> false) "cispo"
    |> Prop.classify (match c.Config.Surrogate with Surrogate.Clipped d -> d < infinity | _ -> false) "delta"
    |> Prop.classify (c.Config.TopEntropyQuantile < 1.0) "entropy mask"
    |> Prop.classify (Array.contains true c.Batch.Masked) "masked rollouts"

let private tinyConfig () =
    ModelConfig(VocabSize = 6, HiddenSize = 8, IntermediateSize = 12, NumHiddenLayers = 1,
                NumAttentionHeads = 2, NumKeyValueHeads = 1, MaxPositionEmbeddings = 32)

/// The policy's gradient after one Backward of the given rows, then zeroed.
let private gradientOf (policy: IPolicy) (objective: IObjective) (prepared: PreparedBatch) (rows: int64[]) =
    for p in policy.Parameters do p.grad <- null
    objective.Backward(prepared, rows, 1, StepMetrics()) |> ignore
    let g = policy.Parameters |> Seq.collect (fun p -> if isNull p.grad then Array.zeroCreate (int (p.numel())) else values p.grad) |> Array.ofSeq
    for p in policy.Parameters do p.grad <- null
    g

let private tempRoot () =
    let dir = Path.Combine(Path.GetTempPath(), "popo-family-" + Guid.NewGuid().ToString("N"))
    Directory.CreateDirectory dir |> ignore
    dir

let private refused (flags: (string * string) list) (fragment: string) =
    try
        ConfigLoader.Resolve(null, flags |> List.map (fun (k, v) -> struct (k, v))) |> ignore
        failtestf "accepted %A" flags
    with :? ConfigException as e -> Expect.stringContains e.Message fragment "the refusal names the key"

/// A tiny run: one small layer, two prompts of four rollouts, 8 tokens, three warm-up steps, two RL steps.
let private tinyRun (out: string) (extra: string list) =
    [ "train"; "--out"; out; "--hidden-size"; "16"; "--layers"; "1"; "--heads"; "2"; "--kv-heads"; "1"; "--intermediate-size"; "32"
      "--sft-steps"; "3"; "--sft-batch-size"; "8"; "--steps"; "2"; "--prompts-per-step"; "2"; "--group-size"; "4"
      "--max-new-tokens"; "8"; "--eval-problems"; "2"; "--threads"; "1"; "--difficulty"; "tiny" ] @ extra

[<Tests>]
let tests =
    testList "engine/objectives/family" [
        property "float64 loss and gradient equal the spec's: sequence ratios, CISPO, delta, the entropy mask and masked rollouts" familyCase <|
            agreesWithSpec ScalarType.Float64 Accuracy.engine64

        property "float32 loss and gradient equal the spec's on the same rounded inputs" familyCase <|
            agreesWithSpec ScalarType.Float32 Accuracy.engine32

        property "PSR, NSR and W-REINFORCE advantages equal the spec's"
            (Gen.zip (Gen.choose (1, 32) |> Gen.bind (fun n -> Gen.arrayOfLength n (Gen.oneof [ Gen.elements [ 0.0; 1.0 ]; Generators.uniform -1.0 1.0 ])))
                     (Generators.uniform 0.0 1.0)) <|
            fun (rewards, lambda) ->
                [ SignedAdvantage.Psr, psr; SignedAdvantage.Nsr, nsr; SignedAdvantage.WReinforce lambda, wReinforce lambda ]
                |> List.forall (fun (engine, spec) -> Advantages.Signed(rewards, engine) = signedAdvantages spec rewards)

        testCase "the sampler flags a rollout truncated exactly when it holds no stop token" <| fun () ->
            use model = randomModel (tinyConfig ()) 3 ScalarType.Float32
            use generator = new torch.Generator(7UL, torch.CPU)
            let prompts = [| for p in 0 .. 3 do for _ in 1 .. 4 -> [| p % 6; (p + 2) % 6 |] |]
            let batch = Sampler.Generate(model, prompts, SamplerOptions(MaxNewTokens = 4, Generator = generator, StopTokenIds = [| 5; 2 |]))
            let expected = batch.Completions |> Array.map (fun c -> not (Array.exists (fun t -> t = 5 || t = 2) c))
            Expect.sequenceEqual batch.Truncated expected "truncated = no stop token"
            Expect.isTrue (Array.contains true expected && Array.contains false expected) "both kinds occur (else the check is void)"
            Expect.isTrue (Array.forall2 (fun t (c: int[]) -> not t || c.Length = 4) batch.Truncated batch.Completions) "a truncated rollout is max_new_tokens long"
            use rewarded = batch.WithRewards(Array.zeroCreate batch.Rows, 4)
            Expect.sequenceEqual rewarded.Truncated batch.Truncated "WithRewards keeps the flags"

        testCase "mask_truncated_completions: truncated rows give no gradient, the others the unmasked objective's" <| fun () ->
            for seed in [ 1; 2; 3 ] do
                use model = randomModel (tinyConfig ()) seed ScalarType.Float64
                let policy = Qwen2Policy(model)
                let rng = Random(seed)
                let completions = Array.init 8 (fun _ -> Array.init (rng.Next(1, 6)) (fun _ -> rng.Next(0, 6)))
                let truncated = Array.init 8 (fun i -> i % 3 = 1)
                let rewards = Array.init 8 (fun i -> if i % 2 = 0 then 1.0 else 0.0)
                let plain = batchOf policy [| 1; 2 |] completions rewards 4
                use batch =
                    new GenerationBatch(
                        InputIds = plain.InputIds, AttentionMask = plain.AttentionMask, PositionIds = plain.PositionIds,
                        PromptLength = plain.PromptLength, CompletionIds = plain.CompletionIds, CompletionMask = plain.CompletionMask,
                        OldLogProbs = plain.OldLogProbs, Completions = completions, Rewards = rewards, GroupSize = 4, Truncated = truncated)
                let reference = Func<IPolicy>(fun () -> policy.FrozenClone() :> IPolicy)
                for lossType in [ LossType.Grpo; LossType.Bnpo ] do
                    use masked = new GrpoObjective("grpo", policy, reference, GrpoOptions(LossType = lossType, MaskTruncatedCompletions = true), 1.0)
                    use unmasked = new GrpoObjective("grpo", policy, reference, GrpoOptions(LossType = lossType), 1.0)
                    let metrics = StepMetrics()
                    use p1 = masked.Prepare(batch, metrics)
                    use p0 = unmasked.Prepare(batch, StepMetrics())
                    Expect.equal (metrics.ToDictionary().["truncated_masked"]) 3.0 "the count of masked rows"
                    let cut = [| for i in 0 .. 7 do if truncated.[i] then int64 i |]
                    let kept = [| for i in 0 .. 7 do if not truncated.[i] then int64 i |]
                    let gradient (o: GrpoObjective) p rows = gradientOf (policy :> IPolicy) (o :> IObjective) p rows
                    Expect.isTrue (gradient masked p1 cut |> Array.forall ((=) 0.0)) $"{lossType}: truncated rows carry no gradient"
                    let g1, g0 = gradient masked p1 kept, gradient unmasked p0 kept
                    Expect.isTrue (g0 |> Array.exists (fun x -> x <> 0.0)) "the kept rows have a gradient (else the check is void)"
                    Expect.isTrue (allClose 1e-12 g1 g0) $"{lossType}: kept rows as without masking"

        testCase "the new keys are refused where they cannot apply, with the key named" <| fun () ->
            for key, value in [ "delta", "2"; "top_entropy_quantile", "0.5"; "mask_truncated_completions", "true"; "importance_sampling_level", "sequence" ] do
                for algo in [ "popo"; "rft" ] do refused [ "algo", algo; key, value ] key
            refused [ "algo", "grpo"; "delta", "0.9" ] "delta"
            refused [ "algo", "grpo"; "importance_sampling_level", "tokens" ] "importance_sampling_level"
            refused [ "algo", "grpo"; "top_entropy_quantile", "0" ] "top_entropy_quantile"
            let c = ConfigLoader.Resolve(null, [ "algo", "grpo"; "delta", "1.5"; "top_entropy_quantile", "0.2"; "mask_truncated_completions", "true" ])
            Expect.equal (c.Delta, c.TopEntropyQuantile, c.MaskTruncatedCompletions) (1.5, 0.2, true) "accepted for the GRPO family"

        testCase "psr, nsr, w_reinforce, gspo, cispo and grpo with delta, top_entropy_quantile and mask_truncated_completions run end to end" <| fun () ->
            let root = tempRoot ()
            try
                let runs =
                    [ "psr", []; "nsr", []; "w_reinforce", [ "--w-reinforce-lambda"; "0.2" ]; "gspo", []; "cispo", []
                      "grpo", [ "--delta"; "1.5"; "--top-entropy-quantile"; "0.5"; "--mask-truncated-completions"; "true" ] ]
                for algo, extra in runs do
                    let out = Path.Combine(root, algo)
                    Expect.equal (Popo.Cli.Program.Main(Array.ofList (tinyRun out ([ "--algo"; algo ] @ extra)))) 0 $"{algo} exit code"
                    let rows =
                        File.ReadAllLines(Path.Combine(out, "metrics.jsonl")) |> Array.filter (fun l -> l.Length > 0)
                        |> Array.map (fun l -> JsonDocument.Parse(l).RootElement)
                    let losses =
                        rows |> Array.choose (fun r ->
                            match r.TryGetProperty("loss") with
                            | true, v when v.ValueKind = JsonValueKind.Number -> Some(v.GetDouble())
                            | _ -> None)
                    Expect.isNonEmpty losses $"{algo}: RL steps logged a loss"
                    Expect.isTrue (losses |> Array.forall Double.IsFinite) $"{algo}: finite losses"
                    let config = JsonDocument.Parse(File.ReadAllText(Path.Combine(out, "config.json"))).RootElement
                    Expect.equal (config.GetProperty("algo").GetString()) algo $"{algo}: the run's algorithm"
            finally Directory.Delete(root, true)
    ]
