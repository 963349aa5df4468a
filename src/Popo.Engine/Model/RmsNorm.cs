using Popo.Engine.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Popo.Engine.Model;

/// <summary>
/// y = w * x / sqrt(mean(x^2) + eps) over the last dimension. Like HF's Qwen2RMSNorm, the statistics are
/// taken in at least float32 (bfloat16 inputs are upcast) and the result is cast back before the weight.
/// </summary>
internal sealed class RmsNorm : nn.Module<Tensor, Tensor>
{
    private readonly Parameter weight;
    // Held for the module's life: a temporary Scalar can be finalized mid-call (Optimizers.AdamW says why).
    private readonly Scalar eps, two;
    private readonly ComputePrecision? precision;

    public RmsNorm(long size, double eps, Device device, ScalarType dtype, ComputePrecision? precision = null) : base(nameof(RmsNorm))
    {
        this.precision = precision;
        weight = new Parameter(torch.ones(size, dtype: dtype, device: device));
        this.eps = eps.ToScalar();
        two = 2.0.ToScalar();
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = torch.NewDisposeScope();
        var narrow = x.dtype is not (ScalarType.Float32 or ScalarType.Float64);
        var wide = narrow ? x.to(ScalarType.Float32) : x;
        // pow with the held 2, not square(): square() passes a temporary Scalar, which a collection on another thread freed
        // mid-call under load ("INTERNAL ASSERT FAILED at Scalar.h"). The same kernel, so the same bits.
        var normed = wide * wide.pow(two).mean([-1], keepdim: true).Plus(eps).rsqrt();
        // Under mixed precision the weight is cast too, so the activation stays in the compute dtype.
        var w = precision is not null && precision.Casts(weight.dtype) ? precision.Weight(weight) : weight;
        return (w * (narrow ? normed.to(x.dtype) : normed)).MoveToOuterDisposeScope();
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing) { eps.Dispose(); two.Dispose(); }
        base.Dispose(disposing);
    }
}
