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
    /// A forward without a cache on the CPU whose scores B x H x T x L number at most this many runs as explicit products
    /// and a masked softmax in chunks of query positions (<see cref="CausalAttention"/>); longer ones, every cached
    /// forward, and every forward on another device (CUDA's fused kernels are flash attention, which these CPU
    /// measurements say nothing about) run libtorch's fused attention. 64 Mi (128 MiB a bf16 tensor; the memory
    /// preflight counts scores and probabilities per layer) covers the real-scale rows' micro-batches (8 x 14 heads x
    /// 640^2 = 46 Mi). Measured forward + backward, one
    /// Zen 4 core, T = 128, heads of 64: the fused kernel took 2.8x this path's time in bf16 (52.9 ms against 18.8 for
    /// autograd's unchunked masked softmax and 13.0 here, medium-24M's layer) and 1.3x in float32 (29.4 against 22.9);
    /// at T = 640, two threads, bf16: 254 ms fused, 133 unchunked, 78 here (scripts/layer-op-cost.fsx). Settable for the
    /// tests, which run both paths on tiny shapes.
    /// </summary>
    internal static long ExplicitMaxScores { get; set; } = 64L << 20;

    /// <summary>Query positions per chunk of <see cref="CausalAttention"/>: 64 measured fastest at T = 128 and 640 (32 and 128 within 10%). Settable for the tests.</summary>
    internal static int QueryChunk { get; set; } = 64;

    /// <summary>
    /// x [B,T,D]; cos/signed sin [B,1,T,d] (<see cref="RotaryEmbedding.Tables"/>); allowed [B,1,T,L] boolean (true = may
    /// attend); cache (if any) supplies and receives keys and values. With a packing, x is the packed [1,L,D] and so is
    /// the result; the tables and the mask stay [B,...,T,...].
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
        long l = k.shape[2];
        Tensor o;
        // The G query heads of each key head fold into the query axis instead of repeating K/V G times.
        if (cache is null && q.device.type == DeviceType.CPU && b * heads * t * l <= ExplicitMaxScores)
        {
            // Position-major ([t][g]): a chunk of query positions is a contiguous run of rows.
            var qg = q.reshape(b, kvHeads, groups, t, headDim).transpose(2, 3).reshape(b, kvHeads, t * groups, headDim);
            o = CausalAttention.Run(qg, k, v, allowed, 1.0 / Math.Sqrt(headDim), QueryChunk)
                .view(b, kvHeads, t, groups, headDim).permute(0, 2, 1, 3, 4);     // [B,T,Hkv,G,d]
        }
        else
        {
            var qg = q.reshape(b, kvHeads, groups * t, headDim);                                   // [B,Hkv,G*T,d], group-major
            var grouped = allowed.expand(b, groups, t, l).reshape(b, 1, groups * t, l);             // [B,1,G*T,L]
            o = nn.functional.scaled_dot_product_attention(qg, k, v, grouped)                      // [B,Hkv,G*T,d]
                .reshape(b, heads, t, headDim).transpose(1, 2);                                    // [B,T,H,d]
        }
        o = o.reshape(b, t, heads * headDim);                                    // [B,T,H*d]
        if (packing is not null) o = packing.Pack(o);                            // [1,L,H*d]
        return Projection.Apply(o_proj, o, precision, lora).MoveToOuterDisposeScope();
    }

}
