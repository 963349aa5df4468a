/// Reward functions wired into the engine (issue 30): TRL's weighted combination against a hand computation, POPO's
/// reward threshold, every dataset column (nested JSON) reaching the functions, each fault under fail / zero / skip on
/// the tiny model (fail: the last checkpoint resumes), the per-function metrics, list keys, and the default run unchanged.
module Popo.Tests.Engine.RewardFunctions

open System
open System.IO
open System.Text.Json
open System.Text.Json.Nodes
open System.Threading
open Expecto
open Popo.Rewards
open Popo.Engine.Configuration
open Popo.Engine.Data
open Popo.Engine.Objectives
open Popo.Engine.Rewards
open Popo.Engine.Training

let private tempRoot () =
    let dir = Path.Combine(Path.GetTempPath(), "popo-rewards-" + Guid.NewGuid().ToString("N"))
    Directory.CreateDirectory dir |> ignore
    dir

/// The smallest run that still trains: no warm-up, no held-out evaluation (so a function is called once per step).
let private tinyFlags (out: string) =
    [ "--out"; out; "--hidden-size"; "16"; "--layers"; "1"; "--heads"; "2"; "--kv-heads"; "1"
      "--intermediate-size"; "32"; "--sft-steps"; "0"; "--steps"; "4"; "--prompts-per-step"; "2"; "--group-size"; "4"
      "--max-new-tokens"; "8"; "--eval-problems"; "0"; "--save-every"; "2"; "--predictor-hidden"; "16"; "--threads"; "1"
      "--difficulty"; "tiny" ]

let private configOf (flags: string list) =
    ConfigLoader.Resolve(null, flags |> List.chunkBySize 2 |> List.map (fun p -> struct (p.[0].TrimStart('-').Replace('-', '_'), p.[1])) |> ResizeArray)

type private Quiet() =
    let lines = ResizeArray<string>()
    member _.Lines = lines
    interface ITrainingObserver with
        member _.Phase(_, _, _) = ()
        member _.Log m = lock lines (fun () -> lines.Add m)
        member _.Step(_, _) = ()

let private readRows (path: string) =
    File.ReadAllLines path
    |> Array.filter (fun l -> l.Length > 0)
    |> Array.map (fun l -> JsonSerializer.Deserialize<Collections.Generic.Dictionary<string, Nullable<float>>>(l))

let private funcs (fs: IRewardFunction list) = ResizeArray fs :> Collections.Generic.IReadOnlyList<IRewardFunction>

/// Records every sample it scores; 1 for each.
type private Recorder() =
    inherit RewardFunction()
    member val Seen = Collections.Concurrent.ConcurrentBag<RewardSample>()
    override _.Name = "recorder"
    override this.Score(s) = this.Seen.Add s; Nullable 1.0

/// 0.5 for every sample until call number <c>from</c>, then the fault <c>kind</c> on every call.
type private Faulty(kind: string, from: int, release: ManualResetEventSlim) =
    let mutable calls = 0
    member _.Calls = calls
    interface IRewardFunction with
        member _.Name = "faulty"
        member _.ScoreAsync(samples, _) =
            calls <- calls + 1
            let n = samples.Count
            let values = Array.create n (Nullable 0.5)
            if calls >= from then
                match kind with
                | "throw" -> failwith "boom"
                | "nan" -> values.[0] <- Nullable nan
                | "inf" -> values.[1] <- Nullable infinity
                | "count" -> ()
                | "hang" -> release.Wait()   // synchronous and deaf to the cancellation: must be abandoned
                | _ -> ()
            let result = if calls >= from && kind = "count" then values.[.. n - 2] else values
            System.Threading.Tasks.ValueTask.FromResult<Collections.Generic.IReadOnlyList<Nullable<float>>>(result)

/// Continuous: 1 for a completion that stops at once, down to 1/8 for one cut at 8 tokens.
type private Short() =
    inherit RewardFunction()
    override _.Name = "short"
    override _.Score(s) = Nullable(1.0 - float (s.CompletionIds.Count - 1) / 8.0)

let private nonClock (rows: Collections.Generic.Dictionary<string, Nullable<float>>[]) =
    rows |> Array.map (fun r -> r |> Seq.filter (fun kv -> not (Trainer.WallClockColumns.Contains kv.Key)) |> Seq.map (fun kv -> kv.Key, kv.Value) |> List.ofSeq)

[<Tests>]
let tests =
    testSequenced <| testList "engine/rewards" [
        testCase "the combination is TRL's weighted nansum (hand computation), statistics over the samples a function applies to" <| fun () ->
            let a = [| Nullable 1.0; Nullable(); Nullable 0.5; Nullable() |]
            let b = [| Nullable(); Nullable(); Nullable 2.0; Nullable -1.0 |]
            let total = RewardCombination.Combine(ResizeArray [ a; b ], ResizeArray [ 2.0; -0.5 ], 4)
            Expect.sequenceEqual total [| 2.0; 0.0; 0.0; 0.5 |] "2*1; none applies: 0; 2*0.5 - 0.5*2; -0.5*-1"
            Expect.isTrue (RewardCombination.Unscored(ResizeArray [ a; b ], 1)) "sample 1 is scored by no function"
            Expect.isFalse (RewardCombination.Unscored(ResizeArray [ a; b ], 3)) "sample 3 is"
            let struct (mean, std) = RewardCombination.Statistics(a)
            Expect.floatClose Accuracy.veryHigh mean 0.75 "mean of 1 and 0.5"
            Expect.floatClose Accuracy.veryHigh std (sqrt 0.125) "Bessel std of 1 and 0.5"
            let struct (m0, _) = RewardCombination.Statistics([| Nullable(); Nullable() |])
            Expect.isTrue (Double.IsNaN m0) "a function that applies to nothing has no mean"

        testCase "POPO's positive set is reward > reward_threshold" <| fun () ->
            let options = PopoOptions(Weights = WeightMode.Uniform, RewardThreshold = 0.5)
            let w = PopoWeights.Compute([| 0.0; 0.0; 0.0; 0.0 |], [| 1; 1; 1; 1 |], [| 0.3; 0.7; 1.0; 0.5 |], 4, options)
            Expect.sequenceEqual w [| 0.0; 0.5; 0.5; 0.0 |] "0.7 and 1.0 are above 0.5; 0.5 itself is not"
            let w0 = PopoWeights.Compute([| 0.0; 0.0; 0.0; 0.0 |], [| 1; 1; 1; 1 |], [| 0.3; 0.7; 1.0; 0.0 |], 4, PopoOptions(Weights = WeightMode.Uniform))
            Expect.sequenceEqual w0 [| 1.0 / 3.0; 1.0 / 3.0; 1.0 / 3.0; 0.0 |] "default threshold 0"
            Expect.equal (configOf [ "--reward-threshold"; "0.25" ]).RewardThreshold 0.25 "the key"

        testCase "the built-ins: format, overlong (DAPO's numbers), arithmetic and countdown on their columns" <| fun () ->
            let sample (completion: string) (ids: int) (columns: string) =
                RewardSample(0, "Q", completion, Array.zeroCreate ids, true, JsonNode.Parse(columns).AsObject())
            let score (f: IRewardFunction) s = (f.ScoreAsync(ResizeArray [ s ], CancellationToken.None).AsTask().Result).[0]
            let keys (flags: string list) = configOf ([ "--max-new-tokens"; "8" ] @ flags) :> Popo.Engine.Runtime.IRunKeys
            let set = RewardSet.Create(keys [ "--reward-funcs"; "format,arithmetic,countdown"; "--overlong-buffer"; "2"; "--overlong-penalty"; "0.5" ],
                                       Popo.Engine.Tasks.ArithmeticTask(), null, ".", ignore)
            Expect.sequenceEqual (set.Functions |> Seq.map (fun f -> f.Name)) [ "format"; "arithmetic"; "countdown"; "overlong" ] "overlong_buffer adds overlong"
            let f = set.Functions
            Expect.equal (score f.[0] (sample "<think>a\nb</think>\n<answer>3</answer>" 1 "{}")) (Nullable 1.0) "tags"
            Expect.equal (score f.[0] (sample "<answer>3</answer>" 1 "{}")) (Nullable 0.0) "no think"
            Expect.equal (score f.[1] (sample "#### 12" 1 """{"answer": 12}""")) (Nullable 1.0) "numeric answer column"
            Expect.equal (score f.[1] (sample "#### 13" 1 """{"answer": "12"}""")) (Nullable 0.0) "wrong"
            Expect.equal (score f.[1] (sample "#### 13" 1 "{}")) (Nullable()) "no answer column: not applicable"
            Expect.equal (score f.[2] (sample "#### 3*4-2" 1 """{"numbers": [2, 3, 4], "target": 10}""")) (Nullable 1.0) "countdown"
            Expect.equal (score f.[2] (sample "#### 3*4" 1 """{"numbers": [2, 3, 4], "target": 10}""")) (Nullable 0.0) "misses the target"
            Expect.equal (score f.[2] (sample "#### 3*4" 1 """{"answer": "x"}""")) (Nullable()) "no numbers: not applicable"
            // DAPO: L_max 8, L_cache 2: free up to 6 tokens, then linear to -1 at 8, times the factor
            for len, expected in [ 5, 0.0; 6, 0.0; 7, -0.25; 8, -0.5 ] do
                Expect.equal (score f.[3] (sample "x" len "{}")) (Nullable expected) $"overlong at {len}"
            Expect.throwsT<RewardLoadException> (fun () -> RewardSet.Create(keys [ "--reward-funcs"; "overlong" ], Popo.Engine.Tasks.ArithmeticTask(), null, ".", ignore) |> ignore)
                "overlong without a buffer"

        testCase "list keys: TOML arrays, JSON arrays and comma-separated flags agree; a wrong count of weights is refused before the folder exists" <| fun () ->
            let root = tempRoot ()
            try
                let toml = Path.Combine(root, "c.toml")
                File.WriteAllText(toml, "reward_funcs = [\"accuracy\", \"format\"]\nreward_weights = [1, 0.5]\n")
                let json = Path.Combine(root, "c.json")
                File.WriteAllText(json, """{"reward_funcs": ["accuracy", "format"], "reward_weights": [1, 0.5]}""")
                let flags = configOf [ "--reward-funcs"; "accuracy, format"; "--reward-weights"; "1,0.5" ]
                Expect.equal (ConfigLoader.Resolve(toml, ResizeArray())) flags "TOML = flags"
                Expect.equal (ConfigLoader.Resolve(json, ResizeArray())) flags "JSON = flags"
                Expect.sequenceEqual flags.RewardWeights [ 1.0; 0.5 ] "weights"
                Expect.throwsT<Popo.Engine.Runtime.ConfigException> (fun () -> configOf [ "--reward-weights"; "1,x" ] |> ignore) "a weight that is not a number"
                let out = Path.Combine(root, "run")
                let e = Expect.throwsC (fun () -> Trainer.Start(configOf (tinyFlags out @ [ "--reward-funcs"; "accuracy,format"; "--reward-weights"; "1" ]), Quiet()) |> ignore) id
                Expect.stringContains e.Message "reward_weights" "names the key"
                Expect.isFalse (Directory.Exists out) "refused before the output folder"
                let e = Expect.throwsC (fun () -> Trainer.Start(configOf (tinyFlags out @ [ "--reward-funcs"; "nosuch.dll:My.Reward" ]), Quiet()) |> ignore) id
                Expect.isTrue (e :? RewardLoadException) $"a spec that cannot be loaded stops the preflight ({e.GetType().Name}: {e.Message})"
                Expect.isFalse (Directory.Exists out) "refused before the output folder"
            finally Directory.Delete(root, true)

        testCase "the default run is unchanged: reward_funcs empty and [accuracy] give the same metrics; per-function metrics under TRL's names" <| fun () ->
            let root = tempRoot ()
            try
                let run name extra =
                    let out = Path.Combine(root, name)
                    Trainer.Start(configOf (tinyFlags out @ [ "--eval-problems"; "4"; "--eval-every"; "2"; "--sft-steps"; "2" ] @ extra), Quiet()) |> ignore
                    readRows (Path.Combine(out, "metrics.jsonl"))
                let byDefault = run "default" []
                let accuracy = run "accuracy" [ "--reward-funcs"; "accuracy" ]
                Expect.sequenceEqual (nonClock accuracy) (nonClock byDefault) "same metrics, bit for bit"
                for r in byDefault do
                    Expect.equal r.["rewards/accuracy/mean"] r.["reward_mean"] "the only function's mean is the reward's"
                    Expect.equal r.["reward_errors"] (Nullable 0.0) "no faults"
                Expect.isTrue byDefault.[1].["eval_reward_mean"].HasValue "held-out mean reward at an evaluation"
                Expect.floatClose Accuracy.veryHigh byDefault.[1].["eval_reward_mean"].Value byDefault.[1].["eval_pass1"].Value "with 0/1 accuracy alone the held-out mean reward is pass@1"
                let both = run "both" [ "--reward-funcs"; "accuracy,format"; "--reward-weights"; "1,0.5" ]
                for r in both do
                    Expect.isTrue (r.ContainsKey "rewards/format/mean" && r.ContainsKey "rewards/format/std") "format's columns"
                    Expect.floatClose Accuracy.veryHigh r.["reward_mean"].Value (r.["rewards/accuracy/mean"].Value + 0.5 * r.["rewards/format/mean"].Value) "weighted sum"
                let header = File.ReadAllLines(Path.Combine(root, "both", "metrics.csv")).[0].Split ','
                Expect.equal header (Trainer.ColumnsFor [ "rewards/accuracy/mean"; "rewards/accuracy/std"; "rewards/format/mean"; "rewards/format/std" ]) "csv header"
            finally Directory.Delete(root, true)

        testCase "every column of a row reaches the functions, nested JSON kept; a dataset without answers needs no accuracy" <| fun () ->
            let root = tempRoot ()
            try
                let write name (withAnswer: bool) =
                    let path = Path.Combine(root, name)
                    let line i =
                        let answer = if withAnswer then sprintf "\"answer\": \"%d\", " (i + 1) else ""
                        sprintf """{"id": "p%d", "prompt": "Q: %d+1\nA: ", %s"meta": {"tags": ["t%d", {"deep": [1, 2.5, null]}], "level": %d}}""" i i answer i i
                    File.WriteAllLines(path, [ for i in 0 .. 9 -> line i ])
                    path
                let data = write "with.jsonl" true
                let recorder = Recorder()
                let out = Path.Combine(root, "run")
                Trainer.Start(configOf (tinyFlags out @ [ "--dataset"; data; "--steps"; "1" ]), Quiet(), funcs [ recorder ]) |> ignore
                Expect.equal recorder.Seen.Count 8 "2 prompts x 4 rollouts"
                for s in recorder.Seen do
                    let i = s.Columns.["id"].GetValue<string>().Substring(1) |> int
                    let expected = JsonNode.Parse(sprintf """{"id": "p%d", "prompt": "Q: %d+1\nA: ", "answer": "%d", "meta": {"tags": ["t%d", {"deep": [1, 2.5, null]}], "level": %d}}""" i i (i + 1) i i)
                    Expect.isTrue (JsonNode.DeepEquals(s.Columns, expected)) $"every column as read: {s.Columns.ToJsonString()}"
                    Expect.isGreaterThan s.CompletionIds.Count 0 "the completion's token ids"
                Expect.equal (recorder.Seen |> Seq.map (fun s -> s.Group) |> Seq.distinct |> Seq.length) 2 "two groups"
                let bare = write "bare.jsonl" false
                Trainer.Start(configOf (tinyFlags (Path.Combine(root, "bare")) @ [ "--dataset"; bare; "--steps"; "1" ]), Quiet(), funcs [ Recorder() ]) |> ignore
                let e = Expect.throwsC (fun () -> Trainer.Start(configOf (tinyFlags (Path.Combine(root, "bare2")) @ [ "--dataset"; bare; "--steps"; "1" ]), Quiet()) |> ignore) id
                Expect.isTrue (e :? DatasetFormatException) $"{e.GetType().Name}"
                Expect.stringContains e.Message "bare.jsonl" "names the file"
                Expect.stringContains e.Message "'answer'" "names the field"
                // built-in rows carry their own fields
                let p = Popo.Engine.Tasks.CountdownTask().Get(Split.Train, 3L)
                Expect.stringContains p.Prompt (sprintf "target %d\n" (p.Columns.["target"].GetValue<int64>())) "countdown's target column"
                Expect.equal (Popo.Engine.Tasks.CountdownTask().Get(Split.Train, 3L)) p "equal problems stay equal (columns by content)"
            finally Directory.Delete(root, true)

        testCase "a continuous reward given as an object raises the held-out mean reward (GRPO, from scratch)" <| fun () ->
            let root = tempRoot ()
            try
                let out = Path.Combine(root, "run")
                let summary =
                    Trainer.Start(configOf (tinyFlags out @ [ "--algo"; "grpo"; "--steps"; "30"; "--group-size"; "8"; "--lr"; "2e-2"
                                                              "--eval-problems"; "16"; "--eval-every"; "0"; "--save-every"; "0" ]),
                                  Quiet(), funcs [ Short() ])
                let rows = readRows (Path.Combine(out, "metrics.jsonl"))
                Expect.isTrue (Double.IsFinite summary.Warmup.RewardMean && Double.IsFinite summary.Final.RewardMean) "evaluated by the functions"
                Expect.isGreaterThan summary.Final.RewardMean (summary.Warmup.RewardMean + 0.2) "the held-out mean reward rose"
                Expect.equal rows.[rows.Length - 1].["eval_reward_mean"] (Nullable summary.Final.RewardMean) "the last row carries it"
            finally Directory.Delete(root, true)

        testList "faults" [
            for kind in [ "throw"; "nan"; "count"; "hang" ] do
                yield testCase $"{kind}: reward_errors = fail stops the run naming function and row, and the last checkpoint resumes" <| fun () ->
                    let root = tempRoot ()
                    use release = new ManualResetEventSlim(false)
                    try
                        let out = Path.Combine(root, "run")
                        // Long enough that a healthy call never times out on a loaded 2-core machine (the pool may be slow to
                        // start a thread), short enough that the hang's abandonment costs little.
                        let flags = tinyFlags out @ [ "--reward-timeout"; "5" ]
                        let e = Expect.throwsC (fun () -> Trainer.Start(configOf flags, Quiet(), funcs [ Faulty(kind, 3, release) ]) |> ignore) id
                        Expect.isTrue (e :? RewardFunctionException) $"{e.GetType().Name}: {e.Message}"
                        Expect.stringContains e.Message "'faulty'" "names the function"
                        Expect.stringContains e.Message "problem arithmetic/train/" "names the problem"
                        Expect.stringContains e.Message "rollout " "names the rollout"
                        Expect.isTrue (Popo.Cli.Commands.CommandRunner.Reports e) "the CLI reports it as an error line (exit 1)"
                        let struct (_, last) = TrainingCheckpoint.Latest(out).Value
                        Expect.equal last 2 "the step-2 checkpoint is the last"
                        Trainer.Resume(out, Quiet(), rewardFunctions = funcs [ Faulty("none", 1, release) ]) |> ignore
                        Expect.equal (readRows (Path.Combine(out, "metrics.jsonl"))).Length 4 "resumed to the end"
                    finally
                        release.Set()
                        Directory.Delete(root, true)
            yield testCase "zero and skip count the faults and go on" <| fun () ->
                let root = tempRoot ()
                use release = new ManualResetEventSlim(false)
                try
                    let run mode kind =
                        let out = Path.Combine(root, mode + kind)
                        let log = Quiet()
                        Trainer.Start(configOf (tinyFlags out @ [ "--reward-errors"; mode; "--steps"; "2" ]), log, funcs [ Faulty(kind, 1, release) ]) |> ignore
                        readRows (Path.Combine(out, "metrics.jsonl")), log.Lines
                    let rows, lines = run "zero" "nan"
                    for r in rows do
                        Expect.equal r.["reward_errors"] (Nullable 1.0) "one NaN per step"
                        Expect.equal r.["rewards/faulty/mean"] (Nullable (3.5 / 8.0)) "the NaN counts as 0"
                    Expect.exists lines (fun l -> l.Contains "'faulty'" && l.Contains "NaN" && l.Contains "rollout 0") "logged with function, row and value"
                    let rows, _ = run "skip" "inf"
                    for r in rows do
                        Expect.equal r.["reward_errors"] (Nullable 1.0) "one infinity per step"
                        Expect.equal r.["rewards/faulty/mean"] (Nullable 0.5) "the infinity is not applicable"
                    let rows, lines = run "skip" "count"
                    for r in rows do
                        Expect.equal r.["reward_errors"] (Nullable 8.0) "every value of the call"
                        Expect.isFalse r.["rewards/faulty/mean"].HasValue "applies to none"
                        Expect.equal r.["reward_mean"] (Nullable 0.0) "no function applies: 0"
                    Expect.exists lines (fun l -> l.Contains "no reward function applies") "the unscored rows are logged"
                finally
                    release.Set()
                    Directory.Delete(root, true)
        ]
    ]
