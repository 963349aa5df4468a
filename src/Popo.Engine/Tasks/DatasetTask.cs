using Popo.Engine.Data;
using Popo.MathVerify;

namespace Popo.Engine.Tasks;

/// <summary>
/// Problems from a JSONL dataset, rewarded by <see cref="MathVerifier"/>. Without a train fraction the
/// whole file is the test split (the usual case for benchmarks) and asking for a training problem is an
/// error. With a fraction f, the problems ordered by a seeded hash of their ids are cut at round(f n):
/// the first part trains, the rest is held out; the same seed and file always give the same cut.
/// A completion's answer must carry the marker the <see cref="AnswerFormat"/> asks for (default: marked).
/// </summary>
public sealed class DatasetTask : ITask
{
    private readonly Problem[] _train;
    private readonly Problem[] _test;

    /// <summary>The problems as read from the file.</summary>
    public Dataset Data { get; }
    /// <inheritdoc />
    public string Name { get; }

    /// <summary>The answer marker a completion must use.</summary>
    public AnswerFormat Format { get; }

    /// <summary>Splits <paramref name="data"/> (see the class summary).</summary>
    /// <param name="data">The problems.</param>
    /// <param name="trainFraction">The share that trains; null: the whole file is the test split.</param>
    /// <param name="seed">Seeds the split.</param>
    /// <param name="format">The answer marker a completion must use.</param>
    public DatasetTask(Dataset data, double? trainFraction = null, long seed = 0, AnswerFormat format = AnswerFormat.Marked)
    {
        Data = data;
        Format = format;
        Name = $"jsonl:{Path.GetFileName(data.Path)}";
        if (trainFraction is null)
        {
            _train = [];
            _test = data.Problems.ToArray();
            return;
        }
        var f = trainFraction.Value;
        if (!(f >= 0.0 && f <= 1.0))
            throw new ArgumentOutOfRangeException(nameof(trainFraction), $"train fraction must be in [0, 1], got {f}");
        var order = data.Problems
            .Select((p, i) => (p, i, key: InstanceSpace.Mix(InstanceSpace.Hash(p.Id) ^ InstanceSpace.Mix((ulong)seed))))
            .OrderBy(x => x.key).ThenBy(x => x.i)
            .Select(x => x.p)
            .ToArray();
        int cut = (int)Math.Round(f * order.Length, MidpointRounding.AwayFromZero);
        _train = order[..cut];
        _test = order[cut..];
    }

    /// <summary>Loads the file (JSONL or Parquet, <see cref="Dataset.Load"/>) and splits it as described above.</summary>
    public static DatasetTask FromFile(string path, DatasetOptions? options = null, double? trainFraction = null, long seed = 0,
                                       AnswerFormat format = AnswerFormat.Marked) =>
        new(Dataset.Load(path, options), trainFraction, seed, format);

    /// <inheritdoc />
    public long? Count(Split split) => (split == Split.Train ? _train : _test).Length;

    /// <inheritdoc />
    public Problem Get(Split split, long index)
    {
        var problems = split == Split.Train ? _train : _test;
        if (index < 0) throw new ArgumentOutOfRangeException(nameof(index), $"{Name}: problem index must be >= 0, got {index}");
        if (problems.Length == 0)
            throw new InvalidOperationException(
                split == Split.Train
                    ? $"{Name}: no training split: the file is used as the test split; give a train fraction to split it"
                    : $"{Name}: the test split is empty (train fraction 1)");
        return problems[index % problems.Length];
    }

    /// <summary>The math verifier against the row's answer; a row without one (a dataset read without its answer column) scores 0.</summary>
    public Judgement Judge(Problem problem, string completion, bool finished = true) =>
        problem.Answer is null ? new Judgement(0.0) : Judgement.Of(MathVerifier.Verify(completion, problem.Answer, Format, finished));
}
