// The star-count reward as an external command speaking Popo's JSON-lines protocol: one request line per group on
// stdin ({"group": G, "samples": [{"prompt", "completion", "completion_ids", "finished", "columns"}, ...]}), one
// line back per request: a JSON array with one number (or null: not applicable) per sample, in order. Same values
// as reward.fsx: 1.0 for exactly the target number of stars, times e^(-1/4) per star too many or too few and per
// other character; null for a row without a target.
using System.Globalization;
using System.Text.Json.Nodes;

string? line;
while ((line = Console.In.ReadLine()) is not null)
{
    var samples = JsonNode.Parse(line)!["samples"]!.AsArray();
    var values = samples.Select(s => Score(s!)).Select(v => v is double d ? d.ToString("R", CultureInfo.InvariantCulture) : "null");
    Console.Out.WriteLine("[" + string.Join(",", values) + "]");
    Console.Out.Flush();  // the trainer waits for the line
}

static double? Score(JsonNode sample)
{
    var columns = sample["columns"]!;
    var node = columns["target"] ?? columns["answer"];
    if (node is null || !int.TryParse(node.ToString(), NumberStyles.Integer, CultureInfo.InvariantCulture, out int target)) return null;
    var completion = sample["completion"]!.GetValue<string>();
    int stars = completion.Count(c => c == '*');
    int others = completion.Length - stars;
    return Math.Exp(-(Math.Abs(stars - target) + others) / 4.0);
}
