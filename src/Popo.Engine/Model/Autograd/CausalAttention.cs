using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.autograd;

namespace Popo.Engine.Model;

/// <summary>
/// softmax(q k^T / sqrt(d), masked) v of a forward without a cache, in chunks of query positions. A query never sees a
/// later key, so the chunk of positions [t0, t1) multiplies by keys [0, t1) only: at 64 positions a chunk the products
/// over T = 640 cost 11/20 of the full square. The backward works from each chunk's saved probabilities P, with
/// D = rowsum(dO o), which equals rowsum(dP P) and costs a pass over [rows, d] instead of [rows, L]:
///   dV = P^T dO,   dS = P (dO V^T - D),   dQ = dS K / sqrt(d),   dK = dS^T Q / sqrt(d).
/// dK and dV collect their chunks in float32 (at least), so a bf16 run rounds them once. One Qwen2.5-0.5B layer's
/// attention at 8 rows of 640, bf16, two threads, forward + backward from a reused heap: 133 ms through autograd's
/// unchunked masked softmax, 78 ms here, 254 in libtorch's fused kernel (scripts/layer-op-cost.fsx). Probabilities
/// kept for the backward: 11/20 of the unchunked path's at T = 640.
/// </summary>
internal sealed class CausalAttention : SingleTensorFunction<CausalAttention>
{
    public override string Name => nameof(CausalAttention);

    /// <summary>
    /// q [B,Hkv,T*G,d] with query position t of group g at row t*G + g, k and v [B,Hkv,T,d], allowed [B,1,T,T] boolean
    /// (true = may attend; every query sees at least itself, and never a later key) -> [B,Hkv,T*G,d]. Without a graph
    /// (no gradient asked for) nothing is kept.
    /// </summary>
    public static Tensor Run(Tensor q, Tensor k, Tensor v, Tensor allowed, double scale, int chunk)
    {
        if (is_grad_enabled() && (q.requires_grad || k.requires_grad || v.requires_grad))
            return apply(q, k, v, allowed, new Settings(scale, chunk));
        using var scope = NewDisposeScope();
        return Forward(q, k, v, allowed, new Settings(scale, chunk), null).MoveToOuterDisposeScope();
    }

    private sealed record Settings(double Scale, int Chunk);

    public override Tensor forward(AutogradContext ctx, params object[] vars)
    {
        Tensor q = (Tensor)vars[0], k = (Tensor)vars[1], v = (Tensor)vars[2], allowed = (Tensor)vars[3];
        var s = (Settings)vars[4];
        var probabilities = new List<Tensor>();
        var o = Forward(q, k, v, allowed, s, probabilities);
        ctx.save_for_backward([q, k, v, o.detach(), .. probabilities]);
        ctx.save_data("settings", s);
        return o;
    }

    /// <summary>The chunks' products; each chunk's probabilities go to <paramref name="keep"/> when given.</summary>
    private static Tensor Forward(Tensor q, Tensor k, Tensor v, Tensor allowed, Settings s, List<Tensor>? keep)
    {
        long b = q.shape[0], heads = q.shape[1], t = k.shape[2], g = q.shape[2] / t;
        var o = empty_like(q);
        using var masked = double.NegativeInfinity.ToScalar();
        using var scale = s.Scale.ToScalar();
        using (NewDisposeScope())
        {
            var blocked = allowed.logical_not();                                                    // [B,1,T,T]
            foreach (var (t0, t1) in Chunks(t, s.Chunk))
            {
                var scores = q.narrow(2, t0 * g, (t1 - t0) * g).matmul(k.narrow(2, 0, t1).transpose(-1, -2)).mul_(scale);   // [B,Hkv,n*G,t1]
                scores.view(b, heads, t1 - t0, g, t1).masked_fill_(blocked.narrow(2, t0, t1 - t0).narrow(3, 0, t1).unsqueeze(3), masked);
                var p = scores.softmax(-1);
                o.narrow(2, t0 * g, (t1 - t0) * g).copy_(p.matmul(v.narrow(2, 0, t1)));
                if (keep is not null) keep.Add(p.MoveToOuterDisposeScope());   // the caller's scope frees the handle; the graph keeps its own reference
            }
        }
        return o;
    }

    public override List<Tensor> backward(AutogradContext ctx, Tensor grad)
    {
        HandedGradients.ReleaseEarlier();
        var s = (Settings)ctx.get_data("settings");
        Tensor dq, dk, dv;
        using (NewDisposeScope())
        {
            var saved = ctx.get_saved_variables();
            Tensor q = saved[0], k = saved[1], v = saved[2], o = saved[3];
            long t = k.shape[2], g = q.shape[2] / t;
            var wide = k.dtype == ScalarType.Float64 ? ScalarType.Float64 : ScalarType.Float32;
            using var scale = s.Scale.ToScalar();
            var d = grad.mul(o).sum([-1], keepdim: true);                                            // [B,Hkv,T*G,1]
            dq = empty_like(q);
            var dkWide = zeros(k.shape, dtype: wide, device: k.device);
            var dvWide = zeros(v.shape, dtype: wide, device: v.device);
            var i = 4;
            foreach (var (t0, t1) in Chunks(t, s.Chunk))
            {
                using var chunk = NewDisposeScope();
                long rows = (t1 - t0) * g;
                Tensor p = saved[i++], dO = grad.narrow(2, t0 * g, rows), qc = q.narrow(2, t0 * g, rows);
                Tensor kc = k.narrow(2, 0, t1), vc = v.narrow(2, 0, t1);
                dvWide.narrow(2, 0, t1).add_(p.transpose(-1, -2).matmul(dO));
                var ds = dO.matmul(vc.transpose(-1, -2)).sub_(d.narrow(2, t0 * g, rows)).mul_(p);   // [B,Hkv,n*G,t1]
                dq.narrow(2, t0 * g, rows).copy_(ds.matmul(kc).mul_(scale));
                dkWide.narrow(2, 0, t1).add_(ds.transpose(-1, -2).matmul(qc).mul_(scale));
            }
            dk = dkWide.to(k.dtype).DetachFromDisposeScope();
            dv = dvWide.to(v.dtype).DetachFromDisposeScope();
            dq.DetachFromDisposeScope();
        }
        HandedGradients.Hand(grad);
        return [HandedGradients.Hand(dq), HandedGradients.Hand(dk), HandedGradients.Hand(dv), null!, null!];
    }

    /// <summary>[t0, t1) of each chunk of <paramref name="chunk"/> query positions.</summary>
    private static IEnumerable<(long From, long To)> Chunks(long t, int chunk)
    {
        for (long t0 = 0; t0 < t; t0 += chunk) yield return (t0, Math.Min(t, t0 + chunk));
    }
}
