/// "Same seed, same result" on a busy machine (issue 35): two full fine-tuning runs with the same seed, on two
/// intra-op threads, side by side while other processes load every core, write the same step checkpoints bit for bit
/// and the same metrics in every column but the wall-clock ones (Trainer.WallClockColumns).
module Popo.Tests.Reliability.BusyMachine

open System
open System.Diagnostics
open System.IO
open Expecto
open Popo.Engine.Training
open Popo.Tests.Reliability.Harness

/// Full fine-tuning (lora_r = 0) of a small built-in model on two threads, a checkpoint after every step; extra flags
/// after.
let private flags (extra: string list) (out: string) =
    "train" :: smallRun out [ "--steps", "3"; "--eval-every", "3"; "--threads", "2"; "--seed", "5" ] @ extra

/// Processes that load the CPU until stopped (and at most 5 minutes whatever happens to this test): a busy loop per
/// core and a 1 ms polling loop, the kind of neighbour that made a run differ.
let private startLoad () =
    let start (script: string) =
        let info = ProcessStartInfo("timeout", UseShellExecute = false)
        for a in [ "300"; "sh"; "-c"; script ] do info.ArgumentList.Add a
        Process.Start info
    [ for _ in 1 .. Environment.ProcessorCount do yield start "while :; do :; done"
      yield start "while :; do sleep 0.001; done" ]

let private stop (load: Process list) =
    for p in load do
        try p.Kill true with _ -> ()
        p.WaitForExit()
        p.Dispose()

[<Tests>]
let tests =
    testSequenced <| testList "reliability/busy-machine" [
        test "the wall-clock columns are metric columns, declared once" {
            for c in Trainer.WallClockColumns do Expect.contains Trainer.Columns c $"{c} is a metrics column"
            Expect.equal timing (set Trainer.WallClockColumns) "the tests compare every other column"
        }

        test "popo fixes its thread counts before libtorch loads (MKL and OpenMP dynamic adjustment off, MKL CBWR)" {
            Expect.equal (benchMeta [] "threading") "MKL_DYNAMIC=FALSE, OMP_DYNAMIC=FALSE, MKL_CBWR=AUTO" "the settings the process runs with"
            Expect.equal (benchMeta [ "MKL_CBWR", "COMPATIBLE" ] "threading") "MKL_DYNAMIC=FALSE, OMP_DYNAMIC=FALSE, MKL_CBWR=COMPATIBLE" "a setting the environment gives is kept"
        }

        for precision, extra in [ "float32", []; "bf16 mixed precision (the explicit attention path)", [ "--bf16"; "true" ] ] do
          test $"two same-seed full fine-tuning runs on two threads, {precision}, with every core loaded, agree bit for bit" {
              withTemp (fun root ->
                  let load = startLoad ()
                  try
                      let a, b = Path.Combine(root, "a"), Path.Combine(root, "b")
                      // Side by side: each run is also the other's load.
                      let pa, ea = startPopo (flags extra a)
                      let pb, eb = startPopo (flags extra b)
                      for p, e in [ pa, ea; pb, eb ] do
                          use _ = p
                          if not (p.WaitForExit 300_000) then p.Kill true; failtest "a run did not finish in 5 minutes"
                          p.WaitForExit()
                          Expect.equal p.ExitCode 0 $"run: {e.Result}"
                      Expect.isTrue (load |> List.forall (fun p -> not p.HasExited)) "the premise: the load ran throughout"
                      expectSameRuns 3 a b
                  finally stop load)
          }
    ]
