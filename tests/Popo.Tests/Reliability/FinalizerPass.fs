/// Runtime/FinalizerPass, run after each optimizer step: why it is there (TorchSharp's add leaves a finalizable object
/// per call that nothing disposes) and what it promises (the finalizers of what nothing references have run when it
/// returns, so their native memory is back before the next step).
module Popo.Tests.Reliability.FinalizerPass

open System.Threading
open Expecto
open TorchSharp
open Popo.Engine.Runtime

type private Sentinel() =
    static let mutable finalized = 0
    static member Finalized = Volatile.Read(&finalized)
    override _.Finalize() = Interlocked.Increment(&finalized) |> ignore

/// Made in a frame of their own, so that nothing on the test's stack still references them.
[<System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)>]
let private dropSentinels n = for _ in 1 .. n do Sentinel() |> ignore

[<System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)>]
let private addsInScope (x: torch.Tensor) (y: torch.Tensor) n =
    use scope = torch.NewDisposeScope()
    for _ in 1 .. n do x.add(y) |> ignore

[<Tests>]
let tests =
    testList "reliability/finalizer-pass" [
        testCase "the pass has run the finalizers of unreferenced objects when it returns" <| fun () ->
            let before = Sentinel.Finalized
            dropSentinels 500
            FinalizerPass.Run()
            Expect.isGreaterThanOrEqual (Sentinel.Finalized - before) 500 "every dropped sentinel finalized"

        testCase "TorchSharp's add leaves one finalizable object per call, even inside a dispose scope (why the pass exists)" <| fun () ->
            use x = torch.ones(4L)
            use y = torch.ones(4L)
            // A collection started by another test's thread during the adds would hand some of them to the finalizer
            // before the count below, which reads the last collection only: the adds are repeated, up to five times,
            // until a round runs with no collection in it.
            let rec pending tries =
                FinalizerPass.Run()
                let collections = System.GC.CollectionCount 0
                addsInScope x y 1000
                if System.GC.CollectionCount 0 <> collections && tries > 1 then pending (tries - 1)
                else
                    System.GC.Collect()
                    System.GC.GetGCMemoryInfo().FinalizationPendingCount
            // Other tests running beside this one can only add to the count.
            Expect.isGreaterThanOrEqual (pending 5) 1000L "a finalizable object per add"
            System.GC.WaitForPendingFinalizers()
    ]
