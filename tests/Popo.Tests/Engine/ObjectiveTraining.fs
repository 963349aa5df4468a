/// The engine's objectives inside a training step on a tiny Qwen2 policy: the EMA target against the
/// spec's closed form (docs/design.md §2.8, §4 E), no gradient into the target (§4 S), POPO skipping negatives
/// (§2.6), and no native tensor leak over 100 optimizer steps.
module Popo.Tests.Engine.ObjectiveTraining

open System
open Expecto
open FsCheck
open FsCheck.FSharp
open TorchSharp
open Popo.Engine.Model
open Popo.Engine.Objectives
open Popo.Engine.Policy
open Popo.Engine.Rollout
open Popo.Spec
open Popo.Tests
open Popo.Tests.Engine.ModelFixtures
open Popo.Tests.Engine.ObjectiveFixtures

let private tinyConfig () =
    ModelConfig(VocabSize = 6, HiddenSize = 8, IntermediateSize = 12, NumHiddenLayers = 1,
                NumAttentionHeads = 2, NumKeyValueHeads = 1, MaxPositionEmbeddings = 32)

/// theta <- theta + 0.1 N(0, 1), as an optimizer step would move it.
let private perturb (m: torch.nn.Module) (seed: int) =
    use noGrad = torch.no_grad ()
    use g = new torch.Generator(uint64 seed, torch.CPU)
    for struct (_, p) in m.named_parameters() do
        use noise = torch.randn(p.shape, dtype = p.dtype, generator = g)
        p.add_(noise, alpha = 0.1) |> ignore

type private EmaCase = { Model: TinyModel; Tau: float; Steps: int; Dtype: ScalarType }

let private emaCase (taus: Gen<float>) =
    gen {
        let! model = tinyModelGen
        let! tau = taus
        let! steps = Gen.choose (0, 8)
        let! dtype = Gen.elements [ ScalarType.Float64; ScalarType.Float32 ]
        return { Model = model; Tau = tau; Steps = steps; Dtype = dtype }
    }

/// Runs k perturb-then-update steps; returns theta_0, the thetas each update used, and the final target.
let private emaRun (c: EmaCase) =
    use model = randomModel c.Model.Config c.Model.Seed c.Dtype
    let policy = Qwen2Policy(model)
    let target = policy.FrozenClone()
    use ema = new EmaTarget(model, target.Model)
    let theta0 = flatParameters model
    let thetas =
        [ for s in 1 .. c.Steps do
              perturb model (c.Model.Seed + s)
              yield flatParameters model
              ema.Update c.Tau ]
    let xi = flatParameters ema.Target
    theta0, thetas, xi, ema.Target.parameters() |> Seq.forall (fun p -> not p.requires_grad)

/// A tiny policy with a POPO objective (similarity and entropy on), float64, no target noise.
let private popoSetup (options: PopoOptions) (seed: int) =
    let model = randomModel (tinyConfig ()) seed ScalarType.Float64
    let policy = Qwen2Policy(model)
    let objective =
        new PopoObjective("popo", policy, Func<IPolicy>(fun () -> policy.FrozenClone() :> IPolicy), 8,
                          options, 1.0, torch.CPU, ScalarType.Float64, int64 seed)
    model, policy, objective

/// One or two groups of G = 2-6 completions of 1-5 tokens over the 6-token vocabulary, rewards 0/1.
type private RolloutCase = { Prompt: int[]; Completions: int[][]; Rewards: float[]; GroupSize: int; Seed: int }

let private rolloutCase =
    gen {
        let! g = Gen.choose (2, 6)
        let! groups = Gen.choose (1, 2)
        let! prompt = Gen.choose (1, 3) |> Gen.bind (fun n -> Gen.arrayOfLength n (Gen.choose (0, 5)))
        let! completions = Gen.arrayOfLength (g * groups) (Gen.choose (1, 5) |> Gen.bind (fun n -> Gen.arrayOfLength n (Gen.choose (0, 5))))
        let! rewards = Gen.arrayOfLength (g * groups) (Gen.elements [ 0.0; 1.0 ])
        let! seed = Gen.choose (0, 100_000)
        return { Prompt = prompt; Completions = completions; Rewards = rewards; GroupSize = g; Seed = seed }
    }

let private gradsOf (parameters: seq<Modules.Parameter>) =
    parameters |> Seq.map (fun p -> gradValues p) |> Array.concat

let private property name gen body = testProperty name (Prop.forAll (Arb.fromGen gen) body)

/// A policy that forwards through another and records the rows (batch size) of every forward.
type private RowCounting(inner: IPolicy) =
    member val Rows = ResizeArray<int64>()
    interface IPolicy with
        member this.ForwardHidden(ids, attention, positions) =
            this.Rows.Add ids.shape.[0]
            inner.ForwardHidden(ids, attention, positions)
        member _.Logits hidden = inner.Logits hidden
        member _.TokenStatistics(hidden, tokens, temperature, entropy, mask) = inner.TokenStatistics(hidden, tokens, temperature, entropy, mask)
        member _.Parameters = inner.Parameters
        member _.Module = inner.Module

let private liveTensors () = DisposeScopeManager.Statistics.ThreadTotalLiveCount

/// Live tensors on this thread after 1 and after 100 full steps: sample, reward, Prepare, micro-batch
/// Backward, clip, AdamW, AfterOptimizerStep, everything per step disposed as the trainer does.
let private liveCounts (makeObjective: IPolicy -> IObjective) =
    use model = randomModel (tinyConfig ()) 11 ScalarType.Float32
    let policy = Qwen2Policy(model)
    use objective = makeObjective policy
    let parameters = Seq.append policy.Parameters objective.ExtraParameters |> Seq.toArray
    use optimizer = torch.optim.AdamW(parameters, lr = 1e-3, weight_decay = 0.01)
    use generator = new torch.Generator(5UL, torch.CPU)
    let prompts = [| for p in 0 .. 1 do for _ in 1 .. 4 -> [| p; 2 + p |] |]
    let step () =
        let sample = Sampler.Generate(model, prompts, SamplerOptions(MaxNewTokens = 4, Generator = generator, StopTokenIds = [| 5 |]))
        use batch = sample.WithRewards((sample.Completions |> Array.map (fun c -> if c.Length > 0 && c.[0] % 2 = 0 then 1.0 else 0.0)), 4)
        let metrics = StepMetrics()
        use prepared = objective.Prepare(batch, metrics)
        let micro = prepared.TrainRows |> Array.chunkBySize 3
        // TorchSharp 0.107's AdamW.zero_grad leaves one undisposed Tensor wrapper per parameter with a
        // gradient (freed only by the GC); a scope disposes them so that the count measures our code.
        do
            use _ = torch.NewDisposeScope()
            optimizer.zero_grad()
        for rows in micro do objective.Backward(prepared, rows, micro.Length, metrics) |> ignore
        torch.nn.utils.clip_grad_norm_(parameters, 1.0) |> ignore
        optimizer.step() |> ignore
        objective.AfterOptimizerStep()
    step ()
    let afterOne = liveTensors ()
    for _ in 2 .. 100 do step ()
    afterOne, liveTensors ()

[<Tests>]
let tests =
    testList "engine/objectives/training" [
        property "the EMA target after k updates equals the spec's closed form, and never requires gradient"
            (emaCase (Gen.frequency [ 1, Gen.constant 0.995; 4, Generators.uniform 0.0 1.0 ])) <|
            fun c ->
                let theta0, thetas, xi, frozen = emaRun c
                let tol = if c.Dtype = ScalarType.Float64 then Accuracy.engine64 else Accuracy.engine32
                frozen && allClose tol (xi.ToArray()) ((Momentum.closedForm c.Tau theta0 thetas).ToArray())

        property "tau = 0 makes the target the online policy and tau = 1 keeps theta_0, bit for bit"
            (emaCase (Gen.elements [ 0.0; 1.0 ])) <|
            fun c ->
                let theta0, thetas, xi, _ = emaRun c
                let expected = if c.Tau = 0.0 then List.fold (fun _ t -> t) theta0 thetas else theta0
                xi.ToArray() = expected.ToArray()

        testCase "an EMA momentum outside [0, 1] is rejected" <| fun () ->
            use model = randomModel (tinyConfig ()) 1 ScalarType.Float64
            let target = Qwen2Policy(model).FrozenClone()
            use ema = new EmaTarget(model, target.Model)
            Expect.throwsT<ArgumentOutOfRangeException> (fun () -> ema.Update 1.5) "tau = 1.5"
            Expect.throwsT<ArgumentOutOfRangeException> (fun () -> ema.Update -0.1) "tau = -0.1"

        property "no gradient reaches the EMA target through L_sim; the predictor and the policy get one" rolloutCase <|
            fun c ->
                use scope = torch.NewDisposeScope()
                let rewards = c.Rewards |> Array.mapi (fun i r -> if i = 0 then 1.0 else r)   // at least one positive
                let model, policy, objective = popoSetup (PopoOptions(PredictorHidden = 16, FeatureNoise = 0.02)) c.Seed
                use _ = model
                use _ = objective
                use batch = batchOf policy c.Prompt c.Completions rewards c.GroupSize
                use prepared = objective.Prepare(batch, StepMetrics())
                let emaState = objective.State() |> Seq.filter (fun kv -> kv.Key.StartsWith "ema.") |> Seq.map (fun kv -> kv.Value) |> Seq.toArray
                let before = emaState |> Array.collect values
                objective.Backward(prepared, prepared.TrainRows, 1, StepMetrics()) |> ignore
                emaState.Length = Seq.length (model.parameters())
                && emaState |> Array.forall (fun t -> not t.requires_grad && isNull t.grad)
                && (emaState |> Array.collect values) = before
                && gradsOf objective.ExtraParameters |> Array.exists (fun g -> g <> 0.0)
                && gradsOf policy.Parameters |> Array.exists (fun g -> g <> 0.0)

        property "the EMA target forwards the positive rows of a micro-batch only (L_sim weighs the others by 0)" rolloutCase <|
            fun c ->
                use scope = torch.NewDisposeScope()
                use model = randomModel (tinyConfig ()) c.Seed ScalarType.Float64
                let policy = Qwen2Policy(model)
                let target = RowCounting(policy.FrozenClone())
                use objective =
                    new PopoObjective("popo", policy, Func<IPolicy>(fun () -> target :> IPolicy), 8,
                                      PopoOptions(PredictorHidden = 16), 1.0, torch.CPU, ScalarType.Float64, int64 c.Seed)
                use batch = batchOf policy c.Prompt c.Completions c.Rewards c.GroupSize
                use prepared = objective.Prepare(batch, StepMetrics())
                let w = values prepared.PerRow
                let micro = prepared.TrainRows |> Array.chunkBySize 3
                for rows in micro do objective.Backward(prepared, rows, micro.Length, StepMetrics()) |> ignore
                let expected = [ for rows in micro do
                                     let positives = rows |> Array.filter (fun i -> w.[int i] > 0.0)
                                     if positives.Length > 0 then yield int64 positives.Length ]
                List.ofSeq target.Rows = expected
                |> Prop.classify (expected.IsEmpty) "no positive"

        property "a micro-batch without a positive leaves every gradient untouched" rolloutCase <|
            fun c ->
                use scope = torch.NewDisposeScope()
                let model, policy, objective = popoSetup (PopoOptions(PredictorHidden = 16)) c.Seed
                use _ = model
                use _ = objective
                use batch = batchOf policy c.Prompt c.Completions c.Rewards c.GroupSize
                use prepared = objective.Prepare(batch, StepMetrics())
                let negatives = c.Rewards |> Array.indexed |> Array.filter (fun (_, r) -> r = 0.0) |> Array.map (fst >> int64)
                if negatives.Length > 0 then Expect.isFalse (objective.Backward(prepared, negatives, 1, StepMetrics())) "negatives alone produce no gradient"
                Seq.append policy.Parameters objective.ExtraParameters |> Seq.forall (fun p -> isNull p.grad)

        property "with entropy_scope = positive or beta_ent = 0 Prepare keeps exactly the positive-weight rows, and negatives add no gradient"
            (Gen.zip rolloutCase (Gen.elements [ true; false ])) <|
            fun (c, positiveScope) ->
                use scope = torch.NewDisposeScope()
                let options =
                    if positiveScope then PopoOptions(PredictorHidden = 16, FeatureNoise = 0.0, EntropyScope = EntropyScope.Positive)
                    else PopoOptions(PredictorHidden = 16, FeatureNoise = 0.0, BetaEntropy = 0.0)
                let model, policy, objective = popoSetup options c.Seed
                use _ = model
                use _ = objective
                use batch = batchOf policy c.Prompt c.Completions c.Rewards c.GroupSize
                use prepared = objective.Prepare(batch, StepMetrics())
                let w = values prepared.PerRow
                let lps, _ = unpad batch.CompletionLengths (values batch.OldLogProbs)
                let specWeights = Weights.batchWeights Weights.WeightConfig.Default c.GroupSize c.Rewards lps
                let positives = [| for i in 0 .. w.Length - 1 do if w.[i] > 0.0 then yield int64 i |]
                let all = [| 0L .. int64 (w.Length - 1) |]
                let parameters = Seq.append policy.Parameters objective.ExtraParameters |> Seq.toArray
                let gradientOver rows =
                    for p in parameters do
                        match p.grad with
                        | null -> ()
                        | g -> g.zero_() |> ignore
                    objective.Backward(prepared, rows, 1, StepMetrics()) |> ignore
                    gradsOf parameters
                let ok =
                    allClose Accuracy.engine64 w specWeights
                    && prepared.TrainRows = positives
                    && (positives.Length = 0 || allClose Accuracy.engine64 (gradientOver all) (gradientOver positives))
                ok |> Prop.classify (positives.Length = 0) "no positive" |> Prop.classify (positives.Length = all.Length) "all positive"

        testCase "with entropy over all rollouts and beta_ent > 0 Prepare keeps every row" <| fun () ->
            use scope = torch.NewDisposeScope()
            let model, policy, objective = popoSetup (PopoOptions(PredictorHidden = 16)) 3
            use _ = model
            use _ = objective
            use batch = batchOf policy [| 1 |] [| [| 2; 3 |]; [| 4 |]; [| 0; 1; 5 |]; [| 3 |] |] [| 0.0; 1.0; 0.0; 0.0 |] 4
            use prepared = objective.Prepare(batch, StepMetrics())
            Expect.equal prepared.TrainRows [| 0L; 1L; 2L; 3L |] "every row is trained (negatives carry the entropy bonus)"

        testCase "live tensors after 100 POPO optimizer steps equal the count after 1" <| fun () ->
            let options = PopoOptions(PredictorHidden = 16)
            let afterOne, afterHundred =
                liveCounts (fun policy ->
                    new PopoObjective("popo", policy, Func<IPolicy>(fun () -> (policy :?> Qwen2Policy).FrozenClone() :> IPolicy), 8,
                                      options, 1.0, torch.CPU, ScalarType.Float32, 3L))
            Expect.equal afterHundred afterOne "live tensors on this thread"

        testCase "live tensors after 100 GRPO optimizer steps (with a k3 reference) equal the count after 1" <| fun () ->
            let options = GrpoOptions(Beta = 0.04, LossType = LossType.Dapo)
            let afterOne, afterHundred =
                liveCounts (fun policy ->
                    new GrpoObjective("grpo", policy, Func<IPolicy>(fun () -> (policy :?> Qwen2Policy).FrozenClone() :> IPolicy), options, 1.0))
            Expect.equal afterHundred afterOne "live tensors on this thread"
    ]
