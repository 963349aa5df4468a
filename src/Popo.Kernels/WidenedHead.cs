using TorchSharp;
using static TorchSharp.torch;

namespace Popo.Kernels;

/// <summary>
/// Logits of one or two rows from a bfloat16 head on a CPU without AVX-512 (where <see cref="FewRowProduct"/> does not
/// run), computed in float32: the weight is widened block by block into one reused float32 buffer and each block
/// multiplied by libtorch (22.4 ms for the 151,936-row head on one Zen 4 core, where libtorch's one-row bf16 matmul
/// reads it at 10 GB/s: 27.5 ms). The logits are the float32 product of the bf16 weights instead of its rounding to
/// bf16 (max error 2e-5 against float64, 0.35 for the bf16 matmul's output). From 4 rows up the bf16 matmul is as
/// fast (M = 4) or faster, so those rows keep it.
/// </summary>
internal sealed class WidenedHead : IDisposable
{
    public const int MaxRows = 2;

    /// <summary>Head rows widened per block: 2,048 x 896 float32 is 7 MiB, inside this CPU's L3 with the block being read (measured 256-4,096).</summary>
    private const long BlockRows = 2048;

    private Tensor? buffer;

    /// <summary>Whether <paramref name="rows"/> rows of a head computed in <paramref name="dtype"/> on <paramref name="device"/> take this path.</summary>
    public static bool Applies(long rows, ScalarType dtype, Device device) =>
        rows <= MaxRows && dtype == ScalarType.BFloat16 && device.type == DeviceType.CPU && !is_grad_enabled();

    /// <summary>h W^T in float32 for h [..., D] (any float dtype) and a bf16 W [V, D]; no graph.</summary>
    public Tensor Logits(Tensor hidden, Tensor weight)
    {
        using var scope = NewDisposeScope();
        long vocab = weight.shape[0], width = weight.shape[1];
        var h = hidden.reshape(-1, width).to(ScalarType.Float32).contiguous();
        if (buffer is null || buffer.shape[1] != width)
        {
            buffer?.Dispose();
            buffer = empty([BlockRows, width], dtype: ScalarType.Float32, device: weight.device).DetachFromDisposeScope();
        }
        var logits = empty([h.shape[0], vocab], dtype: ScalarType.Float32, device: weight.device);
        for (long start = 0; start < vocab; start += BlockRows)
        {
            var n = Math.Min(BlockRows, vocab - start);
            var block = n == BlockRows ? buffer : buffer.narrow(0, 0, n);
            block.copy_(weight.narrow(0, start, n));
            logits.narrow(1, start, n).copy_(nn.functional.linear(h, block));
        }
        long[] shape = [.. hidden.shape[..^1], vocab];
        return logits.reshape(shape).MoveToOuterDisposeScope();
    }

    public void Dispose() => buffer?.Dispose();
}
