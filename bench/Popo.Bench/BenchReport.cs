using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Popo.Bench;

/// <summary>One section of the report: section-level facts, a table of rows and free-text notes.</summary>
internal sealed class BenchSection(string name, string title)
{
    public string Name { get; } = name;
    public string Title { get; } = title;
    /// <summary>Section-level figures (e.g. the peak's GFLOP/s), printed as "key: value" lines.</summary>
    public Dictionary<string, object> Facts { get; } = new();
    /// <summary>Rows of the table; every row has the columns of the first.</summary>
    public List<Dictionary<string, object>> Rows { get; } = new();
    public List<string> Notes { get; } = new();
}

/// <summary>
/// Collects the sections of one `popo bench` run, prints each as a Markdown table as it completes, and writes
/// everything as bench.json: { "meta": {...}, "sections": { name: { "title", "facts", "rows", "notes" } } }.
/// </summary>
internal sealed class BenchReport(TextWriter output)
{
    private readonly Dictionary<string, object> meta = new();
    private readonly List<BenchSection> sections = new();

    public IReadOnlyList<BenchSection> Sections => sections;

    public void Meta(string key, object value)
    {
        meta[key] = value;
        output.WriteLine($"{key}: {Format(value)}");
    }

    public void Add(BenchSection section)
    {
        sections.Add(section);
        output.WriteLine();
        output.WriteLine($"## {section.Title}");
        foreach (var (k, v) in section.Facts) output.WriteLine($"{k}: {Format(v)}");
        if (section.Rows.Count > 0)
        {
            var columns = section.Rows.SelectMany(r => r.Keys).Distinct().ToList();   // a column some rows lack is blank in the others
            output.WriteLine();
            output.WriteLine("| " + string.Join(" | ", columns) + " |");
            output.WriteLine("|" + string.Concat(columns.Select(_ => "---|")));
            foreach (var row in section.Rows)
                output.WriteLine("| " + string.Join(" | ", columns.Select(c => row.TryGetValue(c, out var v) ? Format(v) : "")) + " |");
        }
        foreach (var note in section.Notes) output.WriteLine(note);
        output.Flush();
    }

    public void Write(string path)
    {
        var root = new JsonObject
        {
            ["meta"] = ToNode(meta),
            ["sections"] = new JsonObject(sections.Select(s => KeyValuePair.Create(s.Name, (JsonNode?)new JsonObject
            {
                ["title"] = s.Title,
                ["facts"] = ToNode(s.Facts),
                ["rows"] = new JsonArray(s.Rows.Select(r => (JsonNode?)ToNode(r)).ToArray()),
                ["notes"] = new JsonArray(s.Notes.Select(n => (JsonNode?)JsonValue.Create(n)).ToArray()),
            }))),
        };
        var full = Path.GetFullPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        File.WriteAllText(full, root.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        output.WriteLine();
        output.WriteLine($"wrote {full}");
    }

    /// <summary>Numbers with 3-4 significant digits; NaN and infinities become null in JSON (not valid JSON numbers).</summary>
    private static string Format(object value) => value switch
    {
        double d when double.IsNaN(d) => "n/a",
        double d when Math.Abs(d) >= 100 => d.ToString("F0", CultureInfo.InvariantCulture),
        double d when Math.Abs(d) >= 1 => d.ToString("F2", CultureInfo.InvariantCulture),
        double d => d.ToString("G3", CultureInfo.InvariantCulture),
        _ => Convert.ToString(value, CultureInfo.InvariantCulture) ?? "",
    };

    private static JsonObject ToNode(Dictionary<string, object> values) =>
        new(values.Select(kv => KeyValuePair.Create(kv.Key, kv.Value switch
        {
            double d when !double.IsFinite(d) => null,
            double d => JsonValue.Create(d),
            int i => JsonValue.Create(i),
            long l => JsonValue.Create(l),
            bool b => JsonValue.Create(b),
            _ => (JsonNode?)JsonValue.Create(Convert.ToString(kv.Value, CultureInfo.InvariantCulture)),
        })));
}
