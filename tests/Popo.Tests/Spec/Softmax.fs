module Popo.Tests.Spec.Softmax

open Expecto
open FsCheck
open FsCheck.FSharp
open MathNet.Numerics.LinearAlgebra
open Popo.Spec
open Popo.Tests
open Popo.Tests.Generators
open Popo.Tests.Spec.Check

let private seed = Gen.choose (0, System.Int32.MaxValue)

let private massOf (p: Vector<float>) (inSet: int -> bool) =
    p |> Seq.indexed |> Seq.filter (fun (k, _) -> inSet k) |> Seq.sumBy snd

/// Did the non-target mass M fall when the logits moved from z to z'? M and 1 - M are each computed from
/// their own small terms, and the smaller of the two is compared (a sum of small probabilities keeps its
/// relative accuracy, about 1e-14 here, while 1 - tiny does not). A change below that resolution (for
/// example a target within 1e-17 of probability 1 and a tiny step) cannot show in a double: there the
/// predicted change must be below resolution too and the observed one within it.
let private nonTargetMassFalls (z: Vector<float>) (z': Vector<float>) (targets: int[]) (predictedRate: float) (eta: float) =
    let p, p' = Softmax.softmaxT 1.0 z, Softmax.softmaxT 1.0 z'
    let isTarget k = Array.contains k targets
    let others, others' = massOf p (isTarget >> not), massOf p' (isTarget >> not)
    let inS, inS' = massOf p isTarget, massOf p' isTarget
    // change of the non-target mass, read from the better-conditioned side
    let change, scale = if inS < others then inS - inS', inS else others' - others, others
    let resolution = 1e-12 * scale
    change < 0.0 || (abs (predictedRate * eta) <= resolution && abs change <= resolution)

[<Tests>]
let tests =
    testList "spec/softmax" [
        testProperty "softmax sums to one for any finite logits and temperature" <|
            fun (logits: NormalFloat list) (PositiveInt t) ->
                let z = (NormalFloat 0.0 :: logits) |> List.map (fun (NormalFloat v) -> v % 50.0) |> Array.ofList |> Vector<float>.Build.DenseOfArray
                let p = Softmax.softmaxT (float t) z
                Accuracy.close 1e-12 (p.Sum()) 1.0 && p |> Seq.forall (fun v -> v >= 0.0)

        property "log-softmax equals the unshifted formula z/T - log sum exp(z/T)" (Gen.zip logits temperature) <|
            fun (Logits z, t) ->
                let direct = (z / t) - log ((z / t).Map(fun v -> exp v).Sum())
                vclose 1e-10 (Softmax.logSoftmaxT t z) direct

        property "softmax is invariant to adding one constant to every logit" (Gen.zip3 logits temperature (uniform -100.0 100.0)) <|
            fun (Logits z, t, c) -> vclose 1e-9 (Softmax.softmaxT t z) (Softmax.softmaxT t (z + c))

        property "softmax at temperature T equals softmax of z / T at temperature 1" (Gen.zip logits temperature) <|
            fun (Logits z, t) -> vclose Accuracy.veryHigh (Softmax.softmaxT t z) (Softmax.softmaxT 1.0 (z / t))

        property "entropy lies between 0 and log V" (Gen.zip logits temperature) <|
            fun (Logits z, t) ->
                let h = Softmax.entropyT t z
                (h >= -1e-12 && h <= log (float z.Count) + 1e-12)
                |> Prop.classify (h < 1e-6) "near-deterministic"
                |> Prop.classify (h > 0.99 * log (float z.Count)) "near-uniform"

        property "entropy gradient -(1/T) p (log p + H) matches finite differences" (Gen.zip3 logits temperature seed) <|
            fun (Logits z, t, s) ->
                let d = randomVector z.Count (System.Random s)
                let g = Softmax.entropyGradT t z
                agrees (g.DotProduct d) (directional (fun e -> Softmax.entropyT t (z + e * d))) (g.L2Norm() * d.L2Norm())

        property "softmax Jacobian (diag p - p p^T) / T matches finite differences" (Gen.zip3 logits temperature seed) <|
            fun (Logits z, t, s) ->
                let d = randomVector z.Count (System.Random s)
                let jd = Softmax.jacobianT t z * d
                let numeric = ((Softmax.softmaxT t (z + Check.fdStep * d)) - (Softmax.softmaxT t (z - Check.fdStep * d))) / (2.0 * Check.fdStep)
                Seq.forall2 (fun a n -> agrees a n (jd.L2Norm())) jd numeric

        property "log-softmax Jacobian (delta_ij - p_j) / T matches finite differences" (Gen.zip3 logits temperature seed) <|
            fun (Logits z, t, s) ->
                let d = randomVector z.Count (System.Random s)
                let jd = Softmax.logJacobianT t z * d
                let numeric = ((Softmax.logSoftmaxT t (z + Check.fdStep * d)) - (Softmax.logSoftmaxT t (z - Check.fdStep * d))) / (2.0 * Check.fdStep)
                Seq.forall2 (fun a n -> agrees a n (jd.L2Norm())) jd numeric

        property "each column of the softmax Jacobian sums to zero" (Gen.zip logits temperature) <|
            fun (Logits z, t) ->
                let j = Softmax.jacobianT t z
                j.ColumnSums() |> Seq.forall (fun c -> abs c <= 1e-12)

        property "token log-prob gradient (e_y - p) / T matches finite differences" (Gen.zip3 targetLogits temperature seed) <|
            fun (c, t, s) ->
                let d = randomVector c.Z.Count (System.Random s)
                let g = Softmax.gradLogProbT t c.Z c.Target
                agrees (g.DotProduct d) (directional (fun e -> (Softmax.logSoftmaxT t (c.Z + e * d)).[c.Target])) (g.L2Norm() * d.L2Norm())

        property "first-order change along e_i - p is p_k (|p|^2 - p_i - p_k) off the target and matches finite differences" targetLogits <|
            fun c ->
                let p = Softmax.softmaxT 1.0 c.Z
                let d = Softmax.ascentDirection (Vector<float>.Build.Dense(c.Z.Count, fun k -> if k = c.Target then 1.0 else 0.0)) c.Z
                let rate = Softmax.firstOrderChange c.Z d
                let p2 = p.DotProduct p
                let formulaHolds =
                    Seq.forall (fun k -> k = c.Target || Accuracy.close 1e-12 rate.[k] (p.[k] * (p2 - p.[c.Target] - p.[k]))) [ 0 .. c.Z.Count - 1 ]
                let numeric = ((Softmax.softmaxT 1.0 (c.Z + Check.fdStep * d)) - (Softmax.softmaxT 1.0 (c.Z - Check.fdStep * d))) / (2.0 * Check.fdStep)
                formulaHolds && Seq.forall2 (fun a n -> agrees a n (rate.L2Norm())) rate numeric

        property "N1: any ascent step on one target raises its probability and lowers the others' total" (Gen.zip targetLogits stepSize) <|
            fun (c, eta) ->
                let e = Vector<float>.Build.Dense(c.Z.Count, fun k -> if k = c.Target then 1.0 else 0.0)
                let z' = c.Z + eta * Softmax.ascentDirection e c.Z
                let p = Softmax.softmaxT 1.0 c.Z
                // dp_i/deta = p_i ((1 - p_i)^2 + sum_{k <> i} p_k^2): the others' total falls at this rate.
                let rate = p.[c.Target] * ((1.0 - p.[c.Target]) ** 2.0 + (p.DotProduct p - p.[c.Target] ** 2.0))
                nonTargetMassFalls c.Z z' [| c.Target |] rate eta
                |> Prop.classify (p.[c.Target] > 1.0 - 1e-6) "target near 1"
                |> Prop.classify (p.[c.Target] < 1e-6) "target near 0"

        property "N3: any ascent step on self-normalised target weights lowers the non-target mass" (Gen.zip targetSetLogits stepSize) <|
            fun (c, eta) ->
                let p = Softmax.softmaxT 1.0 c.Z
                let isTarget k = Array.contains k c.Targets
                let pS, others = massOf p isTarget, massOf p (isTarget >> not)
                // d = w - p with w = p / P_S on S, written from the small side so that it does not cancel
                // when P_S is within rounding of 1: d_i = p_i (1 - P_S) / P_S on S, d_k = -p_k off S.
                let d = Vector<float>.Build.Dense(c.Z.Count, fun k -> if isTarget k then p.[k] * others / pS else -p.[k])
                let pd = (c.Targets |> Array.sumBy (fun i -> p.[i] * p.[i])) * others / pS - massOf (p.PointwiseMultiply p) (isTarget >> not)
                let rate = -(massOf (p.PointwiseMultiply p) (isTarget >> not)) - others * pd
                nonTargetMassFalls c.Z (c.Z + eta * d) c.Targets rate eta
                |> Prop.classify (pS < 1e-6) "targets near 0"
                |> Prop.classify (pS > 1.0 - 1e-6) "targets near 1"
    ]
