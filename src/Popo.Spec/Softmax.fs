/// Softmax, log-softmax, entropy and the softmax Jacobian at temperature T (docs/design.md §2.1, §2.6, §4).
/// Vectors are MathNet `Vector<float>` of length V (the vocabulary); T > 0.
module Popo.Spec.Softmax

open MathNet.Numerics.LinearAlgebra

let private checkTemperature (temperature: float) =
    if not (temperature > 0.0) || System.Double.IsInfinity temperature then
        invalidArg "temperature" (sprintf "temperature must be finite and > 0, got %g" temperature)

/// log softmax(z / T)_k = z_k / T - log sum_j exp(z_j / T), shifted by the maximum for stability.
/// z: [V]; result: [V]. docs/design.md §2.1 (token log-probs at sampling temperature T).
let logSoftmaxT (temperature: float) (z: Vector<float>) : Vector<float> =
    checkTemperature temperature
    let s = z / temperature
    let m = s.Maximum()
    let lse = m + log (s.Map(fun v -> exp (v - m)).Sum())
    s - lse

/// p = softmax(z / T)_k = exp(z_k / T) / sum_j exp(z_j / T). z: [V]; result: [V], sums to 1. docs/design.md §2.1.
let softmaxT (temperature: float) (z: Vector<float>) : Vector<float> =
    (logSoftmaxT temperature z).Map(fun v -> exp v)

/// Token log-probs l_t = log softmax(z_t / T)[y_t] of a completion: logits [L][V], tokens [L] -> [L].
/// docs/design.md §2.1 (completion tokens only).
let tokenLogProbs (temperature: float) (logits: Vector<float>[]) (tokens: int[]) : float[] =
    if logits.Length <> tokens.Length then
        invalidArg "tokens" (sprintf "expected one token per logits row: %d rows, %d tokens" logits.Length tokens.Length)
    Array.map2 (fun (z: Vector<float>) y -> (logSoftmaxT temperature z).[y]) logits tokens

/// Entropy H = -sum_k p_k log p_k of p = softmax(z / T), with 0 log 0 = 0. z: [V]; H in [0, log V].
/// docs/design.md §2.6 (full-vocabulary entropy of softmax(logits/T)).
let entropyT (temperature: float) (z: Vector<float>) : float =
    let lp = logSoftmaxT temperature z
    -(lp |> Seq.sumBy (fun l -> let p = exp l in if p > 0.0 then p * l else 0.0))

/// dH/dz_j = -(1/T) p_j (log p_j + H) for H the entropy of p = softmax(z / T). z: [V]; result: [V].
/// docs/design.md §2.6; derivation in proofs/similarity-entropy.md.
let entropyGradT (temperature: float) (z: Vector<float>) : Vector<float> =
    let lp = logSoftmaxT temperature z
    let p = lp.Map(fun v -> exp v)
    let h = entropyT temperature z
    Vector<float>.Build.Dense(z.Count, fun j -> if p.[j] > 0.0 then -(p.[j] * (lp.[j] + h)) / temperature else 0.0)

/// Softmax Jacobian J_ij = d p_i / d z_j = (1/T) p_i (delta_ij - p_j), i.e. (diag p - p p^T) / T.
/// z: [V]; result: [V x V]. docs/design.md §4 (preamble).
let jacobianT (temperature: float) (z: Vector<float>) : Matrix<float> =
    let p = softmaxT temperature z
    Matrix<float>.Build.Dense(z.Count, z.Count, fun i j -> p.[i] * ((if i = j then 1.0 else 0.0) - p.[j]) / temperature)

/// Log-softmax Jacobian d log p_i / d z_j = (1/T)(delta_ij - p_j). z: [V]; result: [V x V]. docs/design.md §4.
let logJacobianT (temperature: float) (z: Vector<float>) : Matrix<float> =
    let p = softmaxT temperature z
    Matrix<float>.Build.Dense(z.Count, z.Count, fun i j -> ((if i = j then 1.0 else 0.0) - p.[j]) / temperature)

/// Gradient of one token log-prob with respect to its logits: d log p_y / dz = (1/T)(e_y - p).
/// z: [V], y in [0, V); result: [V]. docs/design.md §4: ascent raises z_y by (1 - p_y)/T and lowers every other
/// logit by p_k / T (the implicit negative gradient).
let gradLogProbT (temperature: float) (z: Vector<float>) (y: int) : Vector<float> =
    let p = softmaxT temperature z
    Vector<float>.Build.Dense(z.Count, fun k -> ((if k = y then 1.0 else 0.0) - p.[k]) / temperature)

/// Weighted ascent direction on sum_i w_i log p_i at T = 1: d = sum_i w_i (e_i - p) = w - (sum w) p.
/// w: [V] (zero outside the targets); result: [V]. docs/design.md §4 N1 (w = e_i) and N3 (w_i = p_i / P_S).
/// In floating point w_i - (sum w) p_i cancels when the targets hold all but ~1e-16 of the mass.
let ascentDirection (weights: Vector<float>) (z: Vector<float>) : Vector<float> =
    weights - weights.Sum() * softmaxT 1.0 z

/// First-order change of p along a logit direction d at T = 1: dp_k/deta = p_k (d_k - p . d).
/// For d = e_i - p this is p_k (|p|^2 - p_i - p_k) for k <> i. docs/design.md §4 (false claims).
let firstOrderChange (z: Vector<float>) (direction: Vector<float>) : Vector<float> =
    let p = softmaxT 1.0 z
    let pd = p.DotProduct direction
    Vector<float>.Build.Dense(z.Count, fun k -> p.[k] * (direction.[k] - pd))
