module Popo.Tests.Spec.Momentum

open Expecto
open FsCheck
open FsCheck.FSharp
open MathNet.Numerics.LinearAlgebra
open Popo.Spec
open Popo.Tests
open Popo.Tests.Generators
open Popo.Tests.Spec.Check

/// A trajectory that starts the target at the first parameters, xi_0 = theta_0 (docs/design.md §2.8).
let private startAtTheta (t: Trajectory) =
    match t.Thetas with
    | first :: _ -> first
    | [] -> Vector<float>.Build.Dense 1

let private nonEmpty = trajectory |> Gen.map (fun t -> if t.Thetas.IsEmpty then { t with Thetas = [ Vector<float>.Build.Dense(3, 1.0) ] } else t)

[<Tests>]
let tests =
    testList "spec/momentum" [
        property "tau = 0 copies the online parameters" (nonEmpty |> Gen.map (fun t -> { t with Tau = 0.0 })) <|
            fun t ->
                let xi = Momentum.trajectory 0.0 (startAtTheta t) t.Thetas
                List.forall2 (fun (x: Vector<float>) th -> x = th) (List.tail xi) t.Thetas

        property "tau = 1 freezes the target" (Gen.zip nonEmpty (vectorOf 6 normal)) <|
            fun (t, xi0) ->
                let xi0 = xi0.SubVector(0, t.Thetas.Head.Count)
                Momentum.trajectory 1.0 xi0 t.Thetas |> List.forall (fun x -> x = xi0)

        property "with xi_0 = theta_0 each coordinate of xi_t lies within the min and max of theta_0 .. theta_(t-1)" nonEmpty <|
            fun t ->
                let xi = Momentum.trajectory t.Tau (startAtTheta t) t.Thetas
                let thetas = Array.ofList t.Thetas
                xi |> List.indexed |> List.forall (fun (step, x) ->
                    let seen = if step = 0 then [| thetas.[0] |] else thetas.[.. step - 1]
                    Seq.forall (fun k ->
                        let lo = seen |> Array.map (fun v -> v.[k]) |> Array.min
                        let hi = seen |> Array.map (fun v -> v.[k]) |> Array.max
                        x.[k] >= lo - 1e-12 && x.[k] <= hi + 1e-12) [ 0 .. x.Count - 1 ])
                |> Prop.classify (t.Tau > 0.0 && t.Tau < 1.0) "0 < tau < 1"

        property "for constant theta the distance shrinks as tau^t" (Gen.zip3 (uniform 0.0 1.0) (Gen.choose (0, 60)) (Gen.zip (vectorOf 4 normal) (vectorOf 4 normal))) <|
            fun (tau, steps, (xi0, theta)) ->
                let xi = Momentum.trajectory tau xi0 (List.replicate steps theta) |> List.last
                Accuracy.close 1e-12 ((xi - theta).L2Norm()) (pown tau steps * (xi0 - theta).L2Norm())

        property "the closed form tau^t xi_0 + (1 - tau) sum tau^(t-1-s) theta_s equals the recursion" (Gen.zip trajectory (vectorOf 6 normal)) <|
            fun (t, xi0) ->
                let xi0 = match t.Thetas with th :: _ -> xi0.SubVector(0, th.Count) | [] -> xi0
                vclose 1e-12 (Momentum.closedForm t.Tau xi0 t.Thetas) (Momentum.trajectory t.Tau xi0 t.Thetas |> List.last)

        property "the closed-form coefficients are nonnegative and sum to one" (Gen.zip (uniform 0.0 1.0) (Gen.choose (0, 200))) <|
            fun (tau, steps) ->
                let c = Momentum.coefficients tau steps
                c |> Array.forall (fun v -> v >= 0.0) && Accuracy.close 1e-12 (Array.sum c) 1.0

        property "the lag behind a linearly moving parameter is tau (1 - tau^(t-1)) / (1 - tau)" (Gen.zip3 (Gen.frequency [ 4, uniform 0.0 0.999; 1, Gen.constant 1.0 ]) (Gen.choose (1, 200)) (uniform 0.1 3.0)) <|
            fun (tau, steps, speed) ->
                let thetas = List.init steps (fun s -> Vector<float>.Build.Dense(1, speed * float s))
                let xi = Momentum.trajectory tau thetas.Head thetas |> List.last
                Accuracy.close 1e-9 ((thetas.[steps - 1].[0] - xi.[0]) / speed) (Momentum.linearLag tau steps)

        property "the lag rises with t and stays below tau / (1 - tau)" (Gen.zip (uniform 0.0 0.999) (Gen.choose (1, 500))) <|
            fun (tau, steps) ->
                let l1, l2 = Momentum.linearLag tau steps, Momentum.linearLag tau (steps + 1)
                l1 <= l2 && l2 <= Momentum.steadyStateLag tau * (1.0 + 1e-12)

        testCase "tau outside [0, 1] is rejected" <| fun () ->
            Expect.throwsT<System.ArgumentException> (fun () -> Momentum.update 1.5 (Vector<float>.Build.Dense 1) (Vector<float>.Build.Dense 1) |> ignore) "tau = 1.5"
    ]
