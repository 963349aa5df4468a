using static TorchSharp.torch;

namespace Popo.Engine.Model;

/// <summary>
/// Mixed precision for one model (docs/design.md §10): parameters stay in their storage dtype (the float32 master
/// weights), the matmuls run in <see cref="Dtype"/> (bfloat16). A training forward casts each weight where it is
/// used, so autograd returns float32 gradients to the masters and AdamW never sees bfloat16; the casts saved for
/// backward are the bf16 compute copy, and with gradient checkpointing only one layer's casts live at a time.
/// A no-grad forward (rollouts, evaluation) reads a cached bf16 copy instead, so a decode step reads 2 bytes per
/// weight, not 4 + a cast; the cache is dropped whenever the weights may change (a training forward,
/// <see cref="Invalidate"/>).
/// </summary>
internal sealed class ComputePrecision : IDisposable
{
    private readonly Dictionary<Tensor, Tensor> cache = new(ReferenceEqualityComparer.Instance);

    /// <summary>The matmul dtype; null = the parameters' own dtype (no casts at all: the float32 and float64 paths are unchanged).</summary>
    public ScalarType? Dtype { get; set; }

    /// <summary>Whether no-grad forwards keep a cast copy of the weights (false for the EMA target / reference: no extra copy).</summary>
    public bool CacheWeights { get; set; } = true;

    /// <summary>Set by the model for the duration of a forward pass that builds a graph.</summary>
    internal bool Training { get; set; }

    /// <summary>Parameters with a cached cast (for tests and benchmarks).</summary>
    public int CachedCount => cache.Count;

    /// <summary>True when activations of a model stored in <paramref name="storage"/> are cast to another dtype.</summary>
    public bool Casts(ScalarType storage) => Dtype is ScalarType d && d != storage;

    /// <summary>The parameter as the matmul reads it: itself, a differentiable cast (training), or the cached cast (no grad).</summary>
    public Tensor Weight(Tensor p)
    {
        if (Dtype is not ScalarType d || p.dtype == d) return p;
        if (Training || !CacheWeights || is_grad_enabled()) return p.to(d);
        if (!cache.TryGetValue(p, out var cast))
        {
            using (no_grad()) cast = p.detach().to(d).DetachFromDisposeScope();
            cache[p] = cast;
        }
        return cast;
    }

    /// <summary>An activation in the compute dtype.</summary>
    public Tensor Input(Tensor x) => Dtype is ScalarType d && x.dtype != d ? x.to(d) : x;

    /// <summary>Drops the cached cast weights (call after the master weights changed).</summary>
    public void Invalidate()
    {
        foreach (var t in cache.Values) t.Dispose();
        cache.Clear();
    }

    public void Dispose() => Invalidate();
}
