using static TorchSharp.torch;

namespace Popo.Engine.Model;

/// <summary>
/// The accumulated gradient of a leaf weight, for a custom backward that adds its contribution in place instead of
/// returning it. A returned gradient of a [V,D] weight is a second [V,D] buffer that autograd then adds into .grad
/// (it cannot take over a tensor a managed handle still holds); adding in place needs none.
/// </summary>
internal static class DirectGradient
{
    /// <summary>
    /// The weight's .grad, made (zero) when it has none yet; the caller adds into it. The handles belong to the
    /// caller's dispose scope: once it ends, the weight holds the only reference to its gradient.
    /// </summary>
    public static Tensor Of(Tensor weight)
    {
        var grad = weight.grad;
        if (grad is not null && !grad.IsInvalid) return grad;
        weight.grad = zeros_like(weight, requires_grad: false);
        return weight.grad!;
    }
}
