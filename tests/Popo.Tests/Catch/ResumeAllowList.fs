/// The resume allow-list (issue 28, group 5), by iterating the configuration schema: `--resume` accepts a change
/// of exactly the keys that leave the trajectory so far as it was (stated here, independently of the engine's
/// list) and refuses every other key, naming it, whatever else the change list holds.
module Popo.Tests.Catch.ResumeAllowList

open System
open System.Globalization
open System.IO
open Expecto
open FsCheck
open FsCheck.FSharp
open Popo.Engine.Runtime
open Popo.Engine.Configuration
open Popo.Engine.Training

/// Keys that change only where the run executes, how long it goes on, or what it writes and checks
/// (ResumeChanges' documented contract); any key added to the schema later is refused until added here.
let private mayChange =
    set [ "steps"; "threads"; "device"; "save_every"; "eval_every"; "save_total_limit"; "memory_check"
          // where the rollout servers are and how patiently they are asked (issue 31): a run resumed after a server
          // failed may point at another one serving the same weights
          "rollout_urls"; "rollout_model"; "rollout_timeout"; "rollout_max_inflight"; "rollout_retries"; "sync_route"; "sync_folder"
          // where libtorch's memory comes from (issue 34): the same bits either way
          "native_heap" ]

let private saved () = TrainConfig(Out = Path.Combine(Path.GetTempPath(), "popo-resume-" + Guid.NewGuid().ToString("N")))

/// The key's value in a config, as a flag would write it (always a valid value of the key).
let private valueOf (config: TrainConfig) (entry: ConfigEntry) =
    match entry.Property.GetValue config with
    | :? bool as b -> if b then "true" else "false"
    | :? double as d -> d.ToString("R", CultureInfo.InvariantCulture)
    | :? int as i -> string i
    | v -> string v

/// A valid value different from the saved one, for the keys that may change.
let private changed (config: TrainConfig) (entry: ConfigEntry) =
    match entry.Property.GetValue config with
    | :? bool as b -> if b then "false" else "true"
    | :? int as i -> string (i + 1)
    | _ -> valueOf config entry   // device: cpu is the only device a test machine surely has

let private refusal (config: TrainConfig) (changes: (string * string) list) =
    try
        ResumeChanges.Apply(config, ResizeArray [ for k, v in changes -> struct (k, v) ]) |> ignore
        None
    with :? ConfigException as e -> Some e.Message

let private keys = ConfigSchema.Entries |> Seq.map (fun e -> e.Key) |> List.ofSeq

[<Tests>]
let tests =
    testList "catch/resume-allow-list" [
        test "every schema key off the allow-list is refused on resume, even at its saved value, naming its flag" {
            let config = saved ()
            let off = ConfigSchema.Entries |> Seq.filter (fun e -> not (mayChange.Contains e.Key)) |> List.ofSeq
            Expect.isGreaterThan off.Length 50 "the schema's trajectory keys (model, data, objective, sampling ...)"
            for entry in off do
                match refusal config [ entry.Key, valueOf config entry ] with
                | Some message -> Expect.stringContains message (entry.Flag + " would change the run") entry.Key
                | None -> failtestf "--resume accepted a change of '%s'" entry.Key
        }

        test "every key on the allow-list is accepted on resume and takes its new value" {
            let config = saved ()
            for entry in ConfigSchema.Entries |> Seq.filter (fun e -> mayChange.Contains e.Key) do
                let value = changed config entry
                let result = ResumeChanges.Apply(config, ResizeArray [ struct (entry.Key, value) ])
                Expect.equal (valueOf result entry) value entry.Key
            Expect.equal (ConfigSchema.Entries |> Seq.filter (fun e -> mayChange.Contains e.Key) |> Seq.length) mayChange.Count
                "every allowed key is a schema key"
        }

        testPropertyWithConfig { FsCheckConfig.defaultConfig with maxTest = 200 } "a change list is refused iff it holds a key off the allow-list, and the refusal names each such key" <|
            // half the lists from the allowed keys alone: a random list of all keys almost always holds a refused one
            Prop.forAll (Arb.fromGen (Gen.oneof [ Gen.subListOf keys; Gen.subListOf (List.ofSeq mayChange) ] |> Gen.map List.ofSeq)) (fun chosen ->
                let config = saved ()
                let entries = chosen |> List.map (fun k -> ConfigSchema.Entries |> Seq.find (fun e -> e.Key = k))
                let changes = entries |> List.map (fun e -> e.Key, (if mayChange.Contains e.Key then changed config e else valueOf config e))
                let off = entries |> List.filter (fun e -> not (mayChange.Contains e.Key))
                match refusal config changes, off with
                | None, [] -> ()
                | Some message, _ :: _ ->
                    // the refused keys come before " would change the run"; the allowed ones are listed after it
                    let refused = message.Substring(0, max 0 (message.IndexOf " would change the run"))
                    for e in off do Expect.isTrue ((refused + ",").Contains(e.Flag + ",")) (sprintf "names %s among the refused keys: %s" e.Key message)
                | None, _ -> failtestf "accepted %A" (off |> List.map (fun e -> e.Key))
                | Some message, [] -> failtestf "refused only allowed keys %A: %s" chosen message)
    ]
