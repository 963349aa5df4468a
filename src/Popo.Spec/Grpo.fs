/// The GRPO family of baselines (docs/design.md §3): group-relative advantages, the clipped surrogate with k3 KL,
/// the four aggregations and their analytic gradients. A generation batch is laid out as consecutive
/// groups of G rollouts (TRL's layout); a micro-batch is B rollouts with ragged token log-probs
/// [B][|y_i|] under the new, old (sampling) and reference policies and advantages [B].
module Popo.Spec.Grpo

/// How rewards are scaled after centring on the group mean (TRL `scale_rewards`).
[<RequireQualifiedAccess>]
type ScaleRewards =
    /// Divide by the group's Bessel std + 1e-4.
    | Group
    /// Divide by the whole batch's Bessel std + 1e-4.
    | Batch
    /// No scaling (Dr. GRPO).
    | None

/// Aggregation of per-token losses over a micro-batch (TRL `loss_type`), carrying what each needs.
[<RequireQualifiedAccess>]
type LossType =
    /// Mean over sequences of per-sequence token means.
    | Grpo
    /// Token mean over the micro-batch.
    | Bnpo
    /// Token sum / (B * max_completion_length).
    | DrGrpo of maxCompletionLength: int
    /// Token sum / completion tokens in the whole accumulated batch.
    | Dapo of totalTokens: int

/// Surrogate options: clip range [1 - EpsLow, 1 + EpsHigh], KL coefficient Beta, aggregation.
type GrpoConfig =
    { EpsLow: float
      EpsHigh: float
      Beta: float
      LossType: LossType }

/// One micro-batch. RefLogProbs is not read when Beta = 0 (it may then be null).
type GrpoBatch =
    { NewLogProbs: float[][]
      OldLogProbs: float[][]
      RefLogProbs: float[][]
      Advantages: float[] }

/// The constant added to the std in the advantage denominator (TRL).
let stdEpsilon = 1e-4

/// Bessel-corrected standard deviation sqrt(sum (x - mean)^2 / (n - 1)); needs n >= 2. xs: [n].
let besselStd (xs: float[]) : float =
    if xs.Length < 2 then invalidArg "xs" (sprintf "a Bessel std needs at least 2 values, got %d" xs.Length)
    let m = Array.average xs
    sqrt ((xs |> Array.sumBy (fun x -> (x - m) * (x - m))) / float (xs.Length - 1))

/// A_i = (r_i - mean_G r) / (std + 1e-4) with std the group's (Group) or the batch's (Batch) Bessel
/// std, or A_i = r_i - mean_G r (None). rewards: [n G] in groups of groupSize; result: [n G]. docs/design.md §3.
let advantages (scale: ScaleRewards) (groupSize: int) (rewards: float[]) : float[] =
    if groupSize < 1 || rewards.Length % groupSize <> 0 then
        invalidArg "groupSize" (sprintf "batch of %d rewards is not a whole number of groups of %d" rewards.Length groupSize)
    if rewards |> Array.exists System.Double.IsNaN then invalidArg "rewards" "a reward is NaN"
    let groups = rewards |> Array.chunkBySize groupSize
    let batchStd = lazy (besselStd rewards)
    groups
    |> Array.collect (fun g ->
        let m = Array.average g
        let centred = g |> Array.map (fun r -> r - m)
        match scale with
        | ScaleRewards.None -> centred
        | ScaleRewards.Group -> let s = besselStd g in centred |> Array.map (fun a -> a / (s + stdEpsilon))
        | ScaleRewards.Batch -> centred |> Array.map (fun a -> a / (batchStd.Value + stdEpsilon)))

/// k3 = exp(ref - l) - (ref - l) - 1 >= 0, zero iff l = ref (Schulman's estimator of KL(pi || ref)).
/// docs/design.md §3.
let k3 (refLogProb: float) (logProb: float) : float =
    let d = refLogProb - logProb
    exp d - d - 1.0

/// dk3/dl = 1 - exp(ref - l).
let k3Grad (refLogProb: float) (logProb: float) : float = 1.0 - exp (refLogProb - logProb)

/// Per-token loss -min(rho A, clip(rho, 1 - eps_low, 1 + eps_high) A) + beta k3, rho = exp(l - old).
/// docs/design.md §3.
let tokenLoss (config: GrpoConfig) (advantage: float) (oldLogProb: float) (refLogProb: float) (logProb: float) : float =
    let rho = exp (logProb - oldLogProb)
    let clipped = min (max rho (1.0 - config.EpsLow)) (1.0 + config.EpsHigh)
    let surrogate = -(min (rho * advantage) (clipped * advantage))
    if config.Beta = 0.0 then surrogate else surrogate + config.Beta * k3 refLogProb logProb

/// d tokenLoss / dl = -rho A when the unclipped term is the minimum (A >= 0 and rho <= 1 + eps_high, or
/// A < 0 and rho >= 1 - eps_low), else 0; plus beta dk3/dl. docs/design.md §3; proofs/grpo.md.
let tokenGrad (config: GrpoConfig) (advantage: float) (oldLogProb: float) (refLogProb: float) (logProb: float) : float =
    let rho = exp (logProb - oldLogProb)
    let active =
        if advantage >= 0.0 then rho <= 1.0 + config.EpsHigh else rho >= 1.0 - config.EpsLow
    let surrogate = if active then -rho * advantage else 0.0
    if config.Beta = 0.0 then surrogate else surrogate + config.Beta * k3Grad refLogProb logProb

let private validate (config: GrpoConfig) (batch: GrpoBatch) =
    let b = batch.Advantages.Length
    let sameShape name (x: float[][]) =
        if isNull x || x.Length <> b then invalidArg name (sprintf "expected %d rollouts (one per advantage)" b)
        x |> Array.iteri (fun i (row: float[]) ->
            if row.Length <> batch.NewLogProbs.[i].Length then
                invalidArg name (sprintf "rollout %d has %d tokens, expected %d as in NewLogProbs" i row.Length batch.NewLogProbs.[i].Length))
    sameShape "NewLogProbs" batch.NewLogProbs
    sameShape "OldLogProbs" batch.OldLogProbs
    if config.Beta <> 0.0 then sameShape "RefLogProbs" batch.RefLogProbs
    if batch.NewLogProbs |> Array.exists (fun l -> l.Length = 0) then invalidArg "NewLogProbs" "every completion needs at least one token"
    let tokens = batch.NewLogProbs |> Array.sumBy Array.length
    match config.LossType with
    | LossType.DrGrpo lMax when lMax < (batch.NewLogProbs |> Array.map Array.length |> Array.fold max 1) ->
        invalidArg "config" (sprintf "DrGrpo max_completion_length %d is below a completion's length" lMax)
    | LossType.Dapo total when total < tokens ->
        invalidArg "config" (sprintf "Dapo total token count %d is below this micro-batch's %d tokens" total tokens)
    | _ -> ()

/// Normaliser of rollout i's tokens: grpo 1/(B |y_i|); bnpo 1/(tokens in B); dr_grpo 1/(B L_max);
/// dapo 1/(tokens in the accumulated batch). docs/design.md §3.
let tokenScale (lossType: LossType) (lengths: int[]) (i: int) : float =
    let b = float lengths.Length
    match lossType with
    | LossType.Grpo -> 1.0 / (b * float lengths.[i])
    | LossType.Bnpo -> 1.0 / float (max 1 (Array.sum lengths))
    | LossType.DrGrpo lMax -> 1.0 / (b * float lMax)
    | LossType.Dapo total -> 1.0 / float total

/// The micro-batch loss: sum_{i,t} tokenScale_i * tokenLoss_{i,t}. docs/design.md §3.
let loss (config: GrpoConfig) (batch: GrpoBatch) : float =
    validate config batch
    let lengths = batch.NewLogProbs |> Array.map Array.length
    let refOf i t = if config.Beta = 0.0 then 0.0 else batch.RefLogProbs.[i].[t]
    Array.init lengths.Length (fun i ->
        tokenScale config.LossType lengths i
        * Array.sum (Array.init lengths.[i] (fun t ->
            tokenLoss config batch.Advantages.[i] batch.OldLogProbs.[i].[t] (refOf i t) batch.NewLogProbs.[i].[t])))
    |> Array.sum

/// d loss / d l_{i,t} (new log-probs) = tokenScale_i * tokenGrad_{i,t}. Result: [B][|y_i|]. On-policy with
/// beta = 0 this is -A_i / (B |y_i|), -A_i / T_tokens or -A_i / (B L_max) (docs/design.md §4 G).
let grad (config: GrpoConfig) (batch: GrpoBatch) : float[][] =
    validate config batch
    let lengths = batch.NewLogProbs |> Array.map Array.length
    let refOf i t = if config.Beta = 0.0 then 0.0 else batch.RefLogProbs.[i].[t]
    Array.init lengths.Length (fun i ->
        let s = tokenScale config.LossType lengths i
        Array.init lengths.[i] (fun t ->
            s * tokenGrad config batch.Advantages.[i] batch.OldLogProbs.[i].[t] (refOf i t) batch.NewLogProbs.[i].[t]))
