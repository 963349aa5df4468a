/// Untrusted inputs of issue 35, through the `popo` command: a model folder's chat template that is wrong or
/// hostile, non-finite values in a model or adapter, an adapter that does not fit, invalid UTF-8 in a dataset, a
/// config file that defines a key twice. Each is refused with the file and what is wrong, a non-zero exit, no stack
/// trace, and no output folder.
module Popo.Tests.Reliability.UntrustedInputs

open System
open System.IO
open System.Text
open System.Text.Json.Nodes
open Expecto
open TorchSharp
open Popo.Engine.Checkpoints
open Popo.Engine.Data
open Popo.Engine.Lora
open Popo.Engine.Training
open Popo.Cli.Commands
open Popo.Tests.Cli.TrainCli
open Popo.Tests.Reliability.Harness

let private modelFlags = [ "--hidden-size"; "16"; "--layers"; "1"; "--heads"; "2"; "--kv-heads"; "1"; "--intermediate-size"; "32" ]

/// A built-in model saved as a `--model` folder; `edit` may change its weights first.
let private modelFolderWith (root: string) (edit: Popo.Engine.Model.Qwen2ForCausalLM -> unit) =
    let folder = Path.Combine(root, "model")
    let struct (model, tokenizer) = ModelFactory.Create(flagConfig (List.chunkBySize 2 modelFlags), torch.CPU)
    use _ = model
    edit model
    ModelFactory.Save(model, tokenizer, folder, null)
    folder

let private short = [ "--steps"; "2"; "--sft-steps"; "0"; "--threads"; "1"; "--eval-problems"; "2"; "--max-new-tokens"; "8"; "--difficulty"; "tiny" ]

/// `popo args` in process must exit with `code`, stderr holding every fragment, and --out never created.
let private refusedIn (root: string) (code: int) (fragments: string list) (args: string list) =
    let fresh = Path.Combine(root, "fresh")
    let exit, stderr = popoStderr (args @ [ "--out"; fresh ])
    Expect.equal exit code $"exit code (stderr: {stderr})"
    for f in fragments do Expect.stringContains stderr f "the error names the file and what is wrong"
    Expect.isFalse (Directory.Exists fresh) "no output folder created"

/// An adapter for the model folder (r = 4 on q_proj and v_proj), its tensors from `tensor name shape` (default: small values).
let private adapterFor (root: string) (model: string) (rank: int) (tensor: string -> int64[] -> torch.Tensor) =
    let folder = Path.Combine(root, "adapter")
    Directory.CreateDirectory folder |> ignore
    PeftAdapterConfig.Write(folder, LoraSettings(4, 8.0, 0.0, [ "q_proj"; "v_proj" ], false), model)
    let tensors =
        [ for m, outFeatures in [ "q_proj", 16L; "v_proj", 8L ] do
              let name part = PeftAdapterFolder.TensorName($"model.layers.0.self_attn.{m}", part)
              yield struct (name "lora_A", tensor (name "lora_A") [| int64 rank; 16L |])
              yield struct (name "lora_B", tensor (name "lora_B") [| outFeatures; int64 rank |]) ]
    SafeTensorsFile.Write(Path.Combine(folder, PeftAdapterFolder.WeightsFile), tensors)
    folder

let private filled (shape: int64[]) (value: float32) = torch.full(shape, (value).ToScalar(), dtype = torch.ScalarType.Float32)
let private small (_: string) (shape: int64[]) = filled shape 0.01f

let private adapterCases =
    testList "adapters and weights that cannot be used are refused before the output folder exists" [
        testCase "an adapter whose lora_B is all NaN names file and tensor (train and eval)" <| fun () ->
            withTemp (fun root ->
                let model = modelFolderWith root ignore
                let adapter = adapterFor root model 4 (fun name shape -> if name.Contains "v_proj.lora_B" then filled shape nanf else small name shape)
                let fragments = [ "adapter_model.safetensors"; "v_proj.lora_B.weight"; "non-finite" ]
                refusedIn root 1 fragments ([ "train"; "--adapter"; adapter ] @ short)
                refusedIn root 1 fragments [ "eval"; "--adapter"; adapter; "--eval-problems"; "2"; "--samples"; "1"; "--threads"; "1"; "--difficulty"; "tiny"; "--max-new-tokens"; "4" ])
        testCase "an adapter whose tensors have another rank than its adapter_config.json" <| fun () ->
            withTemp (fun root ->
                let model = modelFolderWith root ignore
                let adapter = adapterFor root model 2 small
                refusedIn root 1 [ "adapter_model.safetensors"; "q_proj.lora_A.weight"; "shape [2, 16]"; "[4, 16]" ] ([ "train"; "--adapter"; adapter ] @ short))
        testCase "a truncated adapter" <| fun () ->
            withTemp (fun root ->
                let model = modelFolderWith root ignore
                let adapter = adapterFor root model 4 small
                let file = Path.Combine(adapter, PeftAdapterFolder.WeightsFile)
                File.WriteAllBytes(file, (File.ReadAllBytes file).[.. 299])
                refusedIn root 1 [ "adapter_model.safetensors"; "truncated" ] ([ "train"; "--adapter"; adapter ] @ short))
        testCase "an adapter tensor of the wrong shape" <| fun () ->
            withTemp (fun root ->
                let model = modelFolderWith root ignore
                let adapter = adapterFor root model 4 (fun name shape -> if name.Contains "v_proj.lora_B" then filled [| 16L; 4L |] 0.01f else small name shape)
                refusedIn root 1 [ "adapter_model.safetensors"; "v_proj.lora_B.weight"; "shape [16, 4]"; "[8, 4]" ] ([ "train"; "--adapter"; adapter ] @ short))
        testCase "a model weight holding an infinity names file and tensor" <| fun () ->
            withTemp (fun root ->
                let model = modelFolderWith root (fun m ->
                    use _ = torch.no_grad()
                    let struct (_, norm) = m.NamedParameters() |> Seq.find (fun struct (n, _) -> n = "model.norm.weight")
                    norm.[3L].fill_((infinity).ToScalar()) |> ignore)
                refusedIn root 1 [ "model.safetensors"; "'model.norm.weight'"; "1 non-finite value"; "flat index 3" ] ([ "train"; "--model"; model ] @ short))
        testCase "a run whose every step is skipped for non-finite logits does not exit 0" <| fun () ->
            withTemp (fun root ->
                // Finite weights whose logits overflow float32: every rollout is non-finite, fewer steps than max_bad_steps.
                let model = modelFolderWith root (fun m ->
                    use _ = torch.no_grad()
                    for struct (name, p) in m.NamedParameters() do if name.EndsWith "norm.weight" then p.fill_((3e38f).ToScalar()) |> ignore)
                let out = Path.Combine(root, "run")
                let code, stderr = popoStderr ([ "train"; "--model"; model; "--out"; out; "--max-bad-steps"; "5" ] @ short)
                Expect.equal code 1 $"exit code (stderr: {stderr})"
                Expect.stringContains stderr "every one of the 2 steps" "says no step updated the policy")
    ]

let private datasetCases =
    testList "invalid UTF-8 in a dataset line" [
        testCase "is refused naming file and line, by train and eval" <| fun () ->
            withTemp (fun root ->
                let data = Path.Combine(root, "data.jsonl")
                let good = Encoding.UTF8.GetBytes "{\"question\": \"1+1?\", \"answer\": \"#### 2\"}\n"
                let bad = Array.concat [ Encoding.UTF8.GetBytes "{\"question\": \"2+2"; [| 0xFFuy; 0xFEuy |]; Encoding.UTF8.GetBytes "?\", \"answer\": \"#### 4\"}\n" ]
                File.WriteAllBytes(data, Array.concat [ good; bad; good ])
                refusedIn root 1 [ "data.jsonl:2"; "not valid UTF-8"; "byte 18" ] ([ "train"; "--dataset"; data; "--train-fraction"; "0.5" ] @ short)
                refusedIn root 1 [ "data.jsonl:2"; "not valid UTF-8" ] [ "eval"; "--model"; modelFolderWith root ignore; "--dataset"; data; "--samples"; "1"; "--threads"; "1"; "--max-new-tokens"; "4" ]
                let skipping = JsonlDataset.Load(data, DatasetOptions(SkipBadLines = true))
                Expect.equal skipping.SkippedCount 1 "counted under skip_bad_lines like any malformed line"
                Expect.equal skipping.Problems.Count 2 "the valid lines are kept"
                Expect.isFalse (skipping.Problems |> Seq.exists (fun p -> p.Prompt.Contains '\uFFFD')) "no replacement character")
        testCase "a U+FFFD written in the file, a BOM and \\r\\n line ends are read as File.ReadLines reads them" <| fun () ->
            withTemp (fun root ->
                let data = Path.Combine(root, "data.jsonl")
                File.WriteAllText(data, "\uFEFF{\"question\": \"a \uFFFD b\", \"answer\": \"#### 2\"}\r\n\r\n{\"question\": \"c\", \"answer\": \"#### 3\"}\r{\"question\": \"d\", \"answer\": \"#### 4\"}")
                let lines = Utf8Lines.Read data |> Seq.map (fun l -> l.Number, l.Text) |> List.ofSeq
                Expect.equal lines (File.ReadLines data |> Seq.mapi (fun i t -> i + 1, t) |> List.ofSeq) "same lines as File.ReadLines"
                Expect.equal (JsonlDataset.Load data).Problems.Count 3 "three problems")
    ]

let private configCases =
    testList "a config file defining a key twice" [
        testCase "TOML: a key twice is refused naming file, key and lines" <| fun () ->
            withTemp (fun root ->
                let file = Path.Combine(root, "run.toml")
                File.WriteAllText(file, "steps = 3\ngroup_size = 4\nsteps = 5\n")
                refusedIn root 2 [ "run.toml:3"; "'steps'"; "twice"; "line 1" ] [ "train"; "--config"; file ])
        testCase "TOML: a dotted key then its table, and a table twice, are refused naming the key" <| fun () ->
            withTemp (fun root ->
                let file = Path.Combine(root, "run.toml")
                File.WriteAllText(file, "a.b = 1\n[a]\nc = 2\n")
                refusedIn root 2 [ "run.toml"; "'a'" ] [ "train"; "--config"; file ]
                File.WriteAllText(file, "steps = 2\n[a]\nx = 1\n[a]\ny = 2\n")
                refusedIn root 2 [ "run.toml"; "'a'" ] [ "train"; "--config"; file ])
        testCase "JSON: a key twice is refused naming file and key" <| fun () ->
            withTemp (fun root ->
                let file = Path.Combine(root, "run.json")
                File.WriteAllText(file, "{\"steps\": 3, \"steps\": 5}")
                refusedIn root 2 [ "run.json:1"; "'steps'"; "defined twice" ] [ "train"; "--config"; file ])
    ]

/// A tiny model folder with the real Qwen tokenizer (and its chat template) from `popo init`.
let private qwenModel (root: string) =
    let dir = Path.Combine(root, "qwen")
    let code, err = popoStderr [ "init"; "--config"; "qwen2.5-0.5b"; "--tokenizer"; Popo.Tests.Engine.TokenizerCache.qwen3 (); "--out"; dir; "--dtype"; "float32"
                                 "hidden_size=16"; "num_attention_heads=2"; "num_key_value_heads=1"; "intermediate_size=32"; "num_hidden_layers=1" ]
    Expect.equal code 0 $"popo init: {err}"
    dir

let private templateCases =
    testCase "a chat template that is wrong or hostile: one error line with file:line:col, exit 1, no stack trace, no folder" <| fun () ->
        withTemp (fun root ->
            let model = qwenModel root
            let configFile = Path.Combine(model, "tokenizer_config.json")
            let original = File.ReadAllText configFile
            for template, detail in [ "{% for m in messages %}{{ m.content }}", "endfor"
                                      "{{ messages|frobnicate }}", "frobnicate"
                                      "{% for i in range(10**9) %}{% endfor %}", "range too big"
                                      "{{ raise_exception('no system role') }}", "no system role"
                                      "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "called more than 200 deep"
                                      "{{ 'x' * 10**10 }}", "string too long" ] do
                let o = JsonNode.Parse(original).AsObject()
                o.["chat_template"] <- JsonValue.Create template
                File.WriteAllText(configFile, o.ToJsonString())
                let fresh = Path.Combine(root, "fresh")
                // A child process: a stack overflow or an unhandled exception must show as what it is.
                let code, stderr = runPopo 120_000 [ "train"; "--model"; model; "--out"; fresh; "--steps"; "1"; "--threads"; "1"; "--eval-problems"; "0"; "--max-new-tokens"; "4" ]
                Expect.equal code 1 $"exit code for {template} (stderr: {stderr})"
                Expect.stringContains stderr $"popo: error: {configFile}:1:" "the template's file, line and column"
                Expect.stringContains stderr detail "what is wrong"
                Expect.isFalse (stderr.Contains "Unhandled exception" || stderr.Contains "   at ") $"no stack trace: {stderr}"
                Expect.isFalse (Directory.Exists fresh) "no output folder created")

let private reportedTypes =
    testCase "every public exception type of the engine, template and verifier libraries is one the CLI reports" <| fun () ->
        let libraries = [ typeof<CheckpointFormatException>.Assembly; typeof<Popo.Jinja.TemplateException>.Assembly; typeof<Popo.MathVerify.RouteShares>.Assembly ]
        let types = [ for a in libraries do for t in a.GetExportedTypes() do if typeof<exn>.IsAssignableFrom t then yield t ]
        Expect.isGreaterThanOrEqual types.Length 9 "the premise: the libraries' exception types are found"
        for t in types do
            Expect.isTrue (t = typeof<Popo.Engine.Runtime.ConfigException> || CommandRunner.Reported |> Seq.exists (fun r -> r.IsAssignableFrom t))
                $"{t.FullName} escapes `popo` as an unhandled exception: add it to CommandRunner.Reported"

[<Tests>]
let tests =
    testSequenced <| testList "reliability/untrusted-inputs" [ reportedTypes; templateCases; adapterCases; datasetCases; configCases ]
