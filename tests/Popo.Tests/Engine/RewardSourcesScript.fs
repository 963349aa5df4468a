/// `FILE.fsx` rewards (issue 30): a script's top-level `reward` function or its reward class, compiled in process; a
/// script that does not compile fails the load with every diagnostic's file, line and column.
module Popo.Tests.Engine.RewardSourcesScript

open System
open System.IO
open Expecto
open Popo.Engine.Rewards
open Popo.Tests.Engine.RewardSourceFixtures

let private folder = lazy (tempFolder "popo-reward-scripts-")

let private lines (text: string list) = String.Join("\n", text) + "\n"

let private load (name: string) (text: string) =
    let dir = folder.Force()
    File.WriteAllText(Path.Combine(dir, name), text)
    let log = Collections.Concurrent.ConcurrentQueue<string>()
    RewardSources.Load(name, options dir 10.0 1 log)

[<Tests>]
let tests =
    testList "engine/reward-sources/fsx" [
        testCase "a top-level reward function, named after its script; None is null, every column is there" <| fun () ->
            let f =
                load "closeness.fsx" (lines [ "open Popo.Rewards"
                                              "let reward (s: RewardSample) : float option ="
                                              "    if not s.Finished then None"
                                              "    else"
                                              "        let meta = s.Columns[\"meta\"]"
                                              "        let target = meta[\"target\"].GetValue<float>()"
                                              "        Some (float s.Completion.Length - target)" ])
            Expect.equal f.Name "closeness" "the script's name"
            let columns = """{"meta": {"target": 2}}"""
            let values = score f [ sample 0 "p" "abcde" [] true columns; sample 0 "p" "a" [] false columns ]
            Expect.equal values [ Nullable 3.0; Nullable() ] "length - target; None when unfinished"

        testCase "a RewardFunction class in a script" <| fun () ->
            let f =
                load "classy.fsx" (lines [ "open System"
                                           "open Popo.Rewards"
                                           "type Ids() ="
                                           "    inherit RewardFunction()"
                                           "    override _.Name = \"ids\""
                                           "    override _.Score(s) = Nullable(float s.CompletionIds.Count)" ])
            Expect.equal f.Name "ids" "the class's name"
            Expect.equal (score f [ sample 0 "p" "ab" [ 5; 6 ] true "{}" ]) [ Nullable 2.0 ] "the number of ids"

        testCase "compile errors: each with file, line and column, and the load fails" <| fun () ->
            let message =
                throws<RewardLoadException> (fun () ->
                    load "broken.fsx" "open Popo.Rewards\nlet reward (s: RewardSample) : float option = s.Completion\nlet x : int = \"no\"\n" |> ignore)
            let path = Path.Combine(folder.Force(), "broken.fsx")
            containsAll message [ "'broken.fsx'"; "does not compile (2 error(s))"; $"{path}(2,47): error FS0193"; $"{path}(3,15): error FS0001" ]

        testCase "the custom-task example's reward.fsx gives its documented values" <| fun () ->
            let script = repoFile "examples/custom-task/reward.fsx"
            let f = RewardSources.Load(script, options (Path.GetDirectoryName script) 10.0 1 (Collections.Concurrent.ConcurrentQueue()))
            Expect.equal f.Name "reward" "named after the script"
            let values =
                score f [ sample 0 "p" "*****" [] true """{"target": 5}"""
                          sample 0 "p" "***x" [] true """{"target": 5}"""
                          sample 1 "p" "***" [] true """{"answer": "3"}"""
                          sample 2 "p" "*" [] true "{}" ]
            Expect.equal values [ Nullable 1.0; Nullable(exp (-3.0 / 4.0)); Nullable 1.0; Nullable() ] "exp(-(|stars - N| + others) / 4): 2 stars short and 1 other is 3; null without a target"

        testCase "a script with no reward function, or two, says what it expects" <| fun () ->
            let none = throws<RewardLoadException> (fun () -> load "empty.fsx" "let x = 1\n" |> ignore)
            containsAll none [ "'empty.fsx'"; "defines no reward function"; "let reward (sample: RewardSample)" ]
            let missing = throws<RewardLoadException> (fun () -> RewardSources.Load("absent.fsx", options (folder.Force()) 10.0 1 (Collections.Concurrent.ConcurrentQueue())) |> ignore)
            containsAll missing [ "'absent.fsx'"; "script not found" ]
    ]
