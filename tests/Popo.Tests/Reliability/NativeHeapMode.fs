/// `native_heap = reuse` (issue 34) changes only where libtorch's tensors come from, not what is computed: a run with it
/// writes the same checkpoints, metrics and samples as the default, bit for bit. In `popo` processes, since the
/// setting is process-wide. And what each mode comes to: `auto` picks reuse only for a model of real size whose memory
/// estimate, plus twice the estimate's tensors made and freed within a step, fits in the memory available.
module Popo.Tests.Reliability.NativeHeapMode

open System.IO
open Expecto
open Popo.Engine.Runtime
open Popo.Engine.Training
open Popo.Tests.Reliability.Harness

let private gib = 1L <<< 30

let private flags (out: string) = "train" :: smallRun out [ "--bf16", "true" ]

[<Tests>]
let tests =
    testSequenced <| testList "reliability/native-heap" [
        testCase "native_heap = reuse: the same checkpoints, metrics and samples as the default" <| fun () ->
            withTemp (fun root ->
                let auto, reuse = Path.Combine(root, "auto"), Path.Combine(root, "reuse")
                for args in [ flags auto; flags reuse @ [ "--native-heap"; "reuse" ] ] do
                    let code, stderr = runPopo 300_000 args
                    Expect.equal code 0 $"popo train: {stderr}"
                expectSameRuns 2 reuse auto)

        testCase "what each mode comes to: reuse always; below 100M parameters glibc's own; auto reuse only where the estimate and twice its transient tensors fit" <| fun () ->
            let small, real = NativeHeap.RealScaleParameters - 1L, NativeHeap.RealScaleParameters
            let choose p mode budget = NativeHeap.Choose(p, mode, Option.toNullable budget)
            let budget peak transient available = Some (NativeHeap.Budget(peak, transient, available))
            for p in [ small; real ] do
                Expect.equal (choose p NativeHeap.ModeReuse None) NativeHeap.Setting.Reuse "reuse is asked for"
            for mode in [ NativeHeap.ModeAuto; NativeHeap.ModeLean ] do
                Expect.equal (choose small mode (budget gib gib (100L * gib))) NativeHeap.Setting.GlibcDefault $"{mode} below real scale"
            Expect.equal (choose real NativeHeap.ModeLean (budget gib gib (100L * gib))) NativeHeap.Setting.Lean "lean whatever the room"
            // 10 GiB of weights and optimizer state made once, 1 GiB made and freed within a step: a peak of 11 GiB, 13 wanted.
            Expect.equal (choose real NativeHeap.ModeAuto (budget (11L * gib) gib (13L * gib))) NativeHeap.Setting.Reuse "the peak and twice the transient tensors fit exactly"
            Expect.equal (choose real NativeHeap.ModeAuto (budget (11L * gib) gib (13L * gib - 1L))) NativeHeap.Setting.Lean "a byte short"
            Expect.equal (choose real NativeHeap.ModeAuto (budget (11L * gib) gib (21L * gib))) NativeHeap.Setting.Reuse "twice the whole estimate need not fit"
            Expect.equal (choose real NativeHeap.ModeAuto None) NativeHeap.Setting.Lean "no budget (another device, or no reading of the memory)"

        testCase "the run's line: auto's reason, and a warning where reuse is asked for but its fragments may not fit" <| fun () ->
            let budget peak transient available = System.Nullable(NativeHeap.Budget(peak, transient, available))
            let line mode heap b = Trainer.HeapLine(mode, heap, b, "no reading")
            let fits, tight = budget (11L * gib) gib (13L * gib), budget (11L * gib) gib (13L * gib - 1L)
            Expect.equal (line NativeHeap.ModeAuto NativeHeap.Setting.Reuse fits)
                "native heap: reuse (native_heap = auto: the 11.00 GiB estimate + 2 x its 1.00 GiB of tensors made and freed within a step fits in the 13.00 GiB available)" "auto, fits"
            Expect.stringContains (line NativeHeap.ModeAuto NativeHeap.Setting.Lean tight) "exceeds the 13.00 GiB available)" "auto, a byte short"
            Expect.equal (line NativeHeap.ModeAuto NativeHeap.Setting.Lean (System.Nullable())) "native heap: lean (native_heap = auto: no reading)" "auto without a budget"
            Expect.equal (line NativeHeap.ModeReuse NativeHeap.Setting.Reuse fits) "native heap: reuse (native_heap = reuse)" "reuse that fits: no warning"
            Expect.stringContains (line NativeHeap.ModeReuse NativeHeap.Setting.Reuse tight) "; warning: the 11.00 GiB estimate" "reuse that may not fit is warned"
            Expect.equal (line NativeHeap.ModeLean NativeHeap.Setting.Lean tight) "native heap: lean (native_heap = lean)" "lean: nothing to weigh"

        testCase "the bench reports the setting it ran with, and refuses auto and unknown ones" <| fun () ->
            Expect.equal (benchMeta [] "native_heap") "lean" "the default"
            let code, stderr = runPopo 60_000 [ "bench"; "--quick"; "--only"; "peak"; "--native-heap"; "auto" ]
            Expect.notEqual code 0 "auto needs a run's estimate: not a bench setting"
            Expect.stringContains stderr "auto" "the refusal names the value"
            let code, stderr = runPopo 60_000 [ "bench"; "--quick"; "--only"; "peak"; "--native-heap"; "never" ]
            Expect.notEqual code 0 "an unknown mode is refused"
            Expect.stringContains stderr "never" "the refusal names the value"
    ]
