using Popo.Engine.Runtime;
using Popo.Kernels;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Popo.Engine.Model;

/// <summary>A linear layer under the model's compute precision, with the model's active LoRA adapter for it (if any).</summary>
internal static class Projection
{
    /// <summary>
    /// layer(x) over x's rows when no cast applies (libtorch's own float32/float64 product); else x W^T + b with the weights in the compute
    /// dtype. The few rows of a decode step without a graph on the CPU take <see cref="FewRowProduct"/> instead (float32
    /// products of the same weights; in bf16, one row only: <see cref="BfloatKernelRows"/>). An adapter adds s B A x in the same dtype (<see cref="AdapterSlot"/>).
    /// </summary>
    public static Tensor Apply(Linear layer, Tensor x, ComputePrecision? precision, AdapterSlot? lora)
    {
        if (x.dim() == 2) return Rows(layer, x, precision, lora);
        // Rows flattened first, with or without an adapter (so that B = 0 gives the base's exact product: libtorch rounds a
        // [B,T,in] product with bias differently from a [rows,in] one): the adapter adds into the base output in place, and
        // in place on a view of it would copy the gradient.
        using var scope = NewDisposeScope();
        var y = Rows(layer, x.reshape(-1, x.shape[^1]), precision, lora);
        return y.view([.. x.shape[..^1], y.shape[^1]]).MoveToOuterDisposeScope();
    }

    private static Tensor Rows(Linear layer, Tensor x, ComputePrecision? precision, AdapterSlot? lora)
    {
        var y = Base(layer, x, precision);
        return lora is null ? y : lora.Apply(layer, y, x);
    }

    /// <summary>
    /// bf16 projections take the few-row kernel at one row only. Above that libtorch's product was as fast or faster in
    /// the decode loop: the TRL-defaults rollout of the 0.5B layout took 18.2-26.8 s (median 19.9) this way against
    /// 22.1-24.6 s (median 22.9) with the kernel up to 4 rows, six runs each, interleaved. The head keeps the kernel up to
    /// <see cref="FewRowProduct.MaxRows"/> (Qwen2ForCausalLM). Float32 keeps it up to 32 rows.
    /// </summary>
    internal const int BfloatKernelRows = 1;

    private static Tensor Base(Linear layer, Tensor x, ComputePrecision? precision)
    {
        var storage = layer.weight!.dtype;
        var casts = precision?.Dtype is ScalarType d && d != storage;
        var compute = casts ? precision!.Dtype!.Value : storage;
        var rows = x.numel() / x.shape[^1];
        if (FewRowProduct.Applies(rows, layer.weight.shape[0], x.shape[^1], compute, x.device) && (compute != ScalarType.BFloat16 || rows <= BfloatKernelRows)
            && FewRows(layer, x, precision, casts ? compute : x.dtype) is { } few) return few;
        if (!casts) return layer.forward(x);
        using var scope = NewDisposeScope();
        var bias = layer.bias is null ? null : precision!.Weight(layer.bias);
        return nn.functional.linear(precision!.Input(x), precision.Weight(layer.weight), bias).MoveToOuterDisposeScope();
    }

    /// <summary>A decode step's few rows (no graph): x W^T in float32 from the weights as the matmul would read them, plus the bias, in <paramref name="output"/>; null when the kernel cannot read the weight.</summary>
    private static Tensor? FewRows(Linear layer, Tensor x, ComputePrecision? precision, ScalarType output)
    {
        var weight = precision?.Weight(layer.weight!) ?? layer.weight!;
        if (!FewRowProduct.Reads(weight)) return null;
        using var scope = NewDisposeScope();
        var y = FewRowProduct.Multiply(x, weight);
        if (layer.bias is not null) y.PlusInPlace(layer.bias.to(ScalarType.Float32));
        return y.to(output).MoveToOuterDisposeScope();
    }
}
