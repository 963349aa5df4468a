/// The engine's Qwen2 decoder in float64 agrees with the spec's reference forward pass (docs/design.md §6).
module Popo.Tests.Engine.ModelSpec

open Expecto
open FsCheck
open FsCheck.FSharp
open TorchSharp
open Popo.Spec
open Popo.Tests
open Popo.Tests.Engine.ModelFixtures

/// A tiny model with two token sequences, the second shorter (it gets padded).
type Case = { Model: TinyModel; Long: int[]; Short: int[] }

let private caseGen =
    gen {
        let! model = tinyModelGen
        let v = model.Config.VocabSize
        let! t = Gen.choose (1, 8)
        let! cut = Gen.choose (1, t)
        let! long = Gen.arrayOfLength t (Gen.choose (0, v - 1))
        let! short = Gen.arrayOfLength cut (Gen.choose (0, v - 1))
        return { Model = model; Long = long; Short = short }
    }

/// Runs the engine on the two rows padded with `pad` and checks each real position against the spec.
let private agrees (left: bool) (case: Case) =
    use scope = torch.NewDisposeScope()
    use model = randomModel case.Model.Config case.Model.Seed torch.ScalarType.Float64
    let config, weights = specWeights model
    let ids, mask = (if left then leftPad else rightPad) 0 [| case.Long; case.Short |]
    use out = model.Forward(ids, mask)
    let specLong, hiddenLong = Transformer.forward config weights case.Long
    let specShort, hiddenShort = Transformer.forward config weights case.Short
    let real (m: MathNet.Numerics.LinearAlgebra.Matrix<float>) offset n = m.SubMatrix(offset, n, 0, m.ColumnCount)
    let pad = case.Long.Length - case.Short.Length
    let shortOffset = if left then pad else 0
    let logits0, logits1 = rowMatrix out.Logits 0, rowMatrix out.Logits 1
    let hidden0, hidden1 = rowMatrix out.Hidden 0, rowMatrix out.Hidden 1
    matricesClose Accuracy.engine64 logits0 specLong
    && matricesClose Accuracy.engine64 hidden0 hiddenLong
    && matricesClose Accuracy.engine64 (real logits1 shortOffset case.Short.Length) specShort
    && matricesClose Accuracy.engine64 (real hidden1 shortOffset case.Short.Length) hiddenShort

[<Tests>]
let tests =
    testList "engine/model/spec" [
        testPropertyWithConfig FsCheckConfig.defaultConfig "float64 logits and hidden states equal the spec's forward pass, left-padded batch" <|
            Prop.forAll (Arb.fromGen caseGen) (agrees true)
        testPropertyWithConfig FsCheckConfig.defaultConfig "float64 logits and hidden states equal the spec's forward pass, right-padded batch" <|
            Prop.forAll (Arb.fromGen caseGen) (agrees false)
    ]
