/// Tiny random Qwen2 configurations and weights for the engine tests, and the bridge from engine
/// parameters to the spec's MathNet weights.
module Popo.Tests.Engine.ModelFixtures

open FsCheck
open FsCheck.FSharp
open MathNet.Numerics.LinearAlgebra
open TorchSharp
open Popo.Engine.Model
open Popo.Spec

/// A tiny decoder: vocab 2-64, hidden 4-32 split into heads of even size, kv heads dividing heads, 1-3 layers.
type TinyModel =
    { Config: ModelConfig
      Seed: int }

let private shapes =
    [ for headDim in [ 2; 4; 6; 8 ] do
          for heads in 1..8 do
              let hidden = heads * headDim
              if hidden >= 4 && hidden <= 32 then
                  for kv in 1..heads do
                      if heads % kv = 0 then yield hidden, heads, kv ]

let tinyConfigGen : Gen<ModelConfig> =
    gen {
        let! hidden, heads, kv = Gen.elements shapes
        let! vocab = Gen.choose (2, 64)
        let! layers = Gen.choose (1, 3)
        let! inter = Gen.choose (1, 48)
        let! tied = Gen.elements [ true; false ]
        let! thetaExp = Gen.choose (2, 6)
        let! eps = Gen.elements [ 1e-6; 1e-5 ]
        return
            ModelConfig(
                VocabSize = vocab,
                HiddenSize = hidden,
                IntermediateSize = inter,
                NumHiddenLayers = layers,
                NumAttentionHeads = heads,
                NumKeyValueHeads = kv,
                RopeTheta = 10.0 ** float thetaExp,
                RmsNormEps = eps,
                TieWordEmbeddings = tied,
                MaxPositionEmbeddings = 64
            )
    }

let tinyModelGen : Gen<TinyModel> =
    gen {
        let! config = tinyConfigGen
        let! seed = Gen.choose (0, 1_000_000)
        return { Config = config; Seed = seed }
    }

/// A model with weights of standard deviation `scale` (norm weights 1 + 0.3 N(0,1)), far from the HF
/// initialisation so every path of the network moves the logits.
let scaledRandomModel (scale: float) (config: ModelConfig) (seed: int) (dtype: torch.ScalarType) =
    let model = new Qwen2ForCausalLM(config, torch.CPU, dtype)
    use noGrad = torch.no_grad ()
    use g = new torch.Generator(uint64 seed, torch.CPU)
    for struct (name, p) in model.NamedParameters() do
        use noise = torch.randn(p.shape, dtype = torch.ScalarType.Float64, generator = g)
        use value = if name.EndsWith "norm.weight" then 1.0 + 0.3 * noise else scale * noise
        p.copy_ value |> ignore
    model

/// Weights of std 0.5: large logits, for float64 agreement tests.
let randomModel config seed dtype = scaledRandomModel 0.5 config seed dtype

let private toMatrix (t: torch.Tensor) : Matrix<float> =
    let t64 = t.detach().cpu().to_type(torch.ScalarType.Float64).contiguous()
    Matrix<float>.Build.DenseOfRowMajor(int t64.shape.[0], int t64.shape.[1], t64.data<float>().ToArray())

let private toVector (t: torch.Tensor) : Vector<float> =
    Vector<float>.Build.DenseOfArray(t.detach().cpu().to_type(torch.ScalarType.Float64).contiguous().data<float>().ToArray())

/// The spec's view of an engine model: its parameters read by HF name.
let specWeights (model: Qwen2ForCausalLM) : Transformer.Config * Transformer.Weights =
    let p = model.NamedParameters() |> Seq.map (fun struct (n, t) -> n, t :> torch.Tensor) |> Map.ofSeq
    let c = model.Config
    let layer i =
        let m name = toMatrix p.[sprintf "model.layers.%d.%s" i name]
        let v name = toVector p.[sprintf "model.layers.%d.%s" i name]
        { Transformer.InputNorm = v "input_layernorm.weight"
          Transformer.Wq = m "self_attn.q_proj.weight"
          Transformer.Bq = v "self_attn.q_proj.bias"
          Transformer.Wk = m "self_attn.k_proj.weight"
          Transformer.Bk = v "self_attn.k_proj.bias"
          Transformer.Wv = m "self_attn.v_proj.weight"
          Transformer.Bv = v "self_attn.v_proj.bias"
          Transformer.Wo = m "self_attn.o_proj.weight"
          Transformer.PostNorm = v "post_attention_layernorm.weight"
          Transformer.Wgate = m "mlp.gate_proj.weight"
          Transformer.Wup = m "mlp.up_proj.weight"
          Transformer.Wdown = m "mlp.down_proj.weight" }
    { Transformer.Heads = c.NumAttentionHeads
      Transformer.KvHeads = c.NumKeyValueHeads
      Transformer.RopeTheta = c.RopeTheta
      Transformer.Eps = c.RmsNormEps },
    { Transformer.Embed = toMatrix p.["model.embed_tokens.weight"]
      Transformer.Layers = List.init c.NumHiddenLayers layer
      Transformer.FinalNorm = toVector p.["model.norm.weight"]
      Transformer.LmHead = p.TryFind "lm_head.weight" |> Option.map toMatrix }

/// ids [B,T] int64 tensor from rows of equal length.
let idsTensor (rows: int[][]) =
    let b = rows.Length
    let t = rows.[0].Length
    torch.tensor(rows |> Array.concat |> Array.map int64, System.ReadOnlySpan<int64>([| int64 b; int64 t |]))

/// Left-pads ragged rows with `pad`; returns ids [B,T] and mask [B,T] (1 = real).
let leftPad (pad: int) (rows: int[][]) =
    let t = rows |> Array.map Array.length |> Array.max
    let ids = rows |> Array.map (fun r -> Array.append (Array.create (t - r.Length) pad) r)
    let mask = rows |> Array.map (fun r -> Array.append (Array.create (t - r.Length) 0) (Array.create r.Length 1))
    idsTensor ids, idsTensor mask

/// Right-pads ragged rows with `pad`; returns ids [B,T] and mask [B,T] (1 = real).
let rightPad (pad: int) (rows: int[][]) =
    let t = rows |> Array.map Array.length |> Array.max
    let ids = rows |> Array.map (fun r -> Array.append r (Array.create (t - r.Length) pad))
    let mask = rows |> Array.map (fun r -> Array.append (Array.create r.Length 1) (Array.create (t - r.Length) 0))
    idsTensor ids, idsTensor mask

/// Row b of a [B,T,V] tensor as a [T,V] matrix.
let rowMatrix (t: torch.Tensor) (b: int) = toMatrix (t.select(0, int64 b))

/// Relative agreement of two matrices entry by entry (Accuracy.close).
let matricesClose tol (a: Matrix<float>) (b: Matrix<float>) =
    a.RowCount = b.RowCount && a.ColumnCount = b.ColumnCount
    && Seq.forall2 (Popo.Tests.Accuracy.close tol) (a.Enumerate()) (b.Enumerate())
