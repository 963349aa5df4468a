/// The programs the reward-source tests load, compiled once per test run from the sources in
/// tests/Popo.Tests/fixtures/rewards with the in-process F# compiler (no SDK build, no network), and samples to score.
module Popo.Tests.Engine.RewardSourceFixtures

open System
open System.IO
open System.Text.Json.Nodes
open Expecto
open Popo.Engine.Rewards
open Popo.Rewards
open Popo.Scripting

/// A folder under the temporary folder, removed when the test process ends.
let tempFolder (prefix: string) =
    let dir = Directory.CreateTempSubdirectory(prefix).FullName
    AppDomain.CurrentDomain.ProcessExit.Add(fun _ -> try Directory.Delete(dir, true) with _ -> ())
    dir

let private compile (sources: string list) (references: string list) (output: string) (executable: bool) =
    let result = FSharpCompiler.Compile(sources, references, output, executable)
    if not result.Succeeded then
        failwithf "fixture %s does not compile:\n%s" output (String.Join("\n", result.Diagnostics))

/// The reward class library (RewardLibrary.dll, with its dependency RewardHelper.dll and a copy of Popo.Rewards beside
/// it, as a build's output folder has) and the command program (CommandFixture.dll with its runtimeconfig and FSharp.Core).
let private built =
    lazy
        (let dir = tempFolder "popo-reward-fixtures-"
         let rewards = typeof<IRewardFunction>.Assembly.Location
         let helper = Path.Combine(dir, "RewardHelper.dll")
         compile [ SharedData.fixture "rewards/RewardHelper.fs" ] [] helper false
         let library = Path.Combine(dir, "RewardLibrary.dll")
         compile [ SharedData.fixture "rewards/RewardLibrary.fs" ] [ rewards; helper ] library false
         File.Copy(rewards, Path.Combine(dir, Path.GetFileName rewards))
         let command = Path.Combine(dir, "CommandFixture.dll")
         compile [ SharedData.fixture "rewards/CommandFixture.fs" ] [] command true
         File.Copy(typeof<option<int>>.Assembly.Location, Path.Combine(dir, "FSharp.Core.dll"))
         let runtime = Environment.Version
         File.WriteAllText(
             Path.Combine(dir, "CommandFixture.runtimeconfig.json"),
             $"""{{"runtimeOptions":{{"tfm":"net{runtime.Major}.{runtime.Minor}","framework":{{"name":"Microsoft.NETCore.App","version":"{runtime.Major}.{runtime.Minor}.0"}}}}}}""")
         dir)

/// The folder holding the compiled fixtures.
let fixtures () = built.Force()

/// A file of the repository (found from the test's folder upwards).
let repoFile (relative: string) =
    let rec up (dir: DirectoryInfo) =
        if isNull dir then failwithf "%s: the tests run from inside the repository" relative
        elif File.Exists(Path.Combine(dir.FullName, "Popo.sln")) then Path.Combine(dir.FullName, relative)
        else up dir.Parent
    up (DirectoryInfo AppContext.BaseDirectory)

/// The dotnet host this process runs on (the command fixture is a framework-dependent program).
let dotnet =
    let root = Path.GetFullPath(Path.Combine(Path.GetDirectoryName(typeof<obj>.Assembly.Location), "..", "..", ".."))
    let host = Path.Combine(root, if OperatingSystem.IsWindows() then "dotnet.exe" else "dotnet")
    if File.Exists host then host else "dotnet"

/// Options for loading from `dir`, with the log collected in `log`.
let options (dir: string) (timeout: float) (workers: int) (log: Collections.Concurrent.ConcurrentQueue<string>) =
    RewardSourceOptions(dir, TimeSpan.FromSeconds timeout, workers, Action<string>(log.Enqueue))

/// A rollout of group `group`.
let sample group (prompt: string) (completion: string) (ids: int list) finished (columns: string) =
    RewardSample(group, prompt, completion, ids, finished, JsonNode.Parse(columns).AsObject())

/// The values of `f` on `samples`.
let score (f: IRewardFunction) (samples: RewardSample list) =
    f.ScoreAsync(samples, Threading.CancellationToken.None).AsTask().GetAwaiter().GetResult() |> List.ofSeq

/// The message of the `'E` that `action` throws (a failure when it throws nothing or something else).
let throws<'E when 'E :> exn> (action: unit -> unit) : string =
    try
        action ()
        failtestf "expected %s, nothing was thrown" typeof<'E>.Name
    with
    | :? 'E as e -> e.Message
    | :? AggregateException as e when (e.InnerException :? 'E) -> e.InnerException.Message

/// Expects `text` to contain every one of `parts`.
let containsAll (text: string) (parts: string list) =
    for p in parts do
        Expect.stringContains text p $"the message names {p}"
