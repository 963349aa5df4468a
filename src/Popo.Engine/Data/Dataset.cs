namespace Popo.Engine.Data;

/// <summary>Problems read from a dataset file, with the records that were skipped as bad (when allowed).</summary>
public sealed record Dataset(string Path, DatasetShape Shape, IReadOnlyList<Problem> Problems, IReadOnlyList<DatasetFormatException> Skipped)
{
    /// <summary>How many bad records were skipped.</summary>
    public int SkippedCount => Skipped.Count;

    /// <summary>
    /// Reads a dataset file by its extension: ".parquet" with <see cref="ParquetDataset"/>, anything else as JSON
    /// lines with <see cref="JsonlDataset"/>. Both give the same problems for the same records.
    /// </summary>
    public static Dataset Load(string path, DatasetOptions? options = null) =>
        string.Equals(System.IO.Path.GetExtension(path), ".parquet", StringComparison.OrdinalIgnoreCase)
            ? ParquetDataset.Load(path, options)
            : JsonlDataset.Load(path, options);
}
