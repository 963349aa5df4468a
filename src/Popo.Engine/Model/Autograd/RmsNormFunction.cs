using Popo.Engine.Runtime;
using Popo.Kernels;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.autograd;

namespace Popo.Engine.Model;

/// <summary>
/// y = w * (x r) with r = 1 / sqrt(mean(x^2) + eps) over the last dimension, with its own backward:
///   dx = r (dy w) - x r^3 mean(dy w x),   dw = sum over rows of dy (x r).
/// The statistics are float32 at least and x r is cast back to x's type before the weight, as HF's Qwen2RMSNorm.
/// float32 and bf16 on an AVX-512 CPU run <see cref="RmsNormKernel"/> (one pass over a row each way); float64 and
/// other devices run the same math in libtorch's ops. Only x and r are kept for the backward, where autograd's ops kept
/// a float32 copy of x and the normalised row.
/// </summary>
internal sealed class RmsNormFunction : SingleTensorFunction<RmsNormFunction>
{
    public override string Name => nameof(RmsNormFunction);

    /// <summary>The norm of x [..., H] with weight w [H]; a graph only where a gradient is asked for.</summary>
    public static Tensor Run(Tensor x, Tensor w, double eps)
    {
        if (is_grad_enabled() && (x.requires_grad || w.requires_grad))
            return apply(x, w, new Settings(eps, w.requires_grad));
        using var scope = NewDisposeScope();
        return Forward(x, w, eps).Y.MoveToOuterDisposeScope();
    }

    private sealed record Settings(double Eps, bool WeightGradient);

    public override Tensor forward(AutogradContext ctx, params object[] vars)
    {
        Tensor x = (Tensor)vars[0], w = (Tensor)vars[1];
        var s = (Settings)vars[2];
        var (y, invRms) = Forward(x, w, s.Eps);
        ctx.save_for_backward([x, w, invRms]);
        ctx.save_data("settings", s);
        return y;
    }

    public override List<Tensor> backward(AutogradContext ctx, Tensor grad)
    {
        HandedGradients.ReleaseEarlier();
        var s = (Settings)ctx.get_data("settings");
        var saved = ctx.get_saved_variables();
        Tensor dx;
        Tensor? dw;
        using (NewDisposeScope())
        {
            (dx, dw) = Backward(grad, saved[0].contiguous(), saved[1], saved[2], s.WeightGradient);
            dx.DetachFromDisposeScope();
            dw?.DetachFromDisposeScope();
        }
        HandedGradients.Hand(grad);
        return [HandedGradients.Hand(dx), dw is null ? null! : HandedGradients.Hand(dw), null!];
    }

    /// <summary>y and r (r [rows], float32 or float64), by the kernel where it applies.</summary>
    internal static (Tensor Y, Tensor InvRms) Forward(Tensor x, Tensor w, double eps)
    {
        var xc = x.contiguous();
        return RmsNormKernel.Applies(xc, w) ? RmsNormKernel.Forward(xc, w, eps, get_num_threads()) : ForwardOps(x, w, eps);
    }

    /// <summary>dx and dw (null unless asked for), by the kernel where it applies.</summary>
    internal static (Tensor Dx, Tensor? Dw) Backward(Tensor dy, Tensor x, Tensor w, Tensor invRms, bool weightGradient)
    {
        if (RmsNormKernel.Applies(x, w) && dy.dtype == x.dtype)
            return RmsNormKernel.Backward(dy.contiguous(), x, w, invRms, weightGradient, get_num_threads());
        return BackwardOps(dy, x, w, invRms, weightGradient);
    }

    /// <summary>The forward in libtorch's ops, any dtype and device.</summary>
    internal static (Tensor Y, Tensor InvRms) ForwardOps(Tensor x, Tensor w, double eps)
    {
        using var scope = NewDisposeScope();
        var wide = x.to(Wide(x.dtype));
        using var two = 2.0.ToScalar();   // Scalars held until the call returns (HeldScalars says why); pow(2), not square(), for that reason
        using var epsilon = eps.ToScalar();
        var invRms = wide.pow(two).mean([-1], keepdim: true).Plus(epsilon).rsqrt();
        var y = w * (wide * invRms).to(x.dtype);
        return (y.MoveToOuterDisposeScope(), invRms.squeeze(-1).MoveToOuterDisposeScope());
    }

    /// <summary>The backward in libtorch's ops, in float32 at least, each result cast once.</summary>
    internal static (Tensor Dx, Tensor? Dw) BackwardOps(Tensor dy, Tensor x, Tensor w, Tensor invRms, bool weightGradient)
    {
        using var scope = NewDisposeScope();
        var wide = Wide(x.dtype);
        Tensor xw = x.to(wide), r = invRms.to(wide).unsqueeze(-1), g = dy.to(wide);
        var gw = g * w.to(wide);
        var c = (r * r * r).mul_((gw * xw).mean([-1], keepdim: true));
        var dx = (gw * r - xw * c).to(x.dtype).MoveToOuterDisposeScope();
        if (!weightGradient) return (dx, null);
        var n = (xw * r).to(x.dtype).to(wide);
        var dw = (g * n).reshape(-1, w.shape[0]).sum([0]).to(w.dtype).MoveToOuterDisposeScope();
        return (dx, dw);
    }

    private static ScalarType Wide(ScalarType t) => t == ScalarType.Float64 ? ScalarType.Float64 : ScalarType.Float32;
}
