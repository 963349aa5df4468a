/// The learning-rate schedule (docs/design.md §2.8): linear warm-up over the first ceil(r T) optimizer steps,
/// then cosine decay to zero. The values are pinned from the formula written out here, independently of
/// LrSchedule, so an off-by-one in the step index (s vs s + 1, or the warm-up length) changes them.
module Popo.Tests.Engine.Schedule

open System
open Expecto
open Popo.Engine.Training
open Popo.Tests
open Popo.Tests.Spec

/// The multiplier of the base rate at optimizer step s (0-based) of T, warm-up ratio r:
/// w = ceil(r T); s < w: (s + 1) / (w + 1); else 0.5 (1 + cos(pi min(1, (s - w) / max(1, T - w)))).
let factor (s: int) (total: int) (ratio: float) =
    let w = int (Math.Ceiling(ratio * float total))
    if s < w then float (s + 1) / float (w + 1)
    else 0.5 * (1.0 + Math.Cos(Math.PI * min 1.0 (float (s - w) / float (max 1 (total - w)))))

[<Tests>]
let tests =
    testList "engine/schedule" [
        testCase "LrSchedule equals the warm-up + cosine formula at every step of several schedules" <| fun () ->
            for total, ratio in [ 1, 0.1; 6, 0.1; 10, 0.1; 10, 0.0; 10, 0.25; 37, 0.3; 200, 0.1; 5, 1.0 ] do
                for s in 0 .. total do
                    Check.expectClose Accuracy.veryHigh (LrSchedule.Factor(s, total, ratio)) (factor s total ratio) $"T={total} r={ratio} s={s}"

        testCase "pinned values: T = 10, r = 0.1 warms up for one step, peaks at step 1 and reaches 0 at step 10" <| fun () ->
            // w = 1: s = 0 -> 1/2; s = 1 -> cos 0 -> 1; s = 4 -> 0.5 (1 + cos(pi/3)) = 0.75; s = 10 -> 0.
            Check.expectClose Accuracy.veryHigh (LrSchedule.Factor(0, 10, 0.1)) 0.5 "s = 0"
            Check.expectClose Accuracy.veryHigh (LrSchedule.Factor(1, 10, 0.1)) 1.0 "s = 1"
            Check.expectClose Accuracy.veryHigh (LrSchedule.Factor(4, 10, 0.1)) 0.75 "s = 4"
            Check.expectWithin 1e-15 (LrSchedule.Factor(10, 10, 0.1)) 0.0 "s = 10"

        testCase "pinned values: T = 4, r = 0.5 warms up at 1/3 and 2/3, then 1 and 0.5" <| fun () ->
            // w = 2: s = 0, 1 -> 1/3, 2/3; s = 2 -> 1; s = 3 -> 0.5 (1 + cos(pi/2)) = 0.5.
            for s, expected in [ 0, 1.0 / 3.0; 1, 2.0 / 3.0; 2, 1.0; 3, 0.5 ] do
                Check.expectClose Accuracy.veryHigh (LrSchedule.Factor(s, 4, 0.5)) expected $"s = {s}"

        testCase "no steps means the base rate" <| fun () ->
            Expect.equal (LrSchedule.Factor(0, 0, 0.1)) 1.0 "T = 0"
    ]
