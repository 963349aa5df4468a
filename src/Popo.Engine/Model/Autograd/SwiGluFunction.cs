using Popo.Engine.Runtime;
using Popo.Kernels;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.autograd;

namespace Popo.Engine.Model;

/// <summary>
/// The SwiGLU gate y = silu(g) u = g s u with s = sigmoid(g), with its own backward:
///   du = dy g s,   dg = dy u s (1 + g (1 - s)).
/// float32 and bf16 on an AVX-512 CPU run <see cref="SwiGluKernel"/> (one pass each way, float32 arithmetic); float64
/// and other devices run the same math in libtorch's ops. Only g and u are kept for the backward, where autograd kept
/// silu(g) as well: one [rows, intermediate] tensor less per layer.
/// </summary>
internal sealed class SwiGluFunction : SingleTensorFunction<SwiGluFunction>
{
    public override string Name => nameof(SwiGluFunction);

    /// <summary>silu(g) u; a graph only where a gradient is asked for.</summary>
    public static Tensor Run(Tensor g, Tensor u)
    {
        if (is_grad_enabled() && (g.requires_grad || u.requires_grad)) return apply(g, u);
        using var scope = NewDisposeScope();
        return Forward(g, u).MoveToOuterDisposeScope();
    }

    public override Tensor forward(AutogradContext ctx, params object[] vars)
    {
        Tensor g = ((Tensor)vars[0]).contiguous(), u = ((Tensor)vars[1]).contiguous();
        ctx.save_for_backward([g, u]);
        return Forward(g, u);
    }

    public override List<Tensor> backward(AutogradContext ctx, Tensor grad)
    {
        HandedGradients.ReleaseEarlier();
        var saved = ctx.get_saved_variables();
        Tensor dg, du;
        using (NewDisposeScope())
        {
            (dg, du) = Backward(grad, saved[0], saved[1]);
            dg.DetachFromDisposeScope();
            du.DetachFromDisposeScope();
        }
        HandedGradients.Hand(grad);
        return [HandedGradients.Hand(dg), HandedGradients.Hand(du)];
    }

    /// <summary>silu(g) u, by the kernel where it applies.</summary>
    internal static Tensor Forward(Tensor g, Tensor u)
    {
        Tensor gc = g.contiguous(), uc = u.contiguous();
        return SwiGluKernel.Applies(gc, uc) ? SwiGluKernel.Forward(gc, uc, get_num_threads()) : nn.functional.silu(g).mul_(u);
    }

    /// <summary>(dg, du), by the kernel where it applies.</summary>
    internal static (Tensor Dg, Tensor Du) Backward(Tensor dy, Tensor g, Tensor u)
    {
        if (SwiGluKernel.Applies(g, u) && dy.dtype == g.dtype) return SwiGluKernel.Backward(dy.contiguous(), g, u, get_num_threads());
        return BackwardOps(dy, g, u);
    }

    /// <summary>The backward in libtorch's ops, in float32 at least, each result cast once.</summary>
    internal static (Tensor Dg, Tensor Du) BackwardOps(Tensor dy, Tensor g, Tensor u)
    {
        using var scope = NewDisposeScope();
        var wide = g.dtype == ScalarType.Float64 ? ScalarType.Float64 : ScalarType.Float32;
        Tensor gw = g.to(wide), uw = u.to(wide), dyw = dy.to(wide);
        var s = gw.sigmoid();
        var du = (dyw * gw * s).to(u.dtype);
        var dg = (dyw * uw * s * (gw * s.neg().Plus(HeldScalars.One)).Plus(HeldScalars.One)).to(g.dtype);   // held Scalars (HeldScalars says why)
        return (dg.MoveToOuterDisposeScope(), du.MoveToOuterDisposeScope());
    }
}
