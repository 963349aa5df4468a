using Popo.Engine.Model;
using TorchSharp;
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
    /// <summary>
    /// [B,N] the remote sampler's own log-probs of the sampled tokens (0 where the mask is 0), or null when the
    /// built-in sampler generated (its log-probs are the trainer's: <see cref="OldLogProbs"/>). With a server,
    /// OldLogProbs are the trainer's no-grad forward and these drive the importance correction.
    /// </summary>
    public Tensor? SamplerLogProbs { get; init; }
    /// <summary>The log-probs the sampling engine itself reported: the server's when remote, else the built-in sampler's.</summary>
    public Tensor GenerationLogProbs => SamplerLogProbs ?? OldLogProbs;
    /// <summary>Each row's masked completion ids.</summary>
    public required int[][] Completions { get; init; }
    /// <summary>Per row: true when it reached its token limit without a stop token (TRL's truncated completion); empty when unknown.</summary>
    public bool[] Truncated { get; init; } = [];
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
        return Copy(OldLogProbs, SamplerLogProbs, rewards, groupSize);
    }

    /// <summary>
    /// The same batch re-based on the trainer's own log-probs [B,N] of the sampled tokens: they become
    /// <see cref="OldLogProbs"/> and this batch's OldLogProbs (the remote sampler's) become <see cref="SamplerLogProbs"/>.
    /// It takes over the tensors (dispose only the result).
    /// </summary>
    public GenerationBatch WithTrainerLogProbs(Tensor trainer)
    {
        if (SamplerLogProbs is not null) throw new InvalidOperationException("the batch already carries the trainer's log-probs");
        return Copy(trainer, OldLogProbs, Rewards, GroupSize);
    }

    /// <summary>This batch's tensors and rows with the log-probs and rewards given: the one place that lists every member, so a new one is carried by every copy.</summary>
    private GenerationBatch Copy(Tensor oldLogProbs, Tensor? samplerLogProbs, double[] rewards, int groupSize) => new()
    {
        InputIds = InputIds, AttentionMask = AttentionMask, PositionIds = PositionIds, PromptLength = PromptLength,
        CompletionIds = CompletionIds, CompletionMask = CompletionMask, OldLogProbs = oldLogProbs, SamplerLogProbs = samplerLogProbs,
        Completions = Completions, Truncated = Truncated, Rewards = rewards, GroupSize = groupSize,
    };

    /// <summary>
    /// The batch the built-in sampler would lay out for these prompts, completions and per-token log-probs
    /// (prompts left-padded to P with <paramref name="padId"/>, completions right-padded to the longest, mask 1 over
    /// each completion's tokens, log-probs 0 on padding): what a remote sampler's answers become. <paramref name="truncated"/>:
    /// per row, whether it stopped at the token limit (a server's finish_reason "length"), for mask_truncated_completions.
    /// </summary>
    public static GenerationBatch FromCompletions(IReadOnlyList<int[]> prompts, IReadOnlyList<int[]> completions,
                                                  IReadOnlyList<double[]> logProbs, int padId, Device device, ScalarType wide,
                                                  IReadOnlyList<bool>? truncated = null)
    {
        if (prompts.Count != completions.Count || prompts.Count != logProbs.Count)
            throw new ArgumentException($"{prompts.Count} prompts, {completions.Count} completions and {logProbs.Count} log-prob rows must match");
        using var scope = NewDisposeScope();
        int b = prompts.Count, p = prompts.Max(x => x.Length);
        int n = Math.Max(1, completions.Max(c => c.Length));
        var (promptIds, promptMask) = Sampler.LeftPad(prompts, p, padId, device);
        var ids = new long[b * n];
        var mask = new double[b * n];
        var lp = new double[b * n];
        Array.Fill(ids, padId);
        for (int r = 0; r < b; r++)
        {
            if (logProbs[r].Length != completions[r].Length)
                throw new ArgumentException($"row {r}: {logProbs[r].Length} log-probs for {completions[r].Length} tokens");
            for (int t = 0; t < completions[r].Length; t++) { ids[r * n + t] = completions[r][t]; mask[r * n + t] = 1; lp[r * n + t] = logProbs[r][t]; }
        }
        long[] shape = [b, n];
        var completionIds = torch.tensor(ids, shape, device: device);
        var completionMask = torch.tensor(mask, shape, device: device).to(wide);
        var sequences = torch.cat([promptIds, completionIds], 1);
        var attention = torch.cat([promptMask, completionMask.to(ScalarType.Int64)], 1);
        return new GenerationBatch
        {
            CompletionIds = completionIds.MoveToOuterDisposeScope(),
            CompletionMask = completionMask.MoveToOuterDisposeScope(),
            OldLogProbs = torch.tensor(lp, shape, device: device).to(wide).MoveToOuterDisposeScope(),
            InputIds = sequences.MoveToOuterDisposeScope(),
            AttentionMask = attention.MoveToOuterDisposeScope(),
            PositionIds = Qwen2ForCausalLM.DefaultPositions(attention, attention.shape[1]).MoveToOuterDisposeScope(),
            PromptLength = p,
            Completions = completions.Select(c => c.ToArray()).ToArray(),
            Truncated = truncated?.ToArray() ?? [],
        };
    }

    public void Dispose()
    {
        InputIds.Dispose(); AttentionMask.Dispose(); PositionIds.Dispose();
        CompletionIds.Dispose(); CompletionMask.Dispose(); OldLogProbs.Dispose(); SamplerLogProbs?.Dispose();
    }
}
