using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Popo.Engine.Lora;

/// <summary>
/// The low-rank pair of one target linear (PEFT's lora_A, lora_B): A [r, in], B [out, r]. The layer computes
/// W x + b + s B A dropout(x); W and b stay the base model's, frozen. Field names are PEFT's tensor names.
/// </summary>
internal sealed class LoraAdapter : nn.Module
{
#pragma warning disable IDE1006 // field names are PEFT's tensor names
    private readonly Parameter lora_A;
    private readonly Parameter lora_B;
#pragma warning restore IDE1006

    public LoraAdapter(long inFeatures, long outFeatures, int rank, Device device, ScalarType dtype) : base(nameof(LoraAdapter))
    {
        lora_A = new Parameter(zeros(rank, inFeatures, dtype: dtype, device: device));
        lora_B = new Parameter(zeros(outFeatures, rank, dtype: dtype, device: device));
        RegisterComponents();
    }

    public Parameter A => lora_A;
    public Parameter B => lora_B;

    /// <summary>
    /// PEFT's init_lora_weights = true: A ~ kaiming_uniform_(a = sqrt(5)) over fan_in = in, which is U(-1/sqrt(in), 1/sqrt(in))
    /// (gain sqrt(2 / (1 + a^2)) = sqrt(1/3) times sqrt(3 / fan_in)); B = 0, so the adapted layer starts as the base.
    /// Drawn from <paramref name="generator"/> so that a seed fixes the adapters.
    /// </summary>
    internal void Initialize(Generator generator)
    {
        using var noGrad = no_grad();
        var bound = 1.0 / Math.Sqrt(lora_A.shape[1]);
        lora_A.uniform_(-bound, bound, generator);
        lora_B.zero_();
    }

    /// <summary>
    /// y += s B A x for y = the base layer's output [rows, out] and its input x [rows, in] (both flattened to rows), in x's
    /// dtype (the compute precision); returns y. One in-place addmm: no [rows, out] temporary in the forward, nor in the
    /// backward (the gradient of B A x is read where it arrives, not scaled into a copy). At the 0.5B layout's shapes and
    /// 5,120 rows a separate delta added 6-59% to a frozen projection's forward + backward, this 2-22%
    /// (scripts/lora-projection-cost.fsx). The scale multiplies the [rows, r] product, in the tensor's dtype (addmm's own
    /// alpha is a float32). In place is safe: the linear's backward does not read its output.
    /// </summary>
    internal Tensor Add(Tensor y, Tensor x, Scalar scale)
    {
        using var scope = NewDisposeScope();
        var a = lora_A.dtype == x.dtype ? lora_A : lora_A.to(x.dtype);   // a differentiable cast: the masters get the gradient
        var b = lora_B.dtype == x.dtype ? lora_B : lora_B.to(x.dtype);
        var down = nn.functional.linear(x, a).mul_(scale);                // s A x, [rows, r]
        return y.addmm_(down, b.t());
    }
}
