/// Shared pieces of the LoRA tests: a tiny Qwen2 layout, settings, adapters moved off their zero start, and forwards.
module Popo.Tests.Engine.LoraFixtures

open TorchSharp
open Popo.Engine.Lora
open Popo.Engine.Model
open Popo.Tests.Engine.ModelFixtures
open Popo.Tests.Engine.ObjectiveFixtures

/// Two layers, grouped-query attention (2 heads, 1 key/value head), every linear a different shape.
let tinyConfig () =
    ModelConfig(VocabSize = 11, HiddenSize = 16, IntermediateSize = 24, NumHiddenLayers = 2,
                NumAttentionHeads = 2, NumKeyValueHeads = 1, MaxPositionEmbeddings = 64)

let settingsOf (rank: int) (alpha: float) (targets: string) (dropout: float) (rslora: bool) =
    LoraSettings(rank, alpha, dropout, LoraSettings.ParseTargets(targets, "test"), rslora)

let allLinear (rank: int) = settingsOf rank 16.0 "all-linear" 0.0 false

/// B <- 0.3 N(0, 1): the adapters then change the output (a fresh B = 0 leaves the base as it is).
let randomizeB (adapters: LoraAdapters) (seed: int) =
    use noGrad = torch.no_grad ()
    use g = new torch.Generator(uint64 seed, torch.CPU)
    for i in 0 .. adapters.Count - 1 do
        let b = adapters.[i].B
        use noise = torch.randn(b.shape, dtype = b.dtype, generator = g)
        use scaled = noise * 0.3
        b.copy_ scaled |> ignore

/// A fixed batch of three left-aligned rows over the tiny vocabulary.
let ids () = idsTensor [| [| 1; 4; 2; 7; 3 |]; [| 0; 9; 9; 5; 1 |]; [| 10; 2; 6; 8; 4 |] |]

/// Logits of a no-grad forward as float64 values.
let logitsOf (model: Qwen2ForCausalLM) (input: torch.Tensor) =
    use noGrad = torch.no_grad ()
    use out = model.Forward input
    values out.Logits

/// Hidden states of a no-grad forward as float64 values.
let hiddenOf (model: Qwen2ForCausalLM) (input: torch.Tensor) =
    use noGrad = torch.no_grad ()
    use out = model.Forward input
    values out.Hidden

/// The base's parameters, bit for bit, in named order.
let baseSnapshot (model: Qwen2ForCausalLM) =
    model.NamedParameters() |> Seq.map (fun struct (n, p) -> n, values p) |> List.ofSeq
