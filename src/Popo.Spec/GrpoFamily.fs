/// The 2026 objectives beside GRPO (docs/design.md §3.1), as generalisations of Grpo's micro-batch loss:
///   * RLVR-Decomposed's PSR, NSR and W-REINFORCE: advantages +lambda_+ on a positive, -lambda_- on a negative,
///     no baseline (signedAdvantages);
///   * GSPO (TRL importance_sampling_level = "sequence"): one ratio per rollout, the geometric mean of its token
///     ratios, clipped like a token ratio;
///   * CISPO (TRL loss_type = "cispo"): the REINFORCE term l weighted by the stop-gradient weight min(rho, eps_max);
///   * delta (INTELLECT-2's two-sided clip, TRL `delta`): the unclipped ratio is also capped at delta;
///   * top_entropy_quantile (TRL): only the tokens whose entropy is at or above the (1 - q) quantile of the
///     micro-batch's loss-carrying tokens carry the policy term;
///   * mask_truncated_completions (TRL): a rollout that hit the length limit without a stop token carries no loss.
/// A micro-batch is Grpo's (ragged [B][|y_i|] log-probs, advantages [B]) with per-token entropies and a per-rollout
/// Masked flag.
module Popo.Spec.GrpoFamily

open Popo.Spec.Grpo

/// RLVR-Decomposed's advantage weights: A_i = PositiveWeight when r_i > 0, -NegativeWeight otherwise.
type SignedWeights = { PositiveWeight: float; NegativeWeight: float }

/// PSR: only the positives, each with advantage +1.
let psr = { PositiveWeight = 1.0; NegativeWeight = 0.0 }

/// NSR: only the negatives, each with advantage -1.
let nsr = { PositiveWeight = 0.0; NegativeWeight = 1.0 }

/// W-REINFORCE: positives down-weighted to lambda, negatives at -1 (the paper's lambda = 0.1).
let wReinforce (lambda: float) = { PositiveWeight = lambda; NegativeWeight = 1.0 }

/// A_i = PositiveWeight if r_i > 0 else -NegativeWeight: RLVR-Decomposed's advantage with rewards {1, 0} (its
/// compute_psr_nsr_outcome_advantage: "positive" r, "negative" r - 1, "weighted" lambda r or r - 1), no group
/// baseline, no std. Positive means r > 0, as POPO's S+. rewards: [n]; result: [n].
let signedAdvantages (w: SignedWeights) (rewards: float[]) : float[] =
    if rewards |> Array.exists System.Double.IsNaN then invalidArg "rewards" "a reward is NaN"
    rewards |> Array.map (fun r -> if r > 0.0 then w.PositiveWeight else -w.NegativeWeight)

/// Which ratio the surrogate clips: per token rho_t = exp(l_t - old_t), or per rollout (GSPO)
/// s_i = exp(mean_t (l_t - old_t)), shared by every token of the rollout; SequenceToken (GSPO-token, TRL's
/// "sequence_token") has the value s_i on every token but the gradient of sg(s_i) pi(y_t) / sg(pi(y_t)):
/// d r_{i,t} / d l_{i,t} = s_i, nothing through the other tokens.
[<RequireQualifiedAccess>]
type ImportanceLevel =
    | Token
    | Sequence
    | SequenceToken

/// The per-token policy term as a function of the ratio r (rho_t or s_i).
[<RequireQualifiedAccess>]
type Surrogate =
    /// -min(min(r, delta) A, clip(r, 1 - eps_low, 1 + eps_high) A); delta = +infinity is the one-sided PPO clip.
    | Clipped of delta: float
    /// -sg(min(r, epsMax)) A l_t (CISPO; sg = stop-gradient, so d/dl_t = -min(r, epsMax) A).
    | Cispo of epsMax: float

/// Grpo's options (clip range, beta, aggregation) with the ratio level, the surrogate and the entropy quantile q
/// (1 = every token).
type FamilyConfig =
    { Grpo: GrpoConfig
      Level: ImportanceLevel
      Surrogate: Surrogate
      TopEntropyQuantile: float }

/// A micro-batch: Grpo's, the token entropies [B][|y_i|] (read only when q < 1) and Masked [B] (true: a truncated
/// completion under mask_truncated_completions; it carries no loss, but still counts in grpo's and dr_grpo's B and in
/// dapo's token total, as TRL counts it).
type FamilyBatch =
    { Batch: GrpoBatch
      Entropies: float[][]
      Masked: bool[] }

/// The default options: TRL's token-level, one-sided clip over every token.
let plain (grpo: GrpoConfig) =
    { Grpo = grpo; Level = ImportanceLevel.Token; Surrogate = Surrogate.Clipped infinity; TopEntropyQuantile = 1.0 }

/// The q-quantile of xs with linear interpolation between order statistics (torch.quantile's default):
/// position q (n - 1) in the sorted values. Needs n >= 1 and 0 <= q <= 1.
let quantile (q: float) (xs: float[]) : float =
    if xs.Length = 0 then invalidArg "xs" "a quantile needs at least one value"
    if not (q >= 0.0 && q <= 1.0) then invalidArg "q" (sprintf "quantile %g is outside [0, 1]" q)
    let s = Array.sort xs
    let pos = q * float (s.Length - 1)
    let lo = int (floor pos)
    let hi = min (lo + 1) (s.Length - 1)
    s.[lo] + (pos - float lo) * (s.[hi] - s.[lo])

/// Which tokens carry the policy term: with q = 1 all; else those of unmasked rollouts whose entropy is at least the
/// (1 - q) quantile of the unmasked rollouts' token entropies in this micro-batch (TRL's get_high_entropy_mask,
/// one process). Result: [B][|y_i|].
let entropySelected (q: float) (batch: FamilyBatch) : bool[][] =
    let rows = batch.Batch.NewLogProbs
    if q >= 1.0 then rows |> Array.map (Array.map (fun _ -> true))
    else
        let pool = Array.concat [| for i in 0 .. rows.Length - 1 do if not batch.Masked.[i] then batch.Entropies.[i] |]
        if pool.Length = 0 then rows |> Array.map (Array.map (fun _ -> false))
        else
            let threshold = quantile (1.0 - q) pool
            Array.init rows.Length (fun i -> Array.init rows.[i].Length (fun t -> not batch.Masked.[i] && batch.Entropies.[i].[t] >= threshold))

/// The ratio of each token: rho_t (Token) or s_i repeated over the rollout (Sequence). Result: [B][|y_i|].
let ratios (level: ImportanceLevel) (batch: GrpoBatch) : float[][] =
    Array.map2
        (fun (l: float[]) (old: float[]) ->
            match level with
            | ImportanceLevel.Token -> Array.map2 (fun a b -> exp (a - b)) l old
            | ImportanceLevel.Sequence
            | ImportanceLevel.SequenceToken ->
                let s = exp (Array.average (Array.map2 (-) l old))
                Array.create l.Length s)
        batch.NewLogProbs batch.OldLogProbs

/// The clipped term's value -min(min(r, delta) A, clip(r) A) and its derivative in r: the chosen branch's slope,
/// r itself (capped at delta: slope 0 above delta) or the clip (slope 0 outside [1 - eps_low, 1 + eps_high]).
let clippedTerm (config: GrpoConfig) (delta: float) (advantage: float) (r: float) : float * float =
    let capped, cappedSlope = if r < delta then (r, 1.0) else (delta, 0.0)
    let clip, clipSlope =
        if r < 1.0 - config.EpsLow then (1.0 - config.EpsLow, 0.0)
        elif r > 1.0 + config.EpsHigh then (1.0 + config.EpsHigh, 0.0)
        else (r, 1.0)
    // min(x A, y A) picks the smaller factor when A >= 0 and the larger when A < 0.
    let takeCapped = if advantage >= 0.0 then capped <= clip else capped >= clip
    if takeCapped then (-capped * advantage, -cappedSlope * advantage) else (-clip * advantage, -clipSlope * advantage)

let private validate (config: FamilyConfig) (fb: FamilyBatch) =
    let b = fb.Batch
    Grpo.loss config.Grpo b |> ignore   // Grpo's shape checks (and nothing else: the value is discarded)
    if isNull fb.Masked || fb.Masked.Length <> b.Advantages.Length then invalidArg "Masked" "expected one flag per rollout"
    if config.TopEntropyQuantile < 1.0 then
        if isNull fb.Entropies || fb.Entropies.Length <> b.Advantages.Length
           || Array.exists2 (fun (h: float[]) (l: float[]) -> h.Length <> l.Length) fb.Entropies b.NewLogProbs then
            invalidArg "Entropies" "expected one entropy per token"
    if not (config.TopEntropyQuantile > 0.0 && config.TopEntropyQuantile <= 1.0) then
        invalidArg "config" (sprintf "top_entropy_quantile %g is outside (0, 1]" config.TopEntropyQuantile)

/// Normaliser of rollout i's tokens: Grpo.tokenScale, except bnpo's token count excludes the masked rollouts.
let private scale (lossType: LossType) (lengths: int[]) (masked: bool[]) (i: int) : float =
    match lossType with
    | LossType.Bnpo -> 1.0 / float (max 1 (Array.fold2 (fun s n m -> if m then s else s + n) 0 lengths masked))
    | _ -> tokenScale lossType lengths i

/// The micro-batch loss: sum over unmasked rollouts i and tokens t of scale_i (e_{i,t} p_{i,t} + beta k3_{i,t}), with
/// e the entropy selection, p the policy term (Clipped or Cispo at the ratio of the level). docs/design.md §3.1.
let loss (config: FamilyConfig) (fb: FamilyBatch) : float =
    validate config fb
    let b = fb.Batch
    let lengths = b.NewLogProbs |> Array.map Array.length
    let r = ratios config.Level b
    let selected = entropySelected config.TopEntropyQuantile fb
    Array.init lengths.Length (fun i ->
        if fb.Masked.[i] then 0.0
        else
            let a = b.Advantages.[i]
            scale config.Grpo.LossType lengths fb.Masked i
            * Array.sum (Array.init lengths.[i] (fun t ->
                let policy =
                    match config.Surrogate with
                    | Surrogate.Clipped delta -> fst (clippedTerm config.Grpo delta a r.[i].[t])
                    | Surrogate.Cispo epsMax -> -(min r.[i].[t] epsMax) * a * b.NewLogProbs.[i].[t]
                let kl = if config.Grpo.Beta = 0.0 then 0.0 else config.Grpo.Beta * k3 b.RefLogProbs.[i].[t] b.NewLogProbs.[i].[t]
                (if selected.[i].[t] then policy else 0.0) + kl)))
    |> Array.sum

/// d loss / d l_{i,u}. Token level: scale_i (e_{i,u} dp/dl_{i,u} + beta dk3), with dp/dl = (dp/dr) rho (Clipped) or
/// -min(rho, eps_max) A (Cispo). Sequence level, Clipped: every selected token's term depends on s_i, and
/// ds_i/dl_{i,u} = s_i / |y_i|, so the policy part is scale_i (sum_t e_{i,t}) (dp/ds) s_i / |y_i| on every token;
/// Cispo: -min(s_i, eps_max) A e_{i,u}. SequenceToken: the token level's formula at r = s_i. Masked rollouts: 0. Result: [B][|y_i|]. proofs/grpo-family.md.
let grad (config: FamilyConfig) (fb: FamilyBatch) : float[][] =
    validate config fb
    let b = fb.Batch
    let lengths = b.NewLogProbs |> Array.map Array.length
    let r = ratios config.Level b
    let selected = entropySelected config.TopEntropyQuantile fb
    Array.init lengths.Length (fun i ->
        let n = lengths.[i]
        if fb.Masked.[i] then Array.zeroCreate n
        else
            let a = b.Advantages.[i]
            let s = scale config.Grpo.LossType lengths fb.Masked i
            let kept = selected.[i] |> Array.sumBy (fun e -> if e then 1.0 else 0.0)
            Array.init n (fun u ->
                let e = if selected.[i].[u] then 1.0 else 0.0
                let policy =
                    match config.Surrogate, config.Level with
                    | Surrogate.Clipped delta, (ImportanceLevel.Token | ImportanceLevel.SequenceToken) ->
                        e * snd (clippedTerm config.Grpo delta a r.[i].[u]) * r.[i].[u]
                    | Surrogate.Clipped delta, ImportanceLevel.Sequence ->
                        kept * snd (clippedTerm config.Grpo delta a r.[i].[u]) * r.[i].[u] / float n
                    | Surrogate.Cispo epsMax, _ -> -e * (min r.[i].[u] epsMax) * a
                let kl = if config.Grpo.Beta = 0.0 then 0.0 else config.Grpo.Beta * k3Grad b.RefLogProbs.[i].[u] b.NewLogProbs.[i].[u]
                s * (policy + kl)))
