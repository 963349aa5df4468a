/// POPO's bounded importance weights over the positive set S+ of one prompt group ("Eq. 8", docs/design.md §2.2).
/// A group is G rollouts: rewards [G] and ragged token log-probs [G][|y_i|] (completion tokens only).
/// Weights are computed in the log domain so that scores far apart never underflow to 0/0.
module Popo.Spec.Weights

/// How weights are spread over S+: softmax of s_i / T_w (authors' code, the default) or 1/|S+|.
[<RequireQualifiedAccess>]
type WeightMode =
    | Softmax
    | Uniform

/// Weight options (docs/design.md §2.2): mode, temperature T_w (softmax only), length normalisation
/// (w_i /= |y_i|, renormalise) and an optional cap c applied last by water-filling.
type WeightConfig =
    { Mode: WeightMode
      Temperature: float
      LengthNormalize: bool
      Cap: float option }

    /// Softmax weights, T_w = 1, no length normalisation, no cap: the authors' default.
    static member Default =
        { Mode = WeightMode.Softmax; Temperature = 1.0; LengthNormalize = false; Cap = None }

    /// For C# callers: the cap as a Nullable (null = no cap).
    static member Create(mode: WeightMode, temperature: float, lengthNormalize: bool, cap: System.Nullable<float>) =
        { Mode = mode; Temperature = temperature; LengthNormalize = lengthNormalize; Cap = Option.ofNullable cap }

/// r_i > tau_r with tau_r = 0: the verifier's reward marks rollout i positive. docs/design.md §2 notation.
let isPositive (reward: float) : bool =
    if System.Double.IsNaN reward then invalidArg "reward" "reward is NaN"
    reward > 0.0

/// Checks one completion's token log-probs: at least one token, all finite.
let validateCompletion (tokenLogProbs: float[]) : unit =
    if isNull tokenLogProbs || tokenLogProbs.Length = 0 then
        invalidArg "tokenLogProbs" "a completion needs at least one token"
    match tokenLogProbs |> Array.tryFindIndex (fun v -> System.Double.IsNaN v || System.Double.IsInfinity v) with
    | Some t -> invalidArg "tokenLogProbs" (sprintf "token log-prob %d is %g; expected a finite value" t tokenLogProbs.[t])
    | None -> ()

/// Sequence score s_i = (1/|y_i|) sum_t l_{i,t} (length-normalised log-prob). l: [|y_i|], |y_i| >= 1.
/// docs/design.md §2.2.
let sequenceScore (tokenLogProbs: float[]) : float =
    validateCompletion tokenLogProbs
    Array.average tokenLogProbs

let private logSumExp (xs: float[]) =
    let m = Array.max xs
    m + log (xs |> Array.sumBy (fun x -> exp (x - m)))

/// Water-filling in the log domain: log-weights [m] summing (in exp) to 1 -> weights [m] with none above
/// c. Capped entries get c; the others keep their ratios and share 1 - (#capped) c; repeat until none
/// exceeds c. When m c < 1 every entry gets c. docs/design.md §2.2 (explicit cap).
let private waterFillLog (cap: float) (logWeights: float[]) : float[] =
    let m = logWeights.Length
    if float m * cap < 1.0 then Array.create m cap
    else
        let rec fill (capped: Set<int>) =
            let budget = 1.0 - cap * float capped.Count
            let lse = logSumExp [| for i in 0 .. m - 1 do if not (capped.Contains i) then yield logWeights.[i] |]
            let w = Array.init m (fun i -> if capped.Contains i then cap else budget * exp (logWeights.[i] - lse))
            let over = set [ for i in 0 .. m - 1 do if not (capped.Contains i) && w.[i] > cap then yield i ]
            if over.IsEmpty then w else fill (Set.union capped over)
        fill Set.empty

/// Cap c > 0 by water-filling over the support of w (entries > 0, summing to 1): entries above c are
/// set to c, the rest rescaled in proportion so the total stays 1, repeated until none exceeds c; when
/// |support| c < 1 every support entry gets c and the total is |support| c. Zero entries stay zero.
/// w: [n]; result: [n]. docs/design.md §2.2.
let waterFill (cap: float) (weights: float[]) : float[] =
    if not (cap > 0.0) then invalidArg "cap" (sprintf "cap must be > 0, got %g" cap)
    let support = [| for i in 0 .. weights.Length - 1 do if weights.[i] > 0.0 then yield i |]
    if support.Length = 0 then Array.zeroCreate weights.Length
    else
        let filled = Array.zip support (waterFillLog cap (support |> Array.map (fun i -> log weights.[i]))) |> Map.ofArray
        Array.init weights.Length (fun i -> filled |> Map.tryFind i |> Option.defaultValue 0.0)

/// POPO weights of one group: w_i = 0 off S+; on S+ w_i = softmax_{S+}(s_i / T_w) (Softmax) or 1/|S+|
/// (Uniform); if LengthNormalize, w_i <- (w_i / |y_i|) / sum_j (w_j / |y_j|); then the cap, if any, by
/// water-filling. A group with no positive gets all zeros. rewards: [G]; tokenLogProbs: [G][|y_i|];
/// result: [G]. docs/design.md §2.2 ("Eq. 8", authors' implementation).
let groupWeights (config: WeightConfig) (rewards: float[]) (tokenLogProbs: float[][]) : float[] =
    if rewards.Length <> tokenLogProbs.Length then
        invalidArg "tokenLogProbs" (sprintf "expected one completion per reward: %d rewards, %d completions" rewards.Length tokenLogProbs.Length)
    if config.Mode = WeightMode.Softmax && not (config.Temperature > 0.0) then
        invalidArg "config" (sprintf "Temperature must be > 0, got %g" config.Temperature)
    tokenLogProbs |> Array.iter validateCompletion
    let positives = [| for i in 0 .. rewards.Length - 1 do if isPositive rewards.[i] then yield i |]
    if positives.Length = 0 then Array.zeroCreate rewards.Length
    else
        let raw =
            match config.Mode with
            | WeightMode.Softmax -> positives |> Array.map (fun i -> sequenceScore tokenLogProbs.[i] / config.Temperature)
            | WeightMode.Uniform -> Array.zeroCreate positives.Length
        let lengthAdjusted =
            if config.LengthNormalize then Array.map2 (fun v i -> v - log (float tokenLogProbs.[i].Length)) raw positives
            else raw
        let lse = logSumExp lengthAdjusted
        let logW = lengthAdjusted |> Array.map (fun v -> v - lse)
        let w =
            match config.Cap with
            | Some c when not (c > 0.0) -> invalidArg "config" (sprintf "Cap must be > 0, got %g" c)
            | Some c -> waterFillLog c logW
            | None -> logW |> Array.map exp
        let byIndex = Array.zip positives w |> Map.ofArray
        Array.init rewards.Length (fun i -> byIndex |> Map.tryFind i |> Option.defaultValue 0.0)

/// Weights of a generation batch laid out as consecutive groups of groupSize rollouts (TRL's layout):
/// the concatenation of groupWeights over each group. rewards: [n G]; tokenLogProbs: [n G][|y_i|].
let batchWeights (config: WeightConfig) (groupSize: int) (rewards: float[]) (tokenLogProbs: float[][]) : float[] =
    if groupSize < 1 || rewards.Length % groupSize <> 0 then
        invalidArg "groupSize" (sprintf "batch of %d rollouts is not a whole number of groups of %d" rewards.Length groupSize)
    Array.init (rewards.Length / groupSize) (fun g ->
        groupWeights config rewards.[g * groupSize .. (g + 1) * groupSize - 1] tokenLogProbs.[g * groupSize .. (g + 1) * groupSize - 1])
    |> Array.concat
