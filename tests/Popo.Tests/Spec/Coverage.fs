/// Generator coverage: each domain generator must produce the interesting cases often enough that no
/// property is vacuous. 1000 samples each, drawn from a fixed seed: the draw is the same on every run, so a
/// check fails only when a generator changes, never by chance. (With a fresh seed each run, a required rate
/// near the generator's true rate is a coin toss: "L = 2" has true rate 1/3, and 1000 draws fall below 0.3
/// with probability about 1.3%, which is how "297 of 1000 < 0.3" came about.)
module Popo.Tests.Spec.Coverage

open Expecto
open FsCheck.FSharp
open MathNet.Numerics.LinearAlgebra
open Popo.Spec
open Popo.Tests.Generators

let private samples = 1000

/// The seed of every coverage draw (any fixed value; changing it re-draws every sample).
let private seed = 20261201UL

let private sample (g: FsCheck.Gen<'a>) : 'a[] = Gen.sampleWithSeed (FsCheck.Rnd seed) 50 samples g

/// Expect the fraction of samples satisfying `pred` to be at least `atLeast`.
let private occurs (xs: 'a[]) (atLeast: float) (what: string) (pred: 'a -> bool) =
    let n = xs |> Array.filter pred |> Array.length
    Expect.isGreaterThanOrEqual (float n / float xs.Length) atLeast (sprintf "%s: %d of %d samples" what n xs.Length)

[<Tests>]
let tests =
    testList "spec/generators" [
        testCase "groups cover sizes 1 and 16, lengths 1 and 32, and every reward pattern" <| fun () ->
            let gs = sample group
            occurs gs 0.05 "G = 1" (fun g -> g.Rewards.Length = 1)
            occurs gs 0.05 "G = 16" (fun g -> g.Rewards.Length = 16)
            occurs gs 0.05 "a completion of length 1" (fun g -> g.TokenLogProbs |> Array.exists (fun l -> l.Length = 1))
            occurs gs 0.05 "a completion of length 32" (fun g -> g.TokenLogProbs |> Array.exists (fun l -> l.Length = 32))
            occurs gs 0.1 "all positive (G >= 2)" (fun g -> g.Rewards.Length >= 2 && g.Rewards |> Array.forall ((<) 0.0))
            occurs gs 0.1 "all negative (G >= 2)" (fun g -> g.Rewards.Length >= 2 && g.Rewards |> Array.forall ((=) 0.0))
            occurs gs 0.1 "single positive (G >= 2)" (fun g -> g.Rewards.Length >= 2 && positiveCount g = 1)
            occurs gs 0.1 "two positives or more but not all" (fun g -> positiveCount g >= 2 && positiveCount g < g.Rewards.Length)

        testCase "token log-probs cover probabilities near 1 and near 0" <| fun () ->
            let ls = sample tokenLogProb
            occurs ls 0.1 "probability above 1 - 1e-3" (fun l -> l > -1e-3)
            occurs ls 0.1 "probability below 1e-6" (fun l -> l < log 1e-6)
            occurs ls 0.3 "moderate" (fun l -> l <= -0.01 && l >= -5.0)

        testCase "positive groups always hold a positive and cover the single-positive case" <| fun () ->
            let gs = sample positiveGroup |> Array.map (fun (PositiveGroup g) -> g)
            occurs gs 1.0 "at least one positive" (fun g -> positiveCount g >= 1)
            occurs gs 0.1 "exactly one positive among several" (fun g -> g.Rewards.Length >= 2 && positiveCount g = 1)

        testCase "logits cover vocabularies 2 and 33-64, near-deterministic, near-zero and flat distributions" <| fun () ->
            let zs = sample logits |> Array.map (fun (Logits z) -> z, Softmax.softmaxT 1.0 z)
            occurs zs 0.05 "V = 2" (fun (z, _) -> z.Count = 2)
            occurs zs 0.05 "V > 32" (fun (z, _) -> z.Count > 32)
            occurs zs 0.1 "max p above 1 - 1e-6" (fun (_, p) -> p.Maximum() > 1.0 - 1e-6)
            occurs zs 0.1 "min p below 1e-6" (fun (_, p) -> p.Minimum() < 1e-6)
            occurs zs 0.1 "flat: max p below 1.5 / V" (fun (z, p) -> p.Maximum() < 1.5 / float z.Count)

        testCase "weight options cover both modes, length normalisation and binding and slack caps" <| fun () ->
            let cs = sample (Gen.zip weightConfig positiveGroup)
            occurs cs 0.3 "softmax" (fun (c, _) -> c.Mode = Weights.WeightMode.Softmax)
            occurs cs 0.3 "uniform" (fun (c, _) -> c.Mode = Weights.WeightMode.Uniform)
            occurs cs 0.3 "length-normalised" (fun (c, _) -> c.LengthNormalize)
            occurs cs 0.05 "a cap with |S+| c < 1" (fun (c, PositiveGroup g) -> c.Cap |> Option.exists (fun v -> float (positiveCount g) * v < 1.0))
            occurs cs 0.015 "a cap that binds some but not all" (fun (c, PositiveGroup g) ->
                match c.Cap with
                | Some v ->
                    let w = Weights.groupWeights { c with Cap = None } g.Rewards g.TokenLogProbs
                    float (positiveCount g) * v >= 1.0 && Array.max w > v
                | None -> false)

        testCase "POPO micro-batches cover no-positive, all-positive and mixed batches and every option" <| fun () ->
            let cs = sample popoCase
            occurs cs 0.1 "no positive" (fun c -> not (PopoObjective.hasPositive c.Inputs.Weights))
            occurs cs 0.1 "all positive" (fun c -> c.Inputs.Weights |> Array.forall (fun w -> w > 0.0))
            occurs cs 0.1 "mixed" (fun c -> c.Inputs.Weights |> Array.exists (fun w -> w > 0.0) && c.Inputs.Weights |> Array.exists ((=) 0.0))
            occurs cs 0.2 "positive entropy scope" (fun c -> c.Config.EntropyScope = PopoObjective.EntropyScope.Positive)
            occurs cs 0.2 "alpha = 0" (fun c -> c.Config.Alpha = 0.0)
            occurs cs 0.2 "grad accumulation > 1" (fun c -> c.Config.GradAccumSteps > 1)
            occurs cs 0.2 "temperature other than 1" (fun c -> c.Config.Temperature <> 1.0)

        testCase "GRPO micro-batches cover every clip region with both advantage signs, KL and every loss type" <| fun () ->
            let cs = sample grpoCase
            let tokens (c: GrpoCase) =
                [ for i in 0 .. c.Batch.Advantages.Length - 1 do
                    for t in 0 .. c.Batch.NewLogProbs.[i].Length - 1 ->
                        c.Batch.Advantages.[i], exp (c.Batch.NewLogProbs.[i].[t] - c.Batch.OldLogProbs.[i].[t]), c.Config ]
            let all = cs |> Array.collect (tokens >> Array.ofList)
            occurs all 0.02 "A > 0 clipped above" (fun (a, r, cfg) -> a > 0.0 && r > 1.0 + cfg.EpsHigh)
            occurs all 0.02 "A < 0 clipped below" (fun (a, r, cfg) -> a < 0.0 && r < 1.0 - cfg.EpsLow)
            occurs all 0.02 "A > 0 below the range (unclipped)" (fun (a, r, cfg) -> a > 0.0 && r < 1.0 - cfg.EpsLow)
            occurs all 0.02 "A < 0 above the range (unclipped)" (fun (a, r, cfg) -> a < 0.0 && r > 1.0 + cfg.EpsHigh)
            occurs all 0.02 "inside the range" (fun (_, r, cfg) -> r >= 1.0 - cfg.EpsLow && r <= 1.0 + cfg.EpsHigh)
            occurs cs 0.2 "beta > 0" (fun c -> c.Config.Beta > 0.0)
            occurs cs 0.15 "grpo" (fun c -> c.Config.LossType = Grpo.LossType.Grpo)
            occurs cs 0.15 "bnpo" (fun c -> c.Config.LossType = Grpo.LossType.Bnpo)
            occurs cs 0.15 "dr_grpo" (fun c -> match c.Config.LossType with Grpo.LossType.DrGrpo _ -> true | _ -> false)
            occurs cs 0.15 "dapo" (fun c -> match c.Config.LossType with Grpo.LossType.Dapo _ -> true | _ -> false)

        testCase "reward batches cover G = 2 and 16, all-equal groups, a single success and graded rewards" <| fun () ->
            let bs = sample rewardBatch
            let groups = bs |> Array.collect (fun b -> b.Rewards |> Array.chunkBySize b.GroupSize)
            occurs bs 0.05 "G = 2" (fun b -> b.GroupSize = 2)
            occurs bs 0.05 "G = 16" (fun b -> b.GroupSize = 16)
            occurs groups 0.1 "all-equal group" (fun g -> g |> Array.forall ((=) g.[0]))
            occurs groups 0.05 "single success" (fun g -> (g |> Array.filter ((=) 1.0)).Length = 1 && (g |> Array.filter ((=) 0.0)).Length = g.Length - 1)
            occurs groups 0.2 "graded rewards" (fun g -> g |> Array.exists (fun r -> r > 0.0 && r < 1.0))

        testCase "bandit cases cover several group sizes, correct sets of several sequences and two-token prefixes" <| fun () ->
            let cs = sample banditCase
            occurs cs 0.1 "G = 1" (fun c -> c.GroupSize = 1)
            occurs cs 0.3 "G >= 3" (fun c -> c.GroupSize >= 3)
            occurs cs 0.3 "|S| >= 2 and G >= 2" (fun c -> c.Correct.Count >= 2 && c.GroupSize >= 2)
            occurs cs 0.3 "L = 2" (fun c -> c.Policy.Length = 2)
            occurs cs 0.05 "every sequence correct" (fun c -> c.Correct.Count = pown c.Policy.Vocab c.Policy.Length)
            let p = cs |> Array.map (fun c -> Bandit.successProbability c.Policy c.Correct.Contains)
            occurs p 0.05 "P_S below 0.1" (fun v -> v < 0.1)
            occurs p 0.05 "P_S above 0.9 but below 1" (fun v -> v > 0.9 && v < 1.0 - 1e-12)

        testCase "EMA trajectories cover tau 0, 1 and between, and t = 0" <| fun () ->
            let ts = sample trajectory
            occurs ts 0.05 "tau = 0" (fun t -> t.Tau = 0.0)
            occurs ts 0.05 "tau = 1" (fun t -> t.Tau = 1.0)
            occurs ts 0.3 "0 < tau < 1" (fun t -> t.Tau > 0.0 && t.Tau < 1.0)
            occurs ts 0.01 "t = 0" (fun t -> t.Thetas.IsEmpty)
            occurs ts 0.5 "t >= 5" (fun t -> t.Thetas.Length >= 5)
    ]
