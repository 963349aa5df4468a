using Popo.Engine.Rollout;
using Popo.Engine.Policy;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Popo.Engine.Objectives;

/// <summary>
/// An RL objective on the shared engine. The trainer calls Prepare once per generation batch (weights or
/// advantages, no gradient), then Backward on each micro-batch of the prepared rows (forward, loss,
/// backward), steps the optimizer, then AfterOptimizerStep (e.g. the EMA target update).
/// </summary>
internal interface IObjective : IDisposable
{
    string Name { get; }

    /// <summary>Parameters the objective trains besides the policy's (the POPO predictor).</summary>
    IEnumerable<Parameter> ExtraParameters { get; }

    /// <summary>Optimisation passes over each generation batch (GRPO's mu; 1 for POPO).</summary>
    int Iterations { get; }

    PreparedBatch Prepare(GenerationBatch batch, StepMetrics metrics);

    /// <summary>Forward, loss and backward of one micro-batch; false when it has nothing to learn from (no gradient was produced).</summary>
    bool Backward(PreparedBatch prepared, long[] rows, int gradAccumSteps, StepMetrics metrics);

    void AfterOptimizerStep();

    /// <summary>Named state to checkpoint besides the policy and optimizer (predictor, EMA target, RNG).</summary>
    IReadOnlyDictionary<string, Tensor> State();

    void LoadState(IReadOnlyDictionary<string, Tensor> state);
}

/// <summary>A generation batch with what the objective computed for it once, without gradient.</summary>
internal sealed class PreparedBatch(GenerationBatch batch, long[] trainRows, Tensor perRow, Tensor? reference, double trainTokens) : IDisposable
{
    public GenerationBatch Batch { get; } = batch;
    /// <summary>Rows that enter the loss (POPO may drop negatives, DAPO all-equal groups).</summary>
    public long[] TrainRows { get; } = trainRows;
    /// <summary>[B] POPO weights w_i or GRPO advantages A_i.</summary>
    public Tensor PerRow { get; } = perRow;
    /// <summary>[B,N] reference-policy log-probs (GRPO with beta &gt; 0), else null.</summary>
    public Tensor? Reference { get; } = reference;
    /// <summary>Completion tokens of the train rows (DAPO's normaliser).</summary>
    public double TrainTokens { get; } = trainTokens;
    /// <summary>
    /// [B,N] per-token weights of the policy-loss terms (the importance correction against a remote sampler's
    /// log-probs, <see cref="ImportanceCorrection"/>), or null for none. Every objective multiplies its per-token
    /// policy term by them; the trainer attaches them after Prepare.
    /// </summary>
    public Tensor? TokenWeights { get; private set; }

    /// <summary>Attaches the per-token weights (the batch takes them over).</summary>
    public void WeighTokens(Tensor? weights)
    {
        TokenWeights?.Dispose();
        TokenWeights = weights;
    }

    /// <summary>The token weights of some rows, first <paramref name="columns"/> columns, in <paramref name="dtype"/>; null when none.</summary>
    public Tensor? TokenWeightsOf(Tensor rows, long columns, ScalarType dtype) =>
        TokenWeights?.index_select(0, rows)[.., ..(int)columns].to(dtype);

    public void Dispose() { PerRow.Dispose(); Reference?.Dispose(); TokenWeights?.Dispose(); }
}

/// <summary>Per-step scalars: Set overwrites, Add accumulates a mean over micro-batches.</summary>
internal sealed class StepMetrics
{
    private readonly Dictionary<string, double> values = new();
    private readonly Dictionary<string, (double Sum, int Count)> means = new();

    public void Set(string name, double value) => values[name] = value;

    public void Add(string name, double value)
    {
        var (s, c) = means.GetValueOrDefault(name);
        means[name] = (s + value, c + 1);
    }

    public Dictionary<string, double> ToDictionary()
    {
        var all = new Dictionary<string, double>(values);
        foreach (var (k, (s, c)) in means) all[k] = s / c;
        return all;
    }
}
