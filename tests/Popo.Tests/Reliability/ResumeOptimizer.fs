/// Resume must restore AdamW's moments, and the logged learning rate must follow the schedule. A run is
/// stopped after its step-2 checkpoint and resumed; after the resume point some RL step takes an optimizer
/// step with a nonzero gradient (checked, so the moments matter: the kill and disk tests' runs, with a
/// 20-step warm-up and 10 new tokens, never solve a problem, so every RL step there is skipped), and the
/// resumed run must end bit for bit where the uninterrupted one does. A fresh optimizer on resume restarts m and v at zero and the bias correction
/// at step 1, so the first update after the resume has a different size and the weights differ.
module Popo.Tests.Reliability.ResumeOptimizer

open System
open System.IO
open Expecto
open Popo.Engine.Training
open Popo.Tests.Reliability.Harness
open Popo.Tests.Reliability.Kill

let private steps = 6
let private lr = 0.003
let private warmupRatio = 0.25

/// The kill tests' tiny run with a 150-step warm-up and room for a worked solution (24 new tokens), so that
/// some rollouts are correct; 6 RL steps, the first 2 of them warming the rate up.
let private flags (out: string) =
    killRun out [ "--sft-steps", "150"; "--max-new-tokens", "24"; "--steps", string steps; "--lr", string lr; "--warmup-ratio", string warmupRatio ]
    |> List.chunkBySize 2

let private column (run: string) (name: string) =
    metricsRows run |> Array.map (fun row -> row |> List.find (fst >> (=) name) |> snd)

[<Tests>]
let tests =
    testSequenced <| testList "reliability/resume-optimizer" [
        testCase "resume after step 2 equals the uninterrupted run, with nonzero-gradient AdamW steps after the resume point, and lr follows the schedule" <| fun () ->
            withTemp (fun root ->
                let reference = Path.Combine(root, "reference")
                let code, stderr = runPopo 180_000 ("train" :: List.concat (flags reference))
                Expect.equal code 0 $"uninterrupted run: {stderr}"

                // The premise: after the resume point some step updates with a nonzero gradient.
                let gradNorms = column reference "grad_norm"
                let skipped = column reference "skipped_update"
                let updates = [ for s in 3 .. steps do if skipped.[s - 1] = Nullable 0.0 && gradNorms.[s - 1].HasValue && gradNorms.[s - 1].Value > 0.0 then yield s ]
                Expect.isNonEmpty updates $"an optimizer step with a nonzero gradient after step 2 (grad_norm {gradNorms}, skipped {skipped})"

                // lr of RL step k (1-based) is the base rate times the schedule at optimizer step k - 1.
                let lrs = column reference "lr"
                Expect.equal lrs.Length steps "one row per step"
                for k in 1 .. steps do
                    let expected = lr * Popo.Tests.Engine.Schedule.factor (k - 1) steps warmupRatio
                    Expect.isTrue (lrs.[k - 1].HasValue && abs (lrs.[k - 1].Value - expected) <= 1e-12 * lr)
                        $"step {k}: lr {lrs.[k - 1]} expected {expected:R}"

                let resumed = Path.Combine(root, "resumed")
                Expect.throws (fun () -> Trainer.Start(flagConfig (flags resumed), Recorder(crashAt = 3)) |> ignore) "crash at step 3"
                Expect.isTrue (Directory.Exists(TrainingCheckpoint.FolderFor(resumed, 2))) "step-2 checkpoint written"
                let code, stderr = runPopo 180_000 [ "train"; "--resume"; resumed ]
                Expect.equal code 0 $"resume: {stderr}"
                checkSameResults steps resumed reference)
    ]
