namespace Popo.Engine.Data;

/// <summary>A bad line in a JSONL dataset: names the file, the 1-based line number and the field.</summary>
public sealed class DatasetFormatException(string path, int line, string? field, string problem)
    : Exception($"{path}:{line}: {(field is null ? "" : $"field '{field}': ")}{problem}")
{
    public string Path { get; } = path;
    public int Line { get; } = line;
    /// <summary>The missing or malformed field; null when the line itself is bad (not JSON, not an object).</summary>
    public string? Field { get; } = field;
}
