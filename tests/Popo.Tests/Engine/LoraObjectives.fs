/// The objectives under LoRA: a POPO step changes only the adapters and the predictor; POPO's siamese target is the
/// shared frozen base plus an EMA of the adapters that follows the spec's momentum rule (src/Popo.Spec/Momentum.fs),
/// with no second copy of the base; GRPO's reference (beta > 0) is the base with the adapters switched off.
/// proofs/lora-ema.md says why the EMA is taken over the adapters rather than the merged weights.
module Popo.Tests.Engine.LoraObjectives

open System
open Expecto
open FsCheck
open FsCheck.FSharp
open MathNet.Numerics.LinearAlgebra
open TorchSharp
open Popo.Engine.Lora
open Popo.Engine.Model
open Popo.Engine.Objectives
open Popo.Engine.Policy
open Popo.Spec
open Popo.Tests
open Popo.Tests.Engine.ModelFixtures
open Popo.Tests.Engine.ObjectiveFixtures
open Popo.Tests.Engine.LoraFixtures

/// A LoRA policy on a random tiny base: the base policy, the adapters (B moved off zero), the LoRA view.
let private loraPolicy (dtype: ScalarType) (seed: int) =
    let model = randomModel (tinyConfig ()) seed dtype
    let adapters = LoraAdapters.Attach(model, allLinear 4, int64 seed)
    randomizeB adapters seed
    model, adapters, LoraPolicy(Qwen2Policy(model), adapters)

let private batchFor (policy: IPolicy) =
    batchOf policy [| 1; 2 |] [| [| 3; 4; 5 |]; [| 6 |]; [| 7; 8 |]; [| 9; 10; 0; 1 |] |] [| 1.0; 0.0; 1.0; 0.0 |] 4

/// theta <- theta + 0.1 N(0, 1) on every adapter, as an optimizer step would move them.
let private perturb (m: torch.nn.Module) (seed: int) =
    use noGrad = torch.no_grad ()
    use g = new torch.Generator(uint64 seed, torch.CPU)
    for p in m.parameters() do
        use noise = torch.randn(p.shape, dtype = p.dtype, generator = g)
        p.add_(noise, alpha = 0.1) |> ignore

[<Tests>]
let tests =
    testList "engine/lora/objectives" [
        testCase "a POPO step with LoRA changes only the adapters and the predictor; the base gets no gradient and stays bit for bit" <| fun () ->
            let model, adapters, policy = loraPolicy ScalarType.Float32 1
            use _ = model
            use _ = adapters
            use objective = new PopoObjective("popo", policy, Func<IPolicy>(fun () -> policy.FrozenClone() :> IPolicy), 16,
                                              PopoOptions(PredictorHidden = 8), 1.0, torch.CPU, ScalarType.Float32, 3L)
            let trained = Seq.append policy.Parameters objective.ExtraParameters |> Seq.toArray
            Expect.equal trained.Length (2 * adapters.Count + Seq.length objective.ExtraParameters) "AdamW sees adapters + predictor only"
            use optimizer = torch.optim.AdamW(trained, lr = 1e-2)
            let before = baseSnapshot model
            let adaptersBefore = flatParameters adapters
            let predictorBefore = objective.ExtraParameters |> Seq.collect values |> Array.ofSeq
            use batch = batchFor policy
            use prepared = objective.Prepare(batch, StepMetrics())
            Expect.isTrue (objective.Backward(prepared, prepared.TrainRows, 1, StepMetrics())) "a positive to learn from"
            Expect.isTrue (model.parameters() |> Seq.forall (fun p -> isNull p.grad)) "no gradient on the base"
            optimizer.step() |> ignore
            objective.AfterOptimizerStep()
            Expect.equal (baseSnapshot model) before "the base is unchanged"
            Expect.notEqual (flatParameters adapters) adaptersBefore "the adapters moved"
            Expect.notEqual (objective.ExtraParameters |> Seq.collect values |> Array.ofSeq) predictorBefore "the predictor moved"

        testProperty "the adapter EMA after k updates equals the spec's momentum rule, and never requires gradient" <|
            Prop.forAll (Arb.fromGen (Gen.zip (Gen.frequency [ 1, Gen.constant 0.995; 4, Generators.uniform 0.0 1.0 ]) (Gen.choose (0, 6)))) (fun (tau, steps) ->
                let model, adapters, policy = loraPolicy ScalarType.Float64 (steps + 11)
                use _ = model
                use _ = adapters
                let target = policy.FrozenClone()
                use ema = new EmaTarget(policy.Module, target.Module)
                let theta0 = flatParameters adapters
                let thetas =
                    [ for s in 1 .. steps do
                          perturb adapters s
                          yield flatParameters adapters
                          ema.Update tau ]
                let xi = flatParameters target.Adapters
                target.Adapters.parameters() |> Seq.forall (fun p -> not p.requires_grad)
                && allClose Accuracy.engine64 (xi.ToArray()) ((Momentum.closedForm tau theta0 thetas).ToArray()))

        testProperty "EMA(B A) - EMA(B) EMA(A) = 1/2 sum_jk c_j c_k (B_j - B_k)(A_j - A_k): the merged-weight EMA differs by this covariance, zero when A or B stays put" <|
            Prop.forAll (Arb.fromGen (Gen.zip3 (Generators.uniform 0.0 1.0) (Gen.choose (1, 6)) (Gen.choose (0, 100_000)))) (fun (tau, steps, seed) ->
                let rng = System.Random seed
                let matrix rows cols = Matrix<float>.Build.Dense(rows, cols, fun _ _ -> rng.NextDouble() * 2.0 - 1.0)
                let bs = List.init steps (fun _ -> matrix 3 2)
                let moving = List.init steps (fun _ -> matrix 2 4)
                let ema (ms: Matrix<float> list) =
                    let v = ms |> List.map (fun m -> Vector<float>.Build.DenseOfArray(m.ToRowMajorArray()))
                    Matrix<float>.Build.DenseOfRowMajor(ms.Head.RowCount, ms.Head.ColumnCount, (Momentum.closedForm tau v.Head v).ToArray())
                // xi_0 = theta_0, then the t updates used theta_0 .. theta_(t-1): coefficient c_0 goes to theta_0 as well.
                let c = Momentum.coefficients tau steps
                let points (ms: Matrix<float> list) = ms.Head :: ms
                let covariance (bs: Matrix<float> list) (xs: Matrix<float> list) =
                    let b, a = points bs, points xs
                    [ for j in 0 .. steps do for k in 0 .. steps -> c.[j] * c.[k] * ((b.[j] - b.[k]) * (a.[j] - a.[k])) ]
                    |> List.reduce (+) |> fun m -> 0.5 * m
                let gap (bs: Matrix<float> list) (xs: Matrix<float> list) = ema (List.map2 (fun (b: Matrix<float>) a -> b * a) bs xs) - ema bs * ema xs
                let close (x: Matrix<float>) (y: Matrix<float>) = allClose Accuracy.veryHigh (x.ToRowMajorArray()) (y.ToRowMajorArray())
                let still = List.replicate steps moving.Head
                let zero = Matrix<float>.Build.Dense(3, 4)
                close (gap bs moving) (covariance bs moving)
                && (steps < 2 || tau < 1e-6 || tau > 1.0 - 1e-6 || (gap bs moving).FrobeniusNorm() > 1e-12)   // not zero in general
                && close (gap bs still) zero
                && close (gap (List.replicate steps bs.Head) moving) zero)

        testCase "POPO's target is the shared base + the EMA adapters: no second base, its features are those of base merged with the EMA adapters" <| fun () ->
            let model, adapters, policy = loraPolicy ScalarType.Float64 2
            use _ = model
            use _ = adapters
            let tau = 0.9
            use objective = new PopoObjective("popo", policy, Func<IPolicy>(fun () -> policy.FrozenClone() :> IPolicy), 16,
                                              PopoOptions(PredictorHidden = 8, Tau = tau, FeatureNoise = 0.0), 1.0, torch.CPU, ScalarType.Float64, 3L)
            let emaState () = objective.State() |> Seq.filter (fun kv -> kv.Key.StartsWith "ema.") |> Seq.map (fun kv -> kv.Value) |> Seq.toArray
            Expect.equal (emaState () |> Array.sumBy (fun t -> t.numel())) (adapters.Settings.ParameterCount(model.Config)) "the target holds r (in + out) per target linear, nothing of the base"
            let theta0 = flatParameters adapters
            use optimizer = torch.optim.AdamW(Seq.append policy.Parameters objective.ExtraParameters, lr = 1e-2)
            use batch = batchFor policy
            use prepared = objective.Prepare(batch, StepMetrics())
            objective.Backward(prepared, prepared.TrainRows, 1, StepMetrics()) |> ignore
            optimizer.step() |> ignore
            objective.AfterOptimizerStep()
            let xi = emaState () |> Array.collect values
            Expect.isTrue (allClose Accuracy.engine64 xi ((Momentum.update tau theta0 (flatParameters adapters)).ToArray())) "xi_1 = tau xi_0 + (1 - tau) theta_1, xi_0 = theta_0"
            // The target's forward: the base with the EMA adapters applied, equal to a merged copy of them.
            let target = policy.FrozenClone()
            use ema = new EmaTarget(policy.Module, target.Module)
            perturb adapters 5
            ema.Update tau
            use merged = model.Clone()
            target.Adapters.MergeInto merged
            use input = ids ()
            use mask = torch.ones_like input
            use positions = Qwen2ForCausalLM.DefaultPositions(mask, input.shape.[1])
            let viaTarget =
                use noGrad = torch.no_grad ()
                use h = target.ForwardHidden(input, mask, positions)
                values h
            Expect.isTrue (allClose Accuracy.engine64 viaTarget (hiddenOf merged input)) "target features = base merged with the EMA adapters"
            Expect.isTrue (Object.ReferenceEquals(model.Adapters.Active, adapters)) "the online adapters are active again after the target's forward"

        testCase "GRPO's reference (beta > 0) is the base with the adapters off, as TRL with PEFT, and saves no weights" <| fun () ->
            let model, adapters, policy = loraPolicy ScalarType.Float64 3
            use _ = model
            use _ = adapters
            use objective = new GrpoObjective("grpo", policy, Func<IPolicy>(fun () -> policy.WithoutAdapters() :> IPolicy), GrpoOptions(Beta = 0.1, MaxCompletionLength = 8), 1.0)
            use batch = batchFor policy
            use prepared = objective.Prepare(batch, StepMetrics())
            let all = torch.arange(4L)
            let logProbs (p: IPolicy) =
                use noGrad = torch.no_grad ()
                use out = CompletionForward.Run(p, batch, all)
                let struct (l, _) = out.Statistics(1.0, EntropyNeed.None)
                values l
            let baseOnly =
                use off = model.Adapters.Use null
                logProbs (Qwen2Policy model)
            let n = prepared.Reference.shape.[1]
            Expect.equal (values prepared.Reference) baseOnly $"reference log-probs = the base's without adapters ([4, {n}])"
            Expect.notEqual (logProbs policy) baseOnly "the online policy differs (B != 0)"
            Expect.isEmpty (objective.State()) "no reference weights to checkpoint: the base is shared"
    ]
