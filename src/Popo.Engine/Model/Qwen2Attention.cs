using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Popo.Engine.Model;

/// <summary>
/// Grouped-query causal self-attention of Qwen2: q/k/v projections with bias, o without; rotary embedding on
/// q and k; query head h reads key/value head h / (H / H_kv). Field names are the HF tensor names.
/// </summary>
public sealed class Qwen2Attention : nn.Module
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
        RegisterComponents();
    }

    /// <summary>
    /// x [B,T,D]; cos/signed sin [B,1,T,d] (<see cref="RotaryEmbedding.Tables"/>); allowed [B,1,T,L] boolean (true = may attend,
    /// broadcast over the heads), or null for plain causal attention over T = L positions (no cache, no padding); cache (if any)
    /// supplies and receives keys and values. With a packing, x is the packed [1,L,D] and so is the result; the tables and the
    /// mask stay [B,...,T,...].
    /// </summary>
    public Tensor Forward(Tensor x, Tensor cos, Tensor sin, Tensor? allowed, KvCache? cache, int layer, Packing? packing = null)
    {
        using var scope = torch.NewDisposeScope();
        long b = packing?.Rows ?? x.shape[0], t = packing?.Columns ?? x.shape[1];
        Tensor Padded(Tensor y) => packing is null ? y : packing.Unpack(y);
        var q = Padded(Projection.Apply(q_proj, x, precision, lora)).view(b, t, heads, headDim).transpose(1, 2);   // [B,H,T,d]
        var k = Padded(Projection.Apply(k_proj, x, precision, lora)).view(b, t, kvHeads, headDim).transpose(1, 2); // [B,Hkv,T,d]
        var v = Padded(Projection.Apply(v_proj, x, precision, lora)).view(b, t, kvHeads, headDim).transpose(1, 2); // [B,Hkv,T,d]
        q = RotaryEmbedding.Apply(q, cos, sin);
        k = RotaryEmbedding.Apply(k, cos, sin);
        if (cache is not null) (k, v) = cache.Append(layer, k, v);              // [B,Hkv,L,d]
        var o = cache is null ? Repeated(q, k, v, allowed) : Folded(q, k, v, allowed ?? throw new ArgumentException("a cached forward needs its mask"));
        o = o.transpose(1, 2).reshape(b, t, heads * headDim);                    // [B,T,H*d]
        if (packing is not null) o = packing.Pack(o);                            // [1,L,H*d]
        return Projection.Apply(o_proj, o, precision, lora).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// A forward over whole sequences (training, scoring): each key head repeated for its G query heads (K and V are H_kv / H
    /// of the activations), the mask [B,1,T,L] broadcast over heads, and without padding no mask at all: libtorch's fused CPU
    /// attention with is_causal skips the blocks above the diagonal. Returns [B,H,T,d].
    /// </summary>
    private Tensor Repeated(Tensor q, Tensor k, Tensor v, Tensor? allowed)
    {
        var groups = heads / kvHeads;
        if (groups > 1)
        {
            long b = k.shape[0], l = k.shape[2];
            k = k.unsqueeze(2).expand(b, kvHeads, groups, l, headDim).reshape(b, heads, l, headDim); // [B,H,L,d], head h reads h / G
            v = v.unsqueeze(2).expand(b, kvHeads, groups, l, headDim).reshape(b, heads, l, headDim);
        }
        return allowed is null
            ? nn.functional.scaled_dot_product_attention(q, k, v, is_casual: true)
            : nn.functional.scaled_dot_product_attention(q, k, v, allowed);
    }

    /// <summary>
    /// A cached forward (prefill and decode): the G query heads of each key head folded into the query axis instead of repeating
    /// the cache G times, which a decode step would pay for every cached position. Returns [B,H,T,d].
    /// </summary>
    private Tensor Folded(Tensor q, Tensor k, Tensor v, Tensor allowed)
    {
        var groups = heads / kvHeads;
        long b = q.shape[0], t = q.shape[2], l = k.shape[2];
        var qg = q.reshape(b, kvHeads, groups * t, headDim);                                      // [B,Hkv,G*T,d]
        var mask = allowed.expand(b, groups, t, l).reshape(b, 1, groups * t, l);                  // [B,1,G*T,L]
        var o = nn.functional.scaled_dot_product_attention(qg, k, v, mask);                       // [B,Hkv,G*T,d]
        return o.reshape(b, heads, t, headDim);                                                   // [B,H,T,d]
    }
}
