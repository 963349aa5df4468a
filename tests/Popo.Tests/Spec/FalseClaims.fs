/// Pinned counterexamples to the false claims of docs/design.md §4 (see proofs/false-claims.md). Each case is a
/// fixed input where the claim fails, with the first-order formula that predicts the failure.
module Popo.Tests.Spec.FalseClaims

open Expecto
open MathNet.Numerics.LinearAlgebra
open Popo.Spec
open Popo.Tests
open Popo.Tests.Spec.Check

let private logitsOf (p: float[]) = Vector<float>.Build.DenseOfArray(p |> Array.map log)
let private indicator (n: int) (s: int list) (value: int -> float) = Vector<float>.Build.Dense(n, fun k -> if List.contains k s then value k else 0.0)

/// The distribution after one ascent step of size eta along direction d on logits z.
let private step (eta: float) (z: Vector<float>) (d: Vector<float>) = Softmax.softmaxT 1.0 (z + eta * d)

[<Tests>]
let tests =
    testList "spec/false-claims" [
        testCase "false: every non-target probability falls (a small token rises when the target is not the mode)" <| fun () ->
            // p = (0.1, 0.85, 0.05), target 0: dp_2/deta = p_2 (|p|^2 - p_0 - p_2) = 0.05 (0.735 - 0.15) = 0.02925 > 0.
            let z = logitsOf [| 0.1; 0.85; 0.05 |]
            let d = Softmax.ascentDirection (indicator 3 [ 0 ] (fun _ -> 1.0)) z
            let rate = Softmax.firstOrderChange z d
            expectClose Accuracy.veryHigh rate.[2] (0.05 * (0.735 - 0.15)) "first-order rate of the small token"
            let p' = step 0.1 z d
            Expect.isGreaterThan p'.[2] 0.05 "the small non-target token rose"
            Expect.isLessThan p'.[1] 0.85 "the mode fell"
            Expect.isGreaterThan p'.[0] 0.1 "the target rose (N1)"

        testCase "false: every positive rises (a small positive falls under self-normalised weights)" <| fun () ->
            // S = {0, 1}, p = (0.5, 0.01, 49 tokens of 0.01): q = p / P_S on S, d = q - p;
            // dp_1/deta = p_1 (q_1 - p_1 - p.q + |p|^2) = 0.01 (0.01961 - 0.01 - 0.49039 + 0.255) < 0.
            let p = Array.append [| 0.5; 0.01 |] (Array.create 49 0.01)
            let z = logitsOf p
            let pS = 0.51
            let d = Softmax.ascentDirection (indicator p.Length [ 0; 1 ] (fun k -> p.[k] / pS)) z
            let rate = Softmax.firstOrderChange z d
            Expect.isLessThan rate.[1] 0.0 "first-order rate of the small positive"
            let p' = step 0.1 z d
            Expect.isLessThan p'.[1] 0.01 "the small positive fell"
            Expect.isGreaterThan (p'.[0] + p'.[1]) pS "the positive mass still rose (N3)"

        testCase "false: uniform weights raise the positive mass" <| fun () ->
            // S = {0, 1}, p = (0.9, 0.001, 0.099), w = (1/2, 1/2): dP_S/deta =
            // (1 - P_S)(p.q - sum_S p^2) + P_S sum_{not S} p^2 = 0.099 (0.4505 - 0.810001) + 0.901 * 0.009801 < 0.
            let p = [| 0.9; 0.001; 0.099 |]
            let z = logitsOf p
            let d = Softmax.ascentDirection (indicator 3 [ 0; 1 ] (fun _ -> 0.5)) z
            let rate = Softmax.firstOrderChange z d
            let expected = 0.099 * (0.4505 - 0.810001) + 0.901 * 0.099 * 0.099
            expectClose Accuracy.veryHigh (rate.[0] + rate.[1]) expected "first-order rate of P_S"
            let p' = step 0.1 z d
            Expect.isLessThan (p'.[0] + p'.[1]) 0.901 "the positive mass fell"

        testCase "false: softmax weights over sampled positives are unbiased (all-correct two-token bandit drifts to the mode)" <| fun () ->
            // V = 2, L = 1, G = 2, theta = (0, 1), S = both tokens: grad log P_S = 0, yet the softmax-weighted
            // estimator has expectation q (1 - q)(2q - 1) (1, -1) with q = pi(0) = 1 / (1 + e).
            let policy = Bandit.create 2 1 (Vector<float>.Build.DenseOfArray [| 0.0; 1.0 |])
            let e = Bandit.expectation policy (fun _ -> true) 2 Bandit.Condition.AtLeastOneSuccess (Bandit.weightedEstimator Weights.WeightConfig.Default)
            let q = 1.0 / (1.0 + exp 1.0)
            let bias = q * (1.0 - q) * (2.0 * q - 1.0)
            expectClose Accuracy.veryHigh e.[0] bias "bias on the minority token's logit"
            expectClose Accuracy.veryHigh e.[1] -bias "bias on the mode's logit"
            Expect.isLessThan bias -0.09 "the bias is not small"
            let u = Bandit.expectation policy (fun _ -> true) 2 Bandit.Condition.AtLeastOneSuccess (Bandit.weightedEstimator { Weights.WeightConfig.Default with Mode = Weights.WeightMode.Uniform })
            Expect.isLessThanOrEqual (u.L2Norm()) 1e-15 "uniform weights are unbiased here"

        testCase "false: POPO's token-normalised NLL is an unbiased estimator of grad log P_S" <| fun () ->
            // Fixed length L = 2, G = 3: E[grad] = E[1/N+ | success] grad log P_S, a factor well below 1.
            let policy = Bandit.create 2 2 (Vector<float>.Build.DenseOfArray [| 0.3; -0.2; 1.0; 0.0; -0.5; 0.4 |])
            let correct (y: int[]) = y.[0] = 1
            let uniform = { Weights.WeightConfig.Default with Mode = Weights.WeightMode.Uniform }
            let e = Bandit.expectation policy correct 3 Bandit.Condition.AtLeastOneSuccess (Bandit.tokenLevelEstimator uniform)
            let g = Bandit.gradLogSuccess policy correct
            let factor = Bandit.tokenLevelScale 3 2 (Bandit.successProbability policy correct)
            Expect.isLessThan factor 0.5 "the factor is far from 1"
            Expect.isTrue (Seq.forall2 (fun a b -> Accuracy.close 1e-12 a (factor * b)) e g) "parallel with that factor"
            Expect.isGreaterThan ((e - g).L2Norm()) 0.1 "so the estimator is biased"
    ]
