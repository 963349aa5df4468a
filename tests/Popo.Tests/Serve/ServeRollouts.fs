/// `popo serve` as the trainer's rollout server, two processes: a run with rollout_engine = server puts its weights into a
/// `popo serve` child process (full fine-tuning through /update_weights_from_disk; LoRA through /v1/load_lora_adapter) and
/// samples from it. Processed log-probs from the same engine equal the trainer's own, so the correction's log-prob gap
/// (is_logp_diff) is zero at every step exactly when the synced weights arrived; the control that never syncs after the
/// start shows the gap the test would see if they did not.
module Popo.Tests.Serve.ServeRollouts

open System
open System.IO
open System.Text.Json
open Expecto
open Popo.Engine.Training
open Popo.Tests.Reliability.Harness
open Popo.Tests.Serve.ServeFixtures

/// NSR learns from negatives, which a random model always has, so every step changes the weights (checked).
let private runFlags (out: string) (url: string) (lora: bool) (syncEvery: int) =
    modelFlags @ [ [ "--out"; out ]; [ "--sft-steps"; "0" ]; [ "--steps"; "3" ]; [ "--prompts-per-step"; "2" ]; [ "--group-size"; "4" ]
                   [ "--max-new-tokens"; "8" ]; [ "--eval-problems"; "4" ]; [ "--eval-every"; "0" ]; [ "--threads"; "1" ]; [ "--difficulty"; "tiny" ]
                   [ "--algo"; "nsr" ]; [ "--lr"; "0.01" ]; [ "--rollout-engine"; "server" ]; [ "--rollout-urls"; url ]
                   [ "--rollout-model"; "tiny" ]; [ "--sync-route"; "sglang" ]; [ "--sync-every"; string syncEvery ]; [ "--rollout-retries"; "0" ] ]
    @ (if lora then [ [ "--lora-r"; "4" ]; [ "--lora-alpha"; "8" ]; [ "--lora-target-modules"; "all-linear" ] ] else [])

let private column (out: string) (key: string) =
    File.ReadAllLines(Path.Combine(out, "metrics.jsonl"))
    |> Array.filter (fun l -> l.Length > 0)
    |> Array.map (fun l -> JsonDocument.Parse(l).RootElement.GetProperty(key).GetDouble())

/// Trains against a fresh `popo serve` over <paramref name="model"/>, then returns is_logp_diff per step and /v1/models' ids.
let private trainAgainstServer (root: string) (name: string) (model: string) (lora: bool) (syncEvery: int) =
    let p, url, stderr = startServe [ "--model"; model; "--port"; "0"; "--threads"; "1"; "--served-model-name"; "tiny"; "--logprobs-mode"; "processed_logprobs" ]
    use _ = p
    try
        let out = Path.Combine(root, name)
        // a LoRA run trains adapters over the folder the server serves
        let flags = runFlags out (url + "/v1") lora syncEvery @ [ [ "--model"; model ] ]
        Trainer.Start(flagConfig flags, Recorder()) |> ignore
        Expect.equal (column out "skipped_update") [| 0.0; 0.0; 0.0 |] "the premise: every step changes the weights"
        use client = new Net.Http.HttpClient()
        let models = JsonDocument.Parse(client.GetStringAsync(url + "/v1/models").Result).RootElement.GetProperty("data")
        column out "is_logp_diff", [ for m in models.EnumerateArray() -> m.GetProperty("id").GetString() ]
    finally
        (try p.Kill true with _ -> ())
        p.WaitForExit 10000 |> ignore
        if stderr.Wait 5000 && stderr.Result.Contains "Unhandled" then failtest $"popo serve failed: {stderr.Result}"

let private withRoot (body: string -> unit) =
    let root = Path.Combine(Path.GetTempPath(), "popo-serve-rollouts-" + Guid.NewGuid().ToString("N"))
    Directory.CreateDirectory root |> ignore
    try body root finally (try Directory.Delete(root, true) with _ -> ())

[<Tests>]
let tests =
    testSequenced <| testList "serve/rollouts" [
        for lora in [ false; true ] do
            let route = if lora then "LoRA adapters through /v1/load_lora_adapter" else "full weights through /update_weights_from_disk"
            testCase $"a run's {route} reach popo serve every step: its log-probs are the trainer's" <| fun () ->
                withRoot (fun root ->
                    let model = Path.Combine(root, "model")
                    writeModel model 1
                    let synced, ids = trainAgainstServer root "synced" model lora 1
                    for s, d in Array.indexed synced do
                        Expect.isLessThan d 1e-5 $"step {s + 1}: the server samples with the trainer's weights (is_logp_diff)"
                    if lora then
                        Expect.equal ids.Length 2 $"the base and the newest adapter, the older ones unloaded: {ids}"
                        Expect.stringStarts ids.[1] "popo-step2-" "the adapter synced after step 2"
                    // The control: synced only at the start, the server samples with the starting weights from step 2 on.
                    let stale, _ = trainAgainstServer root "stale" model lora 100
                    Expect.isLessThan stale.[0] 1e-5 "step 1: both start from the same weights"
                    for s in 1 .. 2 do
                        Expect.isGreaterThan stale.[s] 1e-4 $"step {s + 1} unsynced: a gap the synced run does not have")
    ]
