using Popo.Engine.Rollout;
using static TorchSharp.torch;

namespace Popo.Engine.Policy;

/// <summary>
/// The trainer's own log-probs of a batch's sampled tokens, l = log softmax(logits / T)[y] under the current
/// (pre-update) policy, by a no-grad forward in eval mode, micro-batch by micro-batch: what OldLogProbs must hold when
/// another engine sampled (its log-probs differ by kernels and precision, and by staleness).
/// </summary>
internal static class TrainerLogProbs
{
    /// <returns>[B,N] in the dtype of the batch's OldLogProbs, 0 where the completion mask is 0.</returns>
    public static Tensor Of(IPolicy policy, GenerationBatch batch, double temperature, int microBatch)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        bool training = policy.Module.training;
        policy.Module.eval();
        try
        {
            var device = batch.InputIds.device;
            var parts = new List<Tensor>();
            for (int start = 0; start < batch.Rows; start += Math.Max(1, microBatch))
            {
                var rows = arange(start, Math.Min(batch.Rows, start + Math.Max(1, microBatch)), dtype: ScalarType.Int64, device: device);
                using var outputs = CompletionForward.Run(policy, batch, rows);
                var l = outputs.Statistics(temperature, EntropyNeed.None).LogProbs;
                parts.Add(nn.functional.pad(l, [0, batch.CompletionColumns - l.shape[1]]).to(batch.OldLogProbs.dtype));
            }
            return (cat(parts, 0) * batch.CompletionMask.to(batch.OldLogProbs.dtype)).MoveToOuterDisposeScope();
        }
        finally { policy.Module.train(training); }
    }
}
