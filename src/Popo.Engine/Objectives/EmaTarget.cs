using TorchSharp;
using static TorchSharp.torch;

namespace Popo.Engine.Objectives;

/// <summary>
/// The siamese momentum target xi (DESIGN.md §2.8): xi_0 = theta_0 and after every optimizer step
/// xi &lt;- tau xi + (1 - tau) theta. The target module is built by the caller with the policy's
/// architecture and kept in float32 or wider; its parameters never require gradient.
/// </summary>
public sealed class EmaTarget : IDisposable
{
    private readonly (Tensor Target, Tensor Online)[] pairs;

    public nn.Module Target { get; }

    public EmaTarget(nn.Module online, nn.Module target)
    {
        var onlineParams = online.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        var targetParams = target.named_parameters().ToList();
        if (onlineParams.Count != targetParams.Count)
            throw new ArgumentException($"EMA target has {targetParams.Count} parameters, the policy {onlineParams.Count}");
        pairs = targetParams.Select(t =>
        {
            if (!onlineParams.TryGetValue(t.name, out var o))
                throw new ArgumentException($"EMA target parameter '{t.name}' has no counterpart in the policy");
            if (!o.shape.SequenceEqual(t.parameter.shape))
                throw new ArgumentException($"EMA target parameter '{t.name}' has shape [{string.Join(",", t.parameter.shape)}], the policy [{string.Join(",", o.shape)}]");
            if (t.parameter.element_size() < 4)
                throw new ArgumentException($"EMA target parameter '{t.name}' is {t.parameter.dtype}; the target must be float32 or wider");
            return ((Tensor)t.parameter, (Tensor)o);
        }).ToArray();
        Target = target;
        target.eval();
        using (no_grad())
            foreach (var (xi, theta) in pairs)
            {
                xi.requires_grad_(false);
                xi.copy_(theta);
            }
    }

    /// <summary>xi &lt;- tau xi + (1 - tau) theta, in place, without gradient.</summary>
    public void Update(double tau)
    {
        if (tau is < 0 or > 1) throw new ArgumentOutOfRangeException(nameof(tau), tau, "tau must lie in [0, 1]");
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();   // only the dtype-converted copies of theta live here
        foreach (var (xi, theta) in pairs)
        {
            var source = theta.dtype == xi.dtype ? theta : theta.to(xi.dtype);
            if (tau == 0.0) xi.copy_(source);
            else if (tau != 1.0) xi.mul_(tau).add_(source, alpha: 1.0 - tau);
        }
    }

    public void Dispose() => Target.Dispose();
}
