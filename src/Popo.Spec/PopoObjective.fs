/// The POPO micro-batch loss (docs/design.md §2.3-§2.7): weighted NLL, bounded similarity penalty, entropy bonus
/// and their total, each with its analytic gradient. A micro-batch B is n rollouts: weights w [n] (from
/// Weights, no gradient), token log-probs l [n][|y_i|], predictor outputs u [n x D] (rows = rollouts),
/// noisy target features z = f_xi + eps [n x D], per-token logits [n][|y_i|] of Vector [V].
/// Gradients treat these as independent inputs; `fullLogitGradients` chains L_nll through the logits.
module Popo.Spec.PopoObjective

open MathNet.Numerics.LinearAlgebra

/// Which tokens the entropy bonus covers: all completion tokens of B (authors' code) or positives' only.
[<RequireQualifiedAccess>]
type EntropyScope =
    | All
    | Positive

/// Loss options (docs/design.md §2.5-§2.7): alpha on L_sim, beta_ent on L_ent, gradient-accumulation steps
/// dividing the total, sampling temperature T of the logits, entropy scope.
type PopoConfig =
    { Alpha: float
      BetaEnt: float
      GradAccumSteps: int
      Temperature: float
      EntropyScope: EntropyScope }

    /// alpha = 0.1, beta_ent = 0.01, one accumulation step, T = 1, entropy over all tokens.
    static member Default =
        { Alpha = 0.1; BetaEnt = 0.01; GradAccumSteps = 1; Temperature = 1.0; EntropyScope = EntropyScope.All }

/// One micro-batch of inputs; see the module comment for shapes.
type PopoInputs =
    { TokenLogProbs: float[][]
      Weights: float[]
      Predictor: Matrix<float>
      Target: Matrix<float>
      Logits: Vector<float>[][] }

/// Gradients of the total loss with respect to each input of `PopoInputs` (same shapes).
type PopoGradients =
    { TokenLogProbs: float[][]
      Predictor: Matrix<float>
      Logits: Vector<float>[][] }

let private checkRows (name: string) (expected: int) (actual: int) =
    if expected <> actual then
        invalidArg name (sprintf "expected %d rows (one per rollout), got %d" expected actual)

/// True when some rollout of B has w_i > 0.
let hasPositive (weights: float[]) : bool = weights |> Array.exists (fun w -> w > 0.0)

/// N+ = max(1, sum over i in B with w_i > 0 of |y_i|): the completion tokens of weighted rollouts.
/// weights: [n]; tokenLogProbs: [n][|y_i|]. docs/design.md §2.3.
let positiveTokenCount (weights: float[]) (tokenLogProbs: float[][]) : int =
    checkRows "tokenLogProbs" weights.Length tokenLogProbs.Length
    max 1 (Array.fold2 (fun acc w (l: float[]) -> if w > 0.0 then acc + l.Length else acc) 0 weights tokenLogProbs)

/// L_nll = (1/N+) sum_{i in B} w_i sum_t (-l_{i,t}). weights: [n]; tokenLogProbs: [n][|y_i|]. docs/design.md §2.3.
let nllLoss (weights: float[]) (tokenLogProbs: float[][]) : float =
    let nPlus = float (positiveTokenCount weights tokenLogProbs)
    Array.fold2 (fun acc w (l: float[]) -> if w <> 0.0 then acc - w * Array.sum l else acc) 0.0 weights tokenLogProbs / nPlus

/// dL_nll / dl_{i,t} = -w_i / N+ (the same for every token of rollout i). Result: [n][|y_i|]. docs/design.md §2.3.
let nllGrad (weights: float[]) (tokenLogProbs: float[][]) : float[][] =
    let nPlus = float (positiveTokenCount weights tokenLogProbs)
    Array.map2 (fun w (l: float[]) -> Array.create l.Length (-w / nPlus)) weights tokenLogProbs

/// cos(u, v) = u . v / (|u| |v|) for nonzero u, v: [D]. docs/design.md §2.5.
let cosine (u: Vector<float>) (v: Vector<float>) : float =
    let nu, nv = u.L2Norm(), v.L2Norm()
    if nu = 0.0 || nv = 0.0 then invalidArg "u" "cosine similarity of a zero vector is undefined"
    u.DotProduct v / (nu * nv)

/// d cos(u, v) / du = v / (|u| |v|) - cos(u, v) u / |u|^2, orthogonal to u. u, v: [D]; result: [D].
/// Derivation in proofs/similarity-entropy.md.
let cosineGrad (u: Vector<float>) (v: Vector<float>) : Vector<float> =
    let nu, nv = u.L2Norm(), v.L2Norm()
    let c = cosine u v
    v / (nu * nv) - (c / (nu * nu)) * u

let private weightTotal (weights: float[]) = max (Array.sum weights) 1e-8

/// L_sim = -sum_{i in B} w_i cos(u_i, z_i) / max(sum_{i in B} w_i, 1e-8), u = h_phi(f_theta) and
/// z = f_xi + eps given as rows. Rows with w_i = 0 are not read. weights: [n]; predictor, target: [n x D].
/// docs/design.md §2.5 ("Eq. 9").
let simLoss (weights: float[]) (predictor: Matrix<float>) (target: Matrix<float>) : float =
    checkRows "predictor" weights.Length predictor.RowCount
    checkRows "target" weights.Length target.RowCount
    let total =
        weights |> Array.mapi (fun i w -> if w <> 0.0 then w * cosine (predictor.Row i) (target.Row i) else 0.0) |> Array.sum
    -total / weightTotal weights

/// dL_sim / du_i = -(w_i / max(sum w, 1e-8)) d cos(u_i, z_i) / du_i; the target gets no gradient.
/// Result: [n x D]. docs/design.md §2.5.
let simGrad (weights: float[]) (predictor: Matrix<float>) (target: Matrix<float>) : Matrix<float> =
    checkRows "predictor" weights.Length predictor.RowCount
    checkRows "target" weights.Length target.RowCount
    let wSum = weightTotal weights
    weights
    |> Array.mapi (fun i w ->
        if w <> 0.0 then (-w / wSum) * cosineGrad (predictor.Row i) (target.Row i)
        else Vector<float>.Build.Dense predictor.ColumnCount)
    |> fun rows -> Matrix<float>.Build.DenseOfRowVectors rows

let private inScope (scope: EntropyScope) (w: float) =
    match scope with
    | EntropyScope.All -> true
    | EntropyScope.Positive -> w > 0.0

/// L_ent from per-token entropies: -(1/N) sum of H_{i,t} over the tokens in scope (all of B, or rollouts
/// with w_i > 0), N their count; 0 when no token is in scope. entropies: [n][|y_i|]. docs/design.md §2.6.
let entLossOfEntropies (scope: EntropyScope) (weights: float[]) (entropies: float[][]) : float =
    checkRows "entropies" weights.Length entropies.Length
    let chosen = Array.zip weights entropies |> Array.filter (fun (w, _) -> inScope scope w) |> Array.map snd
    let count = chosen |> Array.sumBy Array.length
    if count = 0 then 0.0 else -(chosen |> Array.sumBy Array.sum) / float count

/// L_ent with H_{i,t} = entropy of softmax(logits_{i,t} / T). logits: [n][|y_i|] of [V]. docs/design.md §2.6.
let entLoss (temperature: float) (scope: EntropyScope) (weights: float[]) (logits: Vector<float>[][]) : float =
    entLossOfEntropies scope weights (logits |> Array.map (Array.map (Softmax.entropyT temperature)))

/// dL_ent / dz_{i,t} = -(1/N) dH/dz = (1/(N T)) p (log p + H) for tokens in scope, 0 elsewhere.
/// Result: [n][|y_i|] of [V]. docs/design.md §2.6.
let entGrad (temperature: float) (scope: EntropyScope) (weights: float[]) (logits: Vector<float>[][]) : Vector<float>[][] =
    checkRows "logits" weights.Length logits.Length
    let count = Array.fold2 (fun acc w (z: Vector<float>[]) -> if inScope scope w then acc + z.Length else acc) 0 weights logits
    Array.map2 (fun w (zs: Vector<float>[]) ->
        zs |> Array.map (fun z ->
            if inScope scope w then -(Softmax.entropyGradT temperature z) / float count
            else Vector<float>.Build.Dense z.Count)) weights logits

/// L = (L_nll + alpha L_sim + beta_ent L_ent) / grad_accum_steps, and exactly 0 for a micro-batch with
/// no w_i > 0. docs/design.md §2.7.
let combine (config: PopoConfig) (weights: float[]) (nll: float) (sim: float) (ent: float) : float =
    if config.GradAccumSteps < 1 then invalidArg "config" (sprintf "GradAccumSteps must be >= 1, got %d" config.GradAccumSteps)
    if hasPositive weights then (nll + config.Alpha * sim + config.BetaEnt * ent) / float config.GradAccumSteps
    else 0.0

/// The total loss of one micro-batch. docs/design.md §2.7.
let loss (config: PopoConfig) (inputs: PopoInputs) : float =
    let w = inputs.Weights
    if not (hasPositive w) then 0.0
    else
        combine config w (nllLoss w inputs.TokenLogProbs) (simLoss w inputs.Predictor inputs.Target)
            (entLoss config.Temperature config.EntropyScope w inputs.Logits)

/// Gradients of `loss` with respect to token log-probs (from L_nll), predictor outputs (from L_sim) and
/// logits (from L_ent only), each scaled by 1/grad_accum_steps; all zero without a positive. docs/design.md §2.7.
let gradients (config: PopoConfig) (inputs: PopoInputs) : PopoGradients =
    let w = inputs.Weights
    let k = float config.GradAccumSteps
    let live = hasPositive w
    let scale c = if live then c / k else 0.0
    { TokenLogProbs = nllGrad w inputs.TokenLogProbs |> Array.map (Array.map (fun g -> scale 1.0 * g))
      Predictor = scale config.Alpha * simGrad w inputs.Predictor inputs.Target
      Logits = entGrad config.Temperature config.EntropyScope w inputs.Logits |> Array.map (Array.map (fun g -> scale config.BetaEnt * g)) }

/// Gradient of the total with respect to the logits when l_{i,t} = log softmax(z_{i,t} / T)[y_{i,t}]:
/// dL/dz_{i,t} = dL/dl_{i,t} (1/T)(e_y - p) + dL_ent-part/dz_{i,t}. tokens: [n][|y_i|]. docs/design.md §2.1, §2.7.
let fullLogitGradients (config: PopoConfig) (inputs: PopoInputs) (tokens: int[][]) : Vector<float>[][] =
    checkRows "tokens" inputs.Weights.Length tokens.Length
    let g = gradients config inputs
    Array.init tokens.Length (fun i ->
        Array.init tokens.[i].Length (fun t ->
            g.TokenLogProbs.[i].[t] * Softmax.gradLogProbT config.Temperature inputs.Logits.[i].[t] tokens.[i].[t] + g.Logits.[i].[t]))
