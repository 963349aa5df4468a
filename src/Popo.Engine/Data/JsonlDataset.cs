using System.Text.Json;
using System.Text.Json.Nodes;

namespace Popo.Engine.Data;

/// <summary>
/// Reads the JSONL shapes of docs/design.md §7 into <see cref="Problem"/>s. Blank lines are ignored. A bad
/// line (not valid UTF-8, not JSON, not an object, a missing or malformed field) throws <see cref="DatasetFormatException"/>
/// naming the file, line and field, or with <see cref="DatasetOptions.SkipBadLines"/> is skipped and counted.
/// Problem ids are the line's "id" or "unique_id" when present, else "file-name:line".
/// Each line becomes a <see cref="JsonObject"/> and goes the path every format shares (<see cref="DatasetRows"/>).
/// </summary>
public static class JsonlDataset
{
    /// <summary>Reads the file; see the class summary for the shapes and errors.</summary>
    public static Dataset Load(string path, DatasetOptions? options = null)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"dataset file not found: {path}", path);
        return DatasetRows.Collect(path, DatasetRecord.Line, Rows(path), options);
    }

    private static IEnumerable<DatasetRow> Rows(string path)
    {
        foreach (var (number, line, badByte) in Utf8Lines.Read(path))
        {
            if (line is not null && string.IsNullOrWhiteSpace(line)) continue;
            if (line is null)
            {
                yield return new DatasetRow(number, null, new DatasetFormatException(path, number, null,
                    $"not valid UTF-8 (an invalid byte sequence at byte {badByte + 1} of the line)"));
                continue;
            }
            DatasetFormatException? error = null;
            JsonObject? row = null;
            try { row = ParseLine(path, number, line); }
            catch (DatasetFormatException e) { error = e; }
            yield return new DatasetRow(number, row, error);
        }
    }

    private static JsonObject ParseLine(string path, int line, string text)
    {
        JsonDocument doc;
        try { doc = JsonDocument.Parse(text); }
        catch (JsonException e) { throw new DatasetFormatException(path, line, null, $"not valid JSON ({e.Message})"); }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
                throw new DatasetFormatException(path, line, null, "expected a JSON object per line");
            return (JsonObject)ToNode(doc.RootElement)!;
        }
    }

    /// <summary>
    /// A detached copy of the element. A key repeated in an object keeps its last value, as
    /// <see cref="JsonElement.GetProperty(string)"/> does (JsonNode.Parse would throw on first access instead).
    /// Numbers keep their text as written.
    /// </summary>
    internal static JsonNode? ToNode(JsonElement e)
    {
        switch (e.ValueKind)
        {
            case JsonValueKind.Object:
                var obj = new JsonObject();
                foreach (var p in e.EnumerateObject()) obj[p.Name] = ToNode(p.Value);
                return obj;
            case JsonValueKind.Array:
                var list = new JsonArray();
                foreach (var x in e.EnumerateArray()) list.Add(ToNode(x));
                return list;
            case JsonValueKind.Null:
                return null;
            default:
                return JsonValue.Create(e.Clone());
        }
    }
}
