module Popo.Tests.Spec.Softmax

open Expecto
open FsCheck
open MathNet.Numerics.LinearAlgebra
open Popo.Spec
open Popo.Tests

[<Tests>]
let tests =
    testList "spec/softmax" [
        testProperty "softmax sums to one for any finite logits and temperature" <|
            fun (logits: NormalFloat list) (PositiveInt t) ->
                let z = (NormalFloat 0.0 :: logits) |> List.map (fun (NormalFloat v) -> v % 50.0) |> Array.ofList |> Vector<float>.Build.DenseOfArray
                let p = Softmax.softmaxT (float t) z
                Accuracy.close 1e-12 (p.Sum()) 1.0 && p |> Seq.forall (fun v -> v >= 0.0)
    ]
