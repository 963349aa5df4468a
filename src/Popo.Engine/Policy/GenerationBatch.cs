using Popo.Engine.Model;
using Popo.Engine.Rollout;
using TorchSharp;
using static TorchSharp.torch;

namespace Popo.Engine.Policy;

/// <summary>
/// One generation batch after rollout and verification: groups of G rollouts per prompt, contiguous.
/// Sequences are the (left-padded) prompt followed by the completion; the completion tokens sit at
/// positions PromptLength .. PromptLength + N - 1.
/// </summary>
public sealed class GenerationBatch : IDisposable
{
    /// <summary>[B, P+N] token ids.</summary>
    public required Tensor InputIds { get; init; }
    /// <summary>[B, P+N], 1 for real (non-pad) tokens.</summary>
    public required Tensor AttentionMask { get; init; }
    /// <summary>[B, P+N] positions (0 at each row's first real token).</summary>
    public required Tensor PositionIds { get; init; }
    /// <summary>P: padded prompt length.</summary>
    public required int PromptLength { get; init; }
    /// <summary>[B,N] completion token ids.</summary>
    public required Tensor CompletionIds { get; init; }
    /// <summary>[B,N] completion mask (1 up to and including the stop token).</summary>
    public required Tensor CompletionMask { get; init; }
    /// <summary>[B,N] log-probs of the sampled tokens under the sampling policy at temperature T.</summary>
    public required Tensor OldLogProbs { get; init; }
    /// <summary>r_i per rollout.</summary>
    public required double[] Rewards { get; init; }
    /// <summary>|y_i| per rollout.</summary>
    public required int[] CompletionLengths { get; init; }
    /// <summary>G.</summary>
    public required int GroupSize { get; init; }

    /// <summary>Takes ownership of a sampler result's tensors, with one reward per row.</summary>
    public static GenerationBatch FromSample(SampleResult sample, double[] rewards, int groupSize) => new()
    {
        InputIds = sample.Sequences,
        AttentionMask = sample.AttentionMask,
        PositionIds = Qwen2ForCausalLM.DefaultPositions(sample.AttentionMask, sample.AttentionMask.shape[1]),
        PromptLength = sample.PromptLength,
        CompletionIds = sample.Tokens,
        CompletionMask = sample.CompletionMask,
        OldLogProbs = sample.LogProbs,
        Rewards = rewards,
        CompletionLengths = sample.Completions.Select(c => c.Length).ToArray(),
        GroupSize = groupSize,
    };

    public int Rows => Rewards.Length;
    public int CompletionColumns => (int)CompletionIds.shape[1];

    public void Dispose()
    {
        InputIds.Dispose(); AttentionMask.Dispose(); PositionIds.Dispose();
        CompletionIds.Dispose(); CompletionMask.Dispose(); OldLogProbs.Dispose();
    }
}
