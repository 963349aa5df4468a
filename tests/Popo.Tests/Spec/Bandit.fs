module Popo.Tests.Spec.Bandit

open Expecto
open FsCheck
open FsCheck.FSharp
open MathNet.Numerics.LinearAlgebra
open Popo.Spec
open Popo.Spec.Bandit
open Popo.Tests
open Popo.Tests.Generators
open Popo.Tests.Spec.Check

let private seed = Gen.choose (0, System.Int32.MaxValue)
let private correctOf (c: BanditCase) (y: int[]) = c.Correct.Contains y
let private uniformWeights = { Weights.WeightConfig.Default with Mode = Weights.WeightMode.Uniform }

/// Expectations are sums of up to 4096 terms of O(1) vectors: they agree with closed forms to ~1e-13.
let private enumerationTol = 1e-10

let private classifyBandit (c: BanditCase) (p: bool) =
    p
    |> Prop.classify (c.GroupSize >= 2) "G >= 2"
    |> Prop.classify (c.Correct.Count >= 2) "|S| >= 2"
    |> Prop.classify (c.Correct.Count = pown c.Policy.Vocab c.Policy.Length) "every sequence correct"

/// A sampled group for the N4 properties: a tabular policy with V in 2-4, L in 1-3, G in 1-8 sampled
/// sequences and rewards from any pattern.
type private N4Case = { Policy: Tabular; Sequences: int[][]; Rewards: float[] }

let private n4Case =
    gen {
        let! v = Gen.choose (2, 4)
        let! l = Gen.choose (1, 3)
        let! theta = vectorOf (v * prefixCount v l) (normal |> Gen.map ((*) 2.0))
        let! g = Gen.choose (1, 8)
        let! ys = Gen.arrayOfLength g (Gen.arrayOfLength l (Gen.choose (0, v - 1)))
        let! pattern = Gen.elements [ AllPositive; AllNegative; SinglePositive; Mixed; Mixed ]
        let! rewards = rewardsFor g pattern
        return { Policy = create v l theta; Sequences = ys; Rewards = rewards }
    }

/// Visits (rollout, position, prefix index) of a group.
let private visits (c: N4Case) =
    [ for i in 0 .. c.Sequences.Length - 1 do
        for t in 0 .. c.Policy.Length - 1 do
            yield i, t, prefixIndex c.Policy.Vocab c.Sequences.[i].[.. t - 1] ]

let private n4Weights (c: N4Case) =
    Weights.groupWeights Weights.WeightConfig.Default c.Rewards (c.Sequences |> Array.map (tokenLogProbs c.Policy))

[<Tests>]
let tests =
    testList "spec/bandit" [
        property "enumerated sequence probabilities sum to one" banditCase <|
            fun c ->
                let total = sequences c.Policy.Vocab c.Policy.Length |> Array.sumBy (fun y -> exp (logProb c.Policy y))
                Accuracy.close 1e-12 total 1.0

        property "grad log pi(y) matches finite differences" (Gen.zip banditCase seed) <|
            fun (c, s) ->
                let rng = System.Random s
                let y = Array.init c.Policy.Length (fun _ -> rng.Next c.Policy.Vocab)
                let d = randomVector c.Policy.Theta.Count rng
                let g = gradLogProb c.Policy y
                agrees (g.DotProduct d) (directional (fun e -> logProb { c.Policy with Theta = c.Policy.Theta + e * d } y)) (g.L2Norm() * d.L2Norm())

        property "N5 bandit identity: sum over S of (pi_y / P_S) grad log pi_y is grad log P_S" (Gen.zip banditCase seed) <|
            fun (c, s) ->
                let d = randomVector c.Policy.Theta.Count (System.Random s)
                let g = gradLogSuccess c.Policy (correctOf c)
                let f e = log (successProbability { c.Policy with Theta = c.Policy.Theta + e * d } (correctOf c))
                agrees (g.DotProduct d) (directional f) (g.L2Norm() * d.L2Norm()) |> classifyBandit c

        property "N5 uniform weights over sampled positives are unbiased for grad log P_S given a success" banditCase <|
            fun c ->
                let e = expectation c.Policy (correctOf c) c.GroupSize Condition.AtLeastOneSuccess (weightedEstimator uniformWeights)
                vclose enumerationTol e (gradLogSuccess c.Policy (correctOf c)) |> classifyBandit c

        property "N5 softmax weights are unbiased when the correct set is a single sequence" (banditCaseMulti |> Gen.map (fun c -> { c with Correct = set [ Seq.head c.Correct ] })) <|
            fun c ->
                let e = expectation c.Policy (correctOf c) c.GroupSize Condition.AtLeastOneSuccess (weightedEstimator Weights.WeightConfig.Default)
                vclose enumerationTol e (gradLogSuccess c.Policy (correctOf c))

        property "N5 token-level uniform NLL is parallel to grad log P_S with factor E[1/N+ | success]" banditCase <|
            fun c ->
                let e = expectation c.Policy (correctOf c) c.GroupSize Condition.AtLeastOneSuccess (tokenLevelEstimator uniformWeights)
                let p = successProbability c.Policy (correctOf c)
                vclose enumerationTol e (tokenLevelScale c.GroupSize c.Policy.Length p * gradLogSuccess c.Policy (correctOf c))
                |> classifyBandit c

        property "REINFORCE's expected gradient per prompt is grad p (scale 1)" banditCase <|
            fun c ->
                let e = expectation c.Policy (correctOf c) c.GroupSize Condition.Always reinforceEstimator
                let p = successProbability c.Policy (correctOf c)
                vclose enumerationTol e (reinforceScale c.GroupSize p * p * gradLogSuccess c.Policy (correctOf c))

        property "GRPO's expected gradient per prompt is grpoScale(G, p) grad p" banditCaseMulti <|
            fun c ->
                let e = expectation c.Policy (correctOf c) c.GroupSize Condition.Always grpoEstimator
                let p = successProbability c.Policy (correctOf c)
                vclose 1e-9 e (grpoScale c.GroupSize p * p * gradLogSuccess c.Policy (correctOf c)) |> classifyBandit c

        property "POPO's expected uniform gradient per prompt is (1 - (1 - p)^G) / p grad p" banditCase <|
            fun c ->
                let e = expectation c.Policy (correctOf c) c.GroupSize Condition.Always (weightedEstimator uniformWeights)
                let p = successProbability c.Policy (correctOf c)
                vclose enumerationTol e (popoScale c.GroupSize p * p * gradLogSuccess c.Policy (correctOf c)) |> classifyBandit c

        property "GRPO's per-prompt scale is close to 1 / sqrt(p (1 - p)) for large G" (Gen.zip (uniform 0.1 0.9) (Gen.elements [ 256; 1024 ])) <|
            fun (p, g) ->
                // The finite-G scale differs from the limit by O(1 / (G p (1 - p))); 3 / (G p (1 - p)) bounds it here.
                let limit = 1.0 / sqrt (p * (1.0 - p))
                abs (grpoScale g p - limit) / limit <= 3.0 / (float g * p * (1.0 - p))

        property "POPO's NLL gradient with respect to theta matches finite differences" (Gen.zip n4Case seed) <|
            fun (c, s) ->
                let w = n4Weights c
                let d = randomVector c.Policy.Theta.Count (System.Random s)
                let g = nllThetaGrad c.Policy w c.Sequences
                let f e =
                    let p = { c.Policy with Theta = c.Policy.Theta + e * d }
                    PopoObjective.nllLoss w (c.Sequences |> Array.map (tokenLogProbs p))
                agrees (g.DotProduct d) (directional f) (g.L2Norm() * d.L2Norm())

        property "N4 at a prefix a positive visits, every token no positive chose there gets logit gradient W_h p_k > 0" n4Case <|
            fun c ->
                let w = n4Weights c
                let g = nllThetaGrad c.Policy w c.Sequences
                let nPlus = float (PopoObjective.positiveTokenCount w (c.Sequences |> Array.map (tokenLogProbs c.Policy)))
                let vs = visits c
                let positivePrefixes = vs |> List.filter (fun (i, _, _) -> w.[i] > 0.0) |> List.map (fun (_, _, h) -> h) |> List.distinct
                positivePrefixes |> List.forall (fun h ->
                    let wh = vs |> List.sumBy (fun (i, _, h') -> if h' = h && w.[i] > 0.0 then w.[i] / nPlus else 0.0)
                    let chosen = vs |> List.choose (fun (i, t, h') -> if h' = h && w.[i] > 0.0 then Some c.Sequences.[i].[t] else None) |> set
                    let p = Softmax.softmaxT 1.0 (logitsAt c.Policy h)
                    Seq.forall (fun k ->
                        chosen.Contains k || (g.[h * c.Policy.Vocab + k] > 0.0 && Accuracy.close 1e-12 g.[h * c.Policy.Vocab + k] (wh * p.[k]))) [ 0 .. c.Policy.Vocab - 1 ])
                |> Prop.classify (positivePrefixes.IsEmpty) "no positive"
                |> Prop.classify (positivePrefixes |> List.exists (fun h -> h > 0)) "deep prefix"

        property "N4 prefixes visited only by negatives (or by no rollout) get no gradient" n4Case <|
            fun c ->
                let w = n4Weights c
                let g = nllThetaGrad c.Policy w c.Sequences
                let positivePrefixes = visits c |> List.filter (fun (i, _, _) -> w.[i] > 0.0) |> List.map (fun (_, _, h) -> h) |> set
                let negativeOnly = visits c |> List.exists (fun (_, _, h) -> not (positivePrefixes.Contains h))
                Seq.forall (fun h -> positivePrefixes.Contains h || Seq.forall (fun k -> g.[h * c.Policy.Vocab + k] = 0.0) [ 0 .. c.Policy.Vocab - 1 ])
                    [ 0 .. prefixCount c.Policy.Vocab c.Policy.Length - 1 ]
                |> Prop.classify negativeOnly "a negative-only prefix"
    ]
