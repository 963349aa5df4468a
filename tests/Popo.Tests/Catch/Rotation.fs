/// Checkpoint rotation (issue 28, group 4): save_total_limit keeps the numerically newest step folders, also
/// across a power of ten, where the folders' names sort the other way (step-10 < step-9 as text).
module Popo.Tests.Catch.Rotation

open System
open System.IO
open Expecto
open FsCheck
open FsCheck.FSharp
open Popo.Engine.Training

let private withRun (steps: int seq) (f: string -> unit) =
    let run = Path.Combine(Path.GetTempPath(), "popo-rotation-" + Guid.NewGuid().ToString("N"))
    for s in steps do Directory.CreateDirectory(TrainingCheckpoint.FolderFor(run, s)) |> ignore
    try f run finally if Directory.Exists run then Directory.Delete(run, true)

let private left (run: string) =
    Directory.GetDirectories(Path.Combine(run, "checkpoints")) |> Array.map Path.GetFileName |> Array.sort |> List.ofArray

[<Tests>]
let tests =
    testList "catch/rotation" [
        test "save_total_limit 2 over step-9, step-10, step-11 keeps step-10 and step-11" {
            withRun [ 2; 9; 10; 11 ] (fun run ->
                TrainingCheckpoint.Prune(run, 2)
                Expect.equal (left run) [ "step-10"; "step-11" ] "the two newest by step number"
                Expect.equal (TrainingCheckpoint.Latest run |> Option.ofNullable |> Option.map (fun struct (_, s) -> s)) (Some 11) "the newest is the one resumed")
        }

        test "the newest checkpoint across 99 -> 100 is step-100" {
            withRun [ 99; 100 ] (fun run ->
                Expect.equal (TrainingCheckpoint.Latest run |> Option.ofNullable |> Option.map (fun struct (_, s) -> s)) (Some 100) "step-100, not step-99")
        }

        testPropertyWithConfig { FsCheckConfig.defaultConfig with maxTest = 60 } "pruning keeps exactly the `limit` largest step numbers" <|
            Prop.forAll (Arb.fromGen (Gen.zip (Gen.listOf (Gen.choose (0, 1200)) |> Gen.map List.distinct) (Gen.choose (0, 6)))) (fun (steps, limit) ->
                withRun steps (fun run ->
                    TrainingCheckpoint.Prune(run, limit)
                    let kept = if Directory.Exists(Path.Combine(run, "checkpoints")) then left run else []
                    // limit 0 keeps every checkpoint (TRL's save_total_limit = None)
                    let expected =
                        (if limit = 0 then steps else steps |> List.sortDescending |> List.truncate limit)
                        |> List.map (sprintf "step-%d") |> List.sort
                    Expect.equal kept expected (sprintf "steps %A, limit %d" steps limit)))
    ]
