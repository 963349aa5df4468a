/// Locates the real benchmark files (docs/design.md §7: ../shared/data beside the repository, or the
/// POPO_SHARED_DATA variable). Tests that need them skip with a printed notice when they are absent.
module Popo.Tests.Engine.SharedData

open System
open System.IO
open Expecto

/// The repository root (the folder holding Popo.sln above the test assembly), when the tests run inside one.
let repoRoot () =
    let rec up (dir: DirectoryInfo) =
        if isNull dir then None
        elif File.Exists(Path.Combine(dir.FullName, "Popo.sln")) then Some dir.FullName
        else up dir.Parent
    up (DirectoryInfo AppContext.BaseDirectory)

/// The data folder, when present.
let folder: string option =
    let fromEnv = Environment.GetEnvironmentVariable "POPO_SHARED_DATA"
    let candidates =
        [ if not (String.IsNullOrWhiteSpace fromEnv) then fromEnv
          match repoRoot () with
          | Some root -> Path.Combine(root, "..", "shared", "data")
          | None -> () ]
    candidates |> List.tryFind (fun d -> File.Exists(Path.Combine(d, "gsm8k", "test.jsonl")))

/// Path of `<name>/test.jsonl`, or a skip (with a printed notice) when the data is not there.
let file (name: string) : string =
    match folder with
    | Some d -> Path.Combine(d, name, "test.jsonl")
    | None ->
        let notice = sprintf "real data absent (no ../shared/data beside the repository and no POPO_SHARED_DATA): skipping %s" name
        printfn "%s" notice
        skiptest notice

/// A hand-written fixture file from tests/Popo.Tests/fixtures (found from the repository root).
let fixture (name: string) : string =
    let inRepo = repoRoot () |> Option.map (fun r -> Path.Combine(r, "tests", "Popo.Tests", "fixtures", name))
    match inRepo with
    | Some p when File.Exists p -> p
    | _ -> failwithf "fixture %s not found under tests/Popo.Tests/fixtures (the tests run from inside the repository)" name
