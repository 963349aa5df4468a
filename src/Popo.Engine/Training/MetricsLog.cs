using System.Globalization;

namespace Popo.Engine.Training;

/// <summary>
/// One row per step in metrics.jsonl and metrics.csv. The CSV columns are fixed by the first row; both
/// files are appended and flushed per row so a killed run keeps every finished step. On resume the
/// files are first cut back to the rows of the steps the checkpoint covers.
/// </summary>
internal sealed class MetricsLog : IDisposable
{
    private readonly JsonlLog jsonl;
    private readonly StreamWriter csv;
    private string[]? columns;

    public string JsonlPath { get; }
    public string CsvPath { get; }

    public MetricsLog(string folder, int keepThroughStep)
    {
        JsonlPath = Path.Combine(folder, "metrics.jsonl");
        CsvPath = Path.Combine(folder, "metrics.csv");
        jsonl = new JsonlLog(JsonlPath, keepThroughStep);
        columns = TruncateCsv(keepThroughStep);
        csv = new StreamWriter(CsvPath, append: true);
    }

    public void Write(IReadOnlyDictionary<string, double> row)
    {
        jsonl.Write(row.ToDictionary(kv => kv.Key, kv => Finite(kv.Value)));
        if (columns is null)
        {
            columns = row.Keys.ToArray();
            csv.WriteLine(string.Join(",", columns));
        }
        csv.WriteLine(string.Join(",", columns.Select(c => row.TryGetValue(c, out var v) ? v.ToString("R", CultureInfo.InvariantCulture) : "")));
        csv.Flush();
    }

    /// <summary>JSON has no NaN: a non-finite value is written as null.</summary>
    private static double? Finite(double v) => double.IsFinite(v) ? v : null;

    /// <summary>Drops CSV rows of steps after keepThroughStep (left by a run killed after its last checkpoint).</summary>
    private string[]? TruncateCsv(int keepThroughStep)
    {
        if (!File.Exists(CsvPath)) return null;
        var lines = File.ReadAllLines(CsvPath);
        if (lines.Length == 0) return null;
        var header = lines[0].Split(',');
        int stepColumn = Array.IndexOf(header, "step");
        var kept = lines.Skip(1).Where(l =>
        {
            var cells = l.Split(',');
            return stepColumn >= 0 && cells.Length == header.Length
                && double.TryParse(cells[stepColumn], NumberStyles.Float, CultureInfo.InvariantCulture, out var s) && s <= keepThroughStep;
        });
        Lines.Rewrite(CsvPath, new[] { lines[0] }.Concat(kept));
        return header;
    }

    public void Dispose() { jsonl.Dispose(); csv.Dispose(); }
}
