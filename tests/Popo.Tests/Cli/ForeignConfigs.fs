/// Configs that run as written: TRL 0.27 and 0.28 GRPOConfig YAML files, YAML and layered --config files, the POPO
/// authors' four files (trainer, model, dataset, algorithm), `--preset popo-paper`, `popo eval --protocol aime`, and the
/// refusals (a hub name needs the network; a key of a feature this build lacks is "not supported yet").
module Popo.Tests.Cli.ForeignConfigs

open System
open System.Diagnostics
open System.IO
open System.Text.Json
open Expecto
open Popo.Engine.Configuration
open Popo.Engine.Runtime
open Popo.Engine.Training
open Popo.Tests.Cli.TrainCli

let private repoRoot =
    let rec up (d: DirectoryInfo) =
        if isNull d then failwith "Popo.sln not found above the test binary"
        elif File.Exists(Path.Combine(d.FullName, "Popo.sln")) then d.FullName
        else up d.Parent
    up (DirectoryInfo AppContext.BaseDirectory)

let private fixture name = Popo.Tests.Engine.SharedData.fixture name
let private trl027 () = fixture "configs/trl-0.27-grpo.yaml"
let private trl028 () = fixture "configs/trl-0.28-grpo.yaml"
let private authors name = Path.Combine(repoRoot, "configs", "popo-authors", name)

let private tempRoot () =
    let dir = Path.Combine(Path.GetTempPath(), "popo-foreign-" + Guid.NewGuid().ToString("N"))
    Directory.CreateDirectory dir |> ignore
    dir

/// A tiny Hugging Face model folder with the real Qwen vocabulary, from `popo init`.
let private tinyModel (dir: string) =
    let code, err = popoStderr [ "init"; "--config"; "qwen2.5-0.5b"; "--tokenizer"; Popo.Tests.Engine.TokenizerCache.qwen3 (); "--out"; dir; "--dtype"; "float32"
                                 "hidden_size=32"; "num_attention_heads=2"; "num_key_value_heads=1"; "intermediate_size=64"; "num_hidden_layers=1" ]
    Expect.equal code 0 $"popo init: {err}"
    dir

/// Flags that keep a run small whatever the file says (flags win over files).
let private small = [ "--steps"; "2"; "--prompts-per-step"; "1"; "--group-size"; "4"; "--micro-batch-size"; "4"; "--max-new-tokens"; "8"; "--threads"; "1"; "--dtype"; "float32" ]

let private configJson (out: string) = JsonDocument.Parse(File.ReadAllText(Path.Combine(out, "config.json"))).RootElement

let private metricsRows (out: string) = File.ReadAllLines(Path.Combine(out, "metrics.jsonl")) |> Array.filter (fun l -> l <> "") |> Array.length

let private write (dir: string) (name: string) (text: string) =
    let path = Path.Combine(dir, name)
    File.WriteAllText(path, text)
    path

let private refused (files: string list) (flags: Collections.Generic.IReadOnlyList<struct (string * string)>) =
    try
        ConfigLoader.ResolveLayered(files, flags) |> ignore
        failwith "expected a ConfigException"
    with :? ConfigException as e -> e.Message

let private hasSchemaKey key = ConfigSchema.Entries |> Seq.exists (fun e -> e.Key = key)

[<Tests>]
let tests =
    testSequenced <| testList "cli/foreign-configs" [
        testCase "a TRL 0.27 GRPOConfig YAML loads as written and runs two steps, with the arithmetic and the unmapped keys in the log" <| fun () ->
            let root = tempRoot ()
            try
                let model = tinyModel (Path.Combine(root, "model"))
                let data = fixture "gsm8k_small.jsonl"
                // As written (the hub names replaced by the local flags they name): every key resolved.
                let c = ConfigLoader.ResolveLayered([ trl027 () ], [ ("model", model); ("dataset", data) ])
                Expect.equal (c.Algo, c.GroupSize, c.PromptsPerStep, c.MicroBatchSize) ("grpo", 8, 4, 8) "algo and TRL's batch: 8 x 4 x 1 = 32 = 4 prompts x G 8"
                Expect.equal (c.MaxNewTokens, c.MaxPromptLength, c.OverlongPrompts) (1024, 512, "truncate") "lengths; TRL 0.27 truncates long prompts"
                Expect.equal (c.Lr, c.LrSchedule, c.WarmupRatio, c.WeightDecay, c.GradClip) (1e-6, "cosine", 0.1, 0.0, 1.0) "optimizer"
                Expect.equal (c.LossType, c.ScaleRewards, c.Beta, c.EpsLow, c.EpsHigh) ("bnpo", "group", 0.04, 0.2, 0.2) "objective (scale_rewards true = group)"
                Expect.equal (c.Temperature, c.TopP, c.TopK, c.NumIterations) (0.9, 1.0, 0, 1) "sampling"
                Expect.equal (c.Steps, c.SaveEvery, c.SaveTotalLimit, c.Seed) (500, 100, 2, 42) "max_steps, save_steps, save_total_limit, seed"
                Expect.equal (c.Dtype, c.Bf16, c.GradientCheckpointing) ("bfloat16", false, true) "torch_dtype bfloat16 + bf16 = dtype bfloat16"
                Expect.equal c.Out "runs/qwen2.5-0.5b-grpo-gsm8k" "output_dir"
                let out = Path.Combine(root, "run")
                let code, err = popoStderr ([ "train"; "--config"; trl027 (); "--model"; model; "--dataset"; data; "--out"; out ] @ small)
                Expect.equal code 0 $"exit code: {err}"
                Expect.stringContains err "per_device_train_batch_size 8 x gradient_accumulation_steps 4 x 1 process = 32 completions per optimizer step = 4 prompts x G 8" "batch arithmetic"
                Expect.stringContains err "not mapped, ignored" "the unmapped keys are listed"
                for key in [ "report_to"; "logging_steps"; "push_to_hub"; "attn_implementation"; "log_completions"; "vllm_mode"; "vllm_gpu_memory_utilization"; "gradient_checkpointing_kwargs"; "num_train_epochs" ] do
                    Expect.stringContains err key $"{key} listed as unmapped"
                Expect.stringContains err "model_name_or_path Qwen/Qwen2.5-0.5B-Instruct: not used, model is given" "the hub name gave way to --model"
                Expect.equal (metricsRows out) 2 "two steps"
                let saved = configJson out
                Expect.equal (saved.GetProperty("loss_type").GetString()) "bnpo" "config.json: the file's loss_type"
                Expect.equal (saved.GetProperty("group_size").GetInt32()) 4 "config.json: the flag won"
            finally Directory.Delete(root, true)

        testCase "a TRL 0.28 GRPOConfig YAML loads as written and runs two steps; generation_batch_size and warmup_steps are converted" <| fun () ->
            let root = tempRoot ()
            try
                let model = tinyModel (Path.Combine(root, "model"))
                let data = fixture "gsm8k_small.jsonl"
                let c = ConfigLoader.ResolveLayered([ trl028 () ], [ ("model", model); ("dataset", data) ])
                Expect.equal (c.GroupSize, c.PromptsPerStep, c.MicroBatchSize) (16, 8, 16) "16 x 8 x 1 = 128 = generation_batch_size = 8 prompts x G 16"
                Expect.equal (c.LossType, c.ScaleRewards, c.EpsLow, c.EpsHigh, c.Beta) ("dapo", "group", 0.2, 0.28, 0.0) "loss_type absent: TRL's default dapo"
                Expect.equal (c.LrSchedule, c.WarmupRatio, c.Steps, c.Lr) ("constant", 0.1, 200, 1e-6) "constant_with_warmup, warmup_steps 20 / max_steps 200"
                Expect.equal (c.EnableThinking, c.EvalProblems, c.MaxPromptLength, c.OverlongPrompts) (false, 0, 512, "error") "chat_template_kwargs; eval_strategy no; no max_prompt_length in 0.28"
                let out = Path.Combine(root, "run")
                let code, err = popoStderr ([ "train"; "--config"; trl028 (); "--model"; model; "--dataset"; data; "--out"; out ] @ small)
                Expect.equal code 0 $"exit code: {err}"
                Expect.stringContains err "per_device_train_batch_size 16 x gradient_accumulation_steps 8 x 1 process = 128 completions per optimizer step = 8 prompts x G 16" "batch arithmetic"
                Expect.stringContains err "loss_type not given -> dapo" "TRL's default said"
                for key in [ "report_to"; "run_name"; "vllm_max_model_length"; "vllm_importance_sampling_correction"; "hub_model_id"; "importance_sampling_level"; "top_entropy_quantile"; "delta" ] do
                    Expect.stringContains err key $"{key} listed"
                Expect.equal (metricsRows out) 2 "two steps"
            finally Directory.Delete(root, true)

        testCase "refusals: a hub name names the local flag; vLLM needs the server engine; a key of the new objectives is not supported yet unless at TRL's default" <| fun () ->
            let message = refused [ trl027 () ] []
            Expect.stringContains message "trl-0.27-grpo.yaml:3: key 'model_name_or_path' = Qwen/Qwen2.5-0.5B-Instruct" "file, line, key, value"
            Expect.stringContains message "needs the network" "why"
            Expect.stringContains message "--model DIR" "the local flag"
            Expect.stringContains message "--dataset FILE" "the dataset's local flag"
            let root = tempRoot ()
            try
                let vllm = write root "vllm.yaml" "num_generations: 4\nuse_vllm: true\nvllm_server_base_url: http://localhost:8000/v1\nvllm_importance_sampling_mode: token_truncate\nvllm_importance_sampling_cap: 2.0\n"
                let c = ConfigLoader.ResolveLayered([ vllm ], [])
                Expect.equal (c.Get<string>("rollout_engine")) "server" "use_vllm: the server engine"
                Expect.equal (c.Get<string>("rollout_urls")) "http://localhost:8000/v1" "the url"
                Expect.equal (c.Get<string>("importance_mode")) "token_truncate" "TRL's correction mode"
                Expect.equal (c.Get<double>("importance_cap")) 2.0 "TRL's cap"
                let colocate = write root "colocate.yaml" "num_generations: 4\nuse_vllm: true\nvllm_mode: colocate\n"
                Expect.stringContains (refused [ colocate ] []) "colocate.yaml:3: key 'vllm_mode' = colocate" "colocated vLLM refused"
                let hub = write root "hub.yaml" "num_generations: 4\npush_to_hub: true\nfp16: true\n"
                let h = refused [ hub ] []
                Expect.stringContains h "hub.yaml:2: key 'push_to_hub' = true is refused" "push_to_hub"
                Expect.stringContains h "hub.yaml:3: key 'fp16'" "fp16"
                let gspo = write root "gspo.yaml" "num_generations: 4\nimportance_sampling_level: sequence\n"
                if hasSchemaKey "importance_sampling_level" then
                    Expect.equal (ConfigLoader.ResolveLayered([ gspo ], []).Get<string>("importance_sampling_level")) "sequence" "mapped once the key exists"
                else Expect.stringContains (refused [ gspo ] []) "gspo.yaml:2: key 'importance_sampling_level' = sequence -> importance_sampling_level: not supported yet" "soft"
                let atDefault = write root "default.yaml" "num_generations: 4\nimportance_sampling_level: token\nmask_truncated_completions: false\n"
                Expect.equal (ConfigLoader.ResolveLayered([ atDefault ], []).GroupSize) 4 "TRL's defaults of the new keys load"
                let spg = write root "spg.yaml" "per_device_train_batch_size: 4\ngradient_accumulation_steps: 2\nsteps_per_generation: 4\nnum_generations: 4\n"
                let s = refused [ spg ] []
                Expect.stringContains s "per_device_train_batch_size 4 x gradient_accumulation_steps 2 x 1 process = 8 completions per optimizer step" "arithmetic"
                Expect.stringContains s "steps_per_generation = gradient_accumulation_steps" "the fix"
                let epochs = write root "epochs.yaml" "num_generations: 4\nnum_train_epochs: 3\n"
                Expect.stringContains (refused [ epochs ] []) "epochs.yaml:2: key 'num_train_epochs' = 3 is refused: Popo counts RL steps" "epochs"
                Expect.equal (ConfigLoader.ResolveLayered([ epochs ], [ ("steps", "5") ]).Steps) 5 "epochs give way to --steps"
                let eps = write root "eps.yaml" "num_generations: 4\nepsilon: 0.3\nmax_steps: 9\nnum_iterations: 2\n"
                let e = ConfigLoader.ResolveLayered([ eps ], [])
                Expect.equal (e.EpsLow, e.EpsHigh, e.Steps) (0.3, 0.3, 5) "epsilon_high defaults to epsilon; 9 optimizer steps / mu 2 -> 5 steps"
            finally Directory.Delete(root, true)

        testCase "layered --config files: later files win, whatever the format and dialect, then flags" <| fun () ->
            let root = tempRoot ()
            try
                let a = write root "a.yaml" "steps: 3\nlr: 0.1\ngroup_size: 4\n"
                let b = write root "b.toml" "steps = 5\n"
                let c = write root "c.json" "{ \"lr\": 0.2 }"
                let trl = write root "trl.yaml" "learning_rate: 1.0e-6\nnum_generations: 2\nper_device_train_batch_size: 2\n"
                let r1 = ConfigLoader.ResolveLayered([ a; b; c ], [])
                Expect.equal (r1.Steps, r1.Lr, r1.GroupSize) (5, 0.2, 4) "a < b < c"
                let r2 = ConfigLoader.ResolveLayered([ c; b; a ], [])
                Expect.equal (r2.Steps, r2.Lr) (3, 0.1) "c < b < a"
                let r3 = ConfigLoader.ResolveLayered([ a; b; c ], [ ("steps", "7") ])
                Expect.equal r3.Steps 7 "flags win"
                let r4 = ConfigLoader.ResolveLayered([ trl; a ], [])
                Expect.equal (r4.Lr, r4.GroupSize) (0.1, 4) "a Popo file after a TRL file wins"
                let r5 = ConfigLoader.ResolveLayered([ a; trl ], [])
                Expect.equal (r5.Lr, r5.GroupSize, r5.PromptsPerStep) (1e-6, 2, 1) "a TRL file after a Popo file wins"
                let code, err = popoStderr [ "train"; "--config"; a; "--config"; Path.Combine(root, "missing.yaml"); "--out"; Path.Combine(root, "run") ]
                Expect.equal code 2 "a missing layer is a usage error"
                Expect.stringContains err "missing.yaml: config file not found" "named"
            finally Directory.Delete(root, true)

        testCase "YAML: PyYAML's scalars, and errors that name the file, the line and the key" <| fun () ->
            let root = tempRoot ()
            try
                let typed = write root "typed.yaml" "# comment\nsteps: 4\nlr: 1e-3\nbf16: yes\nsystem_prompt: \"no\"\nout: runs/x   # trailing comment\n"
                let t = ConfigLoader.ResolveLayered([ typed ], [])
                Expect.equal (t.Steps, t.Lr, t.Bf16, t.SystemPrompt, t.Out) (4, 1e-3, true, "no", "runs/x") "int, 1e-3, yes = true, quoted stays a string"
                let syntax = write root "syntax.yaml" "steps: 4\nlr: 0.1\n  bad: [1, 2\n"
                Expect.stringContains (refused [ syntax ] []) "syntax.yaml:3" "syntax error line"
                let unknown = write root "unknown.yaml" "steps: 4\ngroup_sise: 8\n"
                let u = refused [ unknown ] []
                Expect.stringContains u "unknown.yaml:2: unknown key 'group_sise'" "unknown key line"
                Expect.stringContains u "did you mean 'group_size'" "suggestion"
                let wrong = write root "wrong.yaml" "steps: 4\n\nlr: 0.1\nsteps_x: 1\n"
                Expect.stringContains (refused [ wrong ] []) "wrong.yaml:4" "line counts blank lines"
                let kind = write root "kind.yaml" "lr: 0.1\nsteps: many\n"
                Expect.stringContains (refused [ kind ] []) "kind.yaml:2: key 'steps': expected an integer" "type error line"
                let twice = write root "twice.yaml" "steps: 4\nlr: 0.1\nsteps: 5\n"
                let tw = refused [ twice ] []
                Expect.stringContains tw "twice.yaml:" "duplicate named"
                Expect.stringContains tw "twice" "duplicate said"
                let list = write root "list.yaml" "steps:\n  - 1\n  - 2\n"
                Expect.stringContains (refused [ list ] []) "list.yaml:1: key 'steps': expected a single value" "a list for a Popo key"
                let bad = write root "bad.yml" "- steps\n"
                Expect.stringContains (refused [ bad ] []) "bad.yml:1: expected a YAML mapping" "not a mapping"
            finally Directory.Delete(root, true)

        testCase "the POPO authors' four files load together and run two steps (model and dataset at local paths)" <| fun () ->
            let root = tempRoot ()
            try
                tinyModel (Path.Combine(root, "models", "Qwen2.5-Math-7B")) |> ignore
                Directory.CreateDirectory(Path.Combine(root, "data", "gsm8k")) |> ignore
                File.Copy(fixture "gsm8k_small.jsonl", Path.Combine(root, "data", "gsm8k", "train.jsonl"))
                let files = [ "trainer.yaml"; "model.yaml"; "dataset.yaml"; "algorithm.yaml" ] |> List.map authors
                // Outside the folder they name, the model and dataset are hub-like names: refused with the local flags.
                let m = refused files []
                Expect.stringContains m "model.yaml:3: key 'model_name_or_path' = models/Qwen2.5-Math-7B is refused" "model"
                Expect.stringContains m "--model DIR" "model flag"
                Expect.stringContains m "dataset.yaml:3: key 'dataset_name' = data/gsm8k/train.jsonl is refused" "dataset"
                // Run as written from the folder that holds models/ and data/ (a child process: its own working directory).
                let out = Path.Combine(root, "run")
                let args = (files |> List.collect (fun f -> [ "--config"; f ])) @ [ "--out"; out ] @ small
                let info = ProcessStartInfo(Path.Combine(AppContext.BaseDirectory, "popo"), [ "train" ] @ args, RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false, WorkingDirectory = root)
                use p = Process.Start info
                let err = p.StandardError.ReadToEndAsync()
                p.StandardOutput.ReadToEnd() |> ignore
                if not (p.WaitForExit(TimeSpan.FromMinutes 5.0)) then p.Kill(true); failwith "popo child timed out"
                Expect.equal p.ExitCode 0 $"exit code: {err.Result}"
                let c = configJson out
                let str (k: string) = c.GetProperty(k).GetString()
                let num (k: string) = c.GetProperty(k).GetDouble()
                Expect.equal (str "algo", str "weights", str "prompt_template", str "lr_schedule") ("popo", "softmax", "qwen_math", "cosine") "words"
                Expect.equal (num "beta_ent", num "alpha", num "tau", num "feature_noise", num "lr", num "warmup_ratio") (0.01, 0.1, 0.999, 0.01, 1e-7, 0.1) "numbers"
                Expect.equal (c.GetProperty("predictor_hidden").GetInt32(), c.GetProperty("predictor_depth").GetInt32()) (4096, 1) "predictor: 4096 wide, 2 Linear layers"
                Expect.equal (str "system_prompt") "Please reason step by step, and put your final answer within \\boxed{}." "qwen_math's system prompt"
                Expect.equal (str "model") "models/Qwen2.5-Math-7B" "local model"
                Expect.equal (str "dataset") "data/gsm8k/train.jsonl" "local dataset"
                Expect.equal (metricsRows out) 2 "two steps"
                let prompt = File.ReadAllLines(Path.Combine(out, "samples.jsonl")).[0]
                Expect.isFalse (prompt.Contains "Please reason step by step") "qwen_math: the question alone in the user turn (the instruction is the system prompt)"
            finally Directory.Delete(root, true)

        testCase "--preset popo-paper holds the authors' full-training values; files and flags win over it" <| fun () ->
            let c = ConfigLoader.ResolveLayered([], [], preset = "popo-paper")
            Expect.equal (c.Algo, c.Lr, c.Tau, c.FeatureNoise) ("popo", 1e-7, 0.999, 0.01) "lr, tau, noise"
            Expect.equal (c.PredictorHidden, c.PredictorDepth, c.GroupSize) (4096, 1, 8) "predictor and G"
            Expect.equal (c.MaxPromptLength, c.MaxNewTokens, c.PromptTemplate, c.SystemPrompt) (512, 1024, "qwen_math", RecipePresets.QwenMathSystemPrompt) "lengths and prompt"
            Expect.equal (c.LrSchedule, c.WarmupRatio) ("cosine", 0.1) "schedule"
            Expect.equal (ConfigLoader.ResolveLayered([], [ ("lr", "1e-6") ], preset = "popo-paper").Lr) 1e-6 "a flag wins"
            let root = tempRoot ()
            try
                let f = write root "f.yaml" "tau: 0.99\n"
                Expect.equal (ConfigLoader.ResolveLayered([ f ], [], preset = "popo-paper").Tau) 0.99 "a file wins"
            finally Directory.Delete(root, true)
            Expect.stringContains (try ConfigLoader.ResolveLayered([], [], preset = "nope") |> ignore; "" with :? ConfigException as e -> e.Message) "expected one of popo-paper" "unknown preset"

        testCase "popo eval --protocol aime: the protocol's sampling, avg@n and the unbiased pass@k at powers of two" <| fun () ->
            let root = tempRoot ()
            try
                let model = tinyModel (Path.Combine(root, "model"))
                let out = Path.Combine(root, "eval")
                let code, err = popoStderr [ "eval"; "--protocol"; "aime"; "--samples"; "4"; "--model"; model; "--dataset"; fixture "gsm8k_small.jsonl"
                                             "--max-new-tokens"; "8"; "--out"; out; "--threads"; "1" ]
                Expect.equal code 0 $"exit code: {err}"
                let e = JsonDocument.Parse(File.ReadAllText(Path.Combine(out, "eval.json"))).RootElement
                Expect.equal (e.GetProperty("protocol").GetString()) "aime" "protocol"
                Expect.equal (e.GetProperty("temperature").GetDouble(), e.GetProperty("top_p").GetDouble()) (0.7, 0.95) "the protocol's sampling"
                Expect.equal (e.GetProperty("k").GetInt32(), e.GetProperty("max_new_tokens").GetInt32()) (4, 8) "--samples and the flag win"
                let passAt = e.GetProperty("pass_at")
                Expect.sequenceEqual (passAt.EnumerateObject() |> Seq.map (fun p -> p.Name) |> List.ofSeq) [ "1"; "2"; "4" ] "k = 1, 2, 4"
                Expect.isLessThan (abs (passAt.GetProperty("1").GetDouble() - e.GetProperty("avg_at_k").GetDouble())) 1e-12 "unbiased pass@1 = avg@n"
                let curve = passAt.EnumerateObject() |> Seq.map (fun p -> p.Value.GetDouble()) |> Array.ofSeq
                Expect.isTrue (curve |> Array.pairwise |> Array.forall (fun (x, y) -> x <= y + 1e-12)) "pass@k does not fall with k"
                Expect.stringContains err "aime: avg@4" "printed"
                Expect.equal Popo.Cli.Commands.EvalProtocol.Aime.Samples 128 "128 samples"
                Expect.sequenceEqual (Popo.Cli.Commands.EvalProtocol.Aime.Keys |> Seq.map (fun struct (k, v) -> k, v) |> List.ofSeq) [ ("temperature", "0.7"); ("top_p", "0.95"); ("max_new_tokens", "4096") ] "the protocol's keys"
            finally Directory.Delete(root, true)

        testCase "train --help has the section \"TRL keys\"; lr_schedule linear and constant" <| fun () ->
            let stdout = new StringWriter()
            let saved = Console.Out
            Console.SetOut stdout
            (try popo [ "train"; "--help" ] |> ignore finally Console.SetOut saved)
            let help = stdout.ToString()
            Expect.stringContains help "TRL keys" "section"
            for line in [ "num_generations -> group_size"; "max_completion_length -> max_new_tokens"; "learning_rate -> lr"; "epsilon -> eps_low"; "save_steps -> save_every"; "beta_entropy -> beta_ent"; "push_to_hub -> ignored when false" ] do
                Expect.stringContains help line line
            Expect.equal (LrSchedule.Factor(0, 10, 0.1, "linear"), LrSchedule.Factor(1, 10, 0.1, "linear")) (0.5, 1.0) "linear after one warm-up step"
            Expect.isLessThan (abs (LrSchedule.Factor(5, 10, 0.1, "linear") - 5.0 / 9.0)) 1e-15 "linear: 1 - 4/9"
            Expect.equal (LrSchedule.Factor(0, 10, 0.1, "constant"), LrSchedule.Factor(9, 10, 0.1, "constant")) (0.5, 1.0) "constant after the warm-up"
    ]
