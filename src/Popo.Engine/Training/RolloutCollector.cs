using Popo.Engine.Data;
using Popo.Engine.Model;
using Popo.Engine.Policy;
using Popo.Engine.Rewards;
using Popo.Engine.Rollout;
using Popo.Engine.Tasks;
using static TorchSharp.torch;

namespace Popo.Engine.Training;

/// <summary>What one generation batch produced, besides the tensors the objectives read: each row's problem, decoded completion, the task's judgement and the reward functions' scores.</summary>
public sealed record RolloutTexts(Problem[] Problems, string[] Completions, Judgement[] Judgements, RewardScores Scores);

/// <summary>
/// Rollout and verification (docs/design.md §1): G samples per prompt from the current policy, decoded and
/// scored by the run's reward functions (<see cref="RewardSet"/>: by default the task's verifier), packed as a <see cref="GenerationBatch"/> (groups contiguous).
/// </summary>
public sealed class RolloutCollector(Qwen2ForCausalLM model, PromptFormat format, ITask task, RewardSet rewards, SamplerOptions sampling)
{
    public (GenerationBatch Batch, RolloutTexts Texts) Collect(IReadOnlyList<Problem> problems, int groupSize, Generator generator)
    {
        var prompts = new List<int[]>(problems.Count * groupSize);
        var perRow = new Problem[problems.Count * groupSize];
        for (int p = 0; p < problems.Count; p++)
        {
            var ids = format.Prompt(problems[p]);
            ContextCheck.Prompt(task, problems[p], ids.Length, sampling.MaxNewTokens, model.Config.MaxPositionEmbeddings, "max_position_embeddings");
            for (int g = 0; g < groupSize; g++) { prompts.Add(ids); perRow[p * groupSize + g] = problems[p]; }
        }
        model.eval();
        var sample = Sampler.Generate(model, prompts, sampling with { Generator = generator, StopTokenIds = format.StopTokens });
        var completions = sample.Completions.Select(format.Decode).ToArray();
        var finished = sample.Completions.Select(format.Finished).ToArray();
        RewardScores scores;
        try { scores = rewards.Score(perRow, completions, sample.Completions, finished, groupSize); }
        catch { sample.Dispose(); throw; }
        var batch = sample.WithRewards(scores.Totals, groupSize);
        return (batch, new RolloutTexts(perRow, completions, scores.Judgements, scores));
    }
}
