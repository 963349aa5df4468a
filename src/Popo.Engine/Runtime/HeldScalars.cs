using TorchSharp;
using static TorchSharp.torch;

namespace Popo.Engine.Runtime;

/// <summary>
/// Tensor arithmetic whose Scalars live until libtorch has read them. TorchSharp 0.107 hands a Scalar to libtorch as a
/// bare handle, with no GC.KeepAlive; a temporary Scalar (an implicit conversion, and the alpha = 1 that its own
/// <c>x + y</c> and <c>add_(y)</c> create; its sub takes no alpha) can be finalized by a collection on another thread while the
/// native call still reads it (Optimizers.AdamW gives the reproducer). Seen in two long compare runs on a loaded
/// machine: "For integral input tensors, argument alpha must not be a floating point number" in the sampler's
/// <c>positions + step</c>, and "Expected false to be true" from Scalar::toFloat in a decoder layer's residual add. These
/// helpers pass the same values as the operators (the int 1 alpha, the caller's value), so the results are the same bits.
/// </summary>
internal static class HeldScalars
{
    /// <summary>The alpha TorchSharp's add and sub pass (an int 1), held for the process's life.</summary>
    public static readonly Scalar One = 1.ToScalar();

    /// <summary>a + b (TorchSharp's <c>a + b</c>).</summary>
    public static Tensor Plus(this Tensor a, Tensor b) => a.add(b, One);

    /// <summary>a + s for a Scalar the caller holds (TorchSharp's <c>a + s</c>).</summary>
    public static Tensor Plus(this Tensor a, Scalar s) => a.add(s, One);

    /// <summary>a += b in place (TorchSharp's <c>a.add_(b)</c>).</summary>
    public static Tensor PlusInPlace(this Tensor a, Tensor b) => a.add_(b, One);
}
