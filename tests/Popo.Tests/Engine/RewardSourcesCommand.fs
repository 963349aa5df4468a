/// `command:PROGRAM ARGS` rewards (issue 30): the JSON-lines protocol end to end with a program the tests compile
/// (fixtures/rewards/CommandFixture.fs), processes kept across batches and bounded by the workers, and each fault (the
/// process dies, hangs, writes garbage or the wrong count, exits at start, is not there) a named error, never a hang.
module Popo.Tests.Engine.RewardSourcesCommand

open System
open System.IO
open Expecto
open Popo.Engine.Rewards
open Popo.Tests.Engine.RewardSourceFixtures

type private Log = Collections.Concurrent.ConcurrentQueue<string>

/// The command fixture in `mode` (a marker file in a fresh folder for the "-first" modes).
let private spec (mode: string) =
    let marker = Path.Combine(tempFolder "popo-reward-marker-", "first")
    $"command:\"{dotnet}\" CommandFixture.dll {mode} \"{marker}\""

let private start (mode: string) (timeout: float) (workers: int) (log: Log) =
    RewardSources.Load(spec mode, options (fixtures ()) timeout workers log) :?> CommandReward

let private expected (prompt: string) (completion: string) (ids: int list) (bonus: float) =
    float completion.Length + 10.0 * float prompt.Length + float (List.sum ids) / 1000.0 + bonus

let private batch =
    [ sample 0 "p1" "héllo" [ 1; 2 ] true """{"id": "r0", "meta": {"bonus": 0.5}}"""
      sample 0 "p1" "x" [ 3 ] false """{"id": "r0", "meta": {"bonus": 0.5}}"""
      sample 1 "prompt" "" [] true """{"id": "r1"}""" ]

let private scoreError (f: CommandReward) samples =
    throws<RewardCommandException> (fun () -> score f samples |> ignore)

[<Tests>]
let tests =
    testList "engine/reward-sources/command" [
        testCase "one line per group out, one array back: every field and nested column reaches the program; kept alive" <| fun () ->
            use f = start "score" 60.0 2 (Log())
            Expect.equal f.Name "CommandFixture" "named after the program's file"
            let want = [ Nullable(expected "p1" "héllo" [ 1; 2 ] 0.5); Nullable(); Nullable(expected "prompt" "" [] 0.0) ]
            Expect.equal (score f batch) want "the program's values, null where unfinished"
            Expect.equal (score f batch) want "the same processes answer the next batch"

        testCase "at most Workers processes, kept across batches" <| fun () ->
            use f = start "pid" 60.0 2 (Log())
            let groups = [ for g in 0..5 -> sample g "p" "c" [] true "{}" ]
            let first = score f groups |> List.map (fun v -> v.Value) |> set
            let second = score f groups |> List.map (fun v -> v.Value) |> set
            Expect.equal first.Count 2 "two workers served six groups"
            Expect.isTrue (second.IsSubsetOf first) "the second batch is served by the same processes"

        testCase "a process that dies is restarted once for the call; dying again is an error naming it all" <| fun () ->
            let log = Log()
            use once = start "die-first" 60.0 1 log
            Expect.equal (score once batch).[0] (Nullable(expected "p1" "héllo" [ 1; 2 ] 0.5)) "the restarted process answers"
            Expect.exists log (fun l -> l.Contains "exit code 3" && l.Contains "restarting it once") "the restart is logged"
            use always = start "die" 60.0 1 (Log())
            let message = scoreError always [ batch[0] ]
            containsAll message [ "reward function 'CommandFixture'"; "CommandFixture.dll die"; "group 0 (row id \"r0\")"; "exit code 3"; "twice"; "boom: dying on group 0" ]

        testCase "a hung process times out, is killed, and a fresh one serves the next call" <| fun () ->
            use f = start "hang-first" 5.0 1 (Log())
            let clock = Diagnostics.Stopwatch.StartNew()
            containsAll (scoreError f [ batch[2] ]) [ "group 1 (row id \"r1\")"; "timed out"; "no answer within 5 s" ]
            Expect.isLessThan clock.Elapsed.TotalSeconds 30.0 "the call did not hang"
            Expect.equal (score f [ batch[2] ]) [ Nullable(expected "prompt" "" [] 0.0) ] "the next call gets a fresh process"

        testCase "malformed JSON and the wrong count are errors quoting the line" <| fun () ->
            use garbage = start "garbage" 60.0 1 (Log())
            containsAll (scoreError garbage batch) [ "the reply is not JSON"; "the line: this is not json" ]
            use short = start "wrong-count" 60.0 1 (Log())
            containsAll (scoreError short [ batch[0]; batch[1] ]) [ "group 0"; "the reply has 1 values for 2 samples" ]

        testCase "a program that exits at start fails its first call with its stderr" <| fun () ->
            use f = start "exit-at-start" 60.0 1 (Log())
            containsAll (scoreError f [ batch[0] ]) [ "exit code 2"; "cannot start: the model file is missing" ]

        testCase "a program that is not there fails the load" <| fun () ->
            let load s = throws<RewardLoadException> (fun () -> RewardSources.Load(s, options (fixtures ()) 10.0 1 (Log())) |> ignore)
            containsAll (load "command:popo-no-such-program --x") [ "program 'popo-no-such-program' not found on PATH" ]
            containsAll (load "command:./missing-scorer") [ "program not found"; Path.Combine(fixtures (), "missing-scorer") ]
            containsAll (load "command:") [ "no program" ]
            containsAll (load "command:score \"unclosed") [ "unclosed \" quote" ]

        testCase "disposing kills the processes" <| fun () ->
            let f = start "pid" 60.0 1 (Log())
            let pid = (score f [ batch[2] ]).[0].Value |> int
            f.Dispose()
            let gone =
                try Diagnostics.Process.GetProcessById(pid).WaitForExit(5000)
                with :? ArgumentException -> true
            Expect.isTrue gone "the worker process has ended"
            Expect.throwsT<ObjectDisposedException> (fun () -> score f batch |> ignore) "a disposed function refuses calls"
    ]
