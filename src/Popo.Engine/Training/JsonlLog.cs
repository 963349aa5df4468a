using System.Text.Json;

namespace Popo.Engine.Training;

/// <summary>
/// An append-only JSONL file of per-step records. On resume, records of steps after the restored
/// checkpoint (and a last line cut short by a kill) are dropped first, so the file continues as if the
/// run had never stopped.
/// </summary>
internal sealed class JsonlLog : IDisposable
{
    private readonly StreamWriter writer;

    public JsonlLog(string path, int keepThroughStep)
    {
        if (File.Exists(path))
            Lines.Rewrite(path, File.ReadAllLines(path).Where(l => StepOf(l) is int s && s <= keepThroughStep));
        writer = new StreamWriter(path, append: true);
    }

    public void Write(object record)
    {
        writer.WriteLine(JsonSerializer.Serialize(record));
        writer.Flush();
    }

    public static int? StepOf(string jsonLine)
    {
        if (jsonLine.Length == 0) return null;
        try
        {
            using var doc = JsonDocument.Parse(jsonLine);
            return doc.RootElement.TryGetProperty("step", out var s) && s.ValueKind == JsonValueKind.Number ? (int)s.GetDouble() : null;
        }
        catch (JsonException) { return null; }
    }

    public void Dispose() => writer.Dispose();
}
