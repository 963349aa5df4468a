/// Where POPO's feature noise goes (docs/design.md §2.4-2.5): sigma N(0, I) is added to the EMA target's pooled
/// features f_xi, never to the online features f_theta before the predictor. The test rebuilds both sides
/// of L_sim from outside the objective (the same pooled features, a predictor with the objective's weights,
/// the noise from a generator in the objective's seeded state) and asks the objective's L_sim to be
/// -sum w cos(h(f_theta), f_xi + eps) / sum w, and not the value with the noise moved to the online side.
module Popo.Tests.Engine.ObjectiveFeatureNoise

open System
open Expecto
open TorchSharp
open Popo.Engine.Model
open Popo.Engine.Objectives
open Popo.Engine.Policy
open Popo.Tests
open Popo.Tests.Engine.ModelFixtures
open Popo.Tests.Engine.ObjectiveFixtures

/// -sum_i w_i cos(u_i, z_i) / max(sum_i w_i, 1e-8) over the rows of u, z [b,D].
let private similarity (w: float[]) (u: torch.Tensor) (z: torch.Tensor) =
    let cos = values (torch.nn.functional.cosine_similarity(u, z, 1L, 0.0))
    -(Array.map2 (*) w cos |> Array.sum) / max (Array.sum w) 1e-8

/// L_sim from the objective, with the correct and the swapped placement of the noise rebuilt outside.
let private run (sigma: float) (seed: int) =
    use scope = torch.NewDisposeScope()
    let config =
        ModelConfig(VocabSize = 6, HiddenSize = 8, IntermediateSize = 12, NumHiddenLayers = 1,
                    NumAttentionHeads = 2, NumKeyValueHeads = 1, MaxPositionEmbeddings = 32)
    use model = randomModel config seed ScalarType.Float64
    let policy = Qwen2Policy(model)
    let options = PopoOptions(PredictorHidden = 16, FeatureNoise = sigma, Alpha = 1.0, BetaEntropy = 0.0)
    use objective =
        new PopoObjective("popo", policy, Func<IPolicy>(fun () -> policy.FrozenClone() :> IPolicy), 8,
                          options, 1.0, torch.CPU, ScalarType.Float64, int64 seed)
    let completions = [| [| 1; 2 |]; [| 3 |]; [| 4; 5; 1 |]; [| 2; 2; 3; 0 |] |]
    use batch = batchOf policy [| 1; 4 |] completions [| 1.0; 0.0; 1.0; 1.0 |] 4
    use prepared = objective.Prepare(batch, StepMetrics())
    let metrics = StepMetrics()
    objective.Backward(prepared, prepared.TrainRows, 1, metrics) |> ignore
    let actual = metrics.ToDictionary().["loss_sim"]

    use noGrad = torch.no_grad ()
    let index = torch.tensor(prepared.TrainRows)
    let w = values (prepared.PerRow.index_select(0L, index))
    use outputs = CompletionForward.Run(policy, batch, index)
    let f = TokenStatistics.PoolFeatures(outputs.Hidden, outputs.Mask, FeaturePooling.Mean)   // [b,D]; xi_0 = theta_0, so f_xi = f_theta
    use predictor = new Predictor(8, 16, 1, torch.CPU, ScalarType.Float64, 0L)
    let state = objective.State()
    for struct (name, p) in predictor.named_parameters() do p.copy_(state.["predictor." + name]) |> ignore
    use noise = new torch.Generator(uint64 seed, torch.CPU)   // the objective's noise generator, before its first draw
    let eps = sigma * torch.randn(f.shape, dtype = f.dtype, generator = noise)
    let correct = similarity w (predictor.forward f) (f + eps)
    let swapped = similarity w (predictor.forward (f + eps)) f
    actual, correct, swapped

[<Tests>]
let tests =
    testList "engine/objectives/feature-noise" [
        testCase "with feature_noise > 0 the noise goes to the target features, not to the predictor's input" <| fun () ->
            for seed in [ 3; 17; 101 ] do
                let actual, correct, swapped = run 0.5 seed
                Expect.isFalse (Accuracy.close Accuracy.engine64 correct swapped) $"seed {seed}: the two placements must differ for the test to mean anything"
                Expect.isTrue (Accuracy.close Accuracy.engine64 actual correct)
                    $"seed {seed}: L_sim {actual:R}; noise on the target gives {correct:R}, noise on the online side {swapped:R}"

        testCase "with feature_noise = 0 L_sim compares h(f_theta) with the bare target features" <| fun () ->
            let actual, correct, _ = run 0.0 5
            Expect.isTrue (Accuracy.close Accuracy.engine64 actual correct) $"L_sim {actual:R}, expected {correct:R}"
    ]
