/// The 2026 objectives beside GRPO in the spec (docs/design.md §3.1, proofs/grpo-family.md): RLVR-Decomposed's PSR,
/// NSR and W-REINFORCE, GSPO's sequence ratio, CISPO, delta, top_entropy_quantile and mask_truncated_completions.
module Popo.Tests.Spec.GrpoFamily

open Expecto
open FsCheck
open FsCheck.FSharp
open Popo.Spec
open Popo.Spec.Grpo
open Popo.Spec.GrpoFamily
open Popo.Tests
open Popo.Tests.Generators
open Popo.Tests.Spec.Check

/// A family micro-batch: Grpo's case with a ratio level, a surrogate, an entropy quantile and masked rollouts.
type FamilyCase =
    { Config: FamilyConfig
      Batch: FamilyBatch }

let private lengthsOf (b: GrpoBatch) = b.NewLogProbs |> Array.map Array.length

/// With level Sequence, each rollout's log-probs are re-drawn so that its sequence ratio s_i lies in a chosen clip
/// region 0.02 away from the kinks, the token log-ratios spread around log s_i.
let private sequenceRatios (config: GrpoConfig) (b: GrpoBatch) : Gen<GrpoBatch> =
    gen {
        let! logS =
            b.Advantages |> Array.map (fun _ -> Gen.elements [ Below; Inside; Above ] |> Gen.bind (logRatioIn config.EpsLow config.EpsHigh))
            |> Gen.sequenceToArray
        let! noise = lengthsOf b |> Array.map (fun n -> Gen.arrayOfLength n (uniform -0.5 0.5)) |> Gen.sequenceToArray
        let newLp =
            Array.init b.Advantages.Length (fun i ->
                let m = Array.average noise.[i]
                Array.map2 (fun old e -> old + e - m + logS.[i]) b.OldLogProbs.[i] noise.[i])
        return { b with NewLogProbs = newLp }
    }

/// delta from a few values, or off (+infinity) when a ratio lies within 0.02 of it (finite differences must not
/// straddle the cap's kink).
let private deltaFor (level: ImportanceLevel) (b: GrpoBatch) : Gen<float> =
    gen {
        let! d = Gen.elements [ infinity; infinity; 1.3; 1.6; 2.5 ]
        let near = ratios level b |> Array.concat |> Array.exists (fun r -> abs (r - d) < 0.02)
        return if near then infinity else d
    }

/// Family cases: every level, clipped (with or without delta) or CISPO (aggregated as dapo, as TRL), q in {1, 0.8, 0.5,
/// 0.2}, about a quarter of the rollouts masked. onPolicy: rho = 1 and beta = 0.
let familyCaseWith (onPolicy: bool) (levels: ImportanceLevel list) (cispo: bool option) : Gen<FamilyCase> =
    gen {
        let! c = grpoCaseWith onPolicy lossType
        let! level = Gen.elements levels
        let! b = if level <> ImportanceLevel.Token && not onPolicy then sequenceRatios c.Config c.Batch else Gen.constant c.Batch
        let! useCispo = match cispo with Some v -> Gen.constant v | None -> Gen.frequency [ 3, Gen.constant false; 1, Gen.constant true ]
        let! surrogate =
            if useCispo then Gen.elements [ 0.8; 1.5; 5.0 ] |> Gen.map Surrogate.Cispo
            else deltaFor level b |> Gen.map Surrogate.Clipped
        let tokens = Array.sum (lengthsOf b)
        let! lossType =
            match useCispo, c.Config.LossType with
            | false, lt -> Gen.constant lt
            | true, LossType.Dapo t -> Gen.constant (LossType.Dapo t)
            | true, _ -> Gen.choose (tokens, 3 * tokens) |> Gen.map LossType.Dapo
        let! q = Gen.elements [ 1.0; 1.0; 0.8; 0.5; 0.2 ]
        let! entropies = lengthsOf b |> Array.map (fun n -> Gen.arrayOfLength n (uniform 0.0 3.0)) |> Gen.sequenceToArray
        let! masked = Gen.arrayOfLength b.Advantages.Length (Gen.frequency [ 3, Gen.constant false; 1, Gen.constant true ])
        return
            { Config = { Grpo = { c.Config with LossType = lossType }; Level = level; Surrogate = surrogate; TopEntropyQuantile = q }
              Batch = { Batch = b; Entropies = entropies; Masked = masked } }
    }

/// Off-policy family cases of every kind.
let familyCase = familyCaseWith false [ ImportanceLevel.Token; ImportanceLevel.Sequence; ImportanceLevel.SequenceToken ] None

let private unmasked (fb: FamilyBatch) = { fb with Masked = Array.zeroCreate fb.Masked.Length }

let private raggedClose tol (a: float[][]) (b: float[][]) = a.Length = b.Length && Array.forall2 (aclose tol) a b

let private dotRagged (a: float[][]) (b: float[][]) = Array.map2 (Array.map2 (*)) a b |> Array.sumBy Array.sum

/// Rewards {0, 1} or graded in [-1, 1], one per rollout of the case.
let private rewardsFor (n: int) = Gen.arrayOfLength n (Gen.oneof [ Gen.elements [ 0.0; 1.0 ]; uniform -1.0 1.0 ])

/// An on-policy bnpo batch (verl's token-mean, as RLVR-Decomposed trains) with the advantages of the given weights.
let private signedCase (weights: SignedWeights) =
    gen {
        let! c = grpoCaseWith true (fun _ -> Gen.constant LossType.Bnpo)
        let! rewards = rewardsFor c.Batch.Advantages.Length
        return c, rewards, { c.Batch with Advantages = signedAdvantages weights rewards }
    }

let private classifyKinds (c: FamilyCase) (p: bool) =
    p
    |> Prop.classify (c.Config.Level = ImportanceLevel.Sequence) "sequence"
    |> Prop.classify (c.Config.Level = ImportanceLevel.SequenceToken) "sequence_token"
    |> Prop.classify (match c.Config.Surrogate with Surrogate.Cispo _ -> true | _ -> false) "cispo"
    |> Prop.classify (match c.Config.Surrogate with Surrogate.Clipped d -> d < infinity | _ -> false) "delta"
    |> Prop.classify (c.Config.TopEntropyQuantile < 1.0) "entropy mask"
    |> Prop.classify (Array.contains true c.Batch.Masked) "masked rollouts"

[<Tests>]
let tests =
    testList "spec/grpo-family" [
        property "PSR gives +1 to positives and 0 to negatives, NSR -1 to negatives and 0 to positives, W-REINFORCE lambda PSR + NSR"
            (Gen.zip (Gen.choose (1, 32) |> Gen.bind rewardsFor) (uniform 0.0 1.0)) <|
            fun (rewards, lambda) ->
                let p, n, w = signedAdvantages psr rewards, signedAdvantages nsr rewards, signedAdvantages (wReinforce lambda) rewards
                Array.forall2 (fun r a -> a = (if r > 0.0 then 1.0 else 0.0)) rewards p
                && Array.forall2 (fun r a -> a = (if r > 0.0 then 0.0 else -1.0)) rewards n
                && Array.forall2 (fun (a, b) c -> abs (c - (lambda * a + b)) <= 1e-15) (Array.zip p n) w

        property "on-policy PSR's gradient is -1/T on every token of a positive and 0 elsewhere: the positives' log-likelihood gradient times -1/T"
            (signedCase psr) <|
            fun (c, rewards, b) ->
                let t = float (Array.sum (lengthsOf b))
                let g = Grpo.grad c.Config b
                Array.forall2 (fun r (row: float[]) -> row |> Array.forall (fun x -> Accuracy.close 1e-12 x (if r > 0.0 then -1.0 / t else 0.0))) rewards g
                |> Prop.classify (Array.exists (fun r -> r > 0.0) rewards) "has a positive"

        property "on-policy NSR's gradient is +1/T on every token of a negative and 0 elsewhere: it pushes the negatives' likelihood down"
            (signedCase nsr) <|
            fun (c, rewards, b) ->
                let t = float (Array.sum (lengthsOf b))
                let g = Grpo.grad c.Config b
                Array.forall2 (fun r (row: float[]) -> row |> Array.forall (fun x -> Accuracy.close 1e-12 x (if r > 0.0 then 0.0 else 1.0 / t))) rewards g
                |> Prop.classify (Array.exists (fun r -> r <= 0.0) rewards) "has a negative"

        property "W-REINFORCE's loss and gradient are lambda PSR's + NSR's for any ratios, clip, delta, level and aggregation (beta = 0)"
            (Gen.zip3 familyCase (uniform 0.0 1.0) (Gen.choose (1, 32) |> Gen.bind rewardsFor)) <|
            fun (c, lambda, rewards0) ->
                let n = c.Batch.Batch.Advantages.Length
                let rewards = Array.init n (fun i -> rewards0.[i % rewards0.Length])
                let config = { c.Config with Grpo = { c.Config.Grpo with Beta = 0.0 } }
                let withA w = { c.Batch with Batch = { c.Batch.Batch with Advantages = signedAdvantages w rewards } }
                let lw, lp, ln = loss config (withA (wReinforce lambda)), loss config (withA psr), loss config (withA nsr)
                let gw, gp, gn = grad config (withA (wReinforce lambda)), grad config (withA psr), grad config (withA nsr)
                let combined = Array.map2 (Array.map2 (fun p q -> lambda * p + q)) gp gn
                (Accuracy.close 1e-12 lw (lambda * lp + ln) && raggedClose 1e-12 gw combined) |> classifyKinds c

        property "token ratios, no delta, q = 1 and no masked rollout give Grpo's loss and gradient" grpoCase <|
            fun c ->
                let fb : FamilyBatch = { Batch = c.Batch; Entropies = null; Masked = Array.zeroCreate c.Batch.Advantages.Length }
                let config = plain c.Config
                Accuracy.close 1e-12 (loss config fb) (Grpo.loss c.Config c.Batch) && raggedClose 1e-12 (grad config fb) (Grpo.grad c.Config c.Batch)

        property "GSPO with one token per rollout equals the token-level loss and gradient"
            (familyCase |> Gen.map (fun c ->
                let one (x: float[][]) = if isNull x then x else x |> Array.map (fun r -> [| r.[0] |])
                let b = c.Batch.Batch
                let b1 = { b with NewLogProbs = one b.NewLogProbs; OldLogProbs = one b.OldLogProbs; RefLogProbs = one b.RefLogProbs }
                let lt = match c.Config.Grpo.LossType with LossType.DrGrpo _ -> LossType.DrGrpo 1 | LossType.Dapo _ -> LossType.Dapo b1.Advantages.Length | l -> l
                { Config = { c.Config with Grpo = { c.Config.Grpo with LossType = lt } }
                  Batch = { c.Batch with Batch = b1; Entropies = one c.Batch.Entropies } })) <|
            fun c ->
                let seq = { c.Config with Level = ImportanceLevel.Sequence }
                let tok = { c.Config with Level = ImportanceLevel.Token }
                (Accuracy.close 1e-12 (loss seq c.Batch) (loss tok c.Batch) && raggedClose 1e-12 (grad seq c.Batch) (grad tok c.Batch))
                |> classifyKinds c

        property "on-policy, GSPO's gradient equals the token-level one (every ratio is 1, q = 1)"
            (familyCaseWith true [ ImportanceLevel.Sequence ] (Some false) |> Gen.map (fun c -> { c with Config = { c.Config with TopEntropyQuantile = 1.0 } })) <|
            fun c ->
                let tok = { c.Config with Level = ImportanceLevel.Token }
                raggedClose 1e-12 (grad c.Config c.Batch) (grad tok c.Batch) |> classifyKinds c

        property "with q = 1, GSPO-token's loss and gradient equal GSPO's (the GSPO paper's identity for one advantage per rollout)"
            (familyCaseWith false [ ImportanceLevel.SequenceToken ] None |> Gen.map (fun c -> { c with Config = { c.Config with TopEntropyQuantile = 1.0 } })) <|
            fun c ->
                let seq = { c.Config with Level = ImportanceLevel.Sequence }
                (Accuracy.close 1e-12 (loss c.Config c.Batch) (loss seq c.Batch) && raggedClose 1e-12 (grad c.Config c.Batch) (grad seq c.Batch))
                |> classifyKinds c

        property "CISPO's gradient is the REINFORCE gradient -A_i scale_i on each selected token weighted by min(rho, eps_max)"
            (familyCaseWith false [ ImportanceLevel.Token ] (Some true)) <|
            fun c ->
                let config = { c.Config with Grpo = { c.Config.Grpo with Beta = 0.0 } }
                let b = c.Batch.Batch
                let epsMax = match config.Surrogate with Surrogate.Cispo e -> e | _ -> nan
                let total = match config.Grpo.LossType with LossType.Dapo t -> float t | _ -> nan
                let selected = entropySelected config.TopEntropyQuantile c.Batch
                let expected =
                    Array.init b.Advantages.Length (fun i ->
                        Array.init b.NewLogProbs.[i].Length (fun t ->
                            let rho = exp (b.NewLogProbs.[i].[t] - b.OldLogProbs.[i].[t])
                            if c.Batch.Masked.[i] || not selected.[i].[t] then 0.0 else -(min rho epsMax) * b.Advantages.[i] / total))
                raggedClose 1e-12 (grad config c.Batch) expected |> classifyKinds c

        property "on-policy CISPO with eps_max >= 1 has dapo GRPO's gradient"
            (familyCaseWith true [ ImportanceLevel.Token; ImportanceLevel.Sequence ] (Some true)
             |> Gen.map (fun c ->
                 let epsMax = max 1.0 (match c.Config.Surrogate with Surrogate.Cispo e -> e | _ -> 1.0)
                 // At the sequence level GSPO spreads the selected tokens' gradient over the whole rollout: q = 1 there.
                 let q = if c.Config.Level = ImportanceLevel.Sequence then 1.0 else c.Config.TopEntropyQuantile
                 { c with Config = { c.Config with Surrogate = Surrogate.Cispo epsMax; TopEntropyQuantile = q } })) <|
            fun c ->
                let clipped = { c.Config with Surrogate = Surrogate.Clipped infinity }
                raggedClose 1e-12 (grad c.Config c.Batch) (grad clipped c.Batch) |> classifyKinds c

        property "with delta, a negative-advantage token whose ratio is above delta has zero policy gradient; without delta, -A rho scale"
            (gen {
                let! c = familyCaseWith false [ ImportanceLevel.Token ] (Some false)
                let! rho = uniform 1.7 3.0
                let! a = uniform -2.0 -0.1
                let b = c.Batch.Batch
                let b1 = { b with NewLogProbs = [| [| b.OldLogProbs.[0].[0] + log rho |] |]; OldLogProbs = [| [| b.OldLogProbs.[0].[0] |] |]
                                  RefLogProbs = [| [| b.RefLogProbs.[0].[0] |] |]; Advantages = [| a |] }
                return { Config = { c.Config with Grpo = { c.Config.Grpo with Beta = 0.0; LossType = LossType.Bnpo; EpsHigh = 0.2 }; TopEntropyQuantile = 1.0 }
                         Batch = { Batch = b1; Entropies = [| [| 1.0 |] |]; Masked = [| false |] } }, rho, a
             }) <|
            fun (c, rho, a) ->
                let capped = grad { c.Config with Surrogate = Surrogate.Clipped 1.5 } c.Batch
                let uncapped = grad { c.Config with Surrogate = Surrogate.Clipped infinity } c.Batch
                capped.[0].[0] = 0.0 && Accuracy.close 1e-12 uncapped.[0].[0] (-a * rho)

        property "the gradient agrees with finite differences for clipped surrogates at both levels, with delta, the entropy mask and masked rollouts"
            (Gen.zip (familyCaseWith false [ ImportanceLevel.Token; ImportanceLevel.Sequence ] (Some false)) (Gen.choose (0, System.Int32.MaxValue))) <|
            fun (c, s) ->
                let b = c.Batch.Batch
                let d = raggedDirection b.NewLogProbs s
                let g = grad c.Config c.Batch
                let f e = loss c.Config { c.Batch with Batch = { b with NewLogProbs = Array.map2 (Array.map2 (fun l x -> l + e * x)) b.NewLogProbs d } }
                agrees (dotRagged g d) (directional f) (sqrt (dotRagged g g) * sqrt (dotRagged d d)) |> classifyKinds c

        property "q = 1 selects every token; q < 1 selects n - ceil((1 - q)(n - 1)) of the n distinct entropies of the unmasked rollouts"
            familyCase <|
            fun c ->
                let selected = entropySelected c.Config.TopEntropyQuantile c.Batch
                let pool = Array.concat [| for i in 0 .. c.Batch.Masked.Length - 1 do if not c.Batch.Masked.[i] then c.Batch.Entropies.[i] |]
                let count = selected |> Array.sumBy (Array.sumBy (fun e -> if e then 1 else 0))
                let q = c.Config.TopEntropyQuantile
                let distinct = (Array.distinct pool).Length = pool.Length
                let onlyUnmasked = Array.forall2 (fun m (row: bool[]) -> not m || Array.forall not row) c.Batch.Masked selected
                (if q = 1.0 then Array.forall (Array.forall id) selected
                 elif pool.Length = 0 then count = 0
                 else not distinct || (onlyUnmasked && count = pool.Length - int (ceil ((1.0 - q) * float (pool.Length - 1)))))
                |> Prop.classify (q < 1.0) "q < 1"

        property "mask_truncated_completions zeroes exactly the masked rollouts' gradient; the others' is unchanged (grpo, dr_grpo, dapo) or scaled by T_all / T_kept (bnpo)"
            (familyCaseWith false [ ImportanceLevel.Token; ImportanceLevel.Sequence ] None |> Gen.map (fun c -> { c with Config = { c.Config with TopEntropyQuantile = 1.0 } })) <|
            fun c ->
                let lengths = lengthsOf c.Batch.Batch
                let all = float (Array.sum lengths)
                let kept = float (Array.fold2 (fun s n m -> if m then s else s + n) 0 lengths c.Batch.Masked)
                let factor = match c.Config.Grpo.LossType with LossType.Bnpo -> all / max 1.0 kept | _ -> 1.0
                let g, g0 = grad c.Config c.Batch, grad c.Config (unmasked c.Batch)
                Array.forall2 (fun m (row: float[], row0: float[]) ->
                    if m then Array.forall ((=) 0.0) row else aclose 1e-12 row (Array.map (fun x -> x * factor) row0)) c.Batch.Masked (Array.zip g g0)
                |> classifyKinds c
    ]
