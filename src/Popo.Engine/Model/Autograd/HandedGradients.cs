using static TorchSharp.torch;

namespace Popo.Engine.Model;

/// <summary>
/// The managed handles of what a custom backward passes to autograd (the input gradients it returns, the output
/// gradients it was given). Autograd copies a returned tensor the moment the backward returns and does not read
/// the given ones again, but TorchSharp registers both in the dispose scope around `backward()`: a 24-layer
/// checkpointed backward would then hold every layer's activation gradient until the micro-batch ends. Here each
/// is disposed when the next custom backward on the thread starts, so at most one backward's handles live.
/// </summary>
internal static class HandedGradients
{
    [ThreadStatic] private static List<Tensor>? handed;

    /// <summary>Disposes the handles the previous custom backward on this thread passed on; call first in a backward.</summary>
    public static void ReleaseEarlier()
    {
        if (handed is null) return;
        foreach (var t in handed) t.Dispose();
        handed.Clear();
    }

    /// <summary>Marks <paramref name="gradient"/> (returned or given) for disposal at the next <see cref="ReleaseEarlier"/>; returns it.</summary>
    public static Tensor Hand(Tensor gradient)
    {
        if (gradient is null || gradient.IsInvalid) return gradient!;
        gradient.DetachFromDisposeScope();
        (handed ??= []).Add(gradient);
        return gradient;
    }
}
