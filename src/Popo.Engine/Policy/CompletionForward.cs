using TorchSharp;
using static TorchSharp.torch;

namespace Popo.Engine.Policy;

/// <summary>The policy's outputs at the completion positions of some rows of a generation batch.</summary>
public sealed record CompletionOutputs(Tensor Logits, Tensor Hidden, Tensor Ids, Tensor Mask) : IDisposable
{
    public void Dispose() { Logits.Dispose(); Hidden.Dispose(); Ids.Dispose(); Mask.Dispose(); }
}

public static class CompletionForward
{
    /// <summary>
    /// Runs the policy over the selected rows and keeps the completion part: the logits that predict
    /// completion token t sit at position P + t - 1 (only those n positions go through the head); the hidden
    /// state of completion token t at P + t.
    /// Trailing columns where none of the rows has a completion token are cut off first.
    /// </summary>
    public static CompletionOutputs Run(IPolicy policy, GenerationBatch batch, Tensor rows)
    {
        using var scope = NewDisposeScope();
        var mask = batch.CompletionMask.index_select(0, rows);                          // [b,N]
        // dim must be named: a bare literal 0 binds to sum(ScalarType? type), a full sum in uint8.
        var used = (mask.sum(dim: 0) > 0).cpu().data<bool>().ToArray();                // [N] column used by some row
        long n = Math.Max(1, Array.LastIndexOf(used, true) + 1);                        // last used column + 1
        int p = batch.PromptLength;
        var ids = batch.InputIds.index_select(0, rows)[.., ..(int)(p + n)];             // [b,P+n]
        var attention = batch.AttentionMask.index_select(0, rows)[.., ..(int)(p + n)];
        var positions = batch.PositionIds.index_select(0, rows)[.., ..(int)(p + n)];
        var (logits, hidden) = policy.Forward(ids, attention, positions, p - 1, n);    // [b,n,V], [b,P+n,D]
        var outputs = new CompletionOutputs(
            logits,                                                                    // [b,n,V]
            hidden[.., p..(int)(p + n), ..],                                           // [b,n,D]
            batch.CompletionIds.index_select(0, rows)[.., ..(int)n],                   // [b,n]
            mask[.., ..(int)n]);                                                       // [b,n]
        outputs.Logits.MoveToOuterDisposeScope(); outputs.Hidden.MoveToOuterDisposeScope();
        outputs.Ids.MoveToOuterDisposeScope(); outputs.Mask.MoveToOuterDisposeScope();
        return outputs;
    }
}
