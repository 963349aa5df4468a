module Popo.Tests.Spec.Weights

open Expecto
open FsCheck
open FsCheck.FSharp
open Popo.Spec
open Popo.Spec.Weights
open Popo.Tests
open Popo.Tests.Generators
open Popo.Tests.Spec.Check

let private softmaxConfig = WeightConfig.Default
let private uniformConfig = { WeightConfig.Default with Mode = WeightMode.Uniform }

let private positives (g: Group) = [| for i in 0 .. g.Rewards.Length - 1 do if g.Rewards.[i] > 0.0 then yield i |]

/// Cap slack: water-filling rescales by a float ratio, so a weight may exceed c by a few ulps.
let private capSlack = 1e-12

let private sumOnPositives (g: Group) (w: float[]) = positives g |> Array.sumBy (fun i -> w.[i])

[<Tests>]
let tests =
    testList "spec/weights" [
        property "weights lie in [0, 1] for every option" (Gen.zip weightConfig group) <|
            fun (c, g) ->
                Weights.groupWeights c g.Rewards g.TokenLogProbs |> Array.forall (fun w -> w >= 0.0 && w <= 1.0)
                |> Prop.classify (positiveCount g = 0) "no positive"
                |> Prop.classify (positiveCount g = 1) "one positive"
                |> Prop.classify (positiveCount g = g.Rewards.Length) "all positive"

        property "weights are zero off the positive set" (Gen.zip weightConfig group) <|
            fun (c, g) ->
                Array.forall2 (fun r w -> r > 0.0 || w = 0.0) g.Rewards (Weights.groupWeights c g.Rewards g.TokenLogProbs)

        property "a group with no positive gets all-zero weights" (Gen.zip weightConfig (groupWith groupSize [ AllNegative ])) <|
            fun (c, g) -> Weights.groupWeights c g.Rewards g.TokenLogProbs |> Array.forall ((=) 0.0)

        property "uncapped weights sum to one over the positives" (Gen.zip weightConfig positiveGroup) <|
            fun (c, PositiveGroup g) ->
                let w = Weights.groupWeights { c with Cap = None } g.Rewards g.TokenLogProbs
                Accuracy.close 1e-12 (sumOnPositives g w) 1.0

        property "softmax weights are exp(s_i / T_w) / sum over S+ of exp(s_j / T_w)" (Gen.zip positiveGroup temperature) <|
            fun (PositiveGroup g, t) ->
                let w = Weights.groupWeights { softmaxConfig with Temperature = t } g.Rewards g.TokenLogProbs
                let s = positives g |> Array.map (fun i -> Array.average g.TokenLogProbs.[i] / t)
                // Direct formula, shifted by the maximum only to stay finite.
                let m = Array.max s
                let e = s |> Array.map (fun v -> exp (v - m))
                aclose 1e-12 (positives g |> Array.map (fun i -> w.[i])) (e |> Array.map (fun v -> v / Array.sum e))

        property "softmax weights are invariant to adding one constant to every token log-prob" (Gen.zip positiveGroup (uniform -20.0 20.0)) <|
            fun (PositiveGroup g, shift) ->
                let shifted = g.TokenLogProbs |> Array.map (Array.map (fun l -> l + shift))
                aclose 1e-9 (Weights.groupWeights softmaxConfig g.Rewards g.TokenLogProbs) (Weights.groupWeights softmaxConfig g.Rewards shifted)

        property "softmax weights preserve the order of sequence scores (with or without a cap)" (Gen.zip3 positiveGroup (Gen.optionOf cap) temperature) <|
            fun (PositiveGroup g, c, t) ->
                let w = Weights.groupWeights { softmaxConfig with Cap = c; Temperature = t } g.Rewards g.TokenLogProbs
                let ps = positives g
                ps |> Array.forall (fun i ->
                    ps |> Array.forall (fun j ->
                        Weights.sequenceScore g.TokenLogProbs.[i] < Weights.sequenceScore g.TokenLogProbs.[j] |> not || w.[i] <= w.[j]))

        property "a single positive gets weight exactly 1 without a cap below 1" (Gen.zip weightConfig (groupWith groupSize [ SinglePositive ])) <|
            fun (c, g) ->
                let c = { c with Cap = c.Cap |> Option.map (fun v -> max v 1.0) }
                Weights.groupWeights c g.Rewards g.TokenLogProbs |> Array.filter (fun w -> w > 0.0) = [| 1.0 |]

        property "uniform weights are 1 / |S+| on every positive" positiveGroup <|
            fun (PositiveGroup g) ->
                let w = Weights.groupWeights uniformConfig g.Rewards g.TokenLogProbs
                positives g |> Array.forall (fun i -> Accuracy.close Accuracy.veryHigh w.[i] (1.0 / float (positiveCount g)))

        property "length-normalised weights are proportional to base weight / |y_i|" (Gen.zip3 positiveGroup (Gen.elements [ WeightMode.Softmax; WeightMode.Uniform ]) temperature) <|
            fun (PositiveGroup g, mode, t) ->
                let c = { WeightConfig.Default with Mode = mode; Temperature = t }
                let b = Weights.groupWeights c g.Rewards g.TokenLogProbs
                let n = Weights.groupWeights { c with LengthNormalize = true } g.Rewards g.TokenLogProbs
                let raw = positives g |> Array.map (fun i -> b.[i] / float g.TokenLogProbs.[i].Length)
                // Underflowed base weights (scores 40+ apart) carry no ratio to compare.
                (raw |> Array.exists (fun v -> v = 0.0))
                || aclose 1e-9 (positives g |> Array.map (fun i -> n.[i])) (raw |> Array.map (fun v -> v / Array.sum raw))

        property "capped weights never exceed the cap" (Gen.zip3 weightConfig positiveGroup cap) <|
            fun (c, PositiveGroup g, cap) ->
                Weights.groupWeights { c with Cap = Some cap } g.Rewards g.TokenLogProbs |> Array.forall (fun w -> w <= cap + capSlack)
                |> Prop.classify (float (positiveCount g) * cap < 1.0) "cap binds all"

        property "capped weights sum to one when |S+| c >= 1, else every positive gets c" (Gen.zip3 weightConfig positiveGroup cap) <|
            fun (c, PositiveGroup g, cap) ->
                let w = Weights.groupWeights { c with Cap = Some cap } g.Rewards g.TokenLogProbs
                let m = float (positiveCount g)
                (if m * cap >= 1.0 then Accuracy.close 1e-12 (sumOnPositives g w) 1.0
                 else positives g |> Array.forall (fun i -> w.[i] = cap))
                |> Prop.classify (m * cap >= 1.0) "|S+| c >= 1"
                |> Prop.classify (m * cap < 1.0) "|S+| c < 1"

        property "water-filling keeps the ratios of the weights left below the cap" (Gen.zip3 positiveGroup cap temperature) <|
            fun (PositiveGroup g, cap, t) ->
                let c = { softmaxConfig with Temperature = t }
                let b = Weights.groupWeights c g.Rewards g.TokenLogProbs
                let w = Weights.waterFill cap b
                let free = positives g |> Array.filter (fun i -> w.[i] < cap - capSlack && b.[i] > 1e-200)
                let ratio i j = w.[i] / w.[j], b.[i] / b.[j]
                free |> Array.forall (fun i -> free |> Array.forall (fun j -> let a, e = ratio i j in Accuracy.close 1e-9 a e))
                |> Prop.classify (free.Length >= 2) "two or more uncapped"

        property "water-filling with a cap at or above the largest weight changes nothing" (Gen.zip positiveGroup (uniform 0.0 0.5)) <|
            fun (PositiveGroup g, extra) ->
                let b = Weights.groupWeights softmaxConfig g.Rewards g.TokenLogProbs
                aclose 1e-12 (Weights.waterFill (Array.max b + extra) b) b

        property "weights ignore the negatives' token log-probs" (Gen.zip3 weightConfig group (Gen.arrayOfLength 16 completion)) <|
            fun (c, g, other) ->
                let replaced = g.TokenLogProbs |> Array.mapi (fun i l -> if g.Rewards.[i] > 0.0 then l else other.[i])
                Weights.groupWeights c g.Rewards g.TokenLogProbs = Weights.groupWeights c g.Rewards replaced

        property "batch weights are the per-group weights concatenated" (Gen.zip weightConfig (Gen.listOfLength 3 (groupWith (Gen.constant 4) [ AllPositive; AllNegative; SinglePositive; Mixed ]))) <|
            fun (c, gs) ->
                let rewards = gs |> List.map (fun g -> g.Rewards) |> Array.concat
                let lps = gs |> List.map (fun g -> g.TokenLogProbs) |> Array.concat
                Weights.batchWeights c 4 rewards lps = (gs |> List.map (fun g -> Weights.groupWeights c g.Rewards g.TokenLogProbs) |> Array.concat)

        property "high T_w flattens softmax weights toward uniform" positiveGroup <|
            fun (PositiveGroup g) ->
                // |w_i - 1/m| <= (e^{R/T} - 1)/m with R <= 60 the score range: about 6e-5/m at T = 1e6.
                let w = Weights.groupWeights { softmaxConfig with Temperature = 1e6 } g.Rewards g.TokenLogProbs
                let m = float (positiveCount g)
                positives g |> Array.forall (fun i -> abs (w.[i] - 1.0 / m) <= 1.2e-4 / m)

        testCase "WeightConfig.Create maps a null cap to no cap and a value to that cap" <| fun () ->
            Expect.equal (WeightConfig.Create(WeightMode.Uniform, 1.0, true, System.Nullable())).Cap None "null cap"
            Expect.equal (WeightConfig.Create(WeightMode.Uniform, 1.0, true, System.Nullable 0.4)).Cap (Some 0.4) "cap 0.4"

        testCase "a completion with no token is rejected with a clear error" <| fun () ->
            Expect.throwsT<System.ArgumentException> (fun () -> Weights.groupWeights softmaxConfig [| 1.0 |] [| [||] |] |> ignore) "empty completion"

        testCase "mismatched rewards and completions are rejected" <| fun () ->
            Expect.throwsT<System.ArgumentException> (fun () -> Weights.groupWeights softmaxConfig [| 1.0; 0.0 |] [| [| -1.0 |] |] |> ignore) "two rewards, one completion"
    ]
