/// The host-side and small tensor pieces of the engine's objectives against the spec or a hand
/// computation: POPO weights, GRPO advantages, token statistics, feature pooling, the predictor and the
/// objective registry (docs/design.md §2.1-§2.4, §3).
module Popo.Tests.Engine.ObjectiveParts

open System
open Expecto
open FsCheck
open FsCheck.FSharp
open MathNet.Numerics.LinearAlgebra
open TorchSharp
open Popo.Engine.Configuration
open Popo.Engine.Model
open Popo.Engine.Objectives
open Popo.Engine.Policy
open Popo.Spec
open Popo.Tests
open Popo.Tests.Generators
open Popo.Tests.Engine.ModelFixtures
open Popo.Tests.Engine.ObjectiveFixtures

/// A generation batch of 1-3 groups of the same size G (1-16), each with its own reward pattern.
type private WeightBatch = { Config: Weights.WeightConfig; GroupSize: int; Rewards: float[]; TokenLogProbs: float[][] }

let private weightBatch =
    gen {
        let! config = weightConfig
        let! g = groupSize
        let! n = Gen.choose (1, 3)
        let! groups = Gen.arrayOfLength n (groupWith (Gen.constant g) [ AllPositive; AllNegative; SinglePositive; Mixed ])
        return
            { Config = config
              GroupSize = g
              Rewards = groups |> Array.collect (fun x -> x.Rewards)
              TokenLogProbs = groups |> Array.collect (fun x -> x.TokenLogProbs) }
    }

let private optionsOf (c: Weights.WeightConfig) =
    PopoOptions(
        Weights = (if c.Mode = Weights.WeightMode.Uniform then WeightMode.Uniform else WeightMode.Softmax),
        WeightTemperature = c.Temperature,
        LengthNormalizeWeights = c.LengthNormalize,
        WeightCap = (match c.Cap with Some cap -> Nullable cap | None -> Nullable()))

let private scaling =
    Gen.elements [ Grpo.ScaleRewards.Group, RewardScaling.Group; Grpo.ScaleRewards.Batch, RewardScaling.Batch; Grpo.ScaleRewards.None, RewardScaling.None ]

/// Ragged logits [n][len] of [V] with sampled tokens and a temperature.
type private TokenCase = { Logits: Vector<float>[][]; Tokens: int[][]; Temperature: float }

let private tokenCase =
    gen {
        let! n = Gen.choose (1, 8)
        let! v = Gen.choose (2, 16)
        let! lengths = Gen.arrayOfLength n (Gen.choose (1, 12))
        let! logits = lengths |> Array.map (fun len -> Gen.arrayOfLength len (logitsOfSize v)) |> Gen.sequenceToArray
        let! tokens = lengths |> Array.map (fun len -> Gen.arrayOfLength len (Gen.choose (0, v - 1))) |> Gen.sequenceToArray
        let! t = temperature
        return { Logits = logits; Tokens = tokens; Temperature = t }
    }

/// Hidden states [B][n_i] of [D] (right-padded in the tensor with random garbage that must be ignored).
type private PoolCase = { Hidden: float[][][]; Padding: float[]; D: int }

let private poolCase =
    gen {
        let! b = Gen.choose (1, 6)
        let! d = Gen.choose (1, 8)
        let! lengths = Gen.arrayOfLength b (Gen.choose (1, 10))
        let! hidden = lengths |> Array.map (fun len -> Gen.arrayOfLength len (Gen.arrayOfLength d normal)) |> Gen.sequenceToArray
        let n = Array.max lengths
        let! padding = Gen.arrayOfLength (b * n * d) (uniform -100.0 100.0)
        return { Hidden = hidden; Padding = padding; D = d }
    }

/// hidden [B,N,D] with the real rows first and the padding values after them.
let private hiddenTensor (c: PoolCase) =
    let n = c.Hidden |> Array.map Array.length |> Array.max
    let flat =
        c.Hidden |> Array.mapi (fun i rows ->
            Array.init n (fun t -> if t < rows.Length then rows.[t] else Array.init c.D (fun j -> c.Padding.[(i * n + t) * c.D + j])) |> Array.concat)
        |> Array.concat
    torch.tensor(flat, ReadOnlySpan<int64>([| int64 c.Hidden.Length; int64 n; int64 c.D |]))

/// A batch of 1-6 ragged completions (1-6 tokens) after a 1-3 token prompt, and a nonempty row subset.
type private ForwardCase = { Prompt: int[]; Completions: int[][]; Rows: int[]; Seed: int }

let private forwardCase =
    gen {
        let! b = Gen.choose (1, 6)
        let! prompt = Gen.choose (1, 3) |> Gen.bind (fun n -> Gen.arrayOfLength n (Gen.choose (0, 5)))
        let! completions = Gen.arrayOfLength b (Gen.choose (1, 6) |> Gen.bind (fun n -> Gen.arrayOfLength n (Gen.choose (0, 5))))
        let! keep = Gen.arrayOfLength b (Gen.elements [ true; false ])
        let! first = Gen.choose (0, b - 1)
        let! seed = Gen.choose (0, 100_000)
        let rows = [| for i in 0 .. b - 1 do if keep.[i] || i = first then yield i |]
        return { Prompt = prompt; Completions = completions; Rows = rows; Seed = seed }
    }

let private property name gen body = testProperty name (Prop.forAll (Arb.fromGen gen) body)

/// Uniform(-b, b) has variance b^2 / 3.
let private xavierBound (fanIn: int64) (fanOut: int64) = sqrt (6.0 / float (fanIn + fanOut))

let private tinyContext (config: TrainConfig) =
    let model = randomModel (ModelConfig(VocabSize = 5, HiddenSize = 8, IntermediateSize = 8, NumHiddenLayers = 1,
                                         NumAttentionHeads = 2, NumKeyValueHeads = 1, MaxPositionEmbeddings = 16))
                            1 torch.ScalarType.Float64
    let policy = Qwen2Policy(model)
    ObjectiveContext(policy, Func<IPolicy>(fun () -> policy.FrozenClone() :> IPolicy), 8, config, torch.CPU, torch.ScalarType.Float64), model

[<Tests>]
let tests =
    testList "engine/objectives/parts" [
        property "POPO weights equal the spec's batch weights for every mode, length normalisation and cap" weightBatch <|
            fun b ->
                let scores = b.TokenLogProbs |> Array.map Array.average
                let lengths = b.TokenLogProbs |> Array.map Array.length
                let engine = PopoWeights.Compute(scores, lengths, b.Rewards, b.GroupSize, optionsOf b.Config)
                allClose Accuracy.engine64 engine (Weights.batchWeights b.Config b.GroupSize b.Rewards b.TokenLogProbs)
                |> Prop.classify b.Config.Cap.IsSome "capped"
                |> Prop.classify b.Config.LengthNormalize "length-normalised"
                |> Prop.classify (b.Config.Mode = Weights.WeightMode.Uniform) "uniform"

        property "GRPO advantages equal the spec's with group, batch and no scaling" (Gen.zip rewardBatch scaling) <|
            fun (b, (specScale, engineScale)) ->
                allClose Accuracy.engine64 (Advantages.Compute(b.Rewards, b.GroupSize, engineScale)) (Grpo.advantages specScale b.GroupSize b.Rewards)

        property "token log-probs and entropies equal the spec's softmax at temperature T" tokenCase <|
            fun c ->
                use scope = torch.NewDisposeScope()
                let lengths = c.Tokens |> Array.map Array.length
                let logits = paddedLogits ScalarType.Float64 c.Logits
                let l, _ = unpad lengths (values (TokenStatistics.LogProbs(logits, paddedTokens c.Tokens, c.Temperature)))
                let h, _ = unpad lengths (values (TokenStatistics.Entropy(logits, c.Temperature)))
                raggedClose Accuracy.engine64 l (Array.map2 (Softmax.tokenLogProbs c.Temperature) c.Logits c.Tokens)
                && raggedClose Accuracy.engine64 h (c.Logits |> Array.map (Array.map (Softmax.entropyT c.Temperature)))

        property "mean pooling averages the real completion positions and ignores padding" poolCase <|
            fun c ->
                use scope = torch.NewDisposeScope()
                let lengths = c.Hidden |> Array.map Array.length
                let pooled = values (TokenStatistics.PoolFeatures(hiddenTensor c, maskOf ScalarType.Float64 lengths, FeaturePooling.Mean))
                let expected = c.Hidden |> Array.collect (fun rows -> Array.init c.D (fun j -> (rows |> Array.sumBy (fun r -> r.[j])) / float rows.Length))
                allClose Accuracy.engine64 pooled expected

        property "last-token pooling takes each row's last real completion position" poolCase <|
            fun c ->
                use scope = torch.NewDisposeScope()
                let lengths = c.Hidden |> Array.map Array.length
                let pooled = values (TokenStatistics.PoolFeatures(hiddenTensor c, maskOf ScalarType.Float64 lengths, FeaturePooling.LastToken))
                pooled = (c.Hidden |> Array.collect Array.last)

        property "the completion forward pass keeps every completion position of the selected rows" forwardCase <|
            fun c ->
                use scope = torch.NewDisposeScope()
                use model =
                    randomModel (ModelConfig(VocabSize = 6, HiddenSize = 8, IntermediateSize = 12, NumHiddenLayers = 1,
                                             NumAttentionHeads = 2, NumKeyValueHeads = 1, MaxPositionEmbeddings = 32))
                                c.Seed torch.ScalarType.Float64
                let policy = Qwen2Policy(model)
                use batch = batchOf policy c.Prompt c.Completions (Array.zeroCreate c.Completions.Length) c.Completions.Length
                use out = CompletionForward.Run(policy, batch, torch.tensor(c.Rows |> Array.map int64))
                let n = c.Rows |> Array.map (fun i -> c.Completions.[i].Length) |> Array.max
                let p = c.Prompt.Length
                use full = model.Forward(batch.InputIds, batch.AttentionMask, batch.PositionIds)
                let rows = torch.tensor(c.Rows |> Array.map int64)
                let expectedLogits = full.Logits.index_select(0L, rows).narrow(1L, int64 (p - 1), int64 n)
                let expectedHidden = full.Hidden.index_select(0L, rows).narrow(1L, int64 p, int64 n)
                let expectedIds = batch.CompletionIds.index_select(0L, rows).narrow(1L, 0L, int64 n)
                out.Ids.shape = [| int64 c.Rows.Length; int64 n |]
                && values out.Ids = values expectedIds
                && values out.Mask = values (batch.CompletionMask.index_select(0L, rows).narrow(1L, 0L, int64 n))
                && allClose Accuracy.engine64 (values out.Logits) (values expectedLogits)
                && allClose Accuracy.engine64 (values out.Hidden) (values expectedHidden)

        testCase "the predictor maps [B,D] to [B,D] with Xavier-uniform weights, zero biases and unit LayerNorm gains" <| fun () ->
            use scope = torch.NewDisposeScope()
            for depth in [ 0; 1; 2 ] do
                use predictor = new Predictor(48, 64, depth, torch.CPU, torch.ScalarType.Float64, 7L)
                let parameters = predictor.named_parameters() |> Seq.map (fun struct (n, p) -> n, p) |> Seq.toList
                let names = parameters |> List.map fst
                let expectedNames =
                    [ for d in 0 .. depth - 1 do
                          yield! [ sprintf "layers.linear%d.weight" d; sprintf "layers.linear%d.bias" d; sprintf "layers.norm%d.weight" d; sprintf "layers.norm%d.bias" d ]
                      yield! [ "layers.out.weight"; "layers.out.bias" ] ]
                Expect.equal names expectedNames (sprintf "depth %d parameter names" depth)
                for name, p in parameters do
                    Expect.equal p.dtype torch.ScalarType.Float64 (name + " dtype")
                    let v = values p
                    if name.EndsWith "weight" && p.dim() = 2L then
                        let bound = xavierBound p.shape.[1] p.shape.[0]
                        let variance = (v |> Array.sumBy (fun x -> x * x)) / float v.Length
                        Expect.isTrue (v |> Array.forall (fun x -> abs x <= bound)) (name + " within the Xavier bound")
                        // 2304+ draws: the sample variance is within 10% of b^2/3 with overwhelming probability,
                        // and the default (Kaiming-uniform, b = 1/sqrt(fan_in)) initialisation is far outside.
                        Expect.isTrue (abs (variance / (bound * bound / 3.0) - 1.0) < 0.1) (sprintf "%s variance %g vs %g" name variance (bound * bound / 3.0))
                    elif name.Contains "norm" && name.EndsWith "weight" then
                        Expect.isTrue (v |> Array.forall ((=) 1.0)) (name + " is all ones")
                    else
                        Expect.isTrue (v |> Array.forall ((=) 0.0)) (name + " is all zeros")
                use x = torch.randn(5L, 48L, dtype = torch.ScalarType.Float64)
                use y = predictor.forward x
                Expect.equal y.shape [| 5L; 48L |] (sprintf "depth %d output shape" depth)
            Expect.throws (fun () -> new Predictor(4, 4, -1, torch.CPU, torch.ScalarType.Float64, 7L) |> ignore) "depth -1 is rejected"

        testCase "an unknown objective name is rejected with the list of valid ones" <| fun () ->
            let context, model = tinyContext (TrainConfig())
            use _ = model
            let e = Expect.throwsC (fun () -> ObjectiveRegistry.Create("ppo", context) |> ignore) id
            Expect.isTrue (e :? ArgumentException) "ArgumentException"
            for name in [ "popo"; "rft"; "grpo"; "dr_grpo"; "dapo" ] do
                Expect.stringContains e.Message name (sprintf "the message lists %s" name)
            Expect.stringContains e.Message "ppo" "the message names the bad objective"

        testCase "registering a name twice throws and keeps the first objective" <| fun () ->
            let e = Expect.throwsC (fun () -> ObjectiveRegistry.Register(Algorithm("grpo", AlgorithmFamily.Grpo, "a second grpo", [||], [||], Func<ObjectiveContext, IObjective>(fun _ -> failwith "must not be called")))) id
            Expect.isTrue (e :? InvalidOperationException) "InvalidOperationException"
            Expect.stringContains e.Message "grpo" "the message names the duplicate"
            let context, model = tinyContext (TrainConfig())
            use _ = model
            use objective = ObjectiveRegistry.Create("grpo", context)
            Expect.isTrue (objective :? GrpoObjective) "grpo still builds the GRPO objective"

        testCase "every registered name builds an objective carrying that name" <| fun () ->
            for name in ObjectiveRegistry.Names |> Seq.toList do
                let context, model = tinyContext (TrainConfig(Algo = name))
                use _ = model
                use objective = ObjectiveRegistry.Create(name, context)
                Expect.equal objective.Name name "objective name"
    ]
