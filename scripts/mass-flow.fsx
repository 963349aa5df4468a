// Where does probability mass go when POPO reinforces the positives of a toy softmax?
// One softmax over 20 tokens: a mode (p = 0.6) that is NOT correct, three correct targets
// (p = 0.15, 0.02, 0.005) and a tail of 16 tokens. Each step ascends sum_{i in S} w_i log p_i with
// POPO's softmax weights (for one-token sequences w_i = p_i / P_S, docs/design.md §4 N3) or uniform weights.
// Run: dotnet build && dotnet fsi scripts/mass-flow.fsx
#load "Common.fsx"
open Common
open MathNet.Numerics.LinearAlgebra
open Popo.Spec

let targets = [| 1; 2; 3 |]
let p0 = Array.concat [ [| 0.6; 0.15; 0.02; 0.005 |]; Array.create 16 (0.225 / 16.0) ]
let z0 = Vector<float>.Build.DenseOfArray(p0 |> Array.map log)
let eta, steps = 0.5, 60

let weightsFor (uniform: bool) (p: Vector<float>) =
    let pS = targets |> Array.sumBy (fun i -> p.[i])
    Vector<float>.Build.Dense(p.Count, fun k ->
        if not (Array.contains k targets) then 0.0 elif uniform then 1.0 / float targets.Length else p.[k] / pS)

/// Probability trajectories [steps + 1] of the softmax under repeated ascent steps.
let run (uniform: bool) =
    let rec go z k acc =
        let p = Softmax.softmaxT 1.0 z
        if k = steps then List.rev (p :: acc)
        else go (z + eta * Softmax.ascentDirection (weightsFor uniform p) z) (k + 1) (p :: acc)
    go z0 0 [] |> Array.ofList

let summarise (ps: Vector<float>[]) =
    let targetsMass = ps |> Array.map (fun p -> targets |> Array.sumBy (fun i -> p.[i]))
    let mode = ps |> Array.map (fun p -> p.[0])
    let tail = ps |> Array.map (fun p -> Seq.sum (p.SubVector(4, 16)))
    targetsMass, mode, tail

let soft, unif = run false, run true
let xs = Array.init (steps + 1) float

let plot = new ScottPlot.Plot()
let colours = [| "#1f77b4"; "#d62728"; "#7f7f7f"; "#2ca02c" |] |> Array.map ScottPlot.Color.FromHex
for name, ps, pattern in [ "softmax w", soft, ScottPlot.LinePattern.Solid; "uniform w", unif, ScottPlot.LinePattern.Dashed ] do
    let t, m, tl = summarise ps
    let series = [ "targets", t; "mode", m; "tail", tl; "smallest target (p0 = 0.005)", ps |> Array.map (fun p -> p.[3]) ]
    series |> List.iteri (fun k (what, ys) ->
        let s = line plot (sprintf "%s, %s" what name) xs ys
        s.Color <- colours.[k]
        s.LinePattern <- pattern)
plot.Title "POPO on a toy softmax: where the mass goes (solid: softmax weights, dashed: uniform)"
plot.XLabel "ascent step"
plot.YLabel "probability mass"
plot.ShowLegend(ScottPlot.Alignment.MiddleRight) |> ignore
save plot "mass-flow.png"

printfn ""
printfn "%-8s %-9s | %8s %8s %8s %8s %8s %8s" "weights" "step" "targets" "mode" "tail" "t1=.15" "t2=.02" "t3=.005"
for name, ps in [ "softmax", soft; "uniform", unif ] do
    for k in [ 0; 1; 5; 20; 60 ] do
        let p = ps.[k]
        printfn "%-8s %-9d | %8.4f %8.4f %8.4f %8.4f %8.4f %8.4f" name k (targets |> Array.sumBy (fun i -> p.[i])) p.[0] (Seq.sum (p.SubVector(4, 16))) p.[1] p.[2] p.[3]
