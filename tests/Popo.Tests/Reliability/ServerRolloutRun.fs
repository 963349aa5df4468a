/// Whole runs with rollout_engine = server against an in-process fake of a server (HttpListener on 127.0.0.1): the
/// run syncs its weights through SGLang's load-from-disk route and the fake samples with them; a server deliberately
/// mismatched (it samples at 1.5 x the temperature asked) shows in the correction's metrics while the run trains; a
/// server that fails from step 3 on stops the run with an error naming it, the last checkpoint stays intact, and
/// Trainer.Resume continues once the server is back; with async_rollouts each step is sampled one step stale.
module Popo.Tests.Reliability.ServerRolloutRun

open System
open System.IO
open System.Text.Json
open Expecto
open TorchSharp
open Popo.Engine.Model
open Popo.Engine.Rollout
open Popo.Engine.Training
open Popo.Tests.Engine.FakeRolloutServer
open Popo.Tests.Reliability.Harness

/// A fake server that serves the model of the last folder it was told to load (SGLang's /update_weights_from_disk),
/// sampling at factor x the temperature asked; it answers 503 to every completions request from the FailFrom-th on
/// while Failing. LoadsSeen: for each completions request, how many loads it came after.
type private Fake(factor: float) =
    let mutable model: Qwen2ForCausalLM option = None
    let gate = obj ()
    let seen = Collections.Generic.List<int>()
    member val Failing = false with get, set
    member val FailFrom = 1 with get, set
    member val Loads = 0 with get, set
    member _.Completions = lock gate (fun () -> seen.Count)
    member _.LoadsSeen = lock gate (fun () -> List.ofSeq seen)
    member this.Respond (path: string) (body: Text.Json.Nodes.JsonNode) =
        match path with
        | "/update_weights_from_disk" ->
            let struct (loaded, _) = ModelFactory.Load(body.["model_path"].GetValue<string>(), torch.CPU, Nullable())
            model |> Option.iter (fun m -> m.Dispose())
            model <- Some loaded
            this.Loads <- this.Loads + 1
            ok """{"success": true, "message": "loaded"}"""
        | "/v1/completions" ->
            let count = lock gate (fun () -> seen.Add this.Loads; seen.Count)
            if this.Failing && count >= this.FailFrom then { Status = 503; Body = "overloaded"; Delay = TimeSpan.Zero }
            else
                match model with
                | Some m -> ok (complete m factor body)
                | None -> { Status = 500; Body = "no weights loaded"; Delay = TimeSpan.Zero }
        | other -> { Status = 404; Body = $"no route {other}"; Delay = TimeSpan.Zero }
    interface IDisposable with
        member _.Dispose() = model |> Option.iter (fun m -> m.Dispose())

let private serverFlags (out: string) (url: string) =
    (Popo.Tests.Cli.TrainCli.tinyFlags out |> List.chunkBySize 2)
    @ [ [ "--rollout-engine"; "server" ]; [ "--rollout-urls"; url ]; [ "--rollout-model"; "fake" ]
        [ "--sync-route"; "sglang" ]; [ "--rollout-retries"; "1" ]; [ "--rollout-timeout"; "60" ] ]

let private rows (out: string) =
    File.ReadAllLines(Path.Combine(out, "metrics.jsonl"))
    |> Array.filter (fun l -> l.Length > 0)
    |> Array.map (fun l -> JsonDocument.Parse(l).RootElement)

let private number (row: JsonElement) (key: string) =
    match row.GetProperty(key).ValueKind with
    | JsonValueKind.Number -> row.GetProperty(key).GetDouble()
    | _ -> nan

let private withTemp (body: string -> unit) =
    let root = Path.Combine(Path.GetTempPath(), "popo-server-run-" + Guid.NewGuid().ToString("N"))
    Directory.CreateDirectory root |> ignore
    try body root finally Directory.Delete(root, true)

[<Tests>]
let tests =
    testSequenced <| testList "reliability/server-rollout" [
        testCase "a mismatched server (1.5 T): the weights sync every step, the correction shows the mismatch, the run trains" <| fun () ->
            withTemp (fun root ->
                use fake = new Fake(1.5)
                use server = new ListenerServer(fake.Respond)
                let out = Path.Combine(root, "run")
                let log = Recorder()
                // A longer warm-up than tinyFlags' so that some rollouts are correct at 1.5 T and POPO has positives to learn from.
                let flags = serverFlags out server.Url |> List.map (function [ "--sft-steps"; _ ] -> [ "--sft-steps"; "40" ] | p -> p)
                Trainer.Start(flagConfig flags, log) |> ignore
                let metrics = rows out
                Expect.equal metrics.Length 4 "four steps"
                Expect.equal fake.Completions 8 "2 prompts x 4 steps, one request each"
                Expect.equal fake.Loads 4 "the starting weights, then after steps 1-3"
                for row in metrics do
                    Expect.isGreaterThan (number row "is_logp_diff") 0.01 "the server's log-probs differ from the trainer's"
                    Expect.isGreaterThan (number row "is_kl") 0.0 "k3 > 0"
                    let share = number row "is_corrected"
                    Expect.isTrue (share >= 0.0 && share <= 1.0) "a share"
                    Expect.isGreaterThan (number row "server_tokens_per_s") 0.0 "server tokens/s"
                    Expect.equal (number row "non_finite") 0.0 "no bad step"
                let describe (row: JsonElement) =
                    sprintf "pass_rate %g skipped %g is_kl %g is_corrected %g" (number row "pass_rate") (number row "skipped_update") (number row "is_kl") (number row "is_corrected")
                let summary = metrics |> Array.map describe |> String.concat "; "
                // POPO learns from any positive: a step with a correct rollout updates the policy, correction or not.
                for row in metrics do
                    if number row "pass_rate" > 0.0 then
                        Expect.equal (number row "skipped_update") 0.0 $"a step with positives updates the policy: {summary}"
                printfn "mismatched server run: %s" summary
                Expect.isTrue (log.Lines |> Seq.exists (fun l -> l.Contains "tokens/s")) "progress shows the server's tokens/s"
                Expect.isTrue (File.Exists(Path.Combine(out, "summary.json"))) "the run finished")

        testCase "async_rollouts: step s + 1 is requested before step s's update and sync, one step stale, and the correction sees it" <| fun () ->
            withTemp (fun root ->
                use fake = new Fake(1.0)
                use server = new ListenerServer(fake.Respond)
                let out = Path.Combine(root, "run")
                // NSR learns from the negatives, which this tiny model always has: every step updates.
                let flags = serverFlags out server.Url @ [ [ "--async-rollouts"; "true" ]; [ "--algo"; "nsr" ]; [ "--lr"; "0.01" ] ]
                Trainer.Start(flagConfig flags, Recorder()) |> ignore
                let metrics = rows out
                Expect.equal metrics.Length 4 "four steps"
                Expect.equal fake.Loads 4 "the starting weights, then after steps 1-3"
                // In step order (two prompts a step): step 1 after the first load; step 2 also, since it was sent before
                // step 1's sync; step s after s - 1 loads. Without async_rollouts it would be 1, 1, 2, 2, 3, 3, 4, 4.
                Expect.equal (List.sort fake.LoadsSeen) [ 1; 1; 1; 1; 2; 2; 3; 3 ] "each step's requests, sampled with the weights of one step before"
                Expect.equal (metrics |> Array.map (fun r -> number r "rollout_staleness")) [| 0.0; 1.0; 1.0; 1.0 |] "rollout_staleness"
                Expect.isLessThan (number metrics.[0] "is_logp_diff") 1e-5 "step 1 sampled with the trainer's own weights"
                // A server that samples as asked: what the correction sees from step 2 on is the staleness, where the step before updated.
                let stale = [ for s in 1 .. 3 do if number metrics.[s - 1] "skipped_update" = 0.0 then yield s ]
                let skipped = metrics |> Array.map (fun r -> number r "skipped_update")
                let passRate = metrics |> Array.map (fun r -> number r "pass_rate")
                Expect.isNonEmpty stale $"some step updated: skipped_update %A{skipped}, pass_rate %A{passRate}"
                for s in stale do
                    Expect.isGreaterThan (number metrics.[s] "is_logp_diff") 1e-6 $"step {s + 1}: sampled before step {s}'s update"
                Expect.isTrue (File.Exists(Path.Combine(out, "summary.json"))) "the run finished")

        for asyncRollouts in [ false; true ] do
            testCase $"the server fails at step 3 (async_rollouts {asyncRollouts}): the run stops naming it, step 2's checkpoint is intact, Resume continues" <| fun () ->
                withTemp (fun root ->
                    use fake = new Fake(1.0)
                    use server = new ListenerServer(fake.Respond)
                    let out = Path.Combine(root, "run")
                    let flags = serverFlags out server.Url @ [ [ "--async-rollouts"; string asyncRollouts ] ]
                    // Steps 1 and 2 need 4 completions requests; from the fifth on (step 3's, sent during step 2 with
                    // async_rollouts) the server answers 503.
                    fake.Failing <- true
                    fake.FailFrom <- 5
                    let e = Expect.throwsC (fun () -> Trainer.Start(flagConfig flags, Recorder()) |> ignore) id
                    Expect.isTrue (e :? RolloutServerException) $"a RolloutServerException, not {e}"
                    Expect.stringContains e.Message (server.Url + "/completions") "names the server"
                    Expect.stringContains e.Message "prompt" "names the request"
                    Expect.stringContains e.Message "2 attempt" "1 + rollout_retries"
                    let step2 = TrainingCheckpoint.FolderFor(out, 2)
                    Expect.isTrue (Directory.Exists step2) "step 2's checkpoint"
                    Expect.isFalse (Directory.Exists(TrainingCheckpoint.FolderFor(out, 3))) "no step-3 checkpoint"
                    Expect.equal (rows out).Length 2 "steps 1 and 2 logged"
                    let before = Directory.GetFiles(step2, "*", SearchOption.AllDirectories) |> Array.sort |> Array.map File.ReadAllBytes
                    fake.Failing <- false
                    Trainer.Resume(out, Recorder()) |> ignore
                    let after = Directory.GetFiles(step2, "*", SearchOption.AllDirectories) |> Array.sort |> Array.map File.ReadAllBytes
                    Expect.equal after before "step 2's checkpoint untouched by the failure and the resume (save_total_limit keeps it)"
                    Expect.equal (rows out).Length 4 "steps 3 and 4 after the resume"
                    Expect.isTrue (Directory.Exists(TrainingCheckpoint.FolderFor(out, 4))) "the run completed")
    ]
