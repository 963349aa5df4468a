/// The memory preflight (issue 28, group 2; src/Popo.Engine/Training/MemoryEstimate.cs): its terms one by one, each
/// against what it counts (the parameters of a real model, a real LoRA set, a real KV cache) or against its stated
/// closed form; and the whole estimate against the measured peak RSS of a child `popo` on bf16, LoRA and
/// checkpointed shapes.
module Popo.Tests.Catch.Preflight

open System
open System.Diagnostics
open System.IO
open System.Text.RegularExpressions
open Expecto
open TorchSharp
open Popo.Engine.Lora
open Popo.Engine.Model
open Popo.Engine.Training
open Popo.Tests.Engine.LoraFixtures
open Popo.Tests.Cli.TrainCli

/// Three layers, grouped-query attention, untied head: every shape differs.
let private shape () =
    ModelConfig(VocabSize = 1000, HiddenSize = 64, IntermediateSize = 96, NumHiddenLayers = 3,
                NumAttentionHeads = 4, NumKeyValueHeads = 2, MaxPositionEmbeddings = 256, TieWordEmbeddings = false)

type private Knobs =
    { WeightBytes: int; Bf16: bool; Checkpointing: bool; Chunk: int; Rollout: int; Prompt: int; NewTokens: int; Micro: int
      Entropy: bool; Scaled: bool; Frozen: bool; Lora: int64 }

let private knobs =
    { WeightBytes = 4; Bf16 = false; Checkpointing = false; Chunk = 0; Rollout = 4; Prompt = 8; NewTokens = 32; Micro = 4
      Entropy = false; Scaled = false; Frozen = false; Lora = 0L }

let private estimate (k: Knobs) =
    MemoryEstimate.Of(
        MemoryInputs(Model = shape (), WeightBytes = k.WeightBytes, Bf16Compute = k.Bf16, GradientCheckpointing = k.Checkpointing,
                     LogitChunkSize = k.Chunk, RolloutRows = k.Rollout, PromptTokens = k.Prompt, MaxNewTokens = k.NewTokens,
                     MicroBatchRows = k.Micro, Entropy = k.Entropy, ScaledLogits = k.Scaled, FrozenCopy = k.Frozen, LoraParameters = k.Lora))

/// The bytes of the breakdown item whose name starts with <paramref name="prefix"/> (0 when absent: items of 0 bytes are left out).
let private item (prefix: string) (e: MemoryEstimate) =
    e.Breakdown |> Seq.tryPick (fun struct (name, bytes) -> if name.StartsWith(prefix, StringComparison.Ordinal) then Some bytes else None) |> Option.defaultValue 0L

let private numel (ps: seq<#torch.Tensor>) = ps |> Seq.sumBy (fun p -> p.numel())

/// A model of the shape and what its parameters count.
let private realParameters (config: ModelConfig) =
    use model = new Qwen2ForCausalLM(config, torch.CPU, torch.ScalarType.Float32)
    numel (model.parameters())

// Two lists, so that a mutant of a term is checked in seconds (catch/preflight-terms) and the child runs that
// measure peaks (catch/preflight-peaks, minutes) run only when asked for or in the whole suite.
[<Tests>]
let terms =
    testList "catch/preflight-terms" [
        test "the parameter count is a real model's, tied and untied, and the weights term is it times the bytes per weight" {
            let untied = shape ()
            let tied = ModelConfig(VocabSize = 1000, HiddenSize = 64, IntermediateSize = 96, NumHiddenLayers = 3, NumAttentionHeads = 4,
                                   NumKeyValueHeads = 2, MaxPositionEmbeddings = 256, TieWordEmbeddings = true)
            for config in [ untied; tied ] do
                Expect.equal (MemoryEstimate.ParameterCount config) (realParameters config) (sprintf "tied = %b" config.TieWordEmbeddings)
            let p = realParameters untied
            for bytes in [ 2; 4; 8 ] do
                let e = estimate { knobs with WeightBytes = bytes }
                Expect.equal (item "weights" e) (p * int64 bytes) (sprintf "%d-byte weights" bytes)
                Expect.equal (item "gradients" e) (p * int64 bytes) "a gradient per weight"
                Expect.equal (item "AdamW moments" e) (2L * p * int64 bytes) "two moments per weight"
            Expect.equal (item "bf16 compute copy" (estimate { knobs with Bf16 = true })) (2L * p) "bf16: a 2-byte copy of every weight"
            Expect.equal (item "bf16 compute copy" (estimate knobs)) 0L "none without bf16"
            Expect.equal (item "EMA target / reference" (estimate { knobs with Frozen = true; WeightBytes = 2 })) (4L * p) "a float32 frozen copy of a 16-bit model"
        }

        test "under LoRA the trained terms count a real adapter set's parameters in float32, the frozen base its own bytes" {
            use model = new Qwen2ForCausalLM(shape (), torch.CPU, torch.ScalarType.BFloat16)
            let settings = settingsOf 8 16.0 "q_proj,v_proj,down_proj" 0.0 false
            use adapters = LoraAdapters.Attach(model, settings, 1L)
            let trained = numel (adapters.parameters())
            Expect.equal (settings.ParameterCount(shape ())) trained "LoraSettings.ParameterCount is the set's size"
            let p = realParameters (shape ())
            let e = estimate { knobs with WeightBytes = 2; Lora = trained; Frozen = true }
            Expect.equal (item "weights (frozen base)" e) (2L * p) "the base in its own 2 bytes"
            Expect.equal (item "LoRA adapters" e) (4L * trained) "float32 adapters"
            Expect.equal (item "gradients" e) (4L * trained) "gradients of the adapters only"
            Expect.equal (item "AdamW moments" e) (8L * trained) "moments of the adapters only"
            Expect.equal (item "EMA target adapters" e) (4L * trained) "the EMA target is a second adapter set, the base shared"
        }

        test "the rollout's KV cache term is a real KV cache's bytes" {
            let config = shape ()
            let rows, prompt, fresh = 512, 64, 8
            let e = estimate { knobs with Rollout = rows; Prompt = prompt; NewTokens = fresh; Micro = 1 }
            Expect.equal e.Phase "rollout" "this shape peaks in the rollout"
            for dtype, bytes in [ torch.ScalarType.Float32, 4; torch.ScalarType.BFloat16, 2 ] do
                use cache = new KvCache(config, int64 rows, prompt + fresh, torch.CPU, dtype)
                let real = int64 config.NumHiddenLayers * 2L * int64 rows * int64 config.NumKeyValueHeads * int64 (prompt + fresh) * int64 config.HeadDim * int64 bytes
                let estimated = item "KV cache (rollout)" (estimate { knobs with Rollout = rows; Prompt = prompt; NewTokens = fresh; Micro = 1; Bf16 = (bytes = 2) })
                Expect.equal estimated real (sprintf "%A cache: [B, H_kv, capacity, d] keys and values per layer" dtype)
            Expect.equal (item "sampling [rows, V]" e) (8L * int64 rows * int64 config.VocabSize * 4L) "eight float32 [rows, V] tensors"
        }

        test "checkpointing keeps every layer's input and one layer's activations instead of every layer's activations" {
            let config = shape ()
            let b, n = 16, 32
            let t = int64 (8 + n)
            let plain = estimate { knobs with Micro = b; NewTokens = n; Chunk = 64 }
            let checkpointed = estimate { knobs with Micro = b; NewTokens = n; Chunk = 64; Checkpointing = true }
            Expect.equal (plain.Phase, checkpointed.Phase) ("update", "update") "both peak in the update"
            let d, layers, act = int64 config.HiddenSize, int64 config.NumHiddenLayers, 4L
            let inputs = 3L * int64 b * t * d * act   // the embedding output, the final norm and its gradient
            let perLayer = item "activations saved for backward" plain - inputs
            Expect.equal (perLayer % layers) 0L "the uncheckpointed term is a whole number of layers"
            Expect.equal (item "activations (checkpointed per layer)" checkpointed) (layers * int64 b * t * d * act + perLayer / layers + inputs)
                "each layer's input [b, t, d], plus one layer's activations recomputed in the backward"
            Expect.isLessThan checkpointed.TotalBytes plain.TotalBytes "checkpointing lowers the peak"
        }

        test "the head term is (live + backward) [positions, V] tensors, positions capped by the chunk" {
            let v = int64 (shape ()).VocabSize
            let b, n = 8, 32
            for chunk, entropy, scaled in [ 0, false, false; 64, false, false; 64, true, false; 100000, true, true; 64, false, true ] do
                let e = estimate { knobs with Micro = b; NewTokens = n; Chunk = chunk; Entropy = entropy; Scaled = scaled }
                let positions = if chunk > 0 then min (int64 (b * n)) (int64 chunk) else int64 (b * n)
                let live = 2L + (if entropy then 1L else 0L) + (if scaled then 1L else 0L)   // logits, log-softmax, exp, logits / T
                let backward = if entropy then 4L else 2L
                Expect.equal (item "head:" e) ((live + backward) * positions * v * 4L) (sprintf "chunk %d, entropy %b, temperature %b" chunk entropy scaled)
            let bf16 = estimate { knobs with Micro = b; NewTokens = n; Bf16 = true }
            Expect.equal (item "head:" bf16) (4L * int64 (b * n) * v * 4L) "log-softmax in float32 under bf16"
        }

        test "a /proc line's value is read with or without the kernel's padding (a peak of 10,000,000 kB or more has none)" {
            for line, kib in [ "VmHWM:\t  734512 kB", 734512L; "VmHWM:\t11433516 kB", 11433516L; "MemAvailable:   23456789 kB", 23456789L
                               "MemAvailable:\t123456789 kB", 123456789L ] do
                Expect.equal (MemoryEstimate.ProcBytes line) (kib * 1024L) line
            Expect.isSome (Option.ofNullable (MemoryEstimate.PeakRss())) "this process's own VmHWM is read on Linux"
        }

        test "the transient part is the peak less the state made once (weights, gradients, AdamW), and the largest phase's own" {
            let p = realParameters (shape ())
            for rollout, micro, checkpointing in [ 4, 4, false; 512, 1, false; 64, 64, true ] do
                let e = estimate { knobs with Rollout = rollout; Micro = micro; Checkpointing = checkpointing }
                let held = item "weights" e + item "gradients" e + item "AdamW moments" e
                Expect.equal held (16L * p) "float32 weights, gradients and two moments"
                Expect.equal e.TransientBytes (e.TotalBytes - held) (sprintf "%d rollout rows, micro-batch %d: the peak phase's own tensors" rollout micro)
                Expect.equal e.TransientBytes (e.Breakdown |> Seq.sumBy (fun struct (_, bytes) -> bytes) |> fun all -> all - held) "the breakdown's other items"
            let small, large = estimate { knobs with Micro = 1 }, estimate { knobs with Micro = 4 }
            Expect.isGreaterThan large.TransientBytes small.TransientBytes "a larger micro-batch: more of the update's own tensors"
            Expect.equal (large.TotalBytes - large.TransientBytes) (small.TotalBytes - small.TransientBytes) "the state made once does not depend on the batch"
        }

    ]

[<Tests>]
let peaks =
    testSequenced <| testList "catch/preflight-peaks" [
        test "the estimate is within 25% of the measured peak RSS on bf16, LoRA and checkpointed shapes" {
            let root = Path.Combine(Path.GetTempPath(), "popo-preflight-" + Guid.NewGuid().ToString("N"))
            Directory.CreateDirectory root |> ignore
            try
                let tokenizer = Popo.Tests.Engine.TokenizerCache.folder "qwen3"
                let model = Path.Combine(root, "model")
                let code, err = popoStderr [ "init"; "--config"; "qwen2.5-0.5b"; "--tokenizer"; tokenizer; "--out"; model; "--dtype"; "float32"
                                             "hidden_size=64"; "num_attention_heads=4"; "num_key_value_heads=2"; "intermediate_size=128"; "num_hidden_layers=2" ]
                Expect.equal code 0 err
                let data = Path.Combine(root, "data.jsonl")
                File.WriteAllLines(data, [ for i in 1 .. 8 -> sprintf """{"question": "What is %d + %d?", "answer": "#### %d"}""" i i (2 * i) ])
                let gib (pattern: string) (text: string) =
                    let m = Regex.Match(text, pattern)
                    if not m.Success then failwithf "no '%s' in:\n%s" pattern text
                    float m.Groups.[1].Value
                for name, flags in [ "bf16", [ "--bf16"; "true" ]
                                     "LoRA", [ "--lora-r"; "8"; "--lora-target-modules"; "all-linear" ]
                                     "checkpointed", [ "--gradient-checkpointing"; "true" ] ] do
                    let out = Path.Combine(root, name)
                    let exe = Path.Combine(AppContext.BaseDirectory, "popo")
                    let args = [ "train"; "--model"; model; "--dataset"; data; "--algo"; "grpo"; "--steps"; "1"; "--threads"; "1"; "--out"; out
                                 "--prompts-per-step"; "2"; "--micro-batch-size"; "16"; "--max-new-tokens"; "48"; "--logit-chunk-size"; "0"; "--eval-problems"; "0" ] @ flags
                    let info = ProcessStartInfo(exe, args, RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false)
                    use proc = Process.Start info
                    let errTask = proc.StandardError.ReadToEndAsync()
                    proc.StandardOutput.ReadToEnd() |> ignore
                    if not (proc.WaitForExit(TimeSpan.FromMinutes 5.0)) then proc.Kill(true); failwith "popo child timed out"
                    let err = Regex.Replace(errTask.Result, @"\s+", " ")
                    Expect.equal proc.ExitCode 0 err
                    let estimated = gib @"memory estimate: peak ([0-9.]+) GiB" err
                    let measured = gib @"peak RSS ([0-9.]+) GiB" err
                    printfn "memory %s: estimate %.2f GiB, measured %.2f GiB" name estimated measured
                    Expect.isLessThan (abs (estimated - measured) / measured) 0.25 $"{name}: estimate {estimated} GiB vs measured {measured} GiB"
            finally Directory.Delete(root, true)
        }
    ]
