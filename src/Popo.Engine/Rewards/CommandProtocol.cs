using System.Text;
using System.Text.Json;
using Popo.Rewards;

namespace Popo.Engine.Rewards;

/// <summary>
/// The JSON-lines protocol of an external reward command. The trainer writes one line per group (the rollouts of one
/// prompt): <c>{"group": G, "samples": [{"prompt": ..., "completion": ..., "completion_ids": [...], "finished": true,
/// "columns": {...every column of the row...}}, ...]}</c>; the command answers with one line, a JSON array with one
/// number or null per sample, in order.
/// </summary>
internal static class CommandProtocol
{
    /// <summary>The request line (no newline) for <paramref name="group"/>'s samples.</summary>
    public static string Request(int group, IReadOnlyList<RewardSample> samples)
    {
        var buffer = new MemoryStream();
        // Relaxed escaping keeps non-ASCII text readable; a raw newline can never appear (JSON escapes control characters).
        using (var json = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            json.WriteStartObject();
            json.WriteNumber("group", group);
            json.WriteStartArray("samples");
            foreach (var s in samples)
            {
                json.WriteStartObject();
                json.WriteString("prompt", s.Prompt);
                json.WriteString("completion", s.Completion);
                json.WriteStartArray("completion_ids");
                foreach (var id in s.CompletionIds) json.WriteNumberValue(id);
                json.WriteEndArray();
                json.WriteBoolean("finished", s.Finished);
                json.WritePropertyName("columns");
                s.Columns.WriteTo(json);
                json.WriteEndObject();
            }
            json.WriteEndArray();
            json.WriteEndObject();
        }
        return Encoding.UTF8.GetString(buffer.GetBuffer(), 0, (int)buffer.Length);
    }

    /// <summary>The values of a reply line; a <see cref="FormatException"/> saying what is wrong with it.</summary>
    public static double?[] Reply(string line, int count)
    {
        JsonDocument document;
        try { document = JsonDocument.Parse(line); }
        catch (JsonException e) { throw new FormatException($"the reply is not JSON ({e.Message}); expected an array of {count} numbers or nulls"); }
        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Array)
                throw new FormatException($"the reply is a JSON {root.ValueKind.ToString().ToLowerInvariant()}; expected an array of {count} numbers or nulls");
            if (root.GetArrayLength() != count)
                throw new FormatException($"the reply has {root.GetArrayLength()} values for {count} samples");
            var values = new double?[count];
            int i = 0;
            foreach (var item in root.EnumerateArray())
            {
                values[i] = item.ValueKind switch
                {
                    JsonValueKind.Null => null,
                    JsonValueKind.Number when item.TryGetDouble(out var v) && double.IsFinite(v) => v,
                    _ => throw new FormatException($"value {i} of the reply is {item.GetRawText()}; expected a finite number or null"),
                };
                i++;
            }
            return values;
        }
    }

    /// <summary>The words of a command line: spaces separate them, single or double quotes keep spaces, a backslash
    /// outside single quotes escapes the next character.</summary>
    public static IReadOnlyList<string> Split(string commandLine)
    {
        var words = new List<string>();
        var word = new StringBuilder();
        bool inWord = false;
        char quote = '\0';
        for (int i = 0; i < commandLine.Length; i++)
        {
            char c = commandLine[i];
            if (quote == '\'')
            {
                if (c == '\'') quote = '\0'; else word.Append(c);
            }
            else if (c == '\\' && i + 1 < commandLine.Length)
            {
                word.Append(commandLine[++i]);
                inWord = true;
            }
            else if (quote == '"')
            {
                if (c == '"') quote = '\0'; else word.Append(c);
            }
            else if (c is '"' or '\'')
            {
                quote = c;
                inWord = true;
            }
            else if (char.IsWhiteSpace(c))
            {
                if (inWord) words.Add(word.ToString());
                word.Clear();
                inWord = false;
            }
            else
            {
                word.Append(c);
                inWord = true;
            }
        }
        if (quote != '\0') throw new FormatException($"unclosed {quote} quote");
        if (inWord) words.Add(word.ToString());
        return words;
    }
}
