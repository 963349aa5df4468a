using TorchSharp;
using static TorchSharp.torch;

namespace Popo.Engine.Model;

/// <summary>
/// Preallocated keys and values per layer, [B, H_kv, capacity, d] each, filled left to right. A forward pass
/// with a cache writes its new keys/values at [Length, Length + T) and attends over [0, Length + T); the
/// model advances <see cref="Length"/> once all layers have written, so the prefix is never recomputed.
/// Only the first <see cref="Rows"/> of the B allocated rows are in use: <see cref="SelectRows"/> gathers rows
/// in place, so a sampler can prefill a few distinct prompts and fan them out, or drop finished rows.
/// </summary>
internal sealed class KvCache : IDisposable
{
    private readonly Tensor[] keys;
    private readonly Tensor[] values;

    public int Capacity { get; }
    public int Length { get; private set; }
    /// <summary>Rows allocated: the most <see cref="Rows"/> can ever be.</summary>
    public long BatchSize { get; }
    /// <summary>Rows in use; a forward pass with this cache must feed exactly this many.</summary>
    public long Rows { get; private set; }

    public KvCache(ModelConfig config, long batchSize, int capacity, Device device, ScalarType dtype)
    {
        Capacity = capacity;
        BatchSize = batchSize;
        Rows = batchSize;
        keys = new Tensor[config.NumHiddenLayers];
        values = new Tensor[config.NumHiddenLayers];
        for (var l = 0; l < config.NumHiddenLayers; l++)
        {
            // Uninitialised: a slot is only ever read (through Append's view) after it has been written.
            keys[l] = torch.empty([batchSize, config.NumKeyValueHeads, capacity, config.HeadDim], dtype: dtype, device: device).DetachFromDisposeScope();
            values[l] = torch.empty([batchSize, config.NumKeyValueHeads, capacity, config.HeadDim], dtype: dtype, device: device).DetachFromDisposeScope();
        }
    }

    /// <summary>Stores k, v [Rows,H_kv,T,d] of <paramref name="layer"/> after the cached prefix; returns views over prefix + new, [Rows,H_kv,Length+T,d].</summary>
    public (Tensor Keys, Tensor Values) Append(int layer, Tensor k, Tensor v)
    {
        var t = (int)k.shape[2];
        if (Length + t > Capacity)
            throw new InvalidOperationException($"KV cache overflow: {Length} cached + {t} new positions exceed its capacity {Capacity}");
        if (k.shape[0] != Rows)
            throw new InvalidOperationException($"KV cache holds {Rows} rows but the input has {k.shape[0]}");
        using var keysInUse = keys[layer].narrow(0, 0, Rows);
        using var valuesInUse = values[layer].narrow(0, 0, Rows);
        keysInUse.narrow(2, Length, t).copy_(k);
        valuesInUse.narrow(2, Length, t).copy_(v);
        return (keysInUse.narrow(2, 0, Length + t), valuesInUse.narrow(2, 0, Length + t));
    }

    /// <summary>
    /// Row i becomes what row index[i] was (index: int64 [R'] of rows in use, R' &lt;= <see cref="BatchSize"/>,
    /// repeats allowed); then <see cref="Rows"/> = R'. Copies only the filled positions [0, Length).
    /// </summary>
    public void SelectRows(Tensor index)
    {
        var rows = index.shape[0];
        if (index.dim() != 1 || rows > BatchSize)
            throw new ArgumentException($"row index must be 1-D with at most {BatchSize} entries, got [{string.Join(",", index.shape)}]");
        if (Length > 0)
        {
            using var scope = torch.NewDisposeScope();
            foreach (var buffer in keys.Concat(values))
            {
                // Gather first, then write: the destination rows overlap the source rows.
                var gathered = buffer.narrow(0, 0, Rows).narrow(2, 0, Length).index_select(0, index);
                buffer.narrow(0, 0, rows).narrow(2, 0, Length).copy_(gathered);
                gathered.Dispose();
            }
        }
        Rows = rows;
    }

    internal void Advance(int t) => Length += t;

    public void Dispose()
    {
        foreach (var t in keys) t.Dispose();
        foreach (var t in values) t.Dispose();
    }
}
