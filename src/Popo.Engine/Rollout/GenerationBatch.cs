using Popo.Engine.Model;
using static TorchSharp.torch;

namespace Popo.Engine.Rollout;

/// <summary>
/// One generation batch, from the sampler to the loss. With B prompts left-padded to P and N generated steps
/// (N &lt;= max_new_tokens; fewer when every row stopped early), groups of G rollouts per prompt contiguous:
/// InputIds [B,P+N] the prompt then the completion, AttentionMask [B,P+N] (prompt padding and post-stop slots 0),
/// ready for a training forward whose logits at column P-1+n predict completion token n. The sampler fills
/// everything but the rewards; verification adds them (<see cref="WithRewards"/>).
/// </summary>
internal sealed class GenerationBatch : IDisposable
{
    /// <summary>[B, P+N] token ids.</summary>
    public required Tensor InputIds { get; init; }
    /// <summary>[B, P+N] int64, 1 for real (non-pad) tokens.</summary>
    public required Tensor AttentionMask { get; init; }
    /// <summary>[B, P+N] positions (0 at each row's first real token).</summary>
    public required Tensor PositionIds { get; init; }
    /// <summary>P: padded prompt length.</summary>
    public required int PromptLength { get; init; }
    /// <summary>[B,N] completion token ids (the pad id after a row's stop token).</summary>
    public required Tensor CompletionIds { get; init; }
    /// <summary>[B,N] completion mask (1 up to and including the stop token, 0 after).</summary>
    public required Tensor CompletionMask { get; init; }
    /// <summary>[B,N] log softmax(logits / T) of the sampled tokens under the sampling policy (0 where the mask is 0), float32 (float64 for a float64 model).</summary>
    public required Tensor OldLogProbs { get; init; }
    /// <summary>Each row's masked completion ids.</summary>
    public required int[][] Completions { get; init; }
    /// <summary>r_i per rollout (empty until verified).</summary>
    public double[] Rewards { get; init; } = [];
    /// <summary>G (1 until verified).</summary>
    public int GroupSize { get; init; } = 1;

    /// <summary>|y_i| per rollout (computed once: the objectives read it row by row).</summary>
    public int[] CompletionLengths => lengths ??= Completions.Select(c => c.Length).ToArray();

    private int[]? lengths;

    public int Rows => Completions.Length;
    public int CompletionColumns => (int)CompletionIds.shape[1];

    /// <summary>The same batch with one reward per row, in groups of <paramref name="groupSize"/>; it takes over the tensors (dispose only the result).</summary>
    public GenerationBatch WithRewards(double[] rewards, int groupSize)
    {
        if (rewards.Length != Rows) throw new ArgumentException($"{rewards.Length} rewards for {Rows} rows");
        return new()
        {
            InputIds = InputIds, AttentionMask = AttentionMask, PositionIds = PositionIds, PromptLength = PromptLength,
            CompletionIds = CompletionIds, CompletionMask = CompletionMask, OldLogProbs = OldLogProbs, Completions = Completions,
            Rewards = rewards, GroupSize = groupSize,
        };
    }

    public void Dispose()
    {
        InputIds.Dispose(); AttentionMask.Dispose(); PositionIds.Dispose();
        CompletionIds.Dispose(); CompletionMask.Dispose(); OldLogProbs.Dispose();
    }
}
