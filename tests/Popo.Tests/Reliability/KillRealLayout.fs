/// SIGKILL trials (Kill.fs) at the layout of a real model (issue 35): full fine-tuning of a `--model` folder with the
/// Qwen2.5 layout and the real Qwen tokenizer and chat template (tiny widths, one layer, so that it stays fast). The
/// killed run leaves a loadable last checkpoint equal to the uninterrupted run's, and `--resume` ends the same.
module Popo.Tests.Reliability.KillRealLayout

open System
open System.Diagnostics
open System.IO
open System.Threading
open Expecto
open Popo.Engine.Training
open Popo.Tests.Cli.TrainCli
open Popo.Tests.Reliability.Harness
open Popo.Tests.Reliability.Kill

let private steps = 6

let private flags (model: string) (out: string) =
    [ "train"; "--model"; model; "--out"; out; "--lora-r"; "0"; "--sft-steps"; "0"; "--steps"; string steps; "--lr"; "1e-3"
      "--prompts-per-step"; "2"; "--group-size"; "4"; "--max-new-tokens"; "8"; "--eval-problems"; "2"; "--eval-every"; "3"
      "--save-every"; "1"; "--predictor-hidden"; "16"; "--threads"; "1"; "--difficulty"; "tiny"; "--seed"; "3" ]

let private waitOrFail (p: Process) (stderr: Threading.Tasks.Task<string>) =
    if not (p.WaitForExit 300_000) then p.Kill true; failtest "run timed out"
    p.WaitForExit()
    Expect.equal p.ExitCode 0 $"run: {stderr.Result}"

[<Tests>]
let tests =
    testSequenced <| testList "reliability/kill-real-layout" [
        testCase "full fine-tuning of a Qwen2.5-layout --model folder: 2 SIGKILLs, a loadable last checkpoint, resume equals the uninterrupted run" <| fun () ->
            withTemp (fun root ->
                let model = Path.Combine(root, "qwen")
                let code, err = popoStderr [ "init"; "--config"; "qwen2.5-0.5b"; "--tokenizer"; Popo.Tests.Engine.TokenizerCache.qwen3 (); "--out"; model; "--dtype"; "float32"
                                             "hidden_size=32"; "num_attention_heads=2"; "num_key_value_heads=1"; "intermediate_size=64"; "num_hidden_layers=1" ]
                Expect.equal code 0 $"popo init: {err}"
                let reference = Path.Combine(root, "reference")
                let p, stderr = startPopo (flags model reference)
                let configFile = Path.Combine(reference, RunFolder.ConfigFile)
                while not p.HasExited && not (File.Exists configFile) do Thread.Sleep 2
                let clock = Stopwatch.StartNew()
                waitOrFail p stderr
                p.Dispose()
                let finish = clock.Elapsed
                let outcomes =
                    [ for i in 1 .. 2 ->
                        let out = Path.Combine(root, $"killed-{i}")
                        // one kill early (warm-up evaluation, first steps), one late (RL steps and checkpoint writes)
                        let delay = finish * (if i = 1 then 0.3 else 0.75) * (0.9 + 0.2 * Random(35 + i).NextDouble())
                        let p, _ = startPopo (flags model out)
                        use _ = p
                        while not p.HasExited && not (File.Exists(Path.Combine(out, RunFolder.ConfigFile))) do Thread.Sleep 2
                        let killed = not (p.WaitForExit(int delay.TotalMilliseconds))
                        if killed then p.Kill()
                        p.WaitForExit()
                        checkLeftovers false out reference |> ignore
                        let code, stderr = runPopo 300_000 [ "train"; "--resume"; out ]
                        Expect.equal code 0 $"resume after a kill at {delay.TotalMilliseconds:F0} ms: {stderr}"
                        checkSameResults steps out reference
                        killed ]
                Expect.isTrue (List.contains true outcomes) "at least one trial was killed before the run finished")
    ]
