/// The reference numbers of docs/design.md §5 (one group, G = 4), given there to 6 decimals (GRPO to 4).
/// The golden values are also derived in proofs/reference-numbers.md.
module Popo.Tests.Spec.Reference

open Expecto
open MathNet.Numerics.LinearAlgebra
open Popo.Spec
open Popo.Spec.PopoObjective
open Popo.Tests
open Popo.Tests.Spec.Check

let private sixDecimals = 5e-7
let private fourDecimals = 5e-5

let private lps = [| [| -0.2; -0.4 |]; [| -1.0; -2.0; -0.5 |]; [| -0.1; -0.3; -0.2 |]; [| -0.6; -0.8; -0.4; -0.2 |] |]
let private rewards = [| 1.0; 0.0; 1.0; 1.0 |]
let private w = Weights.groupWeights Weights.WeightConfig.Default rewards lps

/// Unit vectors whose cosines are the given values: u_i = (1, 0), z_i = (c_i, sqrt(1 - c_i^2)).
let private withCosines (cs: float[]) =
    Matrix<float>.Build.DenseOfRowArrays(cs |> Array.map (fun _ -> [| 1.0; 0.0 |])),
    Matrix<float>.Build.DenseOfRowArrays(cs |> Array.map (fun c -> [| c; sqrt (1.0 - c * c) |]))

[<Tests>]
let tests =
    testList "spec/reference" [
        testCase "softmax weights are [0.342009, 0, 0.377978, 0.280013]" <| fun () ->
            Array.iter2 (fun a e -> expectWithin sixDecimals a e "weight") w [| 0.342009; 0.0; 0.377978; 0.280013 |]
            Expect.equal w.[1] 0.0 "the negative gets exactly 0"

        testCase "N+ is 9" <| fun () -> Expect.equal (positiveTokenCount w lps) 9 "tokens of the three positives"

        testCase "L_nll is 0.110224 with softmax weights and 0.118519 with uniform weights" <| fun () ->
            expectWithin sixDecimals (nllLoss w lps) 0.110224 "softmax"
            let u = Weights.groupWeights { Weights.WeightConfig.Default with Mode = Weights.WeightMode.Uniform } rewards lps
            expectWithin sixDecimals (nllLoss u lps) 0.118519 "uniform"

        testCase "dL_nll/dl_{i,t} is -w_i / 9" <| fun () ->
            let g = nllGrad w lps
            Array.iteri (fun i (gi: float[]) -> gi |> Array.iter (fun x -> expectClose Accuracy.veryHigh x (-w.[i] / 9.0) "gradient")) g

        testCase "L_sim is -0.806200 with cosines [0.9, 0.1, 0.8, 0.7]" <| fun () ->
            let u, z = withCosines [| 0.9; 0.1; 0.8; 0.7 |]
            expectWithin sixDecimals (simLoss w u z) -0.806200 "L_sim"

        testCase "L_ent is -1.75 with entropies 1.5 (positives) and 2.5 (negative)" <| fun () ->
            let h = lps |> Array.mapi (fun i l -> Array.create l.Length (if rewards.[i] > 0.0 then 1.5 else 2.5))
            expectClose Accuracy.veryHigh (entLossOfEntropies EntropyScope.All w h) -1.75 "L_ent"

        testCase "the total with alpha 0.1 and beta_ent 0.01 is 0.012104" <| fun () ->
            let u, z = withCosines [| 0.9; 0.1; 0.8; 0.7 |]
            let h = lps |> Array.mapi (fun i l -> Array.create l.Length (if rewards.[i] > 0.0 then 1.5 else 2.5))
            let total = combine PopoConfig.Default w (nllLoss w lps) (simLoss w u z) (entLossOfEntropies EntropyScope.All w h)
            expectWithin sixDecimals total 0.012104 "total"

        testCase "GRPO advantages for rewards [1, 0, 1, 1] are [0.4999, -1.4997, 0.4999, 0.4999]" <| fun () ->
            let a = Grpo.advantages Grpo.ScaleRewards.Group 4 rewards
            Array.iter2 (fun x e -> expectWithin fourDecimals x e "advantage") a [| 0.4999; -1.4997; 0.4999; 0.4999 |]
            // Exactly: mean 0.75, Bessel std 0.5, so A = 0.25 / 0.5001 and -0.75 / 0.5001.
            expectClose Accuracy.veryHigh a.[1] (-0.75 / 0.5001) "exact form"
    ]
