using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using TorchSharp;
using static TorchSharp.torch;

namespace Popo.Kernels;

/// <summary>
/// x W^T in float32 for a few rows x [R, D] and a float32 or bfloat16 weight W [N, D] on an AVX-512 CPU, reading W
/// once for up to four rows at a time. A decode step multiplies a handful of rows by every weight, so it is bound by
/// the bytes of W; libtorch's small-M products of a [N, D] weight do not reach the copy rate there (float32, one Zen 4
/// core, the 151,936-row head: 30 ms for one row, 73 for four, 114 for eight, where the weight's 545 MB take 16-18 ms;
/// bf16 one row 28 ms for 272 MB); through the projections too, a 24-layer 0.5B decode step at batch 1 took 138 ms in
/// float32 and 115 in bf16 with libtorch's products, 94 and 69 with these. bf16 weights are widened as they are read
/// (bf16 is the high half of a float32), so the product is the float32 product of the bf16 values. Each output is one
/// thread's fixed sequence of operations, so a row's products are the same bits whatever the other rows, their number
/// or the split: compacting a batch changes no logit.
/// </summary>
internal static class FewRowProduct
{
    /// <summary>
    /// The most rows the kernel takes per weight dtype: up to these it beat libtorch at every count measured on one Zen 4
    /// core (float32 head: 1.8-3.5x from 1 to 12 rows, 1.1-1.5x from 16 to 32; bf16: 1.7-3x from 1 to 4 rows, even at 8).
    /// </summary>
    public static int MaxRows(ScalarType dtype) => dtype switch { ScalarType.Float32 => 32, ScalarType.BFloat16 => 4, _ => 0 };

    /// <summary>Weights below this many elements keep libtorch's product: a weight of a few MB stays in cache between calls, where libtorch is as fast and calls cost less.</summary>
    public const long MinWeights = 1 << 20;

    /// <summary>Whether <paramref name="rows"/> rows times a weight [<paramref name="outputs"/>, <paramref name="width"/>] multiplied in <paramref name="dtype"/> on <paramref name="device"/> take the kernel: AVX-512, no graph, a width of whole pairs of 16-lane vectors (every Qwen2 width), a weight of <see cref="MinWeights"/> or more.</summary>
    public static bool Applies(long rows, long outputs, long width, ScalarType dtype, Device device) =>
        Avx512F.IsSupported && device.type == DeviceType.CPU && !is_grad_enabled() && width % 32 == 0 && outputs * width >= MinWeights
        && rows >= 1 && rows <= MaxRows(dtype);

    /// <summary>Whether the kernel can read <paramref name="weight"/>: a contiguous 2-D float32 or bf16 tensor on the CPU.</summary>
    public static bool Reads(Tensor weight) =>
        weight.device.type == DeviceType.CPU && weight.dim() == 2 && weight.is_contiguous() && weight.shape[1] % 32 == 0
        && weight.dtype is ScalarType.Float32 or ScalarType.BFloat16;

    /// <summary>Weight rows per parallel piece at most: large enough that a piece's scheduling is noise.</summary>
    private const int PieceRows = 8192;

    /// <summary>Bytes of weight read once for all groups of four input rows: a tile stays in a Zen 4 core's 1 MiB L2 while the groups after the first reread it.</summary>
    private const int TileBytes = 1 << 20;

    /// <summary>h W^T for h [..., D] (any float dtype): [..., N] float32. No graph; the caller checks <see cref="Applies"/> and <see cref="Reads"/>.</summary>
    public static Tensor Multiply(Tensor hidden, Tensor weight) => Multiply(hidden, weight, torch.get_num_threads());

    /// <summary><see cref="Multiply(Tensor, Tensor)"/> split for <paramref name="threads"/> threads (each output is computed by one thread the same way whatever the split).</summary>
    internal static Tensor Multiply(Tensor hidden, Tensor weight, int threads)
    {
        using var scope = NewDisposeScope();
        var x = hidden.reshape(-1, weight.shape[1]).to(ScalarType.Float32).contiguous();
        long[] shape = [.. hidden.shape[..^1], weight.shape[0]];
        return Rows(x, weight, Math.Max(1, threads)).reshape(shape).MoveToOuterDisposeScope();
    }

    private static unsafe Tensor Rows(Tensor x, Tensor weight, int threads)
    {
        if (!Avx512F.IsSupported || !Reads(weight))
            throw new InvalidOperationException("the few-row kernel needs AVX-512 and a contiguous float32 or bf16 weight on the CPU, of a width divisible by 32");
        int rows = (int)x.shape[0], n = (int)weight.shape[0], width = (int)weight.shape[1];
        var z = empty([rows, n], dtype: ScalarType.Float32, device: weight.device);
        var bf16 = weight.dtype == ScalarType.BFloat16;
        fixed (byte* w = weight.bytes, xb = x.bytes, zb = z.bytes)
        {
            nint wp = (nint)w, xp = (nint)xb, zp = (nint)zb;
            var tileRows = Math.Max(16, TileBytes / (width * (bf16 ? 2 : 4)));
            // Every thread gets work even for a narrow weight (a 128-row key projection), in whole tiles.
            var pieceRows = Math.Clamp((n / threads + tileRows - 1) / tileRows * tileRows, tileRows, Math.Max(tileRows, PieceRows));
            int pieces = (n + pieceRows - 1) / pieceRows;
            void Piece(int piece)
            {
                int end = Math.Min(n, (piece + 1) * pieceRows);
                for (var from = piece * pieceRows; from < end; from += tileRows)
                {
                    var to = Math.Min(end, from + tileRows);
                    for (var r = 0; r < rows; r += 4)
                    {
                        var xr = (float*)xp + (long)r * width;
                        var zr = (float*)zp + (long)r * n;
                        if (bf16) Group<Bf16Lanes>((void*)wp, xr, zr, Math.Min(4, rows - r), n, from, to, width);
                        else Group<Fp32Lanes>((void*)wp, xr, zr, Math.Min(4, rows - r), n, from, to, width);
                    }
                }
            }
            if (threads == 1 || pieces == 1) for (var p = 0; p < pieces; p++) Piece(p);
            else Parallel.For(0, pieces, new ParallelOptions { MaxDegreeOfParallelism = threads }, Piece);
        }
        return z;
    }

    private static unsafe void Group<TLoad>(void* w, float* x, float* z, int rows, int n, int from, int to, int width)
        where TLoad : struct, ILanes
    {
        switch (rows)
        {
            case 1: Tile<TLoad, One>(w, x, z, n, from, to, width); break;
            case 2: Tile<TLoad, Two>(w, x, z, n, from, to, width); break;
            case 3: Tile<TLoad, Three>(w, x, z, n, from, to, width); break;
            default: Tile<TLoad, Four>(w, x, z, n, from, to, width); break;
        }
    }

    /// <summary>
    /// z[r, v] = sum_d x[r, d] W[v, d] for the group's rows r and v in [from, to), one weight row at a time read as a
    /// single stream (two interleaved rows defeated the hardware prefetcher: 2.7x slower), two accumulators per input row:
    /// each 16-lane weight load feeds every row of the group.
    /// </summary>
    private static unsafe void Tile<TLoad, TRows>(void* w, float* x, float* z, int n, int from, int to, int width)
        where TLoad : struct, ILanes where TRows : struct, IRowCount
    {
        float* x1 = x + width, x2 = x1 + width, x3 = x2 + width;
        for (var v = from; v < to; v++)
        {
            Vector512<float> a0 = default, b0 = default, a1 = default, b1 = default, a2 = default, b2 = default, a3 = default, b3 = default;
            long rv = (long)v * width;
            for (var d = 0; d < width; d += 32)
            {
                var wv = TLoad.Load(w, rv + d);
                var wu = TLoad.Load(w, rv + d + 16);
                a0 = Avx512F.FusedMultiplyAdd(wv, Vector512.Load(x + d), a0);
                b0 = Avx512F.FusedMultiplyAdd(wu, Vector512.Load(x + d + 16), b0);
                if (TRows.Count > 1)
                {
                    a1 = Avx512F.FusedMultiplyAdd(wv, Vector512.Load(x1 + d), a1);
                    b1 = Avx512F.FusedMultiplyAdd(wu, Vector512.Load(x1 + d + 16), b1);
                }
                if (TRows.Count > 2)
                {
                    a2 = Avx512F.FusedMultiplyAdd(wv, Vector512.Load(x2 + d), a2);
                    b2 = Avx512F.FusedMultiplyAdd(wu, Vector512.Load(x2 + d + 16), b2);
                }
                if (TRows.Count > 3)
                {
                    a3 = Avx512F.FusedMultiplyAdd(wv, Vector512.Load(x3 + d), a3);
                    b3 = Avx512F.FusedMultiplyAdd(wu, Vector512.Load(x3 + d + 16), b3);
                }
            }
            var sums = Sum4(a0 + b0, a1 + b1, a2 + b2, a3 + b3);
            z[v] = sums.GetElement(0);
            if (TRows.Count > 1) z[n + v] = sums.GetElement(1);
            if (TRows.Count > 2) z[2L * n + v] = sums.GetElement(2);
            if (TRows.Count > 3) z[3L * n + v] = sums.GetElement(3);
        }
    }

    /// <summary>The lane sums of four vectors at once (a transposing reduction: 11 instructions where four separate sums take about 100).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<float> Sum4(Vector512<float> a, Vector512<float> b, Vector512<float> c, Vector512<float> d)
    {
        var ab = Avx.HorizontalAdd(a.GetLower() + a.GetUpper(), b.GetLower() + b.GetUpper());
        var cd = Avx.HorizontalAdd(c.GetLower() + c.GetUpper(), d.GetLower() + d.GetUpper());
        var abcd = Avx.HorizontalAdd(ab, cd);
        return abcd.GetLower() + abcd.GetUpper();
    }

    private interface IRowCount { static abstract int Count { get; } }
    private struct One : IRowCount { public static int Count => 1; }
    private struct Two : IRowCount { public static int Count => 2; }
    private struct Three : IRowCount { public static int Count => 3; }
    private struct Four : IRowCount { public static int Count => 4; }
}
