using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Popo.Engine.Data;

/// <summary>One record of a dataset file: its 1-based number and its columns as JSON, or the error that makes it unreadable.</summary>
internal readonly record struct DatasetRow(int Number, JsonObject? Columns, DatasetFormatException? Error);

/// <summary>
/// The one path from a dataset record to a <see cref="Problem"/>, shared by every file format (JSONL lines and
/// Parquet rows both arrive as <see cref="JsonObject"/>s): shape detection, the shapes of docs/design.md §7, the
/// prompt template, bad records failing the load or skipped and counted.
/// </summary>
internal static partial class DatasetRows
{
    [GeneratedRegex(@"<<[^<>]*>>")]
    private static partial Regex CalculatorAnnotation();

    /// <summary>Reads every record (in order) into problems; the shape is detected on the first good record when Auto.</summary>
    public static Dataset Collect(string path, DatasetRecord record, IEnumerable<DatasetRow> rows, DatasetOptions? options)
    {
        options ??= new DatasetOptions();
        if (options.PromptTemplate is { } t && !t.Contains("{question}", StringComparison.Ordinal))
            throw new ArgumentException($"prompt template must contain the placeholder {{question}}: \"{t}\"");
        var shape = options.Shape;
        var problems = new List<Problem>();
        var skipped = new List<DatasetFormatException>();
        var name = System.IO.Path.GetFileName(path);
        int number = 0;
        foreach (var row in rows)
        {
            number = row.Number;
            try
            {
                if (row.Error is { } error) throw error;
                var place = new Place(path, name, row.Number, record);
                if (shape == DatasetShape.Auto) shape = Detect(place, row.Columns!);
                // Every column of the row, as read, for the reward functions (nested JSON kept).
                problems.Add(ToProblem(place, row.Columns!, shape, options) with { Columns = row.Columns });
            }
            catch (DatasetFormatException e) when (options.SkipBadLines)
            {
                skipped.Add(e);
            }
        }
        if (problems.Count == 0)
            throw new DatasetFormatException(path, number, null,
                skipped.Count > 0 ? $"no usable problem: all {skipped.Count} non-blank {(record == DatasetRecord.Line ? "lines" : "rows")} are bad (first: {skipped[0].Message})"
                                  : "no problems: the file is empty", record);
        return new Dataset(path, shape, problems, skipped);
    }

    /// <summary>Where a record is, to name it in errors and in default problem ids ("file-name:number").</summary>
    internal readonly record struct Place(string Path, string Name, int Number, DatasetRecord Record)
    {
        public DatasetFormatException Error(string? field, string problem) => new(Path, Number, field, problem, Record);
    }

    private static DatasetShape Detect(Place place, JsonObject root)
    {
        if (root.ContainsKey("question")) return DatasetShape.Gsm8k;
        if (root.ContainsKey("problem")) return DatasetShape.ProblemAnswer;
        if (root.ContainsKey("prompt")) return DatasetShape.Prompt;
        var what = place.Record == DatasetRecord.Line ? "field" : "column";
        throw place.Error(null,
            $"cannot tell the dataset shape: expected a \"question\" (GSM8K), \"problem\" (MATH/AIME/AMC) or \"prompt\" (TRL) {what}; or set the shape");
    }

    /// <summary>One record in the given shape as a problem; a missing or malformed field throws naming it.</summary>
    public static Problem ToProblem(Place place, JsonObject root, DatasetShape shape, DatasetOptions options)
    {
        var answerField = options.AnswerField ?? "answer";
        var id = Id(root) ?? $"{place.Name}:{place.Number}";
        switch (shape)
        {
            case DatasetShape.Gsm8k:
            {
                var question = Text(place, root, "question");
                if (!options.AnswerRequired && !root.ContainsKey(answerField))
                    return new Problem(id, Template(question, options, shape), null, null);
                var full = Text(place, root, answerField);
                int hashes = full.LastIndexOf("####", StringComparison.Ordinal);
                var gold = hashes < 0 ? "" : full[(hashes + 4)..].Trim();
                if (gold.Length == 0)
                    throw place.Error(answerField, "expected a final line '#### <answer>' (GSM8K shape)");
                var solution = CalculatorAnnotation().Replace(full, "");
                return new Problem(id, Template(question, options, shape), gold, solution);
            }
            case DatasetShape.ProblemAnswer:
            {
                var problem = Text(place, root, "problem");
                var gold = Answer(place, root, answerField, options);
                var solution = root.TryGetPropertyValue("solution", out var s) && s is not null && s.GetValueKind() == JsonValueKind.String
                    ? s.GetValue<string>() : null;
                return new Problem(id, Template(problem, options, shape), gold, solution);
            }
            case DatasetShape.Prompt:
            {
                var (prompt, messages) = PromptText(place, root);
                var gold = Answer(place, root, answerField, options);
                var text = Template(prompt, options, shape);
                // The conversation keeps every message; the last user turn carries the (templated) prompt.
                var lastUser = messages?.FindLastIndex(m => m.Role == "user") ?? -1;
                if (lastUser >= 0) messages![lastUser] = messages[lastUser] with { Content = text };
                return new Problem(id, text, gold, null, messages);
            }
            default:
                throw new ArgumentOutOfRangeException(nameof(shape), shape, "unknown dataset shape");
        }
    }

    private static string Template(string question, DatasetOptions options, DatasetShape shape)
    {
        if (options.PromptTemplate is { } t) return t.Replace("{question}", question, StringComparison.Ordinal);
        if (shape == DatasetShape.Prompt) return question;
        var instruction = DatasetOptions.DefaultTemplate["{question}".Length..];
        return question.TrimEnd().EndsWith(instruction.Trim(), StringComparison.Ordinal)
            ? question
            : DatasetOptions.DefaultTemplate.Replace("{question}", question, StringComparison.Ordinal);
    }

    private static string? Id(JsonObject root)
    {
        foreach (var key in new[] { "id", "unique_id" })
            if (root.TryGetPropertyValue(key, out var v))
                return Kind(v) switch
                {
                    JsonValueKind.String => v!.GetValue<string>(),
                    JsonValueKind.Number => v!.ToJsonString(),
                    _ => null,
                };
        return null;
    }

    /// <summary>A required non-empty string field.</summary>
    private static string Text(Place place, JsonObject root, string field)
    {
        if (!root.TryGetPropertyValue(field, out var v)) throw place.Error(field, "missing");
        if (Kind(v) != JsonValueKind.String) throw place.Error(field, $"expected a string, got {Describe(v)}");
        var s = v!.GetValue<string>();
        if (s.Trim().Length == 0) throw place.Error(field, "empty");
        return s;
    }

    /// <summary>The gold answer: required (<see cref="Scalar"/>) unless the options say the run's reward functions do not need it.</summary>
    private static string? Answer(Place place, JsonObject root, string field, DatasetOptions options) =>
        !options.AnswerRequired && !root.ContainsKey(field) ? null : Scalar(place, root, field);

    /// <summary>A required answer: a non-empty string, or a number (kept as written).</summary>
    private static string Scalar(Place place, JsonObject root, string field)
    {
        if (!root.TryGetPropertyValue(field, out var v))
            throw place.Error(field,
                "missing: the task's check (reward function accuracy) needs the gold answer; add the column, name it with answer_field, " +
                "or score with reward functions that do not need it (reward_funcs)");
        return Kind(v) switch
        {
            JsonValueKind.Number => v!.ToJsonString(),
            JsonValueKind.String when v!.GetValue<string>().Trim().Length > 0 => v.GetValue<string>().Trim(),
            JsonValueKind.String => throw place.Error(field, "empty"),
            _ => throw place.Error(field, $"expected a string or a number, got {Describe(v)}"),
        };
    }

    /// <summary>TRL prompt: a string, or a list of {role, content} messages (kept) whose last user message is the prompt.</summary>
    private static (string Prompt, List<Tokenizers.ChatMessage>? Messages) PromptText(Place place, JsonObject root)
    {
        if (!root.TryGetPropertyValue("prompt", out var v)) throw place.Error("prompt", "missing");
        if (Kind(v) == JsonValueKind.String) return (Text(place, root, "prompt"), null);
        if (v is not JsonArray list)
            throw place.Error("prompt", $"expected a string or a list of messages, got {Describe(v)}");
        var messages = new List<Tokenizers.ChatMessage>();
        string? last = null;
        foreach (var m in list)
        {
            if (m is not JsonObject message || !message.TryGetPropertyValue("role", out var role) || Kind(role) != JsonValueKind.String ||
                !message.TryGetPropertyValue("content", out var content) || Kind(content) != JsonValueKind.String)
                throw place.Error("prompt", "each message must be an object with string \"role\" and \"content\"");
            messages.Add(new Tokenizers.ChatMessage(role!.GetValue<string>(), content!.GetValue<string>()));
            if (role.GetValue<string>() == "user") last = content.GetValue<string>();
        }
        if (string.IsNullOrWhiteSpace(last)) throw place.Error("prompt", "no non-empty user message");
        return (last, messages);
    }

    private static JsonValueKind Kind(JsonNode? v) => v?.GetValueKind() ?? JsonValueKind.Null;

    private static string Describe(JsonNode? v) => Kind(v).ToString().ToLowerInvariant();
}
