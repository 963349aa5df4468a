// Shared by the exploration scripts: references the built Popo.Spec (run `dotnet build` first) and
// ScottPlot, and writes plots to scripts/out/.
#r "nuget: MathNet.Numerics, 5.0.0"
#r "nuget: ScottPlot, 5.1.59"
#r "../src/Popo.Spec/bin/Debug/net10.0/Popo.Spec.dll"

open System.IO

/// scripts/out/NAME, creating the folder.
let outPath (name: string) =
    let dir = Path.Combine(__SOURCE_DIRECTORY__, "out")
    Directory.CreateDirectory dir |> ignore
    Path.Combine(dir, name)

/// Saves a plot as a PNG in scripts/out/ and says where.
let save (plot: ScottPlot.Plot) (name: string) =
    let path = outPath name
    plot.SavePng(path, 900, 560) |> ignore
    printfn "wrote %s" path

/// Adds a line with a legend entry.
let line (plot: ScottPlot.Plot) (label: string) (xs: float[]) (ys: float[]) =
    let s = plot.Add.Scatter(xs, ys)
    s.LegendText <- label
    s.MarkerSize <- 0.0f
    s.LineWidth <- 2.0f
    s
