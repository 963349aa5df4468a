/// `popo bench --quick` end to end, in process: bench.json is well-formed, has every section with its rows, and
/// every figure is positive; the POPO section's rewards give exactly the stated pass rates.
module Popo.Tests.Bench.BenchSmoke

open System
open System.IO
open System.Text.Json
open Expecto

let private tempFile () =
    let dir = Path.Combine(Path.GetTempPath(), "popo-bench-" + Guid.NewGuid().ToString("N"))
    Directory.CreateDirectory dir |> ignore
    Path.Combine(dir, "bench.json")

/// Runs `popo bench --quick --threads 1 --out path [extra]` with stdout captured; returns the exit code and the parsed JSON.
let private runBench (extra: string list) =
    let path = tempFile ()
    let saved = Console.Out
    let code =
        try
            Console.SetOut TextWriter.Null
            Popo.Cli.Program.Main(Array.ofList ([ "bench"; "--quick"; "--threads"; "1"; "--out"; path ] @ extra))
        finally Console.SetOut saved
    let json = if File.Exists path then Some(JsonDocument.Parse(File.ReadAllText path)) else None
    Directory.Delete(Path.GetDirectoryName path, true)
    code, json

let private number (e: JsonElement) (name: string) =
    let mutable v = Unchecked.defaultof<JsonElement>
    if not (e.TryGetProperty(name, &v)) then failtestf "missing field %s in %s" name (e.GetRawText())
    if v.ValueKind <> JsonValueKind.Number then failtestf "field %s is %A, not a number" name v.ValueKind
    v.GetDouble()

let private positive (e: JsonElement) (name: string) =
    let v = number e name
    Expect.isGreaterThan v 0.0 (sprintf "%s = %g must be positive" name v)

let private rows (section: JsonElement) = section.GetProperty("rows").EnumerateArray() |> Seq.toList

[<Tests>]
let tests =
    testSequenced <| testList "bench/smoke" [
        testCase "the quick bench writes every section with positive figures" <| fun () ->
            let code, json = runBench []
            Expect.equal code 0 "exit code"
            let root = (Option.get json).RootElement
            let sections = root.GetProperty "sections"
            let names = sections.EnumerateObject() |> Seq.map (fun p -> p.Name) |> Set.ofSeq
            Expect.equal names (set [ "peak"; "update"; "decode"; "popo"; "memory" ]) "sections"
            let peak = sections.GetProperty("peak").GetProperty "facts"
            for f in [ "matmul_gflops"; "matmul_gflops_per_cpu_s"; "copy_gb_s"; "copy_gb_per_cpu_s" ] do positive peak f
            let update = rows (sections.GetProperty "update")
            Expect.isGreaterThanOrEqual update.Length 3 "at least three update sizes"
            for r in update do
                for f in [ "params_M"; "tokens"; "step_s"; "tok_s"; "gflops"; "mfu_wall"; "mfu_cpu"; "peak_rss_mib"; "forward_s"; "backward_s"; "optimizer_s" ] do positive r f
                // The phases split one timed round, the fastest, so together they cannot exceed the best step.
                let phases = number r "forward_s" + number r "backward_s" + number r "optimizer_s"
                Expect.isLessThanOrEqual phases (number r "step_s" * 1.0001) "the phases fit in the best step"
                Expect.isGreaterThan phases (number r "step_s" * 0.5) "the phases cover the step"
            let decode = rows (sections.GetProperty "decode")
            Expect.equal (decode |> List.map (fun r -> number r "batch")) [ 1.0; 4.0 ] "quick decode batches"
            for r in decode do
                for f in [ "decode_tok_s"; "prefill_tok_s"; "bandwidth_bound_tok_s"; "x_of_bound"; "pct_peak_wall" ] do positive r f
            let popo = rows (sections.GetProperty "popo")
            Expect.equal (popo |> List.map (fun r -> number r "pass_rate")) [ 0.1; 0.25; 0.5 ] "pass rates"
            // Quick setup: 5 prompts x 8 rollouts x 8 tokens, no stop token: k = rate x 40 positives of 8 tokens each.
            Expect.equal (popo |> List.map (fun r -> number r "positive_tokens")) [ 32.0; 80.0; 160.0 ] "positive tokens"
            for r in popo do
                for f in [ "grpo_update_s"; "popo_update_s"; "update_ratio"; "step_ratio" ] do positive r f
            let memory = sections.GetProperty("memory").GetProperty "facts"
            Expect.equal (number memory "steps") 20.0 "memory steps"
            for f in [ "rss_after_warmup_mib"; "rss_end_mib"; "peak_rss_mib" ] do positive memory f

        testCase "--only runs just the named sections (and the peak)" <| fun () ->
            let code, json = runBench [ "--only"; "popo" ]
            Expect.equal code 0 "exit code"
            let names = (Option.get json).RootElement.GetProperty("sections").EnumerateObject() |> Seq.map (fun p -> p.Name) |> Set.ofSeq
            Expect.equal names (set [ "peak"; "popo" ]) "sections"

        testCase "--only rollout: before and after give identical outputs, and the bf16 batch-1 decode row is there" <| fun () ->
            let code, json = runBench [ "--only"; "rollout" ]
            Expect.equal code 0 "exit code"
            let sections = (Option.get json).RootElement.GetProperty "sections"
            let rollout = rows (sections.GetProperty "rollout")
            Expect.isNonEmpty rollout "rollout rows"
            for r in rollout do
                Expect.equal (number r "identical") 1.0 "same tokens and masks with the features on and off"
                for f in [ "before_s"; "after_s"; "before_tok_s"; "after_tok_s"; "speedup" ] do positive r f
            for r in rows (sections.GetProperty "decode_b1_bf16") do
                for f in [ "ms_per_step"; "bound_ms"; "x_of_bound"; "x_of_bound_cpu" ] do positive r f

        testCase "an unknown section is refused with the valid names" <| fun () ->
            let message =
                try
                    Popo.Bench.BenchRunner.Run(Nullable 1, true, [| "peak"; "decod" |], "unused.json", TextWriter.Null) |> ignore
                    failtest "an unknown section was accepted"
                with :? ArgumentException as e -> e.Message
            Expect.stringContains message "section(s) decod;" "names the bad section"
            Expect.stringContains message "valid: peak, update, decode" "lists the valid ones"
    ]
