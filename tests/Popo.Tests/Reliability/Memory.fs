/// Steady memory in a long run (issue 10), at CI scale: the training loop leaves no native tensor behind
/// per step, so live tensors do not grow with the step count (scripts/soak.sh measures resident memory
/// over hours).
module Popo.Tests.Reliability.Memory

open System.IO
open Expecto
open TorchSharp
open Popo.Engine.Training
open Popo.Tests.Reliability.Harness

/// Live tensors on the training thread at each RL step.
type private LiveCounter() =
    let mutable phase = ""
    member val Counts = ResizeArray<int64>()
    interface ITrainingObserver with
        member _.Phase(name, _, _) = phase <- name
        member _.Log _ = ()
        member this.Step(_, _) = if phase = "rl" then this.Counts.Add(DisposeScopeManager.Statistics.ThreadTotalLiveCount)

[<Tests>]
let tests =
    testSequenced <| testList "reliability/memory" [
        testCase "live tensors on the training thread do not grow with the RL step count" <| fun () ->
            withTemp (fun root ->
                let flags =
                    Popo.Tests.Cli.TrainCli.tinyFlags (Path.Combine(root, "run"))
                    |> List.chunkBySize 2
                    |> List.map (function
                        | [ "--steps"; _ ] -> [ "--steps"; "40" ]
                        | [ "--eval-every"; _ ] -> [ "--eval-every"; "10" ]
                        | [ "--save-every"; _ ] -> [ "--save-every"; "10" ]
                        | p -> p)
                let counter = LiveCounter()
                Trainer.Start(flagConfig flags, counter) |> ignore
                let c = List.ofSeq counter.Counts
                Expect.equal c.Length 40 "one count per RL step"
                Expect.isTrue (c |> List.skip 9 |> List.forall ((=) c.[9])) $"live tensors at steps 10-40 (with evaluations and checkpoints) equal those at step 10: {c}")
    ]
