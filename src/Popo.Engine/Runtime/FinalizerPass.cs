namespace Popo.Engine.Runtime;

/// <summary>
/// A blocking collection and its finalizers, run after each optimizer step. Some TorchSharp 0.107 calls make a
/// finalizable object per call that nothing disposes: the alpha Scalar of its <c>add</c> and <c>+</c>, the object behind
/// <c>Tensor.shape</c>, <c>cat</c>'s handle array (counted one each by GC.GetGCMemoryInfo().FinalizationPendingCount
/// around a thousand calls). One small-3M update step leaves about 670 of them: 420 in the forward, 140 in the backward,
/// 120 in clipping, AdamW and zeroing. They and what they hold are freed only when a collection finds them, which a
/// step's few managed allocations make rare; until then the process's resident memory grows from step to step (the
/// small-3M update: 1.2 GB after 5 steps, 3.5 GB after 40, flat with this pass) and fresh pages keep being faulted in
/// (clear_page was 14% of that step's CPU time under perf). With the pass after every step, the update bench's float32
/// rows ran 3-5% faster and every row's peak RSS fell 3-25% (BENCHMARKS.md, log: *A collection after each optimizer
/// step*). The values are untouched: only objects nothing references are collected.
/// </summary>
internal static class FinalizerPass
{
    public static void Run()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
    }
}
