using Popo.Engine.Data;
using Popo.Engine.Model;
using Popo.Engine.Policy;
using Popo.Engine.Runtime;
using Popo.Engine.Tasks;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Popo.Engine.Training;

/// <summary>
/// Supervised warm-up on generated worked solutions: next-token cross-entropy on the solution tokens
/// (and the stop token) given the prompt, AdamW with warm-up and cosine decay. Problems are drawn from
/// the training split in order, so the run is a pure function of the seed.
/// </summary>
internal static class SupervisedWarmup
{
    public sealed record Options(int Steps, int BatchSize, double Lr, double WeightDecay, double GradClip, double WarmupRatio, double Noise = 0, long Seed = 0,
                                 int MaxBadSteps = 3);

    /// <param name="onStep">called with (step, loss) after each step.</param>
    /// <param name="log">told of each step skipped for a non-finite loss or gradient; more than MaxBadSteps
    /// of them throw <see cref="TrainingDivergedException"/>.</param>
    public static void Run(Qwen2ForCausalLM model, PromptFormat format, ITask task, Options options, Action<int, double> onStep, Action<string>? log = null)
    {
        int bad = 0;
        using var optimizer = new Optimizers.AdamW(model.parameters(), options.Lr, options.WeightDecay);
        model.train();
        for (int step = 0; step < options.Steps; step++)
        {
            using var scope = NewDisposeScope();
            var rows = Enumerable.Range(0, options.BatchSize).Select(j =>
            {
                var problem = task.Get(Split.Train, (long)step * options.BatchSize + j);
                var solution = problem.Solution ?? throw new InvalidOperationException(
                    $"{task.Name}: problem {problem.Id} has no worked solution; supervised warm-up needs one (set sft_steps = 0)");
                return (format.Prompt(problem), format.Target(Corrupt(solution, options, problem.Id)));
            }).ToList();
            var (ids, attention, lossMask) = SequenceBatch.PromptTarget(rows, format.PadId, model.Device);
            var labels = ids[.., 1..];                                                        // [B,T-1]
            var mask = lossMask[.., 1..].to(model.Dtype);
            Tensor nll;
            var chunk = model.HeadChunkPositions;
            if (chunk == 0 || labels.numel() <= chunk)
            {
                var logits = model.Forward(ids, attention).Logits;                            // [B,T,V]
                var predicted = logits[.., ..^1, ..];                                         // [B,T-1,V] predicts t+1
                nll = -predicted.log_softmax(-1).gather(-1, labels.unsqueeze(-1)).squeeze(-1); // [B,T-1]
            }
            else   // the head in chunks of the target positions only: no [B,T,V] logits, no head over prompts and padding
            {
                var hidden = model.ForwardHidden(ids, attention);                             // [B,T,D]
                nll = -new Qwen2Policy(model).TokenStatistics(hidden[.., ..^1, ..], labels, 1.0, EntropyNeed.None, mask).LogProbs;
            }
            var loss = (nll * mask).sum() / mask.sum().clamp_min(1.0);

            foreach (var group in optimizer.ParamGroups)
                group.LearningRate = options.Lr * LrSchedule.Factor(step, options.Steps, options.WarmupRatio);
            optimizer.zero_grad();
            double lossValue = loss.ToDouble();
            double norm = double.NaN;
            if (double.IsFinite(lossValue))
            {
                loss.backward();
                norm = nn.utils.clip_grad_norm_(model.parameters(), options.GradClip > 0 ? options.GradClip : double.MaxValue);
            }
            if (double.IsFinite(norm))
            {
                optimizer.step();
                FinalizerPass.Run();
            }
            else
            {
                bad++;
                log?.Invoke($"warm-up step {step + 1}: non-finite loss or gradient (loss {lossValue}); update skipped ({bad} bad steps, max_bad_steps = {options.MaxBadSteps})");
            }
            onStep(step, lossValue);
            if (bad > options.MaxBadSteps)
                throw new TrainingDivergedException(
                    $"warm-up step {step + 1}: {bad} steps had a non-finite loss or gradient (max_bad_steps = {options.MaxBadSteps}); stopping");
        }
        if (options.Steps > 0 && bad >= options.Steps)
            throw new TrainingDivergedException($"every one of the {options.Steps} warm-up steps had a non-finite loss or gradient and was skipped: the model was never updated");
        model.eval();
    }

    /// <summary>
    /// With probability Noise, one digit of the demonstration is replaced by another digit: the warm-up then
    /// imitates imperfect demonstrations (errors a verifier-driven RL phase can remove). Deterministic in
    /// (seed, problem id).
    /// </summary>
    public static string Corrupt(string solution, Options options, string problemId)
    {
        if (options.Noise <= 0) return solution;
        var rng = new Random(unchecked((int)options.Seed * 1_000_003 + StableHash(problemId)));   // HashCode.Combine is salted per process
        if (rng.NextDouble() >= options.Noise) return solution;
        var digits = Enumerable.Range(0, solution.Length).Where(i => char.IsAsciiDigit(solution[i])).ToArray();
        if (digits.Length == 0) return solution;
        int at = digits[rng.Next(digits.Length)];
        var chars = solution.ToCharArray();
        chars[at] = (char)('0' + (chars[at] - '0' + 1 + rng.Next(9)) % 10);
        return new string(chars);
    }

    private static int StableHash(string s)
    {
        unchecked
        {
            int h = 17;
            foreach (var c in s) h = h * 31 + c;
            return h;
        }
    }
}
