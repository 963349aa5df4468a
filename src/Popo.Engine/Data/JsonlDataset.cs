using System.Text.Json;
using System.Text.RegularExpressions;

namespace Popo.Engine.Data;

/// <summary>
/// Reads the JSONL shapes of docs/design.md §7 into <see cref="Problem"/>s. Blank lines are ignored. A bad
/// line (not valid UTF-8, not JSON, not an object, a missing or malformed field) throws <see cref="DatasetFormatException"/>
/// naming the file, line and field, or with <see cref="DatasetOptions.SkipBadLines"/> is skipped and counted.
/// Problem ids are the line's "id" or "unique_id" when present, else "file-name:line".
/// </summary>
public static partial class JsonlDataset
{
    [GeneratedRegex(@"<<[^<>]*>>")]
    private static partial Regex CalculatorAnnotation();

    public static Dataset Load(string path, DatasetOptions? options = null)
    {
        options ??= new DatasetOptions();
        if (!File.Exists(path)) throw new FileNotFoundException($"dataset file not found: {path}", path);
        if (options.PromptTemplate is { } t && !t.Contains("{question}", StringComparison.Ordinal))
            throw new ArgumentException($"prompt template must contain the placeholder {{question}}: \"{t}\"");
        var shape = options.Shape;
        var problems = new List<Problem>();
        var skipped = new List<DatasetFormatException>();
        var name = System.IO.Path.GetFileName(path);
        int lineNumber = 0;
        foreach (var (number, line, badByte) in Utf8Lines.Read(path))
        {
            lineNumber = number;
            if (line is not null && string.IsNullOrWhiteSpace(line)) continue;
            try
            {
                if (line is null) throw new DatasetFormatException(path, lineNumber, null, $"not valid UTF-8 (an invalid byte sequence at byte {badByte + 1} of the line)");
                using var doc = ParseLine(path, lineNumber, line);
                var root = doc.RootElement;
                if (shape == DatasetShape.Auto) shape = Detect(path, lineNumber, root);
                // Every column of the row, as read, for the reward functions (nested JSON kept).
                var columns = System.Text.Json.Nodes.JsonNode.Parse(line)!.AsObject();
                problems.Add(Read(path, name, lineNumber, root, shape, options) with { Columns = columns });
            }
            catch (DatasetFormatException e) when (options.SkipBadLines)
            {
                skipped.Add(e);
            }
        }
        if (problems.Count == 0)
            throw new DatasetFormatException(path, lineNumber, null,
                skipped.Count > 0 ? $"no usable problem: all {skipped.Count} non-blank lines are bad (first: {skipped[0].Message})" : "no problems: the file is empty");
        return new Dataset(path, shape, problems, skipped);
    }

    private static JsonDocument ParseLine(string path, int line, string text)
    {
        JsonDocument doc;
        try { doc = JsonDocument.Parse(text); }
        catch (JsonException e) { throw new DatasetFormatException(path, line, null, $"not valid JSON ({e.Message})"); }
        if (doc.RootElement.ValueKind != JsonValueKind.Object)
        {
            doc.Dispose();
            throw new DatasetFormatException(path, line, null, "expected a JSON object per line");
        }
        return doc;
    }

    private static DatasetShape Detect(string path, int line, JsonElement root)
    {
        if (root.TryGetProperty("question", out _)) return DatasetShape.Gsm8k;
        if (root.TryGetProperty("problem", out _)) return DatasetShape.ProblemAnswer;
        if (root.TryGetProperty("prompt", out _)) return DatasetShape.Prompt;
        throw new DatasetFormatException(path, line, null,
            "cannot tell the dataset shape: expected a \"question\" (GSM8K), \"problem\" (MATH/AIME/AMC) or \"prompt\" (TRL) field; or set the shape");
    }

    private static Problem Read(string path, string name, int line, JsonElement root, DatasetShape shape, DatasetOptions options)
    {
        var answerField = options.AnswerField ?? "answer";
        var id = Id(root) ?? $"{name}:{line}";
        switch (shape)
        {
            case DatasetShape.Gsm8k:
            {
                var question = Text(path, line, root, "question");
                if (!options.AnswerRequired && !root.TryGetProperty(answerField, out _))
                    return new Problem(id, Template(question, options, shape), null, null);
                var full = Text(path, line, root, answerField);
                int hashes = full.LastIndexOf("####", StringComparison.Ordinal);
                var gold = hashes < 0 ? "" : full[(hashes + 4)..].Trim();
                if (gold.Length == 0)
                    throw new DatasetFormatException(path, line, answerField, "expected a final line '#### <answer>' (GSM8K shape)");
                var solution = CalculatorAnnotation().Replace(full, "");
                return new Problem(id, Template(question, options, shape), gold, solution);
            }
            case DatasetShape.ProblemAnswer:
            {
                var problem = Text(path, line, root, "problem");
                var gold = Answer(path, line, root, answerField, options);
                var solution = root.TryGetProperty("solution", out var s) && s.ValueKind == JsonValueKind.String ? s.GetString() : null;
                return new Problem(id, Template(problem, options, shape), gold, solution);
            }
            case DatasetShape.Prompt:
            {
                var (prompt, messages) = PromptText(path, line, root);
                var gold = Answer(path, line, root, answerField, options);
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

    private static string? Id(JsonElement root)
    {
        foreach (var key in new[] { "id", "unique_id" })
            if (root.TryGetProperty(key, out var v))
                return v.ValueKind switch
                {
                    JsonValueKind.String => v.GetString(),
                    JsonValueKind.Number => v.GetRawText(),
                    _ => null,
                };
        return null;
    }

    /// <summary>The gold answer: required (<see cref="Scalar"/>) unless the options say the run's reward functions do not need it.</summary>
    private static string? Answer(string path, int line, JsonElement root, string field, DatasetOptions options) =>
        !options.AnswerRequired && !root.TryGetProperty(field, out _) ? null : Scalar(path, line, root, field);

    /// <summary>A required non-empty string field.</summary>
    private static string Text(string path, int line, JsonElement root, string field)
    {
        if (!root.TryGetProperty(field, out var v)) throw new DatasetFormatException(path, line, field, "missing");
        if (v.ValueKind != JsonValueKind.String) throw new DatasetFormatException(path, line, field, $"expected a string, got {Kind(v)}");
        var s = v.GetString()!;
        if (s.Trim().Length == 0) throw new DatasetFormatException(path, line, field, "empty");
        return s;
    }

    /// <summary>A required answer: a non-empty string, or a number (kept as written).</summary>
    private static string Scalar(string path, int line, JsonElement root, string field)
    {
        if (!root.TryGetProperty(field, out var v))
            throw new DatasetFormatException(path, line, field,
                "missing: the task's check (reward function accuracy) needs the gold answer; add the column, name it with answer_field, " +
                "or score with reward functions that do not need it (reward_funcs)");
        return v.ValueKind switch
        {
            JsonValueKind.Number => v.GetRawText(),
            JsonValueKind.String when v.GetString()!.Trim().Length > 0 => v.GetString()!.Trim(),
            JsonValueKind.String => throw new DatasetFormatException(path, line, field, "empty"),
            _ => throw new DatasetFormatException(path, line, field, $"expected a string or a number, got {Kind(v)}"),
        };
    }

    /// <summary>TRL prompt: a string, or a list of {role, content} messages (kept) whose last user message is the prompt.</summary>
    private static (string Prompt, List<Tokenizers.ChatMessage>? Messages) PromptText(string path, int line, JsonElement root)
    {
        if (!root.TryGetProperty("prompt", out var v)) throw new DatasetFormatException(path, line, "prompt", "missing");
        if (v.ValueKind == JsonValueKind.String) return (Text(path, line, root, "prompt"), null);
        var messages = new List<Tokenizers.ChatMessage>();
        if (v.ValueKind != JsonValueKind.Array)
            throw new DatasetFormatException(path, line, "prompt", $"expected a string or a list of messages, got {Kind(v)}");
        string? last = null;
        foreach (var m in v.EnumerateArray())
        {
            if (m.ValueKind != JsonValueKind.Object || !m.TryGetProperty("role", out var role) || role.ValueKind != JsonValueKind.String ||
                !m.TryGetProperty("content", out var content) || content.ValueKind != JsonValueKind.String)
                throw new DatasetFormatException(path, line, "prompt", "each message must be an object with string \"role\" and \"content\"");
            messages.Add(new Tokenizers.ChatMessage(role.GetString()!, content.GetString()!));
            if (role.GetString() == "user") last = content.GetString();
        }
        if (string.IsNullOrWhiteSpace(last)) throw new DatasetFormatException(path, line, "prompt", "no non-empty user message");
        return (last, messages);
    }

    private static string Kind(JsonElement v) => v.ValueKind.ToString().ToLowerInvariant();
}
