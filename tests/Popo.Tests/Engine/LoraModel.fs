/// LoRA on the model (src/Popo.Engine/Lora/): the adapted layer is W x + s B A x through Projection, B = 0 leaves
/// the base exactly as it was, merged weights give the same logits in float64, PEFT's initialisation, rsLoRA's scale,
/// a 16-bit base under float32 adapters, and dropout replayed exactly under gradient checkpointing.
module Popo.Tests.Engine.LoraModel

open System
open Expecto
open FsCheck
open FsCheck.FSharp
open TorchSharp
open Popo.Engine.Lora
open Popo.Engine.Model
open Popo.Tests
open Popo.Tests.Engine.ModelFixtures
open Popo.Tests.Engine.ObjectiveFixtures
open Popo.Tests.Engine.LoraFixtures

type private Case = { Model: TinyModel; Rank: int; Targets: string; RsLora: bool }

let private caseGen =
    gen {
        let! model = tinyModelGen
        let! rank = Gen.choose (1, 6)
        let! targets = Gen.elements [ "all-linear"; "q_proj,v_proj"; "o_proj,down_proj"; "k_proj,gate_proj,up_proj" ]
        let! rslora = Gen.elements [ true; false ]
        return { Model = model; Rank = rank; Targets = targets; RsLora = rslora }
    }

let private property name body = testProperty name (Prop.forAll (Arb.fromGen caseGen) body)

let private idsFor (config: ModelConfig) =
    idsTensor [| [| 0; 1 % config.VocabSize; 2 % config.VocabSize |]; [| (config.VocabSize - 1); 0; 1 % config.VocabSize |] |]

[<Tests>]
let tests =
    testList "engine/lora/model" [
        property "with B = 0 the adapted model's logits equal the base's exactly (float64 and float32)" <| fun c ->
            [ ScalarType.Float64; ScalarType.Float32 ] |> List.forall (fun dtype ->
                use model = randomModel c.Model.Config c.Model.Seed dtype
                use input = idsFor c.Model.Config
                let before = logitsOf model input
                use adapters = LoraAdapters.Attach(model, settingsOf c.Rank 16.0 c.Targets 0.0 c.RsLora, int64 c.Model.Seed)
                adapters.Count > 0 && logitsOf model input = before)

        property "merged weights W + s B A (s = alpha / r, or alpha / sqrt r) give the logits of base + adapter in float64" <| fun c ->
            use model = randomModel c.Model.Config c.Model.Seed ScalarType.Float64
            use byHand = model.Clone()
            use merged = model.Clone()
            use input = idsFor c.Model.Config
            let baseLogits = logitsOf model input
            use adapters = LoraAdapters.Attach(model, settingsOf c.Rank 16.0 c.Targets 0.0 c.RsLora, int64 c.Model.Seed)
            randomizeB adapters c.Model.Seed
            let s = if c.RsLora then 16.0 / sqrt (float c.Rank) else 16.0 / float c.Rank
            let weights = byHand.NamedParameters() |> Seq.map (fun struct (n, p) -> n, p) |> Map.ofSeq
            do
                use noGrad = torch.no_grad ()
                for i in 0 .. adapters.Count - 1 do
                    use product = adapters.[i].B.matmul(adapters.[i].A)
                    use update = product * s
                    weights.[adapters.ModuleNames.[i] + ".weight"].add_ update |> ignore
            adapters.MergeInto merged
            let adapted = logitsOf model input
            adapted <> baseLogits
            && allClose Accuracy.engine64 adapted (logitsOf byHand input)
            && allClose Accuracy.engine64 adapted (logitsOf merged input)

        testCase "A is PEFT's kaiming_uniform_(a = sqrt 5), U(-1/sqrt in, 1/sqrt in), B is zero, and the seed fixes A" <| fun () ->
            use model = randomModel (tinyConfig ()) 1 ScalarType.Float32
            use first = LoraAdapters.Attach(model, allLinear 4, 5L)
            use other = randomModel (tinyConfig ()) 2 ScalarType.Float32
            use again = LoraAdapters.Attach(other, allLinear 4, 5L)
            use third = randomModel (tinyConfig ()) 3 ScalarType.Float32
            use reseeded = LoraAdapters.Attach(third, allLinear 4, 6L)
            Expect.equal first.Count 14 "7 linears x 2 layers"
            for i in 0 .. first.Count - 1 do
                let a = values first.[i].A
                let bound = 1.0 / sqrt (float first.[i].A.shape.[1])
                Expect.isTrue (a |> Array.forall (fun x -> abs x <= bound)) $"adapter {i}: |A| <= 1/sqrt(in)"
                Expect.isGreaterThan (a |> Array.map abs |> Array.max) (0.5 * bound) $"adapter {i}: A spans its range"
                Expect.isTrue (values first.[i].B |> Array.forall ((=) 0.0)) $"adapter {i}: B = 0"
                Expect.equal (values again.[i].A) a $"adapter {i}: same seed, same A"
                Expect.notEqual (values reseeded.[i].A) a $"adapter {i}: another seed, another A"

        testCase "the scale is alpha / r, or alpha / sqrt(r) with use_rslora, as PEFT and vLLM compute it" <| fun () ->
            Expect.equal (settingsOf 16 8.0 "q_proj" 0.0 false).Scale 0.5 "8 / 16"
            Expect.equal (settingsOf 16 8.0 "q_proj" 0.0 true).Scale 2.0 "8 / sqrt 16"

        testCase "a bfloat16 base under float32 adapters: frozen 16-bit weights, float32 adapters and hidden states, B = 0 leaves the output" <| fun () ->
            use model = randomModel (tinyConfig ()) 5 ScalarType.BFloat16
            use input = ids ()
            let before = hiddenOf model input
            use adapters = LoraAdapters.Attach(model, allLinear 4, 1L)
            Expect.equal model.HiddenDtype ScalarType.Float32 "hidden states leave in float32"
            Expect.isTrue (adapters.parameters() |> Seq.forall (fun p -> p.dtype = ScalarType.Float32 && p.requires_grad)) "adapters are float32 and trainable"
            Expect.isTrue (model.parameters() |> Seq.forall (fun p -> p.dtype = ScalarType.BFloat16 && not p.requires_grad)) "the base stays bf16 and frozen"
            Expect.equal (hiddenOf model input) before "B = 0: the bf16 base's hidden states, widened"
            use out = model.Forward input
            Expect.equal out.Logits.dtype ScalarType.Float32 "float32 logits"
            randomizeB adapters 2
            use out2 = model.Forward input
            out2.Hidden.sum().backward()
            Expect.isTrue (adapters.parameters() |> Seq.forall (fun p -> not (isNull p.grad) && p.grad.dtype = ScalarType.Float32)) "float32 gradients on every adapter"

        testCase "dropout draws its own generator in training forwards only, and checkpointed layers replay its masks exactly" <| fun () ->
            use model = randomModel (tinyConfig ()) 6 ScalarType.Float64
            use input = ids ()
            let plain = hiddenOf model input
            use adapters = LoraAdapters.Attach(model, settingsOf 4 16.0 "all-linear" 0.5 false, 2L)
            randomizeB adapters 7
            let noGradA, noGradB = hiddenOf model input, hiddenOf model input
            Expect.equal noGradA noGradB "no dropout without a graph"
            Expect.notEqual noGradA plain "the adapters act"
            use start = adapters.DropoutState()
            let gradients checkpointing =
                adapters.SetDropoutState start
                model.GradientCheckpointing <- checkpointing
                for p in adapters.parameters() do p.grad <- null
                use out = model.Forward input
                use loss = (out.Hidden * out.Hidden).sum()
                loss.backward()
                values out.Hidden, adapters.parameters() |> Seq.collect gradValues |> Array.ofSeq
            let hiddenPlain, gradPlain = gradients false
            let hiddenCheckpointed, gradCheckpointed = gradients true
            Expect.notEqual hiddenPlain noGradA "dropout acts in a training forward"
            Expect.equal hiddenCheckpointed hiddenPlain "the same masks in the checkpointed forward"
            Expect.isTrue (allClose Accuracy.engine64 gradCheckpointed gradPlain) "and in its recomputation: the same adapter gradients"
            Expect.isTrue (gradPlain |> Array.exists ((<>) 0.0)) "nonzero gradients"
            Expect.isTrue (model.parameters() |> Seq.forall (fun p -> isNull p.grad)) "no gradient reaches the frozen base"

        testCase "padding-free forward with adapters: the adapters' gradients equal the padded forward's, with and without checkpointing (float64)" <| fun () ->
            use model = randomModel (tinyConfig ()) 6 ScalarType.Float64
            use adapters = LoraAdapters.Attach(model, allLinear 4, 2L)
            randomizeB adapters 7
            use scope = torch.NewDisposeScope()
            let input = ids ()
            let mask = torch.tensor([| 0L; 1L; 1L; 1L; 0L;  1L; 1L; 1L; 1L; 1L;  0L; 0L; 1L; 1L; 1L |]).view(3L, 5L)
            let positions = Qwen2ForCausalLM.DefaultPositions(mask, 5L)
            let real = mask.``to``(ScalarType.Bool).unsqueeze(-1)
            let gradients paddingFree checkpointing =
                model.PaddingFree <- paddingFree
                model.GradientCheckpointing <- checkpointing
                for p in adapters.parameters() do p.grad <- null
                let hidden = model.ForwardHidden(input, mask, positions)
                hidden.masked_select(real).square().sum().backward()
                values (hidden.masked_select(real)), adapters.parameters() |> Seq.collect gradValues |> Array.ofSeq
            let hidden0, g0 = gradients false false
            for checkpointing in [ false; true ] do
                let hidden, g = gradients true checkpointing
                Expect.isTrue (allClose Accuracy.veryHigh hidden hidden0) $"checkpointing={checkpointing}: hidden states"
                Expect.isTrue (allClose Accuracy.veryHigh g g0) $"checkpointing={checkpointing}: adapter gradients"
            Expect.isTrue (g0 |> Array.exists ((<>) 0.0)) "nonzero gradients"

        testCase "unknown target modules are refused, naming them and the valid ones" <| fun () ->
            let e = Expect.throwsC (fun () -> LoraSettings.ParseTargets("q_proj,lm_head", "key 'lora_target_modules'") |> ignore) id
            Expect.stringContains e.Message "'lm_head'" "names the unknown module"
            Expect.stringContains e.Message "gate_proj" "lists the valid ones"
            Expect.sequenceEqual (LoraSettings.ParseTargets("v_proj, q_proj,v_proj", "t")) [ "q_proj"; "v_proj" ] "layer order, no duplicates"
    ]
