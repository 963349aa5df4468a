using Popo.Engine.Data;
using Popo.Engine.Model;
using Popo.Engine.Policy;
using Popo.Engine.Rewards;
using Popo.Engine.Rollout;
using Popo.Engine.Tasks;
using static TorchSharp.torch;

namespace Popo.Engine.Training;

/// <summary>What one generation batch produced, besides the tensors the objectives read: each row's problem, decoded completion, the task's judgement and the reward functions' scores.</summary>
internal sealed record RolloutTexts(Problem[] Problems, string[] Completions, Judgement[] Judgements, RewardScores Scores);

/// <summary>
/// Rollout and verification (docs/design.md §1): G samples per prompt from the current policy, decoded and
/// scored by the run's reward functions (<see cref="RewardSet"/>: by default the task's verifier), packed as a <see cref="GenerationBatch"/> (groups contiguous).
/// The rollouts come from <paramref name="engine"/> (the built-in sampler over <paramref name="model"/> when null); when that
/// engine is remote, the batch's OldLogProbs are recomputed by the <paramref name="trainer"/> policy (<see cref="TrainerLogProbs"/>)
/// and the server's go to SamplerLogProbs.
/// </summary>
internal sealed class RolloutCollector(Qwen2ForCausalLM model, PromptFormat format, ITask task, RewardSet rewards, SamplerOptions sampling,
                                     IRolloutEngine? engine = null, IPolicy? trainer = null, int microBatch = 128)
{
    private readonly IRolloutEngine rollouts = engine ?? new BuiltinRollout(model);

    public (GenerationBatch Batch, RolloutTexts Texts) Collect(IReadOnlyList<Problem> problems, int groupSize, Generator generator) =>
        Finish(Start(problems, groupSize, generator));

    /// <summary>Checks the prompts and starts their generation (a server's requests then run while the caller updates: async_rollouts).</summary>
    public PendingRollout Start(IReadOnlyList<Problem> problems, int groupSize, Generator generator)
    {
        var prompts = new List<int[]>(problems.Count);
        var perRow = new Problem[problems.Count * groupSize];
        for (int p = 0; p < problems.Count; p++)
        {
            var ids = format.Prompt(problems[p]);
            ContextCheck.Prompt(task, problems[p], ids.Length, sampling.MaxNewTokens, model.Config.MaxPositionEmbeddings, "max_position_embeddings");
            prompts.Add(ids);
            for (int g = 0; g < groupSize; g++) perRow[p * groupSize + g] = problems[p];
        }
        model.eval();   // as before the engines existed: the step runs in the mode sampling leaves, whoever samples
        return new PendingRollout(perRow, groupSize, rollouts.Begin(prompts, groupSize, sampling with { Generator = generator, StopTokenIds = format.StopTokens }));
    }

    /// <summary>
    /// The started generation as a scored batch. With a remote engine the old log-probs are the trainer's policy's now,
    /// so when the servers sampled with older weights (async_rollouts, sync_every &gt; 1) the importance ratio spans that too.
    /// </summary>
    public (GenerationBatch Batch, RolloutTexts Texts) Finish(PendingRollout pending)
    {
        var (perRow, groupSize) = (pending.PerRow, pending.GroupSize);
        var sample = pending.Generation.Complete();
        if (rollouts.Remote)
        {
            var policy = trainer ?? throw new InvalidOperationException("a remote rollout engine needs the trainer's policy for the old log-probs");
            model.eval();
            Tensor old;
            try { old = TrainerLogProbs.Of(policy, sample, sampling.Temperature, microBatch); }
            catch { sample.Dispose(); throw; }
            sample = sample.WithTrainerLogProbs(old);
        }
        var completions = sample.Completions.Select(format.Decode).ToArray();
        var finished = sample.Completions.Select(format.Finished).ToArray();
        RewardScores scores;
        try { scores = rewards.Score(perRow, completions, sample.Completions, finished, groupSize); }
        catch { sample.Dispose(); throw; }
        var batch = sample.WithRewards(scores.Totals, groupSize);
        return (batch, new RolloutTexts(perRow, completions, scores.Judgements, scores));
    }
}

/// <summary>A step's rollouts on their way: each row's problem and the generation (<see cref="RolloutCollector.Start"/>).</summary>
internal sealed class PendingRollout(Problem[] perRow, int groupSize, PendingGeneration generation) : IDisposable
{
    public Problem[] PerRow => perRow;
    public int GroupSize => groupSize;
    public PendingGeneration Generation => generation;
    public void Dispose() => generation.Dispose();
}
