using static TorchSharp.torch;

namespace Popo.Engine.Model;

/// <summary>
/// A padding-free forward (`padding_free`, verl's remove-padding): the real tokens of a right- and left-padded
/// [B,T] batch travel as one [1,L] row through every per-token op (embedding, norms, projections, MLP, residuals),
/// so those cost L = the real tokens, not B x T. Only the attention core, where rows must not see each other, runs
/// on the padded [B,T] layout: q, k and v are scattered into it (zeros at padding, which the mask hides) and the
/// output is gathered back. Each token's value is the padded forward's.
/// </summary>
internal sealed class Packing
{
    private Packing(Tensor index, long rows, long columns) => (Index, Rows, Columns) = (index, rows, columns);

    /// <summary>[L] flat positions b * T + t of the real tokens, ascending.</summary>
    public Tensor Index { get; }
    /// <summary>B of the padded layout.</summary>
    public long Rows { get; }
    /// <summary>T of the padded layout.</summary>
    public long Columns { get; }

    /// <summary>The packing of mask [B,T] (1 = real token); null when no position is padding.</summary>
    public static Packing? Of(Tensor mask)
    {
        var index = mask.reshape(-1).nonzero().squeeze(1);
        if (index.shape[0] == mask.NumberOfElements) { index.Dispose(); return null; }
        return new Packing(index, mask.shape[0], mask.shape[1]);
    }

    /// <summary>This packing over a saved copy of <see cref="Index"/> (activation checkpointing's recomputation).</summary>
    public Packing With(Tensor index) => new(index, Rows, Columns);

    /// <summary>[B,T,...] -> [1,L,...]: the real positions, in order.</summary>
    public Tensor Pack(Tensor padded) =>
        padded.reshape([Rows * Columns, .. padded.shape[2..]]).index_select(0, Index).unsqueeze(0);

    /// <summary>[1,L,C] -> [B,T,C], zeros at padding.</summary>
    public Tensor Unpack(Tensor packed)
    {
        var c = packed.shape[^1];
        return zeros(Rows * Columns, c, dtype: packed.dtype, device: packed.device)
            .index_copy(0, Index, packed.reshape(-1, c)).view(Rows, Columns, c);
    }
}
