/// Helpers for the engine-objective tests: ragged host arrays to padded tensors and back, gradients as
/// host arrays, and hand-built generation batches for a tiny policy.
module Popo.Tests.Engine.ObjectiveFixtures

open MathNet.Numerics.LinearAlgebra
open TorchSharp
open Popo.Engine.Rollout
open Popo.Engine.Model
open Popo.Engine.Objectives
open Popo.Engine.Policy

type ScalarType = torch.ScalarType

/// Rounds a float64 to the nearest float32 (so spec and float32 engine see the same inputs).
let round32 (x: float) = float (float32 x)

let private shaped (dtype: ScalarType) (values: float[]) (shape: int64[]) =
    use t64 = torch.tensor(values, System.ReadOnlySpan<int64>(shape))
    t64.to_type dtype

/// Ragged rows [B][n_i] right-padded with 0 -> [B,N] (N = longest row) in dtype.
let padded (dtype: ScalarType) (rows: float[][]) =
    let n = rows |> Array.map Array.length |> Array.max
    let flat = rows |> Array.collect (fun r -> Array.append r (Array.zeroCreate (n - r.Length)))
    shaped dtype flat [| int64 rows.Length; int64 n |]

/// The completion mask [B,N] of ragged rows: 1 for real tokens, 0 for padding.
let maskOf (dtype: ScalarType) (lengths: int[]) =
    let n = Array.max lengths
    padded dtype (lengths |> Array.map (fun len -> Array.init n (fun t -> if t < len then 1.0 else 0.0)))

/// Ragged logits [B][n_i] of [V] -> [B,N,V], zero logits at padding.
let paddedLogits (dtype: ScalarType) (logits: Vector<float>[][]) =
    let n = logits |> Array.map Array.length |> Array.max
    let v = logits.[0].[0].Count
    let flat =
        logits |> Array.collect (fun row -> Array.init n (fun t -> if t < row.Length then row.[t].ToArray() else Array.zeroCreate v)) |> Array.concat
    shaped dtype flat [| int64 logits.Length; int64 n; int64 v |]

/// Ragged token ids -> [B,N] int64, padded with token 0.
let paddedTokens (tokens: int[][]) =
    use t = padded ScalarType.Float64 (tokens |> Array.map (Array.map float))
    t.to_type ScalarType.Int64

let matrixTensor (dtype: ScalarType) (m: Matrix<float>) =
    shaped dtype (m.ToRowMajorArray()) [| int64 m.RowCount; int64 m.ColumnCount |]

let vectorTensor (dtype: ScalarType) (v: float[]) = shaped dtype v [| int64 v.Length |]

/// A tensor's values as float64, row-major.
let values (t: torch.Tensor) : float[] =
    use c = t.detach().cpu().to_type(ScalarType.Float64).contiguous()
    c.data<float>().ToArray()

/// A leaf's gradient as float64 values, zeros when autograd never reached it (null grad).
let gradValues (leaf: torch.Tensor) : float[] =
    match leaf.grad with
    | null -> Array.zeroCreate (int (leaf.numel()))
    | g -> values g

/// Splits row-major [B,N] values into the real entries of each row and the padding entries.
let unpad (lengths: int[]) (flat: float[]) : float[][] * float[] =
    let n = Array.max lengths
    let rows = lengths |> Array.mapi (fun i len -> flat.[i * n .. i * n + len - 1])
    let pads = lengths |> Array.mapi (fun i len -> flat.[i * n + len .. i * n + n - 1]) |> Array.concat
    rows, pads

/// Row-major [B,N,V] values -> the real [B][n_i][V] entries and the padding entries.
let unpadLogits (lengths: int[]) (v: int) (flat: float[]) : float[][][] * float[] =
    let n = Array.max lengths
    let at i t = flat.[(i * n + t) * v .. (i * n + t) * v + v - 1]
    let rows = lengths |> Array.mapi (fun i len -> Array.init len (at i))
    let pads = lengths |> Array.mapi (fun i len -> Array.init (n - len) (fun k -> at i (len + k)) |> Array.concat) |> Array.concat
    rows, pads

let allClose tol (a: float[]) (b: float[]) = a.Length = b.Length && Array.forall2 (Popo.Tests.Accuracy.close tol) a b

let raggedClose tol (a: float[][]) (b: float[][]) = a.Length = b.Length && Array.forall2 (allClose tol) a b

/// A generation batch for one policy: the same prompt (no padding) before each completion, completions
/// right-padded with token 0 and a float64 mask, old log-probs from the policy itself (on-policy).
let batchOf (policy: IPolicy) (prompt: int[]) (completions: int[][]) (rewards: float[]) (groupSize: int) : GenerationBatch =
    use scope = torch.NewDisposeScope()
    let lengths = completions |> Array.map Array.length
    let ids = paddedTokens (completions |> Array.map (Array.append prompt))
    let fullMask = maskOf ScalarType.Float64 (completions |> Array.map (fun c -> prompt.Length + c.Length))
    let attention = fullMask.to_type ScalarType.Int64
    let mask = maskOf ScalarType.Float64 lengths
    let tokens = paddedTokens completions
    let placeholder =
        new GenerationBatch(
            InputIds = ids, AttentionMask = attention, PositionIds = Qwen2ForCausalLM.DefaultPositions(attention, attention.shape.[1]),
            PromptLength = prompt.Length, CompletionIds = tokens, CompletionMask = mask, OldLogProbs = torch.zeros_like mask,
            Rewards = rewards, Completions = completions, GroupSize = groupSize)
    let old =
        use noGrad = torch.no_grad ()
        let rows = torch.arange(int64 completions.Length)
        use out = CompletionForward.Run(policy, placeholder, rows)
        TokenStatistics.LogProbs(out.Logits, out.Ids, 1.0).to_type(ScalarType.Float64) * mask
    let batch =
        new GenerationBatch(
            InputIds = ids, AttentionMask = attention, PositionIds = placeholder.PositionIds,
            PromptLength = prompt.Length, CompletionIds = tokens, CompletionMask = mask, OldLogProbs = old,
            Rewards = rewards, Completions = completions, GroupSize = groupSize)
    for t in [ ids; attention; batch.PositionIds; tokens; mask; old ] do t.MoveToOuterDisposeScope() |> ignore
    batch

/// Every parameter of a module flattened in named order, as float64 (for the spec's Vector view).
let flatParameters (m: torch.nn.Module) : Vector<float> =
    m.named_parameters() |> Seq.map (fun struct (_, p) -> values p) |> Array.concat |> Vector<float>.Build.DenseOfArray
