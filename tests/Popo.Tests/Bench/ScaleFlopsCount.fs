/// The scale section's FLOP count (bench/Popo.Bench/ScaleFlops.cs) on a layout small enough to count by hand: hidden 4,
/// intermediate 8, one layer of 2 query heads on 1 key head (head size 2), vocabulary 10, tied; one row of a 1-token prompt
/// and a 2-token completion, rewarded (so the EMA target forwards it).
module Popo.Tests.Bench.ScaleFlopsCount

open Expecto
open Popo.Engine.Model
open Popo.Bench

let private config =
    ModelConfig(VocabSize = 10, HiddenSize = 4, IntermediateSize = 8, NumHiddenLayers = 1,
                NumAttentionHeads = 2, NumKeyValueHeads = 1, TieWordEmbeddings = true, MaxPositionEmbeddings = 16)

// Layer weights: q 4x4 + k 2x4 + v 2x4 + o 4x4 + gate, up, down 3 x 4x8 = 144; head 10 x 4 = 40.
// Tokens 3 (2 completions); attended pairs of a 3-token causal sequence: 1 + 2 + 3 = 6; attention 4 x hidden = 16 per pair.
[<Tests>]
let tests =
    testList "bench/scale-flops" [
        testCase "full fine-tuning, POPO's target, no checkpointing, unchunked head: counted by hand" <| fun () ->
            Expect.equal (ScaleFlops.LayerWeights config) 144.0 "layer weights"
            // layers: 2 x 144 x (3 passes x 3 tokens + 3 target tokens); head: 2 x 40 x (3 x 2 + 2); attention 16 x (3 x 6 + 6)
            let expected = 2.0 * 144.0 * 12.0 + 2.0 * 40.0 * 8.0 + 16.0 * 24.0
            Expect.equal (ScaleFlops.Update(config, 1, [| 2 |], [| true |], 0, false, false)) expected "update"

        testCase "checkpointing adds one forward of the layers (attention included), the chunked head one of the head" <| fun () ->
            let plain = ScaleFlops.Update(config, 1, [| 2 |], [| true |], 0, false, false)
            Expect.equal (ScaleFlops.Update(config, 1, [| 2 |], [| true |], 0, true, false) - plain) (2.0 * 144.0 * 3.0 + 16.0 * 6.0) "recomputation"
            Expect.equal (ScaleFlops.Update(config, 1, [| 2 |], [| true |], 0, false, true) - plain) (2.0 * 40.0 * 2.0) "head recomputation"
            Expect.equal (plain - ScaleFlops.Update(config, 1, [| 2 |], [| false |], 0, false, false)) (2.0 * 144.0 * 3.0 + 2.0 * 40.0 * 2.0 + 16.0 * 6.0) "the target's forward"

        testCase "LoRA r 1: no weight gradient of the base or the head; the adapters' r (in + out) weights trained" <| fun () ->
            // adapters: q, o (4 + 4) x 2, k, v (4 + 2) x 2, gate, up (4 + 8) x 2, down (8 + 4) = 64
            Expect.equal (ScaleFlops.AdapterWeights(config, 1)) 64.0 "adapter weights"
            let expected = 2.0 * 144.0 * (2.0 * 3.0 + 3.0) + 2.0 * 64.0 * 9.0 + 2.0 * 40.0 * (2.0 * 2.0 + 2.0) + 16.0 * 24.0
            Expect.equal (ScaleFlops.Update(config, 1, [| 2 |], [| true |], 1, false, false)) expected "update"
    ]
