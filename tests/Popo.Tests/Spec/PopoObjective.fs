module Popo.Tests.Spec.PopoObjective

open Expecto
open FsCheck
open FsCheck.FSharp
open MathNet.Numerics.LinearAlgebra
open Popo.Spec
open Popo.Spec.PopoObjective
open Popo.Tests
open Popo.Tests.Generators
open Popo.Tests.Spec.Check

let private seed = Gen.choose (0, System.Int32.MaxValue)
let private withSeed g = Gen.zip g seed

let private dotRagged (a: float[][]) (b: float[][]) = Array.map2 (Array.map2 (*)) a b |> Array.sumBy Array.sum
let private normRagged (a: float[][]) = sqrt (dotRagged a a)
let private addRagged (s: float) (a: float[][]) (d: float[][]) = Array.map2 (Array.map2 (fun x y -> x + s * y)) a d

let private logitDirection (logits: Vector<float>[][]) (rng: System.Random) = logits |> Array.map (Array.map (fun z -> randomVector z.Count rng))
let private dotLogits (a: Vector<float>[][]) (b: Vector<float>[][]) = Array.map2 (Array.map2 (fun (x: Vector<float>) y -> x.DotProduct y)) a b |> Array.sumBy Array.sum
let private addLogits (s: float) (a: Vector<float>[][]) (d: Vector<float>[][]) = Array.map2 (Array.map2 (fun (x: Vector<float>) y -> x + s * y)) a d

let private classifyCase (c: PopoCase) (p: bool) =
    p
    |> Prop.classify (not (hasPositive c.Inputs.Weights)) "no positive"
    |> Prop.classify (c.Inputs.Weights |> Array.forall (fun w -> w > 0.0)) "all positive"

/// Number of rollouts (rows) of a case.
let private rowsOf (c: PopoCase) = c.Inputs.Weights.Length

[<Tests>]
let tests =
    testList "spec/popo" [
        property "N+ counts the tokens of rollouts with positive weight, at least 1" popoCase <|
            fun c ->
                let expected = Array.fold2 (fun acc w (l: float[]) -> if w > 0.0 then acc + l.Length else acc) 0 c.Inputs.Weights c.Inputs.TokenLogProbs
                positiveTokenCount c.Inputs.Weights c.Inputs.TokenLogProbs = max 1 expected |> classifyCase c

        property "L_nll is nonnegative and at most the largest -l over weighted tokens" (Gen.zip weightConfig positiveGroup) <|
            fun (wc, PositiveGroup g) ->
                let w = Weights.groupWeights wc g.Rewards g.TokenLogProbs
                let nll = nllLoss w g.TokenLogProbs
                let worst = Array.map2 (fun wi (l: float[]) -> if wi > 0.0 then -(Array.min l) else 0.0) w g.TokenLogProbs |> Array.max
                nll >= 0.0 && nll <= worst * (Array.sum w) + 1e-12

        property "L_nll gradient -w_i / N+ matches finite differences" (withSeed (Gen.zip weightConfig group)) <|
            fun ((wc, g), s) ->
                let w = Weights.groupWeights wc g.Rewards g.TokenLogProbs
                let d = raggedDirection g.TokenLogProbs s
                let grad = nllGrad w g.TokenLogProbs
                agrees (dotRagged grad d) (directional (fun e -> nllLoss w (addRagged e g.TokenLogProbs d))) (normRagged grad * normRagged d)

        property "L_nll and its gradient are zero without a positive weight" (groupWith groupSize [ AllNegative ]) <|
            fun g ->
                let w = Weights.groupWeights Weights.WeightConfig.Default g.Rewards g.TokenLogProbs
                nllLoss w g.TokenLogProbs = 0.0 && nllGrad w g.TokenLogProbs |> Array.forall (Array.forall ((=) 0.0))

        property "L_sim lies in [-1, 1]" popoCase <|
            fun c ->
                let v = simLoss c.Inputs.Weights c.Inputs.Predictor c.Inputs.Target
                (v >= -1.0 - 1e-12 && v <= 1.0 + 1e-12) |> classifyCase c

        property "L_sim is invariant to positive rescaling of any predictor or target row" (Gen.zip3 popoCase (uniform 1e-3 1e3) (uniform 1e-3 1e3)) <|
            fun (c, a, b) ->
                let i = c.Inputs
                let u = i.Predictor.Clone()
                let z = i.Target.Clone()
                u.SetRow(0, a * u.Row 0)
                z.SetRow(rowsOf c - 1, b * z.Row(rowsOf c - 1))
                Accuracy.close 1e-12 (simLoss i.Weights i.Predictor i.Target) (simLoss i.Weights u z)

        property "L_sim is zero when no rollout has weight" (popoCaseWith 8 6 |> Gen.map (fun c -> { c with Inputs = { c.Inputs with Weights = Array.zeroCreate c.Inputs.Weights.Length } })) <|
            fun c -> simLoss c.Inputs.Weights c.Inputs.Predictor c.Inputs.Target = 0.0

        property "L_sim gradient with respect to each predictor row is orthogonal to that row" popoCase <|
            fun c ->
                let g = simGrad c.Inputs.Weights c.Inputs.Predictor c.Inputs.Target
                Seq.forall (fun r -> abs (g.Row(r).DotProduct(c.Inputs.Predictor.Row r)) <= 1e-12 * max 1.0 (g.Row(r).L2Norm() * c.Inputs.Predictor.Row(r).L2Norm())) [ 0 .. rowsOf c - 1 ]
                |> classifyCase c

        property "L_sim gradient matches finite differences" (withSeed popoCase) <|
            fun (c, s) ->
                let i = c.Inputs
                let d = Matrix<float>.Build.Dense(i.Predictor.RowCount, i.Predictor.ColumnCount, let r = System.Random s in fun _ _ -> 2.0 * r.NextDouble() - 1.0)
                let g = simGrad i.Weights i.Predictor i.Target
                agrees ((g.PointwiseMultiply d).Enumerate() |> Seq.sum) (directional (fun e -> simLoss i.Weights (i.Predictor + e * d) i.Target)) (g.FrobeniusNorm() * d.FrobeniusNorm())

        property "L_ent lies in [-log V, 0]" popoCase <|
            fun c ->
                let v = c.Inputs.Logits.[0].[0].Count
                let e = entLoss c.Config.Temperature c.Config.EntropyScope c.Inputs.Weights c.Inputs.Logits
                e <= 1e-12 && e >= -(log (float v)) - 1e-12

        property "L_ent gradient matches finite differences" (withSeed popoCase) <|
            fun (c, s) ->
                let i = c.Inputs
                let d = logitDirection i.Logits (System.Random s)
                let g = entGrad c.Config.Temperature c.Config.EntropyScope i.Weights i.Logits
                let f e = entLoss c.Config.Temperature c.Config.EntropyScope i.Weights (addLogits e i.Logits d)
                agrees (dotLogits g d) (directional f) (sqrt (dotLogits g g) * sqrt (dotLogits d d))

        property "L_ent with positive scope does not read the negatives' logits" (withSeed popoCase) <|
            fun (c, s) ->
                let i = c.Inputs
                let rng = System.Random s
                let moved = Array.map2 (fun w (zs: Vector<float>[]) -> if w > 0.0 then zs else zs |> Array.map (fun z -> z + 5.0 * randomVector z.Count rng)) i.Weights i.Logits
                entLoss c.Config.Temperature EntropyScope.Positive i.Weights i.Logits = entLoss c.Config.Temperature EntropyScope.Positive i.Weights moved
                |> classifyCase c

        property "a micro-batch without positive contributes exactly zero loss and zero gradient" (popoCaseWith 8 6 |> Gen.map (fun c -> { c with Inputs = { c.Inputs with Weights = Array.zeroCreate c.Inputs.Weights.Length } })) <|
            fun c ->
                let g = gradients c.Config c.Inputs
                loss c.Config c.Inputs = 0.0
                && g.TokenLogProbs |> Array.forall (Array.forall ((=) 0.0))
                && g.Predictor.Enumerate() |> Seq.forall ((=) 0.0)
                && g.Logits |> Array.forall (Array.forall (fun v -> v.Enumerate() |> Seq.forall ((=) 0.0)))

        property "the total's gradients match finite differences jointly in log-probs, predictor outputs and logits" (withSeed popoCase) <|
            fun (c, s) ->
                let i = c.Inputs
                let rng = System.Random s
                let dl = raggedDirection i.TokenLogProbs (rng.Next())
                let du = Matrix<float>.Build.Dense(i.Predictor.RowCount, i.Predictor.ColumnCount, fun _ _ -> 2.0 * rng.NextDouble() - 1.0)
                let dz = logitDirection i.Logits rng
                let g = gradients c.Config i
                let analytic = dotRagged g.TokenLogProbs dl + ((g.Predictor.PointwiseMultiply du).Enumerate() |> Seq.sum) + dotLogits g.Logits dz
                let f e = loss c.Config { i with TokenLogProbs = addRagged e i.TokenLogProbs dl; Predictor = i.Predictor + e * du; Logits = addLogits e i.Logits dz }
                let scale = sqrt (dotRagged g.TokenLogProbs g.TokenLogProbs + g.Predictor.FrobeniusNorm() ** 2.0 + dotLogits g.Logits g.Logits)
                agrees analytic (directional f) (scale * sqrt (dotRagged dl dl + du.FrobeniusNorm() ** 2.0 + dotLogits dz dz))
                |> classifyCase c

        property "the total's logit gradient chained through l = log softmax(z / T)[y] matches finite differences" (withSeed popoCase) <|
            fun (c, s) ->
                let i = c.Inputs
                let d = logitDirection i.Logits (System.Random s)
                let g = fullLogitGradients c.Config i c.Tokens
                let f e =
                    let z = addLogits e i.Logits d
                    loss c.Config { i with Logits = z; TokenLogProbs = Array.map2 (Softmax.tokenLogProbs c.Config.Temperature) z c.Tokens }
                agrees (dotLogits g d) (directional f) (sqrt (dotLogits g g) * sqrt (dotLogits d d))
                |> classifyCase c

        property "with positive entropy scope or beta_ent = 0 the negatives' logits get no gradient" popoCase <|
            fun c ->
                let check cfg =
                    fullLogitGradients cfg c.Inputs c.Tokens
                    |> Array.indexed
                    |> Array.forall (fun (r, gs) -> c.Inputs.Weights.[r] > 0.0 || gs |> Array.forall (fun v -> v.Enumerate() |> Seq.forall ((=) 0.0)))
                (check { c.Config with EntropyScope = EntropyScope.Positive } && check { c.Config with BetaEnt = 0.0 })
                |> classifyCase c

        property "the total divides by grad_accum_steps" popoCase <|
            fun c ->
                let one = loss { c.Config with GradAccumSteps = 1 } c.Inputs
                Accuracy.close Accuracy.veryHigh (loss c.Config c.Inputs) (one / float c.Config.GradAccumSteps)

        testCase "a zero predictor row with positive weight is rejected" <| fun () ->
            let u = Matrix<float>.Build.Dense(1, 3)
            let z = Matrix<float>.Build.Dense(1, 3, 1.0)
            Expect.throwsT<System.ArgumentException> (fun () -> simLoss [| 1.0 |] u z |> ignore) "zero vector has no cosine"
    ]
