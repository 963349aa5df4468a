// Softmax vs uniform POPO weights: bias of the sequence-level estimator sum_i w_i grad log pi(y_i)
// against the exact gradient of log P(correct), by enumeration of every group (docs/design.md §4 N5,
// proofs/bandit-identity.md). Tabular policy: V = 3 tokens, L = 2, theta = beta * theta_base; the
// correct set is the 6 sequences not starting with token 2. beta sharpens the policy.
// Run: dotnet build && dotnet fsi scripts/weight-bias.fsx
#load "Common.fsx"
open Common
open MathNet.Numerics.LinearAlgebra
open Popo.Spec

let v, l = 3, 2
let baseTheta =
    let rng = System.Random 7
    Vector<float>.Build.Dense(v * Bandit.prefixCount v l, fun _ -> 2.0 * rng.NextDouble() - 1.0)
let correct (y: int[]) = y.[0] <> 2
let uniform = { Weights.WeightConfig.Default with Mode = Weights.WeightMode.Uniform }
let softmax = Weights.WeightConfig.Default

/// Relative bias |E[g | success] - grad log P_S| / |grad log P_S| and cosine to grad log P_S.
let bias (config: Weights.WeightConfig) (groupSize: int) (beta: float) =
    let policy = Bandit.create v l (beta * baseTheta)
    let exact = Bandit.gradLogSuccess policy correct
    let e = Bandit.expectation policy correct groupSize Bandit.Condition.AtLeastOneSuccess (Bandit.weightedEstimator config)
    (e - exact).L2Norm() / exact.L2Norm(), e.DotProduct exact / (e.L2Norm() * exact.L2Norm())

let betas = Array.init 25 (fun k -> 0.25 * float k)
let plot = new ScottPlot.Plot()
for g in [ 2; 3; 4 ] do
    line plot (sprintf "softmax w, G = %d" g) betas (betas |> Array.map (fun b -> fst (bias softmax g b))) |> ignore
for g in [ 2; 4 ] do
    (line plot (sprintf "uniform w, G = %d" g) betas (betas |> Array.map (fun b -> fst (bias uniform g b)))).LinePattern <- ScottPlot.LinePattern.Dashed
plot.Title "Bias of POPO's weighted estimator against grad log P(correct), exact enumeration"
plot.XLabel "policy sharpness beta (theta = beta * theta_base)"
plot.YLabel "|E[g | success] - grad log P_S| / |grad log P_S|"
plot.ShowLegend(ScottPlot.Alignment.UpperLeft) |> ignore
save plot "weight-bias.png"

printfn ""
printfn "%5s %5s | %10s | %12s %10s | %12s" "beta" "G" "P_S" "softmax bias" "cos" "uniform bias"
for b in [ 0.5; 1.0; 2.0; 4.0; 6.0 ] do
    for g in [ 2; 4 ] do
        let pS = Bandit.successProbability (Bandit.create v l (b * baseTheta)) correct
        let sb, sc = bias softmax g b
        let ub, _ = bias uniform g b
        printfn "%5.1f %5d | %10.4f | %12.4f %10.4f | %12.2e" b g pS sb sc ub
