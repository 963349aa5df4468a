namespace Popo.Engine.Data;

/// <summary>
/// A bad record in a dataset file: names the file, the 1-based line (JSONL) or row (Parquet) and the field
/// (a JSONL field or a Parquet column). Number 0 means the file as a whole (a Parquet file that cannot be read).
/// </summary>
public sealed class DatasetFormatException(string path, int line, string? field, string problem, DatasetRecord record = DatasetRecord.Line)
    : Exception(record == DatasetRecord.Line
        ? $"{path}:{line}: {(field is null ? "" : $"field '{field}': ")}{problem}"
        : $"{path}: {(line > 0 ? $"row {line}: " : "")}{(field is null ? "" : $"column '{field}': ")}{problem}")
{
    /// <summary>The dataset file.</summary>
    public string Path { get; } = path;
    /// <summary>The 1-based line (JSONL) or row (Parquet); 0 for the file as a whole.</summary>
    public int Line { get; } = line;
    /// <summary>The missing or malformed field; null when the line itself is bad (not JSON, not an object).</summary>
    public string? Field { get; } = field;
    /// <summary>Whether <see cref="Line"/> counts lines of a JSONL file or rows of a Parquet file.</summary>
    public DatasetRecord Record { get; } = record;
}

/// <summary>What a dataset file's records are, for error messages.</summary>
public enum DatasetRecord
{
    /// <summary>A line of a JSONL file (blank lines count).</summary>
    Line,
    /// <summary>A row of a Parquet file, counted from 1 across its row groups.</summary>
    Row,
}
