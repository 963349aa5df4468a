namespace Popo.MathVerify;

/// <summary>
/// Which answer markers a completion must use (config key <c>answer_format</c>): only \boxed{} (boxed);
/// an explicit marker: \boxed{}, &lt;answer&gt; tags, "#### N", "the answer is" (marked); or also, without a
/// marker, the last math span and then the last whole-token number (any).
/// </summary>
public enum AnswerFormat
{
    /// <summary>Only \boxed{}.</summary>
    Boxed,
    /// <summary>An explicit marker: \boxed{}, &lt;answer&gt; tags, "#### N", "the answer is".</summary>
    Marked,
    /// <summary>A marker, or else the last math span, or else the last whole-token number.</summary>
    Any,
}

/// <summary>How the answer was found: the extraction routes, in the order they are tried.</summary>
public enum AnswerRoute
{
    /// <summary>No answer was found.</summary>
    None,
    /// <summary>\boxed{} or \fbox{} (several adjacent boxes are one list answer).</summary>
    Boxed,
    /// <summary>&lt;answer&gt; tags, "#### N", "the answer is" / "final answer is" / "Answer:".</summary>
    Marked,
    /// <summary>The last math span: $...$, $$...$$, \(...\), \[...\].</summary>
    Math,
    /// <summary>The last number, when it is a whole token.</summary>
    Number,
}

/// <summary>
/// An answer taken from a completion and the route it came by, and <c>Alternative</c>, a second reading of
/// the same marker (null when none): for boxes, the last box with the boxes before it in the same sentence,
/// linked by "and", a comma or a semicolon ("\boxed{(3,3)} for part (a) and \boxed{(1,1)}"), as a list; for
/// "Answer: Evelyn wins with 5 points", the first word beside the sentence's value. Either reading may match.
/// </summary>
public readonly record struct Extraction(string Answer, AnswerRoute Route)
{
    /// <summary>A second reading of the same marker, or null.</summary>
    public string? Alternative { get; init; }
}

/// <summary>
/// The verifier's verdict, the route of the answer it judged (None when there was none) and that answer. Error: what an
/// unexpected exception inside the verifier said (the verdict is then false); the verifier stays total, and the caller
/// counts these instead of never hearing of them.
/// </summary>
public readonly record struct Verdict(bool Correct, AnswerRoute Route, string? Answer = null, string? Error = null);

internal static class AnswerFormats
{
    public static readonly string[] Names = ["boxed", "marked", "any"];

    /// <summary>Parses a config value; the error names the valid ones.</summary>
    public static AnswerFormat Parse(string name) => name switch
    {
        "boxed" => AnswerFormat.Boxed,
        "marked" => AnswerFormat.Marked,
        "any" => AnswerFormat.Any,
        _ => throw new ArgumentException($"answer_format must be one of {string.Join(", ", Names)}; got '{name}'"),
    };
}
