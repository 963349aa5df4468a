using TorchSharp;
using static TorchSharp.torch;

namespace Popo.Engine.Model;

/// <summary>
/// Preallocated keys and values per layer, [B, H_kv, capacity, d] each, filled left to right. A forward pass
/// with a cache writes its new keys/values at [Length, Length + T) and attends over [0, Length + T); the
/// model advances <see cref="Length"/> once all layers have written, so the prefix is never recomputed.
/// </summary>
public sealed class KvCache : IDisposable
{
    private readonly Tensor[] keys;
    private readonly Tensor[] values;

    public int Capacity { get; }
    public int Length { get; private set; }
    public long BatchSize { get; }

    public KvCache(ModelConfig config, long batchSize, int capacity, Device device, ScalarType dtype)
    {
        Capacity = capacity;
        BatchSize = batchSize;
        keys = new Tensor[config.NumHiddenLayers];
        values = new Tensor[config.NumHiddenLayers];
        for (var l = 0; l < config.NumHiddenLayers; l++)
        {
            // Uninitialised: a slot is only ever read (through Append's view) after it has been written.
            keys[l] = torch.empty([batchSize, config.NumKeyValueHeads, capacity, config.HeadDim], dtype: dtype, device: device).DetachFromDisposeScope();
            values[l] = torch.empty([batchSize, config.NumKeyValueHeads, capacity, config.HeadDim], dtype: dtype, device: device).DetachFromDisposeScope();
        }
    }

    /// <summary>Stores k, v [B,H_kv,T,d] of <paramref name="layer"/> after the cached prefix; returns views over prefix + new, [B,H_kv,Length+T,d].</summary>
    public (Tensor Keys, Tensor Values) Append(int layer, Tensor k, Tensor v)
    {
        var t = (int)k.shape[2];
        if (Length + t > Capacity)
            throw new InvalidOperationException($"KV cache overflow: {Length} cached + {t} new positions exceed its capacity {Capacity}");
        keys[layer].narrow(2, Length, t).copy_(k);
        values[layer].narrow(2, Length, t).copy_(v);
        return (keys[layer].narrow(2, 0, Length + t), values[layer].narrow(2, 0, Length + t));
    }

    internal void Advance(int t) => Length += t;

    public void Dispose()
    {
        foreach (var t in keys) t.Dispose();
        foreach (var t in values) t.Dispose();
    }
}
