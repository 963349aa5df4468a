using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Popo.Engine.Model;

/// <summary>
/// y = w * x / sqrt(mean(x^2) + eps) over the last dimension. Like HF's Qwen2RMSNorm, the statistics are
/// taken in at least float32 (bfloat16 inputs are upcast) and the result is cast back before the weight
/// (<see cref="RmsNormFunction"/>, which also gives the backward).
/// </summary>
internal sealed class RmsNorm : nn.Module<Tensor, Tensor>
{
    private readonly Parameter weight;
    private readonly double eps;
    private readonly ComputePrecision? precision;

    public RmsNorm(long size, double eps, Device device, ScalarType dtype, ComputePrecision? precision = null) : base(nameof(RmsNorm))
    {
        this.precision = precision;
        this.eps = eps;
        weight = new Parameter(torch.ones(size, dtype: dtype, device: device));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = torch.NewDisposeScope();
        // Under mixed precision the weight is cast too, so the activation stays in the compute dtype.
        var w = precision is not null && precision.Casts(weight.dtype) ? precision.Weight(weight) : weight;
        return RmsNormFunction.Run(x, w, eps).MoveToOuterDisposeScope();
    }
}
