/// SIGKILL at random moments of a real `popo train` process (issue 10): the output folder always holds a
/// complete, loadable last checkpoint equal to the uninterrupted run's at that step, and `--resume`
/// ends with the same final model (bitwise), metrics, samples and evaluation as the uninterrupted run.
/// scripts/soak.sh repeats the same trial many more times.
module Popo.Tests.Reliability.Kill

open System
open System.Diagnostics
open System.IO
open System.Text.Json
open System.Threading
open Expecto
open Popo.Engine.Training
open Popo.Tests.Reliability.Harness

/// RL steps of the kill runs.
let killSteps = 16

/// Small enough for CI (about 3 s per run on one thread), long enough that kills land in the warm-up,
/// the RL steps and the checkpoint writes; a checkpoint after every step.
let killRun (out: string) (overrides: (string * string) list) =
    smallRun out ([ "--layers", "1"; "--sft-steps", "60"; "--steps", string killSteps; "--eval-problems", "4"; "--eval-every", "4"; "--seed", "3" ] @ overrides)

let killFlags (out: string) = killRun out []

let private timeoutMs = 120_000

/// The uninterrupted run; returns when, counted from config.json's appearance, its RL phase began (the
/// warm-up checkpoint appeared) and when it ended: the windows kills are drawn from.
let runReference (out: string) =
    let p, stderr = startPopo ("train" :: killFlags out)
    use _ = p
    let configFile = Path.Combine(out, RunFolder.ConfigFile)
    let warmup = Path.Combine(out, "checkpoints", "warmup")
    while not p.HasExited && not (File.Exists configFile) do Thread.Sleep 2
    let clock = Stopwatch.StartNew()
    while not p.HasExited && not (Directory.Exists warmup) do Thread.Sleep 2
    let rl = clock.Elapsed
    if not (p.WaitForExit timeoutMs) then p.Kill true; failtest "reference run timed out"
    p.WaitForExit()
    Expect.equal p.ExitCode 0 $"reference run: {stderr.Result}"
    rl, clock.Elapsed

/// What a kill left behind must be usable: the newest step-N checkpoint loads completely, its counters
/// say step N, and its weights are the uninterrupted run's at step N, bit for bit.
/// warmupModel: whether the warm-up folder holds a model (a warm-up ran, or the built-in model); a --model run without
/// a warm-up keeps only its evaluation there.
let checkLeftovers (warmupModel: bool) (killed: string) (reference: string) =
    let latest = TrainingCheckpoint.Latest killed
    if latest.HasValue then
        let struct (folder, step) = latest.Value
        let progress = loadTrainingCheckpoint killed folder
        Expect.equal progress.Step step "trainer_state.json names the folder's step"
        let model f = Path.Combine(f, "model", "model.safetensors")
        Expect.isTrue (tensorBytes (model folder) = tensorBytes (model (TrainingCheckpoint.FolderFor(reference, step))))
            $"step-{step} weights equal the uninterrupted run's"
        Some step
    else
        let warmup = Path.Combine(killed, "checkpoints", "warmup")
        if Directory.Exists warmup then
            if warmupModel then
                let struct (model, _) = ModelFactory.Load(Path.Combine(warmup, "model"), TorchSharp.torch.CPU, Nullable())
                model.Dispose()
            else Expect.isFalse (Directory.Exists(Path.Combine(warmup, "model"))) "no warm-up, so no model copied into the run"
            Expect.isTrue (File.Exists(Path.Combine(warmup, "eval.json"))) "warm-up folder complete"
        None

/// The resumed run's results equal the uninterrupted run's: metrics (JSONL and CSV, timing columns
/// aside), samples, summary (wall time aside) and every final weight, bitwise.
let checkSameResults (steps: int) (resumed: string) (reference: string) =
    Expect.sequenceEqual (metricsRows resumed) (metricsRows reference) "metrics.jsonl rows"
    Expect.sequenceEqual (csvRows resumed) (csvRows reference) "metrics.csv rows"
    Expect.sequenceEqual (File.ReadAllLines(Path.Combine(resumed, "samples.jsonl"))) (File.ReadAllLines(Path.Combine(reference, "samples.jsonl"))) "samples.jsonl"
    let summary run =
        let s = JsonDocument.Parse(File.ReadAllText(Path.Combine(run, "summary.json"))).RootElement
        [ s.GetProperty("Steps").GetInt32() |> string; s.GetProperty("Rollouts").GetInt64() |> string
          s.GetProperty("Warmup").GetRawText(); s.GetProperty("Final").GetRawText() ]
    Expect.sequenceEqual (summary resumed) (summary reference) "summary.json (wall time aside)"
    let last run = Path.Combine(TrainingCheckpoint.FolderFor(run, steps), "model", "model.safetensors")
    Expect.isTrue (tensorBytes (last resumed) = tensorBytes (last reference)) "final model weights, bitwise"
    let objective run = Path.Combine(TrainingCheckpoint.FolderFor(run, steps), "objective.safetensors")
    Expect.isTrue (tensorBytes (objective resumed) = tensorBytes (objective reference)) "final predictor and EMA target, bitwise"
    Expect.isEmpty (Directory.GetDirectories(Path.Combine(resumed, "checkpoints"), AtomicFolder.TempPrefix + "*")) "no half-written checkpoint left"
    Expect.isEmpty (Directory.GetFiles resumed |> Array.filter Popo.Engine.Checkpoints.AtomicFile.IsTemp) "no half-written file left"

/// One trial: start, SIGKILL after a delay drawn uniformly from [from, until) once config.json exists,
/// check what is left, resume, compare. Returns (killed before finishing?, last checkpoint step at the kill).
let trial (root: string) (reference: string) (from: TimeSpan) (until: TimeSpan) (seed: int) =
    let out = Path.Combine(root, $"killed-{seed}")
    let delay = from + (until - from) * Random(seed).NextDouble()
    let p, _ = startPopo ("train" :: killFlags out)
    use _ = p
    let configFile = Path.Combine(out, RunFolder.ConfigFile)
    while not p.HasExited && not (File.Exists configFile) do Thread.Sleep 2
    let killed = not (p.WaitForExit(int delay.TotalMilliseconds))
    if killed then p.Kill()
    p.WaitForExit()
    let atKill = checkLeftovers true out reference
    let code, stderr = runPopo timeoutMs [ "train"; "--resume"; out ]
    Expect.equal code 0 $"resume after a kill at {delay.TotalMilliseconds:F0} ms: {stderr}"
    checkSameResults killSteps out reference
    killed, atKill

/// 3 trials in CI; scripts/soak.sh sets POPO_KILL_TRIALS (20 or more) and gets one line per trial.
let private trials, private soak =
    match Environment.GetEnvironmentVariable "POPO_KILL_TRIALS" with
    | null | "" -> 3, false
    | n -> int n, true

[<Tests>]
let tests =
    testSequenced <| testList "reliability/kill" [
        testCase $"{trials} SIGKILLs at seeded random moments: a loadable last checkpoint, and resume equals the uninterrupted run" <| fun () ->
            withTemp (fun root ->
                let reference = Path.Combine(root, "reference")
                let rl, finish = runReference reference
                // Odd trials draw the moment from the whole run, even ones from its RL phase (most of the
                // checkpoint writes); 5% is left at the end for run-to-run variation.
                let outcomes =
                    [ for i in 1 .. trials ->
                        let seed = 20261124 + i
                        let from = if i % 2 = 0 then rl else TimeSpan.Zero
                        let killed, atKill = trial root reference from (finish * 0.95) seed
                        if soak then
                            let where = match atKill with Some s -> $"last checkpoint step-{s}" | None -> "no step checkpoint yet"
                            printfn "trial %d (seed %d): %s; %s; resume equal" i seed (if killed then "killed" else "finished before the kill") where
                        killed ]
                Expect.isTrue (List.contains true outcomes) "at least one trial was killed before the run finished")

        testCase "a run killed while writing config.json, before it holds anything, starts again in the same folder" <| fun () ->
            withTemp (fun root ->
                let out = Path.Combine(root, "run")
                Directory.CreateDirectory out |> ignore
                let leftover = Path.Combine(out, $".config.json.{Guid.NewGuid():N}.tmp")
                File.WriteAllText(leftover, "{\"algo\": ")
                Expect.equal (Popo.Tests.Cli.TrainCli.popo ("train" :: Popo.Tests.Cli.TrainCli.tinyFlags out)) 0 "exit code"
                Expect.isFalse (File.Exists leftover) "the temp file is gone"
                Expect.isTrue (File.Exists(Path.Combine(out, "summary.json"))) "the run completed")
    ]
