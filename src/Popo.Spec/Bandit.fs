/// Exact tabular-softmax policies over a small vocabulary V and a fixed completion length L (docs/design.md §4 N4,
/// N5 and the per-prompt gradient scale). Every prefix h (length 0 .. L-1) has its own logits, so the
/// parameters are one flat vector theta [P], P = V * (1 + V + ... + V^(L-1)), with the logits of prefix h
/// at theta[h V .. h V + V - 1]. Expectations over groups of G sampled sequences are computed by
/// enumerating all (V^L)^G groups, so estimator bias is decided exactly (keep (V^L)^G small).
module Popo.Spec.Bandit

open MathNet.Numerics.LinearAlgebra

/// A tabular policy pi(y) = prod_t softmax(theta_{h_t})[y_t] at temperature 1.
type Tabular =
    { Vocab: int
      Length: int
      Theta: Vector<float> }

/// Number of prefixes of length 0 .. L-1 over V tokens: 1 + V + ... + V^(L-1).
let prefixCount (vocab: int) (length: int) : int = Seq.sum (seq { for t in 0 .. length - 1 -> pown vocab t })

/// Builds a policy, checking that theta has V * prefixCount V L entries. V >= 2, L >= 1.
let create (vocab: int) (length: int) (theta: Vector<float>) : Tabular =
    if vocab < 2 then invalidArg "vocab" (sprintf "vocabulary must have at least 2 tokens, got %d" vocab)
    if length < 1 then invalidArg "length" (sprintf "length must be >= 1, got %d" length)
    let p = vocab * prefixCount vocab length
    if theta.Count <> p then invalidArg "theta" (sprintf "expected %d parameters for V = %d, L = %d, got %d" p vocab length theta.Count)
    { Vocab = vocab; Length = length; Theta = theta }

/// Index of a prefix (tokens y_0 .. y_{t-1}): prefixCount V t + (its base-V value).
let prefixIndex (vocab: int) (prefix: int[]) : int =
    prefixCount vocab prefix.Length + Array.fold (fun acc y -> acc * vocab + y) 0 prefix

/// Logits [V] of prefix index h.
let logitsAt (policy: Tabular) (h: int) : Vector<float> = policy.Theta.SubVector(h * policy.Vocab, policy.Vocab)

/// All V^L sequences in lexicographic order. Result: [V^L][L].
let sequences (vocab: int) (length: int) : int[][] =
    Array.init (pown vocab length) (fun n ->
        Array.init length (fun t -> (n / pown vocab (length - 1 - t)) % vocab))

/// Token log-probs l_t = log softmax(theta_{h_t})[y_t] of sequence y [L]. Result: [L].
let tokenLogProbs (policy: Tabular) (y: int[]) : float[] =
    Array.init y.Length (fun t -> (Softmax.logSoftmaxT 1.0 (logitsAt policy (prefixIndex policy.Vocab y.[.. t - 1]))).[y.[t]])

/// log pi(y) = sum_t l_t.
let logProb (policy: Tabular) (y: int[]) : float = Array.sum (tokenLogProbs policy y)

/// grad_theta log pi(y) = sum_t (e_{y_t} - p_{h_t}) placed at prefix h_t. Result: [P].
let gradLogProb (policy: Tabular) (y: int[]) : Vector<float> =
    let v = policy.Vocab
    let perToken =
        Array.init y.Length (fun t ->
            let h = prefixIndex v y.[.. t - 1]
            h, Softmax.gradLogProbT 1.0 (logitsAt policy h) y.[t])
    Vector<float>.Build.Dense(policy.Theta.Count, fun j ->
        perToken |> Array.sumBy (fun (h, d) -> if h = j / v then d.[j % v] else 0.0))

/// P_S = sum_{y in S} pi(y) for the correct set S = { y : correct y }.
let successProbability (policy: Tabular) (correct: int[] -> bool) : float =
    sequences policy.Vocab policy.Length |> Array.filter correct |> Array.sumBy (fun y -> exp (logProb policy y))

/// The bandit identity's left side: sum_{y in S} (pi_y / P_S) grad log pi_y, which equals grad log P_S
/// (docs/design.md §4 N5). Needs P_S > 0. Result: [P].
let gradLogSuccess (policy: Tabular) (correct: int[] -> bool) : Vector<float> =
    let s = sequences policy.Vocab policy.Length |> Array.filter correct
    let pS = s |> Array.sumBy (fun y -> exp (logProb policy y))
    if pS = 0.0 then invalidArg "correct" "no correct sequence: grad log P_S is undefined"
    s |> Array.fold (fun (acc: Vector<float>) y -> acc + (exp (logProb policy y) / pS) * gradLogProb policy y) (Vector<float>.Build.Dense policy.Theta.Count)

/// One sampled group: sequences [G][L], their token log-probs [G][L], rewards [G] (1 correct, 0 not)
/// and grad log pi of each sequence [G] of [P].
type SampledGroup =
    { Sequences: int[][]
      TokenLogProbs: float[][]
      Rewards: float[]
      GradLogProbs: Vector<float>[] }

/// Which groups an expectation averages over.
[<RequireQualifiedAccess>]
type Condition =
    | Always
    /// Groups with at least one correct sequence (the only ones POPO learns from).
    | AtLeastOneSuccess

/// E[estimator(group)] over G i.i.d. sequences from pi, by enumerating all (V^L)^G ordered groups
/// (optionally conditioned on at least one success). Result: [P].
let expectation (policy: Tabular) (correct: int[] -> bool) (groupSize: int) (condition: Condition) (estimator: SampledGroup -> Vector<float>) : Vector<float> =
    if groupSize < 1 then invalidArg "groupSize" (sprintf "group size must be >= 1, got %d" groupSize)
    let ys = sequences policy.Vocab policy.Length
    let n = ys.Length
    let lps = ys |> Array.map (tokenLogProbs policy)
    let probs = lps |> Array.map (Array.sum >> exp)
    let grads = ys |> Array.map (gradLogProb policy)
    let rewards = ys |> Array.map (fun y -> if correct y then 1.0 else 0.0)
    let groups =
        seq { 0 .. pown n groupSize - 1 }
        |> Seq.map (fun code -> Array.init groupSize (fun i -> (code / pown n i) % n))
        |> Seq.filter (fun idx -> condition = Condition.Always || idx |> Array.exists (fun j -> rewards.[j] > 0.0))
    let total, mass =
        groups
        |> Seq.fold (fun (acc: Vector<float>, mass) idx ->
            let prob = idx |> Array.fold (fun acc j -> acc * probs.[j]) 1.0
            let group =
                { Sequences = idx |> Array.map (fun j -> ys.[j])
                  TokenLogProbs = idx |> Array.map (fun j -> lps.[j])
                  Rewards = idx |> Array.map (fun j -> rewards.[j])
                  GradLogProbs = idx |> Array.map (fun j -> grads.[j]) }
            acc + prob * estimator group, mass + prob) (Vector<float>.Build.Dense policy.Theta.Count, 0.0)
    if mass = 0.0 then invalidArg "correct" "the conditioning event has probability 0"
    total / mass

/// Sequence-level weighted estimator sum_i w_i grad log pi(y_i) with w = Weights.groupWeights config
/// (weights sum to 1 over sampled positives; no token-count normaliser). docs/design.md §4 N5.
let weightedEstimator (config: Weights.WeightConfig) (group: SampledGroup) : Vector<float> =
    let w = Weights.groupWeights config group.Rewards group.TokenLogProbs
    Array.fold2 (fun (acc: Vector<float>) wi g -> if wi <> 0.0 then acc + wi * g else acc) (Vector<float>.Build.Dense group.GradLogProbs.[0].Count) w group.GradLogProbs

/// POPO's token-level NLL ascent direction: -dL_nll/dtheta = (1/N+) sum_i w_i sum_t grad l_{i,t}
/// = (1/N+) sum_i w_i grad log pi(y_i), with N+ the positive token count (docs/design.md §2.3).
let tokenLevelEstimator (config: Weights.WeightConfig) (group: SampledGroup) : Vector<float> =
    let w = Weights.groupWeights config group.Rewards group.TokenLogProbs
    weightedEstimator config group / float (PopoObjective.positiveTokenCount w group.TokenLogProbs)

/// REINFORCE (1/G) sum_i r_i grad log pi(y_i).
let reinforceEstimator (group: SampledGroup) : Vector<float> =
    Array.fold2 (fun (acc: Vector<float>) r g -> acc + r * g) (Vector<float>.Build.Dense group.GradLogProbs.[0].Count) group.Rewards group.GradLogProbs
    / float group.Rewards.Length

/// GRPO (1/G) sum_i A_i grad log pi(y_i) with group-scaled advantages (Grpo.advantages, G >= 2).
let grpoEstimator (group: SampledGroup) : Vector<float> =
    let a = Grpo.advantages Grpo.ScaleRewards.Group group.Rewards.Length group.Rewards
    Array.fold2 (fun (acc: Vector<float>) ai g -> acc + ai * g) (Vector<float>.Build.Dense group.GradLogProbs.[0].Count) a group.GradLogProbs
    / float group.Rewards.Length

/// A pass rate from enumeration may exceed 1 by rounding; accept (0, 1 + 1e-9] and clamp to (0, 1].
let private passRate (p: float) =
    if not (p > 0.0 && p <= 1.0 + 1e-9) then invalidArg "p" (sprintf "pass rate must lie in (0, 1], got %g" p)
    min p 1.0

let private binomial (n: int) (k: int) (p: float) = MathNet.Numerics.Distributions.Binomial.PMF(min 1.0 (max 0.0 p), n, k)

/// (1 - (1 - p)^G) / p = sum_{j < G} (1 - p)^j: a sum of positive terms, accurate for tiny p where
/// 1 - (1 - p)^G would cancel.
let private atLeastOneOverP (groupSize: int) (p: float) = Seq.sum (seq { for j in 0 .. groupSize - 1 -> pown (1.0 - p) j })

/// Gradient scale of GRPO per prompt at pass rate p: E[grpoEstimator] = c(G, p) grad p with
/// c = E[A_i | r_i = 1] - E[A_i | r_i = 0], the other G-1 rewards Binomial(G-1, p). G >= 2.
/// It tends to 1/sqrt(p (1 - p)) as G grows. Derivation in proofs/gradient-scale.md.
let grpoScale (groupSize: int) (p: float) : float =
    if groupSize < 2 then invalidArg "groupSize" "GRPO's Bessel std needs G >= 2"
    let g = float groupSize
    let adv (r: float) (k: int) =
        let s = r + float k
        let mean = s / g
        let std = sqrt (s * (g - s) / (g * (g - 1.0)))
        (r - mean) / (std + Grpo.stdEpsilon)
    Seq.sum (seq { for k in 0 .. groupSize - 1 -> binomial (groupSize - 1) k p * (adv 1.0 k - adv 0.0 k) })

/// Gradient scale of POPO's sequence-level uniform estimator per prompt: E[sum_i w_i grad log pi] =
/// c(G, p) grad p with c = (1 - (1 - p)^G) / p (groups without a positive contribute 0); it tends to 1/p.
let popoScale (groupSize: int) (p: float) : float =
    let p = passRate p
    atLeastOneOverP groupSize p

/// Gradient scale of REINFORCE per prompt: E[(1/G) sum_i r_i grad log pi] = 1 * grad p.
let reinforceScale (_groupSize: int) (_p: float) : float = 1.0

/// POPO's NLL gradient with respect to theta for one sampled group: dL_nll/dtheta = sum over (i, t) of
/// (w_i / N+)(p_{h_{i,t}} - e_{y_{i,t}}) placed at prefix h_{i,t} (docs/design.md §4 N4). Result: [P].
let nllThetaGrad (policy: Tabular) (weights: float[]) (ys: int[][]) : Vector<float> =
    let lps = ys |> Array.map (tokenLogProbs policy)
    let dl = PopoObjective.nllGrad weights lps
    Array.fold2 (fun (acc: Vector<float>) (d: float[]) y -> if d.[0] <> 0.0 then acc + d.[0] * gradLogProb policy y else acc)
        (Vector<float>.Build.Dense policy.Theta.Count) dl ys

/// Factor of POPO's token-level uniform estimator when every completion has length L: given at least one
/// success, E[tokenLevelEstimator] = E[1 / N+ | m >= 1] grad log P_S with N+ = m L and m ~ Binomial(G, p):
/// the direction is unbiased, the size is not 1. Derivation in proofs/bandit-identity.md.
let tokenLevelScale (groupSize: int) (length: int) (p: float) : float =
    let p = passRate p
    let total = Seq.sum (seq { for m in 1 .. groupSize -> binomial groupSize m p / float (m * length) })
    total / (p * atLeastOneOverP groupSize p)
