/// LoRA dropout (issue 28, group 1): the training forward's adapter output equals the eval forward's in
/// expectation (the inverted-dropout scale 1/(1-p)), stated as a Hoeffding bound; after a checkpointed forward and
/// backward over two layers the dropout generator is where an uncheckpointed step leaves it (the next step draws
/// fresh masks, not replays); dropout + checkpointing + padding-free on a padded batch runs its backward and gives
/// the uncheckpointed step's adapter gradients.
module Popo.Tests.Catch.LoraDropout

open System
open Expecto
open TorchSharp
open TorchSharp.Modules
open Popo.Engine.Lora
open Popo.Tests
open Popo.Tests.Engine.ModelFixtures
open Popo.Tests.Engine.ObjectiveFixtures
open Popo.Tests.Engine.LoraFixtures

let private stateBytes (adapters: LoraAdapters) =
    use s = adapters.DropoutState()
    s.data<byte>().ToArray()

/// A padded batch: three rows of five, left padding of 1, 0 and 2 positions.
let private paddedMask () = torch.tensor([| 0L; 1L; 1L; 1L; 1L;  1L; 1L; 1L; 1L; 1L;  0L; 0L; 1L; 1L; 1L |]).view(3L, 5L)

[<Tests>]
let tests =
    testSequenced <| testList "catch/lora-dropout" [
        test "a training forward's adapter output equals the eval forward's in expectation (Hoeffding bound, failure probability below 1e-9)" {
            let p = 0.3
            use model = randomModel (tinyConfig ()) 6 torch.ScalarType.Float64
            use adapters = LoraAdapters.Attach(model, settingsOf 4 16.0 "q_proj" p false, 2L)
            randomizeB adapters 7
            let layer = model.named_modules() |> Seq.pick (fun struct (n, m) -> if n = "model.layers.0.self_attn.q_proj" then Some (m :?> Linear) else None)
            use noGrad = torch.no_grad ()
            let adapter = adapters.For(layer)
            use c = adapter.B.matmul(adapter.A)   // [out, in]
            let cv = values c
            let outDim, inDim = int c.shape.[0], int c.shape.[1]
            // x0 = sign of c's first row: the first output then sums |c_0k|, so a wrong scale shows at its full size there
            let x0 = Array.init inDim (fun k -> if cv.[k] >= 0.0 then 1.0 else -1.0)
            let rows = 20000
            use x = torch.tensor(x0, dtype = torch.ScalarType.Float64).unsqueeze(0).expand(int64 rows, int64 inDim).contiguous()
            use y = torch.zeros(int64 rows, int64 outDim, dtype = torch.ScalarType.Float64)
            use trained = adapters.Apply(layer, y, x, true)
            let mean = values (trained.mean([| 0L |]))
            use one = torch.zeros(1L, int64 outDim, dtype = torch.ScalarType.Float64)
            use eval = adapters.Apply(layer, one, x.narrow(0L, 0L, 1L), false)
            let expected = values eval
            let s = adapters.Settings.Scale
            // Each row's output j is sum_k a_jk m_k with a_jk = s c_jk x0_k / (1 - p) and m_k ~ Bernoulli(1 - p) independent:
            // a value in an interval of width R_j = sum_k |a_jk|, mean s (c x0)_j. Hoeffding over `rows` rows and a union
            // bound over the outputs: |mean_j - (s c x0)_j| <= R_j sqrt(ln(2 out / delta) / (2 rows)) for all j, except
            // with probability delta = 1e-9.
            let delta = 1e-9
            for j in 0 .. outDim - 1 do
                let r = Seq.sum (seq { for k in 0 .. inDim - 1 -> abs (s * cv.[j * inDim + k] * x0.[k] / (1.0 - p)) })
                let eps = r * sqrt (log (2.0 * float outDim / delta) / (2.0 * float rows))
                Expect.isLessThanOrEqual (abs (mean.[j] - expected.[j])) eps (sprintf "output %d: training mean %g, eval %g" j mean.[j] expected.[j])
            // the bound is tight enough to see a scale error of 4% at the first output
            let r0 = Seq.sum (seq { for k in 0 .. inDim - 1 -> abs (s * cv.[k] / (1.0 - p)) })
            Expect.isLessThan (r0 * sqrt (log (2.0 * float outDim / delta) / (2.0 * float rows))) (0.04 * abs expected.[0]) "the test's power"
        }

        test "after a checkpointed forward and backward over two layers the dropout generator is where an uncheckpointed step leaves it" {
            use model = randomModel (tinyConfig ()) 6 torch.ScalarType.Float64
            use adapters = LoraAdapters.Attach(model, settingsOf 4 16.0 "all-linear" 0.5 false, 2L)
            randomizeB adapters 7
            Expect.equal model.Config.NumHiddenLayers 2 "two checkpointed layers"
            use input = ids ()
            use start = adapters.DropoutState()
            let step checkpointing =
                adapters.SetDropoutState start
                model.GradientCheckpointing <- checkpointing
                for q in adapters.parameters() do q.grad <- null
                do
                    use out = model.Forward input
                    use loss = out.Hidden.square().sum()
                    loss.backward()
                let after = stateBytes adapters
                // the next step's masks: a second training forward from where this step left the generator
                use next = model.Forward input
                after, values next.Hidden
            let plainState, plainNext = step false
            let checkpointedState, checkpointedNext = step true
            Expect.notEqual plainState (start.data<byte>().ToArray()) "a step draws masks"
            Expect.equal checkpointedState plainState "the recomputation rewinds and then restores the generator"
            Expect.equal checkpointedNext plainNext "so the next step draws the same fresh masks"
        }

        test "dropout + checkpointing + padding-free on a padded batch: the backward runs, giving the uncheckpointed step's adapter gradients and generator state" {
            use model = randomModel (tinyConfig ()) 6 torch.ScalarType.Float64
            use adapters = LoraAdapters.Attach(model, settingsOf 4 16.0 "all-linear" 0.5 false, 2L)
            randomizeB adapters 7
            use scope = torch.NewDisposeScope()
            let input = ids ()
            let mask = paddedMask ()
            let positions = Popo.Engine.Model.Qwen2ForCausalLM.DefaultPositions(mask, 5L)
            let real = mask.``to``(torch.ScalarType.Bool).unsqueeze(-1)
            let start = adapters.DropoutState()
            let step paddingFree checkpointing =
                adapters.SetDropoutState start
                model.PaddingFree <- paddingFree
                model.GradientCheckpointing <- checkpointing
                for q in adapters.parameters() do q.grad <- null
                let hidden = model.ForwardHidden(input, mask, positions)
                hidden.masked_select(real).square().sum().backward()
                values (hidden.masked_select(real)), adapters.parameters() |> Seq.collect gradValues |> Array.ofSeq, stateBytes adapters
            let hidden0, g0, state0 = step true false
            let hidden1, g1, state1 = step true true
            Expect.isTrue (g0 |> Array.exists ((<>) 0.0)) "nonzero adapter gradients"
            Expect.isTrue (allClose Accuracy.veryHigh hidden1 hidden0) "the same masks in the checkpointed packed forward"
            Expect.isTrue (allClose Accuracy.veryHigh g1 g0) "and in its recomputation: the same adapter gradients"
            Expect.equal state1 state0 "the generator ends where the uncheckpointed step leaves it"
            let _, gPadded, _ = step false true
            Expect.isTrue (gPadded |> Array.exists ((<>) 0.0)) "the padded checkpointed path runs too"
        }
    ]
