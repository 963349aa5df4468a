using static TorchSharp.torch;
using static TorchSharp.torch.autograd;

namespace Popo.Engine.Model;

/// <summary>What the chunked head computes besides the token log-probs.</summary>
internal sealed record HeadSettings(double Temperature, int Chunk, ScalarType? ComputeDtype, bool Entropy);

/// <summary>
/// Token log-probs and entropies of the head without materialising [N, V] logits (docs/design.md §10):
/// z = h W^T / T in chunks of positions, l = z[y] - logsumexp(z), H = logsumexp(z) - sum_v p_v z_v.
/// Only h, the per-position logsumexp and H are kept for backward; the backward recomputes each chunk's
/// logits and applies the closed form
///   dL/dz = gl (onehot(y) - p) - gH p (log p + H),   dL/dh = (dL/dz / T) W,   dL/dW = (dL/dz / T)^T h,
/// so the head's peak memory is O(chunk x V) in both passes, plus dW itself. Under mixed precision the logits and
/// dL/dh matmuls run in the compute dtype; dW accumulates in place in float32 (no [V,D] temporary per chunk);
/// logsumexp, softmax and every gradient term stay in the hidden state's dtype (float32).
/// </summary>
internal sealed class ChunkedHead : MultiTensorFunction<ChunkedHead>
{
    public override string Name => nameof(ChunkedHead);

    /// <summary>hidden [N,D], weight [V,D], tokens [N] int64 -> (l [N], H [N]; zeros when the entropy is not asked for).</summary>
    public static (Tensor LogProbs, Tensor Entropy) Run(Tensor hidden, Tensor weight, Tensor tokens, HeadSettings settings)
    {
        var outputs = apply(hidden, weight, tokens, settings);
        return (outputs[0], outputs[1]);
    }

    public override List<Tensor> forward(AutogradContext ctx, params object[] vars)
    {
        Tensor hidden = (Tensor)vars[0], weight = (Tensor)vars[1], tokens = (Tensor)vars[2];
        var s = (HeadSettings)vars[3];
        long n = hidden.shape[0];
        var wide = hidden.dtype;
        var logp = empty(n, dtype: wide, device: hidden.device);
        var entropy = zeros(n, dtype: wide, device: hidden.device);
        var lse = empty(n, dtype: wide, device: hidden.device);
        using (NewDisposeScope())
        {
            var w = Compute(weight, s);
            for (long start = 0; start < n; start += s.Chunk)
            {
                using var chunk = NewDisposeScope();
                long c = Math.Min(s.Chunk, n - start);
                var z = Logits(hidden.narrow(0, start, c), w, wide, s);                    // [c,V]
                var lseC = z.logsumexp(-1);                                                 // [c]
                var tok = tokens.narrow(0, start, c).unsqueeze(-1);
                logp.narrow(0, start, c).copy_(z.gather(-1, tok).squeeze(-1) - lseC);
                if (s.Entropy)
                {
                    var p = (z - lseC.unsqueeze(-1)).exp_();
                    entropy.narrow(0, start, c).copy_(lseC - p.mul_(z).sum(-1));
                }
                lse.narrow(0, start, c).copy_(lseC);
            }
        }
        ctx.save_for_backward([hidden, weight, tokens, lse, entropy]);
        ctx.save_data("settings", s);
        ctx.set_materialize_grads(false);   // an output nobody back-propagates into arrives as an undefined gradient
        return [logp, entropy];
    }

    public override List<Tensor> backward(AutogradContext ctx, List<Tensor> grads)
    {
        HandedGradients.ReleaseEarlier();
        var s = (HeadSettings)ctx.get_data("settings");
        Tensor? gl = Defined(grads[0]), gh = Defined(grads[1]);
        Tensor dHidden;
        Tensor? dWeight;
        using (NewDisposeScope())
        {
            var saved = ctx.get_saved_variables();
            Tensor hidden = saved[0], weight = saved[1], tokens = saved[2], lse = saved[3], entropy = saved[4];
            long n = hidden.shape[0];
            var wide = hidden.dtype;
            dHidden = zeros_like(hidden);
            // dW goes straight into the weight's .grad (DirectGradient says why). A frozen head (LoRA, the EMA
            // target) needs no [V,D] gradient at all.
            dWeight = weight.requires_grad ? DirectGradient.Of(weight) : null;
            if (gl is not null || gh is not null)
            {
                var w = Compute(weight, s);
                for (long start = 0; start < n; start += s.Chunk)
                {
                    using var chunk = NewDisposeScope();
                    long c = Math.Min(s.Chunk, n - start);
                    var h = hidden.narrow(0, start, c);
                    var z = Logits(h, w, wide, s).sub_(lse.narrow(0, start, c).unsqueeze(-1));   // log p [c,V]
                    var p = z.exp();
                    // coefficient of -p: gl + gH (log p + H)
                    Tensor coef;
                    if (gh is not null)
                    {
                        coef = z.add_(entropy.narrow(0, start, c).unsqueeze(-1)).mul_(gh.narrow(0, start, c).unsqueeze(-1));
                        if (gl is not null) coef.add_(gl.narrow(0, start, c).unsqueeze(-1));
                    }
                    else coef = gl!.narrow(0, start, c).unsqueeze(-1);
                    var dz = p.mul_(coef).neg_();
                    if (gl is not null)
                        dz.scatter_add_(-1, tokens.narrow(0, start, c).unsqueeze(-1), gl.narrow(0, start, c).unsqueeze(-1));
                    if (s.Temperature != 1.0) dz.div_(s.Temperature);
                    var dzc = s.ComputeDtype is ScalarType d ? dz.to(d) : dz;
                    dHidden.narrow(0, start, c).copy_(dzc.matmul(w));                          // [c,V] x [V,D]
                    // In place, in the masters' dtype: no [V,D] temporary per chunk (that would double the head's peak).
                    dWeight?.addmm_(dz.t(), h.to(dWeight.dtype));                                 // [V,c] x [c,D]
                }
            }
            HandedGradients.Hand(dHidden);
        }
        foreach (var g in grads) HandedGradients.Hand(g);
        return [dHidden, null!, null!, null!];
    }

    private static Tensor? Defined(Tensor g) => g is null || g.IsInvalid ? null : g;

    private static Tensor Compute(Tensor weight, HeadSettings s) =>
        s.ComputeDtype is ScalarType d && weight.dtype != d ? weight.detach().to(d) : weight.detach();

    /// <summary>z = h W^T / T in the hidden state's dtype, [c,V].</summary>
    private static Tensor Logits(Tensor h, Tensor w, ScalarType wide, HeadSettings s)
    {
        var z = nn.functional.linear(s.ComputeDtype is ScalarType d ? h.to(d) : h, w);
        if (z.dtype != wide) z = z.to(wide);
        return s.Temperature == 1.0 ? z : z.div_(s.Temperature);
    }
}
