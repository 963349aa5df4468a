/// Popo as a package (issue 30): packs the engine and its libraries of this very commit (scripts/pack.sh) into a
/// local feed, builds examples/CSharpCustomTask against those packages and runs it for a few steps, then runs
/// examples/fsharp-custom-task.fsx with dotnet fsi on what that build restored. One pack serves both examples.
/// The packages get a version of their own per run (0.1.0-test.N), so the NuGet cache never serves an older build.
module Popo.Tests.Packaging.Examples

open System
open System.Diagnostics
open System.IO
open Expecto
open Popo.Tests.Reliability.Harness

/// Runs a command in a folder to completion (at most timeoutMs); returns its exit code and its output.
let private run (folder: string) (timeoutMs: int) (file: string) (args: string list) =
    let info = ProcessStartInfo(file, RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false, WorkingDirectory = folder)
    for a in args do info.ArgumentList.Add a
    // The child builds on its own: no build server or node reuse left behind by this test.
    info.Environment["MSBUILDDISABLENODEREUSE"] <- "1"
    info.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] <- "1"
    use p = Process.Start info
    let out = p.StandardOutput.ReadToEndAsync()
    let err = p.StandardError.ReadToEndAsync()
    if not (p.WaitForExit timeoutMs) then
        p.Kill true
        failtestf "%s %s did not finish within %d ms" file (String.Join(" ", args)) timeoutMs
    p.WaitForExit()
    p.ExitCode, out.Result + err.Result

let private tail (s: string) = if s.Length > 4000 then s.Substring(s.Length - 4000) else s

let private copyFolder (source: string) (target: string) =
    for f in Directory.GetFiles(source, "*", SearchOption.AllDirectories) do
        let relative = Path.GetRelativePath(source, f)
        let parts = relative.Split(Path.DirectorySeparatorChar)
        if not (parts |> Array.exists (fun p -> p = "bin" || p = "obj" || p = "packages")) then
            let dest = Path.Combine(target, relative)
            Directory.CreateDirectory(Path.GetDirectoryName dest) |> ignore
            File.Copy(f, dest)

/// Rows of a run's metrics.jsonl.
let private metricsCount (run: string) =
    let file = Path.Combine(run, "metrics.jsonl")
    if File.Exists file then File.ReadAllLines file |> Array.filter (fun l -> l.Trim().Length > 0) |> Array.length else 0

[<Tests>]
let tests =
    testSequenced <| testList "packaging/examples" [
        testCase "the packed packages build and run the C# and F# examples for a few steps" <| fun () ->
            let root = Popo.Tests.Engine.SharedData.repoRoot () |> Option.defaultWith (fun () -> failwith "the test runs inside the repository")
            let version = sprintf "0.1.0-test.%d" (DateTime.UtcNow.Ticks / 10_000_000L)
            let cached () =
                let packages = Environment.GetEnvironmentVariable "NUGET_PACKAGES" |> Option.ofObj
                               |> Option.defaultValue (Path.Combine(Environment.GetFolderPath Environment.SpecialFolder.UserProfile, ".nuget", "packages"))
                [ for id in [ "popo.engine"; "popo.rewards"; "popo.mathverify"; "popo.jinja"; "popo.kernels" ] -> Path.Combine(packages, id, version) ]
            withTemp (fun temp ->
                try
                    let examples = Path.Combine(temp, "examples")
                    copyFolder (Path.Combine(root, "examples")) examples
                    let feed = Path.Combine(examples, "packages")   // the folder examples/NuGet.config names
                    let clock = Stopwatch.StartNew()
                    let code, output = run root 900_000 "bash" [ "scripts/pack.sh"; feed; $"-p:Version={version}" ]
                    Expect.equal code 0 $"scripts/pack.sh: {tail output}"
                    for id in [ "Popo.Engine"; "Popo.Rewards"; "Popo.MathVerify"; "Popo.Jinja"; "Popo.Kernels"; "Popo.Scripting" ] do
                        Expect.isTrue (File.Exists(Path.Combine(feed, $"{id}.{version}.nupkg"))) $"{id} packed"
                    let packed = clock.Elapsed
                    let code, output = run examples 900_000 "dotnet" [ "build"; "-c"; "Release"; "CSharpCustomTask"; $"-p:PopoVersion={version}"; "--nologo" ]
                    Expect.equal code 0 $"dotnet build CSharpCustomTask: {tail output}"
                    let built = clock.Elapsed
                    let dll = Path.Combine(examples, "CSharpCustomTask", "bin", "Release", "net10.0", "CSharpCustomTask.dll")
                    let csOut = Path.Combine(temp, "cs")
                    let code, output = run examples 600_000 "dotnet" [ dll; csOut; "2" ]
                    Expect.equal code 0 $"the C# example: {tail output}"
                    Expect.equal (metricsCount (Path.Combine(csOut, "run"))) 2 "the C# example wrote a metrics row per step"
                    let csRan = clock.Elapsed
                    let fsOut = Path.Combine(temp, "fs")
                    let code, output = run examples 600_000 "dotnet" [ "fsi"; "fsharp-custom-task.fsx"; fsOut; "2" ]
                    Expect.equal code 0 $"the F# script: {tail output}"
                    Expect.equal (metricsCount (Path.Combine(fsOut, "run"))) 2 "the F# script wrote a metrics row per step"
                    printfn "packaging/examples: pack %.0f s, C# build %.0f s, C# run %.0f s, F# script %.0f s"
                        packed.TotalSeconds (built - packed).TotalSeconds (csRan - built).TotalSeconds (clock.Elapsed - csRan).TotalSeconds
                finally
                    for folder in cached () do
                        if Directory.Exists folder then Directory.Delete(folder, true))
    ]
