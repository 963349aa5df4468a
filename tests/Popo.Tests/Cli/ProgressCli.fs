/// Progress on stderr when it is not a terminal (a file, a pipe, CI): plain lines, each a whole line however long,
/// never hard-wrapped at a console width (`eval pass@1 ` on one line and `0.811` on the next was the bug).
module Popo.Tests.Cli.ProgressCli

open System
open System.IO
open System.Text.RegularExpressions
open Expecto
open Popo.Cli.Commands

let private metrics =
    readOnlyDict [ "loss", 0.012345; "reward_mean", 0.8125; "pass_rate", 0.8125; "tokens_per_s", 123456.0; "eval_pass1", 0.811 ]

[<Tests>]
let tests =
    testSequenced <| testList "cli/progress" [
        testCase "redirected progress: a step line and a log line far wider than a console each stay on one line" <| fun () ->
            use output = new StringWriter()
            use observer = new ProgressObserver(output, false)
            let phase = "rl-" + String('p', 150)
            let message = "checkpoint written to /" + String.Join("/", Array.create 30 "folder name")
            observer.Phase(phase, 4, 0)
            observer.Step(4, metrics)
            observer.Log message
            let lines = output.ToString().Split('\n') |> Array.map (fun l -> l.TrimEnd '\r') |> Array.filter (fun l -> l <> "")
            Expect.equal lines.Length 3 $"phase, step and log: one line each, got:\n{output}"
            Expect.stringStarts lines.[0] phase "the phase line whole"
            Expect.stringStarts lines.[1] (phase + " 4/4") "the step line starts with its phase and step"
            Expect.stringContains lines.[1] "eval pass@1 0.811" "eval pass@1 and its value on the same line"
            Expect.isTrue (lines.[1].Length > 200) $"the step line is longer than any console ({lines.[1].Length} chars)"
            Expect.equal lines.[2] message "the log line whole"

        testCase "popo train resumed in a deep folder: the resume log line and every eval pass@1 stay whole" <| fun () ->
            let root = Path.Combine(Path.GetTempPath(), "popo-progress-" + Guid.NewGuid().ToString("N"))
            let out = Path.Combine(root, "a-run-folder-whose-name-alone-is-wider-than-any-console-" + String('x', 60))
            try
                Expect.equal (TrainCli.popo ("train" :: TrainCli.tinyFlags out)) 0 "first run"
                let code, stderr = TrainCli.popoStderr [ "train"; "--resume"; out; "--steps"; "6" ]
                Expect.equal code 0 $"resumed run:\n{stderr}"
                let whole = Regex.Escape(Path.Combine(out, "checkpoints")) + @"\S* \(step 4\)"
                Expect.isTrue (Regex.IsMatch(stderr, "resumed from " + whole)) $"the resume line on one line:\n{stderr}"
                let labels = Regex.Matches(stderr, "eval pass@1").Count
                Expect.isGreaterThan labels 0 $"progress shows eval pass@1:\n{stderr}"
                Expect.equal (Regex.Matches(stderr, @"eval pass@1 \d").Count) labels $"each eval pass@1 is followed by its value on the same line:\n{stderr}"
            finally
                if Directory.Exists root then Directory.Delete(root, true)
    ]
