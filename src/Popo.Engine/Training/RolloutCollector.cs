using Popo.Engine.Data;
using Popo.Engine.Model;
using Popo.Engine.Policy;
using Popo.Engine.Rollout;
using Popo.Engine.Tasks;
using static TorchSharp.torch;

namespace Popo.Engine.Training;

/// <summary>What one generation batch produced, besides the tensors the objectives read: each row's problem, decoded completion and judgement.</summary>
internal sealed record RolloutTexts(Problem[] Problems, string[] Completions, Judgement[] Judgements);

/// <summary>
/// Rollout and verification (docs/design.md §1): G samples per prompt from the current policy, decoded and
/// scored by the task's verifier, packed as a <see cref="GenerationBatch"/> (groups contiguous).
/// </summary>
internal sealed class RolloutCollector(Qwen2ForCausalLM model, PromptFormat format, ITask task, SamplerOptions sampling)
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
        var judgements = completions.Select((c, i) => task.Judge(perRow[i], c, format.Finished(sample.Completions[i]))).ToArray();
        var batch = sample.WithRewards(judgements.Select(j => j.Reward).ToArray(), groupSize);
        return (batch, new RolloutTexts(perRow, completions, judgements));
    }
}
