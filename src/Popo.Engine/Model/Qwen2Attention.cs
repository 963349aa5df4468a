using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Popo.Engine.Model;

/// <summary>
/// Grouped-query causal self-attention of Qwen2: q/k/v projections with bias, o without; rotary embedding on
/// q and k; query head h reads key/value head h / (H / H_kv). Field names are the HF tensor names.
/// </summary>
internal sealed class Qwen2Attention : nn.Module
{
#pragma warning disable IDE1006 // field names are the HF tensor names
    private readonly Linear q_proj;
    private readonly Linear k_proj;
    private readonly Linear v_proj;
    private readonly Linear o_proj;
#pragma warning restore IDE1006
    private readonly int heads;
    private readonly int kvHeads;
    private readonly int headDim;
    private readonly ComputePrecision? precision;
    private readonly AdapterSlot? lora;
    // Held for the module's life: a temporary Scalar can be finalized mid-call (Optimizers.AdamW says why).
    private readonly Scalar scale, masked;

    public Qwen2Attention(ModelConfig config, Device device, ScalarType dtype, ComputePrecision? precision = null, AdapterSlot? lora = null) : base(nameof(Qwen2Attention))
    {
        this.precision = precision;
        this.lora = lora;
        heads = config.NumAttentionHeads;
        kvHeads = config.NumKeyValueHeads;
        headDim = config.HeadDim;
        q_proj = nn.Linear(config.HiddenSize, heads * headDim, hasBias: true, device: device, dtype: dtype);
        k_proj = nn.Linear(config.HiddenSize, kvHeads * headDim, hasBias: true, device: device, dtype: dtype);
        v_proj = nn.Linear(config.HiddenSize, kvHeads * headDim, hasBias: true, device: device, dtype: dtype);
        o_proj = nn.Linear(heads * headDim, config.HiddenSize, hasBias: false, device: device, dtype: dtype);
        scale = (1.0 / Math.Sqrt(headDim)).ToScalar();
        masked = double.NegativeInfinity.ToScalar();
        RegisterComponents();
    }

    /// <summary>
    /// Products of at most this many (query, key) pairs per head run as explicit matmuls and a masked softmax
    /// (<see cref="Explicit"/>); longer ones as libtorch's fused attention. Measured on Zen 4, one thread, forward + backward,
    /// GQA 8/2 heads of 64 at T = 128: the fused CPU kernel took 1.3x (float32) and 2.4x (bf16) the explicit path's time; the
    /// explicit path keeps [B,H,T,L] scores and probabilities, which the fused kernel never does, so long sequences stay fused.
    /// float32 and float64 compute (this property): off (0), the fused kernel; the gain there was within the noise of a
    /// loaded machine and small-3M (heads of 32) may have lost. bf16 compute: <see cref="ExplicitMaxScoresBf16"/>.
    /// Settable for the bench and the tests, which run both paths on tiny shapes.
    /// </summary>
    internal static long ExplicitMaxPairs { get; set; }

    /// <summary>
    /// bf16 compute's limit, on the scores tensor's elements B x H x T x L: 64 Mi (128 MiB a tensor; the memory
    /// preflight already counts scores and probabilities per layer). bf16 is where the fused kernel is slowest: 2.4x the
    /// explicit path's time at T = 128 and 4.5x at T = 640, which covers the real-scale rows' micro-batches (8 x 14 heads x
    /// 640^2 = 46 Mi). It was off for every dtype after one clean-clone run in which two same-seed runs with it on
    /// differed (reliability/busy-machine, float32); that test passed 7 of 7 since with it on, and HeldScalars has since
    /// removed a collection race that could change a value mid-call; the test now has a bf16 case that runs this path.
    /// </summary>
    internal static long ExplicitMaxScoresBf16 { get; set; } = 64L << 20;

    /// <summary>
    /// x [B,T,D]; cos/signed sin [B,1,T,d] (<see cref="RotaryEmbedding.Tables"/>); allowed [B,1,G*T,L] boolean (true = may attend), already expanded over the
    /// G = H/H_kv query heads that share a key head; cache (if any) supplies and receives keys and values.
    /// With a packing, x is the packed [1,L,D] and so is the result; the tables and the mask stay [B,...,T,...].
    /// </summary>
    public Tensor Forward(Tensor x, Tensor cos, Tensor sin, Tensor allowed, KvCache? cache, int layer, Packing? packing = null)
    {
        using var scope = torch.NewDisposeScope();
        long b = packing?.Rows ?? x.shape[0], t = packing?.Columns ?? x.shape[1];
        var groups = heads / kvHeads;
        Tensor Padded(Tensor y) => packing is null ? y : packing.Unpack(y);
        var q = Padded(Projection.Apply(q_proj, x, precision, lora)).view(b, t, heads, headDim).transpose(1, 2);   // [B,H,T,d]
        var k = Padded(Projection.Apply(k_proj, x, precision, lora)).view(b, t, kvHeads, headDim).transpose(1, 2); // [B,Hkv,T,d]
        var v = Padded(Projection.Apply(v_proj, x, precision, lora)).view(b, t, kvHeads, headDim).transpose(1, 2); // [B,Hkv,T,d]
        q = RotaryEmbedding.Apply(q, cos, sin);
        k = RotaryEmbedding.Apply(k, cos, sin);
        if (cache is not null) (k, v) = cache.Append(layer, k, v);              // [B,Hkv,L,d]
        // Fold the G query heads of each key head into the query axis instead of repeating K/V G times.
        var qg = q.reshape(b, kvHeads, groups * t, headDim);                     // [B,Hkv,G*T,d]
        var o = cache is null && UseExplicit(qg, k, t)
            ? Explicit(qg, k, v, allowed)
            : nn.functional.scaled_dot_product_attention(qg, k, v, allowed);     // [B,Hkv,G*T,d]
        o = o.reshape(b, heads, t, headDim).transpose(1, 2).reshape(b, t, heads * headDim); // [B,T,H*d]
        if (packing is not null) o = packing.Pack(o);                            // [1,L,H*d]
        return Projection.Apply(o_proj, o, precision, lora).MoveToOuterDisposeScope();
    }

    /// <summary>Whether a forward without a cache runs <see cref="Explicit"/>: q [B,Hkv,G*T,d], k [B,Hkv,L,d].</summary>
    private static bool UseExplicit(Tensor q, Tensor k, long t) =>
        q.dtype == ScalarType.BFloat16
            ? q.shape[0] * q.shape[1] * q.shape[2] * k.shape[2] <= ExplicitMaxScoresBf16   // B x H x T x L
            : t * k.shape[2] <= ExplicitMaxPairs;

    /// <summary>softmax(q k^T / sqrt(d), masked) v as two batched matmuls: SDPA's math, q [B,Hkv,G*T,d], mask [B,1,G*T,L].</summary>
    private Tensor Explicit(Tensor q, Tensor k, Tensor v, Tensor mask)
    {
        var scores = q.matmul(k.transpose(-1, -2)).mul_(scale);                               // [B,Hkv,G*T,L]
        var probabilities = scores.masked_fill(mask.logical_not(), masked).softmax(-1);
        return probabilities.matmul(v);                                                        // [B,Hkv,G*T,d]
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing) { scale.Dispose(); masked.Dispose(); }
        base.Dispose(disposing);
    }
}
