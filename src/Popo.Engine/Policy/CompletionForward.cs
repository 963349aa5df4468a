using Popo.Engine.Rollout;
using static TorchSharp.torch;

namespace Popo.Engine.Policy;

/// <summary>
/// The policy's outputs at the completion positions of some rows of a generation batch: the hidden states that
/// predict the completion tokens (HeadInput, position P + t - 1 for token t) and those of the completion tokens
/// themselves (Hidden, position P + t), with the tokens and their mask. The head is applied on request only.
/// </summary>
internal sealed class CompletionOutputs(IPolicy policy, Tensor headInput, Tensor hidden, Tensor ids, Tensor mask) : IDisposable
{
    private Tensor? logits;

    /// <summary>[b,n,D] hidden states at P-1 .. P+n-2.</summary>
    public Tensor HeadInput { get; } = headInput;
    /// <summary>[b,n,D] hidden states of the completion tokens.</summary>
    public Tensor Hidden { get; } = hidden;
    /// <summary>[b,n] completion token ids.</summary>
    public Tensor Ids { get; } = ids;
    /// <summary>[b,n] completion mask.</summary>
    public Tensor Mask { get; } = mask;

    /// <summary>The full logits [b,n,V] that predict the completion tokens (materialised on first use; the objectives use <see cref="Statistics"/>).</summary>
    public Tensor Logits => logits ??= policy.Logits(HeadInput).DetachFromDisposeScope();

    /// <summary>l [b,n] and (as asked) H [b,n] of the completion tokens at temperature T.</summary>
    public (Tensor LogProbs, Tensor? Entropy) Statistics(double temperature, EntropyNeed entropy) =>
        policy.TokenStatistics(HeadInput, Ids, temperature, entropy, Mask);

    public void Dispose() { logits?.Dispose(); HeadInput.Dispose(); Hidden.Dispose(); Ids.Dispose(); Mask.Dispose(); }
}

internal static class CompletionForward
{
    /// <summary>
    /// Runs the policy over the selected rows and keeps the completion part (see <see cref="CompletionOutputs"/>).
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
        var hidden = policy.ForwardHidden(ids, attention, positions);                  // [b,P+n,D]
        var outputs = new CompletionOutputs(policy,
            hidden.narrow(1, p - 1, n),                                                // [b,n,D] predicts completion token t
            hidden[.., p..(int)(p + n), ..],                                           // [b,n,D]
            batch.CompletionIds.index_select(0, rows)[.., ..(int)n],                   // [b,n]
            mask[.., ..(int)n]);                                                       // [b,n]
        outputs.HeadInput.MoveToOuterDisposeScope(); outputs.Hidden.MoveToOuterDisposeScope();
        outputs.Ids.MoveToOuterDisposeScope(); outputs.Mask.MoveToOuterDisposeScope();
        return outputs;
    }
}
