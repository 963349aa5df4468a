// Gradient scale per prompt against pass rate p: the expected update of one prompt is c(G, p) grad p.
// REINFORCE c = 1; GRPO c = E[A | r = 1] - E[A | r = 0] -> 1 / sqrt(p (1 - p)); POPO (sequence level,
// uniform weights) c = (1 - (1 - p)^G) / p -> 1 / p (proofs/gradient-scale.md). The closed forms are
// cross-checked here by exact enumeration on a two-token bandit with pi(correct) = p.
// Run: dotnet build && dotnet fsi scripts/gradient-scale.fsx
#load "Common.fsx"
open Common
open MathNet.Numerics.LinearAlgebra
open Popo.Spec

let g = 8
let ps = Array.init 199 (fun k -> 0.005 * float (k + 1))
let uniform = { Weights.WeightConfig.Default with Mode = Weights.WeightMode.Uniform }

/// Scale c measured by enumeration: E[estimator] . grad p / |grad p|^2 on a V = 2, L = 1 bandit with
/// token 0 correct and pi(0) = p.
let enumerated (estimator: Bandit.SampledGroup -> Vector<float>) (groupSize: int) (p: float) =
    let policy = Bandit.create 2 1 (Vector<float>.Build.DenseOfArray [| log p; log (1.0 - p) |])
    let correct (y: int[]) = y.[0] = 0
    let gradP = p * Bandit.gradLogSuccess policy correct
    let e = Bandit.expectation policy correct groupSize Bandit.Condition.Always estimator
    e.DotProduct gradP / gradP.DotProduct gradP

let log10s = Array.map log10
let plot = new ScottPlot.Plot()
line plot "REINFORCE: 1" ps (ps |> Array.map (fun _ -> 1.0) |> log10s) |> ignore
line plot (sprintf "GRPO, G = %d (exact)" g) ps (ps |> Array.map (Bandit.grpoScale g) |> log10s) |> ignore
(line plot "GRPO limit 1/sqrt(p(1-p))" ps (ps |> Array.map (fun p -> 1.0 / sqrt (p * (1.0 - p))) |> log10s)).LinePattern <- ScottPlot.LinePattern.Dashed
line plot (sprintf "POPO uniform, G = %d (exact)" g) ps (ps |> Array.map (Bandit.popoScale g) |> log10s) |> ignore
(line plot "POPO limit 1/p" ps (ps |> Array.map (fun p -> 1.0 / p) |> log10s)).LinePattern <- ScottPlot.LinePattern.Dashed
let checkPs = [| 0.02; 0.1; 0.3; 0.5; 0.7; 0.9 |]
let marks = plot.Add.ScatterPoints(checkPs, checkPs |> Array.map (enumerated (Bandit.weightedEstimator uniform) g) |> log10s)
marks.LegendText <- "POPO by enumeration"
marks.MarkerSize <- 9.0f
let marksG = plot.Add.ScatterPoints(checkPs, checkPs |> Array.map (enumerated Bandit.grpoEstimator g) |> log10s)
marksG.LegendText <- "GRPO by enumeration"
marksG.MarkerSize <- 9.0f
plot.Title(sprintf "Gradient scale per prompt against pass rate (G = %d)" g)
plot.XLabel "pass rate p"
plot.YLabel "log10 c(G, p)   (expected update = c grad p)"
plot.ShowLegend(ScottPlot.Alignment.UpperRight) |> ignore
save plot "gradient-scale.png"

printfn ""
printfn "%6s | %9s %11s %11s %11s %11s %11s" "p" "REINFORCE" "GRPO G=8" "GRPO enum" "1/sqrt(pq)" "POPO G=8" "1/p"
for p in [| 0.01; 0.02; 0.05; 0.1; 0.3; 0.5; 0.7; 0.9; 0.99 |] do
    printfn "%6.2f | %9.3f %11.4f %11.4f %11.4f %11.4f %11.4f" p 1.0 (Bandit.grpoScale g p) (enumerated Bandit.grpoEstimator g p)
        (1.0 / sqrt (p * (1.0 - p))) (Bandit.popoScale g p) (1.0 / p)
