
namespace Popo.Engine.Data;

/// <summary>Problems read from a JSONL file, with the lines that were skipped as bad (when allowed).</summary>
public sealed record Dataset(string Path, DatasetShape Shape, IReadOnlyList<Problem> Problems, IReadOnlyList<DatasetFormatException> Skipped)
{
    public int SkippedCount => Skipped.Count;
}
