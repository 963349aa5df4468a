// EMA lag against tau: a parameter moving at unit speed (theta_s = s) and the target
// xi <- tau xi + (1 - tau) theta (docs/design.md §2.8). The lag behind the latest theta is
// tau (1 - tau^(t-1)) / (1 - tau), rising to tau / (1 - tau) (proofs/momentum.md); simulated lags from
// Momentum.trajectory are printed beside the closed form.
// Run: dotnet build && dotnet fsi scripts/ema-lag.fsx
#load "Common.fsx"
open Common
open MathNet.Numerics.LinearAlgebra
open Popo.Spec

let simulatedLag (tau: float) (t: int) =
    let thetas = List.init t (fun s -> Vector<float>.Build.Dense(1, float s))
    let xi = Momentum.trajectory tau thetas.Head thetas |> List.last
    float (t - 1) - xi.[0]

let taus = Array.init 200 (fun k -> 0.9 + 0.0005 * float k)
let plot = new ScottPlot.Plot()
(line plot "steady state tau / (1 - tau)" taus (taus |> Array.map Momentum.steadyStateLag)).LinePattern <- ScottPlot.LinePattern.Dashed
for t in [ 100; 300; 1000 ] do
    line plot (sprintf "after t = %d updates" t) taus (taus |> Array.map (fun tau -> Momentum.linearLag tau t)) |> ignore
let marks = plot.Add.ScatterPoints([| 0.9; 0.95; 0.98; 0.99; 0.995 |], [| 0.9; 0.95; 0.98; 0.99; 0.995 |] |> Array.map (fun tau -> simulatedLag tau 1000))
marks.LegendText <- "simulated, t = 1000"
marks.MarkerSize <- 9.0f
plot.Axes.SetLimitsY(0.0, 400.0)
plot.Title "EMA target lag behind a parameter moving one unit per step"
plot.XLabel "tau"
plot.YLabel "lag (steps)"
plot.ShowLegend(ScottPlot.Alignment.UpperLeft) |> ignore
save plot "ema-lag.png"

printfn ""
printfn "%7s | %10s %10s %10s %14s | %10s" "tau" "t = 100" "t = 1000" "steady" "simulated 1000" "half-life"
for tau in [ 0.0; 0.5; 0.9; 0.95; 0.99; 0.995; 0.999 ] do
    // half-life: steps until the weight of a past theta halves, log 0.5 / log tau
    let halfLife = if tau = 0.0 then 0.0 else log 0.5 / log tau
    printfn "%7.3f | %10.3f %10.3f %10.3f %14.3f | %10.1f" tau (Momentum.linearLag tau 100) (Momentum.linearLag tau 1000)
        (Momentum.steadyStateLag tau) (simulatedLag tau 1000) halfLife
