/// The implicit negative gradient on the real engine (docs/design.md §4 N5): a tiny Qwen2 policy, a tiny
/// vocabulary and completions of a fixed length L, so every completion of one prompt and every group of G
/// rollouts can be enumerated exactly.
module Popo.Tests.Engine.ObjectiveImplicitNegative

open System
open Expecto
open FsCheck
open FsCheck.FSharp
open TorchSharp
open Popo.Engine.Rollout
open Popo.Engine.Model
open Popo.Engine.Objectives
open Popo.Engine.Policy
open Popo.Spec
open Popo.Tests
open Popo.Tests.Engine.ModelFixtures
open Popo.Tests.Engine.ObjectiveFixtures

/// V in 2-4, L in 1-2 (so V^L <= 16 completions), G in 1-3 ((V^L)^G <= 4096 groups), a correct set S that
/// is nonempty and proper (0 < P(correct) < 1), a 1-3 token prompt and a random 1-2 layer model.
type private Case = { Vocab: int; Length: int; GroupSize: int; Prompt: int[]; Correct: Set<int>; Layers: int; Tied: bool; Seed: int }

let private caseWith (vocabs: int list) (lengths: int list) (groups: int * int) =
    gen {
        let! v = Gen.elements vocabs
        let! l = Gen.elements lengths
        let n = pown v l
        let! g = Gen.choose groups
        let! order = Gen.shuffle [| 0 .. n - 1 |]
        let! k = Gen.choose (1, n - 1)
        let! prompt = Gen.choose (1, 3) |> Gen.bind (fun p -> Gen.arrayOfLength p (Gen.choose (0, v - 1)))
        let! layers = Gen.choose (1, 2)
        let! tied = Gen.elements [ true; false ]
        let! seed = Gen.choose (0, 1_000_000)
        return { Vocab = v; Length = l; GroupSize = g; Prompt = prompt; Correct = set order.[.. k - 1]; Layers = layers; Tied = tied; Seed = seed }
    }

let private case = caseWith [ 2; 3; 4 ] [ 1; 2 ] (1, 3)

/// log pi(y) = sum_t l_t of every completion [n], through the engine's completion forward pass.
let private sequenceLogProbs (policy: IPolicy) (batch: GenerationBatch) =
    let out = CompletionForward.Run(policy, batch, torch.arange(int64 batch.Rows))
    let l = TokenStatistics.LogProbs(out.Logits, out.Ids, 1.0)   // [n,L]
    l, l.sum(1L)                                                 // [n]

/// c_y = E[sum_i w_i 1{y_i = y} | at least one success] over ordered groups of G i.i.d. rollouts, with
/// the engine's uniform POPO weights: the sequence-level estimator's expectation is sum_y c_y grad log pi(y).
let private expectedWeights (pi: float[]) (scores: float[]) (lengths: int[]) (rewards: float[]) (groupSize: int) =
    let n = pi.Length
    let options = PopoOptions(Weights = WeightMode.Uniform)
    let c = Array.zeroCreate n
    let mutable mass = 0.0
    for code in 0 .. pown n groupSize - 1 do
        let idx = Array.init groupSize (fun i -> (code / pown n i) % n)
        let r = idx |> Array.map (fun j -> rewards.[j])
        if Array.exists (fun x -> x > 0.0) r then
            let prob = idx |> Array.fold (fun acc j -> acc * pi.[j]) 1.0
            let w = PopoWeights.Compute(idx |> Array.map (fun j -> scores.[j]), idx |> Array.map (fun j -> lengths.[j]), r, groupSize, options)
            Array.iteri2 (fun i j wi -> c.[j] <- c.[j] + prob * wi) idx w
            mass <- mass + prob
    c |> Array.map (fun x -> x / mass)

let private gradients (parameters: Modules.Parameter[]) = parameters |> Array.collect gradValues

let private zeroGradients (parameters: Modules.Parameter[]) =
    for p in parameters do
        match p.grad with
        | null -> ()
        | g -> g.zero_() |> ignore

/// Everything the properties check, for one case.
type private Outcome =
    { /// Expected uniform-weight estimator (engine loss gradient, sequence-level form) [P].
      Estimator: float[]
      /// grad log P(correct) by autograd [P].
      GradLogSuccess: float[]
      /// c_y of the incorrect completions (they never enter the loss).
      IncorrectWeights: float[]
      /// c_y vs pi_y / P_S over the correct completions.
      CorrectWeights: float[] * float[]
      /// P(incorrect) and P(correct) before, after a step of norm 1e-6 along grad log P(correct), and after
      /// the same step backwards.
      Before: float * float
      After: float * float
      Behind: float * float
      /// First-order prediction of the change of P(incorrect): -P_S * eps * |grad log P_S|.
      PredictedChange: float }

let private step = 1e-6

let private run (c: Case) : Outcome =
    use scope = torch.NewDisposeScope()
    let config =
        ModelConfig(VocabSize = c.Vocab, HiddenSize = 8, IntermediateSize = 12, NumHiddenLayers = c.Layers,
                    NumAttentionHeads = 2, NumKeyValueHeads = 1, TieWordEmbeddings = c.Tied, MaxPositionEmbeddings = 16)
    use model = randomModel config c.Seed ScalarType.Float64
    let policy = Qwen2Policy(model)
    let parameters = policy.Parameters |> Seq.toArray
    let ys = Bandit.sequences c.Vocab c.Length
    let rewards = Array.init ys.Length (fun j -> if c.Correct.Contains j then 1.0 else 0.0)
    use batch = batchOf policy c.Prompt ys rewards ys.Length
    let correct = torch.tensor(c.Correct |> Set.toArray |> Array.map int64)
    let masses () =
        use noGrad = torch.no_grad ()
        let _, lp = sequenceLogProbs policy batch
        let p = values lp |> Array.map exp
        let split keep = p |> Array.indexed |> Array.sumBy (fun (j, x) -> if keep j then x else 0.0)
        split (c.Correct.Contains >> not), split c.Correct.Contains

    // grad log P_S by autograd through the model.
    let _, lp = sequenceLogProbs policy batch
    lp.index_select(0L, correct).logsumexp(0L).backward()
    let gradLogSuccess = gradients parameters
    let direction = parameters |> Array.map (fun p -> p.grad.clone())
    zeroGradients parameters

    // The engine's POPO loss with the expected uniform weights c_y (alpha = beta_ent = 0). All completions
    // have length L, so N+ = L * #{y : c_y > 0} is a constant and -N+ dL/dtheta is the sequence-level
    // estimator's expectation sum_y c_y grad log pi(y).
    let l, lp = sequenceLogProbs policy batch
    let logPi = values lp
    let pi = logPi |> Array.map exp
    let scores = logPi |> Array.map (fun x -> x / float c.Length)
    let cy = expectedWeights pi scores (Array.create ys.Length c.Length) rewards c.GroupSize
    let nPlus = float (c.Length * (cy |> Array.filter (fun x -> x > 0.0) |> Array.length))
    use terms =
        PopoLoss.Compute(l, null, batch.CompletionMask, vectorTensor ScalarType.Float64 cy, null, null,
                         PopoOptions(Weights = WeightMode.Uniform, Alpha = 0.0, BetaEntropy = 0.0), 1)
    terms.Total.backward()
    let estimator = gradients parameters |> Array.map (fun g -> -nPlus * g)

    let pS = c.Correct |> Seq.sumBy (fun j -> pi.[j])
    let before = masses ()
    let norm = sqrt (gradLogSuccess |> Array.sumBy (fun g -> g * g))
    let move (by: float) =
        use noGrad = torch.no_grad ()
        Array.iter2 (fun (p: Modules.Parameter) (d: torch.Tensor) -> p.add_(d, alpha = by / norm) |> ignore) parameters direction
    move step
    let after = masses ()
    move (-2.0 * step)
    let behind = masses ()
    { Estimator = estimator
      GradLogSuccess = gradLogSuccess
      IncorrectWeights = cy |> Array.indexed |> Array.filter (fst >> c.Correct.Contains >> not) |> Array.map snd
      CorrectWeights =
        (c.Correct |> Set.toArray |> Array.map (fun j -> cy.[j])), (c.Correct |> Set.toArray |> Array.map (fun j -> pi.[j] / pS))
      Before = before
      After = after
      Behind = behind
      PredictedChange = -(snd before) * step * norm }

let private property name gen body = testProperty name (Prop.forAll (Arb.fromGen gen) body)

/// Rounding floor of a difference of two masses: each is a sum of at most 16 probabilities from float64
/// forward passes, accurate to a few 1e-16.
let private massFloor = 1e-14

/// |second-order term| of the one-sided change, eps^2 |b| / 2, from the three points.
let private curvature (o: Outcome) =
    let neg (m, _) = m
    abs ((neg o.After + neg o.Behind) / 2.0 - neg o.Before)

/// The first-order claim, checked where it is exact to O(eps^2): the central difference of P(incorrect)
/// equals -eps P_S |grad log P_S| to 1e-3 (plus the rounding floor). The one-sided claim (a step of eps
/// lowers P(incorrect) and raises P(correct)) holds only for eps below 2 |a| / |b| (a the first-order rate,
/// b the curvature along the step), so it is required where the measured second-order term is below half
/// the first-order one and the change is above the rounding floor.
let private check (o: Outcome) =
    let negBefore, posBefore = o.Before
    let negAfter, posAfter = o.After
    let negBehind, _ = o.Behind
    let central = (negAfter - negBehind) / 2.0
    let rate = abs (central - o.PredictedChange) <= 1e-3 * abs o.PredictedChange + massFloor
    let firstOrder = curvature o < abs o.PredictedChange / 2.0 && abs o.PredictedChange > 10.0 * massFloor
    rate && (not firstOrder || (negAfter < negBefore && posAfter > posBefore))

[<Tests>]
let tests =
    testList "engine/objectives/implicit-negative" [
        property "given a success, the expected uniform-weight POPO gradient equals grad log P(correct) (N5), and no incorrect completion enters the loss" case <|
            fun c ->
                let o = run c
                let expected, exact = o.CorrectWeights
                let ok =
                    o.IncorrectWeights |> Array.forall ((=) 0.0)
                    && allClose Accuracy.engine64 expected exact
                    && allClose Accuracy.engine64 o.Estimator o.GradLogSuccess
                ok
                |> Prop.classify (c.GroupSize = 1) "G = 1"
                |> Prop.classify (c.GroupSize = 3) "G = 3"

        property "along it P(incorrect) falls at rate P(correct) |grad log P(correct)|, and a step in the first-order regime lowers P(incorrect) and raises P(correct)" case <|
            fun c ->
                let o = run c
                check o |> Prop.classify (curvature o >= abs o.PredictedChange / 2.0) "step beyond the first-order regime"

    ]
