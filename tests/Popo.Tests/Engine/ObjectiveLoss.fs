/// The engine's POPO and GRPO micro-batch losses and their autograd gradients agree with Popo.Spec's
/// values and analytic gradients (docs/design.md §2.3-§2.7, §3): float64 to Accuracy.engine64, float32 to
/// Accuracy.engine32, for every weight mode, entropy scope and aggregation.
module Popo.Tests.Engine.ObjectiveLoss

open Expecto
open FsCheck
open FsCheck.FSharp
open MathNet.Numerics.LinearAlgebra
open TorchSharp
open Popo.Engine.Policy
open Popo.Engine.Objectives
open Popo.Spec
open Popo.Tests
open Popo.Tests.Generators
open Popo.Tests.Engine.ObjectiveFixtures

module SpecPopo = Popo.Spec.PopoObjective

/// A feature row of norm 0.5-3 in a random direction (the spec's cosine is undefined at zero).
let private feature (d: int) : Gen<Vector<float>> =
    gen {
        let! x = vectorOf d normal
        let! r = uniform 0.5 3.0
        let n = x.L2Norm()
        return if n = 0.0 then Vector<float>.Build.Dense(d, fun j -> if j = 0 then r else 0.0) else x * (r / n)
    }

/// POPO micro-batches of 1-16 rollouts of 1-32 tokens, every weight mode (Generators.weightConfig),
/// alpha, beta_ent, entropy scope and accumulation steps, with well-conditioned features.
let private popoCase : Gen<PopoCase> =
    gen {
        let! c = popoCaseWith 16 32
        let n, d = c.Inputs.Predictor.RowCount, c.Inputs.Predictor.ColumnCount
        let! u = Gen.arrayOfLength n (feature d)
        let! z = Gen.arrayOfLength n (feature d)
        return
            { c with
                Inputs =
                    { c.Inputs with
                        Predictor = Matrix<float>.Build.DenseOfRowVectors u
                        Target = Matrix<float>.Build.DenseOfRowVectors z } }
    }

/// The same case with every input rounded to float32, token log-probs recomputed from the rounded logits.
let private rounded (c: PopoCase) : PopoCase =
    let logits = c.Inputs.Logits |> Array.map (Array.map (fun z -> z.Map round32))
    { c with
        Inputs =
            { SpecPopo.PopoInputs.TokenLogProbs = Array.map2 (Softmax.tokenLogProbs c.Config.Temperature) logits c.Tokens |> Array.map (Array.map round32)
              Weights = c.Inputs.Weights |> Array.map round32
              Predictor = c.Inputs.Predictor.Map round32
              Target = c.Inputs.Target.Map round32
              Logits = logits } }

let private popoOptions (config: SpecPopo.PopoConfig) =
    PopoOptions(
        Alpha = config.Alpha,
        BetaEntropy = config.BetaEnt,
        EntropyScope = (if config.EntropyScope = SpecPopo.EntropyScope.All then EntropyScope.All else EntropyScope.Positive))

let private flatLogits (g: Vector<float>[][]) = g |> Array.map (Array.map (fun v -> v.ToArray()))

let private raggedLogitsClose tol (a: float[][][]) (b: float[][][]) =
    a.Length = b.Length && Array.forall2 (fun (x: float[][]) (y: float[][]) -> x.Length = y.Length && Array.forall2 (allClose tol) x y) a b

/// The POPO loss with log-probs, logits (entropy) and predictor outputs as independent leaves, then with
/// the log-probs taken from the logits; both against the spec.
let private popoAgrees (dtype: ScalarType) (tol: float) (case: PopoCase) =
    use scope = torch.NewDisposeScope()
    let c = if dtype = ScalarType.Float32 then rounded case else case
    let inputs, config = c.Inputs, c.Config
    let lengths = inputs.TokenLogProbs |> Array.map Array.length
    let v = inputs.Logits.[0].[0].Count
    let options = popoOptions config
    let mask = maskOf dtype lengths
    let w = vectorTensor ScalarType.Float64 inputs.Weights
    let z = matrixTensor dtype inputs.Target
    let specLoss = SpecPopo.loss config inputs
    let specGrads = SpecPopo.gradients config inputs

    // Independent inputs: gradients w.r.t. token log-probs (L_nll), predictor outputs (L_sim), logits (L_ent).
    let l = (padded dtype inputs.TokenLogProbs).requires_grad_(true)
    let logits = (paddedLogits dtype inputs.Logits).requires_grad_(true)
    let u = (matrixTensor dtype inputs.Predictor).requires_grad_(true)
    let entropy = if config.BetaEnt <> 0.0 then TokenStatistics.Entropy(logits, config.Temperature) else null
    // L_sim reads the positive rows' u and z only (the engine forwards the target on those alone).
    let positive = PopoLoss.PositiveRows w
    let z = z.index_select(0L, positive)
    use terms = PopoLoss.Compute(l, entropy, mask, w, u.index_select(0L, positive), z, options, config.GradAccumSteps)
    terms.Total.backward()
    let dl, dlPads = unpad lengths (gradValues l)
    let dz, dzPads = unpadLogits lengths v (gradValues logits)

    // Chained: l = log softmax(logits / T)[y], so the logits collect the whole gradient.
    let logits2 = (paddedLogits dtype inputs.Logits).requires_grad_(true)
    let l2 = TokenStatistics.LogProbs(logits2, paddedTokens c.Tokens, config.Temperature)
    let entropy2 = if config.BetaEnt <> 0.0 then TokenStatistics.Entropy(logits2, config.Temperature) else null
    let u2 = (matrixTensor dtype inputs.Predictor).requires_grad_(true)
    use terms2 = PopoLoss.Compute(l2, entropy2, mask, w, u2.index_select(0L, positive), z, options, config.GradAccumSteps)
    terms2.Total.backward()
    let dz2, dz2Pads = unpadLogits lengths v (gradValues logits2)
    let full = SpecPopo.fullLogitGradients config inputs c.Tokens

    let ok =
        Accuracy.close tol (terms.Total.ToDouble()) specLoss
        && Accuracy.close tol (terms2.Total.ToDouble()) specLoss
        && raggedClose tol dl specGrads.TokenLogProbs
        && allClose tol (gradValues u) (specGrads.Predictor.ToRowMajorArray())
        && raggedLogitsClose tol dz (flatLogits specGrads.Logits)
        && raggedLogitsClose tol dz2 (flatLogits full)
        && Array.forall ((=) 0.0) (Array.concat [ dlPads; dzPads; dz2Pads ])
    ok
    |> Prop.classify (not (SpecPopo.hasPositive inputs.Weights)) "no positive"
    |> Prop.classify (config.EntropyScope = SpecPopo.EntropyScope.Positive) "entropy over positives"

let private roundedGrpo (c: GrpoCase) : GrpoCase =
    let r = Array.map (Array.map round32)
    { c with
        Batch =
            { Grpo.GrpoBatch.NewLogProbs = r c.Batch.NewLogProbs
              OldLogProbs = r c.Batch.OldLogProbs
              RefLogProbs = r c.Batch.RefLogProbs
              Advantages = Array.map round32 c.Batch.Advantages } }

let private grpoOptions (config: Grpo.GrpoConfig) =
    let lossType =
        match config.LossType with
        | Grpo.LossType.Grpo -> LossType.Grpo
        | Grpo.LossType.Bnpo -> LossType.Bnpo
        | Grpo.LossType.DrGrpo _ -> LossType.DrGrpo
        | Grpo.LossType.Dapo _ -> LossType.Dapo
    GrpoOptions(LossType = lossType, EpsilonLow = config.EpsLow, EpsilonHigh = config.EpsHigh, Beta = config.Beta)

/// The engine's GRPO loss and d loss / d l for one case and accumulation steps, with the padding entries.
let private grpoEngine (dtype: ScalarType) (c: GrpoCase) (gradAccumSteps: int) =
    use scope = torch.NewDisposeScope()
    let b = c.Batch
    let lengths = b.NewLogProbs |> Array.map Array.length
    let l = (padded dtype b.NewLogProbs).requires_grad_(true)
    let reference = if c.Config.Beta <> 0.0 then padded dtype b.RefLogProbs else null
    let lMax = match c.Config.LossType with Grpo.LossType.DrGrpo m -> m | _ -> Array.max lengths
    let total = match c.Config.LossType with Grpo.LossType.Dapo t -> float t | _ -> float (Array.sum lengths)
    use terms =
        GrpoLoss.Compute(l, padded dtype b.OldLogProbs, reference, maskOf dtype lengths, vectorTensor dtype b.Advantages,
                         grpoOptions c.Config, lMax, total, gradAccumSteps)
    terms.Total.backward()
    let grads, pads = unpad lengths (gradValues l)
    terms.Total.ToDouble(), grads, pads

let private grpoAgrees (dtype: ScalarType) (tol: float) (case: GrpoCase) =
    let c = if dtype = ScalarType.Float32 then roundedGrpo case else case
    let loss, grads, pads = grpoEngine dtype c 1
    let ok =
        Accuracy.close tol loss (Grpo.loss c.Config c.Batch)
        && raggedClose tol grads (Grpo.grad c.Config c.Batch)
        && Array.forall ((=) 0.0) pads
    ok |> Prop.classify (c.Config.Beta <> 0.0) "k3 on"

let private kindOf (c: GrpoCase) =
    match c.Config.LossType with
    | Grpo.LossType.Grpo -> "grpo"
    | Grpo.LossType.Bnpo -> "bnpo"
    | Grpo.LossType.DrGrpo _ -> "dr_grpo"
    | Grpo.LossType.Dapo _ -> "dapo"

/// A micro-batch whose weights are all zero (no positive), with every other input as generated.
let private noPositive = popoCase |> Gen.map (fun c -> { c with Inputs = { c.Inputs with Weights = Array.zeroCreate c.Inputs.Weights.Length } })

let private property name gen body = testProperty name (Prop.forAll (Arb.fromGen gen) body)

[<Tests>]
let tests =
    testList "engine/objectives/loss" [
        property "POPO float64 loss and gradients w.r.t. log-probs, predictor outputs and logits equal the spec's" popoCase <|
            popoAgrees ScalarType.Float64 Accuracy.engine64

        property "POPO float32 loss and gradients equal the spec's on the same rounded inputs" popoCase <|
            popoAgrees ScalarType.Float32 Accuracy.engine32

        property "a micro-batch with no positive gives exactly zero loss and exactly zero gradients" noPositive <|
            fun c ->
                use scope = torch.NewDisposeScope()
                let lengths = c.Inputs.TokenLogProbs |> Array.map Array.length
                let logits = (paddedLogits ScalarType.Float64 c.Inputs.Logits).requires_grad_(true)
                let l = TokenStatistics.LogProbs(logits, paddedTokens c.Tokens, c.Config.Temperature)
                let u = (matrixTensor ScalarType.Float64 c.Inputs.Predictor).requires_grad_(true)
                let entropy = if c.Config.BetaEnt <> 0.0 then TokenStatistics.Entropy(logits, c.Config.Temperature) else null
                let w = vectorTensor ScalarType.Float64 c.Inputs.Weights
                let positive = PopoLoss.PositiveRows w
                use terms =
                    PopoLoss.Compute(l, entropy, maskOf ScalarType.Float64 lengths, w, u.index_select(0L, positive),
                                     (matrixTensor ScalarType.Float64 c.Inputs.Target).index_select(0L, positive), popoOptions c.Config, c.Config.GradAccumSteps)
                terms.Total.backward()
                terms.Total.ToDouble() = 0.0
                && SpecPopo.loss c.Config c.Inputs = 0.0
                && Array.forall ((=) 0.0) (Array.append (gradValues logits) (gradValues u))

        property "GRPO float64 loss and gradient w.r.t. log-probs equal the spec's for every aggregation (gradAccumSteps = 1)" grpoCase <|
            fun c -> grpoAgrees ScalarType.Float64 Accuracy.engine64 c |> Prop.classify true (kindOf c)

        property "GRPO float32 loss and gradient equal the spec's on the same rounded inputs" grpoCase <|
            fun c -> grpoAgrees ScalarType.Float32 Accuracy.engine32 c |> Prop.classify true (kindOf c)

        property "grpo, bnpo and dr_grpo are divided by gradAccumSteps; dapo's normaliser already spans the accumulated batch"
            (Gen.zip grpoCase (Gen.choose (2, 8))) <|
            fun (c, k) ->
                let divisor = match c.Config.LossType with Grpo.LossType.Dapo _ -> 1.0 | _ -> float k
                let loss, grads, _ = grpoEngine ScalarType.Float64 c k
                let ok =
                    Accuracy.close Accuracy.engine64 loss (Grpo.loss c.Config c.Batch / divisor)
                    && raggedClose Accuracy.engine64 grads (Grpo.grad c.Config c.Batch |> Array.map (Array.map (fun g -> g / divisor)))
                ok |> Prop.classify true (kindOf c)
    ]
