module Popo.Tests.Spec.Grpo

open Expecto
open FsCheck
open FsCheck.FSharp
open Popo.Spec
open Popo.Spec.Grpo
open Popo.Tests
open Popo.Tests.Generators
open Popo.Tests.Spec.Check

let private seed = Gen.choose (0, System.Int32.MaxValue)
let private scales = Gen.elements [ ScaleRewards.Group; ScaleRewards.Batch; ScaleRewards.None ]
let private groupsOf (b: RewardBatch) = b.Rewards |> Array.chunkBySize b.GroupSize

let private dotRagged (a: float[][]) (b: float[][]) = Array.map2 (Array.map2 (*)) a b |> Array.sumBy Array.sum

/// An on-policy case with the given aggregation generator: rho = 1 and beta = 0.
let private onPolicy (lossTypes: int[] -> Gen<LossType>) = grpoCaseWith true lossTypes

let private lengthsOf (c: GrpoCase) = c.Batch.NewLogProbs |> Array.map Array.length

/// For an FD check the gradient must be taken along a direction; the per-token loss is smooth away from
/// the clip kinks, which the generator keeps 0.02 away (Generators.logRatioIn).
let private fdHolds (c: GrpoCase) (s: int) =
    let d = raggedDirection c.Batch.NewLogProbs s
    let g = grad c.Config c.Batch
    let f e = loss c.Config { c.Batch with NewLogProbs = Array.map2 (Array.map2 (fun l x -> l + e * x)) c.Batch.NewLogProbs d }
    agrees (dotRagged g d) (directional f) (sqrt (dotRagged g g) * sqrt (dotRagged d d))

let private fdFor (name: string) (lt: int[] -> Gen<LossType>) =
    property name (Gen.zip (grpoCaseWith false lt) seed) <|
        fun (c, s) ->
            fdHolds c s
            |> Prop.classify (c.Config.Beta > 0.0) "with KL"
            |> Prop.classify (c.Batch.Advantages |> Array.exists (fun a -> a < 0.0)) "negative advantage"

[<Tests>]
let tests =
    testList "spec/grpo" [
        property "advantages sum to zero in every group for every scaling" (Gen.zip rewardBatch scales) <|
            fun (b, scale) ->
                advantages scale b.GroupSize b.Rewards |> Array.chunkBySize b.GroupSize |> Array.forall (fun a -> abs (Array.sum a) <= 1e-9)

        property "all-equal rewards in a group give zero advantages" (Gen.zip3 rewardBatch scales (uniform -3.0 3.0)) <|
            fun (b, scale, r) ->
                let rewards = Array.concat [ Array.create b.GroupSize r; b.Rewards ]
                // r - mean of G copies of r is 0 up to an ulp of r, which the 1e-4 floor of the std divides.
                advantages scale b.GroupSize rewards |> Array.take b.GroupSize |> Array.forall (fun a -> abs a <= 1e-10)

        property "group-scaled advantages are bounded by (G - 1) / sqrt G" rewardBatch <|
            fun b ->
                let g = float b.GroupSize
                advantages ScaleRewards.Group b.GroupSize b.Rewards |> Array.forall (fun a -> abs a <= (g - 1.0) / sqrt g)
                |> Prop.classify (groupsOf b |> Array.exists (fun r -> (r |> Array.filter ((<) 0.0)).Length = 1)) "single-positive group"

        property "the bound (G - 1) / sqrt G is approached by a single positive as the 1e-4 vanishes" (Gen.choose (2, 16)) <|
            fun g ->
                let a = advantages ScaleRewards.Group g (Array.init g (fun i -> if i = 0 then 1.0 else 0.0))
                let gf = float g
                // With std s = 1/sqrt G for one success, A_0 = ((G-1)/G) / (s + 1e-4).
                Accuracy.close 1e-12 a.[0] (((gf - 1.0) / gf) / (1.0 / sqrt gf + stdEpsilon))
                && a.[0] < (gf - 1.0) / sqrt gf && a.[0] > (gf - 1.0) / sqrt gf * (1.0 - 1e-3)

        property "unscaled advantages are r - group mean" rewardBatch <|
            fun b ->
                let expected = groupsOf b |> Array.collect (fun r -> r |> Array.map (fun x -> x - Array.average r))
                aclose 1e-12 (advantages ScaleRewards.None b.GroupSize b.Rewards) expected

        property "batch scaling divides the centred rewards by the batch's Bessel std + 1e-4" rewardBatch <|
            fun b ->
                let s = besselStd b.Rewards
                aclose 1e-12 (advantages ScaleRewards.Batch b.GroupSize b.Rewards |> Array.map (fun a -> a * (s + stdEpsilon)))
                    (advantages ScaleRewards.None b.GroupSize b.Rewards)

        property "k3 is nonnegative and zero exactly when l = ref" (Gen.zip (uniform -20.0 0.0) (Gen.oneof [ Gen.constant 0.0; uniform -5.0 5.0 ])) <|
            fun (l, d) ->
                let v = k3 (l + d) l
                (if d = 0.0 then v = 0.0 else v > 0.0) |> Prop.classify (d = 0.0) "l = ref"

        property "k3 gradient 1 - exp(ref - l) matches finite differences" (Gen.zip (uniform -20.0 0.0) (uniform -5.0 5.0)) <|
            fun (l, r) -> agrees (k3Grad r l) (directional (fun e -> k3 r (l + e))) (abs (k3Grad r l))

        property "on-policy grpo gradient is -A_i / (B |y_i|)" (onPolicy (fun _ -> Gen.constant LossType.Grpo)) <|
            fun c ->
                let b = float c.Batch.Advantages.Length
                grad c.Config c.Batch |> Array.mapi (fun i g -> g |> Array.forall (fun x -> Accuracy.close Accuracy.veryHigh x (-c.Batch.Advantages.[i] / (b * float g.Length)))) |> Array.forall id

        property "on-policy bnpo gradient is -A_i / (tokens in the micro-batch)" (onPolicy (fun _ -> Gen.constant LossType.Bnpo)) <|
            fun c ->
                let t = float (Array.sum (lengthsOf c))
                grad c.Config c.Batch |> Array.mapi (fun i g -> g |> Array.forall (fun x -> Accuracy.close Accuracy.veryHigh x (-c.Batch.Advantages.[i] / t))) |> Array.forall id

        property "on-policy dapo gradient is -A_i / (tokens in the accumulated batch)" (onPolicy (fun ls -> Gen.choose (Array.sum ls, 4 * Array.sum ls) |> Gen.map LossType.Dapo)) <|
            fun c ->
                let t = match c.Config.LossType with LossType.Dapo t -> float t | _ -> nan
                grad c.Config c.Batch |> Array.mapi (fun i g -> g |> Array.forall (fun x -> Accuracy.close Accuracy.veryHigh x (-c.Batch.Advantages.[i] / t))) |> Array.forall id

        property "on-policy dr_grpo gradient is -A_i / (B L_max)" (onPolicy (fun ls -> Gen.choose (Array.max ls, 64) |> Gen.map LossType.DrGrpo)) <|
            fun c ->
                let lMax = match c.Config.LossType with LossType.DrGrpo l -> float l | _ -> nan
                let b = float c.Batch.Advantages.Length
                grad c.Config c.Batch |> Array.mapi (fun i g -> g |> Array.forall (fun x -> Accuracy.close Accuracy.veryHigh x (-c.Batch.Advantages.[i] / (b * lMax)))) |> Array.forall id

        property "on-policy the clip is idle: the loss does not depend on eps_low or eps_high" (Gen.zip (onPolicy lossType) (Gen.zip (uniform 0.0 0.9) (uniform 0.0 5.0))) <|
            fun (c, (lo, hi)) ->
                Accuracy.close Accuracy.veryHigh (loss c.Config c.Batch) (loss { c.Config with EpsLow = lo; EpsHigh = hi } c.Batch)

        property "on-policy grpo loss is minus the mean advantage" (onPolicy (fun _ -> Gen.constant LossType.Grpo)) <|
            fun c -> Accuracy.close Accuracy.veryHigh (loss c.Config c.Batch) (-(Array.average c.Batch.Advantages))

        property "clipped tokens (A > 0 above 1 + eps_high, A < 0 below 1 - eps_low) get no surrogate gradient" grpoCase <|
            fun c ->
                let cfg = { c.Config with Beta = 0.0 }
                let g = grad cfg c.Batch
                Seq.forall (fun i ->
                    Seq.forall (fun t ->
                        let a = c.Batch.Advantages.[i]
                        let rho = exp (c.Batch.NewLogProbs.[i].[t] - c.Batch.OldLogProbs.[i].[t])
                        let clipped = (a > 0.0 && rho > 1.0 + cfg.EpsHigh) || (a < 0.0 && rho < 1.0 - cfg.EpsLow)
                        not clipped || g.[i].[t] = 0.0) [ 0 .. g.[i].Length - 1 ]) [ 0 .. g.Length - 1 ]

        fdFor "grpo loss gradient matches finite differences off-policy with clipping and KL" (fun _ -> Gen.constant LossType.Grpo)
        fdFor "bnpo loss gradient matches finite differences off-policy with clipping and KL" (fun _ -> Gen.constant LossType.Bnpo)
        fdFor "dr_grpo loss gradient matches finite differences off-policy with clipping and KL" (fun ls -> Gen.choose (Array.max ls, 64) |> Gen.map LossType.DrGrpo)
        fdFor "dapo loss gradient matches finite differences off-policy with clipping and KL" (fun ls -> Gen.choose (Array.sum ls, 4 * Array.sum ls) |> Gen.map LossType.Dapo)

        testCase "a group of one has no Bessel std and is rejected under group scaling" <| fun () ->
            Expect.throwsT<System.ArgumentException> (fun () -> advantages ScaleRewards.Group 1 [| 1.0; 0.0 |] |> ignore) "G = 1"

        testCase "dr_grpo rejects a completion longer than max_completion_length" <| fun () ->
            let b = { NewLogProbs = [| [| -1.0; -1.0; -1.0 |] |]; OldLogProbs = [| [| -1.0; -1.0; -1.0 |] |]; RefLogProbs = null; Advantages = [| 1.0 |] }
            Expect.throwsT<System.ArgumentException> (fun () -> loss { EpsLow = 0.2; EpsHigh = 0.2; Beta = 0.0; LossType = LossType.DrGrpo 2 } b |> ignore) "L_max 2 < 3"
    ]
