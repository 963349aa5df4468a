/// The importance correction against a remote sampler's log-probs (TRL's vllm_importance_sampling_correction;
/// docs/design.md §2, proofs/importance-correction.md). Rows are ragged: the trainer's old log-probs and the sampler's,
/// [B][|y_i|]. With d_{i,t} = trainer - sampler:
///   token modes:    rho_{i,t} = exp d_{i,t};    sequence modes: rho_i = exp (sum_t d_{i,t}), the same for every token of i;
///   truncate: c = min(rho, cap);                mask: c = rho when rho <= cap, else 0.
module Popo.Spec.ImportanceCorrection

/// TRL's four modes.
[<RequireQualifiedAccess>]
type Mode =
    | TokenTruncate
    | TokenMask
    | SequenceTruncate
    | SequenceMask

let isSequence mode = mode = Mode.SequenceTruncate || mode = Mode.SequenceMask

/// The limit applied to a ratio: truncation at the cap, or 0 above it.
let private limit mode cap (rho: float) =
    match mode with
    | Mode.TokenTruncate | Mode.SequenceTruncate -> min rho cap
    | Mode.TokenMask | Mode.SequenceMask -> if rho > cap then 0.0 else rho

/// Whether a ratio is changed by the limit (truncated or masked).
let corrected cap (rho: float) = rho > cap

/// The unlimited ratios rho, token by token (sequence modes repeat the row's ratio).
let ratios (mode: Mode) (trainer: float[][]) (sampler: float[][]) : float[][] =
    Array.map2 (fun (o: float[]) (s: float[]) ->
        let d = Array.map2 (-) o s
        if isSequence mode then Array.create d.Length (exp (Array.sum d)) else Array.map exp d) trainer sampler

/// c_{i,t}: the per-token weights of the policy-loss terms.
let weights (mode: Mode) (cap: float) (trainer: float[][]) (sampler: float[][]) : float[][] =
    ratios mode trainer sampler |> Array.map (Array.map (limit mode cap))

/// The logged mismatch: mean |d| over tokens, the k3 estimate mean (exp d - d - 1), and the share of tokens
/// (token modes) or of non-empty rows (sequence modes) whose ratio exceeds the cap.
type Metrics = { MeanAbsDiff: float; K3: float; Corrected: float }

let metrics (mode: Mode) (cap: float) (trainer: float[][]) (sampler: float[][]) : Metrics =
    let d = Array.map2 (Array.map2 (-)) trainer sampler |> Array.concat
    let tokens = max 1 d.Length |> float
    let rho = ratios mode trainer sampler
    let share =
        if isSequence mode then
            let rows = rho |> Array.filter (fun r -> r.Length > 0)
            float (rows |> Array.filter (fun r -> corrected cap r.[0]) |> Array.length) / float (max 1 rows.Length)
        else float (rho |> Array.concat |> Array.filter (corrected cap) |> Array.length) / tokens
    { MeanAbsDiff = (d |> Array.sumBy abs) / tokens
      K3 = (d |> Array.sumBy (fun x -> exp x - x - 1.0)) / tokens
      Corrected = share }

/// POPO's effective per-token weights under the correction: e_{i,t} = w_i c_{i,t} (the NLL's gradient with respect
/// to l_{i,t} is -e_{i,t} / N+).
let popoTokenWeights (w: float[]) (c: float[][]) : float[][] =
    Array.map2 (fun wi (ci: float[]) -> Array.map (fun x -> wi * x) ci) w c
