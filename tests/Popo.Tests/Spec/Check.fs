/// Helpers shared by the spec properties: finite differences, vector comparison, property builders.
module Popo.Tests.Spec.Check

open Expecto
open FsCheck
open FsCheck.FSharp
open MathNet.Numerics.LinearAlgebra
open Popo.Tests

/// Step of the central differences; with O(1) inputs the error is O(h^2) + O(eps / h), about 1e-10.
let fdStep = 1e-5

/// Central difference of f along its scalar argument at 0: (f h - f (-h)) / (2 h).
let directional (f: float -> float) : float = (f fdStep - f -fdStep) / (2.0 * fdStep)

/// An analytic directional derivative agrees with the numerical one to Accuracy.finiteDifference,
/// relative to scale = |grad| |direction| (the Cauchy-Schwarz bound) with a floor of 1e-3.
let agrees (analytic: float) (numeric: float) (scale: float) : bool =
    abs (analytic - numeric) <= Accuracy.finiteDifference * max 1e-3 (max scale (max (abs analytic) (abs numeric)))

/// Elementwise Accuracy.close.
let vclose (tol: float) (a: Vector<float>) (b: Vector<float>) : bool =
    a.Count = b.Count && Seq.forall2 (Accuracy.close tol) a b

let aclose (tol: float) (a: float[]) (b: float[]) : bool =
    a.Length = b.Length && Array.forall2 (Accuracy.close tol) a b

/// A property over a domain generator (no shrinking), 100 cases.
let property (name: string) (gen: Gen<'a>) (body: 'a -> 'p) : Test =
    testProperty name (Prop.forAll (Arb.fromGen gen) body)

/// A random unit-scale direction shaped like the given ragged array.
let raggedDirection (shape: float[][]) (seed: int) : float[][] =
    let rng = System.Random(seed)
    shape |> Array.map (Array.map (fun _ -> 2.0 * rng.NextDouble() - 1.0))

let randomVector (n: int) (rng: System.Random) : Vector<float> =
    Vector<float>.Build.Dense(n, fun _ -> 2.0 * rng.NextDouble() - 1.0)

/// Expect Accuracy.close tol actual expected, reporting both values.
let expectClose (tol: float) (actual: float) (expected: float) (what: string) =
    Expect.isTrue (Accuracy.close tol actual expected) (sprintf "%s: got %.17g, expected %.17g (tol %g)" what actual expected tol)

/// Expect |actual - expected| <= bound (for numbers quoted to a fixed number of decimals).
let expectWithin (bound: float) (actual: float) (expected: float) (what: string) =
    Expect.isTrue (abs (actual - expected) <= bound) (sprintf "%s: got %.17g, expected %.17g +- %g" what actual expected bound)
