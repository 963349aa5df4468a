/// The importance correction (Popo.Spec.ImportanceCorrection) and how it composes with POPO's bounded weights
/// (proofs/importance-correction.md): every property states the proof's claim with its conditions.
module Popo.Tests.Spec.ImportanceCorrection

open Expecto
open FsCheck
open FsCheck.FSharp
open Popo.Spec
open Popo.Spec.ImportanceCorrection
open Popo.Tests.Generators
open Popo.Tests.Spec.Check

let private modes = Gen.elements [ Mode.TokenTruncate; Mode.TokenMask; Mode.SequenceTruncate; Mode.SequenceMask ]

/// One group of G rollouts: rewards, the trainer's and the sampler's token log-probs (the sampler's = the trainer's
/// plus a mismatch of up to +-spread per token), a mode and a cap (TRL's 3.0 or another in [0.5, 6]).
type Case = { Rewards: float[]; Trainer: float[][]; Sampler: float[][]; Mode: Mode; Cap: float; Weights: Weights.WeightConfig }

let private case =
    gen {
        let! (PositiveGroup g) = positiveGroup
        let! spread = Gen.elements [ 0.0; 0.05; 0.5; 2.0 ]
        let! noise = g.TokenLogProbs |> Gen.collectToArray (fun row -> Gen.arrayOfLength row.Length (uniform (-spread) spread))
        let! mode = modes
        let! cap = Gen.oneof [ Gen.constant 3.0; uniform 0.5 6.0 ]
        let! config = weightConfig
        return { Rewards = g.Rewards; Trainer = g.TokenLogProbs; Sampler = Array.map2 (Array.map2 (+)) g.TokenLogProbs noise
                 Mode = mode; Cap = cap; Weights = config }
    }

let private cOf (c: Case) = weights c.Mode c.Cap c.Trainer c.Sampler
/// POPO's weights from the sampler's log-probs (the generation-time ones, as the authors' code uses).
let private wOf (c: Case) = Weights.groupWeights c.Weights c.Rewards c.Sampler

[<Tests>]
let tests =
    testList "spec/importance-correction" [
        property "IC1: every weight c lies in [0, cap]" case <| fun c ->
            cOf c |> Array.forall (Array.forall (fun x -> x >= 0.0 && x <= c.Cap))

        property "IC2: equal log-probs and cap >= 1 give c = 1 (the built-in sampler's case: no correction)" case <| fun c ->
            let c1 = { c with Sampler = c.Trainer; Cap = max 1.0 c.Cap }
            cOf c1 |> Array.forall (Array.forall (fun x -> x = 1.0))

        property "IC3: sequence modes weigh every token of a row alike; truncate >= mask, equal where the cap is not exceeded" case <| fun c ->
            let rho = ratios c.Mode c.Trainer c.Sampler
            let seqOk = not (isSequence c.Mode) || cOf c |> Array.forall (fun r -> r |> Array.forall ((=) r.[0]))
            let trunc = weights (if isSequence c.Mode then Mode.SequenceTruncate else Mode.TokenTruncate) c.Cap c.Trainer c.Sampler
            let mask = weights (if isSequence c.Mode then Mode.SequenceMask else Mode.TokenMask) c.Cap c.Trainer c.Sampler
            let order =
                Array.zip3 rho trunc mask
                |> Array.forall (fun (r, t, m) ->
                    Array.zip3 r t m |> Array.forall (fun (r, t, m) -> if r <= c.Cap then t = r && m = r else t = c.Cap && m = 0.0))
            seqOk && order

        property "IC4 (POPO): w_i c_{i,t} is 0 outside S+ and at most cap x w_i" case <| fun c ->
            let w = wOf c
            let e = popoTokenWeights w (cOf c)
            Array.zip3 c.Rewards w e
            |> Array.forall (fun (r, wi, ei) -> (r > 0.0 || ei |> Array.forall ((=) 0.0)) && ei |> Array.forall (fun x -> x >= 0.0 && x <= c.Cap * wi + 1e-15))

        property "IC5 (POPO): one token per positive, the effective weights sum to at most cap (the group's weights sum to <= 1)" case <| fun c ->
            let e = popoTokenWeights (wOf c) (cOf c)
            let heaviest = e |> Array.sumBy (fun row -> if row.Length = 0 then 0.0 else Array.max row)
            heaviest <= c.Cap * (1.0 + 1e-12)

        property "IC6 (POPO): with the trainer's own log-probs and cap >= 1, the effective weights are POPO's weights" case <| fun c ->
            let c1 = { c with Sampler = c.Trainer; Cap = max 1.0 c.Cap }
            let w = wOf c1
            Array.forall2 (fun wi (ei: float[]) -> ei |> Array.forall ((=) wi)) w (popoTokenWeights w (cOf c1))

        property "the mismatch metrics: |d| and k3 are >= 0, 0 exactly when the log-probs agree; the corrected share is in [0, 1]" case <| fun c ->
            let m = metrics c.Mode c.Cap c.Trainer c.Sampler
            let same = metrics c.Mode c.Cap c.Trainer c.Trainer
            let differs = Array.exists2 (Array.exists2 (<>)) c.Trainer c.Sampler
            m.MeanAbsDiff >= 0.0 && m.K3 >= 0.0 && m.Corrected >= 0.0 && m.Corrected <= 1.0
            && same.MeanAbsDiff = 0.0 && same.K3 = 0.0 && (not differs || m.MeanAbsDiff > 0.0)

        testCase "a worked example: TRL's definitions by hand" <| fun () ->
            let trainer = [| [| -1.0; -2.0 |]; [| -0.5 |] |]
            let sampler = [| [| -2.5; -2.0 |]; [| -0.25 |] |]
            // d = [1.5, 0], [-0.25]; exp 1.5 = 4.48 > 3.
            let e15, e025 = exp 1.5, exp -0.25
            Expect.equal (weights Mode.TokenTruncate 3.0 trainer sampler) [| [| 3.0; 1.0 |]; [| e025 |] |] "token_truncate"
            Expect.equal (weights Mode.TokenMask 3.0 trainer sampler) [| [| 0.0; 1.0 |]; [| e025 |] |] "token_mask"
            Expect.equal (weights Mode.SequenceTruncate 3.0 trainer sampler) [| [| 3.0; 3.0 |]; [| e025 |] |] "sequence_truncate"
            Expect.equal (weights Mode.SequenceMask 3.0 trainer sampler) [| [| 0.0; 0.0 |]; [| e025 |] |] "sequence_mask"
            let m = metrics Mode.TokenMask 3.0 trainer sampler
            expectClose 1e-15 m.MeanAbsDiff (1.75 / 3.0) "mean |d|"
            expectClose 1e-15 m.K3 ((e15 - 1.5 - 1.0 + 0.0 + e025 + 0.25 - 1.0) / 3.0) "k3"
            expectClose 1e-15 m.Corrected (1.0 / 3.0) "one token of three masked"
            expectClose 1e-15 (metrics Mode.SequenceMask 3.0 trainer sampler).Corrected 0.5 "one row of two masked"
    ]
