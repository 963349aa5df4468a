using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using TorchSharp;
using static TorchSharp.torch;

namespace Popo.Engine.Model;

/// <summary>
/// Logits of one or two rows from a bfloat16 head on the CPU (batch-1 decode, greedy evaluation, the tail of a
/// rollout), computed in float32: each bf16 weight is widened to float32 (a 16-bit shift) and multiplied there.
/// libtorch's one-row bf16 matmul converts as it goes and reads the 272 MB head of a 151,936-token vocabulary at
/// 10 GB/s (27.5 ms on one Zen 4 core). With AVX-512 a fused loop widens and accumulates 16 weights per instruction
/// pair; elsewhere the weight is widened block by block into one reused float32 buffer (22.4 ms) and each block
/// multiplied by libtorch. Either way the logits are the float32 product of the bf16 weights instead of its rounding to
/// bf16 (max error 2e-5 against float64, 0.35 for the bf16 matmul's output). From 4 rows up the bf16 matmul is as fast
/// (M = 4) or faster, so those rows keep it.
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

    /// <summary>Whether the fused loop runs here (AVX-512, a contiguous weight, a width of whole 16-lane vectors).</summary>
    public static bool Fused(Tensor weight) => Avx512F.IsSupported && weight.is_contiguous() && weight.shape[1] % 16 == 0;

    /// <summary>h W^T in float32 for h [..., D] (any float dtype) and a bf16 W [V, D]; no graph. <paramref name="fused"/>: the fused loop or the blocks (tests; null = the fused loop where it runs).</summary>
    public Tensor Logits(Tensor hidden, Tensor weight, bool? fused = null)
    {
        if (fused == true && !Fused(weight)) throw new InvalidOperationException("the fused loop needs AVX-512, a contiguous weight and a width of whole 16-lane vectors");
        using var scope = NewDisposeScope();
        long vocab = weight.shape[0], width = weight.shape[1];
        var h = hidden.reshape(-1, width).to(ScalarType.Float32).contiguous();
        var logits = (fused ?? Fused(weight)) ? FusedLogits(h, weight) : BlockLogits(h, weight);
        long[] shape = [.. hidden.shape[..^1], vocab];
        return logits.reshape(shape).MoveToOuterDisposeScope();
    }

    private Tensor BlockLogits(Tensor h, Tensor weight)
    {
        long vocab = weight.shape[0], width = weight.shape[1];
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
        return logits;
    }

    /// <summary>Vocabulary rows per parallel piece: large enough that a piece's scheduling is noise.</summary>
    private const int PieceRows = 8192;

    private static unsafe Tensor FusedLogits(Tensor h, Tensor weight)
    {
        int rows = (int)h.shape[0], vocab = (int)weight.shape[0], width = (int)weight.shape[1];
        var logits = empty([rows, vocab], dtype: ScalarType.Float32, device: weight.device);
        fixed (byte* w = weight.bytes, x = h.bytes, z = logits.bytes)
        {
            nint wp = (nint)w, xp = (nint)x, zp = (nint)z;
            int pieces = (vocab + PieceRows - 1) / PieceRows;
            void Piece(int piece)
            {
                int from = piece * PieceRows, to = Math.Min(vocab, from + PieceRows);
                for (var r = 0; r < rows; r++)
                    Rows((ushort*)wp, (float*)xp + (long)r * width, (float*)zp + (long)r * vocab, from, to, width);
            }
            var threads = Math.Max(1, torch.get_num_threads());
            if (threads == 1 || pieces == 1) for (var p = 0; p < pieces; p++) Piece(p);
            else Parallel.For(0, pieces, new ParallelOptions { MaxDegreeOfParallelism = threads }, Piece);
        }
        return logits;
    }

    /// <summary>z[v] = sum_d x[d] * widen(W[v, d]) for v in [from, to): bf16 is the high half of a float32.</summary>
    private static unsafe void Rows(ushort* w, float* x, float* z, int from, int to, int width)
    {
        for (var v = from; v < to; v++)
        {
            var row = w + (long)v * width;
            var acc0 = Vector512<float>.Zero;
            var acc1 = Vector512<float>.Zero;
            var d = 0;
            for (; d + 32 <= width; d += 32)
            {
                acc0 = Avx512F.FusedMultiplyAdd(Widen(row + d), Vector512.Load(x + d), acc0);
                acc1 = Avx512F.FusedMultiplyAdd(Widen(row + d + 16), Vector512.Load(x + d + 16), acc1);
            }
            for (; d < width; d += 16)
                acc0 = Avx512F.FusedMultiplyAdd(Widen(row + d), Vector512.Load(x + d), acc0);
            z[v] = Vector512.Sum(acc0 + acc1);
        }
    }

    private static unsafe Vector512<float> Widen(ushort* p) =>
        Avx512F.ShiftLeftLogical(Avx512F.ConvertToVector512UInt32(Vector256.Load(p)), 16).AsSingle();

    public void Dispose() => buffer?.Dispose();
}
