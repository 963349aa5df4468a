using Popo.Engine.Lora;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Popo.Engine.Model;

/// <summary>A linear layer under the model's compute precision, with the model's active LoRA adapter for it (if any).</summary>
internal static class Projection
{
    /// <summary>
    /// layer(x) as before when no cast applies (bit-identical float32/float64 path); else x W^T + b with the weights in the compute
    /// dtype. An adapter adds s B A x in the same dtype (<see cref="LoraSlot"/>).
    /// </summary>
    public static Tensor Apply(Linear layer, Tensor x, ComputePrecision? precision, LoraSlot? lora)
    {
        var y = Base(layer, x, precision);
        return lora is null ? y : lora.Apply(layer, y, x);
    }

    private static Tensor Base(Linear layer, Tensor x, ComputePrecision? precision)
    {
        if (precision?.Dtype is not ScalarType d || layer.weight!.dtype == d) return layer.forward(x);
        using var scope = NewDisposeScope();
        var bias = layer.bias is null ? null : precision.Weight(layer.bias);
        return nn.functional.linear(precision.Input(x), precision.Weight(layer.weight), bias).MoveToOuterDisposeScope();
    }
}
