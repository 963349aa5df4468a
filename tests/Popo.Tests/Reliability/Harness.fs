/// Shared pieces of the reliability tests: temp folders, the real `popo` executable as a child process,
/// a fully loaded training checkpoint, and run outputs with the wall-clock columns stripped.
module Popo.Tests.Reliability.Harness

open System
open System.Diagnostics
open System.IO
open System.Text.Json
open Expecto
open TorchSharp
open Popo.Engine.Checkpoints
open Popo.Engine.Configuration
open Popo.Engine.Objectives
open Popo.Engine.Policy
open Popo.Engine.Training

let tempRoot () =
    let dir = Path.Combine(Path.GetTempPath(), "popo-rel-" + Guid.NewGuid().ToString("N"))
    Directory.CreateDirectory dir |> ignore
    dir

let withTemp (f: string -> unit) =
    let root = tempRoot ()
    try f root
    finally
        // a test may have made parts of it read-only
        for d in Directory.GetDirectories(root, "*", SearchOption.AllDirectories) do File.SetUnixFileMode(d, enum 0o755)
        Directory.Delete(root, true)

/// The `popo` executable built beside this test assembly (the test project references Popo.Cli).
let popoDll = Path.Combine(AppContext.BaseDirectory, "popo.dll")

/// Starts `dotnet popo.dll args` with stdout and stderr drained in the background; Kill() is a SIGKILL.
let startPopoWith (environment: (string * string) list) (args: string list) =
    let info = ProcessStartInfo("dotnet", RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false)
    for name, value in environment do info.Environment[name] <- value
    info.ArgumentList.Add popoDll
    for a in args do info.ArgumentList.Add a
    let p = Process.Start info
    let stderr = p.StandardError.ReadToEndAsync()
    p.StandardOutput.ReadToEndAsync() |> ignore
    p, stderr

let startPopo (args: string list) = startPopoWith [] args

/// Runs popo with these environment variables to completion (at most timeoutMs); returns its exit code and stderr.
let runPopoWith (environment: (string * string) list) (timeoutMs: int) (args: string list) =
    let p, stderr = startPopoWith environment args
    use _ = p
    if not (p.WaitForExit timeoutMs) then
        p.Kill true
        failtestf "popo %s did not finish within %d ms" (String.Join(" ", args)) timeoutMs
    p.WaitForExit()
    p.ExitCode, stderr.Result

/// Runs popo to completion (at most timeoutMs); returns its exit code and stderr.
let runPopo (timeoutMs: int) (args: string list) = runPopoWith [] timeoutMs args

/// The meta field `key` of `popo bench --quick --only peak` run with these environment variables
/// (how the process set itself up: MKL's kernels, huge pages).
let benchMeta (environment: (string * string) list) (key: string) =
    let mutable value = ""
    withTemp (fun root ->
        let out = Path.Combine(root, "bench.json")
        let code, stderr = runPopoWith environment 120_000 [ "bench"; "--quick"; "--only"; "peak"; "--threads"; "1"; "--out"; out ]
        Expect.equal code 0 $"popo bench: {stderr}"
        use json = JsonDocument.Parse(File.ReadAllText out)
        value <- json.RootElement.GetProperty("meta").GetProperty(key).GetString())
    value

/// Metrics that measure the clock, not the computation (declared with the columns).
let timing = set Trainer.WallClockColumns

/// metrics.jsonl rows without the timing columns, each as (column, value) pairs in file order.
let metricsRows (run: string) =
    File.ReadAllLines(Path.Combine(run, "metrics.jsonl"))
    |> Array.filter (fun l -> l.Length > 0)
    |> Array.map (fun l ->
        JsonSerializer.Deserialize<Collections.Generic.Dictionary<string, Nullable<float>>>(l)
        |> Seq.filter (fun kv -> not (timing.Contains kv.Key))
        |> Seq.map (fun kv -> kv.Key, kv.Value)
        |> List.ofSeq)

/// metrics.csv without the timing columns: header and rows as cell lists.
let csvRows (run: string) =
    let lines = File.ReadAllLines(Path.Combine(run, "metrics.csv"))
    let header = lines.[0].Split ','
    let keep = [ for i in 0 .. header.Length - 1 do if not (timing.Contains header.[i]) then yield i ]
    lines |> Array.map (fun l -> let cells = l.Split ',' in keep |> List.map (fun i -> cells.[i]))

/// Every tensor of a safetensors file as raw bytes, by name: equality is bitwise.
let tensorBytes (file: string) =
    let st = SafeTensorsFile.Open file
    st.Tensors.Keys
    |> Seq.sort
    |> Seq.map (fun k ->
        use t = st.Read k
        let bytes = Array.zeroCreate<byte> (int (t.numel() * t.element_size()))
        use stream = new MemoryStream(bytes)
        t.WriteBytesToStream(stream)
        k, bytes)
    |> List.ofSeq

/// Loads everything a resume would from a training checkpoint (weights, tokenizer, optimizer, objective
/// state, sampler RNG, counters); throws if any piece is missing or malformed. Returns the counters.
let loadTrainingCheckpoint (run: string) (folder: string) =
    let config = RunFolder.ReadConfig run
    let struct (model, _) = ModelFactory.Create(config, torch.CPU)
    use _ = model
    let policy = Qwen2Policy(model)
    use objective =
        ObjectiveRegistry.Create(config.Algo, ObjectiveContext(policy, Func<IPolicy>(fun () -> policy.FrozenClone() :> IPolicy),
                                                               model.Config.HiddenSize, config, torch.CPU, model.Dtype))
    let parameters = Seq.append policy.Parameters objective.ExtraParameters |> Array.ofSeq
    use optimizer = torch.optim.AdamW(parameters, lr = config.Lr)
    use generator = new torch.Generator(1UL, torch.CPU)
    let struct (saved, _) = ModelFactory.Load(Path.Combine(folder, "model"), torch.CPU, Nullable())
    saved.Dispose()
    TrainingCheckpoint.Load(folder, RunState(model, optimizer, objective, generator))

/// The flags of the reliability tests' small built-in run (hidden 48, 2 layers, a 10-step warm-up, tiny problems, a
/// checkpoint after every step, one thread), with `overrides` in place of or beside the defaults (a later
/// value of a flag wins): each test states only where its run differs.
let smallRun (out: string) (overrides: (string * string) list) =
    let defaults =
        [ "--hidden-size", "48"; "--layers", "2"; "--heads", "2"; "--kv-heads", "1"; "--intermediate-size", "96"
          "--sft-steps", "10"; "--sft-batch-size", "16"; "--sft-lr", "0.01"; "--steps", "2"; "--prompts-per-step", "2"
          "--group-size", "4"; "--max-new-tokens", "10"; "--eval-problems", "2"; "--save-every", "1"
          "--predictor-hidden", "16"; "--threads", "1"; "--difficulty", "tiny"; "--seed", "7" ]
    let merged =
        (defaults @ overrides)
        |> List.fold (fun (acc: (string * string) list) (k, v) ->
            if acc |> List.exists (fun (k', _) -> k' = k) then acc |> List.map (fun (k', v') -> k', (if k' = k then v else v')) else acc @ [ k, v ]) []
    [ "--out"; out ] @ [ for k, v in merged do yield! [ k; v ] ]

/// Flags as `--key value` pairs resolved to a configuration, as the CLI does.
let flagConfig (flags: string list list) =
    ConfigLoader.Resolve(null, flags |> List.map (fun p -> struct (p.[0].TrimStart('-').Replace('-', '_'), p.[1])) |> ResizeArray)

/// Records the trainer's log lines; with crashAt, stops the run (as a crash would) when that RL step is
/// logged, after the checkpoint of the step before.
type Recorder(?crashAt: int) =
    let mutable phase = ""
    member val Lines = ResizeArray<string>()
    interface ITrainingObserver with
        member _.Phase(name, _, _) = phase <- name
        member this.Log line = this.Lines.Add line
        member _.Step(s, _) = if phase = "rl" && Some s = crashAt then failwith "simulated crash"

/// Every file of a checkpoint folder by relative path with its bytes; trainer_state.json holds the wall time, so
/// its counters are compared instead.
let checkpointFiles (folder: string) =
    Directory.GetFiles(folder, "*", SearchOption.AllDirectories)
    |> Array.sort
    |> Array.map (fun f ->
        let name = Path.GetRelativePath(folder, f)
        if name = "trainer_state.json" then
            let o = Text.Json.Nodes.JsonNode.Parse(File.ReadAllText f).AsObject()
            o.Remove "WallTime" |> ignore
            name, Text.Encoding.UTF8.GetBytes(o.ToJsonString())
        else name, File.ReadAllBytes f)

/// Two runs wrote the same outputs: every checkpoint file of steps 1 .. steps byte for byte (checkpointFiles),
/// metrics.jsonl and metrics.csv in every column but the wall-clock ones, and samples.jsonl.
let expectSameRuns (steps: int) (a: string) (b: string) =
    for step in 1 .. steps do
        Expect.sequenceEqual (checkpointFiles (TrainingCheckpoint.FolderFor(a, step))) (checkpointFiles (TrainingCheckpoint.FolderFor(b, step)))
            $"step-{step}: model, optimizer, objective and RNG files, byte for byte"
    Expect.sequenceEqual (metricsRows a) (metricsRows b) "metrics.jsonl, every column but the wall-clock ones"
    Expect.sequenceEqual (csvRows a) (csvRows b) "metrics.csv, likewise"
    Expect.sequenceEqual (File.ReadAllLines(Path.Combine(a, "samples.jsonl"))) (File.ReadAllLines(Path.Combine(b, "samples.jsonl"))) "samples.jsonl"
