namespace Popo.Engine.Data;

/// <summary>The JSONL shapes of docs/design.md §7.</summary>
public enum DatasetShape
{
    /// <summary>Decided by the first line: "question" -> Gsm8k, "problem" -> ProblemAnswer, "prompt" -> Prompt.</summary>
    Auto,
    /// <summary>{"question", "answer"} with the gold number after "#### " on the answer's last line; the rest is a worked solution.</summary>
    Gsm8k,
    /// <summary>{"problem", "answer"} (MATH-500, AIME, AMC); an optional "solution" becomes the worked solution.</summary>
    ProblemAnswer,
    /// <summary>TRL style: "prompt" (text, or a list of {role, content} messages: the last user message) plus an answer field.</summary>
    Prompt,
}

/// <summary>How to read a JSONL dataset.</summary>
public sealed record DatasetOptions
{
    /// <summary>The default instruction (docs/design.md §7): reason step by step, final answer in \boxed{}.</summary>
    public const string DefaultTemplate = "{question}\nPlease reason step by step, and put your final answer within \\boxed{}.";

    /// <summary>The records' shape; Auto detects it from the first record.</summary>
    public DatasetShape Shape { get; init; } = DatasetShape.Auto;

    /// <summary>The field holding the gold answer; "answer" when null.</summary>
    public string? AnswerField { get; init; }

    /// <summary>
    /// Prompt template with one "{question}" placeholder. Null: <see cref="DefaultTemplate"/> for the
    /// Gsm8k and ProblemAnswer shapes (not added again to a question that already ends with that
    /// instruction, as MATH-500's do), and the prompt as written for the Prompt shape.
    /// </summary>
    public string? PromptTemplate { get; init; }

    /// <summary>
    /// Whether every row must carry the gold answer (the task's check, reward function <c>accuracy</c>, needs it). False: a row
    /// without the answer field is read with a null answer (its other columns still reach the reward functions).
    /// </summary>
    public bool AnswerRequired { get; init; } = true;

    /// <summary>Skip bad lines (counted and kept in <see cref="Dataset.Skipped"/>) instead of failing on the first.</summary>
    public bool SkipBadLines { get; init; }
}
