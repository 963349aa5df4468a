/// The reference forward pass of the Qwen2-layout decoder (docs/design.md §6) on one unpadded sequence, in float64
/// on MathNet matrices. It defines the semantics the TorchSharp engine (Popo.Engine.Model) must match.
module Popo.Spec.Transformer

open MathNet.Numerics.LinearAlgebra

/// Sizes and constants of the decoder, as in HF config.json (heads, kv heads, rope_theta, rms_norm_eps).
type Config =
    { Heads: int
      KvHeads: int
      RopeTheta: float
      Eps: float }

/// One decoder layer. Projection matrices are [out, in] as in HF (y = W x + b); norms are weight vectors.
type Layer =
    { InputNorm: Vector<float>
      Wq: Matrix<float>
      Bq: Vector<float>
      Wk: Matrix<float>
      Bk: Vector<float>
      Wv: Matrix<float>
      Bv: Vector<float>
      Wo: Matrix<float>
      PostNorm: Vector<float>
      Wgate: Matrix<float>
      Wup: Matrix<float>
      Wdown: Matrix<float> }

/// Embedding E [V, D]; layers; final norm weight [D]; LmHead [V, D], or None when tied to E.
type Weights =
    { Embed: Matrix<float>
      Layers: Layer list
      FinalNorm: Vector<float>
      LmHead: Matrix<float> option }

/// RMSNorm of each row of X [T, D]: y = w ⊙ x / sqrt(mean(x²) + eps). docs/design.md §6.
let rmsNorm (eps: float) (w: Vector<float>) (x: Matrix<float>) : Matrix<float> =
    Matrix<float>.Build.DenseOfRowVectors(
        x.EnumerateRows()
        |> Seq.map (fun row -> row.PointwiseMultiply(w) / sqrt (row.DotProduct(row) / float row.Count + eps)))

/// Rotate-half RoPE of one head vector x [d] at position p: with i < d/2, a_i = p · theta^(-2i/d),
/// y_i = x_i cos a_i - x_{i+d/2} sin a_i and y_{i+d/2} = x_{i+d/2} cos a_i + x_i sin a_i. docs/design.md §6 (HF Qwen2).
let rope (theta: float) (p: int) (x: Vector<float>) : Vector<float> =
    let d = x.Count
    let h = d / 2
    Vector<float>.Build.Dense(d, fun j ->
        let i = j % h
        let a = float p * (theta ** (-(2.0 * float i) / float d))
        if j < h then x.[j] * cos a - x.[j + h] * sin a
        else x.[j] * cos a + x.[j - h] * sin a)

/// silu(z) = z / (1 + e^-z).
let silu (z: float) = z / (1.0 + exp -z)

/// Causal grouped-query attention on X [T, D] (already normalised): per head h with kv head h / (H / H_kv),
/// q_t = RoPE(Wq x_t + bq), k_s = RoPE(Wk x_s + bk), v_s = Wv x_s + bv,
/// o_t = sum_{s <= t} softmax_s(q_t · k_s / sqrt d) v_s; result [T, D] = concat_h(o) Wo^T (no bias). docs/design.md §6.
let attention (config: Config) (layer: Layer) (x: Matrix<float>) : Matrix<float> =
    let t = x.RowCount
    let d = layer.Wq.RowCount / config.Heads
    let groups = config.Heads / config.KvHeads
    let project (w: Matrix<float>) (b: Vector<float>) = x * w.Transpose() + Matrix<float>.Build.DenseOfRowVectors(Array.create t b)
    let q, k, v = project layer.Wq layer.Bq, project layer.Wk layer.Bk, project layer.Wv layer.Bv
    let head (m: Matrix<float>) hd pos = rope config.RopeTheta pos (m.Row(pos).SubVector(hd * d, d))
    let out = Matrix<float>.Build.Dense(t, config.Heads * d)
    for h in 0 .. config.Heads - 1 do
        let kv = h / groups
        for i in 0 .. t - 1 do
            let qi = head q h i
            let scores = Array.init (i + 1) (fun s -> qi.DotProduct(head k kv s) / sqrt (float d))
            let m = Array.max scores
            let e = scores |> Array.map (fun z -> exp (z - m))
            let z = Array.sum e
            let o = Array.fold2 (fun (acc: Vector<float>) w s -> acc + (w / z) * v.Row(s).SubVector(kv * d, d)) (Vector<float>.Build.Dense d) e [| 0 .. i |]
            out.SetSubMatrix(i, h * d, o.ToRowMatrix())
    out * layer.Wo.Transpose()

/// SwiGLU on rows of X [T, D]: (silu(X Wgate^T) ⊙ (X Wup^T)) Wdown^T. docs/design.md §6.
let mlp (layer: Layer) (x: Matrix<float>) : Matrix<float> =
    let gate = (x * layer.Wgate.Transpose()).Map silu
    gate.PointwiseMultiply(x * layer.Wup.Transpose()) * layer.Wdown.Transpose()

/// Forward pass on token ids [T] at positions 0..T-1: X_0 = E[ids]; per layer
/// H = X + attn(norm1(X)), X' = H + mlp(norm2(H)); hidden = finalNorm(X) [T, D];
/// logits = hidden (LmHead or E)^T [T, V]. Returns (logits, hidden). docs/design.md §6.
let forward (config: Config) (weights: Weights) (ids: int[]) : Matrix<float> * Matrix<float> =
    let x0 = Matrix<float>.Build.DenseOfRowVectors(ids |> Array.map (fun i -> weights.Embed.Row i))
    let block (x: Matrix<float>) (layer: Layer) =
        let h = x + attention config layer (rmsNorm config.Eps layer.InputNorm x)
        h + mlp layer (rmsNorm config.Eps layer.PostNorm h)
    let hidden = weights.Layers |> List.fold block x0 |> rmsNorm config.Eps weights.FinalNorm
    let head = defaultArg weights.LmHead weights.Embed
    hidden * head.Transpose(), hidden
