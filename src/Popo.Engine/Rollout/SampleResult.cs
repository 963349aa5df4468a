using static TorchSharp.torch;

namespace Popo.Engine.Rollout;

/// <summary>
/// A batch of completions. With B prompts left-padded to P and N generated steps (N &lt;= MaxNewTokens; fewer
/// when every row stopped early):
/// Tokens [B,N] int64 (PadId after a row's stop token); CompletionMask [B,N] 1 up to and including the stop
/// token, 0 after; LogProbs [B,N] log softmax(logits/T) of the sampled token (0 where the mask is 0), float32
/// (float64 for a float64 model); Sequences [B,P+N] prompt then completion and AttentionMask [B,P+N] int64
/// (prompt padding and post-stop slots 0), ready for a training forward pass whose logits at column P-1+n
/// predict completion token n. Completions holds each row's masked completion ids.
/// </summary>
public sealed class SampleResult : IDisposable
{
    public required Tensor Tokens { get; init; }
    public required Tensor CompletionMask { get; init; }
    public required Tensor LogProbs { get; init; }
    public required Tensor Sequences { get; init; }
    public required Tensor AttentionMask { get; init; }
    public required int PromptLength { get; init; }
    public required int[][] Completions { get; init; }

    public void Dispose()
    {
        Tokens.Dispose();
        CompletionMask.Dispose();
        LogProbs.Dispose();
        Sequences.Dispose();
        AttentionMask.Dispose();
    }
}
