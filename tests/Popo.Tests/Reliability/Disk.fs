/// A checkpoint write that fails (issue 10): the disk fills up (a real tmpfs of limited size) or the
/// checkpoints folder is unwritable (a read-only bind mount when running as root, where permissions do not
/// bind; chmod otherwise). Each gives a clear error naming the folder, exit code 1, no partial checkpoint,
/// the previous checkpoint byte-identical and loadable; once the fault is gone, --resume finishes with the
/// uninterrupted run's results.
module Popo.Tests.Reliability.Disk

open System
open System.Diagnostics
open System.IO
open Expecto
open Popo.Engine.Training
open Popo.Tests.Reliability.Harness
open Popo.Tests.Reliability.Kill

/// The kill tests' run, shortened: 6 RL steps after a 20-step warm-up, a checkpoint after each step.
let private flags (out: string) =
    killRun out [ "--sft-steps", "20"; "--steps", "6" ] |> List.chunkBySize 2

let private config (out: string) = flagConfig (flags out)

/// A run stopped after its step-2 checkpoint (with step 3's metrics row logged past it).
let private stoppedAfterStep2 (out: string) =
    Expect.throws (fun () -> Trainer.Start(config out, Recorder(crashAt = 3)) |> ignore) "crash at step 3"
    Expect.isTrue (Directory.Exists(TrainingCheckpoint.FolderFor(out, 2))) "step-2 checkpoint written"

/// Every file of a folder with its bytes, by relative path.
let private snapshot (folder: string) =
    Directory.GetFiles(folder, "*", SearchOption.AllDirectories)
    |> Array.sort
    |> Array.map (fun f -> Path.GetRelativePath(folder, f), File.ReadAllBytes f)

/// Runs `sh -c script _ args...` inside a new mount namespace (needs root or CAP_SYS_ADMIN); exit code and stderr.
let private inMountNamespace (script: string) (args: string list) =
    let info = ProcessStartInfo("unshare", RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false)
    for a in [ "--mount"; "sh"; "-c"; script; "sh" ] @ args do info.ArgumentList.Add a
    use p = Process.Start info
    let stderr = p.StandardError.ReadToEndAsync()
    p.StandardOutput.ReadToEndAsync() |> ignore
    if not (p.WaitForExit 120_000) then p.Kill true; failtest "timed out"
    p.WaitForExit()
    p.ExitCode, stderr.Result

let private mountNamespaces =
    lazy (try fst (inMountNamespace "mount -t tmpfs -o size=64k tmpfs /mnt" []) = 0 with _ -> false)


/// What must hold after a failed checkpoint write at step 3.
let private checkFailure (code: int) (stderr: string) (run: string) (before: (string * byte[])[]) (cause: string) =
    Expect.equal code 1 $"exit code 1 (stderr: {stderr})"
    Expect.stringContains stderr "step-3: cannot write the checkpoint" "the error names the checkpoint folder"
    Expect.stringContains stderr cause "the error gives the cause"
    Expect.stringContains stderr "step-2 is intact" "the error names the intact previous checkpoint"
    Expect.isFalse (Directory.Exists(TrainingCheckpoint.FolderFor(run, 3))) "no step-3 folder"
    Expect.isEmpty (Directory.GetDirectories(Path.Combine(run, "checkpoints"), AtomicFolder.TempPrefix + "*")) "no partial checkpoint left"
    Expect.isTrue (snapshot (TrainingCheckpoint.FolderFor(run, 2)) = before) "step-2 is byte-identical"
    let progress = loadTrainingCheckpoint run (TrainingCheckpoint.FolderFor(run, 2))
    Expect.equal progress.Step 2 "step-2 loads"

/// With the fault gone, the run resumes and ends as an uninterrupted run (made in root) does.
let private checkRecovery (root: string) (run: string) =
    let code, stderr = runPopo 120_000 [ "train"; "--resume"; run ]
    Expect.equal code 0 $"resume after the fault: {stderr}"
    let reference = Path.Combine(root, "reference")
    Trainer.Start(config reference, Recorder()) |> ignore
    checkSameResults 6 run reference

[<Tests>]
let tests =
    testSequenced <| testList "reliability/disk" [
        testCase "a full disk during a checkpoint: a clear error, exit 1, the previous checkpoint intact, and resume later equals the uninterrupted run" <| fun () ->
            if not mountNamespaces.Value then skiptest "needs `unshare --mount` and tmpfs mounts (root or CAP_SYS_ADMIN)"
            withTemp (fun root ->
                let source = Path.Combine(root, "source")
                stoppedAfterStep2 source
                let before = snapshot (TrainingCheckpoint.FolderFor(source, 2))
                // Room for the run as it is, for atomic rewrites of its logs on resume, and 32 KiB more:
                // less than one checkpoint (over 100 KiB), so step 3's checkpoint is what fills the disk.
                let pages (f: string) = (FileInfo(f).Length + 4095L) / 4096L * 4L
                let used = Directory.GetFiles(source, "*", SearchOption.AllDirectories) |> Array.sumBy pages
                let logs = Directory.GetFiles(source, "*.*") |> Array.sumBy pages
                let mnt = Path.Combine(root, "mnt")
                Directory.CreateDirectory mnt |> ignore
                let copied = Path.Combine(root, "after")
                let script =
                    "mount -t tmpfs -o size=\"$2\"k tmpfs \"$1\" || exit 90; cp -a \"$3\" \"$1/run\" || exit 91; " +
                    "dotnet \"$5\" train --resume \"$1/run\"; rc=$?; cp -a \"$1/run\" \"$4\" || exit 92; exit $rc"
                let code, stderr = inMountNamespace script [ mnt; string (used + logs + 32L); source; copied; popoDll ]
                checkFailure code stderr copied before "No space left on device"
                checkRecovery root copied)

        testCase "an unwritable checkpoints folder: a clear error, exit 1, the previous checkpoint intact, and resume later equals the uninterrupted run" <| fun () ->
            withTemp (fun root ->
                let run = Path.Combine(root, "run")
                stoppedAfterStep2 run
                let checkpoints = Path.Combine(run, "checkpoints")
                let before = snapshot (TrainingCheckpoint.FolderFor(run, 2))
                let code, stderr, cause =
                    if Environment.UserName = "root" then
                        if not mountNamespaces.Value then skiptest "as root, needs `unshare --mount` for a read-only bind mount"
                        let script = "mount --bind \"$1\" \"$1\" && mount -o remount,bind,ro \"$1\" || exit 90; exec dotnet \"$2\" train --resume \"$3\""
                        let code, stderr = inMountNamespace script [ checkpoints; popoDll; run ]
                        code, stderr, "Read-only file system"
                    else
                        File.SetUnixFileMode(checkpoints, enum 0o555)
                        let code, stderr = try runPopo 120_000 [ "train"; "--resume"; run ] finally File.SetUnixFileMode(checkpoints, enum 0o755)
                        code, stderr, "denied"
                checkFailure code stderr run before cause
                checkRecovery root run)
    ]
