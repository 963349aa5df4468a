using Popo.Engine.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Popo.Engine.Model;

/// <summary>
/// Rotary position embedding in the rotate-half convention (HF Qwen2): for head dimension d and pair index
/// i &lt; d/2, inv_freq_i = theta^(-2i/d); angle(p, i) = p * inv_freq_i; x' = x * cos + rotate_half(x) * sin,
/// with cos/sin laid out as [angles, angles] and rotate_half(x) = [-x2, x1]. Angles are computed in at least
/// float32 (float64 for a float64 model) and cast to the model dtype. The sin table is stored signed,
/// [-sin, sin], so rotate_half(x) * sin = roll(x, d/2) * signed sin: one kernel instead of narrow, neg and cat
/// (x2 * -s equals -x2 * s exactly), which matters in decode, where each op's fixed cost dominates.
/// </summary>
internal sealed class RotaryEmbedding : IDisposable
{
    private readonly Tensor invFreq; // [d/2]
    private readonly ScalarType dtype;

    public RotaryEmbedding(int headDim, double theta, Device device, ScalarType dtype)
    {
        this.dtype = dtype;
        var wide = dtype == ScalarType.Float64 ? ScalarType.Float64 : ScalarType.Float32;
        using var exponents = torch.arange(0, headDim, 2, dtype: ScalarType.Float64) / headDim;
        using var freq = torch.pow(theta, exponents).reciprocal();
        invFreq = freq.to(wide, device).DetachFromDisposeScope();
    }

    /// <summary>cos and signed sin tables for position ids [B,T], each [B,1,T,d] in the model dtype (broadcast over heads).</summary>
    public (Tensor Cos, Tensor SignedSin) Tables(Tensor positionIds)
    {
        using var scope = torch.NewDisposeScope();
        var angles = positionIds.to(invFreq.dtype).unsqueeze(-1) * invFreq; // [B,T,d/2]
        var cos = angles.cos();
        var sin = angles.sin();
        var cosTable = torch.cat([cos, cos], -1).unsqueeze(1);               // [B,1,T,d]
        var sinTable = torch.cat([sin.neg(), sin], -1).unsqueeze(1);         // [B,1,T,d]
        return (cosTable.to(dtype).MoveToOuterDisposeScope(), sinTable.to(dtype).MoveToOuterDisposeScope());
    }

    public void Dispose() => invFreq.Dispose();

    /// <summary>x [B,H,T,d] rotated by the tables of <see cref="Tables"/>: x * cos + [x2, x1] * [-sin, sin].</summary>
    public static Tensor Apply(Tensor x, Tensor cos, Tensor signedSin)
    {
        using var scope = torch.NewDisposeScope();
        var swapped = x.roll(x.shape[^1] / 2, -1);                            // [x2, x1]
        return (x * cos).Plus(swapped * signedSin).MoveToOuterDisposeScope();
    }
}
