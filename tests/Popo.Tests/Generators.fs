/// Domain generators for the spec properties: valid, varied inputs with no `==>` filters.
/// Group sizes 1-16, completion lengths 1-32, vocabularies 2-64, token probabilities near 0 and near 1,
/// all-positive, all-negative and single-positive groups. Coverage is checked in Spec/Coverage.fs.
module Popo.Tests.Generators

open FsCheck
open FsCheck.FSharp
open MathNet.Numerics.LinearAlgebra
open Popo.Spec

/// Uniform float in [a, b] on a fine grid.
let uniform (a: float) (b: float) : Gen<float> =
    Gen.choose (0, 1_000_000) |> Gen.map (fun k -> a + (b - a) * float k / 1e6)

/// Approximately standard normal (Box-Muller on two grid uniforms kept away from 0).
let normal : Gen<float> =
    gen {
        let! u1 = uniform 1e-6 1.0
        let! u2 = uniform 0.0 1.0
        return sqrt (-2.0 * log u1) * cos (2.0 * System.Math.PI * u2)
    }

let vectorOf (n: int) (g: Gen<float>) : Gen<Vector<float>> =
    Gen.arrayOfLength n g |> Gen.map (fun a -> Vector<float>.Build.DenseOfArray a)

/// Logits of a vocabulary of 2-64 tokens in one of four shapes: flat (all near 0), spread (normal x 3),
/// peaked (one token 15-40 above the rest: its probability is near 1, the others near 0), and tailed
/// (some logits 20-40 below the rest: probabilities near 0).
let logitsOfSize (v: int) : Gen<Vector<float>> =
    Gen.oneof [
        vectorOf v (uniform -0.1 0.1)
        vectorOf v (normal |> Gen.map ((*) 3.0))
        gen {
            let! z = vectorOf v normal
            let! k = Gen.choose (0, v - 1)
            let! lift = uniform 15.0 40.0
            return z.MapIndexed(fun i x -> if i = k then x + lift else x)
        }
        gen {
            let! z = vectorOf v normal
            let! drops = Gen.arrayOfLength v (Gen.frequency [ 2, Gen.constant 0.0; 1, uniform 20.0 40.0 ])
            return z.MapIndexed(fun i x -> x - drops.[i])
        }
    ]

let vocabSize : Gen<int> = Gen.frequency [ 1, Gen.constant 2; 3, Gen.choose (2, 16); 1, Gen.choose (17, 64) ]

/// Logits over a vocabulary of 2-64 tokens.
type Logits = Logits of Vector<float>

let logits : Gen<Logits> = vocabSize |> Gen.bind logitsOfSize |> Gen.map Logits

/// A sampling temperature in [0.25, 4].
let temperature : Gen<float> = Gen.oneof [ Gen.constant 1.0; uniform 0.25 4.0 ]

/// Logits with one target token (docs/design.md §4 N1).
type TargetLogits = { Z: Vector<float>; Target: int }

let targetLogits : Gen<TargetLogits> =
    gen {
        let! (Logits z) = logits
        let! i = Gen.choose (0, z.Count - 1)
        return { Z = z; Target = i }
    }

/// Logits with a target set S, nonempty and proper (so 0 < P_S < 1) (docs/design.md §4 N3).
type TargetSetLogits = { Z: Vector<float>; Targets: int[] }

let targetSetLogits : Gen<TargetSetLogits> =
    gen {
        let! (Logits z) = logits
        let! order = Gen.shuffle [| 0 .. z.Count - 1 |]
        let! k = Gen.choose (1, z.Count - 1)
        return { Z = z; Targets = Array.sort order.[.. k - 1] }
    }

/// A positive step size eta, from tiny to large.
let stepSize : Gen<float> = Gen.oneof [ uniform 1e-4 0.1; uniform 0.1 2.0; uniform 2.0 50.0 ]

/// One token log-prob: probability near 1 (l in [-1e-3, -1e-12]), moderate (l in [-5, -0.01]) or near 0
/// (l in [-60, -15]).
let tokenLogProb : Gen<float> =
    Gen.frequency [
        1, uniform 3.0 12.0 |> Gen.map (fun e -> -(10.0 ** -e))
        3, uniform -5.0 -0.01
        1, uniform -60.0 -15.0
    ]

let completionLength : Gen<int> = Gen.frequency [ 1, Gen.constant 1; 4, Gen.choose (1, 32); 1, Gen.constant 32 ]

let completion : Gen<float[]> = completionLength |> Gen.bind (fun n -> Gen.arrayOfLength n tokenLogProb)

/// Reward patterns of a group.
type RewardPattern =
    | AllPositive
    | AllNegative
    | SinglePositive
    | Mixed

let rewardsFor (g: int) (pattern: RewardPattern) : Gen<float[]> =
    match pattern with
    | AllPositive -> Gen.constant (Array.create g 1.0)
    | AllNegative -> Gen.constant (Array.create g 0.0)
    | SinglePositive -> Gen.choose (0, g - 1) |> Gen.map (fun k -> Array.init g (fun i -> if i = k then 1.0 else 0.0))
    | Mixed -> Gen.arrayOfLength g (Gen.elements [ 0.0; 1.0 ])

let groupSize : Gen<int> = Gen.frequency [ 1, Gen.constant 1; 4, Gen.choose (1, 16); 1, Gen.constant 16 ]

/// One prompt group: rewards [G] in {0, 1} and token log-probs [G][1..32].
type Group = { Rewards: float[]; TokenLogProbs: float[][] }

let groupWith (sizes: Gen<int>) (patterns: RewardPattern list) : Gen<Group> =
    gen {
        let! g = sizes
        let! pattern = Gen.elements patterns
        let! rewards = rewardsFor g pattern
        let! lps = Gen.arrayOfLength g completion
        return { Rewards = rewards; TokenLogProbs = lps }
    }

let group : Gen<Group> = groupWith groupSize [ AllPositive; AllNegative; SinglePositive; Mixed; Mixed ]

/// A group with at least one positive.
type PositiveGroup = PositiveGroup of Group

let positiveGroup : Gen<PositiveGroup> =
    gen {
        let! g = groupWith groupSize [ AllPositive; SinglePositive; Mixed ]
        // A Mixed group may draw no positive: make its first rollout positive.
        let rewards = if Array.exists (fun r -> r > 0.0) g.Rewards then g.Rewards else Array.mapi (fun i r -> if i = 0 then 1.0 else r) g.Rewards
        return PositiveGroup { g with Rewards = rewards }
    }

let positiveCount (g: Group) = g.Rewards |> Array.filter (fun r -> r > 0.0) |> Array.length

/// Weight options: every mode, with or without length normalisation, and caps below and above 1/|S+|.
let weightConfig : Gen<Weights.WeightConfig> =
    gen {
        let! mode = Gen.elements [ Weights.WeightMode.Softmax; Weights.WeightMode.Uniform ]
        let! t = temperature
        let! lengthNormalize = Gen.elements [ false; true ]
        let! cap = Gen.frequency [ 2, Gen.constant None; 1, uniform 0.05 1.2 |> Gen.map Some ]
        return { Weights.WeightConfig.Mode = mode; Temperature = t; LengthNormalize = lengthNormalize; Cap = cap }
    }

/// A cap c in [0.02, 1.2].
let cap : Gen<float> = Gen.oneof [ uniform 0.02 0.3; uniform 0.3 1.2 ]

/// A micro-batch for the POPO objective: logits [n][len] of [V] with sampled tokens, token log-probs
/// derived from them at temperature T, rewards and their weights, predictor outputs and noisy targets.
type PopoCase =
    { Config: PopoObjective.PopoConfig
      Inputs: PopoObjective.PopoInputs
      Tokens: int[][]
      Rewards: float[] }

let popoCaseWith (maxRollouts: int) (maxLength: int) : Gen<PopoCase> =
    gen {
        let! n = Gen.choose (1, maxRollouts)
        let! v = Gen.frequency [ 1, Gen.constant 2; 3, Gen.choose (2, 12) ]
        let! d = Gen.choose (1, 8)
        let! t = temperature
        let! pattern = Gen.elements [ AllPositive; AllNegative; SinglePositive; Mixed ]
        let! rewards = rewardsFor n pattern
        let! lengths = Gen.arrayOfLength n (Gen.choose (1, maxLength))
        let! logits = lengths |> Array.map (fun len -> Gen.arrayOfLength len (logitsOfSize v)) |> Gen.sequenceToArray
        let! tokens = lengths |> Array.map (fun len -> Gen.arrayOfLength len (Gen.choose (0, v - 1))) |> Gen.sequenceToArray
        let! wc = weightConfig
        let! u = Gen.arrayOfLength n (vectorOf d normal)
        let! z = Gen.arrayOfLength n (vectorOf d normal)
        let! alpha = Gen.elements [ 0.0; 0.1; 1.0 ]
        let! beta = Gen.elements [ 0.0; 0.01; 0.5 ]
        let! k = Gen.choose (1, 4)
        let! scope = Gen.elements [ PopoObjective.EntropyScope.All; PopoObjective.EntropyScope.Positive ]
        // Zero vectors have no cosine; a normal draw of all zeros is impossible on this grid but guard anyway.
        let nonzero (x: Vector<float>) = if x.L2Norm() = 0.0 then x.Map(fun _ -> 1.0) else x
        let lps = Array.map2 (Softmax.tokenLogProbs t) logits tokens
        let weights = Weights.groupWeights wc rewards lps
        return
            { Config = { Alpha = alpha; BetaEnt = beta; GradAccumSteps = k; Temperature = t; EntropyScope = scope }
              Inputs =
                { TokenLogProbs = lps
                  Weights = weights
                  Predictor = Matrix<float>.Build.DenseOfRowVectors(u |> Array.map nonzero)
                  Target = Matrix<float>.Build.DenseOfRowVectors(z |> Array.map nonzero)
                  Logits = logits }
              Tokens = tokens
              Rewards = rewards }
    }

/// Micro-batches of 1-8 rollouts of 1-6 tokens (small, for finite differences).
let popoCase : Gen<PopoCase> = popoCaseWith 8 6

/// Where a token's ratio rho = exp(l - old) lies relative to the clip range, kept 0.02 away from the
/// kinks so that finite differences never straddle one.
type RatioRegion =
    | Below
    | Inside
    | Above

let logRatioIn (epsLow: float) (epsHigh: float) (region: RatioRegion) : Gen<float> =
    match region with
    | Below -> uniform (max 0.01 (1.0 - epsLow - 0.5)) (1.0 - epsLow - 0.02) |> Gen.map log
    | Inside -> Gen.oneof [ Gen.constant 1.0; uniform (1.0 - epsLow + 0.02) (1.0 + epsHigh - 0.02) ] |> Gen.map log
    | Above -> uniform (1.0 + epsHigh + 0.02) (1.0 + epsHigh + 1.0) |> Gen.map log

let lossType (lengths: int[]) : Gen<Grpo.LossType> =
    let tokens = Array.sum lengths
    Gen.oneof [
        Gen.constant Grpo.LossType.Grpo
        Gen.constant Grpo.LossType.Bnpo
        Gen.choose (Array.max lengths, 2 * Array.max lengths + 3) |> Gen.map Grpo.LossType.DrGrpo
        Gen.choose (tokens, 3 * tokens) |> Gen.map Grpo.LossType.Dapo
    ]

/// A GRPO micro-batch with off-policy ratios in all three clip regions, a reference policy and beta >= 0.
type GrpoCase =
    { Config: Grpo.GrpoConfig
      Batch: Grpo.GrpoBatch }

let grpoCaseWith (onPolicy: bool) (lossTypes: int[] -> Gen<Grpo.LossType>) : Gen<GrpoCase> =
    gen {
        let! b = Gen.choose (1, 8)
        let! lengths = Gen.arrayOfLength b (Gen.frequency [ 3, Gen.choose (1, 8); 1, Gen.choose (1, 32) ])
        let! epsLow = Gen.elements [ 0.2; 0.1; 0.3 ]
        let! epsHigh = Gen.elements [ 0.2; 0.28; 0.4 ]
        let! beta = if onPolicy then Gen.constant 0.0 else Gen.elements [ 0.0; 0.04; 0.5 ]
        let! lt = lossTypes lengths
        let! adv = Gen.arrayOfLength b (Gen.oneof [ uniform -2.0 2.0; Gen.constant 0.0; Gen.elements [ -1.5; 0.5 ] ])
        let! old = lengths |> Array.map (fun n -> Gen.arrayOfLength n (uniform -6.0 -0.01)) |> Gen.sequenceToArray
        let! regions = lengths |> Array.map (fun n -> Gen.arrayOfLength n (Gen.elements [ Below; Inside; Above ])) |> Gen.sequenceToArray
        let! ratios =
            regions |> Array.map (fun rs -> rs |> Array.map (logRatioIn epsLow epsHigh) |> Gen.sequenceToArray) |> Gen.sequenceToArray
        let! refShift = lengths |> Array.map (fun n -> Gen.arrayOfLength n (uniform -1.0 1.0)) |> Gen.sequenceToArray
        let newLp = if onPolicy then old else Array.map2 (Array.map2 (+)) old ratios
        return
            { Config = { EpsLow = epsLow; EpsHigh = epsHigh; Beta = beta; LossType = lt }
              Batch =
                { NewLogProbs = newLp
                  OldLogProbs = old
                  RefLogProbs = Array.map2 (Array.map2 (+)) newLp refShift
                  Advantages = adv } }
    }

/// Off-policy GRPO micro-batches with any aggregation.
let grpoCase : Gen<GrpoCase> = grpoCaseWith false lossType

/// Rewards of a batch of groups for the advantage properties: G in 2-16, 1-4 groups, binary or graded.
type RewardBatch = { GroupSize: int; Rewards: float[] }

let rewardBatch : Gen<RewardBatch> =
    gen {
        let! g = Gen.frequency [ 1, Gen.constant 2; 4, Gen.choose (2, 16); 1, Gen.constant 16 ]
        let! n = Gen.choose (1, 4)
        let! groups =
            Gen.arrayOfLength n (
                Gen.oneof [
                    Gen.elements [ AllPositive; AllNegative; SinglePositive; Mixed; Mixed ] |> Gen.bind (rewardsFor g)
                    Gen.arrayOfLength g (uniform 0.0 1.0)
                ])
        return { GroupSize = g; Rewards = Array.concat groups }
    }

/// A small tabular policy with a correct set S (nonempty) for exact enumeration: V in 2-4, L in 1-3,
/// G in 1-4 with (V^L)^G <= 4096, logits normal x 1.5 with occasional large ones.
type BanditCase =
    { Policy: Bandit.Tabular
      Correct: Set<int[]>
      GroupSize: int }

let banditCaseWith (minGroup: int) : Gen<BanditCase> =
    gen {
        let! v = Gen.elements [ 2; 3; 4 ]
        let! l = Gen.elements [ 1; 2; 3 ]
        let n = pown v l
        let maxG = [ 1 .. 4 ] |> List.filter (fun g -> pown n g <= 4096) |> List.max
        let! g = Gen.choose (minGroup, max minGroup maxG)
        let p = v * Bandit.prefixCount v l
        let! theta = vectorOf p (Gen.frequency [ 4, normal |> Gen.map ((*) 1.5); 1, uniform -6.0 6.0 ])
        let all = Bandit.sequences v l
        let! order = Gen.shuffle all
        let! k = Gen.choose (1, n)
        return { Policy = Bandit.create v l theta; Correct = set order.[.. k - 1]; GroupSize = g }
    }

let banditCase : Gen<BanditCase> = banditCaseWith 1

/// Bandit cases whose groups have at least 2 rollouts (so several positives can be sampled).
let banditCaseMulti : Gen<BanditCase> = banditCaseWith 2

/// A parameter trajectory for the EMA: P in 1-6 coordinates, t in 0-40 steps.
type Trajectory = { Tau: float; Thetas: Vector<float> list }

let trajectory : Gen<Trajectory> =
    gen {
        let! p = Gen.choose (1, 6)
        let! t = Gen.choose (0, 40)
        let! tau = Gen.frequency [ 1, Gen.constant 0.0; 1, Gen.constant 1.0; 1, Gen.constant 0.995; 4, uniform 0.0 1.0 ]
        let! thetas = Gen.listOfLength t (vectorOf p (normal |> Gen.map ((*) 2.0)))
        return { Tau = tau; Thetas = thetas }
    }

/// Arbitrary instances for Prop.forAll, with no shrinking (cases are domain values).
let arb (g: Gen<'a>) : Arbitrary<'a> = Arb.fromGen g
