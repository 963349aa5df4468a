/// `FILE.dll:Namespace.Type` rewards (issue 30): the class loads in its own context (its dependency from its folder,
/// the host's Popo.Rewards even with a copy beside it), scores, and every way it can be wrong is a RewardLoadException
/// naming the file or type and what was expected.
module Popo.Tests.Engine.RewardSourcesAssembly

open System.IO
open Expecto
open Popo.Engine.Rewards
open Popo.Tests.Engine.RewardSourceFixtures

let private load spec =
    let log = System.Collections.Concurrent.ConcurrentQueue<string>()
    RewardSources.Load(spec, options (fixtures ()) 10.0 1 log)

let private loadError spec = throws<RewardLoadException> (fun () -> load spec |> ignore)

[<Tests>]
let tests =
    testList "engine/reward-sources/dll" [
        testCase "a class from its assembly scores each sample, its dependency found in its folder" <| fun () ->
            let f = load "RewardLibrary.dll:Fixture.LengthReward"
            Expect.equal f.Name "length" "the class's name"
            let values = score f [ sample 0 "p" "abc" [ 1 ] true "{}"; sample 0 "p" "abcdef" [ 2 ] true "{}"; sample 1 "q" "x" [] false "{}" ]
            Expect.equal values [ System.Nullable 3.25; System.Nullable 6.25; System.Nullable() ] "length + the helper's 0.25; null when unfinished"

        testCase "an absolute path loads too" <| fun () ->
            let f = load (Path.Combine(fixtures (), "RewardLibrary.dll") + ":Fixture.LengthReward")
            Expect.equal f.Name "length" "loaded"

        testCase "each wrong spec names the file or type and what was expected" <| fun () ->
            let dir = fixtures ()
            containsAll (loadError "Missing.dll:Fixture.LengthReward") [ "Missing.dll"; "assembly not found"; Path.Combine(dir, "Missing.dll") ]
            containsAll (loadError "RewardLibrary.dll:Fixture.Nope") [ "no type 'Fixture.Nope'"; "Fixture.LengthReward"; "expected a public class implementing Popo.Rewards.IRewardFunction" ]
            containsAll (loadError "RewardLibrary.dll:Fixture.NotAReward") [ "Fixture.NotAReward does not implement Popo.Rewards.IRewardFunction" ]
            containsAll (loadError "RewardLibrary.dll:Fixture.NeedsArgument") [ "Fixture.NeedsArgument has no public parameterless constructor" ]
            containsAll (loadError "RewardLibrary.dll:Fixture.ThrowsOnCreate") [ "the constructor of Fixture.ThrowsOnCreate threw"; "the model file is missing" ]
            containsAll (loadError "RewardLibrary.dll") [ "several reward classes"; "Fixture.LengthReward"; "FILE.dll:Namespace.Type" ]
            File.WriteAllText(Path.Combine(dir, "NotAnAssembly.dll"), "plain text")
            containsAll (loadError "NotAnAssembly.dll:X.Y") [ "NotAnAssembly.dll is not a .NET assembly" ]
            containsAll (loadError "rewards.txt") [ "'rewards.txt'"; "expected a built-in name, FILE.dll:Namespace.Type"; "FILE.fsx"; "command:PROGRAM ARGS" ]
    ]
