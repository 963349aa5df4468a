// Builds the tables of RESULTS.md from the compare.json files that scripts/results.sh writes, and puts
// them between the <!-- tables:begin --> and <!-- tables:end --> markers of RESULTS.md, and the tables of the
// decomposed-* comparisons (POPO against PSR, NSR and W-REINFORCE) between <!-- decomposed:begin/end -->.
// Run from the repository root after scripts/results.sh: dotnet fsi scripts/results-tables.fsx [RESULTS_FOLDER]
open System
open System.IO
open System.Text
open System.Text.Json

let folder = fsi.CommandLineArgs |> Array.tryItem 1 |> Option.defaultValue "results"
let settings = [ "arithmetic-mid"; "arithmetic-sparse"; "countdown-mid"; "countdown-sparse" ]
let algorithms = [ "popo"; "grpo"; "dr_grpo"; "dapo"; "rft" ]

type Run = { Final: float; Greedy: float; Curve: float[]; ToTarget: float option }
type Arm = { Name: string; Keys: string; Runs: Run list }
type Setting = { Name: string; WarmPass1: float; WarmCurve: float[]; Target: float; Minutes: float; Arms: Arm list }

let floats (e: JsonElement) = e.EnumerateArray() |> Seq.map (fun v -> v.GetDouble()) |> Array.ofSeq

let load name =
    let path = Path.Combine(folder, name, "compare.json")
    if not (File.Exists path) then failwithf "%s: missing; run scripts/results.sh %s first" path name
    let root = JsonDocument.Parse(File.ReadAllText path).RootElement
    let run (r: JsonElement) =
        let reach = r.GetProperty "rollouts_to_target"
        { Final = r.GetProperty("final_pass1").GetDouble(); Greedy = r.GetProperty("final_greedy").GetDouble()
          Curve = floats (r.GetProperty "pass_curve")
          ToTarget = if reach.ValueKind = JsonValueKind.Number then Some(reach.GetDouble()) else None }
    let arm (a: JsonElement) =
        { Name = a.GetProperty("name").GetString()
          Keys = a.GetProperty("keys").EnumerateObject() |> Seq.filter (fun p -> p.Name <> "algo") |> Seq.map (fun p -> $"{p.Name}={p.Value.GetString()}") |> String.concat ", "
          Runs = a.GetProperty("runs").EnumerateArray() |> Seq.map run |> List.ofSeq }
    { Name = name; WarmPass1 = root.GetProperty("warmup").GetProperty("pass1").GetDouble()
      WarmCurve = floats (root.GetProperty("warmup").GetProperty "pass_curve")
      Target = root.GetProperty("target_pass1").GetDouble(); Minutes = root.GetProperty("wall_time").GetDouble() / 60.0
      Arms = root.GetProperty("arms").EnumerateArray() |> Seq.map arm |> List.ofSeq }

let mean (xs: float list) = List.average xs
let std (xs: float list) =
    let m = mean xs
    if xs.Length < 2 then 0.0 else sqrt (xs |> List.sumBy (fun x -> (x - m) ** 2.0) |> fun s -> s / float (xs.Length - 1))
let f3 (x: float) = x.ToString("F3", Globalization.CultureInfo.InvariantCulture)
let meanStd xs = $"{f3 (mean xs)} ± {f3 (std xs)}"
let arm (s: Setting) name = s.Arms |> List.find (fun a -> a.Name = name)
/// The best mean final pass@1 of the setting is marked in bold.
let best (s: Setting) = s.Arms |> List.map (fun a -> mean [ for r in a.Runs -> r.Final ]) |> List.max
let reach (a: Arm) =
    let hit = a.Runs |> List.choose (fun r -> r.ToTarget)
    if hit.IsEmpty then $"not reached (0/{a.Runs.Length})" else $"{mean hit:F0} ({hit.Length}/{a.Runs.Length})"
let pass16 (a: Arm) = mean [ for r in a.Runs -> r.Curve.[r.Curve.Length - 1] ]

/// Final pass@1 per algorithm (rows) and setting (columns), the best mean of each setting in bold, under its caption.
let finalTable (line: string -> unit) (caption: string) (main: Setting list) (names: string list) =
    line caption
    line ""
    line ("| algorithm | " + String.Join(" | ", main |> List.map (fun s -> s.Name.Replace("decomposed-", ""))) + " |")
    line ("| --- |" + String.replicate main.Length " --- |")
    line ("| warm-up | " + String.Join(" | ", main |> List.map (fun s -> f3 s.WarmPass1)) + " |")
    for a in names do
        let cell (s: Setting) =
            let finals = [ for r in (arm s a).Runs -> r.Final ]
            if mean finals = best s then $"**{meanStd finals}**" else meanStd finals
        line ($"| {a} | " + String.Join(" | ", main |> List.map cell) + " |")
    line ""

let tables () =
    let main = settings |> List.map load
    let ablations = load "ablations"
    let md = StringBuilder()
    let line (s: string) = md.AppendLine s |> ignore
    let header () =
        line ("| algorithm | " + String.Join(" | ", main |> List.map (fun s -> s.Name)) + " |")
        line ("| --- |" + String.replicate main.Length " --- |")
    finalTable line "**Table 1: final held-out pass@1** (mean ± sample std over seeds; best mean in bold; warm-up = the shared starting checkpoint)." main algorithms
    line "**Table 2: rollouts to reach 90% of the best final mean pass@1** of the setting (target in the second row; mean over the seeds that reached it, seeds reaching it in brackets; evaluated every 40 steps = 2,560 rollouts)."
    line ""
    header ()
    line ("| target | " + String.Join(" | ", main |> List.map (fun s -> f3 s.Target)) + " |")
    for a in algorithms do
        line ($"| {a} | " + String.Join(" | ", main |> List.map (fun s -> reach (arm s a))) + " |")
    line ""
    line "**pass@1 and pass@16 at the end** (16 samples per problem, unbiased estimator, mean over seeds): does positive-only training narrow pass@k?"
    line ""
    header ()
    line ("| warm-up | " + String.Join(" | ", main |> List.map (fun s -> $"{f3 s.WarmCurve.[0]} / {f3 s.WarmCurve.[s.WarmCurve.Length - 1]}")) + " |")
    for a in algorithms do
        line ($"| {a} | " + String.Join(" | ", main |> List.map (fun s -> let x = arm s a in $"{f3 (mean [ for r in x.Runs -> r.Curve.[0] ])} / {f3 (pass16 x)}")) + " |")
    line ""
    line $"**Table 3: POPO ablations** on arithmetic-mid (warm-up pass@1 {f3 ablations.WarmPass1}; target for the rollouts column {f3 ablations.Target})."
    line ""
    line "| variant | keys | final pass@1 | greedy | pass@16 | rollouts to target |"
    line "| --- | --- | --- | --- | --- | --- |"
    for a in ablations.Arms do
        let finals = [ for r in a.Runs -> r.Final ]
        let keys = if a.Keys = "" then "defaults" else a.Keys
        line $"| {a.Name} | {keys} | {meanStd finals} | {f3 (mean [ for r in a.Runs -> r.Greedy ])} | {f3 (pass16 a)} | {reach a} |"
    line ""
    line ("Wall time on the 2-CPU machine (one torch thread per run; two or three comparisons ran at once beside other work): " +
          String.Join(", ", (main @ [ ablations ]) |> List.map (fun s -> $"{s.Name} {s.Minutes:F0} min")) + ".")
    md.ToString()

/// The decomposed-* comparisons: final pass@1, and pass@k to k = 256 (does positive-only training narrow pass@k?).
let decomposed () =
    let main = settings |> List.map (fun s -> load ("decomposed-" + s))
    let names = (List.head main).Arms |> List.map (fun a -> a.Name)
    let md = StringBuilder()
    let line (s: string) = md.AppendLine s |> ignore
    let keys = (List.head main).Arms |> List.map (fun a -> $"{a.Name} {a.Keys}") |> String.concat ", "
    finalTable line $"**Table 4: final held-out pass@1** (mean ± sample std over seeds; best mean in bold; learning rates: {keys})." main names
    for s in main do
        let n = s.WarmCurve.Length
        let ks = [ 1; 4; 16; 64; n ] |> List.filter (fun k -> k <= n) |> List.distinct
        line $"**Table 5 ({s.Name}): held-out pass@k at the end** ({n} samples per problem, unbiased estimator; mean ± sample std over seeds; the last column is pass@{n} minus the warm-up's)."
        line ""
        line ("| algorithm | " + String.Join(" | ", ks |> List.map (fun k -> $"pass@{k}")) + $" | pass@{n} - warm-up |")
        line ("| --- |" + String.replicate (ks.Length + 1) " --- |")
        line ("| warm-up | " + String.Join(" | ", ks |> List.map (fun k -> f3 s.WarmCurve.[k - 1])) + " | 0 |")
        for a in names do
            let x = arm s a
            let at k = [ for r in x.Runs -> r.Curve.[k - 1] ]
            let gain = mean (at n) - s.WarmCurve.[n - 1]
            let signed = (if gain >= 0.0 then "+" else "") + f3 gain
            line ($"| {a} | " + String.Join(" | ", ks |> List.map (at >> meanStd)) + $" | {signed} |")
        line ""
    line ("Wall time on the 2-CPU machine (one torch thread per run; two comparisons and other jobs ran at once): " +
          String.Join(", ", main |> List.map (fun s -> $"{s.Name} {s.Minutes:F0} min")) + ".")
    md.ToString()

let resultsMd = "RESULTS.md"
let fill (text: string) (first: string) (last: string) (content: unit -> string) =
    let i, j = text.IndexOf first, text.IndexOf last
    if i < 0 || j < i then failwithf "%s: expected the markers %s and %s" resultsMd first last
    text.[.. i + first.Length - 1] + "\n" + content () + text.[j ..]
let text = File.ReadAllText resultsMd
let withTables = fill text "<!-- tables:begin -->" "<!-- tables:end -->" tables
File.WriteAllText(resultsMd, fill withTables "<!-- decomposed:begin -->" "<!-- decomposed:end -->" decomposed)
printfn "wrote the tables of %s from %s/*/compare.json" resultsMd folder
