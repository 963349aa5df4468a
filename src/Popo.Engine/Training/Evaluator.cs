using Popo.Engine.Data;
using Popo.Engine.Model;
using Popo.Engine.Rewards;
using Popo.Engine.Rollout;
using Popo.Engine.Runtime;
using Popo.Engine.Tasks;
using Popo.MathVerify;
using static TorchSharp.torch;

namespace Popo.Engine.Training;

/// <summary>
/// Held-out results: pass@1 (mean accuracy of sampled answers), pass@k (unbiased), mean@k, greedy accuracy,
/// and the whole curve pass@1..pass@k (PassCurve[j] = pass@(j+1)), all by the task's check; <paramref name="RewardMean"/>: the mean
/// reward of the sampled answers under the run's reward functions (NaN when evaluated without them).
/// </summary>
public sealed record EvalResult(int Problems, int Samples, double Pass1, double PassK, double MeanK, double Greedy, double[]? PassCurve = null,
                                double RewardMean = double.NaN);

/// <summary>
/// Evaluates on the held-out split with its own seeded generator, so evaluation never disturbs the
/// training run's random stream (and a resumed run evaluates identically).
/// </summary>
internal static class Evaluator
{
    /// <summary>One scored completion: sample k of a problem (k = -1 for the greedy one).</summary>
    public sealed record Sample(Problem Problem, int K, string Completion, Judgement Judgement)
    {
        public double Reward => Judgement.Reward;
    }

    public static EvalResult Evaluate(Qwen2ForCausalLM model, PromptFormat format, ITask task, int problems, int samples,
                                      SamplerOptions sampling, long seed, int maxBatch = 256, Action<Sample>? onSample = null, RewardSet? rewards = null)
    {
        double rewardSum = 0;
        long rewardCount = 0;
        int n = (int)Math.Min(problems, task.Count(Split.Test) ?? long.MaxValue);
        var list = Enumerable.Range(0, n).Select(i => task.Get(Split.Test, i)).ToList();
        var correct = new int[n];
        var greedyCorrect = 0;
        using var generator = new Generator((ulong)seed, model.Device);
        model.eval();
        int perBatch = Math.Max(1, maxBatch / Math.Max(1, samples));
        for (int start = 0; start < n; start += perBatch)
        {
            var chunk = list.Skip(start).Take(perBatch).ToList();
            var prompts = chunk.SelectMany(p => Enumerable.Repeat(format.Prompt(p), samples)).ToList();
            using (var sampled = Sampler.Generate(model, prompts, sampling with { Generator = generator, StopTokenIds = format.StopTokens }))
            {
                var texts = sampled.Completions.Select(format.Decode).ToArray();
                var finished = sampled.Completions.Select(format.Finished).ToArray();
                // The run's reward functions score the sampled answers (the held-out mean reward); the task's verdicts come with them.
                var scores = rewards?.Score(Enumerable.Range(0, prompts.Count).Select(r => chunk[r / samples]).ToArray(), texts, sampled.Completions, finished, samples);
                if (scores is not null) { rewardSum += scores.Totals.Sum(); rewardCount += scores.Totals.Length; }
                for (int r = 0; r < prompts.Count; r++)
                {
                    var text = texts[r];
                    var judgement = scores?.Judgements[r] ?? task.Judge(chunk[r / samples], text, finished[r]);
                    correct[start + r / samples] += judgement.Reward > 0 ? 1 : 0;
                    onSample?.Invoke(new Sample(chunk[r / samples], r % samples, text, judgement));
                }
            }
            var greedyPrompts = chunk.Select(format.Prompt).ToList();
            using var greedy = Sampler.Generate(model, greedyPrompts, sampling with { TopK = 1, Generator = generator, StopTokenIds = format.StopTokens });
            for (int r = 0; r < chunk.Count; r++)
            {
                var text = format.Decode(greedy.Completions[r]);
                var judgement = task.Judge(chunk[r], text, format.Finished(greedy.Completions[r]));
                greedyCorrect += judgement.Reward > 0 ? 1 : 0;
                onSample?.Invoke(new Sample(chunk[r], -1, text, judgement));
            }
        }
        var counts = correct.Select(c => (samples, c)).ToList();
        double meanK = PassAtK.MeanAtK(counts);
        var curve = Enumerable.Range(1, samples).Select(k => PassAtK.Mean(counts, k)).ToArray();
        return new EvalResult(n, samples, meanK, curve[^1], meanK, (double)greedyCorrect / n, curve,
                              rewardCount > 0 ? rewardSum / rewardCount : double.NaN);
    }
}

/// <summary>`popo eval`: a saved model folder (with `adapter`: a base and its PEFT adapter) on a task's held-out split.</summary>
internal static class FolderEvaluation
{
    public static EvalResult Run(Configuration.TrainConfig c, int samples, Action<Evaluator.Sample>? onSample = null)
    {
        if (string.IsNullOrEmpty(c.Model)) throw new ConfigException("key 'model': popo eval needs --model DIR (a model folder) or --adapter DIR (a PEFT adapter whose base is a folder here)");
        var device = Runtime.TorchRuntime.ResolveDevice(c.Device);
        if (c.Threads > 0) TorchSharp.torch.set_num_threads(c.Threads);
        var task = TaskFactory.Create(c);
        var (model, tokenizer) = ModelFactory.Load(c.Model, device, ModelFactory.Dtype(c));
        using (model)
        using (Lora.LoraAdapters.ForRun(model, c.ToLoraSettings(), c.Seed, c.Adapter))
        {
            return Evaluator.Evaluate(model, RunOptions.Prompts(c, tokenizer), task, c.EvalProblems, samples, RunOptions.Sampling(c, tokenizer),
                                      SeedStreams.Evaluation(c.Seed), onSample: onSample);
        }
    }
}
