using Popo.Engine.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace Popo.Bench;

/// <summary>
/// The matrix products of one update step alone, at their exact shapes, in the row's dtype and threads: the least time
/// any implementation of that step can take with this machine's product kernels, however little else it did. For each
/// linear [out, in] of the layers and the head over N tokens: the forward x W^T, the input gradient g W and the weight
/// gradient g^T x; for attention, per layer, QK^T and AV forward and their four backward products, over B x heads
/// batches of T x T, counted at the causal fraction (T + 1) / 2T as the FLOP count does. The peer's step time over
/// this floor is the largest engine / peer ratio reachable: the update rows' ratio target is out of reach where it is
/// below the target.
/// </summary>
internal static class GemmFloor
{
    /// <summary>Seconds (wall and CPU, each the best of <paramref name="rounds"/>) of the step's products for <paramref name="batch"/> x <paramref name="sequence"/> tokens.</summary>
    public static Span Seconds(ModelConfig c, int batch, int sequence, ScalarType dtype, int rounds)
    {
        long tokens = (long)batch * sequence;
        var linears = BenchModels.LayerLinears(c).Select(l => (l.Out, l.In, Count: l.Count * c.NumHiddenLayers)).Append((c.VocabSize, c.HiddenSize, 1));
        var total = new Span(0, 0);
        foreach (var (outputs, inputs, count) in linears)
        {
            using var scope = NewDisposeScope();
            Tensor x = randn(tokens, inputs, dtype: dtype), w = randn(outputs, inputs, dtype: dtype), g = randn(tokens, outputs, dtype: dtype);
            var one = BenchClock.Best(rounds, () => { using var s = NewDisposeScope(); x.matmul(w.t()); g.matmul(w); g.t().matmul(x); });
            total += Times(one, count);
        }
        {
            using var scope = NewDisposeScope();
            long heads = (long)batch * c.NumAttentionHeads;
            Tensor q = randn(heads, sequence, c.HeadDim, dtype: dtype), k = randn(heads, sequence, c.HeadDim, dtype: dtype), p = randn(heads, sequence, sequence, dtype: dtype);
            // forward: S = Q K^T, O = P V; backward: dP = dO V^T, dV = P^T dO, dQ = dS K, dK = dS^T Q
            var one = BenchClock.Best(rounds, () =>
            {
                using var s = NewDisposeScope();
                q.matmul(k.transpose(1, 2)); p.matmul(k); q.matmul(k.transpose(1, 2)); p.transpose(1, 2).matmul(q); p.matmul(k); p.transpose(1, 2).matmul(q);
            });
            total += Times(one, c.NumHiddenLayers * (sequence + 1) / (2.0 * sequence));
        }
        return total;
    }

    private static Span Times(Span s, double factor) => new(s.Wall * factor, s.Cpu * factor);
}
