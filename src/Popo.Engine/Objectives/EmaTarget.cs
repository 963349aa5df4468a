using TorchSharp;
using Popo.Engine.Policy;
using static TorchSharp.torch;

namespace Popo.Engine.Objectives;

/// <summary>
/// The siamese momentum target xi (docs/design.md §2.8): xi_0 = theta_0 and after every optimizer step
/// xi &lt;- tau xi + (1 - tau) theta. The target module is built by the caller with the policy's
/// architecture and kept in float32 or wider; its parameters never require gradient.
/// </summary>
internal sealed class EmaTarget : IDisposable
{
    private readonly (Tensor Target, Tensor Online)[] pairs;

    public nn.Module Target { get; }

    public EmaTarget(nn.Module online, nn.Module target)
    {
        pairs = FrozenCopy.Copy(online, target);
        Target = target;
    }

    /// <summary>xi &lt;- tau xi + (1 - tau) theta, in place, without gradient.</summary>
    public void Update(double tau)
    {
        if (tau is < 0 or > 1) throw new ArgumentOutOfRangeException(nameof(tau), tau, "tau must lie in [0, 1]");
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();   // only the dtype-converted copies of theta live here
        using Scalar keep = tau, take = 1.0 - tau;   // held across the native calls (Optimizers.AdamW says why)
        foreach (var (xi, theta) in pairs)
        {
            var source = theta.dtype == xi.dtype ? theta : theta.to(xi.dtype);
            if (tau == 0.0) xi.copy_(source);
            else if (tau != 1.0) xi.mul_(keep).add_(source, alpha: take);
        }
    }

    public void Dispose() => Target.Dispose();
}
